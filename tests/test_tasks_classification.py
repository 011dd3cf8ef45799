"""Classification through the family interface, what every family declares, and the reload of a
saved task model."""

from dataclasses import asdict

import pytest
import torch
from task_utils import backbone, family, fit, labels, splits, tokenizer, write_index

from lmforge.data.tokenizer import save_tokenizer
from lmforge.errors import ConfigError, DataError
from lmforge.saved_model import SavedModel
from lmforge.tasks import family_class, load_task_model
from lmforge.tasks.splits import load_splits

FAMILIES = ("classification", "tagging", "qa", "summarization", "translation")


def save_task_model(directory, fam, model, head, tok, tmp_path):
    save_tokenizer(tok, tmp_path / "tok")
    SavedModel(
        kind="task_model",
        backbone=model.backbone.spec(),
        objective="clm",
        task=fam.task,
        family=fam.name,
        task_config=asdict(fam.config),
        head=head,
        init="pretrained",
    ).save(directory, model.state_dict(), tmp_path / "tok")


def test_tiny_model_overfits_and_reloads(tmp_path, one_thread):
    tok = tokenizer()
    fam = family("topic", max_length=96)
    train = splits("topic")["train"][:10]
    head = fam.head_config({"train": train}, labels("topic"), None)
    assert head == {"labels": labels("topic"), "pooling": "mean"}
    model = fam.build(backbone(tok), head)
    fit(fam, model, train, tok, head, epochs=30)
    preds = fam.predict(model, train, tok, head)
    assert fam.scores(preds, train, head)["accuracy"] == 1.0
    counts = [r["label"] for r in train]
    assert (
        fam.baseline(train, train, head, 0) == [min(set(counts), key=lambda label: (-counts.count(label), label))] * 10
    )

    save_task_model(tmp_path / "m", fam, model, head, tok, tmp_path)
    loaded, fam2, saved = load_task_model(tmp_path / "m")
    assert (fam2.name, fam2.task, fam2.config) == (fam.name, fam.task, fam.config) and saved.head == head
    assert not loaded.training and fam2.predict(loaded, train, tok, saved.head) == preds


def test_last_token_pooling_is_kept_in_the_model_directory(tmp_path):
    """pooling=last reaches the model and its saved head; reloading pools the same way."""
    tok = tokenizer()
    fam = family("sentiment", max_length=96, pooling="last")
    train = splits("sentiment")["train"][:4]
    head = fam.head_config({"train": train}, labels("sentiment"), None)
    assert (
        head["pooling"] == "last" and family("sentiment").head_config({"train": train}, None, None)["pooling"] == "mean"
    )
    model = fam.build(backbone(tok), head).eval()
    assert model.pooling == "last"
    save_task_model(tmp_path / "m", fam, model, head, tok, tmp_path)
    loaded, _, _ = load_task_model(tmp_path / "m")
    ids = torch.tensor([tok.encode(train[0]["text"]).ids[:40]])
    # the reloaded model pools the last token too: mean pooling on the same weights differs
    mask = torch.ones_like(ids)
    out = loaded(ids, mask)
    torch.testing.assert_close(out, model(ids, mask))
    loaded.pooling = "mean"
    assert not torch.allclose(loaded(ids, mask), out)
    # a bidirectional backbone has no last token that read the whole text
    bidirectional = backbone(tok, causal=False)
    with pytest.raises(ConfigError, match="pooling=last"):
        fam.check_backbone(bidirectional.cfg, type(bidirectional).capabilities(bidirectional.cfg), "the test model")


def test_every_family_names_its_metrics_and_scale():
    """Each family's scores (of its own baseline, on world records) are exactly its metrics, on its scale."""
    tok = tokenizer()
    bb = backbone(tok, d_model=16, n_layers=1)
    for name, task in zip(FAMILIES, ("topic", "ner", "qa", "summarization", "translation")):
        cls = family_class(name)
        assert cls.name == name and cls.metrics and cls.scale in (1, 100), name
        assert cls.description.keys() == {"model", "metric", "baseline"}, name
        fam = family(task)
        data = splits(task)
        head = fam.head_config(data, labels(task), bb)
        scores = fam.scores(fam.baseline(data["train"], data["test"], head, 7), data["test"], head)
        assert set(scores) == set(cls.metrics) and fam.primary == cls.metrics[0], name
        assert all(0 <= v <= cls.scale for v in scores.values()), (name, scores)


def test_builtin_training_split_can_be_limited(tmp_path):
    """data.max_train keeps a seeded sample of the built-in training records (few-label runs);
    validation and test stay whole."""
    index = write_index(tmp_path / "index")

    def load(max_train):
        sizes = {"n_train": 20, "n_validation": 5, "n_test": 5, "max_train": max_train}
        return load_splits(family("sentiment", data=sizes), 0, None, index, tmp_path)

    full, few, again = load(None), load(6), load(6)
    assert len(full["train"]) == 20
    assert len(few["train"]) == 6 and few["train"] == again["train"] and few["train"] != full["train"][:6]
    assert all(r in full["train"] for r in few["train"])
    assert few["test"] == full["test"] and few["validation"] == full["validation"]


def test_splits_the_classifier_cannot_learn_are_refused():
    fam = family("topic")
    where = {"train": "train.tsv", "validation": "dev.tsv", "test": "test.tsv"}
    one = [{"text": "a", "label": "x"}, {"text": "b", "label": "x"}]
    with pytest.raises(DataError, match=r"train\.tsv: the training split has one label \('x'\)"):
        fam.check_splits({"train": one, "validation": one, "test": one}, where)
    two = one + [{"text": "c", "label": "y"}]
    with pytest.raises(DataError, match=r"test\.tsv: labels \['z'\] of the test split"):
        fam.check_splits({"train": two, "validation": two, "test": [{"text": "d", "label": "z"}]}, where)
