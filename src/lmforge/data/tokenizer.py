"""Tokenizer training, saving and loading with Hugging Face `tokenizers`.

Three kinds:

- ``bpe``: byte-level BPE (GPT-2 style). The initial alphabet is all 256 bytes, so every text
  encodes without ``<unk>`` and ``decode(encode(x)) == x``.
- ``wordpiece``: BERT-style pre-tokenisation (whitespace + punctuation) and WordPiece with ``##``
  continuation pieces; case is kept.
- ``char``: one token per character seen in the training text; unseen characters become
  ``<unk>``.

All kinds reserve the same special tokens at the same ids (see `SPECIAL_TOKENS`). Encoding adds
no special tokens: the caller decides where ``<eos>``/``<cls>``/``<sep>`` go.

A saved tokenizer directory holds ``tokenizer.json`` plus the two small JSON files that let
``transformers.AutoTokenizer.from_pretrained(directory)`` load it as a fast tokenizer with the
special tokens set.

Note: as usual with Hugging Face tokenizers, a literal special-token string inside a text (for
example ``"<eos>"``) is matched and encoded as that special token.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

from lmforge.errors import ConfigError, DataError, first_line
from lmforge.fileio import write_text

SPECIAL_TOKENS = ["<pad>", "<eos>", "<unk>", "<mask>", "<sep>", "<cls>"]
"""Special tokens, in id order: ``<pad>`` = 0, ``<eos>`` = 1, ..., ``<cls>`` = 5."""

# Short name -> token string, in the same order as SPECIAL_TOKENS.
SPECIAL_NAMES = {token.strip("<>"): token for token in SPECIAL_TOKENS}

log = logging.getLogger(__name__)

KINDS = ("bpe", "wordpiece", "char")
TOKENIZER_FILE = "tokenizer.json"
BYTE_ALPHABET_SIZE = 256


def _min_vocab_size(kind: str) -> int:
    """The smallest vocabulary that holds the special tokens (+ the byte alphabet for bpe)."""
    extra = BYTE_ALPHABET_SIZE if kind == "bpe" else 1
    return len(SPECIAL_TOKENS) + extra


MAX_TRAIN_CHARS = 50_000_000
"""Default character budget of tokenizer training (`train_tokenizer`'s ``max_chars``)."""


def _counting(texts: Iterable[str], counter: list[int], max_chars: int | None) -> Iterator[str]:
    """Yield the texts, counting characters into counter[0] (to detect an empty corpus), and
    stop after the text that reaches ``max_chars`` (None: no limit)."""
    for text in texts:
        if not isinstance(text, str):
            raise DataError(f"tokenizer training text must be str, got {type(text).__name__}")
        counter[0] += len(text)
        yield text
        if max_chars is not None and counter[0] >= max_chars:
            log.info(
                "tokenizer trained on the first %d characters of the corpus (tokenizer.max_train_chars)", counter[0]
            )
            return


def train_tokenizer(
    texts: Iterable[str],
    kind: str = "bpe",
    vocab_size: int = 8192,
    min_frequency: int = 2,
    progress: bool = True,
    max_chars: int | None = MAX_TRAIN_CHARS,
) -> Tokenizer:
    """Train a tokenizer of ``kind`` ("bpe", "wordpiece" or "char") on ``texts``.

    ``vocab_size`` includes the special tokens (and the 256 byte tokens for bpe); WordPiece keeps
    every character of the corpus even past ``vocab_size`` (a warning is logged). For ``char``
    every distinct character becomes a token (``min_frequency`` is not applied), up to
    ``vocab_size`` tokens, most frequent first. ``progress`` shows the `tokenizers` trainer's
    progress bar.

    ``texts`` is read once, as a stream (a generator is fine), and only up to ``max_chars``
    characters (the text that crosses the budget is the last one read; None reads everything):
    the trainer's memory grows with the distinct words it has seen, so a budget keeps it bounded
    whatever the corpus size, as sentencepiece's ``input_sentence_size`` does. The budget takes
    the first texts of the stream, not a sample: a corpus sorted by topic should be shuffled.

    Raises ConfigError (naming ``tokenizer.kind`` / ``tokenizer.vocab_size``) for a bad choice,
    DataError when the texts are empty.
    """
    if kind not in KINDS:
        raise ConfigError(f"tokenizer.kind={kind!r} is not one of {list(KINDS)}")
    if not isinstance(vocab_size, int) or vocab_size < _min_vocab_size(kind):
        need = _min_vocab_size(kind)
        what = f"{len(SPECIAL_TOKENS)} special tokens"
        what += f" + {BYTE_ALPHABET_SIZE} byte tokens" if kind == "bpe" else " + at least 1 token"
        raise ConfigError(
            f"tokenizer.vocab_size={vocab_size!r} is too small for kind={kind!r}: need at least {need} ({what})"
        )
    if not isinstance(min_frequency, int) or min_frequency < 0:
        raise ConfigError(f"tokenizer.min_frequency={min_frequency!r} must be an integer >= 0")
    if max_chars is not None and (not isinstance(max_chars, int) or max_chars < 1):
        raise ConfigError(f"tokenizer.max_train_chars={max_chars!r} must be null or an integer >= 1")

    if kind == "bpe":
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            min_frequency=min_frequency,
            special_tokens=SPECIAL_TOKENS,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=progress,
        )
    elif kind == "wordpiece":
        tok = Tokenizer(models.WordPiece(unk_token="<unk>", continuing_subword_prefix="##"))
        tok.normalizer = normalizers.BertNormalizer(
            clean_text=True, handle_chinese_chars=True, strip_accents=False, lowercase=False
        )
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tok.decoder = decoders.WordPiece(prefix="##")
        trainer = trainers.WordPieceTrainer(
            vocab_size=vocab_size,
            min_frequency=min_frequency,
            special_tokens=SPECIAL_TOKENS,
            continuing_subword_prefix="##",
            show_progress=progress,
        )
    else:  # char
        tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
        # Every character (newlines included) is its own "word"; Fuse joins them back on decode.
        tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
        tok.decoder = decoders.Fuse()
        trainer = trainers.WordLevelTrainer(
            vocab_size=vocab_size,
            min_frequency=1,
            special_tokens=SPECIAL_TOKENS,
            show_progress=progress,
        )

    length = len(texts) if hasattr(texts, "__len__") else None  # type: ignore[arg-type]
    n_chars = [0]
    tok.train_from_iterator(_counting(texts, n_chars, max_chars), trainer=trainer, length=length)
    if n_chars[0] == 0:
        raise DataError("cannot train a tokenizer: the training texts are empty")

    if tok.get_vocab_size() > vocab_size:  # WordPiece keeps its whole alphabet (+ "##" forms)
        log.warning(
            "tokenizer.vocab_size=%d is smaller than the %s alphabet of the corpus: the trained "
            "vocabulary has %d tokens",
            vocab_size,
            kind,
            tok.get_vocab_size(),
        )
    ids = [tok.token_to_id(t) for t in SPECIAL_TOKENS]
    if ids != list(range(len(SPECIAL_TOKENS))):  # guaranteed by the trainers; checked anyway
        raise RuntimeError(f"special tokens got ids {ids}, expected 0..{len(SPECIAL_TOKENS) - 1}")
    return tok


# How other conventions spell the special tokens (BERT's [PAD]/[SEP]/[CLS]/[MASK], RoBERTa's
# <s>/</s>, GPT-2's <|endoftext|>): tried after the tokenizer directory's own declaration.
SPECIAL_ALIASES = {
    "pad": ("[PAD]", "<|pad|>"),
    "eos": ("</s>", "<|endoftext|>", "[SEP]"),
    "unk": ("[UNK]", "<|endoftext|>"),
    "mask": ("[MASK]",),
    "sep": ("[SEP]", "</s>"),
    "cls": ("[CLS]", "<s>"),
}


def special_ids(tok: Tokenizer, strict: bool = False) -> dict[str, int]:
    """Ids of the special tokens by short name: {"pad": 0, "eos": 1, "unk": 2, ...}.

    Looks each one up as declared by the tokenizer's directory (``special_tokens_map.json`` /
    ``tokenizer_config.json``, read by `load_tokenizer`), then as lmforge spells it, then by
    `SPECIAL_ALIASES`. A tokenizer without a pad token (GPT-2) pads with its eos, and one without
    a separator separates with its eos. ``pad`` and ``eos`` must resolve; with ``strict`` all six
    must (lmforge's own tokenizers have them all).
    """
    declared = getattr(tok, "lmforge_special_tokens", None) or {}
    out = {}
    for name, token in SPECIAL_NAMES.items():
        for candidate in (declared.get(name), token, *SPECIAL_ALIASES[name]):
            idx = tok.token_to_id(candidate) if candidate else None
            if idx is not None:
                out[name] = idx
                break
    required = SPECIAL_NAMES if strict else ("eos",)
    missing = [SPECIAL_NAMES[n] for n in required if n not in out]
    if missing:
        raise DataError(f"tokenizer has no special token {missing[0]!r} (expected {SPECIAL_TOKENS})")
    out.setdefault("pad", out["eos"])
    out.setdefault("sep", out["eos"])
    return out


def _declared_special_tokens(directory: Path) -> dict[str, str]:
    """{"pad": "[PAD]", ...} from a tokenizer directory's Hugging Face JSON files, if any."""
    found: dict[str, str] = {}
    for name in ("tokenizer_config.json", "special_tokens_map.json"):  # the latter wins
        path = directory / name
        if not path.is_file():
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}: invalid JSON at line {exc.lineno}: {exc.msg}") from exc
        for short in SPECIAL_NAMES:
            value = data.get(f"{short}_token")
            if isinstance(value, dict):  # {"content": "[PAD]", ...}
                value = value.get("content")
            if isinstance(value, str):
                found[short] = value
    return found


def _write_json(path: Path, obj: dict) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


def save_tokenizer(tok: Tokenizer, directory: str | os.PathLike, model_max_length: int | None = None) -> Path:
    """Write ``tokenizer.json``, ``tokenizer_config.json`` and ``special_tokens_map.json``.

    The directory then loads with ``transformers.AutoTokenizer.from_pretrained(directory)`` as a
    fast tokenizer with pad/eos/unk/mask/sep/cls set (and with `load_tokenizer`). Returns the
    path of ``tokenizer.json``.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    special_tokens_map = {f"{name}_token": token for name, token in SPECIAL_NAMES.items()}
    special_ids(tok, strict=True)  # fails clearly if a special token is missing

    tok_path = directory / TOKENIZER_FILE
    write_text(tok_path, tok.to_str(pretty=True))

    config = {
        # The class name transformers 4.x and 5.x both resolve to their tokenizers-backed class.
        "tokenizer_class": "PreTrainedTokenizerFast",
        "clean_up_tokenization_spaces": False,
        **special_tokens_map,
    }
    if model_max_length is not None:
        config["model_max_length"] = int(model_max_length)
    _write_json(directory / "tokenizer_config.json", config)
    _write_json(directory / "special_tokens_map.json", special_tokens_map)
    return tok_path


def load_tokenizer(directory: str | os.PathLike) -> Tokenizer:
    """Load ``<directory>/tokenizer.json`` (a path to the json file itself also works)."""
    path = Path(directory)
    if path.is_dir() or path.suffix != ".json":
        path = path / TOKENIZER_FILE
    from lmforge.saved_model import MANIFEST, REMAKE

    in_model = (path.parent / MANIFEST).is_file()  # a model directory's (else the prepare stage's)
    remake = REMAKE if in_model else "re-run the prepare stage"
    if not path.is_file():
        if in_model:
            raise DataError(f"{path} is missing: the model directory is incomplete; {REMAKE}")
        raise DataError(f"tokenizer file not found: {path} (run the prepare stage to train one)")
    try:
        tok = Tokenizer.from_file(str(path))
    except Exception as exc:  # tokenizers raises a plain Exception on malformed files
        raise DataError(
            f"{path}: not a tokenizer file `tokenizers` can load ({first_line(exc)}); it is damaged: {remake}"
        ) from None
    # Hugging Face checkpoints may save fixed padding/truncation (MiniLM: pad to 128): callers
    # truncate and pad themselves, and packing a corpus must never truncate a document.
    tok.no_padding()
    tok.no_truncation()
    tok.lmforge_special_tokens = _declared_special_tokens(path.parent)  # read by special_ids
    return tok
