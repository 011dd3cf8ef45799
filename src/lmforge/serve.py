"""MLflow `pyfunc` models over lmforge model directories, so a registered model answers HTTP:

    mlflow models serve -m models:/lmforge-topic@current --env-manager local -h 127.0.0.1 -p 5002
    curl -s 127.0.0.1:5002/invocations -H 'Content-Type: application/json' \\
         -d '{"dataframe_records": [{"text": "..."}]}'

- `TaskModel` — any fine-tuned task model whose family serves (`Family.serves`: its input columns
  and output): a classifier answers a label per text, the NER tagger a tag per whitespace-separated
  word, QA an answer per (question, context), a generator its text.
- `LanguageModel` — the pretrained causal LM: a perplexity per text.

Input: a DataFrame with the input columns (`dataframe_records` / `dataframe_split`), `{"inputs":
{...}}`, or a plain list of strings for a single-input model. The models are logged "from code"
(a two-line script, see `track.registry`), never as pickles; the weights stay safetensors.

`predict`'s input is typed `pd.DataFrame`: what MLflow hands it after enforcing the logged
signature. It is one of the type hints MLflow accepts without inferring a signature from them
(`mlflow.types.type_hints.type_hints_no_signature_inference`), so the logged signature stays the
one `track.registry` writes and MLflow converts nothing (a `list[str]` hint would make it pass the
first string column only: no QA); an untyped `predict` makes MLflow advise type hints on every log.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow.pyfunc
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE


def columns_of(model_input: Any, names: list[str]) -> dict[str, list]:
    """{column: values} of the accepted input shapes (in process, one unnamed column counts as the
    first input; served, MLflow has checked the named columns); a value that is not a string is
    refused naming its column and row (MLflow lets a null through)."""
    columns = _columns(model_input, names)
    for name, values in columns.items():
        for i, v in enumerate(values):
            if not isinstance(v, str):
                what = "null" if v is None or v != v else repr(v)  # (pandas reads a JSON null as NaN)
                raise MlflowException(
                    f"input column {name!r}, row {i}: {what} is not a string; every {name!r} must be a text",
                    error_code=INVALID_PARAMETER_VALUE,
                )
    return columns


def _columns(model_input: Any, names: list[str]) -> dict[str, list]:
    if isinstance(model_input, str):
        model_input = [model_input]
    if hasattr(model_input, "columns"):  # pandas DataFrame
        cols = list(model_input.columns)
        if all(n in cols for n in names):
            return {n: model_input[n].tolist() for n in names}
        if len(names) == 1 and len(cols) == 1:
            return {names[0]: model_input[cols[0]].tolist()}
        raise ValueError(f"input columns {cols}; this model needs {names}")
    if isinstance(model_input, dict):
        if all(n in model_input for n in names):
            return {n: [model_input[n]] if isinstance(model_input[n], str) else list(model_input[n]) for n in names}
        raise ValueError(f"input keys {sorted(model_input)}; this model needs {names}")
    if hasattr(model_input, "tolist"):  # numpy array / pandas Series
        model_input = model_input.tolist()
    rows = list(model_input)
    if rows and isinstance(rows[0], dict):
        return {n: [r[n] for r in rows] for n in names}
    if len(names) != 1:
        raise ValueError(f"this model needs the columns {names}")
    return {names[0]: [str(r) for r in rows]}


class TaskModel(mlflow.pyfunc.PythonModel):
    """A fine-tuned task model: its family's input columns → its predictions."""

    def load_context(self, context) -> None:
        self.load(context.artifacts["model_dir"])

    def load(self, model_dir: str | Path) -> "TaskModel":
        from lmforge.data.tokenizer import load_tokenizer
        from lmforge.tasks import load_task_model

        self.model, self.family, self.saved = load_task_model(model_dir)
        self.tok = load_tokenizer(model_dir)
        return self

    def predict(self, context, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> list:
        columns = columns_of(model_input, self.family.serves["inputs"])
        records = self.family.serve_records(columns)
        return self.family.predict(self.model, records, self.tok, self.saved.head or {})


class LanguageModel(mlflow.pyfunc.PythonModel):
    """A pretrained causal LM: texts → perplexity (exp of the mean next-token loss)."""

    def load_context(self, context) -> None:
        self.load(context.artifacts["model_dir"])

    def load(self, model_dir: str | Path) -> "LanguageModel":
        from lmforge.data.tokenizer import load_tokenizer
        from lmforge.models import load_backbone

        self.backbone, self.saved = load_backbone(model_dir)
        self.backbone.eval()
        self.tok = load_tokenizer(model_dir)
        return self

    def predict(self, context, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> list[float]:
        import math

        import torch
        import torch.nn.functional as F

        out = []
        with torch.no_grad():
            for text in columns_of(model_input, ["text"])["text"]:
                ids = torch.tensor([self.tok.encode(str(text)).ids[: self.backbone.cfg.max_len]])
                if ids.shape[1] < 2:
                    out.append(float("nan"))
                    continue
                logits = self.backbone.lm_logits(self.backbone(ids))
                loss = F.cross_entropy(logits[0, :-1].float(), ids[0, 1:])
                out.append(math.exp(min(float(loss), 50.0)))
        return out
