"""What a Hydra sweep job knows about itself: whether it is one, which keys the sweep varies, and
the name and tags of its run (`job_identity`)."""

from __future__ import annotations

import json
import os

from omegaconf import DictConfig, OmegaConf

ENV_KEYS = "LMFORGE_SWEEP_KEYS"


def in_multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def override_key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def swept_keys(config: DictConfig) -> list[str]:
    """The keys a sweep varies: sweep overrides on the command line and the sweeper's params."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    overrides = OverridesParser.create().parse_overrides(list(config.hydra.overrides.task))
    keys = [o.get_key_element().lstrip("+~") for o in overrides if o.is_sweep_override()]
    params = OmegaConf.select(config, "hydra.sweeper.params") or {}
    keys += [str(k) for k in params if str(k) not in keys]
    return keys


def job_identity() -> tuple[str, dict[str, str]] | None:
    """(run-name suffix, tags) of the current Hydra sweep job; None outside a sweep."""
    if not in_multirun():
        return None
    from hydra.core.hydra_config import HydraConfig

    hc = HydraConfig.get()
    overrides = [str(o) for o in hc.overrides.task]
    keys = json.loads(os.environ.get(ENV_KEYS, "null"))
    named = [o for o in overrides if override_key(o) in keys] if keys else overrides
    tags = {
        "lmforge.kind": "sweep_job",
        "lmforge.sweep.job": str(hc.job.num),
        "lmforge.sweep.job_overrides": " ".join(overrides),
        "lmforge.sweep.output_dir": str(hc.runtime.output_dir),
    }
    return " ".join(named), tags
