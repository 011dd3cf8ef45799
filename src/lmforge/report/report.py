"""The pipeline report: summary metrics (for `dvc metrics show`), markdown and figures."""

from __future__ import annotations

import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

INIT_ORDER = ("pretrained", "scratch", "baseline")


def summary_metrics(pretrain: dict, tasks: dict[str, dict]) -> dict:
    """`reports/metrics.json` — results only, the same after an unchanged re-run: {"pretrain":
    {val_loss, val_ppl, steps, n_params}, "tasks": {task: {"metric", "scale", "pretrained", ...}}}.
    `scale` is the primary metric's maximum: 1 (accuracy, F1) or 100 (SQuAD, ROUGE, BLEU)."""
    keep = ("val_loss", "val_ppl", "steps", "n_params")
    return {
        "pretrain": {k: pretrain[k] for k in keep if k in pretrain},
        "tasks": {
            name: {"metric": m["metric"], "scale": m.get("scale", 1), **{who: m[who] for who in INIT_ORDER if who in m}}
            for name, m in sorted(tasks.items())
        },
    }


def timings(runtime: dict[str, dict]) -> list[dict]:
    """Each stage's wall time (and pretraining's throughput), from `reports/runtime/`: machine-
    dependent, kept apart from the results (`reports/runtime.md`; `reports/plots/timings.csv`, a
    `dvc plots` bar chart). `runtime`: stage label → what that run recorded."""
    return [
        {"stage": label, "seconds": r["wall_s"], "tokens_per_s": r.get("tokens_per_s")} for label, r in runtime.items()
    ]


def _fmt(x: float) -> str:
    return f"{x:.3f}" if isinstance(x, float) else str(x)


def _scale(t: dict) -> str:
    return "0–100" if t.get("scale", 1) == 100 else "0–1"


def _backbone(pretrain: dict) -> str:
    """E.g. "**lstm** backbone", "**hf** backbone (continued from `pkg:…`)"."""
    text = f"**{pretrain.get('arch', 'transformer')}** backbone"
    if pretrain.get("pretrained_from"):
        text += f" (continued from `{pretrain['pretrained_from']}`)"
    return text


def cost_table(finetune: dict[tuple[str, str], dict], measured: dict[tuple[str, str], dict] | None = None) -> list[str]:
    """Markdown rows: each fine-tune's method, trainable share and saved size; with `measured` (its
    runtime record) also its peak memory and wall time."""
    head = ["task", "init", "method", "trainable parameters", "saved (MB)"]
    if measured is not None:
        head += ["peak memory (MB)", "seconds"]
    rows = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for (task, init), s in sorted(finetune.items()):
        trainable, total = s.get("trainable_params"), s.get("total_params")
        share = f"{trainable:,} of {total:,} ({100 * trainable / total:.2f} %)" if trainable and total else "–"
        cells = [task, init, s.get("method", "full"), share, s.get("saved_mb", "–")]
        if measured is not None:
            r = measured.get((task, init), {})
            cells += [r.get("peak_memory_mb") or "–", f"{r['wall_s']:.1f}" if "wall_s" in r else "–"]
        rows.append("| " + " | ".join(map(str, cells)) + " |")
    return rows


def markdown(
    metrics: dict, prepare: dict, pretrain: dict, finetune: dict[tuple[str, str], dict], evaluate: dict[str, dict]
) -> str:
    lm = metrics["pretrain"]
    lines = [
        "# lmforge report",
        "",
        "## Pretraining",
        "",
        f"- corpus: {prepare['docs']['train']} train / {prepare['docs']['val']} validation documents, "
        f"{prepare['tokens']['train']:,} / {prepare['tokens']['val']:,} tokens, vocabulary {prepare['vocab_size']}",
        f"- model: {_backbone(pretrain)}, objective **{pretrain.get('objective', 'clm')}**, "
        f"{lm.get('n_params', 0):,} parameters, {lm.get('steps')} steps; every task below fine-tunes this "
        f"backbone (`pretrained`) or the same architecture freshly initialised (`scratch`)",
        f"- validation loss **{lm['val_loss']:.3f}**, perplexity **{lm['val_ppl']:.1f}**",
        f"- {pretrain.get('device', '?')}, {pretrain.get('precision', '?')}; throughput, memory and wall time "
        "of each stage: `runtime.md` (what this machine measured; not tracked by DVC)",
        "",
        "## Tasks (test split)",
        "",
        "| task | metric | scale | pretrained | scratch | baseline |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, scores in metrics["tasks"].items():
        key = scores["metric"]
        cells = [_fmt(scores[who][key]) if who in scores else "–" for who in INIT_ORDER]
        lines.append(f"| {name} | {key} | {_scale(scores)} | " + " | ".join(cells) + " |")
    lines += ["", "| task | family | model | metric | baseline |", "| --- | --- | --- | --- | --- |"]
    for name, result in sorted(evaluate.items()):
        said = result.get("description", {})
        lines.append(
            f"| {name} | {result.get('family', '')} | {said.get('model', '')} | {said.get('metric', '')} "
            f"| {said.get('baseline', '')} |"
        )
    lines += [
        "",
        "## Fine-tuning methods",
        "",
        "What each fine-tune trained (`task.<t>.method`: full, lora or frozen) and saved (its peak memory "
        "and time: `runtime.md`):",
        "",
        *cost_table(finetune),
    ]
    lines += ["", "Secondary metrics:", ""]
    for name, scores in metrics["tasks"].items():
        for who in INIT_ORDER:
            if who in scores:
                lines.append(f"- {name} / {who}: " + ", ".join(f"{k} {_fmt(v)}" for k, v in scores[who].items()))
    n = next((c["n"] for e in evaluate.values() for c in e.get("contamination", {}).values()), 13)
    lines += [
        "",
        "## Contamination",
        "",
        f"Share of validation/test documents with any {n}-gram in the pretraining corpus, and share of their "
        "n-grams found there (no built-in evaluation document is itself in the corpus; template phrases "
        "account for shared n-grams):",
        "",
        "| split | documents | with overlap | fraction of documents | fraction of n-grams |",
        "| --- | --- | --- | --- | --- |",
    ]
    for task, e in sorted(evaluate.items()):
        for split, c in e.get("contamination", {}).items():
            lines.append(
                f"| {task}/{split} | {c['docs']} | {c['docs_with_overlap']} | {c['fraction_docs']:.4f} "
                f"| {c['fraction_ngrams']:.4f} |"
            )
    lines += ["", "Figures: `figures/pretrain_loss.png`, `figures/tasks.png`.", ""]
    return "\n".join(lines)


def runtime_markdown(pretrain: dict, finetune: dict[tuple[str, str], dict], runtime: dict[str, dict]) -> str:
    """`reports/runtime.md`: what the last run of each stage measured on this machine — kept out of
    DVC's outs (a stage restored from DVC's cache shows the record of its last run here, if any). `runtime`: stage
    label (`finetune@<task> (<init>)`, …) → its runtime record."""
    pre = runtime.get("pretrain", {})
    measured = {(t, i): runtime.get(f"finetune@{t} ({i})", {}) for t, i in finetune}
    lines = [
        "# lmforge runtime",
        "",
        "What the last run of each stage measured on this machine (`reports/runtime/`); machine-dependent, "
        "so not tracked by DVC. The results: `report.md`.",
        "",
        f"- pretraining throughput {pre.get('tokens_per_s', 0):,.0f} tokens/s, MFU {100 * pre.get('mfu', 0):.1f}% "
        f"(against a matmul peak of {pre.get('peak_flops', 0) / 1e9:.0f} GFLOP/s measured at start, "
        f"{pretrain.get('device', '?')}, {pretrain.get('precision', '?')}, {pre.get('threads', '?')} threads)",
        "",
        "## Fine-tuning cost",
        "",
        *cost_table(finetune, measured),
        "",
        "## Wall time",
        "",
        "| stage | seconds | tokens/s |",
        "| --- | --- | --- |",
    ]
    for row in timings(runtime):
        tps = f"{row['tokens_per_s']:,.0f}" if row.get("tokens_per_s") else ""
        lines.append(f"| {row['stage']} | {row['seconds']:.1f} | {tps} |")
    return "\n".join(lines) + "\n"


def _read_curve(path: Path) -> tuple[list[float], list[float]]:
    if not path.is_file():
        return [], []
    with open(path) as f:
        rows = list(csv.reader(f))[1:]
    return [float(r[0]) for r in rows], [float(r[1]) for r in rows]


def figures(out: Path, pretrain_dir: Path, metrics: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6, 4))
    for name in ("train", "val"):
        x, y = _read_curve(pretrain_dir / "curves" / f"{name}.csv")
        ax.plot(x, y, label=name, marker="o" if name == "val" else None)
    ax.set(xlabel="step", ylabel="loss", title="Pretraining loss")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "pretrain_loss.png", dpi=100)
    plt.close(fig)

    tasks = metrics["tasks"]
    fig, ax = plt.subplots(figsize=(max(4, 1.8 * len(tasks)), 4))
    width = 0.8 / len(INIT_ORDER)
    for i, who in enumerate(INIT_ORDER):  # every metric as a fraction of its maximum
        values = [t[who][t["metric"]] / t.get("scale", 1) if who in t else 0.0 for t in tasks.values()]
        ax.bar([j + i * width for j in range(len(tasks))], values, width, label=who)
    ax.set_xticks(
        [j + width for j in range(len(tasks))],
        [f"{n}\n({t['metric']}{' /100' if t.get('scale', 1) == 100 else ''})" for n, t in tasks.items()],
    )
    ax.set(ylabel="test score (fraction of the maximum)", title="Pretrained vs scratch vs baseline", ylim=(0, 1.05))
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "tasks.png", dpi=100)
    plt.close(fig)
