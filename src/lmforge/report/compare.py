"""Comparison tables: one row per run (the params that differ between the runs, the metric), as
markdown and a bar chart — for a sweep's parent run and for `python -m lmforge.compare`."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.4g}"
    return "–" if v is None else str(v).replace("|", "\\|")


def differing(rows: list[dict]) -> list[str]:
    """The param keys whose values are not the same in every row (continuation parts left out)."""
    keys = sorted({k for r in rows for k in r["params"] if "/part-" not in k})
    return [k for k in keys if len({r["params"].get(k) for r in rows}) > 1]


def table(rows: list[dict], metric: str | None, title: str) -> str:
    """Markdown: one row per run, the differing params and the metric — or the comma-separated
    metrics, ranked by the first (best first when given)."""
    keys = differing(rows)
    metric_keys = metric.split(",") if metric else sorted({k for r in rows for k in r["metrics"]})[:6]
    if metric:
        first = metric_keys[0]
        rows = sorted(rows, key=lambda r: (r["metrics"].get(first) is None, r["metrics"].get(first, 0.0)))
    head = ["run", "status", *keys, *metric_keys]
    lines = [
        f"# {title}",
        "",
        f"{len(rows)} runs; params that differ: {', '.join(keys) or 'none'}",
        "",
        "| " + " | ".join(head) + " |",
        "|" + " --- |" * len(head),
    ]
    for r in rows:
        cells = [
            r["name"],
            r.get("status", ""),
            *(r["params"].get(k) for k in keys),
            *(r["metrics"].get(k) for k in metric_keys),
        ]
        lines.append("| " + " | ".join(_fmt(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def figure(rows: list[dict], metric: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [r for r in rows if isinstance(r["metrics"].get(metric), (int, float))]
    fig, ax = plt.subplots(figsize=(max(4, 0.9 * len(shown) + 2), 4))
    ax.bar(range(len(shown)), [r["metrics"][metric] for r in shown])
    ax.set_xticks(range(len(shown)), [r["name"][:28] for r in shown], rotation=30, ha="right", fontsize=8)
    ax.set(ylabel=metric, title=f"{metric} per run")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write(rows: list[dict], metric: str | None, out_dir: Path, title: str) -> str:
    out_dir.mkdir(parents=True, exist_ok=True)
    md = table(rows, metric, title)
    (out_dir / "compare.md").write_text(md)
    (out_dir / "compare.png").unlink(missing_ok=True)
    first = metric.split(",")[0] if metric else None
    if first and any(isinstance(r["metrics"].get(first), (int, float)) for r in rows):
        figure(rows, first, out_dir / "compare.png")
    return md
