"""Summarization and translation as prefix LM: target-only loss, KV-cache decoding (greedy and
beam), a learnable signal, and the baselines."""

import pytest
import torch
from task_utils import backbone, family, fit, splits, tokenizer

from lmforge.data.tokenizer import special_ids
from lmforge.errors import ConfigError
from lmforge.models.heads import IGNORE_INDEX
from lmforge.tasks.prefix_lm import PrefixLM, _Cached, _Recompute, beam_search, generate
from lmforge.tasks.summarization import lead
from lmforge.tasks.translation import word_by_word


def test_loss_is_on_the_target_only():
    tok = tokenizer()
    ids = special_ids(tok)
    fam = family("translation", max_source_length=40, max_target_length=40)
    r = splits("translation")["train"][0]
    f = fam.features([r], tok, {}, train=True)[0]
    src = tok.encode(r["source"]).ids
    tgt = tok.encode(r["target"]).ids
    assert f["input_ids"] == src + [ids["sep"]] + tgt + [ids["eos"]]  # source <sep> target <eos>
    assert f["labels"] == [IGNORE_INDEX] * len(src) + tgt + [ids["eos"]] + [IGNORE_INDEX]  # position t predicts t+1
    # the source is cut to max_source_length, the target to max_target_length (then <eos>)
    short = family("translation", max_source_length=3, max_target_length=2).features([r], tok, {}, train=True)[0]
    assert short["input_ids"] == src[:3] + [ids["sep"]] + tgt[:2] + [ids["eos"]]


def test_cached_decoding_equals_full_recomputation():
    tok = tokenizer()
    model = PrefixLM(backbone(tok)).eval()
    assert type(model.backbone).capabilities(model.backbone.cfg).generation == "kv_cache"
    sep = special_ids(tok)["sep"]
    prompts = [tok.encode(r["source"]).ids + [sep] for r in splits("translation")["train"][:6]]
    assert len({len(p) for p in prompts}) > 1  # left padding is exercised
    for k in (1, 3):
        cached = generate(model, prompts, 12, eos=1, pad=0, beam_size=k)
        recomputed = [beam_search(_Recompute(model, [p], 0), 1, 12, 1, 0, k)[0] for p in prompts]
        assert cached == recomputed
        assert all(len(c) <= 12 for c in cached)
    # left-padded prompts give each prompt's own next-token logits (positions from its first token)
    state = _Cached(model, prompts, 0)
    alone = torch.cat([_Recompute(model, [p], 0).first for p in prompts])
    torch.testing.assert_close(state.first, alone, atol=1e-4, rtol=1e-4)


def _overfit(task: str, epochs: int):
    tok = tokenizer()
    fam = family(task, max_source_length=96, max_target_length=64)
    train = splits(task)["train"][:8]
    bb = backbone(tok, max_len=192)
    fam.check_backbone(bb.cfg, type(bb).capabilities(bb.cfg), "the test model")
    model = fam.build(bb, fam.head_config({"train": train}, None, bb))
    fit(fam, model, train, tok, {}, epochs=epochs)
    return fam, model, tok, train


def test_tiny_model_overfits_translation_greedy_and_beam(one_thread):
    fam, model, tok, train = _overfit("translation", 60)
    greedy = fam.predict(model, train, tok, {})
    assert fam.scores(greedy, train, {})["bleu"] >= 80.0
    beam = family("translation", max_source_length=96, max_target_length=64, beam_size=3)
    assert beam.scores(beam.predict(model, train, tok, {}), train, {})["bleu"] >= 80.0


def test_tiny_model_overfits_summarization(one_thread):
    fam, model, tok, train = _overfit("summarization", 100)
    preds = fam.predict(model, train, tok, {})
    assert fam.scores(preds, train, {})["rougeL"] >= 80.0


def test_baselines():
    doc = "Alpha beat Beta on Sunday. The match was close. Fans cheered."
    assert lead(doc) == "Alpha beat Beta on Sunday."
    test = splits("translation")["test"]
    fam = family("translation")
    lex = fam.scores(word_by_word([r["source"] for r in test], 7), test, {})
    copy = fam.scores(fam.baseline([], test, {}, 7), test, {})
    assert fam.baseline([], test, {}, 7) == [r["source"] for r in test]  # baseline: copy (the default)
    assert lex["chrf"] > copy["chrf"] + 20  # the lexicon knows the target words; copying does not
    lexicon = family("translation", baseline="lexicon")
    assert lexicon.baseline([], test, {}, 7) == word_by_word([r["source"] for r in test], 7)


def test_generation_needs_a_causal_backbone_that_fits_source_and_target():
    tok = tokenizer()
    fam = family("summarization", max_source_length=96, max_target_length=32)
    encoder = backbone(tok, causal=False)
    with pytest.raises(ConfigError, match="generates text.*bidirectional"):
        fam.check_backbone(encoder.cfg, type(encoder).capabilities(encoder.cfg), "the test model")
    small = backbone(tok, max_len=64)
    with pytest.raises(ConfigError, match=r"max_source_length=96 \+ max_target_length=32 \+ 2 .* = 130 exceeds"):
        fam.check_backbone(small.cfg, type(small).capabilities(small.cfg), "the test model")
    with pytest.raises(ConfigError, match=r"task\.translation\.baseline=lexicon needs the built-in world"):
        family(
            "translation", baseline="lexicon", data={"source": "local", "format": "parallel", "train": "t", "test": "t"}
        )
