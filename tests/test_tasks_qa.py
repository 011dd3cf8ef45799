"""Extractive QA: windows with doc stride, answer offsets, n-best decoding, a learnable signal."""

from task_utils import backbone, fit, task_cfg, tokenizer, world

from lmforge.tasks import family
from lmforge.tasks.qa import overlap_answer, windows


def test_windows_overlap_by_the_stride_and_cover_the_context():
    assert windows(10, 20, 4) == [(0, 10)]
    w = windows(50, 20, 8)
    assert w == [(0, 20), (12, 32), (24, 44), (36, 50)]
    assert all(b[0] == a[1] - 8 for a, b in zip(w, w[1:-1]))


def test_features_label_the_answer_only_in_windows_that_hold_it():
    data = world(("qa",))
    tok = tokenizer(data.corpus)
    fam = family("qa")
    task = task_cfg(max_length=40, doc_stride=12)
    r = data.tasks["qa"]["train"][0]
    feats = fam.features([r], tok, {}, task, train=True)
    assert len(feats) > 1 and all(len(f["input_ids"]) <= 40 for f in feats)
    answer = r["answers"]["text"][0]
    found = [f for f in feats if f["start"] != f["context_mask"].index(1)]
    assert found, "some window holds the answer"
    for f in found:  # the labelled tokens decode to the answer
        assert tok.decode(f["input_ids"][f["start"]: f["end"] + 1]).strip() == answer


def test_tiny_model_overfits_a_handful_of_questions():
    data = world(("qa",))
    tok = tokenizer(data.corpus)
    fam = family("qa")
    train = data.tasks["qa"]["train"][:8]
    task = task_cfg(max_length=64, doc_stride=16, max_answer_length=8)
    model = fam.build(backbone(tok), {})
    fit(fam, model, train, tok, {}, task, epochs=40)
    preds = fam.predict(model, train, tok, {}, task)
    assert fam.scores(preds, train, {})["exact_match"] >= 75.0
    # a shorter maximum answer length is obeyed
    short = fam.predict(model, train, tok, {}, task_cfg(max_length=64, doc_stride=16, max_answer_length=1))
    assert all(len(tok.encode(p).ids) <= 2 for p in short)


def test_overlap_baseline_picks_the_matching_sentence():
    ctx = "Anna Berg lives in Oslo. Tom Kran was born in Rome in 1950. Tom Kran works for Delta Air."
    assert overlap_answer("Where was Tom Kran born?", ctx) == "Rome"
    assert overlap_answer("Who runs Delta Air?", "Delta Air is led by Mia Holt. It dates back to 1920.") == "Mia Holt"
