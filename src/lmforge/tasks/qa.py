"""Extractive question answering in the SQuAD v1.1 shape: records `{"id", "context", "question",
"answers": {"text": [str], "answer_start": [int]}}`.

Input: `question <sep> context-window`. A context longer than the room left by the question is
cut into windows overlapping by `task.doc_stride` tokens; a window without the whole answer is
labelled with the `<sep>` position ("not here"). The head scores every position as the answer's
start and end; prediction takes the `task.n_best` best starts and ends of each window, keeps the
pairs with start <= end and at most `task.max_answer_length` tokens, and answers the context
characters (tokenizer offsets) of the best-scoring pair over all windows.

Metric: SQuAD exact match and F1 (official normalisation, torchmetrics), 0–100. Baseline: the
context sentence sharing most words with the question, and in it the longest run of words that
are neither question words nor function words. Built-in world task: `qa` (fact paragraphs with
distractors; the answer offsets come from the facts the generator states).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from lmforge.data.world import Made, WorldTask
from lmforge.data.world.facts import qa_record
from lmforge.errors import ConfigError, DataError
from lmforge.models.heads import linear_head
from lmforge.schema import setting
from lmforge.tasks import register
from lmforge.tasks.base import Family, TaskConfig, Validation, loader, sentences

STOPWORDS = frozenset(
    "a an the of in on at to by for from with and or is was are were be been it its it's as that this "
    "what which who whom whose when where why how does do did has have had he she they his her their "
    "there into about".split()
)
_WORD = re.compile(r"\w+(?:'\w+)?")


@dataclass
class QAConfig(TaskConfig):
    doc_stride: int = setting(48, gt=0)  # overlap of consecutive context windows (tokens); below max_length / 2
    max_answer_length: int = setting(30, gt=0, eval_only=True)  # tokens
    n_best: int = setting(20, gt=0, eval_only=True)  # start and end candidates per window

    def check(self, key: str) -> None:
        if self.doc_stride >= self.max_length // 2:
            raise ConfigError(
                f"{key}.doc_stride={self.doc_stride} must be below half of {key}.max_length={self.max_length}"
            )


def _qa(rng, ctx, label, i) -> Made:
    rec = qa_record(rng, ctx.w)
    return Made(rec, rec["context"], docs=(rec["context"],))


def squad_scores(predictions: list[str], answers: list[list[str]]) -> dict[str, float]:
    """SQuAD v1.1 exact match and token F1 (official normalisation, via torchmetrics), 0–100;
    each prediction is scored against the best of its gold answers."""
    from torchmetrics.functional.text import squad

    if not predictions:
        return {"exact_match": 0.0, "f1": 0.0}
    preds = [{"prediction_text": p, "id": str(i)} for i, p in enumerate(predictions)]
    target = [{"answers": {"text": list(a), "answer_start": [0] * len(a)}, "id": str(i)} for i, a in enumerate(answers)]
    out = squad(preds, target)
    return {"exact_match": float(out["exact_match"]), "f1": float(out["f1"])}


class SpanExtractor(nn.Module):
    """Backbone → dropout → linear(2): ids [B, T] → (start logits [B, T], end logits [B, T])."""

    def __init__(self, backbone: nn.Module, dropout: float = 0.1):
        super().__init__()
        self.backbone = backbone
        self.drop = nn.Dropout(dropout)
        self.head = linear_head(backbone.cfg.d_model, 2)

    def forward(self, ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.head(self.drop(self.backbone(ids, attention_mask))).float()
        return logits[..., 0], logits[..., 1]


def windows(n_context: int, room: int, doc_stride: int) -> list[tuple[int, int]]:
    """[start, end) token ranges of length <= room covering n_context tokens, overlapping by
    doc_stride tokens (the last window ends at the end)."""
    if n_context <= room:
        return [(0, n_context)]
    step = max(room - doc_stride, 1)
    out, s = [], 0
    while True:
        out.append((s, min(s + room, n_context)))
        if s + room >= n_context:
            return out
        s += step


def best_spans(start: torch.Tensor, end: torch.Tensor, max_length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The highest-scoring (start, end) of each row of start/end logits [B, T] with start <= end <
    start + max_length: two tensors [B]."""
    t = start.shape[-1]
    i = torch.arange(t, device=start.device)
    allowed = (i[None, :] >= i[:, None]) & (i[None, :] < i[:, None] + max_length)  # [start, end]
    scores = (start[:, :, None] + end[:, None, :]).masked_fill(~allowed, -float("inf"))
    flat = scores.flatten(1).argmax(-1)
    return flat // t, flat % t


def answer_tokens(offsets: list[tuple[int, int]], start_char: int, end_char: int) -> tuple[int, int] | None:
    """First and last context token overlapping the answer's characters [start_char, end_char)."""
    hit = [i for i, (s, e) in enumerate(offsets) if e > start_char and s < end_char]
    return (hit[0], hit[-1]) if hit else None


@register("qa")
class QA(Family):
    config_class = QAConfig
    fields = {"context": str, "question": str, "answers": dict}
    metrics = ("f1", "exact_match")
    scale = 100
    val_metric = "span_f1"
    world_tasks = {"qa": WorldTask(_qa, id_prefix="qa")}
    description = {
        "model": "start/end logits over question <sep> context windows (doc_stride), n-best spans",
        "metric": "SQuAD F1 / exact match (torchmetrics)",
        "baseline": "the sentence with most question-word overlap, the best span in it",
    }
    serves = {"inputs": ["question", "context"], "output": "answer"}

    def record(self, row, where):
        answers = row.get(self.config.data.columns.get("answers", "answers"))
        if isinstance(answers, list):  # SQuAD's own [{"text", "answer_start"}]
            if not answers or not all(isinstance(a, dict) for a in answers):
                raise DataError(f"{where}: 'answers' must be a non-empty list of {{text, answer_start}}")
            answers = {
                "text": [a.get("text") for a in answers],
                "answer_start": [a.get("answer_start") for a in answers],
            }
        rec = super().record({**row, self.config.data.columns.get("answers", "answers"): answers}, where)
        a = rec["answers"]
        if (
            not isinstance(a, dict)
            or not isinstance(a.get("text"), list)
            or not isinstance(a.get("answer_start"), list)
        ):
            raise DataError(f"{where}: 'answers' needs lists 'text' and 'answer_start'")
        try:
            starts = [int(x) for x in a["answer_start"]]
        except (TypeError, ValueError):
            raise DataError(f"{where}: 'answer_start' must hold character offsets (integers)") from None
        return {
            "id": str(row.get(self.config.data.columns.get("id", "id"), where)),
            "context": rec["context"],
            "question": rec["question"],
            "answers": {"text": [str(t) for t in a["text"]], "answer_start": starts},
        }

    def check_record(self, record, where):
        super().check_record(record, where)
        a = record["answers"]
        texts, starts = a.get("text"), a.get("answer_start")
        if not isinstance(texts, list) or not isinstance(starts, list) or len(texts) != len(starts) or not texts:
            raise DataError(f"{where}: answers needs equal-length, non-empty lists 'text' and 'answer_start'")
        for t, st in zip(texts, starts):
            if not isinstance(st, int) or record["context"][st : st + len(t)] != t:
                at = record["context"].find(t)
                raise DataError(
                    f"{where}: answer {t!r} is not at character {st} of the context (answer_start must be "
                    "the answer's character offset" + (f"; it occurs at {at}" if at >= 0 else "") + ")"
                )

    def document(self, record):
        return record["context"]

    def build(self, backbone, head):
        return SpanExtractor(backbone, self.config.dropout)

    def _windows(self, record, tok, sep, with_labels: bool):
        """[(feature, context offsets of the window's tokens, position of its first context token)]."""
        cfg = self.config
        q = tok.encode(record["question"], add_special_tokens=False).ids[: max(cfg.max_length // 3, 1)]
        enc = tok.encode(record["context"], add_special_tokens=False)
        room = cfg.max_length - len(q) - 1
        if room < 1:
            raise ConfigError(f"task.{self.task}.max_length={cfg.max_length} leaves no room for the context")
        span = None
        if with_labels:
            a = record["answers"]
            start = a["answer_start"][0]
            span = answer_tokens(enc.offsets, start, start + len(a["text"][0]))
        out = []
        for s, e in windows(len(enc.ids), room, min(cfg.doc_stride, room - 1)):
            ids = q + [sep] + enc.ids[s:e]
            first = len(q) + 1
            feat = {
                "input_ids": ids,
                "attention_mask": [1] * len(ids),
                "context_mask": [0] * len(q) + [1] * (len(ids) - len(q)),
            }  # <sep> = "not here"
            if with_labels:
                if span is not None and s <= span[0] and span[1] < e:
                    feat["start"], feat["end"] = first + span[0] - s, first + span[1] - s
                else:
                    feat["start"] = feat["end"] = len(q)
            out.append((feat, enc.offsets[s:e], first))
        return out

    def features(self, records, tok, head, train):
        from lmforge.data.tokenizer import special_ids

        sep = special_ids(tok)["sep"]
        return [f for r in records for f, _, _ in self._windows(r, tok, sep, True)]

    def _logits(self, model, batch):
        start, end = model(batch["input_ids"], batch["attention_mask"])
        keep = batch["context_mask"].bool()
        return start.masked_fill(~keep, -1e4), end.masked_fill(~keep, -1e4)

    def loss(self, model, batch):
        start, end = self._logits(model, batch)
        return (F.cross_entropy(start, batch["start"]) + F.cross_entropy(end, batch["end"])) / 2

    def val_step(self, model, batch, head):
        """Each window's span F1: the best span as prediction chooses it (start <= end, at most
        `max_answer_length` tokens), its tokens against the answer's — SQuAD's F1 counted in tokens
        (1 for a window that rightly answers "not here", 0 for one that answers it wrongly)."""
        start, end = self._logits(model, batch)
        loss = (F.cross_entropy(start, batch["start"]) + F.cross_entropy(end, batch["end"])) / 2
        s, e = best_spans(start, end, self.config.max_answer_length)
        gs, ge = batch["start"], batch["end"]
        overlap = (torch.minimum(e, ge) - torch.maximum(s, gs) + 1).clamp(min=0).float()
        f1 = 2 * overlap / ((e - s + 1) + (ge - gs + 1)).float()
        return Validation(loss, len(f1), float(f1.sum()), len(f1))

    @torch.no_grad()
    def predict(self, model, records, tok, head):
        from lmforge.data.tokenizer import special_ids

        cfg = self.config
        model.eval()
        ids = special_ids(tok)
        owners, infos, feats = [], [], []
        for i, r in enumerate(records):
            for feat, offsets, first in self._windows(r, tok, ids["sep"], False):
                owners.append(i)
                infos.append((offsets, first))
                feats.append(feat)
        best: list[tuple[float, str]] = [(-float("inf"), "")] * len(records)
        k = 0
        for batch in loader(feats, cfg.batch_size, ids["pad"], shuffle=False):
            start, end = self._logits(model, batch)
            for b in range(start.shape[0]):
                i, (offsets, first) = owners[k], infos[k]
                k += 1
                n = len(offsets)
                s_log, e_log = start[b, first : first + n], end[b, first : first + n]
                top_s = s_log.topk(min(cfg.n_best, n)).indices.tolist()
                top_e = e_log.topk(min(cfg.n_best, n)).indices.tolist()
                for s in top_s:
                    for e in top_e:
                        if s <= e < s + cfg.max_answer_length:
                            score = float(s_log[s] + e_log[e])
                            if score > best[i][0]:
                                text = records[i]["context"][offsets[s][0] : offsets[e][1]].strip()
                                best[i] = (score, text)
        return [text for _, text in best]

    def scores(self, predictions, records, head):
        return squad_scores(predictions, [r["answers"]["text"] for r in records])

    def baseline(self, train, test, head, seed):
        return [overlap_answer(r["question"], r["context"]) for r in test]

    def show(self, record, predictions):
        return {
            "question": record["question"],
            "context": record["context"],
            "answers": record["answers"]["text"],
            **predictions,
        }

    def outcomes(self, records, predictions):
        """actual "answer" vs predicted exact / partial (shares a word) / wrong."""
        out = []
        for r, p in zip(records, predictions):
            golds = r["answers"]["text"]
            pw = set(_norm_words(p))
            kind = (
                "exact"
                if any(_norm_words(g) == _norm_words(p) for g in golds)
                else "partial"
                if any(pw & set(_norm_words(g)) for g in golds)
                else "wrong"
            )
            out.append(("answer", kind))
        return out

    def serve_records(self, columns):
        return [{"question": str(q), "context": str(c)} for q, c in zip(columns["question"], columns["context"])]


def _norm_words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text) if w.lower() not in ("a", "an", "the")]


def overlap_answer(question: str, context: str) -> str:
    """The QA baseline: the sentence with most question-word overlap, then the longest run of its
    words that are neither in the question nor function words (the first on ties)."""
    qwords = {w.lower() for w in _WORD.findall(question)} - STOPWORDS
    best_sent, best_overlap = None, -1
    for sent in sentences(context):
        overlap = len({w.lower() for w in _WORD.findall(sent)} & qwords)
        if overlap > best_overlap:
            best_sent, best_overlap = sent, overlap
    if best_sent is None:
        return ""
    runs: list[list[re.Match]] = [[]]
    for m in _WORD.finditer(best_sent):
        w = m.group().lower()
        if w in qwords or w in STOPWORDS:
            runs.append([])
            continue
        if runs[-1] and best_sent[runs[-1][-1].end() : m.start()].strip():  # punctuation ends a run
            runs.append([])
        runs[-1].append(m)
    run = max(runs, key=len)
    return best_sent[run[0].start() : run[-1].end()] if run else ""
