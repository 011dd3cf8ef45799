"""The masked-LM objective (BERT masking statistics, loss only where masked, bidirectional
backbone) and the config-time rejection of combinations that cannot work."""

import numpy as np
import pytest
import torch
from conftest import compose
from omegaconf import OmegaConf

from lmforge.config import HYPERPARAMETERS
from lmforge.errors import ConfigError
from lmforge.models.heads import IGNORE_INDEX as IGNORE
from lmforge.models.transformer import Transformer, TransformerConfig
from lmforge.params import check
from lmforge.stages import pretrain
from lmforge.train.lm import LMModule, MLMMasker, next_token_pairs

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


def encoder(causal: bool) -> Transformer:
    return Transformer(
        TransformerConfig(
            vocab_size=60, pad_id=0, causal=causal, d_model=32, n_layers=2, n_heads=4, d_ff=64, max_len=16
        )
    )


def test_mlm_trains_a_bidirectional_encoder_and_refuses_a_causal_one():
    with pytest.raises(ValueError, match="bidirectional"):
        LMModule(encoder(causal=True), None, 10, objective="mlm")
    torch.manual_seed(0)
    module = LMModule(encoder(causal=False), None, 10, objective="mlm")
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
    """Composing params.yaml checks how model, objective and tasks go together (`lmforge.params.check`,
    asking the backbone's capabilities and each task's family), naming what cannot work; the
    pretrain stage asks the same before it reads any data."""

    def cfg(*overrides):
        return compose(["experiment=smoke", "tracking=none", *overrides], root=tmp_path)

    def validate(*overrides):
        check(OmegaConf.masked_copy(cfg(*overrides), list(HYPERPARAMETERS)))

    for ok in (
        ["model=lstm"],
        ["objective=mlm"],
        ["model=hf"],
        ["model=minilm", "objective=mlm"],
        ["model=hf", "model.hf_model_type=bert", "objective=mlm"],
    ):
        validate(*ok, "task=[topic,ner,qa]")

    with pytest.raises(ConfigError, match=r"objective=mlm with model=lstm cannot work.*both ways.*objective=clm"):
        validate("model=lstm", "objective=mlm")
    with pytest.raises(ConfigError, match=r"objective=clm with model=minilm cannot work.*left to right"):
        validate("model=minilm")  # an encoder
    with pytest.raises(ConfigError, match=r"objective=mlm with model=hf cannot work.*both ways"):
        validate("model=hf", "objective=mlm")  # GPT-2, a decoder
    with pytest.raises(ConfigError, match=r"model\.pretrained"):  # only model=hf reads a checkpoint
        validate("+model.pretrained=/tmp")
    # the stage refuses the same combinations itself (a run by hand, without params.yaml)
    with pytest.raises(ConfigError, match=r"objective=mlm with model=lstm cannot work.*objective=clm"):
        pretrain.run(cfg("model=lstm", "objective=mlm"))
    with pytest.raises(ConfigError, match=r"objective=clm with model=minilm cannot work.*objective=mlm"):
        pretrain.run(cfg("model=minilm"))

    # generation tasks need a decoder: the family says so, naming the task and the model
    for enc, name in (
        (["objective=mlm"], "gpt_tiny"),
        (["model=minilm", "objective=mlm"], "minilm"),
        (["model=hf", "model.hf_model_type=bert", "objective=mlm"], "hf"),
    ):
        for task in ("translation", "summarization"):
            with pytest.raises(
                ConfigError,
                match=rf"task '{task}' \({task}\) generates text.*model={name} "
                r"objective=mlm is bidirectional.*objective=clm",
            ):
                validate(*enc, f"task={task}")
    for dec in (["model=lstm"], ["model=hf"], []):
        validate(*dec, "task=[translation,summarization]")
