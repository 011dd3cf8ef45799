"""The masked-LM objective (BERT masking statistics, loss only where masked, bidirectional
backbone) and the config-time rejection of combinations that cannot work."""

import numpy as np
import pytest
import torch

from conftest import compose
from lmforge.config import check_combination, validate
from lmforge.errors import ConfigError
from lmforge.models import backbone_spec
from lmforge.train.lm import IGNORE, LMModule, MLMMasker, next_token_pairs

SPECIAL = [0, 1, 2, 3, 4, 5]  # lmforge: <pad> <eos> <unk> <mask> <sep> <cls>
MASK = 3


pytestmark = pytest.mark.usefixtures("one_thread")


def test_bert_masking_statistics():
    vocab = 500
    gen = torch.Generator().manual_seed(0)
    windows = torch.randint(6, vocab, (64, 513), generator=gen)
    windows[:, ::10] = 1  # <eos> separators: never masked
    masker = MLMMasker(MASK, vocab, SPECIAL, prob=0.15)
    inputs, labels = masker(windows, np.random.default_rng(0))
    ids = windows[:, :-1]
    assert inputs.shape == labels.shape == ids.shape == (64, 512)

    chosen = labels != IGNORE
    ordinary = ids != 1
    assert not chosen[~ordinary].any() and torch.equal(inputs[~ordinary], ids[~ordinary])
    assert torch.equal(labels[chosen], ids[chosen])  # the targets are the original tokens
    assert not torch.equal(inputs[~chosen], inputs[~chosen] * 0) and torch.equal(inputs[~chosen], ids[~chosen])
    frac = chosen.sum().item() / ordinary.sum().item()
    assert frac == pytest.approx(0.15, abs=0.01)
    n = chosen.sum().item()
    masked = (inputs[chosen] == MASK).sum().item() / n
    kept = (inputs[chosen] == ids[chosen]).sum().item() / n
    swapped = 1 - masked - kept
    assert masked == pytest.approx(0.8, abs=0.02)
    assert kept == pytest.approx(0.1, abs=0.015)  # a random swap may draw the same token: ~0.1%
    assert swapped == pytest.approx(0.1, abs=0.015)
    replaced = inputs[chosen & (inputs != MASK) & (inputs != ids)]
    assert not torch.isin(replaced, torch.tensor(SPECIAL)).any()  # random tokens are ordinary ones

    # deterministic in the batch's generator (resume sees the same masks), different across batches
    again = masker(windows, np.random.default_rng(0))
    other = masker(windows, np.random.default_rng(1))
    assert torch.equal(again[0], inputs) and torch.equal(again[1], labels)
    assert not torch.equal(other[1], labels)


def test_at_least_one_token_is_masked():
    masker = MLMMasker(MASK, 50, SPECIAL, prob=0.01)
    _, labels = masker(torch.tensor([[7, 8, 1]]), np.random.default_rng(3))
    assert (labels != IGNORE).sum() >= 1


def spec(causal: bool) -> dict:
    model = {"arch": "transformer", "d_model": 32, "n_layers": 2, "n_heads": 4, "d_ff": 64, "max_len": 16}
    return backbone_spec(model, vocab_size=60, pad_id=0, causal=causal)


def test_mlm_trains_a_bidirectional_encoder_and_refuses_a_causal_one():
    with pytest.raises(ValueError, match="bidirectional"):
        LMModule(spec(causal=True), {}, 10, objective="mlm")
    torch.manual_seed(0)
    module = LMModule(spec(causal=False), {}, 10, objective="mlm")
    assert module.backbone.cfg.causal is False
    # a token is predictable only from its right-hand neighbour: seq = [a, a+1, a+2, ...]
    starts = torch.randint(6, 40, (32, 1))
    windows = starts + torch.arange(17)
    masker = MLMMasker(MASK, 60, SPECIAL, prob=0.15)
    opt = torch.optim.AdamW(module.parameters(), lr=3e-3)
    losses = []
    for step in range(60):
        batch = masker(windows, np.random.default_rng(step))
        loss = module._loss(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.mean(losses[-10:]) < 0.75 * np.mean(losses[:5])
    # the loss reads only the chosen positions: changing the labels elsewhere changes nothing
    x, y = masker(windows, np.random.default_rng(99))
    assert module._loss((x, y)).item() == pytest.approx(module._loss((x, y.clone())).item())
    clm = next_token_pairs(windows)
    assert torch.equal(clm[1][:, :-1], clm[0][:, 1:])


def test_incompatible_combinations_fail_at_config_time(tmp_path):
    def cfg(*overrides):
        return compose(["experiment=smoke", *overrides], root=tmp_path)

    for ok in (["model=lstm"], ["objective=mlm"], ["model=hf"], ["model=minilm", "objective=mlm"],
               ["model=hf", "model.hf_model_type=bert", "objective=mlm"]):
        validate(cfg(*ok))

    with pytest.raises(ConfigError, match=r"objective=mlm with model.arch=lstm.*objective=clm with model=lstm"):
        validate(cfg("model=lstm", "objective=mlm"))
    with pytest.raises(ConfigError, match=r"objective=clm with model.arch=hf model.pretrained='pkg:gt_all.*encoder.*objective=mlm"):
        validate(cfg("model=minilm"))
    with pytest.raises(ConfigError, match=r"objective=mlm with model.arch=hf model.hf_model_type='gpt2'.*decoder"):
        validate(cfg("model=hf", "objective=mlm"))
    with pytest.raises(ConfigError, match=r"model.pretrained=.* is read only by model.arch=hf"):
        validate(cfg("model.pretrained=/tmp"))

    # generation tasks need a decoder (the family check, independent of which families exist yet)
    for enc in (["objective=mlm"], ["model=minilm", "objective=mlm"]):
        c = cfg(*enc)
        c.task.name, c.task.family = "translation", "translation"
        with pytest.raises(ConfigError, match=r"task='translation'.*generates text.*encoder-only.*objective=clm"):
            check_combination(c)
    with pytest.raises(ConfigError, match=r"task='translation'.*generates text"):  # the real task config
        validate(cfg("objective=mlm", "task=translation"))
    validate(cfg("model=lstm", "task=translation"))
    for dec in (["model=lstm"], ["model=hf"], []):
        c = cfg(*dec)
        c.task.name, c.task.family = "summarization", "summarization"
        check_combination(c)
