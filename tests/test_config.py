"""Config composition and checking: bad input fails at once, naming the key; every option file
composes and checks; the model and task files list every setting (params.yaml shows them all)."""

import dataclasses
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, compose
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf
from omegaconf.errors import ConfigKeyError, ValidationError

from lmforge import models, params, tasks
from lmforge.config import HYPERPARAMETERS, fingerprint, flatten, to_container
from lmforge.errors import ConfigError
from lmforge.schema import build
from lmforge.tasks.base import DATA_SOURCES


def check(cfg) -> None:
    """Check the hyperparameters of a composed config as DVC's composition of params.yaml does."""
    params.check(OmegaConf.masked_copy(cfg, list(HYPERPARAMETERS)))


def test_default_and_smoke_configs_check(tmp_path):
    cfg = compose(root=tmp_path)
    check(cfg)
    assert cfg.paths.artifacts == f"{tmp_path}/artifacts"
    assert cfg.tracking.uri == f"sqlite:///{tmp_path}/mlflow.db"
    smoke = compose(["experiment=smoke"], root=tmp_path)
    check(smoke)
    assert smoke.model.d_model < cfg.model.d_model and smoke.trainer.max_steps < cfg.trainer.max_steps
    assert list(cfg.task) == ["topic", "sentiment", "ner", "qa", "summarization", "translation"]
    assert list(compose(["task=[topic,ner]"]).task) == ["topic", "ner"]


# options that need a companion setting to make sense on their own
COMPANIONS = {
    ("data", "text_files"): ["data.text_files.paths=[x.txt]"],
    ("data", "hub"): ["data.hub.name=wikitext"],
    ("model", "minilm"): ["objective=mlm", "task=[topic,ner,qa]"],  # an encoder: no clm, no generation
    ("objective", "mlm"): ["task=[topic,ner,qa]"],
}


def options() -> list[tuple[str, str]]:
    """Every group option one can choose (conf/finetune/ is picked by the model, not chosen)."""
    out = []
    # (finetune and task_defaults are included by the task configs, not chosen)
    for group_dir in sorted(
        p for p in (ROOT / "conf").rglob("*") if p.is_dir() and not {"finetune", "task_defaults"} & set(p.parts)
    ):
        group = str(group_dir.relative_to(ROOT / "conf"))
        out += [(group, option.stem) for option in sorted(group_dir.glob("*.yaml"))]
    return out


@pytest.mark.parametrize("group, option", options(), ids=lambda x: x)
def test_every_group_option_composes_and_checks(group, option, tmp_path):
    """Each YAML under conf/<group>/ composes into a config whose hyperparameters check."""
    cfg = compose([f"{group}={option}", *COMPANIONS.get((group, option), [])], root=tmp_path)
    check(cfg)


def settings_of(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls) if not f.metadata.get("derived")}


def body(path: Path) -> dict:
    return {k: v for k, v in yaml.safe_load(path.read_text()).items() if k != "defaults"}


@pytest.mark.parametrize("path", sorted((ROOT / "conf/model").glob("*.yaml")), ids=lambda p: p.stem)
def test_every_model_file_lists_every_setting_of_its_backbone(path):
    """So params.yaml shows every setting a model was built with (defaults included)."""
    model = body(path)
    cls = models.backbone_class(model["arch"])
    assert set(model) == settings_of(cls.config_class) | {"name", "arch"}
    assert model["name"] == path.stem
    _, checked = models.settings(model)  # the values check as the schema says
    assert {k: getattr(checked, k) for k in set(model) - {"name", "arch"}} == {
        k: v for k, v in model.items() if k not in ("name", "arch")
    }


@pytest.mark.parametrize("path", sorted((ROOT / "conf/task").glob("*.yaml")), ids=lambda p: p.stem)
def test_every_task_composes_to_every_setting_of_its_family(path, tmp_path):
    """A task file holds one task (named as the file); composed with its family's and data source's
    defaults (conf/task_defaults/) it has every setting of both — so params.yaml shows them all —
    each a valid value."""
    ((name, own),) = body(path).items()
    assert name == path.stem
    task = OmegaConf.to_container(compose([f"task={name}"], root=tmp_path).task[name])
    cls = tasks.family_class(own["family"])
    assert set(task) == settings_of(cls.config_class)
    data = task["data"]
    assert set(data) == settings_of(DATA_SOURCES[data["source"]])
    family = tasks.configure(name, task)
    assert dataclasses.asdict(family.config) == task


def compose_params(overrides: list[str] | None = None):
    """conf/params.yaml composed (as DVC composes params.yaml), without its conf_digest."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = hydra_compose(config_name="params", overrides=overrides or [])
    return OmegaConf.create({k: v for k, v in OmegaConf.to_container(cfg).items() if k != "conf_digest"})


@pytest.mark.parametrize("path", sorted((ROOT / "conf/finetune").glob("*.yaml")), ids=lambda p: p.stem)
def test_a_models_fine_tuning_profile_reaches_every_task(path):
    """conf/finetune/<model>.yaml: settings every task family has, valid ones, taken by every task
    when that model is chosen (and a task's own override still wins)."""
    from lmforge.tasks.base import TaskConfig

    profile = body(path)
    assert (ROOT / "conf/model" / path.name).is_file()
    assert set(profile) <= settings_of(TaskConfig) - {"family", "data"}
    build(TaskConfig, profile, f"finetune.{path.stem}")
    objective = "mlm" if path.stem == "minilm" else "clm"
    cfg = compose([f"model={path.stem}", f"objective={objective}", "task=[topic,ner]", "task.ner.lr=0.25"])
    assert {k: cfg.task.topic[k] for k in profile} == profile
    assert cfg.task.ner.lr == 0.25 and {k: cfg.task.ner[k] for k in profile if k != "lr"} == {
        k: v for k, v in profile.items() if k != "lr"
    }
    check(cfg)


def test_params_yaml_is_the_composed_pipeline():
    """params.yaml (what DVC runs) holds every hyperparameter, checked, composed from conf/ as it is."""
    from lmforge.config import conf_digest

    written = yaml.safe_load((ROOT / "params.yaml").read_text())
    assert set(written) == {*HYPERPARAMETERS, "conf_digest"}
    params.check(OmegaConf.create({k: v for k, v in written.items() if k != "conf_digest"}))
    stale = "params.yaml is stale: recompose it with `python -m lmforge.params`"
    assert written["conf_digest"] == conf_digest(ROOT / "conf"), stale
    assert {k: v for k, v in written.items() if k != "conf_digest"} == to_container(compose_params()), stale


@pytest.mark.parametrize(
    "argv, overrides",
    [
        (["dvc", "exp", "run", "-S", "optim.lr=1", "--set-param", "seed=2"], ["optim.lr=1", "seed=2"]),
        (["dvc", "exp", "run", "-Smodel=lstm", "--set-param=task={}"], ["model=lstm", "task={}"]),
        (["dvc", "exp", "run", "--queue", "-S", "params.yaml:seed=1,2", "-n", "x"], ["seed=1,2"]),
        (["dvc", "exp", "run", "-n", "S"], []),
    ],
)
def test_the_overrides_dvc_composes_with_are_read_from_its_command_line(argv, overrides):
    """(`-S key={}` is checked in DVC's process from them: tests/test_pipeline.py)"""
    assert params.set_params(argv) == overrides


def test_unknown_group_option_is_rejected():
    with pytest.raises(ConfigCompositionException, match="model"):
        compose(["model=does_not_exist"])


def test_misspelt_key_and_wrong_type_are_rejected():
    # a schema section refuses an unknown key as Hydra composes it...
    for typo in ("trainer.max_step=5", "model.d_modle=64", "task.topic.lrr=0.1"):
        with pytest.raises(ConfigCompositionException, match=typo.split("=")[0].replace(".", r"\.")):
            compose([typo])
    with pytest.raises((ConfigCompositionException, ValidationError, ConfigKeyError)) as e:
        compose(["trainer.batch_size=many"])
    assert "batch_size" in str(e.value.__cause__ or e.value)
    # ...and the check refuses one added with `+`, or one of a backbone's or a family's settings
    with pytest.raises(
        ConfigError,
        match=r"trainer\.max_step is not a setting of trainer; did you mean "
        r"trainer\.max_steps\?",
    ):
        check(compose(["+trainer.max_step=5"]))
    with pytest.raises(ConfigError, match=r"model\.d_modle is not a setting of model; did you mean model\.d_model\?"):
        check(compose(["+model.d_modle=64"]))
    with pytest.raises(
        ConfigError,
        match=r"task\.topic\.lrr is not a setting of task\.topic; did you mean "
        r"task\.topic\.lr\?",
    ):
        check(compose(["task=topic", "+task.topic.lrr=0.1"]))
    # a key no stage reads, at the top of params.yaml
    with pytest.raises(ConfigError, match=r"^lr is not a setting of the config"):
        params.check(compose_params(["+lr=0.1"]))


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["model.d_model=100", "model.n_heads=3"], r"model\.d_model=100 is not divisible by model\.n_heads=3"),
        (["optim.lr=0"], r"optim\.lr=0.* must be positive"),
        (["optim.beta1=1.5"], r"optim\.beta1=1\.5 must be in \[0, 1\)"),
        (["trainer.batch_size=-1"], r"trainer\.batch_size=-1 must be positive"),
        (["trainer.precision=15"], r"trainer\.precision='15' is not one of"),
        (["task=topic", "task.topic.batch_size=0"], r"task\.topic\.batch_size=0 must be positive"),
        (["task=topic", "task.topic.pooling=max"], r"task\.topic\.pooling='max' is not one of \['mean', 'last'\]"),
        (["task=topic", "task.topic.max_length=512"], r"task\.topic\.max_length=512 exceeds the max_len 256"),
        (["task=ner", "task.ner.data.n_train=0"], r"task\.ner\.data\.n_train=0 must be positive"),
        (["task=topic", "+task.topic.vocab_size=5"], r"task\.topic\.vocab_size is not a setting"),
        (["+model.vocab_size=5"], r"model\.vocab_size is derived by lmforge"),
        (["tokenizer.vocab_size=100"], r"tokenizer\.vocab_size=100 is smaller than the 6 special tokens"),
        (["seed=-1"], r"seed=-1 must be a non-negative integer"),
        (["finetune_seed=-2"], r"finetune_seed=-2 must be a non-negative integer or null \(null: seed\)"),
        (["max_task_records=0"], r"max_task_records=0 must be a positive integer or null"),
        (["data=text_files"], r"data\.text_files\.paths is empty"),
        (["model=lstm", "objective=mlm", "task=topic"], r"objective=mlm with model=lstm cannot work"),
        (["task=summarization", "model=minilm", "objective=mlm"], r"summarization"),
        (["trainer.block_size=512"], r"trainer\.block_size=512 exceeds model\.max_len=256"),
    ],
)
def test_checks_name_the_key(overrides, message, tmp_path):
    with pytest.raises(ConfigError, match=message):
        check(compose(overrides, root=tmp_path))


def test_a_stage_checks_the_sections_it_reads_and_sees_no_other(tmp_path):
    """`stage()` checks (and tracks) only the stage's own sections: a bad value in a section it does
    not read is no reason to fail, and reading such a section finds nothing."""
    from lmforge.stages.common import stage

    cfg = compose(["tracking=none", "optim.beta1=1.5"], root=tmp_path)
    with pytest.raises(ConfigError, match=r"optim\.beta1=1\.5 must be in \[0, 1\)"):
        with stage(cfg, "probe", ("seed", "optim")):
            pass
    with stage(cfg, "probe", ("seed", "tokenizer")) as ctx:
        assert ctx.cfg.optim is None and ctx.cfg.model is None and ctx.cfg.task is None
        assert ctx.cfg.tokenizer.vocab_size == cfg.tokenizer.vocab_size
    with pytest.raises(ConfigError, match=r"^lr is not a setting of the config"):  # added with `+`
        with stage(compose(["tracking=none", "+lr=0.1"], root=tmp_path), "probe", ("optim",)):
            pass
    with pytest.raises(ConfigError, match=r"only_task='ner' is not one of the configured tasks \['topic'\]"):
        with stage(compose(["tracking=none", "task=topic", "only_task=ner"], root=tmp_path), "probe", ("task",)):
            pass


def test_finetune_refuses_an_unknown_init_before_any_work(tmp_path):
    from lmforge.stages import finetune

    with pytest.raises(ConfigError, match=r"inits=\['random'\]: each must be pretrained or scratch"):
        finetune.run(compose(["tracking=none", "task=topic", "inits=[random]"], root=tmp_path))
    assert not (tmp_path / "artifacts").exists()


def test_section_builds_the_checked_dataclass():
    from lmforge.config import OptimConfig, section

    optim = section(compose(["optim.beta1=0.5"]), "optim")
    assert isinstance(optim, OptimConfig) and optim.beta1 == 0.5
    with pytest.raises(ConfigError, match=r"optim\.lr: Value 'fast' .*could not be converted to Float"):
        build(OptimConfig, {"lr": "fast"}, "optim")


def test_flatten_and_fingerprint(tmp_path):
    cfg = compose(root=tmp_path)
    flat = flatten(to_container(cfg))
    assert flat["model.d_model"] == cfg.model.d_model and "model" not in flat
    assert flat["task.topic.lr"] == cfg.task.topic.lr
    model = lambda c: to_container(c)["model"]  # noqa: E731
    assert fingerprint(model(cfg)) == fingerprint(model(compose(["task=sentiment"], root=tmp_path)))
    assert fingerprint(model(cfg)) != fingerprint(model(compose(["model.n_layers=2"], root=tmp_path)))
    assert fingerprint({"a": 1}, inputs="x") != fingerprint({"a": 1}, inputs="y")
