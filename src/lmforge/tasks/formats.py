"""Real-data readers: standard file formats (and Hub datasets) → the canonical task records.

Canonical records, per family: classification `{"text", "label"}`; tagging `{"tokens", "tags"}`
(IOB2); qa `{"id", "context", "question", "answers": {"text", "answer_start"}}`; summarization
`{"document", "summary"}`; translation `{"source", "target"}`.

Local formats (`task.data.format`):

- `glue_tsv` / `csv`: a header row (or `header: false` and positional `columns`), columns named
  by `task.data.columns` (record field → column), labels renamed by `task.data.label_map`;
- `jsonl`: one JSON object per line, keys named by `columns` (a QA record keeps SQuAD's nested
  `answers`);
- `conll`: whitespace-separated columns (token first, the tag in `tag_column`), blank lines
  between sentences, `-DOCSTART-` lines ignored; `scheme: iob1` (CoNLL-2003's own files) is
  converted to IOB2;
- `squad`: SQuAD v1.1 JSON (`data[].paragraphs[].qas[]`);
- `parallel`: line-aligned plain text, `<path>.<source_lang>` and `<path>.<target_lang>`.

A malformed line or record raises DataError naming the file and line (JSON: the record's path),
or — with `task.data.skip_malformed: true` — is skipped and counted (`Split.skipped`).
Hub datasets go through `datasets.load_dataset` and the same column mapping (`from_rows`);
`hub_name: json|csv|parquet` loads local files that way (what the tests exercise offline).
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from lmforge.errors import ConfigError, DataError
from lmforge.tasks.metrics import iob1_to_iob2

FIELDS = {
    "classification": ("text", "label"),
    "tagging": ("tokens", "tags"),
    "qa": ("id", "context", "question", "answers"),
    "summarization": ("document", "summary"),
    "translation": ("source", "target"),
}
FORMATS = ("glue_tsv", "csv", "jsonl", "conll", "squad", "parallel")
_TAG = re.compile(r"^(O|[BIES]-\S+)$")


@dataclass
class Split:
    records: list[dict]
    skipped: int = 0
    problems: list[str] = field(default_factory=list)  # the first few skipped lines, for the log


class _Reader:
    """Collects records; a problem either raises or (skip_malformed) is counted."""

    def __init__(self, skip: bool):
        self.skip, self.out = skip, Split([])

    def bad(self, where: str, why: str) -> None:
        if not self.skip:
            raise DataError(f"{where}: {why}")
        self.out.skipped += 1
        if len(self.out.problems) < 5:
            self.out.problems.append(f"{where}: {why}")


def _plain(data):
    """`task.data` as a plain namespace: OmegaConf look-ups cost microseconds, once per row adds up."""
    from types import SimpleNamespace

    from omegaconf import DictConfig, OmegaConf

    if isinstance(data, DictConfig):
        return SimpleNamespace(**OmegaConf.to_container(data, resolve=True))
    return data


def _column(data, name: str) -> str:
    return data.columns.get(name, name)


def _convert(row: dict, family: str, data, where: str, features: dict | None = None) -> dict:
    """One row (a dict of columns) → a canonical record; raises DataError naming `where`."""
    def get(name: str) -> Any:
        col = _column(data, name)
        if col not in row or row[col] is None:
            raise DataError(f"{where}: no column {col!r} (record field {name!r}; set task.data.columns.{name})")
        return row[col]

    def named(name: str, value: Any) -> str:
        """A label as its name: ClassLabel ints via the dataset features, then label_map."""
        feat = (features or {}).get(_column(data, name))
        if feat is not None and isinstance(value, int) and hasattr(feat, "int2str"):
            value = feat.int2str(value)
        value = str(value)
        if data.label_map:
            if value not in data.label_map:
                raise DataError(f"{where}: label {value!r} is not in task.data.label_map {dict(data.label_map)}")
            value = str(data.label_map[value])
        return value

    if family == "classification":
        text = get("text")
        if not isinstance(text, str) or not text.strip():
            raise DataError(f"{where}: empty text")
        return {"text": text, "label": named("label", get("label"))}
    if family == "tagging":
        tokens, tags = get("tokens"), get("tags")
        feat = (features or {}).get(_column(data, "tags"))
        inner = getattr(feat, "feature", None)
        if inner is not None and hasattr(inner, "int2str"):
            tags = [inner.int2str(t) if isinstance(t, int) else t for t in tags]
        tags = [data.label_map.get(str(t), str(t)) if data.label_map else str(t) for t in tags]
        if not isinstance(tokens, list) or len(tokens) != len(tags) or not tokens:
            raise DataError(f"{where}: needs equal-length non-empty token and tag lists")
        if data.scheme == "iob1":
            tags = iob1_to_iob2(tags)
        return {"tokens": [str(t) for t in tokens], "tags": tags}
    if family == "qa":
        answers = get("answers")
        if isinstance(answers, list):  # SQuAD's own [{"text", "answer_start"}]
            answers = {"text": [a["text"] for a in answers], "answer_start": [a["answer_start"] for a in answers]}
        rec = {"id": str(row.get(_column(data, "id"), where)), "context": get("context"),
               "question": get("question"),
               "answers": {"text": list(answers["text"]), "answer_start": [int(s) for s in answers["answer_start"]]}}
        _check_answers(rec, where)
        return rec
    src, tgt = FIELDS[family][0], FIELDS[family][1]
    if family == "translation" and _column(data, "translation") in row:  # wmt16-style {"de": .., "en": ..}
        pair = row[_column(data, "translation")]
        try:
            s, t = pair[data.source_lang], pair[data.target_lang]
        except KeyError as exc:
            raise DataError(f"{where}: translation has no language {exc} (has {sorted(pair)})") from None
    else:
        s, t = get(src), get(tgt)
    if not isinstance(s, str) or not isinstance(t, str) or not s.strip() or not t.strip():
        raise DataError(f"{where}: empty {src} or {tgt}")
    return {src: s, tgt: t}


def _check_answers(rec: dict, where: str) -> None:
    a = rec["answers"]
    if not a["text"] or len(a["text"]) != len(a["answer_start"]):
        raise DataError(f"{where}: answers need equal-length, non-empty text and answer_start")
    for t, s in zip(a["text"], a["answer_start"]):
        if rec["context"][s : s + len(t)] != t:
            raise DataError(f"{where}: answer {t!r} is not at character {s} of the context")


def _open(path: Path):
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    return open(path, encoding="utf-8", newline="")


def read_delimited(path: Path, family: str, data, delimiter: str) -> Split:
    r = _Reader(data.skip_malformed)
    with _open(path) as f:
        rows = csv.reader(f, delimiter=delimiter, quoting=csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL)
        header = None
        for row in rows:
            line = rows.line_num
            if header is None and data.header:
                header = row
                continue
            if not row or not any(c.strip() for c in row):
                continue
            names = header or [str(i) for i in range(len(row))]
            if len(row) != len(names):
                r.bad(f"{path}:{line}", f"{len(row)} columns, expected {len(names)}")
                continue
            try:
                r.out.records.append(_convert(dict(zip(names, row)), family, data, f"{path}:{line}"))
            except DataError as exc:
                r.bad(f"{path}:{line}", str(exc).split(": ", 1)[-1])
    return r.out


def read_jsonl(path: Path, family: str, data) -> Split:
    r = _Reader(data.skip_malformed)
    with _open(path) as f:
        for line, text in enumerate(f, 1):
            if not text.strip():
                continue
            try:
                row = json.loads(text)
            except json.JSONDecodeError as exc:
                r.bad(f"{path}:{line}", f"not valid JSON ({exc.msg})")
                continue
            if not isinstance(row, dict):
                r.bad(f"{path}:{line}", "not a JSON object")
                continue
            try:
                r.out.records.append(_convert(row, family, data, f"{path}:{line}"))
            except DataError as exc:
                r.bad(f"{path}:{line}", str(exc).split(": ", 1)[-1])
    return r.out


def read_conll(path: Path, data) -> Split:
    """CoNLL columns; a sentence with a malformed line is rejected (or skipped) as a whole."""
    r = _Reader(data.skip_malformed)
    tokens: list[str] = []
    tags: list[str] = []
    bad_line: int | None = None
    why = ""

    def flush() -> None:
        nonlocal tokens, tags, bad_line
        if bad_line is not None:
            r.bad(f"{path}:{bad_line}", why)
        elif tokens:
            r.out.records.append({"tokens": tokens, "tags": iob1_to_iob2(tags) if data.scheme == "iob1" else tags})
        tokens, tags, bad_line = [], [], None

    with _open(path) as f:
        for line, text in enumerate(f, 1):
            cols = text.split()
            if not cols:
                flush()
                continue
            if cols[0] == "-DOCSTART-":
                flush()
                continue
            if bad_line is not None:
                continue
            try:
                tag = cols[data.tag_column]
            except IndexError:
                tag = None
            if len(cols) < 2 or tag is None:
                bad_line, why = line, f"expected a token and a tag (column {data.tag_column}), got {text.strip()!r}"
            elif not _TAG.match(tag):
                bad_line, why = line, f"{tag!r} is not an IOB tag (O, B-X, I-X)"
            else:
                tokens.append(cols[0])
                tags.append(tag)
        flush()
    return r.out


def read_squad(path: Path, data) -> Split:
    r = _Reader(data.skip_malformed)
    with _open(path) as f:
        try:
            doc = json.load(f)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    articles = doc.get("data") if isinstance(doc, dict) else None
    if not isinstance(articles, list):
        raise DataError(f"{path}: not SQuAD v1.1 JSON (no top-level 'data' list)")
    for i, art in enumerate(articles):
        for j, para in enumerate(art.get("paragraphs", []) if isinstance(art, dict) else []):
            where_p = f"{path}: data[{i}].paragraphs[{j}]"
            if not isinstance(para, dict) or not isinstance(para.get("context"), str):
                r.bad(where_p, "no string 'context'")
                continue
            for k, qa in enumerate(para.get("qas", [])):
                where = f"{where_p}.qas[{k}]"
                try:
                    if not isinstance(qa, dict) or not isinstance(qa.get("question"), str):
                        raise DataError(f"{where}: no string 'question'")
                    answers = qa.get("answers")
                    if not isinstance(answers, list) or not answers or not all(
                            isinstance(a, dict) and isinstance(a.get("text"), str) and isinstance(a.get("answer_start"), int)
                            for a in answers):
                        raise DataError(f"{where}: 'answers' must be a non-empty list of {{text, answer_start}}")
                    rec = {"id": str(qa.get("id", where)), "context": para["context"], "question": qa["question"],
                           "answers": {"text": [a["text"] for a in answers],
                                       "answer_start": [a["answer_start"] for a in answers]}}
                    _check_answers(rec, where)
                    r.out.records.append(rec)
                except DataError as exc:
                    r.bad(where, str(exc).split(": ", 2)[-1])
    return r.out


def read_parallel(path: str, data) -> Split:
    """`<path>.<source_lang>` and `<path>.<target_lang>`, one sentence per line, aligned."""
    r = _Reader(data.skip_malformed)
    src_path, tgt_path = Path(f"{path}.{data.source_lang}"), Path(f"{path}.{data.target_lang}")
    with _open(src_path) as fs, _open(tgt_path) as ft:
        src, tgt = fs.read().splitlines(), ft.read().splitlines()
    while src and tgt and not src[-1].strip() and not tgt[-1].strip():
        src.pop()
        tgt.pop()
    if len(src) != len(tgt):
        raise DataError(f"{src_path} has {len(src)} lines but {tgt_path} has {len(tgt)}: not aligned")
    for line, (s, t) in enumerate(zip(src, tgt), 1):
        if not s.strip() or not t.strip():
            r.bad(f"{src_path if not s.strip() else tgt_path}:{line}", "empty line (its pair is not empty)")
            continue
        r.out.records.append({"source": s.strip(), "target": t.strip()})
    return r.out


def read_file(fmt: str, path: str, family: str, data) -> Split:
    """Read one split file of `fmt` into canonical records of `family`."""
    data = _plain(data)
    if fmt not in FORMATS:
        raise ConfigError(f"task.data.format={fmt!r} is not one of {list(FORMATS)}")
    need = {"conll": "tagging", "squad": "qa", "parallel": "translation"}.get(fmt)
    if need and family != need:
        raise ConfigError(f"task.data.format={fmt!r} holds {need} data, but task.family={family!r}")
    if fmt == "parallel":
        return read_parallel(path, data)
    p = Path(path)
    if fmt in ("glue_tsv", "csv"):
        return read_delimited(p, family, data, "\t" if fmt == "glue_tsv" else ",")
    if fmt == "jsonl":
        return read_jsonl(p, family, data)
    if fmt == "conll":
        return read_conll(p, data)
    return read_squad(p, data)


def from_rows(rows: Iterator[dict], family: str, data, where: str, features: dict | None = None) -> Split:
    """Rows of a `datasets.Dataset` (or any dicts) → canonical records, through `columns`."""
    data = _plain(data)
    r = _Reader(data.skip_malformed)
    for i, row in enumerate(rows):
        try:
            r.out.records.append(_convert(row, family, data, f"{where}[{i}]", features))
        except DataError as exc:
            r.bad(f"{where}[{i}]", str(exc).split(": ", 1)[-1])
    return r.out


def load_hub(family: str, data, split_names: dict[str, str]) -> dict[str, Split]:
    """`datasets.load_dataset(hub_name, hub_config)` splits → canonical records. For the builders
    json/csv/parquet, task.data.train/validation/test are the local files."""
    from datasets import load_dataset

    if not data.hub_name:
        raise ConfigError("task.source=hub needs task.data.hub_name (e.g. glue, conll2003, squad)")
    kwargs: dict[str, Any] = {}
    if data.hub_name in ("json", "csv", "parquet"):
        kwargs["data_files"] = {s: getattr(data, s) for s in ("train", "validation", "test") if getattr(data, s)}
    out = {}
    for split, hub_split in split_names.items():
        try:
            ds = load_dataset(data.hub_name, data.hub_config, split=hub_split, **kwargs)
        except Exception as exc:  # offline, unknown name or split: say which
            raise DataError(f"task.data.hub_name={data.hub_name!r} (config {data.hub_config!r}, split "
                            f"{hub_split!r}) could not be loaded: {exc}") from exc
        out[split] = from_rows(iter(ds), family, data, f"{data.hub_name}:{hub_split}", dict(ds.features))
    return out
