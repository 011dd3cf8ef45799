"""The MLflow model registry: every pretrain and finetune run logs its model directory as a
`pyfunc` model (see `lmforge.serve`) and registers a new version of

- `<prefix>-lm` (the pretrained language model), and
- `<prefix>-<task>` (one registered model per task; both inits are versions of it, tagged `init`).

Runs outside a sweep (a `dvc repro`, a `dvc exp run`, a stage run by hand) move the aliases to
their version: `current` (the pretrained LM; for a task, the `init=pretrained` fine-tune) and
`current-<init>` (MLflow reserves `latest`). Sweep jobs only add versions:
`models:/lmforge-topic@current` is what the last pipeline run produced.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

import lmforge
from lmforge.fileio import read_json

log = logging.getLogger(__name__)

ARTIFACT = "pyfunc"
ALIAS = "current"  # the version of the last run outside a sweep ("latest" is reserved by MLflow)
CODE = """\
# An lmforge model served by MLflow ("models from code": no pickle).
import mlflow
from lmforge.serve import {cls}

mlflow.models.set_model({cls}())
"""


def model_name(prefix: str, task: str | None) -> str:
    return f"{prefix}-{task}" if task else f"{prefix}-lm"


def _requirements() -> list[str]:
    from importlib.metadata import version

    reqs = []
    for pkg in ("torch", "tokenizers", "safetensors", "numpy", "pandas", "lightning", "torchmetrics"):
        try:
            reqs.append(f"{pkg}=={version(pkg).split('+')[0]}")
        except Exception:
            pass
    return reqs


def _signature(kind: str):
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    out = {"sequence_classifier": ColSpec("string", "label"), "causal_lm": ColSpec("double", "perplexity")}.get(kind)
    # one unnamed string column: a list of texts or a DataFrame with a `text` column both pass
    return ModelSignature(inputs=Schema([ColSpec("string")]), outputs=Schema([out]) if out else None)


def save_pyfunc(model_dir: Path, path: Path) -> str:
    """Write the MLflow pyfunc model of an lmforge model directory to `path`; returns its kind."""
    import mlflow.pyfunc

    from lmforge.serve import PYFUNCS

    kind = read_json(model_dir / "config.json").get("kind", "")
    if kind not in PYFUNCS:
        raise ValueError(f"{model_dir}: no pyfunc for a model of kind {kind!r} (known: {sorted(PYFUNCS)})")
    code = path.parent / "model_code.py"
    code.write_text(CODE.format(cls=PYFUNCS[kind].__name__))
    mlflow.pyfunc.save_model(
        path=str(path), python_model=str(code), artifacts={"model_dir": str(model_dir)},
        code_paths=[str(Path(lmforge.__file__).parent)],  # the exact code it was trained with
        pip_requirements=_requirements(), signature=_signature(kind),
    )
    return kind


def register(run: Any, model_dir: Path, task: str | None = None, init: str | None = None):
    """Log `model_dir` into `run` (as a pyfunc model where lmforge.serve has one for its kind) and
    register it; returns the ModelVersion."""
    from mlflow.exceptions import MlflowException

    from lmforge.serve import PYFUNCS

    kind = read_json(model_dir / "config.json").get("kind", "")
    client = run.client
    name = model_name(run.cfg.model_prefix, task)
    if kind in PYFUNCS:
        artifact = f"{ARTIFACT}/{name}"
        with tempfile.TemporaryDirectory() as tmp:
            kind = save_pyfunc(model_dir, Path(tmp) / ARTIFACT)
            client.log_artifacts(run.run_id, str(Path(tmp) / ARTIFACT), artifact)
    else:  # no pyfunc flavour (QA, generation, masked LM): the version is the model directory itself
        artifact = "model"
        if not client.list_artifacts(run.run_id, artifact):  # the stage usually logged it already
            client.log_artifacts(run.run_id, str(model_dir), artifact)

    what = {"sequence_classifier": f"fine-tuned `{task}` classifier (text → label)",
            "token_classifier": f"fine-tuned `{task}` tagger (text → a tag per word)",
            "causal_lm": "pretrained language model (text → perplexity)"}.get(
        kind, f"{kind} model directory (config.json + model.safetensors + tokenizer; no pyfunc)")
    try:
        client.create_registered_model(name, description=f"lmforge {what}")
    except MlflowException as e:
        if "RESOURCE_ALREADY_EXISTS" not in str(e.error_code):
            raise
    tags = {"kind": kind, "stage": run.name}
    if init:
        tags["init"] = init
    for key in ("mlflow.source.git.commit", "lmforge.dvc.exp"):
        if value := run.tags.get(key) or _run_tag(client, run.run_id, key):
            tags[key] = value
    version = client.create_model_version(name, source=f"runs:/{run.run_id}/{artifact}", run_id=run.run_id,
                                          tags=tags)
    aliases = []
    if not run.sweep_job:
        aliases = [f"{ALIAS}-{init}"] if init else []
        if init in (None, "pretrained"):
            aliases.append(ALIAS)
        for alias in aliases:
            client.set_registered_model_alias(name, alias, version.version)
    run.set_tags({"lmforge.registered_model": f"{name}/{version.version}"})
    log.info("registered %s version %s%s", name, version.version,
             f" (aliases {', '.join(aliases)})" if aliases else "")
    return version


def _run_tag(client, run_id: str, key: str) -> str | None:
    return client.get_run(run_id).data.tags.get(key)
