"""Labelled data files in standard formats → rows (dicts of columns), each with where it came from.

A task family turns rows into its records (`lmforge.tasks`: the family maps columns to fields);
this module only reads files, the same way for every family:

- `glue_tsv`: tab-separated, no quoting (GLUE's own files); `csv`: comma-separated, RFC 4180
  quoting. A header row names the columns (`header: false`: columns are "0", "1", …).
- `jsonl`: one JSON object per line.
- `conll`: whitespace-separated columns (token first, the tag in `tag_column`), blank lines between
  sentences, `-DOCSTART-` lines ignored → rows {"tokens", "tags"}.
- `squad`: SQuAD v1.1 JSON (`data[].paragraphs[].qas[]`) → rows {"id", "context", "question", "answers"}.
- `parallel`: line-aligned plain text `<path>.<source_lang>` / `<path>.<target_lang>` → rows
  {"source", "target"}.
- Hub datasets (`datasets.load_dataset`) → their rows, class-label ints turned into names.

Text is decoded as `encoding` (UTF-8 by default): bytes that are not UTF-8 fail with the file and
byte offset, a binary file (NUL bytes) as such. Lines split on "\\n" only ("\\r\\n" accepted): a
U+2028 or form feed inside a line stays in it. A problem names the file and the line where the
record *starts*; with `skip_malformed` the row is skipped and counted — one count per record lost.
CSV is read strictly (RFC 4180): a record whose quote runs over several lines must close it where
CSV expects, else that record is the malformed one and the lines after it are read again as
records of their own, so an unbalanced quote never swallows them. A file without a record (empty,
a header only) is refused. Messages name the settings to change under `key` (e.g.
`task.sst2_local.data`).
"""

from __future__ import annotations

import csv
import itertools
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from lmforge.errors import ConfigError, DataError, first_line
from lmforge.fileio import unreachable

FORMATS = ("glue_tsv", "csv", "jsonl", "conll", "squad", "parallel")
# the columns a format's rows always have (the others: whatever the file's columns are)
PROVIDES = {
    "conll": ("tokens", "tags"),
    "squad": ("id", "context", "question", "answers"),
    "parallel": ("source", "target"),
}

csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # a long field is data, not an error


@dataclass
class Split:
    records: list[dict] = field(default_factory=list)
    skipped: int = 0
    problems: list[str] = field(default_factory=list)  # the first few skipped rows, for the log


class Collector:
    """Turns rows into records (`convert(row, where)`); a problem either raises or, with `skip`,
    is counted and the row dropped. `key` is where the data settings live (for the hints)."""

    def __init__(self, convert: Callable[[dict, str], dict], skip: bool, key: str = "task.data"):
        self.convert, self.skip, self.key, self.out = convert, skip, key, Split()

    def bad(self, where: str, why: str, count: int = 1) -> None:
        if not self.skip:
            raise DataError(f"{where}: {why}; fix it, or skip such records with {self.key}.skip_malformed=true")
        self.out.skipped += count
        if len(self.out.problems) < 5:
            self.out.problems.append(f"{where}: {why}")

    def row(self, row: dict, where: str) -> None:
        try:
            self.out.records.append(self.convert(row, where))
        except DataError as e:
            self.bad(where, str(e).removeprefix(f"{where}: "))


def read_text(path: Path, encoding: str = "utf-8", key: str = "task.data", file_key: str = "task.data.train") -> str:
    """A whole text file, decoded; DataError naming the file (and the byte offset of bad bytes)
    and the setting that would fix it (`key`: the data settings, `file_key`: the one naming the file)."""
    if path.is_dir():
        raise DataError(f"{path}: is a directory; {file_key} must name a data file")
    try:
        data = path.read_bytes()
    except OSError as e:
        why = unreachable(path) or f"cannot read it ({e.strerror})"
        if why == "not found":
            why = "no such file"
        fix = f"{file_key} must name an existing data file (relative to the project root)"
        raise DataError(f"{path}: {why}; {fix}") from None
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as e:
        text = data[: e.start].decode(encoding, errors="replace")
        if "\0" not in text:
            line = text.count("\n") + 1
            raise DataError(
                f"{path}:{line}: not {encoding} text (byte offset {e.start}: "
                f"{data[e.start : e.start + 1]!r}); set {key}.encoding to the file's encoding "
                "(e.g. latin-1)"
            ) from None
    except LookupError:
        raise ConfigError(f"{key}.encoding={encoding!r} is not an encoding Python knows") from None
    if (nul := text.find("\0")) != -1:
        raise DataError(
            f"{path}:{text.count(chr(10), 0, nul) + 1}: a NUL character: a binary file, not {encoding} "
            f"text; {file_key} must name a text file in the task's format"
        )
    return text.removeprefix("\ufeff")  # the byte-order mark Excel and Notepad write before UTF-8 text


def lines(text: str) -> list[str]:
    """Lines split on "\\n" only, a trailing "\\r" removed; a final newline makes no empty line."""
    out = text.split("\n")
    if out and out[-1] == "":
        out.pop()
    return [s[:-1] if s.endswith("\r") else s for s in out]


def read_delimited(path: Path, text: str, data: Any, c: Collector, delimiter: str) -> None:
    """CSV (strict RFC 4180 quoting) or GLUE TSV (no quoting), record by record; a malformed record
    is the one at its first line, and reading goes on at the line after it (see the module doc)."""
    physical = text.split("\n")
    if physical and physical[-1] == "":
        physical.pop()
    quoting = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL
    header: list[str] | None = None
    start = 0  # the index of the line the reader starts at
    while start < len(physical):
        reader = csv.reader(
            (line + "\n" for line in itertools.islice(physical, start, None)),
            delimiter=delimiter,
            quoting=quoting,
            strict=True,
        )
        base, start = start, len(physical)
        while True:
            first = base + reader.line_num + 1  # the line (1-based) the next record starts at
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as e:  # quoting CSV cannot read: a quote never closed, or text after a closing one
                why = (
                    "a quote opened here is not closed"
                    if "end of data" in str(e)
                    else "a quoted field must end with its quote right before a comma or the line's end"
                )
                c.bad(f"{path}:{first}", f"malformed CSV ({e}): {why}")
                start = first  # go on at the next line
                break
            end = base + reader.line_num
            if header is None and data.header:
                header = row
                continue
            if not any(cell.strip() for cell in row):
                continue
            names = header or [str(i) for i in range(len(row))]
            where = f"{path}:{first}"
            if len(row) == len(names):
                c.row(dict(zip(names, row)), where)
            elif end > first:  # a quote ran over the next lines: they are records of their own
                c.bad(where, f"{len(row)} columns, expected {len(names)}: a quote opened here runs to line {end}")
                start = first
                break
            else:
                c.bad(where, f"{len(row)} columns, expected {len(names)}")


def read_jsonl(path: Path, text: str, data: Any, c: Collector) -> None:
    for lineno, line in enumerate(lines(text), 1):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            c.bad(where, f"not valid JSON ({e.msg})")
            continue
        if not isinstance(row, dict):
            c.bad(where, "not a JSON object")
            continue
        c.row(row, where)


def read_conll(path: Path, text: str, data: Any, c: Collector) -> None:
    """CoNLL columns; a sentence with a malformed line is rejected (or skipped) as a whole."""
    tokens: list[str] = []
    tags: list[str] = []
    first = bad_line = None
    why = ""

    def flush() -> None:
        nonlocal tokens, tags, bad_line, first
        if bad_line is not None:
            c.bad(f"{path}:{bad_line}", why)
        elif tokens:
            c.row({"tokens": tokens, "tags": tags}, f"{path}:{first}")
        tokens, tags, bad_line, first = [], [], None, None

    for lineno, line in enumerate(lines(text), 1):
        cols = line.split()
        if not cols or cols[0] == "-DOCSTART-":
            flush()
            continue
        first = first or lineno
        if bad_line is not None:
            continue
        try:
            tag = cols[data.tag_column]
        except IndexError:
            tag = None
        if len(cols) < 2 or tag is None:
            bad_line, why = lineno, f"expected a token and a tag (column {data.tag_column}), got {line.strip()!r}"
        else:
            tokens.append(cols[0])
            tags.append(tag)
    flush()


def read_squad(path: Path, text: str, data: Any, c: Collector) -> None:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise DataError(
            f"{path}:{e.lineno}: not valid JSON ({e.msg} at column {e.colno}); the file is damaged or truncated"
        ) from None
    articles = doc.get("data") if isinstance(doc, dict) else None
    if not isinstance(articles, list):
        raise DataError(
            f"{path}: not SQuAD v1.1 JSON (no top-level 'data' list of articles); {c.key}.format "
            f"names the files' format ({', '.join(FORMATS)})"
        )
    for i, art in enumerate(articles):
        for j, para in enumerate(art.get("paragraphs", []) if isinstance(art, dict) else []):
            where_p = f"{path}: data[{i}].paragraphs[{j}]"
            if not isinstance(para, dict) or not isinstance(para.get("context"), str):
                c.bad(where_p, "no string 'context'")
                continue
            for k, qa in enumerate(para.get("qas", [])):
                where = f"{where_p}.qas[{k}]"
                if not isinstance(qa, dict):
                    c.bad(where, "not an object")
                    continue
                c.row(
                    {
                        "id": str(qa.get("id", where)),
                        "context": para["context"],
                        "question": qa.get("question"),
                        "answers": qa.get("answers"),
                    },
                    where,
                )


def read_parallel(path: str, data: Any, c: Collector, file_key: str) -> None:
    """`<path>.<source_lang>` and `<path>.<target_lang>`, one sentence per line, aligned."""
    src_path, tgt_path = Path(f"{path}.{data.source_lang}"), Path(f"{path}.{data.target_lang}")
    src, tgt = (
        lines(read_text(p, data.encoding, c.key, f"{file_key} (+ .{lang})"))
        for p, lang in ((src_path, data.source_lang), (tgt_path, data.target_lang))
    )
    while src and tgt and not src[-1].strip() and not tgt[-1].strip():
        src.pop()
        tgt.pop()
    if len(src) != len(tgt):
        raise DataError(
            f"{src_path} has {len(src)} lines but {tgt_path} has {len(tgt)}: not aligned (line i of one "
            "must be the translation of line i of the other)"
        )
    for lineno, (s, t) in enumerate(zip(src, tgt), 1):
        if not s.strip() or not t.strip():
            c.bad(f"{src_path if not s.strip() else tgt_path}:{lineno}", "empty line (its pair is not empty)")
            continue
        c.row({"source": s.strip(), "target": t.strip()}, f"{src_path}:{lineno}")


def read_file(
    fmt: str, path: str, data: Any, convert: Callable[[dict, str], dict], key: str = "task.data", split: str = "train"
) -> Split:
    """Read one split file of format `fmt`; `convert(row, where)` makes a record of each row. `key`
    names the data settings and `split` the one of them that names the file (for the hints)."""
    if fmt not in FORMATS:
        raise ConfigError(f"{key}.format={fmt!r} is not one of {list(FORMATS)}")
    c = Collector(convert, data.skip_malformed, key)
    file_key = f"{key}.{split}"
    if fmt == "parallel":
        read_parallel(path, data, c, file_key)
    else:
        text = read_text(Path(path), data.encoding, key, file_key)
        read = {
            "glue_tsv": lambda: read_delimited(Path(path), text, data, c, "\t"),
            "csv": lambda: read_delimited(Path(path), text, data, c, ","),
            "jsonl": lambda: read_jsonl(Path(path), text, data, c),
            "conll": lambda: read_conll(Path(path), text, data, c),
            "squad": lambda: read_squad(Path(path), text, data, c),
        }
        read[fmt]()
    if not c.out.records and not c.out.skipped:  # no row at all, good or bad
        what = f"{path}.{data.source_lang}" if fmt == "parallel" else path
        header = fmt in ("glue_tsv", "csv") and data.header
        raise DataError(
            f"{what}: no records ({'empty, or a header only' if header else 'an empty file'}); "
            f"{file_key} must name a file with records"
        )
    return c.out


def _named(value: Any, feature: Any) -> Any:
    """A dataset's class-label ints as their names (also inside sequences)."""
    if feature is None:
        return value
    if hasattr(feature, "int2str") and isinstance(value, int):
        return feature.int2str(value)
    inner = getattr(feature, "feature", None)
    if inner is not None and hasattr(inner, "int2str") and isinstance(value, list):
        return [inner.int2str(v) if isinstance(v, int) else v for v in value]
    return value


def hub_rows(
    data: Any,
    split_names: dict[str, str],
    convert: Callable[[dict, str], dict],
    files: dict[str, str] | None = None,
    key: str = "task.data",
) -> dict[str, Split]:
    """`datasets.load_dataset(hub_name, hub_config)` splits → records. For the builders
    json/csv/parquet, `files` are the local files of each split."""
    from datasets import load_dataset

    kwargs: dict[str, Any] = {}
    if data.hub_name in ("json", "csv", "parquet"):
        kwargs["data_files"] = dict(files or {})
    out = {}
    for split, hub_split in split_names.items():
        try:
            ds = load_dataset(data.hub_name, data.hub_config, split=hub_split, **kwargs)
        except Exception as exc:  # offline, unknown name or split: say which
            raise DataError(
                f"{key}.hub_name={data.hub_name!r} (config {data.hub_config!r}, split {hub_split!r}) "
                f"could not be loaded: {first_line(exc)}"
            ) from None
        features = dict(ds.features)
        c = Collector(convert, data.skip_malformed, key)
        for i, row in enumerate(iter(ds)):
            c.row({k: _named(v, features.get(k)) for k, v in row.items()}, f"{data.hub_name}:{hub_split}[{i}]")
        out[split] = c.out
    return out
