"""Config composition and validation: bad input fails at once, naming the key."""


import pytest
import yaml
from hydra.errors import ConfigCompositionException
from omegaconf.errors import ConfigKeyError, ValidationError

from conftest import ROOT, compose
from lmforge.config import fingerprint, flatten, to_container, validate
from lmforge.errors import ConfigError


def test_default_and_smoke_configs_validate(tmp_path):
    cfg = compose(root=tmp_path)
    validate(cfg)
    assert cfg.paths.artifacts == f"{tmp_path}/artifacts"
    assert cfg.tracking.uri == f"sqlite:///{tmp_path}/mlflow.db"
    smoke = compose(["experiment=smoke"], root=tmp_path)
    validate(smoke)
    assert smoke.model.d_model < cfg.model.d_model and smoke.trainer.max_steps < cfg.trainer.max_steps


def test_every_group_option_composes_and_validates(tmp_path):
    """Each YAML under conf/<group>/ is a valid instance of the schema."""
    for group_dir in sorted(p for p in (ROOT / "conf").iterdir() if p.is_dir()):
        for option in sorted(group_dir.glob("*.yaml")):
            overrides = [f"{group_dir.name}={option.stem}"]
            if group_dir.name == "data" and option.stem == "text_files":
                overrides.append("data.text_files.paths=[x.txt]")
            if group_dir.name == "data" and option.stem == "hub":
                overrides.append("data.hub.name=wikitext")
            if group_dir.name == "model" and option.stem == "minilm":
                overrides.append("objective=mlm")  # an encoder checkpoint: clm is rejected
            cfg = compose(overrides, root=tmp_path)
            validate(cfg)


def test_params_yaml_choices_exist():
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    for group in ("data", "tokenizer", "model", "objective", "trainer", "experiment"):
        assert (ROOT / "conf" / group / f"{params[group]}.yaml").is_file(), group
    for task in params["tasks"]:
        assert (ROOT / "conf" / "task" / f"{task}.yaml").is_file(), task


def test_unknown_group_option_is_rejected():
    with pytest.raises(ConfigCompositionException, match="model"):
        compose(["model=does_not_exist"])


def test_misspelt_key_and_wrong_type_are_rejected():
    with pytest.raises(ConfigCompositionException) as e:
        compose(["model.d_modle=64"])
    assert "d_modle" in str(e.value.__cause__ or e.value)
    with pytest.raises((ConfigCompositionException, ValidationError, ConfigKeyError)) as e:
        compose(["trainer.batch_size=many"])
    assert "batch_size" in str(e.value.__cause__ or e.value)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["model.d_model=100", "model.n_heads=3"], r"model\.d_model=100 is not divisible by model\.n_heads=3"),
        (["optim.lr=0"], r"optim\.lr=0.* must be positive"),
        (["trainer.batch_size=-1"], r"trainer\.batch_size=-1 must be positive"),
        (["task.batch_size=0"], r"task\.batch_size=0 must be positive"),
        (["tokenizer.vocab_size=100"], r"tokenizer\.vocab_size=100 is smaller than the 6 special tokens"),
        (["trainer.block_size=512"], r"trainer\.block_size=512 exceeds model\.max_len=256"),
        (["init=random"], r"init='random' is not one of"),
        (["data=text_files"], r"data\.text_files\.paths is empty"),
    ],
)
def test_validation_names_the_key(overrides, message, tmp_path):
    with pytest.raises(ConfigError, match=message):
        validate(compose(overrides, root=tmp_path))


def test_flatten_and_fingerprint(tmp_path):
    cfg = compose(root=tmp_path)
    flat = flatten(to_container(cfg))
    assert flat["model.d_model"] == cfg.model.d_model and "model" not in flat
    assert fingerprint(cfg, "model") == fingerprint(compose(["task=sentiment"], root=tmp_path), "model")
    assert fingerprint(cfg, "model") != fingerprint(compose(["model.n_layers=2"], root=tmp_path), "model")
