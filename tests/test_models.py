"""The native Transformer: shapes, causal masking, padding, initialisation, what it declares it can
do, its LM head's loss, and its model directory (`SavedModel`)."""

import json
from dataclasses import asdict, replace

import pytest
import torch

from lmforge.errors import ConfigError
from lmforge.models import Capabilities, backbone_class, build_backbone, lm_loss, load_backbone, settings
from lmforge.models.heads import CausalLM
from lmforge.models.transformer import Transformer, TransformerConfig
from lmforge.saved_model import MANIFEST, SavedModel
from lmforge.tasks import configure, load_task_model
from lmforge.tasks.classification import SequenceClassifier

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(**kw) -> TransformerConfig:
    return TransformerConfig(
        **{"vocab_size": 100, "d_model": 32, "n_layers": 2, "n_heads": 4, "d_ff": 64, "max_len": 16, **kw}
    )


def test_shapes_and_padded_vocab():
    torch.manual_seed(0)
    lm = CausalLM(Transformer(tiny()))
    ids = torch.randint(0, 100, (3, 10))
    assert lm.backbone(ids).shape == (3, 10, 32)
    assert lm(ids).shape == (3, 10, 100)  # logits cut back to the real vocabulary
    assert lm.backbone.wte.weight.shape[0] == 128  # embedding rows padded to a multiple of 64
    with pytest.raises(ValueError, match="max_len 16"):
        lm(torch.zeros(1, 17, dtype=torch.long))


def test_future_tokens_do_not_change_past_logits():
    torch.manual_seed(0)
    lm = CausalLM(Transformer(tiny())).eval()
    a = torch.randint(0, 100, (1, 12))
    b = a.clone()
    b[0, 7:] = (b[0, 7:] + 1) % 100
    la, lb = lm(a), lm(b)
    assert torch.allclose(la[0, :7], lb[0, :7], atol=1e-6)
    assert not torch.allclose(la[0, 7:], lb[0, 7:], atol=1e-3)


def test_bidirectional_sees_the_future_but_not_padding():
    torch.manual_seed(0)
    enc = Transformer(tiny(causal=False)).eval()
    a = torch.randint(1, 100, (1, 12))
    b = a.clone()
    b[0, 10] = (b[0, 10] + 1) % 100
    assert not torch.allclose(enc(a)[0, 0], enc(b)[0, 0], atol=1e-4)  # position 0 attends to 10
    mask = torch.ones(1, 12, dtype=torch.long)
    mask[0, 9:] = 0
    c = a.clone()
    c[0, 9:] = 0
    # changing padded positions changes nothing at the real ones
    assert torch.allclose(enc(a, mask)[0, :9], enc(c, mask)[0, :9], atol=1e-5)


def test_init_is_small_and_tied():
    torch.manual_seed(0)
    lm = CausalLM(Transformer(tiny()))
    assert lm.backbone.wte.weight.std().item() == pytest.approx(0.02, rel=0.1)
    # a fresh model predicts near-uniformly: loss ≈ ln(vocab)
    ids, targets = torch.randint(0, 100, (4, 16)), torch.randint(0, 100, (4, 16))
    loss = torch.nn.functional.cross_entropy(lm(ids).view(-1, 100), targets.view(-1))
    assert abs(loss.item() - torch.log(torch.tensor(100.0)).item()) < 0.2
    # the head has no weights of its own
    assert not any("head" in n for n, _ in lm.named_parameters())


def test_settings_capabilities_and_spec():
    """The model section becomes checked settings; what the backbone can do follows from how it is
    trained; its spec (derived fields included) rebuilds the same architecture."""
    cls, cfg = settings(
        {
            "name": "gpt_tiny",
            "arch": "transformer",
            "d_model": 32,
            "n_layers": 2,
            "n_heads": 4,
            "d_ff": 64,
            "max_len": 16,
        }
    )
    assert cls is Transformer is backbone_class("transformer") and cfg == tiny(vocab_size=0)
    assert cls.capabilities(cfg) == Capabilities(
        causal=True, bidirectional=True, generation="kv_cache", exports_as="gpt2"
    )
    encoder = cls.capabilities(replace(cfg, causal=False))
    assert encoder.bidirectional and encoder.generation is None and encoder.exports_as is None

    spec = Transformer(tiny(pad_id=3, causal=False)).spec()
    assert spec == {
        "arch": "transformer",
        "max_len": 16,
        "dropout": 0.0,
        "vocab_size": 100,
        "pad_id": 3,
        "causal": False,
        "d_model": 32,
        "n_layers": 2,
        "n_heads": 4,
        "d_ff": 64,
        "layer_norm_eps": 1e-5,
        "activation": "gelu",
    }
    rebuilt = build_backbone(spec)
    assert isinstance(rebuilt, Transformer) and rebuilt.cfg == tiny(pad_id=3, causal=False)

    # a key no backbone setting reads, a value out of range, a shape that cannot work: named
    with pytest.raises(ConfigError, match=r"model\.hf_model_type"):
        settings({"arch": "transformer", "hf_model_type": "gpt2"})
    with pytest.raises(ConfigError, match=r"model\.n_layers"):
        settings({"arch": "transformer", "n_layers": 0})
    with pytest.raises(ConfigError, match=r"model\.d_model=30 is not divisible by model\.n_heads=4"):
        settings({"arch": "transformer", "d_model": 30, "n_heads": 4})
    with pytest.raises(ConfigError, match=r"model\.arch='rnn' is not a backbone.*lstm.*transformer"):
        settings({"arch": "rnn"})
    with pytest.raises(ConfigError, match=r"model\.activation='relu' is not one of \['gelu_tanh', 'gelu'\]"):
        settings({"arch": "transformer", "activation": "relu"})


def test_the_mlp_activation_is_the_exact_gelu_unless_set_and_an_older_manifest_keeps_tanh(tmp_path):
    """The MLP computes the exact GELU by default and GPT-2's tanh approximation with `activation:
    gelu_tanh`; a manifest written before the setting existed (no `activation`) loads as what it was
    trained with then, the tanh approximation, although the default has changed since."""
    torch.manual_seed(0)
    exact, tanh = Transformer(tiny()), Transformer(tiny(activation="gelu_tanh"))
    tanh.load_state_dict(exact.state_dict())
    x = 3 * torch.randn(2, 5, 32)
    mlp = exact.h[0].mlp
    pre = mlp.c_fc(x)
    assert torch.equal(mlp(x), mlp.c_proj(torch.nn.functional.gelu(pre)))
    assert torch.equal(tanh.h[0].mlp(x), mlp.c_proj(torch.nn.functional.gelu(pre, approximate="tanh")))
    ids = torch.randint(0, 100, (2, 8))
    assert not torch.equal(tanh(ids), exact(ids)) and torch.allclose(tanh(ids), exact(ids), atol=1e-2)

    for model, name in ((tanh, "old"), (exact, "new")):
        SavedModel(kind="language_model", backbone=model.spec(), objective="clm").save(
            tmp_path / name, CausalLM(model).state_dict(), tmp_path
        )
    manifest = json.loads((tmp_path / "old" / MANIFEST).read_text())
    del manifest["backbone"]["activation"]  # as an older lmforge wrote it
    (tmp_path / "old" / MANIFEST).write_text(json.dumps(manifest))
    old, _ = load_backbone(tmp_path / "old")
    assert old.cfg.activation == "gelu_tanh" and torch.equal(old(ids), tanh(ids))
    new, _ = load_backbone(tmp_path / "new")
    assert new.cfg.activation == "gelu" and torch.equal(new(ids), exact(ids))


@pytest.mark.parametrize("autocast", [None, torch.bfloat16], ids=["fp32", "bf16-autocast"])
@pytest.mark.parametrize("frozen", [False, True], ids=["head-trained", "head-frozen"])
def test_the_lm_heads_loss_without_logits_matches_cross_entropy_and_its_gradients(monkeypatch, autocast, frozen):
    """`lm_loss` (blocks of rows, gradients made in the forward) against the plain logits +
    cross-entropy: the same loss and gradients, over several blocks and a ragged last one, under
    bf16 autocast (up to its rounding) and with the head frozen (no gradient for it); without
    gradients it is the plain path."""
    monkeypatch.setattr(lm_loss, "BLOCK_ELEMENTS", 32 * 100)  # 32 rows of a 100-token head a block
    torch.manual_seed(0)
    model = Transformer(tiny())
    model.wte.weight.requires_grad_(not frozen)
    ids, targets = torch.randint(0, 100, (3, 15)), torch.randint(0, 100, (45,))  # 45 rows: blocks of 32 + 13

    def run(loss_fn):
        model.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=autocast or torch.float32, enabled=autocast is not None):
            loss = loss_fn(model(ids).flatten(0, 1))
        (2.5 * loss).backward()  # an upstream gradient other than 1 reaches both
        return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    plain = run(lambda h: torch.nn.functional.cross_entropy(model.lm_logits(h).float(), targets))
    fused = run(lambda h: model.lm_loss(h, targets))
    tol = 1e-2 if autocast else 1e-5  # relative error: bf16 keeps 8 bits of a mantissa

    def close(a, b):
        return a.dtype == b.dtype and float((a - b).norm()) <= tol * float(b.norm())

    assert fused[0].dtype == torch.float32 and close(fused[0], plain[0])
    assert set(fused[1]) == set(plain[1]) and ("wte.weight" in fused[1]) is not frozen
    assert all(close(fused[1][name], grad) for name, grad in plain[1].items())
    with torch.no_grad():
        h = model(ids).flatten(0, 1)
        assert torch.equal(model.lm_loss(h, targets), torch.nn.functional.cross_entropy(model.lm_logits(h), targets))


def test_classifier_ignores_padding():
    torch.manual_seed(0)
    clf = SequenceClassifier(Transformer(tiny()), n_labels=3).eval()
    ids = torch.tensor([[5, 6, 7, 0, 0, 0]])
    mask = torch.tensor([[1, 1, 1, 0, 0, 0]])
    other = torch.tensor([[5, 6, 7, 9, 9, 9]])
    assert torch.allclose(clf(ids, mask), clf(other, mask), atol=1e-6)


def test_model_dir_round_trip_and_shape_error(tmp_path):
    torch.manual_seed(0)
    family = configure("topic", {"family": "classification", "dropout": 0.0})
    backbone = Transformer(tiny())
    head = {"labels": ["a", "b"], "pooling": "mean"}
    clf = family.build(backbone, head).eval()
    saved = SavedModel(
        kind="task_model",
        backbone=backbone.spec(),
        objective="clm",
        task="topic",
        family="classification",
        task_config=asdict(family.config),
        head=head,
        init="pretrained",
    ).save(tmp_path / "m", clf.state_dict(), tmp_path)
    assert (tmp_path / "m" / "model.safetensors").is_file() and len(saved.weights_digest) == 16
    assert SavedModel.load(tmp_path / "m") == saved

    loaded, loaded_family, _ = load_task_model(tmp_path / "m")
    assert loaded_family.name == "classification" and loaded_family.config == family.config
    ids, mask = torch.randint(0, 100, (2, 8)), torch.ones(2, 8, dtype=torch.long)
    assert torch.equal(clf(ids, mask), loaded(ids, mask))
    backbone_again, _ = load_backbone(tmp_path / "m")
    assert torch.equal(backbone_again(ids), clf.backbone(ids))

    # a manifest that promises another shape: the error names the file and the tensor
    manifest = json.loads((tmp_path / "m" / MANIFEST).read_text())
    manifest["backbone"]["d_model"] = 64
    (tmp_path / "m" / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ConfigError, match=r"m/model\.safetensors: tensor '.*' has shape .* expects "):
        load_backbone(tmp_path / "m")
