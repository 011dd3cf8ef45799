"""The real-data task configs on ../shared/data (SST-2, CoNLL-2003, Multi30k): skipped without it."""

import pytest
from conftest import ROOT, compose

from lmforge.tasks import family, load_splits
from lmforge.tasks.metrics import entity_scores

pytestmark = pytest.mark.shared_data


def splits_of(task: str, *overrides: str):
    cfg = compose([f"task={task}", f"paths.root={ROOT}", *overrides])
    return load_splits(cfg.task, ROOT / "artifacts/prepare/tasks", seed=1234), cfg


def test_sst2_local(shared_data):
    (splits, labels, skipped), cfg = splits_of("sst2_local", "task.data.max_train=null")
    assert len(splits["test"]) == 872 and len(splits["train"]) + len(splits["validation"]) == 67349
    assert {r["label"] for r in splits["test"]} == {"negative", "positive"} and skipped["train"] == 0
    (small, _, _), _ = splits_of("sst2_local")
    assert len(small["train"]) == 4000  # the configured CPU-sized subset


def test_conll2003_local_is_iob2(shared_data):
    (splits, _, _), cfg = splits_of("conll2003_local", "task.data.max_train=null", "task.data.max_eval=null")
    assert len(splits["train"]) + len(splits["validation"]) == 14041 and len(splits["test"]) == 3250
    for r in splits["train"][:2000]:
        for prev, tag in zip(["O"] + r["tags"], r["tags"]):
            assert not (tag.startswith("I-") and prev[2:] != tag[2:]), r  # IOB2: I- continues an entity
    gold = [r["tags"] for r in splits["test"]]
    assert entity_scores(gold, gold)["f1"] == 1.0
    types = {t[2:] for r in splits["test"] for t in r["tags"] if t != "O"}
    assert types == {"PER", "ORG", "LOC", "MISC"}
    base = family("tagging").baseline(splits["train"], splits["test"], {}, cfg.task, 0)
    assert 0.3 < entity_scores(gold, base)["f1"] < 0.9  # most-frequent-tag: a real but weak baseline


def test_multi30k_local(shared_data):
    (splits, _, _), cfg = splits_of("multi30k_local")
    assert len(splits["test"]) == 500 and len(splits["train"]) == 5000
    r = splits["test"][0]
    assert r["source"] and r["target"] and r["source"] != r["target"]
    fam = family("translation")
    copy = fam.baseline(splits["train"], splits["test"], {}, cfg.task, 0)
    assert copy[0] == r["source"] and 0 < fam.scores(copy, splits["test"], {})["bleu"] < 10


@pytest.fixture(scope="module")
def tiny_pretrained(tmp_path_factory):
    """A project root with a tiny 'pretrained' model (random weights, a small BPE tokenizer)."""
    from task_utils import backbone, tokenizer, world

    from lmforge.data.tokenizer import save_tokenizer
    from lmforge.models.heads import CausalLM
    from lmforge.models.io import write_model_dir

    root = tmp_path_factory.mktemp("root")
    tok = tokenizer(world(("ner",)).corpus, vocab_size=500)
    save_tokenizer(tok, root / "tok")
    bb = backbone(tok, d_model=32, n_layers=1, max_len=64)
    write_model_dir(root / "artifacts/pretrain/model", CausalLM(bb),
                    {"kind": "causal_lm", "backbone": {"arch": "transformer", **bb.cfg.to_dict()}}, root / "tok")
    return root


@pytest.mark.parametrize("task,files", [
    ("sst2_local", ("sst2/train.tsv", "sst2/dev.tsv")),
    ("conll2003_local", ("conll2003/eng.train", "conll2003/eng.testa")),
    ("multi30k_local", ("multi30k/train", "multi30k/val")),
])
def test_finetune_and_evaluate_stages_on_real_files(shared_data, tiny_pretrained, task, files):
    """The README's commands, in process and tiny: a config change is all real data needs."""
    import json

    from lmforge.stages import evaluate, finetune

    root = tiny_pretrained
    cfg = compose([f"task={task}", "experiment=smoke", "tracking=none", f"paths.root={root}",
                   f"task.data.train={shared_data / files[0]}", f"task.data.test={shared_data / files[1]}",
                   "task.data.max_train=48", "task.data.max_eval=16", "task.max_epochs=1",
                   "task.max_source_length=24", "task.max_target_length=16"])
    for init in ("pretrained", "scratch"):
        cfg.init = init
        summary = finetune.run(cfg)
        assert summary["n_train"] == 48 and summary["family"] == cfg.task.family
    results = evaluate.run(cfg)
    assert results["n_test"] == 16
    saved = json.loads((root / f"reports/metrics/{task}.json").read_text())
    assert set(saved) >= {"pretrained", "scratch", "baseline", "metric", "scale"}
    assert 0 <= saved["pretrained"][saved["metric"]] <= saved["scale"]
