"""report: `reports/metrics.json` (results only, for `dvc metrics`), `reports/report.md`, figures,
and plot data (`dvc plots`: every task's score); and, from what each stage measured on this
machine (`reports/runtime/`, not DVC outs), `reports/runtime.md` and `reports/plots/timings.csv`.
It reports the tasks of this pipeline (`cfg.task`), nothing left over from earlier runs. Last stage
of every pipeline: it also closes the pipeline's parent MLflow run."""

from __future__ import annotations

from omegaconf import DictConfig

from lmforge.errors import DataError
from lmforge.fileio import read_json, write_json, write_text
from lmforge.report.plots import task_scores_csv, timings_csv
from lmforge.report.report import figures, markdown, runtime_markdown, summary_metrics, timings
from lmforge.stages.common import Paths, log, stage

PARAMS = ("task",)


def write_runtime(paths: Paths, names: list[str], pretrain: dict, finetune: dict[tuple[str, str], dict]) -> None:
    """`reports/runtime.md` and the timings plot from the stages' runtime records: each stage's last
    run in this workspace (outs restored from DVC's cache or a remote bring none of their own)."""
    labels = {"prepare": "prepare", "pretrain": "pretrain"}
    labels |= {f"finetune/{t}/{i}": f"finetune@{t} ({i})" for t, i in sorted(finetune)}
    labels |= {f"evaluate/{t}": f"evaluate@{t}" for t in names}
    files = {label: paths.runtime / f"{name}.json" for name, label in labels.items()}
    runtime = {label: read_json(path) for label, path in files.items() if path.is_file()}
    write_text(paths.reports / "runtime.md", runtime_markdown(pretrain, finetune, runtime))
    timings_csv(timings(runtime), paths.reports / "plots" / "timings.csv")


def run(cfg: DictConfig) -> dict:
    with stage(cfg, "report", PARAMS) as ctx:
        paths = ctx.paths
        names = sorted(ctx.cfg.task)
        prepare = read_json(paths.prepare / "stats.json")
        pretrain = read_json(paths.pretrain / "summary.json")
        missing = [n for n in names if not (paths.reports / "metrics" / f"{n}.json").is_file()]
        if missing:
            raise DataError(
                f"{paths.reports / 'metrics'}: no metrics of task(s) {missing}: run evaluate first "
                f"(`python pipelines/evaluate.py task={missing[0]}`, or `dvc repro`)"
            )
        evaluate = {n: read_json(paths.reports / "metrics" / f"{n}.json") for n in names}
        finetune = {
            (n, init): read_json(paths.finetuned(n, init) / "summary.json")
            for n in names
            for init in evaluate[n].get("inits", [])
            if (paths.finetuned(n, init) / "summary.json").is_file()
        }
        metrics = summary_metrics(pretrain, evaluate)
        write_json(paths.reports / "metrics.json", metrics)
        write_text(paths.reports / "report.md", markdown(metrics, prepare, pretrain, finetune, evaluate))
        figures(paths.reports / "figures", paths.pretrain, metrics)
        task_scores_csv(metrics, paths.reports / "plots" / "tasks.csv")
        write_runtime(paths, names, pretrain, finetune)
        for path in (paths.reports / n for n in ("report.md", "runtime.md", "metrics.json", "figures")):
            ctx.run.log_artifact(path, "figures" if path.is_dir() else None)
        log.info("report written to %s", paths.reports / "report.md")
        ctx.run.close_parent()
    return metrics
