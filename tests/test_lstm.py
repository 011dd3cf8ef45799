"""The LSTM backbone: the common backbone interface, causality, tied head, padding, what it
declares it can do, its model directory."""

from dataclasses import asdict, replace

import pytest
import torch

from lmforge.errors import ConfigError
from lmforge.models import Capabilities, build_backbone, load_backbone, settings
from lmforge.models.heads import CausalLM
from lmforge.models.lstm import LSTM, LSTMConfig
from lmforge.saved_model import SavedModel
from lmforge.tasks import configure, load_task_model

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
    assert lm.backbone.wte.weight.std().item() == pytest.approx(24**-0.5, rel=0.1)
    # 2 layers × 4 gates × (input + recurrent weights + 2 biases) + the embedding
    assert lm.backbone.num_params() == 2 * 4 * (24 * 24 * 2 + 2 * 24) + 128 * 24
    assert lm.backbone.flops_per_token(10) == 6 * lm.backbone.num_params()

    # the model section (conf/model/lstm.yaml) → checked settings; + the derived fields → a spec
    # that rebuilds the same shape
    cls, cfg = settings({"name": "lstm", "arch": "lstm", "d_model": 24, "n_layers": 2, "max_len": 32})
    assert cls is LSTM and cfg == tiny(vocab_size=0)
    spec = LSTM(replace(cfg, vocab_size=100, pad_id=0, causal=True)).spec()
    assert spec == {
        "arch": "lstm",
        "d_model": 24,
        "n_layers": 2,
        "max_len": 32,
        "dropout": 0.0,
        "vocab_size": 100,
        "pad_id": 0,
        "causal": True,
    }
    rebuilt = build_backbone(spec)
    assert isinstance(rebuilt, LSTM) and rebuilt.cfg == tiny()
    # a Transformer-only key is not silently dropped: it names the key
    with pytest.raises(ConfigError, match=r"model\.n_heads"):
        settings({"arch": "lstm", "d_model": 24, "n_heads": 4})


def test_reads_left_to_right_only():
    assert LSTM.capabilities(tiny()) == Capabilities(
        causal=True, bidirectional=False, generation="recompute", exports_as=None
    )
    with pytest.raises(ConfigError, match="left to right.*objective=mlm"):
        LSTM(tiny(causal=False))
    torch.manual_seed(0)
    lm = CausalLM(LSTM(tiny())).eval()
    a = torch.randint(0, 100, (1, 12))
    b = a.clone()
    b[0, 7:] = (b[0, 7:] + 1) % 100
    la, lb = lm(a), lm(b)
    assert torch.allclose(la[0, :7], lb[0, :7], atol=1e-6)
    assert not torch.allclose(la[0, 7:], lb[0, 7:], atol=1e-4)
    with pytest.raises(ValueError, match="max_len 32"):
        lm(torch.zeros(1, 33, dtype=torch.long))


def test_classifier_ignores_right_padding_and_round_trips(tmp_path):
    torch.manual_seed(0)
    family = configure("topic", {"family": "classification"})
    head = {"labels": ["a", "b", "c"], "pooling": "mean"}
    clf = family.build(LSTM(tiny()), head).eval()
    mask = torch.tensor([[1, 1, 1, 0, 0]])
    assert torch.allclose(
        clf(torch.tensor([[5, 6, 7, 0, 0]]), mask), clf(torch.tensor([[5, 6, 7, 9, 9]]), mask), atol=1e-6
    )
    SavedModel(
        kind="task_model",
        backbone=clf.backbone.spec(),
        objective="clm",
        task="topic",
        family="classification",
        task_config=asdict(family.config),
        head=head,
        init="scratch",
    ).save(tmp_path / "m", clf.state_dict(), tmp_path)
    loaded, _, saved = load_task_model(tmp_path / "m")
    assert saved.backbone["arch"] == "lstm" and saved.init == "scratch"
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
