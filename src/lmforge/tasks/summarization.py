"""Summarization: records `{"document": str, "summary": str}`, a prefix LM on a causal backbone
(`prefix_lm.py`). Metrics: ROUGE-L (primary), ROUGE-1/2 — F-measure with Porter stemming
(rouge_score), ×100. Baseline: the document's lead sentence. Built-in world task: `summarization`
(news stories and their one-sentence summaries).
"""

from __future__ import annotations

from lmforge.data.world import Made, WorldTask
from lmforge.data.world.entities import TOPICS
from lmforge.data.world.stories import story
from lmforge.data.world.text import render_sentences
from lmforge.errors import DataError
from lmforge.tasks import register
from lmforge.tasks.base import sentences
from lmforge.tasks.prefix_lm import PrefixLMFamily


def _summarization(rng, ctx, label, i) -> Made:
    sents, summary = story(rng, ctx.w, TOPICS[i % len(TOPICS)])
    doc = render_sentences(sents)
    return Made({"document": doc, "summary": summary.text}, doc, docs=(doc,))


def rouge_scores(predictions: list[str], references: list[str]) -> dict[str, float]:
    """Mean ROUGE-1/2/L F-measure (rouge_score, Porter stemming) ×100."""
    from rouge_score import rouge_scorer

    keys = ("rouge1", "rouge2", "rougeL")
    scorer = rouge_scorer.RougeScorer(list(keys), use_stemmer=True)
    totals = dict.fromkeys(keys, 0.0)
    for pred, ref in zip(predictions, references, strict=True):
        s = scorer.score(ref, pred)  # (target, prediction)
        for k in keys:
            totals[k] += s[k].fmeasure
    n = max(len(predictions), 1)
    return {k: 100.0 * v / n for k, v in totals.items()}


def lead(document: str) -> str:
    """The summarization baseline: the document's first sentence."""
    sents = sentences(document)
    return sents[0] if sents else ""


@register("summarization")
class Summarization(PrefixLMFamily):
    source, target = "document", "summary"
    fields = {"document": str, "summary": str}
    metrics = ("rougeL", "rouge1", "rouge2")
    world_tasks = {"summarization": WorldTask(_summarization)}
    description = {
        "model": "prefix LM: document <sep> summary <eos>, greedy or beam decoding",
        "metric": "ROUGE-L / ROUGE-1/2 with stemming (rouge_score)",
        "baseline": "the lead sentence",
    }
    serves = {"inputs": ["document"], "output": "summary"}

    def record(self, row, where):
        rec = super().record(row, where)
        if not all(isinstance(v, str) and v.strip() for v in rec.values()):
            raise DataError(f"{where}: empty document or summary")
        return rec

    def scores(self, predictions, records, head):
        return rouge_scores(predictions, [r["summary"] for r in records])

    def baseline(self, train, test, head, seed):
        return [lead(r["document"]) for r in test]
