"""report: `reports/metrics.json` (for `dvc metrics show`), `reports/report.md`, figures.
Last stage of every pipeline: it also closes the pipeline's parent MLflow run."""

from __future__ import annotations

from omegaconf import DictConfig

from lmforge.errors import DataError
from lmforge.fileio import read_json, write_json, write_text
from lmforge.report.plots import task_scores_csv
from lmforge.report.report import figures, markdown, summary_metrics
from lmforge.stages.common import log, stage


def run(cfg: DictConfig) -> dict:
    with stage(cfg, "report") as run:
        p = run.paths
        prepare = read_json(p.prepare / "stats.json")
        pretrain = read_json(p.pretrain / "summary.json")
        evaluate = {f.stem: read_json(f) for f in sorted((p.reports / "metrics").glob("*.json"))}
        if not evaluate:
            raise DataError(f"no task metrics in {p.reports / 'metrics'}: run the evaluate stages first")
        finetune = {(f.parent.parent.name, f.parent.name): read_json(f)
                    for f in sorted(p.finetune.glob("*/*/summary.json"))}
        metrics = summary_metrics(pretrain, evaluate)
        write_json(p.reports / "metrics.json", metrics)
        write_text(p.reports / "report.md", markdown(metrics, prepare, pretrain, finetune, evaluate))
        figures(p.reports / "figures", p.pretrain, metrics)
        task_scores_csv(metrics, p.reports / "plots" / "tasks.csv")  # `dvc plots show`: bar chart
        for path in (p.reports / "report.md", p.reports / "metrics.json", p.reports / "figures"):
            run.log_artifact(path, "figures" if path.is_dir() else None)
        log.info("report written to %s", p.reports / "report.md")
        run.close_parent()
    return metrics
