"""The LSTM backbone: the common backbone interface, causality, tied head, padding, save/load."""

import pytest
import torch

from lmforge.models import backbone_spec, build_backbone
from lmforge.models.heads import CausalLM, SequenceClassifier
from lmforge.models.io import load_backbone, load_classifier, write_model_dir
from lmforge.models.lstm import LSTM, LSTMConfig


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(**kw) -> LSTMConfig:
    return LSTMConfig(**{"vocab_size": 100, "d_model": 24, "n_layers": 2, "max_len": 32, **kw})


def test_shapes_tied_head_and_spec():
    torch.manual_seed(0)
    lm = CausalLM(LSTM(tiny()))
    ids = torch.randint(0, 100, (3, 10))
    assert lm.backbone(ids, torch.ones_like(ids)).shape == (3, 10, 24)
    assert lm(ids).shape == (3, 10, 100)
    assert lm.backbone.wte.weight.shape == (128, 24)  # padded to 64, and the only vocab-sized matrix
    assert not any("head" in n for n, _ in lm.named_parameters())
    assert lm.backbone.wte.weight.std().item() == pytest.approx(24 ** -0.5, rel=0.1)
    # 2 layers × 4 gates × (input + recurrent weights + 2 biases) + the embedding
    assert lm.backbone.num_params() == 2 * 4 * (24 * 24 * 2 + 2 * 24) + 128 * 24
    assert lm.backbone.flops_per_token(10) == 6 * lm.backbone.num_params()
    # the model config group's transformer-only keys are dropped; lstm + spec rebuild the same shape
    spec = backbone_spec({"arch": "lstm", "d_model": 24, "n_layers": 2, "n_heads": 4, "d_ff": 64, "max_len": 32},
                         vocab_size=100, pad_id=0, causal=True)
    assert spec == {"arch": "lstm", "d_model": 24, "n_layers": 2, "max_len": 32, "vocab_size": 100, "pad_id": 0, "causal": True}
    assert isinstance(build_backbone(spec), LSTM)
    with pytest.raises(ValueError, match="causal"):
        LSTMConfig(vocab_size=10, causal=False)


def test_reads_left_to_right_only():
    torch.manual_seed(0)
    lm = CausalLM(LSTM(tiny())).eval()
    a = torch.randint(0, 100, (1, 12))
    b = a.clone()
    b[0, 7:] = (b[0, 7:] + 1) % 100
    la, lb = lm(a), lm(b)
    assert torch.allclose(la[0, :7], lb[0, :7], atol=1e-6)
    assert not torch.allclose(la[0, 7:], lb[0, 7:], atol=1e-4)


def test_classifier_ignores_right_padding_and_round_trips(tmp_path):
    torch.manual_seed(0)
    cfg = tiny()
    clf = SequenceClassifier(LSTM(cfg), n_labels=3).eval()
    mask = torch.tensor([[1, 1, 1, 0, 0]])
    assert torch.allclose(clf(torch.tensor([[5, 6, 7, 0, 0]]), mask), clf(torch.tensor([[5, 6, 7, 9, 9]]), mask), atol=1e-6)
    write_model_dir(tmp_path / "m", clf, {"backbone": {"arch": "lstm", **cfg.to_dict()}, "labels": ["a", "b", "c"]}, tmp_path)
    loaded, _ = load_classifier(tmp_path / "m")
    ids = torch.randint(0, 100, (2, 9))
    assert torch.equal(loaded(ids, torch.ones_like(ids)), clf(ids, torch.ones_like(ids)))
    backbone, _ = load_backbone(tmp_path / "m")
    assert isinstance(backbone, LSTM) and torch.equal(backbone(ids), clf.backbone(ids))


def test_learns_a_sequence():
    torch.manual_seed(0)
    lm = CausalLM(LSTM(tiny(d_model=32, n_layers=1)))
    seq = torch.arange(20).repeat(4, 2)[:, :33] % 100  # 0..19 0..19 …
    x, y = seq[:, :-1], seq[:, 1:]
    opt = torch.optim.Adam(lm.parameters(), lr=3e-2)
    first = None
    for _ in range(60):
        loss = torch.nn.functional.cross_entropy(lm(x).reshape(-1, 100), y.reshape(-1))
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert first > 4.0 and loss.item() < 0.5
