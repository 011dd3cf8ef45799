"""Text generation as prefix language modelling on a causal backbone: the base of the
summarization and translation families (a source field → a target field).

A training sequence is `source <sep> target <eos>` (source cut to `max_source_length` tokens,
target to `max_target_length`); the loss is next-token cross-entropy on the target and `<eos>`
only. Decoding feeds `source <sep>` and extends it greedily (`beam_size: 1`) or by beam search
(scores divided by length**`length_penalty`), stopping at `<eos>` or `max_target_length` tokens,
the way the backbone says it can (`Capabilities.generation`): the native Transformer with lmforge's
beam search over its KV cache (prompts left-padded, positions counted from the first real token),
a Hugging Face decoder with transformers' `generate`, the LSTM by re-running the whole sequence
(batching only prompts of equal length).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from lmforge.errors import ConfigError
from lmforge.models.heads import IGNORE_INDEX
from lmforge.schema import setting
from lmforge.tasks.base import Family, TaskConfig, Validation


@dataclass
class PrefixLMConfig(TaskConfig):
    max_source_length: int = setting(96, gt=0)  # tokens
    max_target_length: int = setting(32, gt=0)  # tokens (also the decoding limit)
    beam_size: int = setting(1, gt=0, eval_only=True)  # 1: greedy decoding
    length_penalty: float = setting(1.0, eval_only=True)  # beam search: score / length**length_penalty


# ---------------------------------------------------------------------------------- decoding


class PrefixLM(nn.Module):
    """The backbone and its tied LM head: ids [B, T] → hidden [B, T, D]; `logits(hidden)`."""

    def __init__(self, backbone: nn.Module):
        super().__init__()
        self.backbone = backbone

    def forward(self, ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.backbone(ids, attention_mask)

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.backbone.lm_logits(hidden).float()


# ---------------------------------------------------------------------------------- decoding


class _Cached:
    """Incremental decoding with the backbone's KV cache over left-padded prompts."""

    def __init__(self, model: PrefixLM, prompts: list[list[int]], pad: int):
        width = max(len(p) for p in prompts)
        ids = torch.full((len(prompts), width), pad, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for i, p in enumerate(prompts):
            ids[i, width - len(p) :] = torch.tensor(p)
            mask[i, width - len(p) :] = 1
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
        hidden, self.past = self.model.backbone(
            tokens[:, None], attention_mask=self.mask, position_ids=self.pos, past_key_values=self.past, use_cache=True
        )
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
def beam_search(
    state, n: int, max_new: int, eos: int, pad: int, beam_size: int = 1, length_penalty: float = 1.0
) -> list[list[int]]:
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
        out.append(seq[: seq.index(eos)] if eos in seq else seq)  # no eos: unfinished, every token real
    return out


@torch.no_grad()
def generate(
    model: PrefixLM,
    prompts: list[list[int]],
    max_new: int,
    eos: int,
    pad: int,
    beam_size: int = 1,
    length_penalty: float = 1.0,
    batch_size: int = 32,
) -> list[list[int]]:
    """Continuations of token-id prompts, in prompt order, decoded the way the backbone says it
    can (`Capabilities.generation`): lmforge's beam search over its KV cache, transformers'
    `generate`, or recomputing the whole sequence per token."""
    model.eval()
    how = type(model.backbone).capabilities(model.backbone.cfg).generation
    out: list[list[int] | None] = [None] * len(prompts)
    if how == "transformers":
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
        for k in range(0, len(order), batch_size):
            group = order[k : k + batch_size]
            for i, seq in zip(
                group,
                model.backbone.generate([prompts[i] for i in group], max_new, eos, pad, beam_size, length_penalty),
            ):
                out[i] = seq
        return out  # type: ignore[return-value]
    if how == "kv_cache":
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))  # similar lengths: less padding
        groups = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
        make = _Cached
    elif how == "recompute":
        by_len: dict[int, list[int]] = {}
        for i, p in enumerate(prompts):
            by_len.setdefault(len(p), []).append(i)
        groups = [g[i : i + batch_size] for g in by_len.values() for i in range(0, len(g), batch_size)]
        make = _Recompute
    else:
        raise ConfigError(f"{type(model.backbone).__name__} cannot generate text")
    for group in groups:
        state = make(model, [prompts[i] for i in group], pad)
        for i, seq in zip(group, beam_search(state, len(group), max_new, eos, pad, beam_size, length_penalty)):
            out[i] = seq
    return out  # type: ignore[return-value]


# ---------------------------------------------------------------------------------- the family


class PrefixLMFamily(Family):
    """A source → target text task; subclasses name the fields (`source`, `target`) and bring
    the metric, the baseline and the world maker."""

    config_class = PrefixLMConfig
    source: ClassVar[str] = ""
    target: ClassVar[str] = ""
    scale = 100
    val_metric = "token_accuracy"
    generates = True

    def document(self, record):
        return record[self.source]

    def check_backbone(self, backbone_cfg, capabilities, where):
        cfg = self.config
        if not backbone_cfg.causal or not capabilities.generation:
            raise ConfigError(
                f"task {self.task!r} ({self.name}) generates text, which needs a backbone that reads "
                f"left to right and decodes, but {where} is bidirectional (pretrained with objective=mlm, "
                "or an encoder). Use objective=clm with model=gpt_tiny, gpt_small or lstm, or a decoder "
                "(model=hf model.hf_model_type=gpt2); encoders do classification, NER and QA"
            )
        need = cfg.max_source_length + cfg.max_target_length + 2
        if need > backbone_cfg.max_len:
            raise ConfigError(
                f"task.{self.task}.max_source_length={cfg.max_source_length} + max_target_length="
                f"{cfg.max_target_length} + 2 (<sep>, <eos>) = {need} exceeds the max_len "
                f"{backbone_cfg.max_len} of {where}"
            )

    def build(self, backbone, head):
        return PrefixLM(backbone)

    def _prompt(self, tok, text: str, sep: int) -> list[int]:
        return tok.encode(text, add_special_tokens=False).ids[: self.config.max_source_length] + [sep]

    def features(self, records, tok, head, train):
        from lmforge.data.tokenizer import special_ids

        ids = special_ids(tok)
        out = []
        for r in records:
            prompt = self._prompt(tok, r[self.source], ids["sep"])
            target = tok.encode(r[self.target], add_special_tokens=False).ids[: self.config.max_target_length]
            target = target + [ids["eos"]]
            seq = prompt + target
            # position t predicts token t+1: the labels are the target tokens, from <sep> on
            labels = [IGNORE_INDEX] * (len(prompt) - 1) + target + [IGNORE_INDEX]
            out.append({"input_ids": seq, "attention_mask": [1] * len(seq), "labels": labels})
        return out

    def _targets(self, model, batch):
        """The hidden states at the target positions and their targets: the LM head only where it counts."""
        hidden = model(batch["input_ids"], batch["attention_mask"])
        keep = batch["labels"] != IGNORE_INDEX
        return hidden[keep], batch["labels"][keep]

    def loss(self, model, batch):
        return model.backbone.lm_loss(*self._targets(model, batch))

    def val_step(self, model, batch, head):
        hidden, y = self._targets(model, batch)
        logits = model.logits(hidden)
        return Validation(F.cross_entropy(logits, y), len(y), int((logits.argmax(-1) == y).sum()), len(y))

    @torch.no_grad()
    def predict(self, model, records, tok, head):
        from lmforge.data.tokenizer import special_ids

        cfg = self.config
        ids = special_ids(tok)
        prompts = [self._prompt(tok, r[self.source], ids["sep"]) for r in records]
        seqs = generate(
            model,
            prompts,
            cfg.max_target_length + 1,
            ids["eos"],
            ids["pad"],
            cfg.beam_size,
            cfg.length_penalty,
            cfg.batch_size,
        )
        return [tok.decode(s).strip() for s in seqs]

    def show(self, record, predictions):
        return {self.source: record[self.source], self.target: record[self.target], **predictions}

    def outcomes(self, records, predictions):
        """actual "reference" vs a bucket of the sentence-level chrF (0-20, 20-40, ...)."""
        import sacrebleu

        out = []
        for r, p in zip(records, predictions):
            b = min(int(sacrebleu.sentence_chrf(p, [r[self.target]]).score // 20), 4)
            out.append(("reference", f"chrF {20 * b}-{20 * b + 20}"))
        return out

    def serve_records(self, columns):
        return [{self.source: str(t)} for t in columns[self.source]]
