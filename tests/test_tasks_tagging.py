"""NER (token classification): sub-token alignment, echo input, and a learnable signal."""

from task_utils import backbone, fit, task_cfg, tokenizer, world

from lmforge.tasks import family
from lmforge.tasks.base import IGNORE
from lmforge.tasks.tagging import encode_words, first_subtokens


def test_labels_sit_on_the_first_subtoken_of_each_word():
    data = world(("ner",))
    tok = tokenizer(data.corpus)
    words = ["Zaughvessfordham", "visited", "Bestouford", "."]
    ids, word_ids = encode_words(tok, words)
    assert len(ids) > len(words)  # the invented name is split into several sub-tokens
    assert tok.decode(ids) == " ".join(words)
    fam = family("tagging")
    labels = ["B-LOC", "B-PER", "I-PER", "O"]
    for echo in (False, True):
        meta = {"labels": labels, "echo": echo}
        feat = fam.features([{"tokens": words, "tags": ["B-PER", "O", "B-LOC", "O"]}], tok, meta,
                            task_cfg(max_length=64), train=True)[0]
        tagged = [(i, y) for i, y in enumerate(feat["labels"]) if y != IGNORE]
        assert [labels[y] for _, y in tagged] == ["B-PER", "O", "B-LOC", "O"]
        offset = len(ids) + 1 if echo else 0
        assert [i for i, _ in tagged] == [offset + p for p in first_subtokens(word_ids).values()]
        if echo:  # words <sep> words: the labels are on the second copy
            assert feat["input_ids"] == ids + [4] + ids


def test_tiny_model_overfits_a_handful_of_sentences():
    data = world(("ner",))
    tok = tokenizer(data.corpus)
    train = [r for r in data.tasks["ner"]["train"] if any(t != "O" for t in r["tags"])][:8]
    fam = family("tagging")
    task = task_cfg(max_length=96)
    bb = backbone(tok)
    meta = fam.meta({"train": train}, data.labels["ner"], bb)
    assert meta["echo"] is True  # a causal backbone reads the sentence twice
    model = fam.build(bb, meta)
    fit(fam, model, train, tok, meta, task, epochs=40)
    preds = fam.predict(model, train, tok, meta, task)
    assert fam.scores(preds, train, meta)["f1"] >= 0.9
    # the baseline knows the training words: perfect on them, O for unseen words
    base = fam.baseline(train, train + [{"tokens": ["Unseenword"], "tags": ["B-PER"]}], meta, task, 0)
    assert base[-1] == ["O"] and fam.scores(base[:-1], train, meta)["f1"] > 0.8
