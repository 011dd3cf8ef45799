"""Export lmforge model directories to standard Hugging Face `transformers` classes.

    python -m lmforge.export <model_dir> <out_dir>

What a model exports as is what its backbone declares (`Capabilities.exports_as`):

- `gpt2` — a native causal Transformer LM (the pretrain stage's output) becomes a `GPT2LMHeadModel`.
  The native model is GPT-2's layout by construction (pre-LN blocks, learned positions, fused
  `c_attn`, tanh GELU = `gelu_new` or exact GELU = `gelu`, LayerNorm eps 1e-5, tied head), so the
  mapping is exact: the weights are renamed, the `nn.Linear` matrices transposed into GPT-2's
  `Conv1D` [in, out] form, and the embedding cut back from its 64-padded rows to the real
  vocabulary. The logits equal lmforge's (fp32, up to kernel rounding), `AutoModelForCausalLM` /
  `AutoTokenizer` / `pipeline("text-generation")` load the directory.
  A classifier over it becomes a `GPT2ForSequenceClassification` when
  it pools the last real token (`SequenceClassifier(pooling="last")`), which is what that class
  does. Its score layer has no bias; ours has one, so the bias is folded exactly into the final
  LayerNorm's bias (b = W·δ, δ = W⁺b; the classifier never uses the LM head). The default
  mean-pooling classifier has no standard class that pools the same way: export refuses it,
  saying so, rather than write a model that predicts differently.
- `transformers` — a Hugging Face backbone (`model=hf`, e.g. continued MiniLM) is written with the
  wrapped model's own `save_pretrained` (`…ForMaskedLM` / `…ForCausalLM`) plus its tokenizer.
- nothing — the LSTM and a bidirectional (objective=mlm) native Transformer have no standard class:
  refused, saying so.

The tokenizer files of the model directory are copied (`tokenizer.json` loads as a
`PreTrainedTokenizerFast` with lmforge's special tokens) with `model_max_length` set.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from lmforge.errors import ConfigError, LmforgeError
from lmforge.fileio import atomic_dir
from lmforge.models import from_spec, load_backbone
from lmforge.saved_model import MANIFEST, SavedModel, copy_tokenizer

_LINEAR = ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")  # nn.Linear here, Conv1D in GPT-2


def gpt2_config(cfg, eos_id: int | None, pad_id: int | None, **extra):
    """The `GPT2Config` of a native `TransformerConfig`."""
    from transformers import GPT2Config

    return GPT2Config(
        vocab_size=cfg.vocab_size,
        n_positions=cfg.max_len,
        n_embd=cfg.d_model,
        n_layer=cfg.n_layers,
        n_head=cfg.n_heads,
        n_inner=cfg.d_ff,
        activation_function={"gelu_tanh": "gelu_new", "gelu": "gelu"}[cfg.activation],
        resid_pdrop=cfg.dropout,
        embd_pdrop=cfg.dropout,
        attn_pdrop=cfg.dropout,
        layer_norm_epsilon=cfg.layer_norm_eps,
        tie_word_embeddings=True,
        bos_token_id=eos_id,
        eos_token_id=eos_id,
        pad_token_id=pad_id,
        **extra,
    )


def gpt2_state(backbone) -> dict[str, torch.Tensor]:
    """The native Transformer's weights under GPT-2's names (`transformer.*`)."""
    cfg = backbone.cfg
    out = {}
    for name, tensor in backbone.state_dict().items():
        t = tensor.detach().to(torch.float32).clone()
        if name == "wte.weight":
            t = t[: cfg.vocab_size]
        elif name.endswith(".weight") and any(f".{lin}." in f".{name}" for lin in _LINEAR):
            t = t.t().contiguous()
        out[f"transformer.{name}"] = t
    return out


def _special(model_dir: Path) -> dict[str, int]:
    from lmforge.data.tokenizer import load_tokenizer, special_ids

    return special_ids(load_tokenizer(model_dir))


def export_causal_lm(model_dir: Path, out: Path) -> None:
    from transformers import GenerationConfig, GPT2LMHeadModel

    backbone, _ = load_backbone(model_dir)
    ids = _special(model_dir)
    hf = GPT2LMHeadModel(gpt2_config(backbone.cfg, ids["eos"], ids["pad"]))
    missing, unexpected = hf.load_state_dict(gpt2_state(backbone), strict=False)
    if unexpected or [k for k in missing if k != "lm_head.weight"]:  # lm_head is tied to wte
        raise RuntimeError(f"GPT-2 mapping incomplete: missing {missing}, unexpected {unexpected}")
    hf.tie_weights()
    hf.generation_config = GenerationConfig(bos_token_id=ids["eos"], eos_token_id=ids["eos"], pad_token_id=ids["pad"])
    hf.save_pretrained(str(out))
    copy_tokenizer(model_dir, out, backbone.cfg.max_len)


def fold_bias(weight: torch.Tensor, bias: torch.Tensor, ln_bias: torch.Tensor) -> torch.Tensor:
    """ln_bias + δ with weight·δ = bias (least norm): a bias-free linear after the LayerNorm then
    gives what the biased one gave. Needs n_labels ≤ d_model and independent rows."""
    w, b = weight.double(), bias.double()
    delta = torch.linalg.pinv(w) @ b
    if (w @ delta - b).abs().max() > 1e-6:
        raise ConfigError("the classifier's bias cannot be folded into the final LayerNorm (dependent label rows)")
    return (ln_bias.double() + delta).to(ln_bias.dtype)


def export_classifier(model_dir: Path, out: Path) -> None:
    from transformers import GPT2ForSequenceClassification

    from lmforge.tasks import load_task_model

    model, family, saved = load_task_model(model_dir)
    if not hasattr(model, "pooling"):  # not a sequence classifier: no pooling setting would help
        raise ConfigError(
            f"{model_dir}: a {family.name} model has no standard transformers class that computes "
            "the same (only a last-token classifier does: GPT2ForSequenceClassification); export the "
            "pretrained LM"
        )
    if model.pooling != "last":
        raise ConfigError(
            f"{model_dir}: this {family.name} model has no standard class: GPT2ForSequenceClassification pools the "
            "last token, and only a classifier fine-tuned with `pooling: last` does the same (fine-tune with "
            f"task.{saved.task}.pooling=last to export it, or export the pretrained LM)"
        )
    ids = _special(model_dir)
    labels = saved.head["labels"]
    hf = GPT2ForSequenceClassification(
        gpt2_config(
            model.backbone.cfg,
            ids["eos"],
            ids["pad"],
            num_labels=len(labels),
            id2label=dict(enumerate(labels)),
            label2id={y: i for i, y in enumerate(labels)},
        )
    )
    state = dict(gpt2_state(model.backbone))
    state["transformer.ln_f.bias"] = fold_bias(
        model.head.weight.detach(), model.head.bias.detach(), state["transformer.ln_f.bias"]
    )
    state["score.weight"] = model.head.weight.detach().clone()
    hf.load_state_dict(state, strict=True)
    hf.save_pretrained(str(out))
    copy_tokenizer(model_dir, out, model.backbone.cfg.max_len)


def export_transformers(model_dir: Path, out: Path) -> None:
    saved = SavedModel.load(model_dir)
    if saved.kind != "language_model":
        raise ConfigError(
            f"{model_dir}: a fine-tuned model over a Hugging Face backbone has no standard class "
            "that computes the same (its head differs from …ForSequenceClassification's); export "
            "its pretrained LM"
        )
    backbone, _ = load_backbone(model_dir)
    backbone.save_pretrained(out)
    copy_tokenizer(model_dir, out, backbone.cfg.max_len)


def export(model_dir: str | Path, out_dir: str | Path) -> Path:
    """Export `model_dir` (an lmforge model directory) into `out_dir` (written atomically)."""
    model_dir, out_dir = Path(model_dir), Path(out_dir)
    saved = SavedModel.load(model_dir)
    cls, config = from_spec(saved.backbone, Path(model_dir) / MANIFEST)
    exports_as = cls.capabilities(config).exports_as
    if exports_as is None:
        raise ConfigError(
            f"{model_dir}: its backbone ({saved.backbone['arch']}, trained with objective="
            f"{saved.objective}) has no standard transformers class to export to"
        )
    with atomic_dir(out_dir) as tmp:
        if exports_as == "transformers":
            export_transformers(model_dir, tmp)
        elif saved.kind == "task_model":
            export_classifier(model_dir, tmp)
        else:
            export_causal_lm(model_dir, tmp)
    return out_dir


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lmforge.export", description=__doc__.split("\n\n")[0])
    ap.add_argument("model_dir", help="an lmforge model directory (lmforge.json + model.safetensors + tokenizer)")
    ap.add_argument("out_dir", help="where to write the transformers model directory")
    args = ap.parse_args(argv)
    try:
        out = export(args.model_dir, args.out_dir)
    except LmforgeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"exported {args.model_dir} → {out} (load with transformers.AutoModel*.from_pretrained)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
