"""The real-data task configs on ../shared/data (SST-2, CoNLL-2003, Multi30k): their splits, and
the finetune → evaluate stages on them, tiny. Skipped without the data."""

from dataclasses import replace

import pytest
from conftest import compose

from lmforge.tasks import configure
from lmforge.tasks.splits import load_splits
from lmforge.tasks.tagging import entity_scores

pytestmark = pytest.mark.shared_data

FILES = {
    "sst2_local": ("sst2/train.tsv", "sst2/dev.tsv"),
    "conll2003_local": ("conll2003/eng.train", "conll2003/eng.testa"),
    "multi30k_local": ("multi30k/train", "multi30k/val"),
}


def data_overrides(shared_data, task: str) -> list[str]:
    """The task's files, wherever the shared data lies."""
    train, test = FILES[task]
    return [f"task.{task}.data.train={shared_data / train}", f"task.{task}.data.test={shared_data / test}"]


def splits_of(shared_data, tmp_path, task: str, *overrides: str):
    cfg = compose([f"task={task}", *data_overrides(shared_data, task), *overrides], root=tmp_path)
    family = configure(task, cfg.task[task])
    return load_splits(family, cfg.seed, cfg.max_task_records, tmp_path / "index", tmp_path), family


def test_sst2_local(shared_data, tmp_path):
    splits, _ = splits_of(shared_data, tmp_path, "sst2_local")  # all of it by default
    assert len(splits["test"]) == 872 and len(splits["train"]) + len(splits["validation"]) == 67349
    assert {r["label"] for r in splits["test"]} == {"negative", "positive"} and splits.skipped["train"] == 0
    small, _ = splits_of(shared_data, tmp_path, "sst2_local", "task.sst2_local.data.max_train=4000")
    assert len(small["train"]) == 4000  # a CPU-sized subset, when asked for


def test_conll2003_local_is_iob2(shared_data, tmp_path):
    splits, family = splits_of(shared_data, tmp_path, "conll2003_local")  # all of it by default
    assert len(splits["train"]) + len(splits["validation"]) == 14041 and len(splits["test"]) == 3250
    for r in splits["train"][:2000]:
        for prev, tag in zip(["O"] + r["tags"], r["tags"]):
            assert not (tag.startswith("I-") and prev[2:] != tag[2:]), r  # IOB2: I- continues an entity
    gold = [r["tags"] for r in splits["test"]]
    assert entity_scores(gold, gold)["f1"] == 1.0
    types = {t[2:] for r in splits["test"] for t in r["tags"] if t != "O"}
    assert types == {"PER", "ORG", "LOC", "MISC"}
    base = family.baseline(splits["train"], splits["test"], {}, 0)
    assert 0.3 < entity_scores(gold, base)["f1"] < 0.9  # each word's most frequent tag: a real but weak baseline


def test_multi30k_local(shared_data, tmp_path):
    splits, family = splits_of(shared_data, tmp_path, "multi30k_local")
    assert len(splits["test"]) == 500 and len(splits["train"]) == 5000
    r = splits["test"][0]
    assert r["source"] and r["target"] and r["source"] != r["target"]
    copy = family.baseline(splits["train"], splits["test"], {}, 0)
    assert copy[0] == r["source"] and 0 < family.scores(copy, splits["test"], {})["bleu"] < 10


SMOKE = [
    "experiment=smoke",
    "tracking=none",
    "inits=[pretrained]",
    "progress=false",
    "trainer.accelerator=cpu",
    "trainer.precision=32-true",
]


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory):
    """A project root with what finetune and evaluate read: the smoke experiment's model,
    'pretrained' (random weights, a small BPE tokenizer), and a corpus index."""
    from task_utils import tokenizer, write_index

    from lmforge.config import to_container
    from lmforge.data.tokenizer import save_tokenizer, special_ids
    from lmforge.models import settings
    from lmforge.models.heads import CausalLM
    from lmforge.saved_model import SavedModel

    root = tmp_path_factory.mktemp("root")
    cfg = compose(SMOKE, root=root)
    tok = tokenizer(vocab_size=500)
    save_tokenizer(tok, root / "tok")
    cls, model = settings(cfg.model)
    backbone = cls.create(
        replace(
            model, vocab_size=tok.get_vocab_size(with_added_tokens=True), pad_id=special_ids(tok)["pad"], causal=True
        )
    )
    SavedModel(
        kind="language_model", backbone=backbone.spec(), objective=cfg.objective.name, model=to_container(cfg)["model"]
    ).save(root / "artifacts/pretrain/model", CausalLM(backbone).state_dict(), root / "tok", backbone.cfg.max_len)
    write_index(root / "artifacts/prepare/index")
    return root


@pytest.mark.parametrize(
    "task,settings",
    [
        ("sst2_local", []),
        ("conll2003_local", []),
        ("multi30k_local", ["max_source_length=24", "max_target_length=16"]),
    ],
)
def test_finetune_and_evaluate_stages_on_real_files(shared_data, tiny_root, one_thread, task, settings):
    """The README's commands, in process and tiny: a config change is all real data needs."""
    import json

    from lmforge.saved_model import SavedModel
    from lmforge.stages import evaluate, finetune

    root = tiny_root
    cfg = compose(
        [
            f"task={task}",
            *SMOKE,
            *data_overrides(shared_data, task),
            *(f"task.{task}.{s}" for s in ["data.max_train=48", "data.max_eval=16", "max_epochs=1", *settings]),
        ],
        root=root,
    )
    summary = finetune.run(cfg)[task]["pretrained"]
    assert summary["n_train"] == 48 and summary["family"] == cfg.task[task].family and summary["task"] == task
    saved = SavedModel.load(root / f"artifacts/finetune/{task}/pretrained/model")
    assert (saved.kind, saved.task, saved.family, saved.init) == (
        "task_model",
        task,
        cfg.task[task].family,
        "pretrained",
    )
    results = evaluate.run(cfg)[task]
    assert results["n_test"] == 16 and results["inits"] == ["pretrained"]
    written = json.loads((root / f"reports/metrics/{task}.json").read_text())
    assert set(written) >= {"pretrained", "baseline", "metric", "scale", "contamination"}
    assert 0 <= written["pretrained"][written["metric"]] <= written["scale"]
    assert written["contamination"]["test"]["docs"] == 16
    predictions = (root / f"reports/predictions/{task}.jsonl").read_text().splitlines()
    assert len(predictions) == 16 and "pretrained" in json.loads(predictions[0])
