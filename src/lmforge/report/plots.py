"""Plot data for `dvc plots show` / `dvc plots diff` (dvc.yaml `plots:` of the report stage)."""

from __future__ import annotations

from pathlib import Path

from lmforge.fileio import write_text

WHO = ("pretrained", "scratch", "baseline")


def task_scores_csv(metrics: dict, path: Path) -> None:
    """One row per task × (pretrained, scratch, baseline): the task's primary test score, for a
    bar chart comparing pretraining against training from scratch and the trivial baseline."""
    rows = ["model,task,init,metric,score"]
    for task, t in metrics["tasks"].items():
        for who in WHO:
            if who in t:
                rows.append(f"{task} / {who},{task},{who},{t['metric']},{t[who][t['metric']]:.6f}")
    write_text(path, "\n".join(rows) + "\n")


def timings_csv(rows: list[dict], path: Path) -> None:
    """stage,seconds — each stage's wall time, for a `dvc plots` bar chart (kept out of the metrics:
    it changes from one run to the next)."""
    write_text(path, "stage,seconds\n" + "".join(f"{r['stage']},{r['seconds']:.2f}\n" for r in rows))
