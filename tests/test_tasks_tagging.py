"""NER (token classification): sub-token alignment, echo input, and a learnable signal."""

import pytest
from task_utils import backbone, family, fit, labels, splits, tokenizer

from lmforge.data.tokenizer import special_ids
from lmforge.errors import DataError
from lmforge.models.heads import IGNORE_INDEX
from lmforge.tasks.base import loader
from lmforge.tasks.tagging import encode_words, first_subtokens


def test_labels_sit_on_the_first_subtoken_of_each_word():
    tok = tokenizer()
    words = ["Zaughvessfordham", "visited", "Bestouford", "."]
    ids, word_ids = encode_words(tok, words)
    assert len(ids) > len(words)  # the invented name is split into several sub-tokens
    assert tok.decode(ids) == " ".join(words)
    fam = family("ner", max_length=64)
    tags = ["B-LOC", "B-PER", "I-PER", "O"]
    sep = special_ids(tok)["sep"]
    for echo in (False, True):
        head = {"labels": tags, "echo": echo}
        feat = fam.features([{"tokens": words, "tags": ["B-PER", "O", "B-LOC", "O"]}], tok, head, train=True)[0]
        tagged = [(i, y) for i, y in enumerate(feat["labels"]) if y != IGNORE_INDEX]
        assert [tags[y] for _, y in tagged] == ["B-PER", "O", "B-LOC", "O"]
        offset = len(ids) + 1 if echo else 0
        assert [i for i, _ in tagged] == [offset + p for p in first_subtokens(word_ids).values()]
        if echo:  # words <sep> words: the labels are on the second copy
            assert feat["input_ids"] == ids + [sep] + ids
    with pytest.raises(DataError, match="'B-FOO' is not a tag of the model"):
        fam.features([{"tokens": ["x"], "tags": ["B-FOO"]}], tok, {"labels": tags, "echo": False}, train=True)


def test_tiny_model_overfits_a_handful_of_sentences(one_thread):
    tok = tokenizer()
    train = [r for r in splits("ner", 24)["train"] if any(t != "O" for t in r["tags"])][:8]
    fam = family("ner", max_length=96)
    bb = backbone(tok)
    head = fam.head_config({"train": train}, labels("ner"), bb)
    assert head["echo"] is True  # a causal backbone reads the sentence twice
    assert fam.head_config({"train": train}, None, backbone(tok, causal=False))["echo"] is False
    model = fam.build(bb, head)
    fit(fam, model, train, tok, head, epochs=40)
    preds = fam.predict(model, train, tok, head)
    assert fam.scores(preds, train, head)["f1"] >= 0.9
    # the baseline knows the training words: perfect on them, O for unseen words
    base = fam.baseline(train, train + [{"tokens": ["Unseenword"], "tags": ["B-PER"]}], head, 0)
    assert base[-1] == ["O"] and fam.scores(base[:-1], train, head)["f1"] > 0.8


def test_validation_f1_is_the_test_metric_summed_over_batches(one_thread):
    """What early stopping watches for NER is seqeval's entity F1 itself, batch by batch: summed over
    any batching it equals the F1 of the model's predictions on the same sentences."""
    tok = tokenizer()
    records = [r for r in splits("ner", 24)["train"] if any(t != "O" for t in r["tags"])][:12]
    fam = family("ner", max_length=96)
    bb = backbone(tok)
    head = fam.head_config({"train": records}, labels("ner"), bb)
    model = fam.build(bb, head)
    fit(fam, model, records[:6], tok, head, epochs=12)  # half-trained: some entities right, some not
    expected = fam.scores(fam.predict(model, records, tok, head), records, head)["f1"]
    assert 0.05 < expected < 0.95
    feats = fam.features(records, tok, head, train=True)
    for batch_size in (1, 5, 12):
        found = total = 0
        for batch in loader(feats, batch_size, special_ids(tok)["pad"], shuffle=False):
            _, _, hits, out_of = fam.val_step(model, batch, head)
            found, total = found + hits, total + out_of
        assert found / total == pytest.approx(expected, abs=1e-12)


def test_file_tags_must_be_iob2_after_reading():
    """Tags read as IOB2 that start an entity with I- (an IOB1 file) are refused before training."""
    fam = family("ner", data={"source": "local", "format": "conll", "train": "t", "test": "t"})
    iob1 = {"tokens": ["EU", "rejects"], "tags": ["I-ORG", "O"]}
    where = {"train": "eng.train", "validation": "v", "test": "t"}
    with pytest.raises(DataError, match=r"eng\.train: tag 'I-ORG' starts an entity after 'O'.*scheme=iob1"):
        fam.check_splits({"train": [iob1], "validation": [], "test": []}, where)
    converted = family("ner", data={"source": "local", "format": "conll", "train": "t", "test": "t", "scheme": "iob1"})
    assert converted.record(iob1, "eng.train:1")["tags"] == ["B-ORG", "O"]
    with pytest.raises(DataError, match="no entity to learn"):
        fam.check_splits({"train": [{"tokens": ["a"], "tags": ["O"]}], "validation": [], "test": []}, where)
