"""Extractive QA: windows with doc stride, answer offsets, n-best decoding, a learnable signal."""

import itertools

import pytest
import torch
from task_utils import backbone, family, fit, splits, tokenizer

from lmforge.errors import ConfigError
from lmforge.tasks.qa import answer_tokens, best_spans, overlap_answer, windows


def test_windows_overlap_by_the_stride_and_cover_the_context():
    assert windows(10, 20, 4) == [(0, 10)]
    w = windows(50, 20, 8)
    assert w == [(0, 20), (12, 32), (24, 44), (36, 50)]
    assert all(b[0] == a[1] - 8 for a, b in itertools.pairwise(w[:-1]))  # the last window ends at the end
    # the answer's characters [6, 11) lie in tokens 1 and 2
    assert answer_tokens([(0, 5), (6, 9), (9, 11), (12, 15)], 6, 11) == (1, 2)
    assert answer_tokens([(0, 5)], 6, 11) is None


def test_features_label_the_answer_only_in_windows_that_hold_it():
    tok = tokenizer()
    fam = family("qa", max_length=40, doc_stride=12)
    r = splits("qa")["train"][0]
    feats = fam.features([r], tok, {}, train=True)
    assert len(feats) > 1 and all(len(f["input_ids"]) <= 40 for f in feats)
    answer = r["answers"]["text"][0]
    found = [f for f in feats if f["start"] != f["context_mask"].index(1)]
    assert found, "some window holds the answer"
    assert len(found) < len(feats), "some window does not"
    for f in found:  # the labelled tokens decode to the answer
        assert tok.decode(f["input_ids"][f["start"] : f["end"] + 1]).strip() == answer


def test_tiny_model_overfits_a_handful_of_questions(one_thread):
    tok = tokenizer()
    fam = family("qa", max_length=64, doc_stride=16, max_answer_length=8)
    train = splits("qa")["train"][:8]
    model = fam.build(backbone(tok), {})
    fit(fam, model, train, tok, {}, epochs=40)
    preds = fam.predict(model, train, tok, {})
    assert fam.scores(preds, train, {})["exact_match"] >= 75.0
    # a shorter maximum answer length is obeyed
    short = family("qa", max_length=64, doc_stride=16, max_answer_length=1).predict(model, train, tok, {})
    assert all(len(tok.encode(p).ids) <= 2 for p in short)


def test_overlap_baseline_picks_the_matching_sentence():
    ctx = "Anna Berg lives in Oslo. Tom Kran was born in Rome in 1950. Tom Kran works for Delta Air."
    assert overlap_answer("Where was Tom Kran born?", ctx) == "Rome"
    assert overlap_answer("Who runs Delta Air?", "Delta Air is led by Mia Holt. It dates back to 1920.") == "Mia Holt"


def test_stride_must_leave_room_for_new_context():
    with pytest.raises(ConfigError, match=r"task\.qa\.doc_stride=32 must be below half of task\.qa\.max_length=64"):
        family("qa", max_length=64, doc_stride=32)
    assert family("qa").config.doc_stride < family("qa").config.max_length // 2  # the defaults agree


def test_validation_picks_the_span_prediction_would_and_scores_its_token_f1():
    torch.manual_seed(0)
    start, end = torch.randn(6, 12), torch.randn(6, 12)
    s, e = best_spans(start, end, max_length=3)
    for b in range(6):  # against every allowed pair
        pairs = [(i, j) for i in range(12) for j in range(i, min(i + 3, 12))]
        assert (s[b].item(), e[b].item()) == max(pairs, key=lambda p: start[b, p[0]] + end[b, p[1]])
    # gold 4..6; prediction 5..8 shares 2 tokens: F1 = 2·2 / (4 + 3)
    start, end = torch.full((1, 10), -5.0), torch.full((1, 10), -5.0)
    start[0, 5], end[0, 8] = 5.0, 5.0
    batch = {"start": torch.tensor([4]), "end": torch.tensor([6]), "context_mask": torch.ones(1, 10)}
    batch |= {"input_ids": torch.zeros(1, 10, dtype=torch.long), "attention_mask": torch.ones(1, 10)}
    v = family("qa", max_answer_length=5).val_step(lambda ids, mask: (start, end), batch, {})
    assert v.out_of == 1 and abs(v.hits - 4 / 7) < 1e-6
