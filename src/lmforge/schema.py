"""Settings that check themselves: a dataclass field states its range, and `build` turns a config
node into the dataclass, refusing what it does not know and naming the key.

    @dataclass
    class OptimConfig:
        lr: float = setting(1e-3, gt=0)
        beta1: float = setting(0.9, ge=0, lt=1)

    build(OptimConfig, cfg.optim, "optim")   # -> OptimConfig(...), or ConfigError("optim.beta1=1.5 must be in [0, 1)")

A key the dataclass does not have (a typo, or one added with Hydra's `+`) is refused with the
closest known key; a value of the wrong type or outside its range is refused with what would work.
A dataclass may define `check(self, key)` for what one field cannot say alone (divisibility,
one field bounded by another); it runs after the ranges.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from dataclasses import MISSING, fields, is_dataclass
from typing import Any, TypeVar

from lmforge.errors import ConfigError

T = TypeVar("T")


def setting(
    default: Any = MISSING,
    *,
    default_factory: Any = MISSING,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    choices: tuple | None = None,
    derived: bool = False,
    eval_only: bool = False,
) -> Any:
    """A dataclass field with its range (`ge`/`gt`/`le`/`lt`), its allowed values (`choices`), and
    two flags: `derived` (set by lmforge from the data, refused in a config file) and `eval_only`
    (read only at evaluation: a model trained with another value is still the same model)."""
    meta = {k: v for k, v in dict(ge=ge, gt=gt, le=le, lt=lt, choices=choices).items() if v is not None}
    meta.update(derived=derived, eval_only=eval_only)
    if default_factory is not MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def _interval(m: dict) -> str:
    lo = f"[{m['ge']}" if "ge" in m else f"({m['gt']}" if "gt" in m else "(-inf"
    hi = f"{m['le']}]" if "le" in m else f"{m['lt']})" if "lt" in m else "inf)"
    return f"{lo}, {hi}"


def _check_value(key: str, value: Any, m: dict) -> None:
    if "choices" in m and value not in m["choices"]:
        raise ConfigError(f"{key}={value!r} is not one of {list(m['choices'])}")
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return
    if isinstance(value, float) and math.isnan(value):
        raise ConfigError(f"{key}=nan is not a number")
    bad = (
        ("ge" in m and not value >= m["ge"])
        or ("gt" in m and not value > m["gt"])
        or ("le" in m and not value <= m["le"])
        or ("lt" in m and not value < m["lt"])
    )
    if bad:
        if set(m) & {"ge", "gt"} and not set(m) & {"le", "lt"}:
            what = (
                "must be positive"
                if m.get("gt") == 0
                else "must be ≥ 0"
                if m.get("ge") == 0
                else f"must be {'≥' if 'ge' in m else '>'} {m.get('ge', m.get('gt'))}"
            )
        else:
            what = f"must be in {_interval(m)}"
        raise ConfigError(f"{key}={value} {what}")


def check_values(obj: Any, key: str) -> None:
    """Ranges and choices of every field (recursively), then the dataclass's own `check(key)`."""
    for f in fields(obj):
        value = getattr(obj, f.name)
        sub = f"{key}.{f.name}" if key else f.name
        if is_dataclass(value):
            check_values(value, sub)
        elif value is not None:
            _check_value(sub, value, f.metadata)
    if hasattr(obj, "check"):
        obj.check(key)


def _plain(node: Any) -> Any:
    from omegaconf import DictConfig, ListConfig, OmegaConf

    if isinstance(node, (DictConfig, ListConfig)):
        try:
            return OmegaConf.to_container(node, resolve=True, throw_on_missing=True)
        except Exception as e:  # an interpolation that does not resolve, a ??? left unset
            raise ConfigError(f"{getattr(e, 'full_key', '') or 'config'}: {e}".split("\n")[0]) from None
    return node


def unknown_key(key: str, name: str, known: list[str]) -> ConfigError:
    close = difflib.get_close_matches(name, known, n=1)
    prefix = f"{key}." if key else ""
    hint = f"; did you mean {prefix}{close[0]}?" if close else f" (settings: {', '.join(sorted(known))})"
    return ConfigError(f"{prefix}{name} is not a setting of {key or 'the config'}{hint}")


def _refuse_unknown(cls: type, data: dict, key: str) -> None:
    known = {f.name: f for f in fields(cls)}
    for name, value in data.items():
        if name not in known:
            raise unknown_key(key, str(name), list(known))
        f = known[name]
        if f.metadata.get("derived"):
            raise ConfigError(f"{key}.{name} is derived by lmforge (from the data or the tokenizer) and cannot be set")
        sub_cls = f.type if isinstance(f.type, type) else None
        if sub_cls is None and isinstance(f.type, str):  # postponed annotations: resolve nested dataclasses
            default = f.default_factory() if f.default_factory is not MISSING else f.default  # type: ignore[misc]
            sub_cls = type(default) if is_dataclass(default) else None
        if sub_cls is not None and is_dataclass(sub_cls) and isinstance(value, dict):
            _refuse_unknown(sub_cls, value, f"{key}.{name}" if key else name)


def build(cls: type[T], node: Any, key: str) -> T:
    """The dataclass `cls` filled from `node` (a DictConfig or dict; missing keys take the defaults),
    checked: unknown keys, wrong types and out-of-range values raise ConfigError naming `key.field`."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    data = _plain(node) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{key}={data!r} is not a group of settings")
    _refuse_unknown(cls, data, key)
    try:
        merged = OmegaConf.merge(OmegaConf.structured(cls), data)
        obj = OmegaConf.to_object(merged)
    except OmegaConfBaseException as e:
        where = f"{key}.{e.full_key}" if getattr(e, "full_key", None) else key
        msg = str(e).split("\n")[0]
        raise ConfigError(f"{where}: {msg}") from None
    check_values(obj, key)
    return obj  # type: ignore[return-value]


def as_dict(obj: Any) -> dict:
    """A checked dataclass as plain data (for params, JSON, MLflow)."""
    return dataclasses.asdict(obj)
