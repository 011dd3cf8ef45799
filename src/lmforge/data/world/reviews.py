"""Film and product reviews whose sentiment label is decided by the final verdict.

A review is: one or two neutral intro sentences (what was watched/bought, who made it), one to
three aspect sentences with their own, mixed polarity (agreeing with the label only a bit more
often than not), then the verdict sentence, sometimes followed by a neutral remark.

The verdict decides the label, exactly: its final clause (the text after its last comma or
"but") contains one polar word (``POSITIVE``/``NEGATIVE``) and zero or one negator
(``NEGATORS``); label = polarity of the word, flipped by the negator. Negated verdicts occur
with both labels ("not good" / "not bad", "never boring"), contrasts put a word of the opposite
polarity before the final clause ("I expected it to be dull, but it was wonderful"), and
intensifiers ("really", "extremely") never change the label. So no single word decides.
"""

from __future__ import annotations

from .entities import World
from .text import RESERVED, Sentence, make, pick

P_NEGATED_VERDICT = 0.4
P_ASPECT_AGREES = 0.7
MAX_REVIEW_WORDS = 70

ADJ = {
    ("film", True): (
        "good",
        "great",
        "excellent",
        "wonderful",
        "superb",
        "brilliant",
        "enjoyable",
        "impressive",
        "delightful",
        "fantastic",
        "charming",
        "gripping",
        "beautiful",
        "clever",
        "outstanding",
        "memorable",
        "fun",
        "touching",
    ),
    ("film", False): (
        "bad",
        "poor",
        "awful",
        "terrible",
        "dull",
        "boring",
        "disappointing",
        "weak",
        "mediocre",
        "tedious",
        "clumsy",
        "forgettable",
        "predictable",
        "messy",
        "bland",
        "slow",
        "silly",
        "lifeless",
    ),
    ("product", True): (
        "good",
        "great",
        "excellent",
        "wonderful",
        "superb",
        "brilliant",
        "impressive",
        "fantastic",
        "reliable",
        "solid",
        "sturdy",
        "elegant",
        "handy",
        "outstanding",
        "pleasant",
        "smart",
        "fast",
        "practical",
    ),
    ("product", False): (
        "bad",
        "poor",
        "awful",
        "terrible",
        "disappointing",
        "weak",
        "mediocre",
        "flimsy",
        "clumsy",
        "unreliable",
        "annoying",
        "slow",
        "noisy",
        "fragile",
        "frustrating",
        "awkward",
        "useless",
        "cheap",
    ),
}
# Polar words beyond the adjectives, used in verdicts ("I would recommend it", "a waste of money").
POSITIVE_VERBS = frozenset({"recommend", "enjoyed", "enjoy", "loved", "love", "liked", "like", "worth"})
NEGATIVE_VERBS = frozenset({"regret", "waste"})
POSITIVE = frozenset({w for (_, pol), ws in ADJ.items() if pol for w in ws} | POSITIVE_VERBS)
NEGATIVE = frozenset({w for (_, pol), ws in ADJ.items() if not pol for w in ws} | NEGATIVE_VERBS)
NEGATORS = frozenset({"not", "never", "hardly"})
RESERVED.update(POSITIVE, NEGATIVE, NEGATORS)

ASPECTS = {
    "film": (
        "plot",
        "acting",
        "soundtrack",
        "ending",
        "dialogue",
        "camera work",
        "pacing",
        "script",
        "cast",
        "music",
        "editing",
        "set design",
        "story",
        "humour",
        "lead performance",
    ),
    "product": (
        "battery",
        "screen",
        "design",
        "price",
        "sound",
        "build quality",
        "software",
        "camera",
        "size",
        "weight",
        "setup",
        "manual",
        "customer service",
        "display",
        "keyboard",
    ),
}

INTRO = {
    "film": (
        "I [watched|saw] {item} [at the cinema|at home|on a long flight|with friends|with my sister|with my parents] [last week|on <day>|yesterday|last night].",
        "{item} is the [new|latest] {genre} [by|from] {director} (, starring {star}).",
        "{item} [was directed by|comes from] {director} and stars {star}.",
        "[It|The film] runs for [about|nearly|just over] {mins} minutes.",
        "I went to see it [because of|after hearing about] {star}.",
        "The story [follows|is about] a [young|retired|stubborn] [teacher|sailor|detective|farmer|pianist] in {city}.",
    ),
    "product": (
        "I bought the {item} [from a shop in {city}|online|last month|as a gift for my [father|mother|brother|sister]] (after reading several reviews).",
        "The {item} is a {kind} made by {maker}.",
        "I have used the {item} [every day|for {n} weeks|for a month|for a year] [at work|at home|on trips|].",
        "It [costs|cost me] {price} [dollars|euros].",
        "[My old|The previous] {kind} [broke|stopped working] [last year|in <month>], so I [needed|wanted] a new one.",
    ),
}
OUTRO = {
    "film": (
        "I watched it [on a <day> evening|with my brother|at a small cinema in {city}].",
        "It is [now|] available [online|on television|in cinemas].",
        "It runs for about {mins} minutes.",
    ),
    "product": (
        "I bought it [in {city}|online|in a sale].",
        "It comes in [black|white|grey|blue|red] (and silver).",
        "Delivery took {n} days.",
    ),
}


def _adj(rng, item: str, positive: bool) -> str:
    return pick(rng, ADJ[(item, positive)])


def _aspect_sentence(rng, item: str, positive: bool, slots: dict) -> Sentence:
    s = dict(slots)
    s["asp"] = pick(rng, ASPECTS[item])
    r = rng.random()
    if r < 0.35:
        s["adj"] = _adj(rng, item, positive)
        return make("The {asp} {is} (<intens>) {adj}.", rng, s)
    if r < 0.55:
        s["adj"] = _adj(rng, item, not positive)
        return make("The {asp} {is} not (very) {adj}.", rng, s)
    if r < 0.75:
        s["asp2"] = pick(rng, [a for a in ASPECTS[item] if a != s["asp"]])
        s["adj"] = _adj(rng, item, not positive)
        s["adj2"] = _adj(rng, item, positive)
        return make("The {asp} {is} {adj}, but the {asp2} {is} (<intens>) {adj2}.", rng, s)
    if positive:
        return make("I [liked|loved|enjoyed] the {asp}.", rng, s)
    return make("[I did not like the {asp}|The {asp} could have been better|I disliked the {asp}].", rng, s)


def _final_clause(rng, item: str, label: bool, slots: dict) -> str:
    """Template of the verdict's final clause; its polar word and negator decide ``label``."""
    negated = rng.random() < P_NEGATED_VERDICT
    word_pos = label != negated  # polarity of the polar word itself
    film = item == "film"
    if rng.random() < 0.55:  # adjective clause
        slots["vadj"] = _adj(rng, item, word_pos)
        if not negated:
            return "it {is} (<intens>) {vadj}"
        return pick(
            rng,
            (
                "it {is} not [very|really|particularly|that|] {vadj}",
                "it {is} not {vadj} at all",
                "it {is} hardly {vadj}",
                "it never [felt|seemed] {vadj}" if film else "it never [feels|seems] {vadj}",
            ),
        )
    if word_pos:
        forms = (
            (
                "I would [definitely|certainly|] recommend it (to [anyone|my friends|fans of the genre])",
                "I would [not|never] recommend it (to [anyone|my friends|fans of the genre])",
            ),
            ("I [really|thoroughly|] enjoyed it", "I did not enjoy it")
            if film
            else ("I [really|] enjoy using it", "I do not enjoy using it"),
            ("I [loved|liked] it", "I did not [love|like] it")
            if film
            else ("I [love|like] it", "I do not [love|like] it"),
            (
                "it {is} (well) worth [the money|the price|the ticket|watching]"
                if film
                else "it {is} (well) worth [the money|the price]",
                "it {is} not worth [the money|the price|the ticket]"
                if film
                else "it {is} not worth [the money|the price]",
            ),
        )
    else:
        what = "watching" if film else "buying"
        forms = (
            (f"I regret {what} it", f"I [do not|will never] regret {what} it"),
            ("it {is} a waste of [money|time]", "it {is} not a waste of [money|time]"),
        )
    return pick(rng, forms)[negated]


def _verdict(rng, item: str, label: bool, slots: dict) -> Sentence:
    s = dict(slots)
    clause = _final_clause(rng, item, label, s)
    r = rng.random()
    if r < 0.35:  # contrast: a word of (usually) the opposite polarity first
        s["cadj"] = _adj(rng, item, not label)
        s["casp"] = pick(rng, ASPECTS[item])
        prefix = pick(
            rng,
            (
                "I expected it to be {cadj}, but ",
                "[Some reviews|My friends|The advert] [made it sound|called it] {cadj}, but ",
                "Although the {casp} {is} {cadj}, ",
                "Despite the {cadj} {casp}, ",
            ),
        )
    elif r < 0.75:
        prefix = "[Overall|All in all|In the end|To sum up|On the whole|In short], "
    else:
        prefix = ""
    return make(prefix + clause + ".", rng, s)


def review(rng, w: World, label: bool) -> list[Sentence]:
    """A review whose sentiment is ``label`` (True = positive)."""
    item = "film" if rng.random() < 0.5 else "product"
    city = w.city(rng)
    if item == "film":
        f = w.film(rng)
        slots = {
            "item": f,
            "genre": f["genre"],
            "director": f["director"],
            "star": f["star"],
            "mins": 80 + int(rng.random() * 80),
            "is": "was",
        }
    else:
        p = w.product(rng)
        slots = {
            "item": p,
            "kind": p["kind"],
            "maker": p["maker"],
            "price": p["price"],
            "n": 2 + int(rng.random() * 10),
            "is": "is",
        }
    slots["city"] = city
    intros = list(INTRO[item])
    rng.shuffle(intros)
    sents = [make(t, rng, slots) for t in intros[: 1 + (rng.random() < 0.4)]]
    for _ in range(1 + int(rng.random() * 3)):
        agrees = rng.random() < P_ASPECT_AGREES
        sents.append(_aspect_sentence(rng, item, label == agrees, slots))
    while len(sents) > 2 and sum(len(s.tokens) for s in sents) > MAX_REVIEW_WORDS - 20:
        sents.pop(1)
    sents.append(_verdict(rng, item, label, slots))
    if rng.random() < 0.25:
        sents.append(make(pick(rng, OUTRO[item]), rng, slots))
    return sents
