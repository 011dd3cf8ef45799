"""The SLURM launcher submits what a multi-node DDP job needs: the sbatch script submitit would
submit for `hydra/launcher=slurm` asks for trainer.num_nodes nodes, trainer.devices tasks and GPUs
per node, the time, partition and account — checked without a cluster."""

from __future__ import annotations

import re

import pytest
import submitit
from conftest import ROOT
from omegaconf import OmegaConf


@pytest.fixture(autouse=True)
def no_cluster_probe(monkeypatch):
    """submitit refuses to build a SLURM executor where `srun` is missing; the script it renders is
    what is under test, so the "am I on a cluster" probe alone is answered here."""
    monkeypatch.setattr(submitit.slurm.slurm.SlurmExecutor, "affinity", classmethod(lambda cls: 1))


def sbatch(overrides: list[str], tmp_path) -> str:
    """The submission script, built the way hydra-submitit-launcher builds its executor."""
    from hydra import compose, initialize_config_dir
    from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf

    import lmforge.config  # noqa: F401  (resolvers)

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(
            config_name="config",
            overrides=["hydra/launcher=slurm", f"paths.root={tmp_path}", *overrides],
            return_hydra_config=True,
        )
    params = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    params.pop("_target_")
    executor = submitit.AutoExecutor(folder=str(tmp_path / ".submitit"), cluster="slurm")
    base = set(OmegaConf.structured(BaseQueueConf).keys())
    executor.update_parameters(
        **{
            k if k in base else f"slurm_{k}": v
            for k, v in params.items()
            if k not in ("submitit_folder", "max_num_timeout")
        }
    )
    return executor._executor._make_submission_file_text("python pipelines/pretrain.py", "test-uid")


def directive(script: str, name: str) -> str:
    found = re.findall(rf"^#SBATCH --{name}=(\S+)$", script, flags=re.M)
    assert len(found) == 1, (name, script)
    return found[0]


def test_multi_node_ddp_job(tmp_path):
    script = sbatch(
        [
            "trainer.num_nodes=2",
            "trainer.devices=4",
            "trainer.strategy=ddp",
            "trainer.accelerator=gpu",
            "hydra.launcher.partition=gpu",
            "hydra.launcher.account=lm-team",
            "hydra.launcher.timeout_min=90",
        ],
        tmp_path,
    )
    assert directive(script, "nodes") == "2"
    assert directive(script, "ntasks-per-node") == "4"  # one process per GPU: Lightning's DDP over SLURM
    assert directive(script, "gpus-per-node") == "4"
    assert directive(script, "time") == "90"
    assert directive(script, "partition") == "gpu" and directive(script, "account") == "lm-team"
    assert f"source {tmp_path}/.venv/bin/activate" in script
    assert "srun" in script  # the tasks are started by srun, so each gets its SLURM_PROCID


def test_defaults_are_one_node_one_device(tmp_path, monkeypatch):
    monkeypatch.setenv("SLURM_PARTITION", "short")
    script = sbatch([], tmp_path)
    assert (directive(script, "nodes"), directive(script, "ntasks-per-node"), directive(script, "gpus-per-node")) == (
        "1",
        "1",
        "1",
    )
    assert directive(script, "partition") == "short"
    with pytest.raises(AssertionError):
        directive(script, "account")  # unset: no account line
