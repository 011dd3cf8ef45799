"""The MLflow model registry: every pretrain and finetune run logs its model directory — as a
`pyfunc` model where it is served (see `lmforge.serve`; a task family says whether and how) — and
registers a new version of

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
import warnings
from pathlib import Path
from typing import Any

import lmforge

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


def _signature(signature: dict | None):
    """An MLflow signature from {"inputs": [columns], "output": name}: the served model's contract.
    Every input column is named and a string, so that MLflow refuses a request without it or with
    another type (400, naming the column); `serve.columns_of` refuses a null."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    if not signature:
        return None
    columns = signature["inputs"]
    inputs = Schema([ColSpec("string", c) for c in columns])
    output = signature.get("output")
    kind = signature.get("output_type", "string")
    return ModelSignature(inputs=inputs, outputs=Schema([ColSpec(kind, output)]) if output else None)


def save_pyfunc(model_dir: Path, path: Path, serving: str, signature: dict | None) -> None:
    """Write the MLflow pyfunc model `serving` (a class of `lmforge.serve`) of a model directory."""
    import mlflow.pyfunc

    code = path.parent / "model_code.py"
    code.write_text(CODE.format(cls=serving))
    # MLflow's advice on every model logged: the signature is given (its type-hint advice is answered
    # by `lmforge.serve`'s typed `predict`)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*An input example was not provided", category=UserWarning)
        mlflow.pyfunc.save_model(
            path=str(path),
            python_model=str(code),
            artifacts={"model_dir": str(model_dir)},
            code_paths=[str(Path(lmforge.__file__).parent)],  # the exact code it was trained with
            pip_requirements=_requirements(),
            signature=_signature(signature),
        )


def register(
    run: Any,
    model_dir: Path,
    serving: str | None,
    signature: dict | None = None,
    task: str | None = None,
    init: str | None = None,
):
    """Log `model_dir` into `run` — as the pyfunc model `serving` when given, else as the model
    directory — and register it; returns the ModelVersion."""
    from mlflow.exceptions import MlflowException

    from lmforge.saved_model import SavedModel

    saved = SavedModel.load(model_dir)
    client = run.client
    name = model_name(run.cfg.model_prefix, task)
    if serving:
        artifact = f"{ARTIFACT}/{name}"
        with tempfile.TemporaryDirectory() as tmp:
            save_pyfunc(model_dir, Path(tmp) / ARTIFACT, serving, signature)
            client.log_artifacts(run.run_id, str(Path(tmp) / ARTIFACT), artifact)
    else:  # not served: the version is the model directory itself
        artifact = "model"
        if not client.list_artifacts(run.run_id, artifact):  # the stage usually logged it already
            client.log_artifacts(run.run_id, str(model_dir), artifact)

    if task:
        out = f" → {signature['output']}" if signature else " (no pyfunc: structured inputs)"
        what = f"fine-tuned `{task}` model ({saved.family}){out}"
    else:
        what = f"pretrained language model ({saved.objective})" + (" → perplexity" if serving else "")
    try:
        client.create_registered_model(name, description=f"lmforge {what}")
    except MlflowException as e:
        if "RESOURCE_ALREADY_EXISTS" not in str(e.error_code):
            raise
    tags = {"kind": saved.kind, "stage": run.name}
    if saved.family:
        tags["family"] = saved.family
    if init:
        tags["init"] = init
    for key in ("mlflow.source.git.commit", "lmforge.dvc.exp"):
        if value := run.tags.get(key) or _run_tag(client, run.run_id, key):
            tags[key] = value
    version = client.create_model_version(name, source=f"runs:/{run.run_id}/{artifact}", run_id=run.run_id, tags=tags)
    aliases = []
    if not run.sweep_job:
        aliases = [f"{ALIAS}-{init}"] if init else []
        if init in (None, "pretrained"):
            aliases.append(ALIAS)
        for alias in aliases:
            client.set_registered_model_alias(name, alias, version.version)
    run.set_tags({"lmforge.registered_model": f"{name}/{version.version}"})
    log.info("registered %s version %s%s", name, version.version, f" (aliases {', '.join(aliases)})" if aliases else "")
    return version


def _run_tag(client, run_id: str, key: str) -> str | None:
    return client.get_run(run_id).data.tags.get(key)
