"""A tiny template language, tokenisation and rendering for the synthetic world.

Template syntax (compiled once, cached):

* ``word word``        literal words (split into tokens; punctuation is its own token)
* ``[a|b|c]``          choose one alternative uniformly (alternatives may nest)
* ``(x)``              optional part, kept with probability 1/2
* ``{slot}``           a value from the slots dict: an :class:`Entity`-like object (tokens + BIO
                       tags), a plain string, or a :class:`Frag` (an already expanded fragment)
* ``<pool>``           expand the named pool template (``POOLS``), e.g. ``<intens>``

Expansion records, for every slot, the token span it produced, so that a QA answer or a
summary fact can be located exactly. Everything draws from the ``random.Random`` passed in.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

_WORD_RE = re.compile(r"'s\b|\d+\.\d+|[A-Za-z0-9]+(?:[-'][A-Za-z0-9]+)*|[^\sA-Za-z0-9]")
_META_RE = re.compile(r"\{\w+\}|<\w+>|[\[\]|()]|[^\[\]|(){}<>]+")

# Pools: name -> compiled node; filled by the content modules through ``pool()``.
POOLS: dict[str, tuple] = {}
# Words that an invented name must never be (sentiment words, ...): filled by content modules.
RESERVED: set[str] = set()


@lru_cache(maxsize=None)
def words(text: str) -> tuple[str, ...]:
    """Split plain text into tokens: words (with inner hyphens/apostrophes), numbers, punctuation."""
    return tuple(_WORD_RE.findall(text))


_ARTICLES = frozenset({"the", "a", "an", "its", "their", "his", "her"})


class Frag:
    """An already expanded fragment (tokens + tags) usable as a slot value."""

    __slots__ = ("tokens", "tags", "the")

    def __init__(self, tokens, tags, the: bool = False):
        self.tokens = tuple(tokens)
        self.tags = tuple(tags)
        self.the = the


class Sentence:
    """One sentence: tokens, their BIO tags, and the token span of each slot it used."""

    __slots__ = ("tokens", "tags", "spans", "_text")

    def __init__(self, tokens: list[str], tags: list[str], spans: dict[str, tuple[int, int]]):
        self.tokens = tokens
        self.tags = tags
        self.spans = spans
        self._text = None

    @property
    def text(self) -> str:
        if self._text is None:
            self._text = render(self.tokens)[0]
        return self._text

    def has_entity(self) -> bool:
        return any(t != "O" for t in self.tags)


def _seq(items: list) -> tuple:
    merged: list = []
    for it in items:
        if merged and it[0] == "L" and merged[-1][0] == "L":
            merged[-1] = ("L", merged[-1][1] + it[1])
        else:
            merged.append(it)
    if len(merged) == 1:
        return merged[0]
    return ("S", tuple(merged))


@lru_cache(maxsize=None)
def compile_template(src: str) -> tuple:
    parts = _META_RE.findall(src)
    pos = 0

    def alts(end: str | None) -> tuple:
        nonlocal pos
        options: list[list] = [[]]
        while pos < len(parts):
            p = parts[pos]
            pos += 1
            if p == end:
                break
            if p == "|":
                options.append([])
            elif p == "[":
                options[-1].append(alts("]"))
            elif p == "(":
                options[-1].append(("O", alts(")")))
            elif p in ("]", ")"):
                raise ValueError(f"unbalanced {p!r} in template {src!r}")
            elif p[0] == "{":
                options[-1].append(("V", p[1:-1]))
            elif p[0] == "<":
                options[-1].append(("P", p[1:-1]))
            else:
                w = words(p)
                if w:
                    options[-1].append(("L", w))
        else:
            if end is not None:
                raise ValueError(f"missing {end!r} in template {src!r}")
        nodes = tuple(_seq(o) for o in options)
        return nodes[0] if len(nodes) == 1 else ("C", nodes)

    return alts(None)


def pool(name: str, src: str) -> None:
    """Register a named pool (a template, usually ``[a|b|c]``) usable as ``<name>``."""
    POOLS[name] = compile_template(src)


def _expand(node: tuple, rng, slots: dict, toks: list, tags: list, spans: dict) -> None:
    kind = node[0]
    if kind == "L":
        toks.extend(node[1])
        tags.extend(["O"] * len(node[1]))
    elif kind == "S":
        for n in node[1]:
            _expand(n, rng, slots, toks, tags, spans)
    elif kind == "C":
        opts = node[1]
        _expand(opts[int(rng.random() * len(opts))], rng, slots, toks, tags, spans)
    elif kind == "O":
        if rng.random() < 0.5:
            _expand(node[1], rng, slots, toks, tags, spans)
    elif kind == "V":
        name = node[1]
        val = slots[name]
        start = len(toks)
        if isinstance(val, str):
            w = words(val)
            toks.extend(w)
            tags.extend(["O"] * len(w))
        elif isinstance(val, int):
            toks.append(str(val))
            tags.append("O")
        else:  # Entity or Frag
            if getattr(val, "the", False) and (not toks or toks[-1].lower() not in _ARTICLES):
                toks.append("the")  # "the University of X": the article stays outside the span
                tags.append("O")
                start += 1
            toks.extend(val.tokens)
            tags.extend(val.tags)
        if name not in spans:
            spans[name] = (start, len(toks))
    elif kind == "P":
        _expand(POOLS[node[1]], rng, slots, toks, tags, spans)
    else:  # pragma: no cover - compile_template only makes the kinds above
        raise ValueError(kind)


def expand(src: str, rng, slots: dict | None = None) -> tuple[list[str], list[str], dict]:
    toks: list[str] = []
    tags: list[str] = []
    spans: dict[str, tuple[int, int]] = {}
    _expand(compile_template(src), rng, slots or {}, toks, tags, spans)
    return toks, tags, spans


def frag(src: str, rng, slots: dict | None = None) -> Frag:
    toks, tags, _ = expand(src, rng, slots)
    return Frag(toks, tags)


def make(src: str, rng, slots: dict | None = None) -> Sentence:
    """Expand a sentence template; capitalises the first word."""
    toks, tags, spans = expand(src, rng, slots)
    fix_articles(toks)
    for i, t in enumerate(toks):
        if t == '"':
            continue
        if tags[i] == "O" and t[:1].islower():
            toks[i] = t[0].upper() + t[1:]
        break
    return Sentence(toks, tags, spans)


def fix_articles(toks: list[str]) -> None:
    """``a`` -> ``an`` before a vowel sound (in place)."""
    for i in range(len(toks) - 1):
        t = toks[i]
        if t in ("a", "A", "an", "An"):
            nxt = toks[i + 1].lower()
            vowel = nxt[:1] in ("a", "e", "i", "o", "u") and not nxt.startswith(("uni", "use", "eu"))
            if vowel != (len(t) == 2):
                toks[i] = (t[0] + "n") if vowel else t[0]


_NO_SPACE_BEFORE = frozenset({",", ".", "!", "?", ";", ":", "'s", "%"})


def render(tokens) -> tuple[str, list[int]]:
    """Join tokens into text with natural spacing; returns the text and each token's offset."""
    out: list[str] = []
    offsets: list[int] = []
    pos = 0
    glue = True  # no space before the next token
    quote_open = False
    for t in tokens:
        if t == '"':
            if quote_open:  # closing quote: attach to the left
                space = False
                glue_next = False
            else:
                space = not glue
                glue_next = True
            quote_open = not quote_open
        else:
            space = not glue and t not in _NO_SPACE_BEFORE
            glue_next = False
        if space:
            out.append(" ")
            pos += 1
        offsets.append(pos)
        out.append(t)
        pos += len(t)
        glue = glue_next
    return "".join(out), offsets


def render_sentences(sentences) -> str:
    return " ".join(s.text for s in sentences)


def render_with_offsets(sentences) -> tuple[str, list[list[int]]]:
    """Render several sentences; returns the text and per-sentence token offsets into it."""
    chunks: list[str] = []
    all_offsets: list[list[int]] = []
    base = 0
    for s in sentences:
        text, offs = render(s.tokens)
        if chunks:
            base += 1
        all_offsets.append([base + o for o in offs])
        chunks.append(text)
        base += len(text)
    return " ".join(chunks), all_offsets


def pick(rng, seq: Any):
    return seq[int(rng.random() * len(seq))]
