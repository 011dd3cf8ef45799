import json
import pickle
import tracemalloc

import numpy as np
import pytest

from lmforge.data.packing import (
    TokenFile,
    pack_texts,
    read_meta,
    token_dtype,
    write_meta,
)
from lmforge.data.tokenizer import special_ids, train_tokenizer
from lmforge.errors import DataError

DOCS = [
    f"Document {i}: the {w} walks to market {i % 7} times."
    for i, w in enumerate(["cat", "dog", "heron", "otter", "fox"] * 8)
]


@pytest.fixture(scope="module")
def tok():
    return train_tokenizer(DOCS, kind="bpe", vocab_size=300, progress=False)


def test_pack_round_trip(tmp_path, tok):
    eos = special_ids(tok)["eos"]
    out = tmp_path / "shards" / "train.bin"
    n = pack_texts(iter(DOCS), tok, out, eos_id=eos, batch_size=7, progress=False)

    expected = []
    for doc in DOCS:
        expected += tok.encode(doc).ids + [eos]
    assert n == len(expected) == out.stat().st_size // 2
    assert not [p for p in out.parent.iterdir() if p.name != "train.bin"]  # no temp files left

    tf = TokenFile(out, "uint16")
    assert len(tf) == n
    assert tf[:].tolist() == expected
    assert tf[5] == expected[5]
    text = tok.decode(tf[:].tolist(), skip_special_tokens=False)
    assert text == "<eos>".join(DOCS) + "<eos>"


def test_pack_is_deterministic_and_progress_runs(tmp_path, tok):
    a = pack_texts(DOCS, tok, tmp_path / "a.bin", eos_id=1, batch_size=1000, progress=True)
    b = pack_texts(DOCS, tok, tmp_path / "b.bin", eos_id=1, batch_size=3, progress=False)
    assert a == b
    assert (tmp_path / "a.bin").read_bytes() == (tmp_path / "b.bin").read_bytes()


def test_pack_overwrites_atomically_and_cleans_up_on_failure(tmp_path, tok):
    out = tmp_path / "val.bin"
    pack_texts(DOCS[:3], tok, out, eos_id=1, progress=False)
    before = out.read_bytes()

    def broken():
        yield DOCS[0]
        raise RuntimeError("source died")

    with pytest.raises(RuntimeError, match="source died"):
        pack_texts(broken(), tok, out, eos_id=1, batch_size=1, progress=False)
    assert out.read_bytes() == before  # old complete file untouched
    assert [p.name for p in tmp_path.iterdir()] == ["val.bin"]


def test_dtype_by_vocab_size():
    assert token_dtype(300) == np.uint16
    assert token_dtype(65535) == np.uint16
    assert token_dtype(65536) == np.uint32


def test_pack_memory_stays_flat(tmp_path, tok):
    def peak_for(n_docs):
        docs = (DOCS[i % len(DOCS)] for i in range(n_docs))
        tracemalloc.start()
        n = pack_texts(docs, tok, tmp_path / "big.bin", eos_id=1, batch_size=200, progress=False)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return n, peak

    n_small, peak_small = peak_for(2_000)
    n, peak = peak_for(16_000)
    assert n == 8 * n_small > 200_000
    # 8x the corpus, same peak (one batch in flight), far below a list of all ids (8 B/token)
    assert peak < 1.5 * peak_small, (peak, peak_small)
    assert peak < n * 8 / 10, (peak, n)

    tf = TokenFile(tmp_path / "big.bin", "uint16")
    rng = np.random.default_rng(0)
    tf.sample_blocks(8, 64, rng)  # warm-up: first-call allocations inside numpy
    tracemalloc.start()
    blocks = tf.sample_blocks(8, 64, rng)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert blocks.shape == (8, 65)
    assert peak < n * 2 / 10, (peak, n)  # far less than the file
    assert isinstance(tf._data, np.memmap)


def test_meta_round_trip(tmp_path):
    write_meta(
        tmp_path,
        vocab_size=300,
        dtype=np.dtype("uint16"),
        n_tokens={"train": 10, "val": np.int64(3)},
        eos_id=1,
        pad_id=0,
        tokenizer="bpe",
    )
    meta = read_meta(tmp_path)
    assert meta == {
        "vocab_size": 300,
        "dtype": "uint16",
        "n_tokens": {"train": 10, "val": 3},
        "eos_id": 1,
        "pad_id": 0,
        "tokenizer": "bpe",
    }
    assert json.loads((tmp_path / "meta.json").read_text()) == meta


def test_meta_errors(tmp_path):
    with pytest.raises(DataError, match=str(tmp_path / "meta.json")):
        read_meta(tmp_path)
    (tmp_path / "meta.json").write_text('{"vocab_size": 3}')
    with pytest.raises(DataError, match="missing keys \\['dtype'\\]"):
        read_meta(tmp_path)
    (tmp_path / "meta.json").write_text('{\n"vocab_size": 3,\n oops}')
    with pytest.raises(DataError, match="line 3"):
        read_meta(tmp_path)


@pytest.fixture
def numbered(tmp_path):
    path = tmp_path / "n.bin"
    np.arange(100, dtype=np.uint32).tofile(path)
    return TokenFile(path, np.uint32)


def test_blocks_and_samples(numbered):
    assert len(numbered) == 100
    assert numbered.num_blocks(10) == 9
    assert numbered.block(0, 10).tolist() == list(range(11))
    assert numbered.block(8, 10).tolist() == list(range(80, 91))
    assert numbered.block(-1, 10).tolist() == list(range(80, 91))
    assert numbered.block(0, 10).dtype == np.int64
    with pytest.raises(IndexError):
        numbered.block(9, 10)

    x = numbered.sample_blocks(50, 10, np.random.default_rng(1))
    assert x.shape == (50, 11) and x.dtype == np.int64
    assert (np.diff(x, axis=1) == 1).all()  # contiguous windows
    assert x.min() >= 0 and x.max() <= 99
    y = numbered.sample_blocks(50, 10, np.random.default_rng(1))
    assert (x == y).all()
    # the largest block still fits: every window is the whole file
    assert numbered.sample_blocks(3, 99, np.random.default_rng(0)).tolist() == [list(range(100))] * 3


def test_token_file_pickles_by_path(numbered):
    clone = pickle.loads(pickle.dumps(numbered))
    assert len(pickle.dumps(numbered)) < 1000
    assert clone[:].tolist() == list(range(100))


def test_token_file_errors(tmp_path, numbered):
    with pytest.raises(DataError, match=str(tmp_path / "missing.bin")):
        TokenFile(tmp_path / "missing.bin", "uint16")
    with pytest.raises(DataError, match="100 tokens, fewer than block_size \\+ 1 = 101"):
        numbered.sample_blocks(1, 100, np.random.default_rng(0))
    with pytest.raises(DataError, match="fewer than block_size"):
        TokenFile(numbered.path, "uint32", block_size=128)
    odd = tmp_path / "odd.bin"
    odd.write_bytes(b"\x00" * 7)
    with pytest.raises(DataError, match="not a multiple"):
        TokenFile(odd, "uint16")
    empty = tmp_path / "empty.bin"
    empty.write_bytes(b"")
    tf = TokenFile(empty, "uint16")
    assert len(tf) == 0
    with pytest.raises(DataError, match="has 0 tokens"):
        tf.block(0, 4)


def test_batches_end_at_a_character_budget():
    from lmforge.data.packing import _batches

    texts = ["a" * 10, "b" * 10, "c" * 30, "d", "e", "f"]
    assert [len(b) for b in _batches(iter(texts), 1000, max_chars=25)] == [3, 3]
    assert [len(b) for b in _batches(iter(texts), 2, max_chars=1000)] == [2, 2, 2]
    assert list(_batches(iter([]), 2)) == []
