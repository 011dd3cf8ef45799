"""Corpus sources behind one interface: `load_corpus` returns a `Corpus`, whose `train()` and
`validation()` each start a new pass over the documents. Nothing holds the corpus in memory: a
pass reads the source again (a prepare stage makes two: tokenizer training, then packing).

Sources:

- ``"text_files"``: local files. Plain text (``.txt`` or any unrecognised suffix) is read
  straight from the file, one document per paragraph. Lines end at ``"\\n"`` only (a
  ``"\\r\\n"`` ending is accepted; U+2028, form feeds and the like stay inside their line), and
  a line of whitespace only separates paragraphs. A paragraph longer than ``max_doc_chars``
  (`MAX_DOC_CHARS`) is cut at line boundaries into several documents, and a single line longer
  than that at ``max_doc_chars`` characters: no paragraph, and no file without blank lines, has
  to fit in memory. ``encoding`` is UTF-8 by default (a byte-order mark is dropped).
  ``.jsonl``/``.json``, ``.csv``/``.tsv`` and ``.parquet`` are streamed through
  ``datasets.load_dataset(builder, data_files=..., streaming=True)`` and read by ``text_column``.
- ``"hub"``: a Hugging Face Hub dataset (or a local dataset folder) through
  ``datasets.load_dataset(name, config, streaming=..., num_proc=...)``; its validation split is
  used when it has one. Not streaming, ``datasets`` prepares Arrow files in its cache (with
  ``num_proc`` processes) and they are read memory-mapped; streaming, every pass reads the
  source again and nothing is cached.
- `Corpus.from_documents`: a list already in memory (the built-in synthetic world, small).

Documents are stripped of surrounding whitespace; those shorter than ``min_chars`` are dropped.

The train/validation split of a source without a validation split is decided document by
document, in one pass, so every pass gives the same split: a document goes to validation when
``blake2b(text, key=seed)``, read as a 64-bit number over 2**64, is below ``val_fraction``. The
text, not the position, decides, so duplicate documents always land in the same split. The last
document of the stream settles the two guarantees (it is held back by one document): it goes to
validation when no earlier one did, and to train when every earlier one went to validation. A
corpus of a single document (shorter than ``max_doc_chars``) is split by characters at the
first line break after ``(1 - val_fraction)`` of its length. `from_documents` keeps the exact
split of `train_val_split` (a seeded permutation: ``round(n * val_fraction)`` documents).
"""

from __future__ import annotations

import codecs
import hashlib
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np

from lmforge.errors import ConfigError, DataError
from lmforge.fileio import unreachable

SOURCES = ("text_files", "hub")
VALIDATION_SPLITS = ("validation", "valid", "val", "dev")
MAX_DOC_CHARS = 1_000_000
"""The longest document a plain-text paragraph becomes; longer ones are cut (see module doc)."""

# file suffix -> (datasets builder, extra builder kwargs); anything else is plain text
_LOADERS: dict[str, tuple[str, dict]] = {
    ".jsonl": ("json", {}),
    ".json": ("json", {}),
    ".csv": ("csv", {}),
    ".tsv": ("csv", {"sep": "\t"}),
    ".parquet": ("parquet", {}),
}
_BATCH = 1000  # rows per batch read from a `datasets` dataset
PLAIN_FIX = "set data.text_files.encoding if the file is in another encoding"  # plain text that does not decode


class Corpus:
    """Train and validation documents as re-iterable streams.

    Each call of `train()` / `validation()` starts a new pass over the source and yields its
    documents in source order. ``where`` names the source in messages.
    """

    def __init__(self, train: Callable[[], Iterable[str]], validation: Callable[[], Iterable[str]], where: str):
        self._train, self._validation, self.where = train, validation, where

    def train(self) -> Iterator[str]:
        return iter(self._train())

    def validation(self) -> Iterator[str]:
        return iter(self._validation())

    def __repr__(self) -> str:
        return f"Corpus({self.where})"

    @classmethod
    def from_documents(
        cls, docs: Sequence[str], val_fraction: float, seed: int, where: str = "the given documents"
    ) -> Corpus:
        """A corpus over documents already in memory, split by `train_val_split`."""
        train, val = train_val_split(list(docs), val_fraction, seed)
        return cls(lambda: train, lambda: val, where)

    @classmethod
    def split_stream(cls, documents: Callable[[], Iterable[str]], val_fraction: float, seed: int, where: str) -> Corpus:
        """A corpus over ``documents()`` (a new pass per call), split by the hash rule of the
        module doc. A pass that finds no document raises DataError."""
        if not 0.0 <= val_fraction < 1.0:
            raise ConfigError(f"data.val_fraction={val_fraction!r} must be in [0, 1)")

        def part(want_val: bool) -> Iterator[str]:
            for is_val, text in _assign(documents(), val_fraction, seed, where):
                if is_val == want_val:
                    yield text

        return cls(lambda: part(False), lambda: part(True), where)


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
    encoding: str = "utf-8",
    streaming: bool = False,
    num_proc: int | None = None,
    max_doc_chars: int = MAX_DOC_CHARS,
) -> Corpus:
    """Open a corpus (see the module doc); reading happens pass by pass, later.

    Files are checked here (present, a file, not empty) and a Hub dataset is opened here, so
    those errors come before any work. ``encoding`` applies to plain-text files; ``streaming``
    and ``num_proc`` to the Hub source; ``cache_dir`` is passed to ``datasets.load_dataset``
    (default: ``$HF_HOME``). Raises ConfigError for bad arguments and DataError for
    missing/empty/malformed data (naming the file and line, byte offset or row).
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ConfigError(f"data.val_fraction={val_fraction!r} must be in [0, 1)")
    if min_chars < 0:
        raise ConfigError(f"data.min_chars={min_chars!r} must be >= 0")
    if max_doc_chars < 1:
        raise ConfigError(f"max_doc_chars={max_doc_chars!r} must be >= 1")

    if source == "text_files":
        if not paths:
            raise ConfigError("data.text_files.paths must list at least one file for source='text_files'")
        if isinstance(paths, (str, os.PathLike)):
            paths = [paths]
        try:
            codecs.lookup(encoding)
        except LookupError:
            raise ConfigError(f"data.text_files.encoding={encoding!r} is not a known encoding") from None
        readers = [_file_reader(Path(p), text_column, encoding, max_doc_chars) for p in paths]
        where = f"{[str(p) for p in paths]}"

        def documents() -> Iterator[str]:
            for read in readers:
                yield from _clean(read(), min_chars)

        return Corpus.split_stream(lambda: _nonempty(documents(), where, min_chars), val_fraction, seed, where)

    if source == "hub":
        if not name:
            raise ConfigError("data.hub.name must name a Hub dataset for source='hub'")
        if num_proc is not None and (not isinstance(num_proc, int) or num_proc < 1):
            raise ConfigError(f"data.hub.num_proc={num_proc!r} must be null or an integer >= 1")
        where = f"Hub dataset {name!r}" + (f" config {config!r}" if config else "")
        train_ds, val_ds, val_name = _open_hub(name, config, split, streaming, num_proc, cache_dir, where)
        key = "data.hub.text_column"

        def train_docs() -> Iterator[str]:
            yield from _nonempty(
                _clean(_column(train_ds, text_column, f"{where} split {split!r}", key), min_chars),
                f"split {split!r} of {where}",
                min_chars,
            )

        if val_ds is None:
            return Corpus.split_stream(train_docs, val_fraction, seed, where)

        def val_docs() -> Iterator[str]:
            docs = _clean(_column(val_ds, text_column, f"{where} split {val_name!r}", key), min_chars)
            if val_fraction > 0:
                docs = _nonempty(docs, f"the validation split of {where}", min_chars)
            yield from docs

        return Corpus(train_docs, val_docs, where)

    raise ConfigError(f"data.source={source!r} is not one of {list(SOURCES)}")


def train_val_split(docs: list[str], val_fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """Deterministically move ``round(len(docs) * val_fraction)`` documents (at least 1 when the
    fraction is > 0) to validation, chosen by ``seed``; both splits keep the original order.
    For lists in memory (`Corpus.from_documents`); streams are split by `Corpus.split_stream`.

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


def is_validation(text: str, val_fraction: float, seed: int) -> bool:
    """The hash rule of the stream split (before its last-document exceptions)."""
    key = str(seed).encode("utf-8")[:64]
    h = int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8, key=key).digest(), "little")
    return h < val_fraction * 2.0**64


def _assign(docs: Iterable[str], val_fraction: float, seed: int, where: str) -> Iterator[tuple[bool, str]]:
    """(is_validation, text) for every document, in order (the rule of the module doc)."""
    it = iter(docs)
    held = next(it, None)
    if held is None:
        raise DataError(f"no documents in {where}")
    if val_fraction == 0:
        yield False, held
        for text in it:
            yield False, text
        return
    n_docs = n_val = 0
    for text in it:
        is_val = is_validation(held, val_fraction, seed)
        n_docs += 1
        n_val += is_val
        yield is_val, held
        held = text
    if n_docs == 0:  # a single document: split by characters
        train, val = _split_one(held, val_fraction)
        yield False, train[0]
        yield True, val[0]
    elif n_val == 0:
        yield True, held
    elif n_val == n_docs:
        yield False, held
    else:
        yield is_validation(held, val_fraction, seed), held


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


def _clean(texts: Iterable, min_chars: int) -> Iterator[str]:
    for text in texts:
        if text is None:
            continue
        text = text.strip()
        if len(text) >= max(min_chars, 1):
            yield text


def _nonempty(docs: Iterable[str], where: str, min_chars: int) -> Iterator[str]:
    """Pass ``docs`` through; DataError at the end when there were none."""
    empty = True
    for text in docs:
        empty = False
        yield text
    if empty:
        raise DataError(f"no documents with at least {min_chars} characters in {where}")


# ---------------------------------------------------------------------------------------------
# local files


def _file_reader(path: Path, text_column: str, encoding: str, max_doc_chars: int) -> Callable[[], Iterator]:
    """Check ``path`` now — present, a file, not empty, text in its encoding all through (one
    quick pass, so that a bad byte stops the stage before any work, not hours into it) — and
    return a function that reads it, one pass per call."""
    key = "data.text_files.paths"
    if why := unreachable(path):
        raise DataError(f"{path}: {why}; {key} must list existing data files")
    if path.is_dir():
        raise DataError(f"{path}: a directory, not a data file; {key} must list files (the ones inside it)")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: an empty data file; remove it from {key}")
    builder, kwargs = _LOADERS.get(path.suffix.lower(), (None, {}))
    if builder is None:
        _check_text(path, encoding, PLAIN_FIX)
        return lambda: _paragraphs(path, encoding, max_doc_chars)
    if builder != "parquet":  # `datasets` reads structured text files as UTF-8
        _check_text(path, "utf-8", f"a {path.suffix} file is read as UTF-8: convert it (e.g. iconv -f latin1 -t utf-8)")

    import datasets

    try:
        dataset = datasets.load_dataset(
            builder, data_files=[str(path.resolve())], split="train", streaming=True, **kwargs
        )
    except Exception as exc:
        raise DataError(f"{path}: cannot read it as {builder} ({_first_line(exc)})") from None
    where = f"file {path}"
    read = lambda: _column(dataset, text_column, where, "data.text_files.text_column", builder)  # noqa: E731
    next(read(), None)  # its first rows now: a missing column or a malformed start fails before any work
    return read


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


def _paragraphs(path: Path, encoding: str, max_chars: int) -> Iterator[str]:
    """The paragraphs of a plain-text file (not yet stripped), each at most ``max_chars``."""
    python_encoding = "utf-8-sig" if codecs.lookup(encoding).name == "utf-8" else encoding
    lines: list[str] = []  # the paragraph so far: pieces with their separators
    size = 0
    continues = False  # the last read ended inside a line (it was max_chars long)
    # newline="\n": lines end at "\n" only, returned untranslated (never at "\r", U+2028, ...)
    with open(path, encoding=python_encoding, newline="\n") as f:
        while True:
            try:
                read = f.readline(max_chars)
            except UnicodeDecodeError:  # (the file changed since it was checked) say where
                _check_text(path, encoding, PLAIN_FIX)
                raise
            if not read:
                break
            ends_line = read.endswith("\n")
            piece = read[:-1].removesuffix("\r") if ends_line else read
            if not continues and ends_line and not piece.strip():  # a blank line
                if lines:
                    yield "".join(lines)
                lines, size = [], 0
            else:
                sep = "\n" if lines and not continues else ""
                if lines and size + len(sep) + len(piece) > max_chars:
                    yield "".join(lines)
                    lines, size, sep = [], 0, ""
                lines.append(sep + piece)
                size += len(sep) + len(piece)
            continues = not ends_line
    if lines:
        yield "".join(lines)


def _check_text(path: Path, encoding: str, fix: str) -> None:
    """Decode ``path`` once, in chunks: DataError at the first byte that is not ``encoding`` text
    (its line and byte offset; `fix` says what would work) or the first NUL character (a binary
    file, or another encoding)."""
    python_encoding = "utf-8-sig" if codecs.lookup(encoding).name == "utf-8" else encoding
    decoder = codecs.getincrementaldecoder(python_encoding)("strict")
    offset = newlines = 0
    with open(path, "rb") as f:
        while True:
            chunk = f.read(1 << 20)
            held = decoder.getstate()[0]
            try:
                text = decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as exc:
                good = (held + chunk)[: exc.start].decode(python_encoding, errors="replace")
                if "\x00" not in good:
                    line = newlines + good.count("\n") + 1
                    raise DataError(
                        f"{path}, line {line} (byte {offset - len(held) + exc.start}): not valid {encoding} "
                        f"text ({exc.reason}); {fix}"
                    ) from None
                text = good
            if (nul := text.find("\x00")) != -1:
                raise DataError(
                    f"{path}, line {newlines + text.count(chr(10), 0, nul) + 1}: NUL character: a binary "
                    f"file, or text in another encoding than {encoding}; {fix}"
                )
            if not chunk:
                return
            newlines += text.count("\n")
            offset += len(chunk)


# ---------------------------------------------------------------------------------------------
# datasets (structured files and the Hub)


# what a structured file must be, by `datasets` builder (the hint of a read error)
_SHAPES = {
    "json": "one JSON object per line (.jsonl) or a JSON list of objects (.json)",
    "csv": "comma- (.csv) or tab-separated (.tsv) rows under a header row",
    "parquet": "a Parquet table",
}


def _column(dataset, text_column: str, where: str, key: str, builder: str = "datasets") -> Iterator:
    """The values of ``text_column``, batch by batch; DataError naming the row at fault."""
    names = dataset.column_names  # None for some streamed datasets: checked on the first batch
    if names is not None:
        if text_column not in names:
            raise DataError(f"{where} has no column {text_column!r}; set {key} to one of its columns {list(names)}")
        dataset = dataset.select_columns([text_column])
    row = 0
    batches = iter(dataset.iter(batch_size=_BATCH))
    while True:
        try:
            batch = next(batches, None)
        except Exception as exc:  # a malformed line or file
            shape = f"; it must hold {_SHAPES[builder]}" if builder in _SHAPES else ""
            raise DataError(f"cannot read {where} as {builder} (after row {row}): {_first_line(exc)}{shape}") from None
        if batch is None:
            return
        if text_column not in batch:
            raise DataError(f"{where} has no column {text_column!r}; set {key} to one of its columns {list(batch)}")
        for value in batch[text_column]:
            if value is not None and not isinstance(value, str):
                raise DataError(
                    f"{where}, row {row}: column {text_column!r} holds {type(value).__name__}, not text ({key})"
                )
            row += 1
            yield value


def _open_hub(
    name: str, config: str | None, split: str, streaming: bool, num_proc: int | None, cache_dir: str | None, where: str
):
    """(train split, validation split or None, its name) of a Hub dataset, opened, not read."""
    import datasets

    if streaming and num_proc is not None:
        raise ConfigError(
            "data.hub.num_proc prepares a dataset's Arrow files in parallel; with data.hub.streaming=true "
            "nothing is prepared: leave num_proc null"
        )
    if streaming and "[" in split:
        raise ConfigError(f"data.hub.split={split!r}: a sliced split cannot be streamed; set data.hub.streaming=false")
    extra = {"streaming": True} if streaming else {"num_proc": num_proc}
    try:
        splits = datasets.load_dataset(name, config, cache_dir=cache_dir, **extra)
        if split in splits:
            train = splits[split]
        elif streaming:
            raise DataError(f"{where} has no split {split!r}; splits: {list(splits)}")
        else:
            train = datasets.load_dataset(name, config, split=split, cache_dir=cache_dir, **extra)
    except DataError:
        raise
    except Exception as exc:
        raise DataError(f"cannot load {where}, split {split!r}: {type(exc).__name__}: {exc}") from exc
    base = split.split("[")[0]
    for candidate in VALIDATION_SPLITS:
        if candidate in splits and candidate != base:
            return train, splits[candidate], candidate
    return train, None, None
