"""What a run records is what it used: a stage reads only the sections it declares (DVC's params of
it), evaluate scores only models that belong to this run, a stage refuses a model directory its
config does not describe, and a DVC stage refuses a params.yaml composed from another conf/."""

from __future__ import annotations

import shutil

import pytest
from conftest import ROOT, compose
from omegaconf import OmegaConf

from lmforge.config import load_params, narrow
from lmforge.errors import ConfigError, DataError

TINY = [
    "experiment=smoke",
    "task=topic",
    "tracking=none",
    "progress=false",
    "trainer.precision=32-true",
    "task.topic.max_epochs=1",
]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """prepare → pretrain → finetune (both inits) of topic, in-process at smoke size."""
    from lmforge.stages import finetune, prepare, pretrain

    root = tmp_path_factory.mktemp("records")
    for stage in (prepare, pretrain, finetune):
        stage.run(compose(TINY, root=root))
    return root


def test_a_stage_gets_only_the_sections_it_declares():
    cfg = narrow(compose(TINY + ["task=[topic,ner]", "only_task=ner"]), ("seed", "trainer", "task"))
    assert cfg.model is None and cfg.optim is None and cfg.data is None  # withheld: reading one fails at once
    assert list(cfg.task) == ["ner"] and cfg.trainer.max_steps == 20
    with pytest.raises(ConfigError, match="only_task='sst2' is not one of the configured tasks"):
        narrow(compose(TINY + ["only_task=sst2"]), ("task",))


def test_evaluate_refuses_what_does_not_belong_to_this_run(run, tmp_path):
    from lmforge.stages import evaluate

    root = tmp_path / "r"
    shutil.copytree(run, root)
    assert set(evaluate.run(compose(TINY, root=root))["topic"]["inits"]) == {"pretrained", "scratch"}
    # settings read only at evaluation may change: re-evaluating with them is the point
    evaluate.run(compose(TINY + ["task.topic.n_predictions=3"], root=root))
    # a model fine-tuned with other training settings
    with pytest.raises(DataError, match=r"other settings \(task.topic.lr\).*python pipelines/finetune.py task=topic"):
        evaluate.run(compose(TINY + ["task.topic.lr=0.5"], root=root))
    # a missing init: says which command makes it
    shutil.rmtree(root / "artifacts/finetune/topic/scratch")
    with pytest.raises(DataError, match="no fine-tuned scratch model of task 'topic'.*finetune.py task=topic"):
        evaluate.run(compose(TINY, root=root))
    assert evaluate.run(compose(TINY + ["inits=[pretrained]"], root=root))["topic"]["inits"] == ["pretrained"]
    # a model fine-tuned from another pretrained model (here: the pretrained model was replaced)
    from lmforge.stages import pretrain

    pretrain.run(compose(TINY + ["seed=7"], root=root))
    with pytest.raises(DataError, match="fine-tuned from another pretrained model"):
        evaluate.run(compose(TINY + ["inits=[pretrained]"], root=root))


def test_finetune_refuses_a_pretrained_model_its_config_does_not_describe(run, tmp_path):
    from lmforge.stages import finetune

    with pytest.raises(
        ConfigError,
        match=r"model=lstm objective=clm is not what .*artifacts/pretrain/model holds "
        r"\(model=gpt_tiny objective=clm.*pretrain it first",
    ):
        finetune.run(compose(TINY + ["model=lstm"], root=run))
    with pytest.raises(ConfigError, match="model.d_model"):
        finetune.run(compose(TINY + ["model.d_model=64"], root=run))


def test_a_dvc_stage_refuses_params_composed_from_another_conf(tmp_path):
    root = tmp_path / "repo"
    shutil.copytree(ROOT / "conf", root / "conf")
    shutil.copy(ROOT / "params.yaml", root / "params.yaml")
    cfg = OmegaConf.create({"params_file": str(root / "params.yaml"), "paths": {"root": str(root)}})
    assert load_params(cfg, ("optim",)).optim.lr == 0.002
    edited = root / "conf/task/topic.yaml"
    edited.write_text(edited.read_text().replace("lr: 0.001", "lr: 0.003"))
    with pytest.raises(ConfigError, match="was composed from another conf/.*python -m lmforge.params"):
        load_params(cfg, ("optim",))
