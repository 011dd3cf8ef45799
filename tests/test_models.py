"""The native Transformer: shapes, causal masking, padding, initialisation, serialization."""

import pytest
import torch

from lmforge.errors import ConfigError
from lmforge.models.heads import CausalLM, SequenceClassifier
from lmforge.models.io import load_backbone, load_classifier, write_model_dir
from lmforge.models.transformer import Transformer, TransformerConfig


def tiny(**kw) -> TransformerConfig:
    return TransformerConfig(**{"vocab_size": 100, "d_model": 32, "n_layers": 2, "n_heads": 4, "d_ff": 64, "max_len": 16, **kw})


def test_shapes_and_padded_vocab():
    torch.manual_seed(0)
    lm = CausalLM(Transformer(tiny()))
    ids = torch.randint(0, 100, (3, 10))
    assert lm.backbone(ids).shape == (3, 10, 32)
    assert lm(ids).shape == (3, 10, 100)  # logits cut back to the real vocabulary
    assert lm.backbone.wte.weight.shape[0] == 128  # embedding rows padded to a multiple of 64


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
    lm = CausalLM(Transformer(tiny()))
    assert lm.backbone.wte.weight.std().item() == pytest.approx(0.02, rel=0.1)
    # a fresh model predicts near-uniformly: loss ≈ ln(vocab)
    ids, targets = torch.randint(0, 100, (4, 16)), torch.randint(0, 100, (4, 16))
    loss = torch.nn.functional.cross_entropy(lm(ids).view(-1, 100), targets.view(-1))
    assert abs(loss.item() - torch.log(torch.tensor(100.0)).item()) < 0.2
    # the head has no weights of its own
    assert not any("head" in n for n, _ in lm.named_parameters())


def test_classifier_ignores_padding():
    torch.manual_seed(0)
    clf = SequenceClassifier(Transformer(tiny()), n_labels=3).eval()
    ids = torch.tensor([[5, 6, 7, 0, 0, 0]])
    mask = torch.tensor([[1, 1, 1, 0, 0, 0]])
    other = torch.tensor([[5, 6, 7, 9, 9, 9]])
    assert torch.allclose(clf(ids, mask), clf(other, mask), atol=1e-6)


def test_model_dir_round_trip_and_shape_error(tmp_path):
    torch.manual_seed(0)
    cfg = tiny()
    clf = SequenceClassifier(Transformer(cfg), n_labels=2).eval()
    write_model_dir(tmp_path / "m", clf, {"backbone": cfg.to_dict(), "labels": ["a", "b"]}, tmp_path)
    assert (tmp_path / "m" / "model.safetensors").is_file()
    loaded, config = load_classifier(tmp_path / "m")
    ids, mask = torch.randint(0, 100, (2, 8)), torch.ones(2, 8, dtype=torch.long)
    assert torch.equal(clf(ids, mask), loaded(ids, mask))
    backbone, _ = load_backbone(tmp_path / "m")
    assert torch.equal(backbone(ids), clf.backbone(ids))

    # a config that promises another shape: the error names the file and the tensor
    (tmp_path / "m" / "config.json").write_text(
        '{"backbone": ' + __import__("json").dumps(tiny(d_model=64).to_dict()) + ', "labels": ["a", "b"]}')
    with pytest.raises(ConfigError, match=r"model\.safetensors.*shape"):
        load_backbone(tmp_path / "m")
