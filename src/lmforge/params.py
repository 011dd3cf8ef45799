"""params.yaml: the pipeline's hyperparameters as DVC tracks them.

`conf/pipeline.yaml` composed by Hydra is params.yaml. DVC composes it on every `dvc exp run`
(Hydra composition, enabled in `.dvc/config`: `-S optim.lr=1e-3` and `-S model=minilm` are Hydra
overrides of it), and `python -m lmforge.params [overrides]` composes it the same way by hand (it
calls DVC's own composition). A DVC stage reads every hyperparameter from params.yaml and nothing
from conf/ (`conf/stage.yaml`), so `dvc params diff`, `dvc exp show` and `dvc.lock` list what ran.

The composition checks itself: params.yaml's `conf_digest` is resolved by `composed` (registered in
DVC's process by `hydra_plugins/lmforge` at the project root), which refuses, before any stage runs, a key no stage
reads (e.g. one added with `-S +optim.lrr=…`), a value outside its range and a model/objective/task
combination that cannot work — and records a digest of conf/, which every DVC stage compares with
conf/ as it is: `dvc repro` never recomposes params.yaml, so a stage refuses to run on a stale one.
"""

from __future__ import annotations

import sys

from omegaconf import DictConfig, OmegaConf

from lmforge.config import HYPERPARAMETERS, SCALARS, SECTIONS, composition_error, conf_digest, project_root, section
from lmforge.errors import ConfigError, LmforgeError
from lmforge.schema import unknown_key


def check(cfg: DictConfig) -> None:
    """Every hyperparameter of a composed pipeline config, and how they go together."""
    from dataclasses import replace

    from lmforge import models, tasks

    for key in cfg:
        if key not in (*HYPERPARAMETERS, "conf_digest"):
            raise unknown_key("", str(key), list(HYPERPARAMETERS))
    for name in (*SCALARS, *SECTIONS):
        section(cfg, name)
    cls, model = models.settings(cfg.model)
    objective = cfg.objective.name
    models.check_objective(cls, model, objective, f"model={cfg.model.get('name') or cls.arch}")
    if cfg.trainer.block_size > model.max_len:
        raise ConfigError(
            f"trainer.block_size={cfg.trainer.block_size} exceeds model.max_len={model.max_len}: "
            "lower the block size or raise the model's max_len"
        )
    trained = replace(model, causal=objective == "clm")
    can = cls.capabilities(trained)
    for name, node in (cfg.task or {}).items():
        tasks.configure(str(name), node).check_backbone(
            trained, can, f"model={cfg.model.get('name') or cls.arch} objective={objective}"
        )


def composed(*, _root_: DictConfig) -> str:
    """The resolver of params.yaml's `conf_digest` in DVC's process: checks the composition (an
    error stops `dvc exp run` before any stage) and returns the digest of conf/."""
    root = OmegaConf.create({k: _root_[k] for k in _root_ if k != "conf_digest"})
    check(root)
    return conf_digest(project_root() / "conf")


def register_resolvers() -> None:
    OmegaConf.register_new_resolver("lmforge.params_check", composed, replace=True)


def main(argv: list[str] | None = None) -> int:
    """`python -m lmforge.params [overrides]`: compose conf/pipeline.yaml into params.yaml, as
    `dvc exp run -S …` would, without running the pipeline (after writing conf/task_defaults/ from
    the task families' settings classes)."""
    import argparse

    from dvc.repo import Repo

    from lmforge.compat import dvc_compose_params
    from lmforge.tasks.defaults import write as write_task_defaults

    ap = argparse.ArgumentParser(prog="python -m lmforge.params", description=main.__doc__.splitlines()[0])
    ap.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. model=lstm optim.lr=1e-3")
    args = ap.parse_args(argv)
    root = project_root()
    hydra_cfg = Repo(str(root)).config.get("hydra", {})
    for path in write_task_defaults(root / hydra_cfg.get("config_dir", "conf")):
        print(f"wrote {path} (from its settings class)")
    try:
        dvc_compose_params(
            root / "params.yaml",
            root / hydra_cfg.get("config_dir", "conf"),
            hydra_cfg.get("config_name", "config"),
            root / hydra_cfg.get("plugins_path", ""),
            list(args.overrides),
        )
    except LmforgeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except Exception as e:  # a Hydra override that does not compose
        cause = e.__cause__ or e.__context__
        print(f"error: {cause if isinstance(cause, LmforgeError) else composition_error(e)}", file=sys.stderr)
        return 2
    print(f"wrote {root / 'params.yaml'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
