"""Export to transformers: the native causal Transformer as GPT2LMHeadModel (same logits, the
text-generation pipeline runs), last-token classifiers as GPT2ForSequenceClassification, a Hugging
Face backbone as its own class, and refusals where no standard class computes the same thing."""

from dataclasses import asdict

import pytest
import torch

from lmforge.data.tokenizer import save_tokenizer, train_tokenizer
from lmforge.errors import ConfigError
from lmforge.export import export, main
from lmforge.models import build_backbone
from lmforge.models.heads import CausalLM, MaskedLM
from lmforge.models.lstm import LSTM, LSTMConfig
from lmforge.models.transformer import Transformer, TransformerConfig
from lmforge.saved_model import SavedModel
from lmforge.tasks import configure

TEXT = [
    f"the {a} {b} sat on the {c} mat number {i}."
    for i, (a, b, c) in enumerate(
        (a, b, c) for a in ("red", "old", "big") for b in ("cat", "dog", "owl") for c in ("blue", "flat")
    )
]


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
                p.copy_(
                    torch.randn_like(p) * 0.3
                    + (
                        1.0
                        if name.endswith("ln_1.weight") or name.endswith("ln_2.weight") or name.endswith("ln_f.weight")
                        else 0.0
                    )
                )
            else:
                p.mul_(5.0)  # larger activations: GELU's tail and attention softmax both exercised
    return model.eval()


def language_model(lm, objective: str) -> SavedModel:
    return SavedModel(kind="language_model", backbone=lm.backbone.spec(), objective=objective)


def classifier(backbone, labels: list[str], pooling: str):
    """A classification task model over `backbone` and its manifest (as the finetune stage saves it)."""
    family = configure("topic", {"family": "classification", "pooling": pooling})
    head = {"labels": labels, "pooling": pooling}
    saved = SavedModel(
        kind="task_model",
        backbone=backbone.spec(),
        objective="clm",
        task="topic",
        family="classification",
        task_config=asdict(family.config),
        head=head,
        init="pretrained",
    )
    return family.build(backbone, head).eval(), saved


def cfg(**kw) -> TransformerConfig:  # vocab 300 → 320 embedding rows (padded to 64)
    return TransformerConfig(
        **{
            "vocab_size": 300,
            "d_model": 32,
            "n_layers": 2,
            "n_heads": 4,
            "d_ff": 80,
            "max_len": 32,
            "causal": True,
            "pad_id": 0,
            **kw,
        }
    )


@pytest.mark.parametrize("activation, hf_activation", [("gelu_tanh", "gelu_new"), ("gelu", "gelu")])
def test_causal_lm_round_trip_same_logits_and_generation(tmp_path, tok_dir, activation, hf_activation):
    from transformers import AutoModelForCausalLM, AutoTokenizer, pipeline

    lm = CausalLM(randomised(cfg(activation=activation)))
    language_model(lm, "clm").save(tmp_path / "m", lm.state_dict(), tok_dir)
    assert main([str(tmp_path / "m"), str(tmp_path / "hf")]) == 0  # python -m lmforge.export <model> <out>

    hf = AutoModelForCausalLM.from_pretrained(tmp_path / "hf").eval()
    hf_tok = AutoTokenizer.from_pretrained(tmp_path / "hf")
    assert type(hf).__name__ == "GPT2LMHeadModel" and hf.config.vocab_size == 300
    assert hf.config.activation_function == hf_activation
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

    clf, saved = classifier(randomised(cfg()), ["a", "b", "c"], "last")
    with torch.no_grad():
        clf.head.bias.copy_(torch.tensor([0.5, -1.0, 2.0]))  # the bias GPT-2's score layer lacks
    saved.save(tmp_path / "c", clf.state_dict(), tok_dir)
    export(tmp_path / "c", tmp_path / "hfc")
    hf = AutoModelForSequenceClassification.from_pretrained(tmp_path / "hfc").eval()
    tok = AutoTokenizer.from_pretrained(tmp_path / "hfc")
    assert type(hf).__name__ == "GPT2ForSequenceClassification" and hf.config.id2label[2] == "c"
    batch = tok(["the red cat sat on the blue mat", "the owl"], return_tensors="pt", padding=True)
    with torch.no_grad():
        diff = (clf(batch["input_ids"], batch["attention_mask"]) - hf(**batch).logits).abs().max().item()
    assert diff <= 1e-4

    mean, saved = classifier(randomised(cfg()), ["a", "b"], "mean")
    saved.save(tmp_path / "mean", mean.state_dict(), tok_dir)
    with pytest.raises(ConfigError, match=r"pools the last token.*task\.topic\.pooling=last"):
        export(tmp_path / "mean", tmp_path / "nope")
    assert not (tmp_path / "nope").exists()  # nothing half-written


def test_backbones_without_a_standard_class_are_refused(tmp_path, tok_dir):
    lstm = CausalLM(LSTM(LSTMConfig(vocab_size=300, d_model=16, n_layers=1)))
    language_model(lstm, "clm").save(tmp_path / "l", lstm.state_dict(), tok_dir)
    with pytest.raises(ConfigError, match=r"\(lstm, trained with objective=clm\) has no standard transformers class"):
        export(tmp_path / "l", tmp_path / "x")
    enc = MaskedLM(Transformer(cfg(causal=False)))
    language_model(enc, "mlm").save(tmp_path / "e", enc.state_dict(), tok_dir)
    with pytest.raises(ConfigError, match=r"\(transformer, trained with objective=mlm\) has no standard"):
        export(tmp_path / "e", tmp_path / "x")
    assert main([str(tmp_path / "e"), str(tmp_path / "x")]) == 2  # the CLI reports, exit code 2
    # a task model other than a classifier: no pooling setting would make one
    family = configure("ner", {"family": "tagging"})
    head = {"labels": ["B-PER", "I-PER", "O"], "echo": True}
    tagger = family.build(Transformer(cfg()), head)
    SavedModel(
        kind="task_model",
        backbone=tagger.backbone.spec(),
        objective="clm",
        task="ner",
        family="tagging",
        task_config=asdict(family.config),
        head=head,
        init="pretrained",
    ).save(tmp_path / "t", tagger.state_dict(), tok_dir)
    with pytest.raises(ConfigError, match=r"a tagging model has no standard transformers class") as refused:
        export(tmp_path / "t", tmp_path / "x")
    assert "pooling" not in str(refused.value)
    assert not (tmp_path / "x").exists()


def test_hf_backbone_exports_as_its_own_class(tmp_path, tok_dir):
    """A `model=hf` language model is written by transformers' own save_pretrained: the same logits
    from AutoModelForCausalLM; a task model over it has no standard class and is refused."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    lm = CausalLM(
        build_backbone(
            {
                "arch": "hf",
                "hf_model_type": "gpt2",
                "vocab_size": 300,
                "d_model": 32,
                "n_layers": 2,
                "n_heads": 4,
                "d_ff": 64,
                "max_len": 32,
                "pad_id": 0,
            }
        ).eval()
    )
    language_model(lm, "clm").save(tmp_path / "m", lm.state_dict(), tok_dir)
    export(tmp_path / "m", tmp_path / "hf")
    hf = AutoModelForCausalLM.from_pretrained(tmp_path / "hf").eval()
    ids = AutoTokenizer.from_pretrained(tmp_path / "hf")("the old owl sat", return_tensors="pt")["input_ids"]
    assert type(hf).__name__ == "GPT2LMHeadModel"
    with torch.no_grad():
        assert torch.allclose(lm(ids), hf(input_ids=ids).logits, atol=1e-5)

    clf, saved = classifier(lm.backbone, ["a", "b"], "mean")
    saved.save(tmp_path / "c", clf.state_dict(), tok_dir)
    with pytest.raises(ConfigError, match="no standard class"):
        export(tmp_path / "c", tmp_path / "hfc")
    assert not (tmp_path / "hfc").exists()
