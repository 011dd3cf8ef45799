import json
from pathlib import Path

import pytest

from lmforge.data.sources import load_corpus, train_val_split
from lmforge.errors import ConfigError, DataError


@pytest.fixture
def cache(tmp_path):
    return str(tmp_path / "hf_cache")


def write(path: Path, text: str) -> str:
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_text_file_is_split_by_paragraph(tmp_path, cache):
    path = write(
        tmp_path / "a.txt",
        "First paragraph,\nline two.\n\nSecond.\n\n\n\nThird after extra blank lines.\r\n\r\nFourth",
    )
    train, val = load_corpus("text_files", paths=[path], val_fraction=0.0, cache_dir=cache)
    assert train == [
        "First paragraph,\nline two.",
        "Second.",
        "Third after extra blank lines.",
        "Fourth",
    ]
    assert val == []


def test_single_paragraph_file_is_split_by_lines(tmp_path, cache):
    lines = [f"Line {i} of one long speech." for i in range(20)]
    path = write(tmp_path / "one.txt", "\n".join(lines) + "\n")
    train, val = load_corpus("text_files", paths=[path], val_fraction=0.1, cache_dir=cache)
    # 90% of the 550 characters ends inside line 18: the cut moves to the end of that line
    assert train == ["\n".join(lines[:19])]
    assert val == [lines[19]]


def test_seeded_validation_split(tmp_path, cache):
    docs = [f"Paragraph number {i}." for i in range(40)]
    path = write(tmp_path / "a.txt", "\n\n".join(docs) + "\n")
    train, val = load_corpus("text_files", paths=[path], val_fraction=0.1, seed=3, cache_dir=cache)
    assert len(val) == 4 and len(train) == 36
    assert sorted(train + val) == sorted(docs)
    # both splits keep the corpus order
    assert train == [d for d in docs if d in train] and val == [d for d in docs if d in val]
    again = load_corpus("text_files", paths=[path], val_fraction=0.1, seed=3, cache_dir=cache)
    assert again == (train, val)
    other = load_corpus("text_files", paths=[path], val_fraction=0.1, seed=4, cache_dir=cache)
    assert other[1] != val


def test_train_val_split_edge_cases():
    assert train_val_split(["a", "b", "c"], 0.01, 0)[1] != []  # at least one val doc
    assert len(train_val_split(["a", "b"], 0.9, 0)[0]) == 1  # at least one train doc
    text = "\n".join(f"line {i}" for i in range(10))
    train, val = train_val_split([text], 0.2, 0)  # one document: split by characters
    assert train == ["\n".join(f"line {i}" for i in range(8))]
    assert val == ["line 8\nline 9"]
    with pytest.raises(DataError, match="too short"):
        train_val_split(["x"], 0.1, 0)
    with pytest.raises(ConfigError, match="data.val_fraction"):
        train_val_split(["a", "b"], 1.0, 0)


def test_structured_files_and_min_chars(tmp_path, cache):
    import pyarrow as pa
    import pyarrow.parquet as pq

    jsonl = write(tmp_path / "a.jsonl", "\n".join(json.dumps(r) for r in [
        {"text": "from jsonl one", "id": 1},
        {"text": "  ", "id": 2},
        {"text": None, "id": 3},
        {"text": "from jsonl two", "id": 4},
    ]) + "\n")
    js = write(tmp_path / "b.json", json.dumps([{"text": "from a json array"}]))
    csv = write(tmp_path / "c.csv", 'text,label\n"from csv, quoted",1\nok,0\n')
    tsv = write(tmp_path / "d.tsv", "label\ttext\n1\tfrom tsv\n")
    parquet = str(tmp_path / "e.parquet")
    pq.write_table(pa.table({"text": ["from parquet"], "n": [1]}), parquet)
    txt = write(tmp_path / "f.txt", "from text\n")

    train, val = load_corpus(
        "text_files", paths=[jsonl, js, csv, tsv, parquet, txt], val_fraction=0.0,
        min_chars=3, cache_dir=cache,
    )
    assert train == ["from jsonl one", "from jsonl two", "from a json array", "from csv, quoted",
                     "from tsv", "from parquet", "from text"]  # "ok" is under min_chars


def test_missing_column_names_column_and_file(tmp_path, cache):
    path = write(tmp_path / "rows.jsonl", '{"body": "x"}\n')
    with pytest.raises(DataError, match=r"rows\.jsonl has no column 'text'.*\['body'\]"):
        load_corpus("text_files", paths=[path], cache_dir=cache)
    train, _ = load_corpus("text_files", paths=[path], text_column="body", val_fraction=0, cache_dir=cache)
    assert train == ["x"]


def test_non_text_column_is_a_data_error(tmp_path, cache):
    path = write(tmp_path / "n.csv", "text\n1\n2\n")
    with pytest.raises(DataError, match=r"n\.csv, row 0: column 'text' holds int"):
        load_corpus("text_files", paths=[path], cache_dir=cache)


def test_missing_and_empty_files(tmp_path, cache):
    missing = tmp_path / "nope.txt"
    with pytest.raises(DataError, match=f"not found: {missing}"):
        load_corpus("text_files", paths=[str(missing)], cache_dir=cache)
    empty = write(tmp_path / "empty.txt", "")
    with pytest.raises(DataError, match=f"empty: {empty}"):
        load_corpus("text_files", paths=[empty], cache_dir=cache)
    blank = write(tmp_path / "blank.txt", "\n\n   \n\n")
    with pytest.raises(DataError, match="no documents"):
        load_corpus("text_files", paths=[blank], cache_dir=cache)


def test_edited_file_is_reread_even_with_same_mtime(tmp_path, cache):
    import os

    path = write(tmp_path / "a.txt", "alpha\n\nbeta\n")
    assert load_corpus("text_files", paths=[path], val_fraction=0, cache_dir=cache)[0] == ["alpha", "beta"]
    stat = os.stat(path)
    write(tmp_path / "a.txt", "gamma\n\ndelta\n")
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert load_corpus("text_files", paths=[path], val_fraction=0, cache_dir=cache)[0] == ["gamma", "delta"]


def test_config_errors():
    with pytest.raises(ConfigError, match="data.source"):
        load_corpus("ftp")
    with pytest.raises(ConfigError, match="data.text_files.paths"):
        load_corpus("text_files", paths=[])
    with pytest.raises(ConfigError, match="data.hub.name"):
        load_corpus("hub")
    with pytest.raises(ConfigError, match="data.val_fraction"):
        load_corpus("text_files", paths=["x"], val_fraction=-0.1)


def test_hub_error_names_the_dataset(tmp_path, monkeypatch):
    import datasets
    import huggingface_hub

    # make sure no network is attempted, whatever the environment says
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    with pytest.raises(DataError, match="lmforge-tests/no-such-dataset"):
        load_corpus("hub", name="lmforge-tests/no-such-dataset", config="raw", cache_dir=str(tmp_path))


@pytest.mark.shared_data
def test_tinyshakespeare(tmp_path, shared_data):
    # shared_data (conftest): ../shared/data next to the repo; skips when absent
    shakespeare = shared_data / "tinyshakespeare" / "input.txt"
    if not shakespeare.is_file():
        pytest.skip(f"{shakespeare} not present")
    train, val = load_corpus("text_files", paths=[str(shakespeare)], val_fraction=0.05, seed=0,
                             cache_dir=str(tmp_path))
    assert len(train) + len(val) == 7222  # speeches separated by blank lines
    assert len(val) == round(0.05 * 7222)
    assert train[0] == "First Citizen:\nBefore we proceed any further, hear me speak."
    n_chars = sum(map(len, train + val))
    assert 0.98 * shakespeare.stat().st_size < n_chars + 2 * 7222 <= shakespeare.stat().st_size


def test_hub_source_uses_the_validation_split(tmp_path):
    # load_dataset(name) also takes a local dataset folder: the Hub code path, offline
    repo = tmp_path / "my_dataset"
    repo.mkdir()
    write(repo / "train.jsonl", "".join(json.dumps({"text": f"train doc {i}"}) + "\n" for i in range(10)))
    write(repo / "validation.jsonl", json.dumps({"text": "held-out doc"}) + "\n")
    train, val = load_corpus("hub", name=str(repo), val_fraction=0.3, cache_dir=str(tmp_path / "c"))
    assert train == [f"train doc {i}" for i in range(10)]
    assert val == ["held-out doc"]
    # a sliced split is loaded on its own; the validation split still comes from the dataset
    train, val = load_corpus("hub", name=str(repo), split="train[:3]", cache_dir=str(tmp_path / "c"))
    assert train == ["train doc 0", "train doc 1", "train doc 2"] and val == ["held-out doc"]
    # no validation split: a seeded fraction of train
    (repo / "validation.jsonl").unlink()
    train, val = load_corpus("hub", name=str(repo), val_fraction=0.3, cache_dir=str(tmp_path / "c2"))
    assert len(train) == 7 and len(val) == 3
    with pytest.raises(DataError, match=r"no column 'body' \(data.hub.text_column\)"):
        load_corpus("hub", name=str(repo), text_column="body", cache_dir=str(tmp_path / "c2"))
