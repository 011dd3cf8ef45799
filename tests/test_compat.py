"""The private library APIs lmforge uses (`lmforge.compat`, and Lightning's checkpoint members in
`train.trainer.StepCheckpoint`) are still there, shaped as lmforge calls them: an upgrade that
moves one fails here, naming the library and the member, not somewhere deep in a stage."""

from __future__ import annotations

import inspect

import pytest
from conftest import ROOT

from lmforge.compat import dvc_compose_params, hydra_args_parser


def params_of(fn) -> list[str]:
    return list(inspect.signature(fn).parameters)


def test_hydra_parses_its_command_line_as_the_apps_read_it():
    args = hydra_args_parser().parse_args(["a=1", "b=[x,y]", "--cfg", "job", "-m", "--config-name", "stage"])
    assert args.overrides == ["a=1", "b=[x,y]"]
    assert (args.cfg, args.multirun, args.config_name) == ("job", True, "stage")
    plain = hydra_args_parser().parse_args([])
    for flag in ("help", "hydra_help", "info", "shell_completion"):  # the modes `_app` leaves to Hydra
        assert getattr(plain, flag) in (False, None), f"hydra._internal.utils.get_args_parser: --{flag} changed"


def test_dvc_composes_params_yaml_with_the_arguments_lmforge_passes(tmp_path):
    from dvc.utils.hydra import compose_and_dump

    assert params_of(compose_and_dump)[:6] == [
        "output_file",
        "config_dir",
        "config_module",
        "config_name",
        "plugins_path",
        "overrides",
    ], "dvc.utils.hydra.compose_and_dump changed its arguments"
    dvc_compose_params(tmp_path / "params.yaml", ROOT / "conf", "params", ROOT, ["seed=7"])
    assert "seed: 7\n" in (tmp_path / "params.yaml").read_text()


@pytest.mark.parametrize(
    "member, arguments",
    [
        ("_should_skip_saving_checkpoint", ["trainer"]),
        ("_monitor_candidates", ["trainer"]),
        ("_save_topk_checkpoint", ["trainer", "monitor_candidates"]),
        ("_save_last_checkpoint", ["trainer", "monitor_candidates"]),
    ],
)
def test_lightnings_checkpoint_members_that_step_checkpoint_calls(member, arguments):
    from lightning.pytorch.callbacks import ModelCheckpoint

    fn = getattr(ModelCheckpoint, member, None)
    assert fn is not None, f"lightning's ModelCheckpoint.{member} is gone: rework train.trainer.StepCheckpoint"
    assert params_of(fn)[1:] == arguments, f"lightning's ModelCheckpoint.{member} takes {params_of(fn)[1:]} now"


def test_lightnings_checkpoint_keeps_its_step_interval():
    from lightning.pytorch.callbacks import ModelCheckpoint

    assert ModelCheckpoint(every_n_train_steps=7)._every_n_train_steps == 7, (
        "lightning's ModelCheckpoint._every_n_train_steps changed: rework train.trainer.StepCheckpoint"
    )
