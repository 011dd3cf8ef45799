"""Export to transformers: the native causal Transformer as GPT2LMHeadModel (same logits, the
text-generation pipeline runs), last-token classifiers as GPT2ForSequenceClassification, and
refusals where no standard class computes the same thing."""

import pytest
import torch

from lmforge.data.tokenizer import save_tokenizer, train_tokenizer
from lmforge.errors import ConfigError
from lmforge.models.export import export, main
from lmforge.models.heads import CausalLM, SequenceClassifier
from lmforge.models.io import write_model_dir
from lmforge.models.lstm import LSTM, LSTMConfig
from lmforge.models.transformer import Transformer, TransformerConfig

TEXT = [f"the {a} {b} sat on the {c} mat number {i}." for i, (a, b, c) in enumerate(
    (a, b, c) for a in ("red", "old", "big") for b in ("cat", "dog", "owl") for c in ("blue", "flat"))]


@pytest.fixture(scope="module")
def tok_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("tok")
    save_tokenizer(train_tokenizer(TEXT, kind="bpe", vocab_size=300, progress=False), d, model_max_length=32)
    return d


def randomised(cfg: TransformerConfig) -> Transformer:
    """A model whose every tensor matters: LayerNorm gains/biases and linear biases random too,
    so a wrong mapping (a missed transpose, a LayerNorm eps, GELU flavour) shows in the logits."""
    torch.manual_seed(0)
    model = Transformer(cfg)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1:
                p.copy_(torch.randn_like(p) * 0.3 + (1.0 if name.endswith("ln_1.weight") or name.endswith("ln_2.weight")
                                                     or name.endswith("ln_f.weight") else 0.0))
            else:
                p.mul_(5.0)  # larger activations: GELU's tail and attention softmax both exercised
    return model.eval()


def cfg(**kw) -> TransformerConfig:  # vocab 300 → 320 embedding rows (padded to 64)
    return TransformerConfig(**{"vocab_size": 300, "d_model": 32, "n_layers": 2, "n_heads": 4, "d_ff": 80,
                                "max_len": 32, "causal": True, "pad_id": 0, **kw})


def test_causal_lm_round_trip_same_logits_and_generation(tmp_path, tok_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer, pipeline

    lm = CausalLM(randomised(cfg()))
    write_model_dir(tmp_path / "m", lm, {"kind": "causal_lm", "objective": "clm", "backbone": cfg().to_dict()}, tok_dir)
    assert main([str(tmp_path / "m"), str(tmp_path / "hf")]) == 0

    hf = AutoModelForCausalLM.from_pretrained(tmp_path / "hf").eval()
    hf_tok = AutoTokenizer.from_pretrained(tmp_path / "hf")
    assert type(hf).__name__ == "GPT2LMHeadModel" and hf.config.vocab_size == 300
    batch = hf_tok(["the old owl sat on the flat mat", "the red cat"], return_tensors="pt", padding=True)
    ids = batch["input_ids"]
    with torch.no_grad():
        ours = lm(ids[:1])
        theirs = hf(input_ids=ids[:1]).logits
        assert ours.shape == theirs.shape == (1, ids.shape[1], 300)
        assert (ours - theirs).abs().max().item() <= 1e-4
        assert ours.abs().max() > 1.0  # the comparison is not between near-zero logits
        # right-padded batch: the real positions of the short row agree too
        n = int(batch["attention_mask"][1].sum())
        assert (lm(ids[1:, :n]) - hf(**batch).logits[1:, :n]).abs().max().item() <= 1e-4

    # greedy generation: transformers' pipeline continues as lmforge's own argmax loop does
    gen = pipeline("text-generation", model=str(tmp_path / "hf"), tokenizer=str(tmp_path / "hf"), device="cpu")
    prompt = "the big dog"
    out = gen(prompt, max_new_tokens=6, do_sample=False)[0]["generated_text"]
    x = torch.tensor([hf_tok(prompt)["input_ids"]])
    with torch.no_grad():
        for _ in range(6):
            x = torch.cat([x, lm(x)[:, -1].argmax(-1, keepdim=True)], dim=1)
    assert out.startswith(prompt) and out == hf_tok.decode(x[0])


def test_last_token_classifier_exports_exactly_and_mean_pooling_is_refused(tmp_path, tok_dir):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    spec = cfg().to_dict()
    clf = SequenceClassifier(randomised(cfg()), n_labels=3, pooling="last").eval()
    with torch.no_grad():
        clf.head.bias.copy_(torch.tensor([0.5, -1.0, 2.0]))  # the bias GPT-2's score layer lacks
    meta = {"kind": "sequence_classifier", "labels": ["a", "b", "c"], "backbone": spec, "pooling": "last"}
    write_model_dir(tmp_path / "c", clf, meta, tok_dir)
    export(tmp_path / "c", tmp_path / "hfc")
    hf = AutoModelForSequenceClassification.from_pretrained(tmp_path / "hfc").eval()
    tok = AutoTokenizer.from_pretrained(tmp_path / "hfc")
    assert type(hf).__name__ == "GPT2ForSequenceClassification" and hf.config.id2label[2] == "c"
    batch = tok(["the red cat sat on the blue mat", "the owl"], return_tensors="pt", padding=True)
    with torch.no_grad():
        diff = (clf(batch["input_ids"], batch["attention_mask"]) - hf(**batch).logits).abs().max().item()
    assert diff <= 1e-4

    mean = SequenceClassifier(randomised(cfg()), n_labels=2)
    write_model_dir(tmp_path / "mean", mean, {**meta, "labels": ["a", "b"], "pooling": "mean"}, tok_dir)
    with pytest.raises(ConfigError, match="mean-pools"):
        export(tmp_path / "mean", tmp_path / "nope")
    assert not (tmp_path / "nope").exists()  # nothing half-written


def test_backbones_without_a_gpt2_equivalent_are_refused(tmp_path, tok_dir):
    lstm_cfg = LSTMConfig(vocab_size=300, d_model=16, n_layers=1)
    write_model_dir(tmp_path / "l", CausalLM(LSTM(lstm_cfg)), {"kind": "causal_lm", "backbone": {"arch": "lstm", **lstm_cfg.to_dict()}}, tok_dir)
    with pytest.raises(ConfigError, match="LSTM"):
        export(tmp_path / "l", tmp_path / "x")
    enc = cfg(causal=False)
    write_model_dir(tmp_path / "e", CausalLM(Transformer(enc)), {"kind": "masked_lm", "backbone": enc.to_dict()}, tok_dir)
    with pytest.raises(ConfigError, match="bidirectional"):
        export(tmp_path / "e", tmp_path / "x")
    assert main([str(tmp_path / "e"), str(tmp_path / "x")]) == 2  # the CLI reports, exit code 2
