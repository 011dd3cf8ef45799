"""MLflow `pyfunc` models over lmforge model directories (config.json + model.safetensors +
tokenizer.json), so a registered model answers HTTP requests:

    mlflow models serve -m models:/lmforge-topic@latest --env-manager local -h 127.0.0.1 -p 5002
    curl -s 127.0.0.1:5002/invocations -H 'Content-Type: application/json' \\
         -d '{"dataframe_records": [{"text": "The striker scored twice."}]}'
    # {"predictions": ["sports"]}

- `TextClassifier` (a fine-tuned `sequence_classifier`): raw text → label.
- `TokenTagger` (a fine-tuned `token_classifier`, NER): raw text → a tag per word.
- `LanguageModelScorer` (a pretrained `causal_lm`): raw text → perplexity under the model.

Input: a DataFrame with a `text` column (`dataframe_records` / `dataframe_split`), `{"inputs":
{"text": [...]}}`, or a plain list of strings. The models are logged "from code" (a two-line
script, see `track.registry`), never as pickles; the weights stay safetensors.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow.pyfunc

TEXT = "text"


def texts_of(model_input: Any) -> list[str]:
    """The list of texts in any of the accepted input shapes."""
    if isinstance(model_input, str):
        return [model_input]
    if hasattr(model_input, "columns"):  # pandas DataFrame
        col = TEXT if TEXT in model_input.columns else model_input.columns[0]
        return [str(t) for t in model_input[col].tolist()]
    if isinstance(model_input, dict):
        value = model_input.get(TEXT, next(iter(model_input.values()), []))
        return [value] if isinstance(value, str) else [str(t) for t in value]
    if hasattr(model_input, "tolist"):  # numpy array / pandas Series
        model_input = model_input.tolist()
    return [t if isinstance(t, str) else str(t[TEXT] if isinstance(t, dict) else t) for t in model_input]


class TextClassifier(mlflow.pyfunc.PythonModel):
    """A fine-tuned sequence classifier: texts → labels."""

    batch_size = 32

    def load_context(self, context) -> None:
        self.load(context.artifacts["model_dir"])

    def load(self, model_dir: str | Path) -> "TextClassifier":
        from lmforge.data.tokenizer import load_tokenizer, special_ids
        from lmforge.models.io import load_classifier

        self.model, self.config = load_classifier(model_dir)
        self.tok = load_tokenizer(model_dir)
        self.pad_id = special_ids(self.tok)["pad"]
        return self

    def predict(self, context, model_input, params=None) -> list[str]:
        import torch

        n = self.config["max_length"]
        encoded = [e.ids[:n] or [self.pad_id] for e in self.tok.encode_batch(texts_of(model_input))]
        labels = self.config["labels"]
        out: list[str] = []
        with torch.no_grad():
            for i in range(0, len(encoded), self.batch_size):
                batch = encoded[i : i + self.batch_size]  # right-padded, as in training
                ids = torch.full((len(batch), max(map(len, batch))), self.pad_id, dtype=torch.long)
                mask = torch.zeros_like(ids)
                for j, seq in enumerate(batch):
                    ids[j, : len(seq)] = torch.tensor(seq)
                    mask[j, : len(seq)] = 1
                out += [labels[k] for k in self.model(ids, mask).argmax(-1).tolist()]
        return out


class LanguageModelScorer(mlflow.pyfunc.PythonModel):
    """A pretrained causal LM: texts → perplexity (exp of the mean next-token loss)."""

    def load_context(self, context) -> None:
        self.load(context.artifacts["model_dir"])

    def load(self, model_dir: str | Path) -> "LanguageModelScorer":
        from lmforge.data.tokenizer import load_tokenizer
        from lmforge.models.io import load_backbone

        self.backbone, self.config = load_backbone(model_dir)
        self.backbone.eval()
        self.tok = load_tokenizer(model_dir)
        self.max_len = int(self.config["backbone"].get("max_len", 256))
        return self

    def predict(self, context, model_input, params=None) -> list[float]:
        import math

        import torch
        import torch.nn.functional as F

        out = []
        with torch.no_grad():
            for text in texts_of(model_input):
                ids = torch.tensor([self.tok.encode(text).ids[: self.max_len]])
                if ids.shape[1] < 2:
                    out.append(float("nan"))
                    continue
                logits = self.backbone.lm_logits(self.backbone(ids))
                loss = F.cross_entropy(logits[0, :-1].float(), ids[0, 1:])
                out.append(math.exp(min(float(loss), 50.0)))
        return out


class TokenTagger(mlflow.pyfunc.PythonModel):
    """A fine-tuned tagger (NER): texts → one tag per whitespace-separated word."""

    def load_context(self, context) -> None:
        self.load(context.artifacts["model_dir"])

    def load(self, model_dir: str | Path) -> "TokenTagger":
        from omegaconf import OmegaConf

        from lmforge.data.tokenizer import load_tokenizer
        from lmforge.tasks import load_model

        self.model, self.family, self.config = load_model(model_dir)
        self.tok = load_tokenizer(model_dir)
        self.task = OmegaConf.create(self.config["task_config"])
        self.meta = self.config.get("meta") or {"labels": self.config["labels"]}
        return self

    def predict(self, context, model_input, params=None) -> list[list[str]]:
        records = [{"tokens": text.split()} for text in texts_of(model_input)]
        return self.family.predict(self.model, records, self.tok, self.meta, self.task)


# config.json "kind" → the pyfunc class serving it (QA and generation models take structured
# inputs and are not served yet)
PYFUNCS = {"sequence_classifier": TextClassifier, "token_classifier": TokenTagger,
           "causal_lm": LanguageModelScorer}
