"""Error bars: the same pipeline run with several seeds — of the fine-tunes alone on one pretrained
model (`make seeds`: `dvc exp run --temp -S finetune_seed=<n>` for n = 1, 2, 3) or of the whole
pipeline (`-S seed=<n>`) — aggregated per task and system as mean ± standard deviation, with each
pretrained-vs-scratch difference marked when it is larger than the spread (the two standard
deviations added: a difference the seeds alone would rarely make).

Rows are experiments as `python -m lmforge.compare` reads them (flat params and metrics of
reports/metrics.json); experiments whose params differ in anything but `seed`, `finetune_seed`
(and `conf_digest`) are kept apart, so one call can hold several configurations.
"""

from __future__ import annotations

import math
from collections import defaultdict

SYSTEMS = ("pretrained", "scratch", "baseline")
IGNORED = ("seed", "finetune_seed", "conf_digest")


def _finetune_seed(row: dict) -> str | None:
    value = row["params"].get("finetune_seed")
    return None if value in (None, "null", "None") else str(value)


def _stats(values: list[float]) -> tuple[float, float]:
    mean = sum(values) / len(values)
    var = sum((v - mean) ** 2 for v in values) / (len(values) - 1) if len(values) > 1 else 0.0
    return mean, math.sqrt(var)


def aggregate(rows: list[dict]) -> list[dict]:
    """[{config: {param: value}, seeds: [...], tasks: {task: {metric, system: (mean, std, n), clear: bool}}}]
    — one entry per configuration (params equal but for the seed)."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        if "seed" not in r["params"] or not any(k.startswith("tasks.") for k in r["metrics"]):
            continue
        key = tuple(sorted((k, v) for k, v in r["params"].items() if k.split(".")[0] not in IGNORED))
        groups[key].append(r)
    out = []
    for key, members in groups.items():
        tasks: dict[str, dict] = {}
        names = sorted({k.split(".")[1] for r in members for k in r["metrics"] if k.startswith("tasks.")})
        for task in names:
            metric = _metric_name(members, task)
            if metric is None:
                continue
            entry: dict = {"metric": metric}
            for who in SYSTEMS:
                values = [
                    r["metrics"][f"tasks.{task}.{who}.{metric}"]
                    for r in members
                    if f"tasks.{task}.{who}.{metric}" in r["metrics"]
                ]
                if values:
                    entry[who] = (*_stats(values), len(values))
            if "pretrained" in entry and "scratch" in entry:
                (mp, sp, n), (ms, ss, _) = entry["pretrained"], entry["scratch"]
                entry["clear"] = n > 1 and abs(mp - ms) > sp + ss
            tasks[task] = entry
        out.append(
            {
                "config": dict(key),
                "seeds": sorted(_finetune_seed(r) or r["params"]["seed"] for r in members),
                "finetune_only": all(_finetune_seed(r) for r in members),
                "pretrain_seeds": sorted({r["params"]["seed"] for r in members}),
                "tasks": tasks,
            }
        )
    return out


def _metric_name(rows: list[dict], task: str) -> str | None:
    """The task's primary metric (reports/metrics.json: `tasks.<task>.metric`)."""
    return next((r["metrics"][f"tasks.{task}.metric"] for r in rows if f"tasks.{task}.metric" in r["metrics"]), None)


def markdown(groups: list[dict]) -> str:
    lines = [
        "# Scores over seeds",
        "",
        "Mean ± standard deviation of each task's primary test score over the seeds of each configuration; "
        "**clear** marks a pretrained-vs-scratch difference larger than the two standard deviations added.",
        "",
    ]
    for g in groups:
        differing = ", ".join(
            f"{k}={v}"
            for k, v in sorted(g["config"].items())
            if k.startswith(("model.name", "objective")) or (k.endswith(".method") and v != "full")
        )
        lines += [
            (
                f"## fine-tune seeds {', '.join(map(str, g['seeds']))} (pretraining seed "
                f"{', '.join(map(str, g['pretrain_seeds']))})"
                if g.get("finetune_only")
                else f"## seeds {', '.join(map(str, g['seeds']))}"
            )
            + (f" ({differing})" if differing else ""),
            "",
            "| task | metric | pretrained | scratch | baseline | pretrained − scratch |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        one = len(g["seeds"]) == 1  # no spread: a difference cannot be judged
        for task, t in sorted(g["tasks"].items()):
            cells = [("–" if w not in t else f"{t[w][0]:.3f}" + ("" if one else f" ± {t[w][1]:.3f}")) for w in SYSTEMS]
            diff = ""
            if "pretrained" in t and "scratch" in t:
                verdict = " (one seed)" if one else " **clear**" if t.get("clear") else " within the spread"
                diff = f"{t['pretrained'][0] - t['scratch'][0]:+.3f}{verdict}"
            lines.append(f"| {task} | {t['metric']} | " + " | ".join(cells) + f" | {diff} |")
        if one:
            lines += [
                "",
                "One seed has no spread: whether a difference is more than noise cannot be judged. Run more "
                "seeds of this configuration (`dvc exp run --temp -S seed=<n>`, once per seed).",
            ]
        lines.append("")
    return "\n".join(lines)
