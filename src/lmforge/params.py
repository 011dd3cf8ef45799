"""params.yaml: the pipeline's hyperparameters as DVC tracks them.

`conf/pipeline.yaml` composed by Hydra is params.yaml. DVC composes it on every `dvc exp run`
(Hydra composition, enabled in `.dvc/config`: `-S optim.lr=1e-3` and `-S model=minilm` are Hydra
overrides of it), and `python -m lmforge.params [overrides]` composes it the same way by hand (it
calls DVC's own composition). A DVC stage reads every hyperparameter from params.yaml and nothing
from conf/ (`conf/stage.yaml`), so `dvc params diff`, `dvc exp show` and `dvc.lock` list what ran.

The composition checks itself: params.yaml's `conf_digest` is resolved by `composed` (registered
in DVC's process by `hydra_plugins/lmforge` at the project root), which refuses, before any stage
runs, a key no stage reads (e.g. one added with `-S +optim.lrr=…`), a value outside its range,
`-S key={}` on a map (Hydra would merge it away) and a model/objective/task combination that
cannot work — and records a digest of conf/, which every DVC stage compares with conf/ as it is:
`dvc repro` never recomposes params.yaml, so a stage refuses to run on a stale one. DVC prints
what went wrong in one line (Hydra's report of an unknown option included).
"""

from __future__ import annotations

import logging
import sys

from omegaconf import DictConfig, OmegaConf

from lmforge.config import (
    HYPERPARAMETERS,
    SCALARS,
    SECTIONS,
    check_map_overrides,
    composition_error,
    conf_digest,
    project_root,
    section,
)
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


# the overrides of the composition this process makes (`main`); None in DVC's process, whose
# overrides are the `-S` values of its command line
OVERRIDES: list[str] | None = None


def set_params(argv: list[str]) -> list[str]:
    """The Hydra overrides of a `dvc exp run` command line: its `-S`/`--set-param` values, without
    the `params.yaml:` file prefix DVC allows."""
    values, args = [], iter(argv)
    for arg in args:
        if arg in ("-S", "--set-param"):
            value = next(args, "")
        elif arg.startswith("--set-param="):
            value = arg.partition("=")[2]
        elif arg.startswith("-S") and not arg.startswith("--"):
            value = arg[2:]
        else:
            continue
        values.append(value.removeprefix("params.yaml:"))
    return values


def composed(*, _root_: DictConfig) -> str:
    """The resolver of params.yaml's `conf_digest` in DVC's process: checks the composition and
    the overrides that made it (an error stops `dvc exp run` before any stage) and returns the
    digest of conf/."""
    root = OmegaConf.create({k: _root_[k] for k in _root_ if k != "conf_digest"})
    check_map_overrides(OVERRIDES if OVERRIDES is not None else set_params(sys.argv), root)
    check(root)
    return conf_digest(project_root() / "conf")


class _OneLineComposition(logging.Filter):
    """In DVC's process, an error of the composition logged as one line: Hydra's report of an
    override that does not compose (e.g. `-S task=nope`: the options, then the search path, over
    20 lines) as `composition_error` words it, and lmforge's own check as itself (not wrapped in
    OmegaConf's "raised while resolving interpolation")."""

    def filter(self, record: logging.LogRecord) -> bool:
        from hydra.errors import HydraException

        exc = record.exc_info[1] if record.exc_info else None
        ours = exc
        while ours is not None and not isinstance(ours, LmforgeError):
            ours = ours.__cause__ or ours.__context__
        if ours is None and isinstance(exc, HydraException):
            ours = ConfigError(composition_error(exc))
        if ours is not None:
            record.exc_info = (type(ours), ours.with_traceback(None), record.exc_info[2])
            record.exc_text = None
        return True


def register_resolvers() -> None:
    """What DVC's process needs to compose params.yaml (`hydra_plugins/lmforge`): the resolver of
    `conf_digest`, and Hydra's composition errors in one line on DVC's console."""
    OmegaConf.register_new_resolver("lmforge.params_check", composed, replace=True)
    for handler in logging.getLogger("dvc").handlers:
        if not any(isinstance(f, _OneLineComposition) for f in handler.filters):
            handler.addFilter(_OneLineComposition())


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
    global OVERRIDES
    OVERRIDES = list(args.overrides)
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
