import json
import os
from pathlib import Path

import pytest

from lmforge.data.sources import Corpus, is_validation, load_corpus, train_val_split
from lmforge.errors import ConfigError, DataError


@pytest.fixture
def cache(tmp_path):
    return str(tmp_path / "hf_cache")


def write(path: Path, text: str) -> str:
    path.write_text(text, encoding="utf-8", newline="")
    return str(path)


def docs(corpus: Corpus) -> tuple[list[str], list[str]]:
    return list(corpus.train()), list(corpus.validation())


def test_text_file_is_split_by_paragraph(tmp_path, cache):
    path = write(
        tmp_path / "a.txt",
        "First paragraph,\nline two.\n\nSecond.\n\n\n\nThird after extra blank lines.\r\n\r\nFourth",
    )
    train, val = docs(load_corpus("text_files", paths=[path], val_fraction=0.0, cache_dir=cache))
    assert train == [
        "First paragraph,\nline two.",
        "Second.",
        "Third after extra blank lines.",
        "Fourth",
    ]
    assert val == []


def test_lines_end_at_newline_only(tmp_path):
    # "\r\n" ends a line (the "\r" is dropped); U+2028, U+2029, U+0085, \f, \v, \x1c and a lone
    # "\r" stay inside their line (str.splitlines would break at each); a whitespace-only line
    # separates paragraphs
    text = "one\u2028two\u2029three\r\nfour\ffive\vsix\x1cseven\rend\r\n   \t \r\nnext\u0085doc\n"
    path = write(tmp_path / "u.txt", text)
    train, _ = docs(load_corpus("text_files", paths=[path], val_fraction=0.0))
    assert train == ["one\u2028two\u2029three\nfour\ffive\vsix\x1cseven\rend", "next\u0085doc"]


def test_long_paragraph_is_cut_at_line_boundaries(tmp_path):
    lines = [f"line {i:03d} " + "x" * (1 + i % 7) for i in range(300)]
    path = write(tmp_path / "long.txt", "\n".join(lines) + "\n\nshort one\n")
    train, _ = docs(load_corpus("text_files", paths=[path], val_fraction=0.0, max_doc_chars=100))
    assert train[-1] == "short one"
    pieces = train[:-1]
    assert len(pieces) > 1 and all(len(p) <= 100 for p in pieces)
    # cut between lines only: every piece is whole lines, and together they are the paragraph
    assert [line for p in pieces for line in p.split("\n")] == lines


def test_a_line_longer_than_the_bound_is_cut_by_characters(tmp_path):
    path = write(tmp_path / "oneline.txt", "a" * 250 + "\nb\n")  # no blank line anywhere
    train, _ = docs(load_corpus("text_files", paths=[path], val_fraction=0.0, max_doc_chars=100))
    assert train == ["a" * 100, "a" * 100, "a" * 50 + "\nb"]


def test_single_paragraph_file_is_split_by_lines(tmp_path, cache):
    lines = [f"Line {i} of one long speech." for i in range(20)]
    path = write(tmp_path / "one.txt", "\n".join(lines) + "\n")
    train, val = docs(load_corpus("text_files", paths=[path], val_fraction=0.1, cache_dir=cache))
    # 90% of the 550 characters ends inside line 18: the cut moves to the end of that line
    assert train == ["\n".join(lines[:19])]
    assert val == [lines[19]]


def test_a_huge_single_paragraph_still_gets_a_validation_part(tmp_path):
    lines = [f"Line {i} of one endless speech." for i in range(200)]
    path = write(tmp_path / "one.txt", "\n".join(lines) + "\n")
    train, val = docs(load_corpus("text_files", paths=[path], val_fraction=0.01, max_doc_chars=500))
    assert train and val
    assert sorted("\n".join(train + val).split("\n")) == sorted(lines)


def test_seeded_hash_split_is_deterministic_and_streaming(tmp_path, cache):
    paragraphs = [f"Paragraph number {i}." for i in range(400)]
    path = write(tmp_path / "a.txt", "\n\n".join(paragraphs) + "\n")
    corpus = load_corpus("text_files", paths=[path], val_fraction=0.1, seed=3, cache_dir=cache)
    train, val = docs(corpus)
    assert docs(corpus) == (train, val)  # a second pass gives the same streams
    assert sorted(train + val) == sorted(paragraphs)
    assert 20 <= len(val) <= 60  # binomial(400, 0.1): mean 40
    # both splits keep the corpus order, and the rule is the documented hash of the text
    assert train == [d for d in paragraphs if d in train] and val == [d for d in paragraphs if d in val]
    assert val == [d for d in paragraphs[:-1] if is_validation(d, 0.1, 3)] + (
        [paragraphs[-1]] if is_validation(paragraphs[-1], 0.1, 3) else []
    )
    again = load_corpus("text_files", paths=[path], val_fraction=0.1, seed=3, cache_dir=cache)
    assert docs(again) == (train, val)
    other = load_corpus("text_files", paths=[path], val_fraction=0.1, seed=4, cache_dir=cache)
    assert docs(other)[1] != val


def test_duplicates_land_in_the_same_split(tmp_path):
    paragraphs = [f"Doc {i % 50}." for i in range(500)]
    path = write(tmp_path / "dup.txt", "\n\n".join(paragraphs) + "\n")
    train, val = docs(load_corpus("text_files", paths=[path], val_fraction=0.2, seed=0))
    assert val and not set(train) & set(val)


def test_at_least_one_validation_and_one_train_document(tmp_path):
    paragraphs = [f"p{i}" for i in range(5)]
    path = write(tmp_path / "few.txt", "\n\n".join(paragraphs) + "\n")
    for seed in range(20):
        train, val = docs(load_corpus("text_files", paths=[path], val_fraction=1e-9, seed=seed))
        assert val == ["p4"] and train == paragraphs[:4]  # the hash sends none: the last one goes
        train, val = docs(load_corpus("text_files", paths=[path], val_fraction=1 - 1e-12, seed=seed))
        assert train == ["p4"] and val == paragraphs[:4]  # the hash sends all: the last one stays
    two = write(tmp_path / "two.txt", "a\n\nb\n")
    train, val = docs(load_corpus("text_files", paths=[two], val_fraction=0.01))
    assert (train, val) == (["a"], ["b"])


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


def test_documents_in_memory_keep_the_exact_seeded_split():
    paragraphs = [f"doc {i}" for i in range(40)]
    corpus = Corpus.from_documents(paragraphs, 0.1, seed=3)
    assert docs(corpus) == train_val_split(paragraphs, 0.1, 3)
    assert len(docs(corpus)[1]) == 4 and docs(corpus) == docs(corpus)


def test_structured_files_and_min_chars(tmp_path, cache):
    import pyarrow as pa
    import pyarrow.parquet as pq

    jsonl = write(
        tmp_path / "a.jsonl",
        "\n".join(
            json.dumps(r)
            for r in [
                {"text": "from jsonl one", "id": 1},
                {"text": "  ", "id": 2},
                {"text": None, "id": 3},
                {"text": "from jsonl two", "id": 4},
            ]
        )
        + "\n",
    )
    js = write(tmp_path / "b.json", json.dumps([{"text": "from a json array"}]))
    csv = write(tmp_path / "c.csv", 'text,label\n"from csv, quoted",1\nok,0\n')
    tsv = write(tmp_path / "d.tsv", "label\ttext\n1\tfrom tsv\n")
    parquet = str(tmp_path / "e.parquet")
    pq.write_table(pa.table({"text": ["from parquet"], "n": [1]}), parquet)
    txt = write(tmp_path / "f.txt", "from text\n")

    corpus = load_corpus(
        "text_files", paths=[jsonl, js, csv, tsv, parquet, txt], val_fraction=0.0, min_chars=3, cache_dir=cache
    )
    expected = [
        "from jsonl one",
        "from jsonl two",
        "from a json array",
        "from csv, quoted",
        "from tsv",
        "from parquet",
        "from text",
    ]  # "ok" is under min_chars
    assert docs(corpus) == (expected, [])
    assert docs(corpus) == (expected, [])  # streamed datasets are read again by each pass


def test_missing_column_names_column_and_file(tmp_path, cache):
    path = write(tmp_path / "rows.jsonl", '{"body": "x"}\n')
    with pytest.raises(DataError, match=r"rows\.jsonl has no column 'text'.*\['body'\]"):
        docs(load_corpus("text_files", paths=[path], cache_dir=cache))
    train, _ = docs(load_corpus("text_files", paths=[path], text_column="body", val_fraction=0, cache_dir=cache))
    assert train == ["x"]


def test_non_text_column_is_a_data_error(tmp_path, cache):
    path = write(tmp_path / "n.csv", "text\n1\n2\n")
    with pytest.raises(DataError, match=r"n\.csv, row 0: column 'text' holds int"):
        docs(load_corpus("text_files", paths=[path], cache_dir=cache))
    bad = write(tmp_path / "bad.jsonl", '{"text": "fine"}\n{"text": oops}\n')
    with pytest.raises(DataError, match=r"cannot read .*bad\.jsonl as json"):
        docs(load_corpus("text_files", paths=[bad], cache_dir=cache))


def test_missing_empty_and_directory_paths(tmp_path, cache):
    missing = tmp_path / "nope.txt"
    with pytest.raises(DataError, match=f"{missing}: not found; data.text_files.paths must list existing data files"):
        load_corpus("text_files", paths=[str(missing)], cache_dir=cache)  # before any pass
    empty = write(tmp_path / "empty.txt", "")
    with pytest.raises(DataError, match=f"{empty}: an empty data file"):
        load_corpus("text_files", paths=[empty], cache_dir=cache)
    with pytest.raises(DataError, match=f"{tmp_path}: a directory, not a data file"):
        load_corpus("text_files", paths=[str(tmp_path)], cache_dir=cache)
    blank = write(tmp_path / "blank.txt", "\n\n   \n\n")
    corpus = load_corpus("text_files", paths=[blank], cache_dir=cache)
    with pytest.raises(DataError, match=r"no documents with at least 1 characters in .*blank\.txt"):
        list(corpus.train())


def test_undecodable_and_binary_files_name_file_line_and_byte(tmp_path):
    latin = tmp_path / "latin.txt"
    latin.write_bytes("first line\n\nsecond caf\u00e9 line\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"latin\.txt, line 3 \(byte 22\): not valid utf-8 text"):
        docs(load_corpus("text_files", paths=[str(latin)]))
    train, _ = docs(load_corpus("text_files", paths=[str(latin)], encoding="latin-1", val_fraction=0))
    assert train == ["first line", "second caf\u00e9 line"]

    late = tmp_path / "late.txt"  # the bad byte far into the file, past the reader's buffers
    late.write_bytes(b"ok line\n" * 20000 + b"\xff\n")
    with pytest.raises(DataError, match=r"line 20001 \(byte 160000\)"):
        docs(load_corpus("text_files", paths=[str(late)]))

    binary = tmp_path / "model.bin"
    binary.write_bytes(b"\x00\x01\x02" * 100)
    with pytest.raises(DataError, match=r"model\.bin, line 1: NUL character: a binary file"):
        docs(load_corpus("text_files", paths=[str(binary)]))
    utf16 = tmp_path / "utf16.txt"
    utf16.write_bytes("hello\n\nworld\n".encode("utf-16"))
    with pytest.raises(DataError, match="utf16.txt"):
        docs(load_corpus("text_files", paths=[str(utf16)]))
    assert docs(load_corpus("text_files", paths=[str(utf16)], encoding="utf-16", val_fraction=0))[0] == [
        "hello",
        "world",
    ]


def test_byte_order_mark_is_dropped(tmp_path):
    path = tmp_path / "bom.txt"
    path.write_bytes("\ufeffhello\n\nworld\n".encode("utf-8"))
    assert docs(load_corpus("text_files", paths=[str(path)], val_fraction=0))[0] == ["hello", "world"]


def test_edited_file_is_reread_even_with_same_mtime(tmp_path, cache):
    path = write(tmp_path / "a.txt", "alpha\n\nbeta\n")
    assert docs(load_corpus("text_files", paths=[path], val_fraction=0, cache_dir=cache))[0] == ["alpha", "beta"]
    stat = os.stat(path)
    write(tmp_path / "a.txt", "gamma\n\ndelta\n")
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert docs(load_corpus("text_files", paths=[path], val_fraction=0, cache_dir=cache))[0] == ["gamma", "delta"]


def test_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="data.source"):
        load_corpus("ftp")
    with pytest.raises(ConfigError, match="data.text_files.paths"):
        load_corpus("text_files", paths=[])
    with pytest.raises(ConfigError, match="data.hub.name"):
        load_corpus("hub")
    with pytest.raises(ConfigError, match="data.val_fraction"):
        load_corpus("text_files", paths=["x"], val_fraction=-0.1)
    with pytest.raises(ConfigError, match="data.text_files.encoding='klingon'"):
        load_corpus("text_files", paths=[write(tmp_path / "a.txt", "a\n")], encoding="klingon")
    with pytest.raises(ConfigError, match="data.hub.num_proc"):
        load_corpus("hub", name="x", streaming=True, num_proc=2)
    with pytest.raises(ConfigError, match="data.hub.num_proc"):
        load_corpus("hub", name="x", num_proc=0)
    with pytest.raises(ConfigError, match="sliced split cannot be streamed"):
        load_corpus("hub", name="x", split="train[:10]", streaming=True)


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
    train, val = docs(load_corpus("text_files", paths=[str(shakespeare)], val_fraction=0.05, seed=0))
    assert len(train) + len(val) == 7222  # speeches separated by blank lines
    assert abs(len(val) - 0.05 * 7222) < 4 * (7222 * 0.05 * 0.95) ** 0.5  # within 4 sigma
    assert "First Citizen:\nBefore we proceed any further, hear me speak." in train[:2] + val[:2]
    n_chars = sum(map(len, train + val))
    assert 0.98 * shakespeare.stat().st_size < n_chars + 2 * 7222 <= shakespeare.stat().st_size


@pytest.mark.parametrize("streaming", [False, True])
def test_hub_source_uses_the_validation_split(tmp_path, streaming):
    # load_dataset(name) also takes a local dataset folder: the Hub code path, offline
    repo = tmp_path / "my_dataset"
    repo.mkdir()
    write(repo / "train.jsonl", "".join(json.dumps({"text": f"train doc {i}"}) + "\n" for i in range(10)))
    write(repo / "validation.jsonl", json.dumps({"text": "held-out doc"}) + "\n")
    opts = {"streaming": streaming, "cache_dir": str(tmp_path / "c")}
    corpus = load_corpus("hub", name=str(repo), val_fraction=0.3, **opts)
    assert docs(corpus) == ([f"train doc {i}" for i in range(10)], ["held-out doc"])
    assert docs(corpus) == ([f"train doc {i}" for i in range(10)], ["held-out doc"])  # a second pass
    if not streaming:
        # a sliced split is loaded on its own; the validation split still comes from the dataset
        corpus = load_corpus("hub", name=str(repo), split="train[:3]", num_proc=1, **opts)
        assert docs(corpus) == (["train doc 0", "train doc 1", "train doc 2"], ["held-out doc"])
    # no validation split: a seeded fraction of train
    (repo / "validation.jsonl").unlink()
    opts["cache_dir"] = str(tmp_path / "c2")
    train, val = docs(load_corpus("hub", name=str(repo), val_fraction=0.3, **opts))
    assert sorted(train + val) == sorted(f"train doc {i}" for i in range(10)) and train and val
    with pytest.raises(DataError, match=r"no column 'body'; set data\.hub\.text_column"):
        docs(load_corpus("hub", name=str(repo), text_column="body", **opts))
