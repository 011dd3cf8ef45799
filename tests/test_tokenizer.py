import json

import pytest

from lmforge.data.tokenizer import (
    SPECIAL_TOKENS,
    load_tokenizer,
    save_tokenizer,
    special_ids,
    train_tokenizer,
)
from lmforge.errors import ConfigError, DataError

CORPUS = [
    f"The {adj} {animal} jumps over the {adj2} fence number {i}.\nIt lands softly."
    for i, (adj, animal, adj2) in enumerate(
        (a, b, c)
        for a in ("quick", "lazy", "brown", "sleepy")
        for b in ("fox", "dog", "cat", "heron", "otter")
        for c in ("tall", "short", "wooden")
    )
]
ODD_TEXT = "  Zebra 🦓 naïve café\ttabs\r\n\nand   spaces; «quotes» 日本語 end "


@pytest.fixture(scope="module")
def tokenizers_by_kind():
    return {
        "bpe": train_tokenizer(CORPUS, kind="bpe", vocab_size=320, progress=False),
        "wordpiece": train_tokenizer(CORPUS, kind="wordpiece", vocab_size=120, progress=False),
        "char": train_tokenizer(CORPUS, kind="char", vocab_size=200, progress=False),
    }


@pytest.mark.parametrize("kind", ["bpe", "wordpiece", "char"])
def test_special_tokens_have_fixed_ids(tokenizers_by_kind, kind):
    tok = tokenizers_by_kind[kind]
    assert [tok.token_to_id(t) for t in SPECIAL_TOKENS] == [0, 1, 2, 3, 4, 5]
    assert special_ids(tok) == {"pad": 0, "eos": 1, "unk": 2, "mask": 3, "sep": 4, "cls": 5}
    # encoding adds no special tokens
    assert 1 not in tok.encode("The quick fox").ids


def test_bpe_round_trips_any_text_without_unk(tokenizers_by_kind):
    tok = tokenizers_by_kind["bpe"]
    assert tok.get_vocab_size() == 320
    for text in [ODD_TEXT, CORPUS[7], "", "\n\n", "x"]:
        ids = tok.encode(text).ids
        assert 2 not in ids  # no <unk>
        assert tok.decode(ids) == text
    # merges were learned: a frequent word is one token
    assert len(tok.encode(" jumps").ids) == 1


def test_wordpiece_uses_continuation_pieces(tokenizers_by_kind):
    tok = tokenizers_by_kind["wordpiece"]
    vocab = tok.get_vocab()
    assert any(t.startswith("##") for t in vocab)
    enc = tok.encode("The sleepy otter")
    assert tok.decode(enc.ids) == "The sleepy otter"  # case kept
    assert "<unk>" in tok.encode("The 🦓").tokens


def test_char_vocab_is_the_characters(tokenizers_by_kind):
    tok = tokenizers_by_kind["char"]
    chars = set("".join(CORPUS))
    assert set(tok.get_vocab()) == chars | set(SPECIAL_TOKENS)
    text = "The otter.\nIt lands  softly."
    enc = tok.encode(text)
    assert len(enc.ids) == len(text)
    assert tok.decode(enc.ids) == text
    assert tok.encode("Z!").ids == [2, 2]  # unseen characters -> <unk>


def test_training_is_deterministic():
    a = train_tokenizer(CORPUS, kind="bpe", vocab_size=300, progress=False)
    b = train_tokenizer(iter(CORPUS), kind="bpe", vocab_size=300, progress=False)
    assert a.to_str() == b.to_str()


def test_progress_bar_option_runs():
    tok = train_tokenizer(CORPUS[:5], kind="char", vocab_size=100, progress=True)
    assert tok.get_vocab_size() > len(SPECIAL_TOKENS)


@pytest.mark.parametrize("kind,size", [("bpe", 261), ("bpe", 100), ("wordpiece", 6), ("char", 3)])
def test_too_small_vocab_is_a_config_error(kind, size):
    with pytest.raises(ConfigError, match=r"tokenizer\.vocab_size"):
        train_tokenizer(CORPUS, kind=kind, vocab_size=size, progress=False)


def test_wordpiece_alphabet_past_vocab_size_warns(caplog):
    with caplog.at_level("WARNING", logger="lmforge.data.tokenizer"):
        tok = train_tokenizer(CORPUS, kind="wordpiece", vocab_size=10, progress=False)
    assert tok.get_vocab_size() > 10
    assert "tokenizer.vocab_size=10" in caplog.text


def test_smallest_bpe_vocab_is_the_alphabet():
    tok = train_tokenizer(CORPUS, kind="bpe", vocab_size=262, progress=False)
    assert tok.get_vocab_size() == 262
    assert tok.decode(tok.encode(ODD_TEXT).ids) == ODD_TEXT


def test_unknown_kind_and_empty_corpus():
    with pytest.raises(ConfigError, match=r"tokenizer\.kind"):
        train_tokenizer(CORPUS, kind="unigram")
    with pytest.raises(DataError, match="empty"):
        train_tokenizer(["", ""], kind="char", vocab_size=50, progress=False)


@pytest.mark.parametrize("kind", ["bpe", "wordpiece", "char"])
def test_save_load_and_autotokenizer(tmp_path, tokenizers_by_kind, kind):
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    tok = tokenizers_by_kind[kind]
    path = save_tokenizer(tok, tmp_path / "tok", model_max_length=64)
    assert path == tmp_path / "tok" / "tokenizer.json"
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        json.loads((tmp_path / "tok" / name).read_text())

    loaded = load_tokenizer(tmp_path / "tok")
    assert loaded.to_str() == tok.to_str()
    assert load_tokenizer(path).to_str() == tok.to_str()

    hf = AutoTokenizer.from_pretrained(tmp_path / "tok")
    assert isinstance(hf, PreTrainedTokenizerFast)
    assert hf.model_max_length == 64
    assert [hf.pad_token_id, hf.eos_token_id, hf.unk_token_id, hf.mask_token_id, hf.sep_token_id, hf.cls_token_id] == [
        0,
        1,
        2,
        3,
        4,
        5,
    ]
    assert len(hf) == tok.get_vocab_size()
    for text in (CORPUS[3], "The sleepy otter lands.", ODD_TEXT):
        ids = hf(text)["input_ids"]
        assert ids == tok.encode(text).ids
        assert hf.decode(ids, skip_special_tokens=True) == tok.decode(ids)


def test_load_missing_tokenizer_names_the_path(tmp_path):
    with pytest.raises(DataError, match=str(tmp_path / "nope" / "tokenizer.json")):
        load_tokenizer(tmp_path / "nope")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "tokenizer.json").write_text("{not json")
    with pytest.raises(DataError, match=r"bad/tokenizer\.json: not a tokenizer file"):
        load_tokenizer(bad)


def test_training_reads_a_stream_up_to_its_character_budget():
    consumed = []

    def stream():
        for text in CORPUS:
            consumed.append(text)
            yield text

    budget = sum(map(len, CORPUS[:10])) - 1  # reached inside the 10th text: it is the last read
    tok = train_tokenizer(stream(), kind="char", vocab_size=200, progress=False, max_chars=budget)
    assert consumed == CORPUS[:10]
    assert tok.get_vocab() == train_tokenizer(CORPUS[:10], kind="char", vocab_size=200, progress=False).get_vocab()
    unlimited = train_tokenizer(iter(CORPUS), kind="bpe", vocab_size=300, progress=False, max_chars=None)
    assert unlimited.get_vocab() == train_tokenizer(CORPUS, kind="bpe", vocab_size=300, progress=False).get_vocab()
    with pytest.raises(ConfigError, match="tokenizer.max_train_chars"):
        train_tokenizer(CORPUS, kind="bpe", vocab_size=300, max_chars=0)
