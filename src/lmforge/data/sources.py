"""Corpus sources behind one interface: `load_corpus` returns (train_docs, val_docs).

Sources:

- ``"text_files"``: local files through ``datasets.load_dataset``. Plain text (``.txt`` or any
  unrecognised suffix) is read one document per paragraph (blank-line separated,
  ``sample_by="paragraph"``); ``.jsonl``/``.json``, ``.csv``/``.tsv`` and ``.parquet`` are read
  with the matching loader and their ``text_column``.
- ``"hub"``: a Hugging Face Hub dataset, ``load_dataset(name, config)``; uses its validation
  split when it has one.

Without a validation split, a seeded fraction of the documents becomes the validation set. A
corpus that is a single document (one paragraph) is split by characters at a line boundary.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from lmforge.errors import ConfigError, DataError

SOURCES = ("text_files", "hub")
VALIDATION_SPLITS = ("validation", "valid", "val", "dev")

# file suffix -> (datasets builder, extra builder kwargs)
_LOADERS: dict[str, tuple[str, dict]] = {
    ".jsonl": ("json", {}),
    ".json": ("json", {}),
    ".csv": ("csv", {}),
    ".tsv": ("csv", {"sep": "\t"}),
    ".parquet": ("parquet", {}),
}
_TEXT_LOADER = ("text", {"sample_by": "paragraph"})


def load_corpus(
    source: str,
    *,
    paths: list[str] | None = None,
    name: str | None = None,
    config: str | None = None,
    split: str = "train",
    text_column: str = "text",
    val_fraction: float = 0.05,
    seed: int = 0,
    min_chars: int = 1,
    cache_dir: str | None = None,
) -> tuple[list[str], list[str]]:
    """Load a corpus and return ``(train_docs, val_docs)``.

    Documents are stripped of surrounding whitespace; those shorter than ``min_chars`` are
    dropped. ``cache_dir`` is passed to ``datasets.load_dataset`` (default: ``$HF_HOME``).
    Raises ConfigError for bad arguments and DataError for missing/empty/malformed data.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ConfigError(f"data.val_fraction={val_fraction!r} must be in [0, 1)")
    if min_chars < 0:
        raise ConfigError(f"data.min_chars={min_chars!r} must be >= 0")

    if source == "text_files":
        if not paths:
            raise ConfigError("data.text_files.paths must list at least one file for source='text_files'")
        if isinstance(paths, (str, os.PathLike)):
            paths = [paths]
        docs = []
        for path in paths:
            docs.extend(_clean(_read_file(Path(path), text_column, cache_dir), min_chars))
        if not docs:
            raise DataError(
                f"no documents with at least {min_chars} characters in {[str(p) for p in paths]}"
            )
        return train_val_split(docs, val_fraction, seed)

    if source == "hub":
        if not name:
            raise ConfigError("data.hub.name must name a Hub dataset for source='hub'")
        train_raw, val_raw = _read_hub(name, config, split, text_column, cache_dir)
        where = f"Hub dataset {name!r}" + (f" config {config!r}" if config else "")
        train = _clean(train_raw, min_chars)
        if not train:
            raise DataError(
                f"no documents with at least {min_chars} characters in split {split!r} of {where}"
            )
        if val_raw is None:
            return train_val_split(train, val_fraction, seed)
        val = _clean(val_raw, min_chars)
        if not val and val_fraction > 0:
            raise DataError(
                f"the validation split of {where} has no documents with at least {min_chars} characters"
            )
        return train, val

    raise ConfigError(f"data.source={source!r} is not one of {list(SOURCES)}")


def train_val_split(docs: list[str], val_fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """Deterministically move ``round(len(docs) * val_fraction)`` documents (at least 1 when the
    fraction is > 0) to validation, chosen by ``seed``; both splits keep the original order.

    A single document is split by characters instead, at the first line break after
    ``(1 - val_fraction)`` of its length.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ConfigError(f"data.val_fraction={val_fraction!r} must be in [0, 1)")
    if not docs:
        raise DataError("cannot split an empty corpus")
    if val_fraction == 0:
        return list(docs), []
    if len(docs) == 1:
        return _split_one(docs[0], val_fraction)
    n_val = min(max(1, round(len(docs) * val_fraction)), len(docs) - 1)
    order = np.random.default_rng(seed).permutation(len(docs))
    is_val = np.zeros(len(docs), dtype=bool)
    is_val[order[:n_val]] = True
    train = [d for d, v in zip(docs, is_val) if not v]
    val = [d for d, v in zip(docs, is_val) if v]
    return train, val


def _split_one(text: str, val_fraction: float) -> tuple[list[str], list[str]]:
    cut = int(len(text) * (1.0 - val_fraction))
    newline = text.find("\n", cut)
    if newline != -1:
        cut = newline
    train, val = text[:cut].strip(), text[cut:].strip()
    if not train or not val:
        raise DataError(
            f"the corpus is a single document of {len(text)} characters: too short to split "
            f"val_fraction={val_fraction} of it into a validation set"
        )
    return [train], [val]


def _clean(texts: Iterable, min_chars: int) -> list[str]:
    out = []
    for text in texts:
        if text is None:
            continue
        text = text.strip()
        if len(text) >= max(min_chars, 1):
            out.append(text)
    return out


def _column(dataset, text_column: str, where: str, key: str) -> list:
    if text_column not in dataset.column_names:
        raise DataError(
            f"{where} has no column {text_column!r} ({key}); columns: {dataset.column_names}"
        )
    values = list(dataset[text_column])
    for i, value in enumerate(values):
        if value is not None and not isinstance(value, str):
            raise DataError(
                f"{where}, row {i}: column {text_column!r} holds {type(value).__name__}, not text"
            )
    return values


def _read_file(path: Path, text_column: str, cache_dir: str | None) -> list:
    import datasets

    if not path.is_file():
        raise DataError(f"data file not found: {path}")
    if path.stat().st_size == 0:
        raise DataError(f"data file is empty: {path}")
    builder, kwargs = _LOADERS.get(path.suffix.lower(), _TEXT_LOADER)
    try:
        dataset = datasets.load_dataset(
            builder,
            data_files=[str(path.resolve())],
            split="train",
            cache_dir=cache_dir,
            # datasets keys its cache of local files on path + mtime only; an edited file with
            # the same mtime would load stale rows. Re-reading a local file is cheap.
            download_mode="force_redownload",
            **kwargs,
        )
    except Exception as exc:
        raise DataError(f"cannot read {path} as {builder}: {type(exc).__name__}: {exc}") from exc
    if builder == "text":
        return list(dataset["text"])
    return _column(dataset, text_column, f"file {path}", "data.text_files.text_column")


def _read_hub(name: str, config: str | None, split: str, text_column: str, cache_dir: str | None):
    import datasets

    where = f"Hub dataset {name!r}" + (f" config {config!r}" if config else "")
    try:
        splits = datasets.load_dataset(name, config, cache_dir=cache_dir)
        train = splits[split] if split in splits else datasets.load_dataset(
            name, config, split=split, cache_dir=cache_dir
        )
    except Exception as exc:
        raise DataError(f"cannot load {where}, split {split!r}: {type(exc).__name__}: {exc}") from exc
    val = None
    base = split.split("[")[0]
    for candidate in VALIDATION_SPLITS:
        if candidate in splits and candidate != base:
            val = _column(
                splits[candidate], text_column, f"{where} split {candidate!r}", "data.hub.text_column"
            )
            break
    return _column(train, text_column, f"{where} split {split!r}", "data.hub.text_column"), val
