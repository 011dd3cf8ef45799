"""report: `reports/metrics.json` (results only, for `dvc metrics`), `reports/report.md`, figures,
and plot data (`dvc plots`: every task's score, every stage's wall time). It reports the tasks of
this pipeline (`cfg.task`), nothing left over from earlier runs. Last stage of every pipeline: it
also closes the pipeline's parent MLflow run."""

from __future__ import annotations

from omegaconf import DictConfig

from lmforge.errors import DataError
from lmforge.fileio import read_json, write_json, write_text
from lmforge.report.plots import task_scores_csv, timings_csv
from lmforge.report.report import figures, markdown, summary_metrics, timings
from lmforge.stages.common import log, stage

PARAMS = ("task",)


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
        timings_csv(timings(prepare, pretrain, finetune, evaluate), paths.reports / "plots" / "timings.csv")
        for path in (paths.reports / "report.md", paths.reports / "metrics.json", paths.reports / "figures"):
            ctx.run.log_artifact(path, "figures" if path.is_dir() else None)
        log.info("report written to %s", paths.reports / "report.md")
        ctx.run.close_parent()
    return metrics
