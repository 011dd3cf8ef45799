"""Classification through the family interface, and the registry's reload of any task model."""

from task_utils import backbone, fit, task_cfg, tokenizer, world

from lmforge.models.io import write_model_dir
from lmforge.tasks import FAMILIES, family, load_model


def test_tiny_model_overfits_and_reloads(tmp_path):
    data = world(("topic",))
    tok = tokenizer(data.corpus)
    fam = family("classification")
    train = data.tasks["topic"]["train"][:10]
    task = task_cfg(max_length=96)
    meta = fam.meta({"train": train}, data.labels["topic"], None)
    model = fam.build(backbone(tok), meta)
    fit(fam, model, train, tok, meta, task, epochs=30)
    preds = fam.predict(model, train, tok, meta, task)
    assert fam.scores(preds, train, meta)["accuracy"] == 1.0
    assert fam.baseline(train, train, meta, task, 0) == [sorted({r["label"] for r in train},
                                                               key=lambda l: (-[r["label"] for r in train].count(l), l))[0]] * 10

    tok.save(str(tmp_path / "tokenizer.json"))
    write_model_dir(tmp_path / "m", model, {"kind": fam.kind, "family": fam.name, "meta": meta,
                                            "backbone": {"arch": "transformer", **model.backbone.cfg.to_dict()}}, tmp_path)
    loaded, fam2, _ = load_model(tmp_path / "m")
    assert fam2 is fam and fam.predict(loaded, train, tok, meta, task) == preds


def test_last_token_pooling_is_kept_in_the_model_directory(tmp_path):
    """task.pooling=last reaches the model and its saved meta; reloading pools the same way."""
    import torch

    data = world(("sentiment",))
    tok = tokenizer(data.corpus)
    fam = family("classification")
    train = data.tasks["sentiment"]["train"][:4]
    task = task_cfg(max_length=96, pooling="last")
    meta = fam.meta({"train": train}, data.labels["sentiment"], None, task)
    assert meta["pooling"] == "last" and fam.meta({"train": train}, None, None)["pooling"] == "mean"
    model = fam.build(backbone(tok), meta).eval()
    assert model.pooling == "last"
    tok.save(str(tmp_path / "tokenizer.json"))
    write_model_dir(tmp_path / "m", model, {"kind": fam.kind, "family": fam.name, "meta": meta,
                                            "backbone": {"arch": "transformer", **model.backbone.cfg.to_dict()}}, tmp_path)
    loaded, _, _ = load_model(tmp_path / "m")
    ids = torch.tensor([tok.encode(train[0]["text"]).ids[:40]])
    # the reloaded model pools the last token too: mean pooling on the same weights differs
    mask = torch.ones_like(ids)
    out = loaded(ids, mask)
    torch.testing.assert_close(out, model(ids, mask))
    loaded.pooling = "mean"
    assert not torch.allclose(loaded(ids, mask), out)


def test_every_family_names_its_metrics_and_scales():
    for name, fam in FAMILIES.items():
        assert fam.metrics and set(fam.metrics) == set(fam.scales), name
        assert all(s in (1, 100) for s in fam.scales.values())


def test_builtin_training_split_can_be_limited(tmp_path):
    """task.data.max_train keeps a seeded subset of the built-in training records (few-label runs);
    validation and test stay whole."""
    from conftest import compose
    from lmforge.fileio import write_jsonl
    from lmforge.tasks import load_splits

    data = world(("topic",))
    for split, records in data.tasks["topic"].items():
        write_jsonl(tmp_path / "topic" / f"{split}.jsonl", records)
    full, _, _ = load_splits(compose(["task=topic", "task.data.max_train=null"]).task, tmp_path, 0)
    few, _, _ = load_splits(compose(["task=topic", "task.data.max_train=5"]).task, tmp_path, 0)
    again, _, _ = load_splits(compose(["task=topic", "task.data.max_train=5"]).task, tmp_path, 0)
    assert len(full["train"]) == len(data.tasks["topic"]["train"]) > 5
    assert len(few["train"]) == 5 and few["train"] == again["train"]
    assert all(r in full["train"] for r in few["train"])
    assert few["test"] == full["test"] and few["validation"] == full["validation"]
