"""Task metrics, computed by the libraries the field uses (no home-made re-implementations).

Scales: accuracy, macro-F1 and seqeval precision/recall/F1 are fractions (0–1); SQuAD exact match
/ F1, ROUGE, BLEU and chrF are percentages (0–100), as their libraries and papers report them.
Each task family states the scale of its metrics (`Family.scales`), for the report.
"""

from __future__ import annotations

import re

def iob1_to_iob2(tags: list[str]) -> list[str]:
    """IOB1 (I- starts an entity unless it follows the same type; B- only between two adjacent
    entities of one type, as in CoNLL-2003's files) → IOB2 (every entity starts with B-)."""
    out = []
    prev = "O"
    for tag in tags:
        if tag.startswith("I-"):
            kind = tag[2:]
            if prev == "O" or prev[2:] != kind:
                tag = "B-" + kind
        out.append(tag)
        prev = tag
    return out


def entity_scores(gold: list[list[str]], pred: list[list[str]]) -> dict[str, float]:
    """Entity-level micro precision/recall/F1 (seqeval, conlleval rules) over IOB2 tag sequences."""
    from seqeval.metrics import f1_score, precision_score, recall_score

    for i, (g, p) in enumerate(zip(gold, pred)):
        if len(g) != len(p):
            raise ValueError(f"sentence {i}: {len(g)} gold tags but {len(p)} predicted")
    kw = dict(zero_division=0)
    return {
        "f1": float(f1_score(gold, pred, **kw)),
        "precision": float(precision_score(gold, pred, **kw)),
        "recall": float(recall_score(gold, pred, **kw)),
    }


def squad_scores(predictions: list[str], answers: list[list[str]]) -> dict[str, float]:
    """SQuAD v1.1 exact match and token F1 (official normalisation, via torchmetrics), 0–100;
    each prediction is scored against the best of its gold answers."""
    from torchmetrics.functional.text import squad

    if not predictions:
        return {"exact_match": 0.0, "f1": 0.0}
    preds = [{"prediction_text": p, "id": str(i)} for i, p in enumerate(predictions)]
    target = [{"answers": {"text": list(a), "answer_start": [0] * len(a)}, "id": str(i)}
              for i, a in enumerate(answers)]
    out = squad(preds, target)
    return {"exact_match": float(out["exact_match"]), "f1": float(out["f1"])}


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


def translation_scores(predictions: list[str], references: list[str]) -> dict[str, float]:
    """Corpus BLEU (13a tokenisation) and chrF (sacrebleu), 0–100."""
    import sacrebleu

    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references")
    return {
        "bleu": float(sacrebleu.corpus_bleu(predictions, [references]).score),
        "chrf": float(sacrebleu.corpus_chrf(predictions, [references]).score),
    }


def sentence_chrf(prediction: str, reference: str) -> float:
    import sacrebleu

    return float(sacrebleu.sentence_chrf(prediction, [reference]).score)


_SENT = re.compile(r"(?<=[.!?])\s+")


def sentences(text: str) -> list[str]:
    """Split on whitespace after . ! or ? (enough for the built-in world and news text)."""
    return [s for s in _SENT.split(text.strip()) if s]
