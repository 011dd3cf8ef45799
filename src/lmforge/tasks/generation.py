"""Text generation as prefix language modelling on the causal backbone: summarization
(`{"document", "summary"}`) and translation (`{"source", "target"}`).

A training sequence is `source <sep> target <eos>` (source cut to `task.max_source_length`
tokens, target to `task.max_target_length`); the loss is next-token cross-entropy on the target
and `<eos>` only. Decoding feeds `source <sep>` and extends it greedily (`task.beam_size=1`) or by
beam search (scores divided by length**`task.length_penalty`), reusing each layer's keys and
values (the native Transformer's KV cache) and stopping at `<eos>` or `max_target_length` tokens.
Prompts of a batch are left-padded (masked, positions counted from the first real token). A
backbone without a cache (LSTM, Hugging Face wrapper) is decoded by re-running the whole
sequence, batching only prompts of equal length (no padding).

Metrics: summarization ROUGE-1/2/L (rouge_score, stemming, ×100; primary ROUGE-L); translation
BLEU and chrF (sacrebleu). Baselines: the lead sentence (summarization); word-by-word through the
built-in world's lexicon (`task.baseline=lexicon`) or the source copied (`copy`) for translation.
"""

from __future__ import annotations

import inspect
import re

import torch
import torch.nn.functional as F
from torch import nn

from lmforge.errors import ConfigError
from lmforge.tasks.base import IGNORE, Family
from lmforge.tasks.metrics import rouge_scores, sentence_chrf, sentences, translation_scores


class PrefixLM(nn.Module):
    """The backbone and its tied LM head: ids [B, T] → hidden [B, T, D]; `logits(hidden)`."""

    def __init__(self, backbone: nn.Module):
        super().__init__()
        self.backbone = backbone

    def forward(self, ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.backbone(ids, attention_mask)

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.backbone.lm_logits(hidden).float()

    @property
    def has_cache(self) -> bool:
        return "use_cache" in inspect.signature(self.backbone.forward).parameters


# ---------------------------------------------------------------------------------- decoding


class _Cached:
    """Incremental decoding with the backbone's KV cache over left-padded prompts."""

    def __init__(self, model: PrefixLM, prompts: list[list[int]], pad: int):
        width = max(len(p) for p in prompts)
        ids = torch.full((len(prompts), width), pad, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for i, p in enumerate(prompts):
            ids[i, width - len(p):] = torch.tensor(p)
            mask[i, width - len(p):] = 1
        self.model, self.mask = model, mask
        self.pos = (mask.cumsum(1) - 1).clamp_min(0)
        hidden, self.past = model.backbone(ids, attention_mask=mask, position_ids=self.pos, use_cache=True)
        self.pos = self.pos[:, -1:]
        self.first = model.logits(hidden[:, -1])

    def reorder(self, index: torch.Tensor) -> None:
        self.past = [(k[index], v[index]) for k, v in self.past]
        self.mask, self.pos = self.mask[index], self.pos[index]

    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        self.mask = torch.cat([self.mask, torch.ones_like(tokens[:, None])], 1)
        self.pos = self.pos + 1
        hidden, self.past = self.model.backbone(tokens[:, None], attention_mask=self.mask, position_ids=self.pos,
                                                past_key_values=self.past, use_cache=True)
        return self.model.logits(hidden[:, -1])


class _Recompute:
    """Decoding without a cache: the whole sequence again at each step (equal-length prompts)."""

    def __init__(self, model: PrefixLM, prompts: list[list[int]], pad: int):
        self.model = model
        self.ids = torch.tensor(prompts, dtype=torch.long)
        self.first = self._last()

    def _last(self) -> torch.Tensor:
        return self.model.logits(self.model.backbone(self.ids, torch.ones_like(self.ids))[:, -1])

    def reorder(self, index: torch.Tensor) -> None:
        self.ids = self.ids[index]

    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        self.ids = torch.cat([self.ids, tokens[:, None]], 1)
        return self._last()


@torch.no_grad()
def beam_search(state, n: int, max_new: int, eos: int, pad: int, beam_size: int = 1,
                length_penalty: float = 1.0) -> list[list[int]]:
    """Beam search (greedy for beam_size=1) over a decoding `state` of n prompts: returns each
    prompt's best continuation, without its <eos>. A finished beam keeps its score and is
    extended by padding; at the end scores are divided by length**length_penalty."""
    k = beam_size
    logp = F.log_softmax(state.first, -1)  # [n, V]
    vocab = logp.shape[-1]
    scores = torch.full((n, k), -float("inf"))
    scores[:, 0] = 0.0  # the k beams start identical: only the first may expand at step one
    if k > 1:
        state.reorder(torch.arange(n).repeat_interleave(k))
        logp = logp.repeat_interleave(k, 0)
    tokens = torch.empty((n * k, 0), dtype=torch.long)
    done = torch.zeros(n * k, dtype=torch.bool)
    lengths = torch.zeros(n * k)
    for step in range(max_new):
        if step:
            logp = F.log_softmax(state.step(tokens[:, -1]), -1)
        # a finished beam continues only with padding, at no cost
        logp[done] = -float("inf")
        logp[done, pad] = 0.0
        cand = (scores.reshape(-1, 1) + logp).reshape(n, k * vocab)
        scores, flat = cand.topk(k, dim=-1)
        origin = (torch.arange(n)[:, None] * k + flat // vocab).reshape(-1)
        new = (flat % vocab).reshape(-1)
        state.reorder(origin)
        tokens = torch.cat([tokens[origin], new[:, None]], 1)
        done, lengths = done[origin], lengths[origin]
        lengths = lengths + (~done).float()
        done = done | (new == eos)
        if bool(done.all()):
            break
    final = scores.reshape(-1) / lengths.clamp_min(1.0) ** length_penalty if k > 1 else scores.reshape(-1)
    best = final.reshape(n, k).argmax(-1)
    out = []
    for i in range(n):
        seq = tokens[i * k + int(best[i])].tolist()
        out.append(seq[: seq.index(eos)] if eos in seq else [t for t in seq if t != pad])
    return out


@torch.no_grad()
def generate(model: PrefixLM, prompts: list[list[int]], max_new: int, eos: int, pad: int,
             beam_size: int = 1, length_penalty: float = 1.0, batch_size: int = 32) -> list[list[int]]:
    """Continuations of token-id prompts (see `beam_search`), in prompt order."""
    model.eval()
    out: list[list[int] | None] = [None] * len(prompts)
    if model.has_cache:
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))  # similar lengths: less padding
        groups = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
        make = _Cached
    else:
        by_len: dict[int, list[int]] = {}
        for i, p in enumerate(prompts):
            by_len.setdefault(len(p), []).append(i)
        groups = [g[i : i + batch_size] for g in by_len.values() for i in range(0, len(g), batch_size)]
        make = _Recompute
    for group in groups:
        state = make(model, [prompts[i] for i in group], pad)
        for i, seq in zip(group, beam_search(state, len(group), max_new, eos, pad, beam_size, length_penalty)):
            out[i] = seq
    return out  # type: ignore[return-value]


# ---------------------------------------------------------------------------------- the family


class Generation(Family):
    """A source → target text task; `source`/`target` name the record fields."""

    kind = "prefix_lm"

    def __init__(self, name: str, source: str, target: str, metrics: tuple[str, ...]):
        self.name, self.source, self.target, self.metrics = name, source, target, metrics
        self.fields = {source: str, target: str}
        self.scales = dict.fromkeys(metrics, 100)

    def meta(self, splits, labels, backbone, task=None):
        if not getattr(backbone.cfg, "causal", True):
            raise ConfigError(f"task family {self.name!r} generates text and needs a causal backbone")
        return {"source_field": self.source, "target_field": self.target}

    def build(self, backbone, meta, dropout=0.0):
        return PrefixLM(backbone)

    def _prompt(self, tok, text: str, task, sep: int) -> list[int]:
        return tok.encode(text, add_special_tokens=False).ids[: task.max_source_length] + [sep]

    def features(self, records, tok, meta, task, train):
        ids = _special(tok)
        out = []
        for r in records:
            prompt = self._prompt(tok, r[self.source], task, ids["sep"])
            target = tok.encode(r[self.target], add_special_tokens=False).ids[: task.max_target_length] + [ids["eos"]]
            seq = prompt + target
            # position t predicts token t+1: the labels are the target tokens, from <sep> on
            labels = [IGNORE] * (len(prompt) - 1) + target + [IGNORE]
            out.append({"input_ids": seq, "attention_mask": [1] * len(seq), "labels": labels})
        return out

    def _target_logits(self, model, batch):
        hidden = model(batch["input_ids"], batch["attention_mask"])
        keep = batch["labels"] != IGNORE
        return model.logits(hidden[keep]), batch["labels"][keep]  # the LM head only where it counts

    def loss(self, model, batch):
        logits, y = self._target_logits(model, batch)
        return F.cross_entropy(logits, y)

    def val_step(self, model, batch):
        logits, y = self._target_logits(model, batch)
        return F.cross_entropy(logits, y), int((logits.argmax(-1) == y).sum()), len(y)

    @torch.no_grad()
    def predict(self, model, records, tok, meta, task):
        ids = _special(tok)
        prompts = [self._prompt(tok, r[self.source], task, ids["sep"]) for r in records]
        seqs = generate(model, prompts, task.max_target_length + 1, ids["eos"], ids["pad"],
                        task.beam_size, task.length_penalty, task.batch_size)
        return [tok.decode(s).strip() for s in seqs]

    def scores(self, predictions, records, meta):
        refs = [r[self.target] for r in records]
        if self.name == "summarization":
            return rouge_scores(predictions, refs)
        return translation_scores(predictions, refs)

    def baseline(self, train, test, meta, task, seed):
        if self.name == "summarization":
            return [lead(r[self.source]) for r in test]
        how = task.baseline or "copy"
        if how == "copy":
            return [r[self.source] for r in test]
        if how == "lexicon":
            return word_by_word([r[self.source] for r in test], seed)
        raise ConfigError(f"task.baseline={how!r} is not one of ['copy', 'lexicon'] for translation")

    def show(self, record, predictions):
        return {self.source: record[self.source], self.target: record[self.target], **predictions}

    def outcomes(self, records, predictions):
        """actual "reference" vs a bucket of the sentence-level chrF (0-20, 20-40, ...)."""
        out = []
        for r, p in zip(records, predictions):
            b = min(int(sentence_chrf(p, r[self.target]) // 20), 4)
            out.append(("reference", f"chrF {20 * b}-{20 * b + 20}"))
        return out


def lead(document: str) -> str:
    """The summarization baseline: the document's first sentence."""
    sents = sentences(document)
    return sents[0] if sents else ""


_TOKEN = re.compile(r"\w+(?:'\w+)?|[^\w\s]")


def word_by_word(sources: list[str], seed: int) -> list[str]:
    """The translation baseline of the built-in world: every English word replaced by its target
    word (nouns with the plural suffix when plural; verbs with the present suffix, or the past
    suffix for a past form), unknown words (names, auxiliaries) copied, English word order kept."""
    from lmforge.data.world import translation_lexicon
    from lmforge.data.world.text import render
    from lmforge.data.world.translation import NOUNS, VERBS

    lex = translation_lexicon(seed)
    forms = dict(lex.words)
    forms["an"] = lex.words["a"]
    for sg, pl in NOUNS.items():
        forms[pl] = lex.words[sg] + lex.suffix["plural"]
    for base, (third, past) in VERBS.items():
        forms[base] = forms[third] = lex.words[base] + lex.suffix["present"]
        forms[past] = lex.words[base] + lex.suffix["past"]
    out = []
    for src in sources:
        toks = [forms.get(t.lower(), t) for t in _TOKEN.findall(src)]
        if toks:
            toks[0] = toks[0][:1].upper() + toks[0][1:]
        out.append(render(toks)[0])
    return out


def _special(tok) -> dict[str, int]:
    from lmforge.data.tokenizer import special_ids

    ids = special_ids(tok)
    ids.setdefault("sep", ids["eos"])
    return ids
