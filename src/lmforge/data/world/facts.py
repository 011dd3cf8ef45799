"""Fact sentences about entities, fact paragraphs, and SQuAD-style questions about them.

Every fact template names the relations it states; its slots are named after them, so the
token span of each stated fact is known exactly (a question's answer offsets come from it, not
from searching the text). A paragraph states two or three facts about each of two to four
entities (often of the same kind, so the same relation appears for several entities and the
question's subject has to be matched), sometimes through a pronoun.
"""

from __future__ import annotations

from .entities import World
from .text import Frag, Sentence, make, pick, render, render_with_offsets

MAX_CONTEXT_WORDS = 110

_ORG_KINDS = ("company", "club", "party", "institute", "culture", "media")

# group -> [(relations, template)]; ``{s}`` is the subject, ``{poss}`` its possessive.
FACTS: dict[str, list[tuple[tuple[str, ...], str]]] = {
    "person": [
        (("nationality", "occupation"), "{s} is a {nationality} {occupation}."),
        (("occupation",), "{s} works as a {occupation}."),
        (("occupation",), "{s} is a {occupation} by profession."),
        (("employer",), "{s} works for {employer}."),
        (("employer",), "{s} is employed by {employer}."),
        (("employer", "joined"), "{s} joined {employer} in {joined}."),
        (("employer", "occupation"), "{s} is a {occupation} at {employer}."),
        (("city",), "{s} lives in {city}."),
        (("city",), "{poss} home is in {city}."),
        (("city", "employer"), "{s} works for {employer} in {city}."),
        (("born", "born_city"), "{s} was born in {born_city} in {born}."),
        (("born",), "{s} was born in {born}."),
        (("born_city",), "{s} was born in {born_city}."),
        (("born_city", "occupation"), "Born in {born_city}, {s} became a {occupation}."),
    ],
    "org": [
        (("founded",), "{s} was founded in {founded}."),
        (("founded",), "{s} was set up in {founded}."),
        (("founded",), "{s} dates back to {founded}."),
        (("city", "founded"), "{s}, founded in {founded}, is based in {city}."),
        (("city",), "{s} is based in {city}."),
        (("city",), "{s} has its headquarters in {city}."),
        (("city",), "{poss} headquarters are in {city}."),
        (("leader",), "{s} is led by {leader}."),
        (("leader",), "{leader} is the head of {s}."),
        (("leader",), "{leader} runs {s}."),
    ],
    "company": [
        (("sector",), "{s} is a {sector} company."),
        (("city", "sector"), "{s} is a {sector} company based in {city}."),
    ],
    "club": [
        (("city", "sport"), "{s} is a {sport} club from {city}."),
        (("sport",), "{s} plays {sport}."),
    ],
    "party": [
        (("country",), "{s} is a political party in {country}."),
    ],
    "city": [
        (("country",), "{s} is a city in {country}."),
        (("country",), "{s} lies in {country}."),
        (("population",), "{s} has about {population} thousand inhabitants."),
        (("population",), "About {population} thousand people live in {s}."),
    ],
    "country": [
        (("capital",), "The capital of {s} is {capital}."),
        (("capital",), "{capital} is the capital of {s}."),
    ],
    "product": [
        (("kind", "maker"), "The {s} is a {kind} made by {maker}."),
        (("maker",), "{maker} makes the {s}."),
        (("year",), "The {s} was released in {year}."),
        (("year",), "The {s} came out in {year}."),
        (("price",), "The {s} costs {price}."),
    ],
    "film": [
        (("director", "genre"), "{s} is a {genre} directed by {director}."),
        (("director", "year"), "{s} was directed by {director} and released in {year}."),
        (("star",), "{star} plays the lead in {s}."),
        (("star",), "{s} stars {star}."),
        (("year",), "{s} came out in {year}."),
    ],
}

QUESTIONS: dict[tuple[str, str], tuple[str, ...]] = {
    ("person", "occupation"): ("What does {s} do?", "What is the job of {s}?", "What is {s}'s occupation?"),
    ("person", "nationality"): ("What nationality is {s}?",),
    ("person", "employer"): ("Which organisation does {s} work for?", "Who does {s} work for?", "Who employs {s}?"),
    ("person", "joined"): ("When did {s} join {employer}?", "In which year did {s} join {employer}?"),
    ("person", "city"): ("Where is {s} based?", "In which city is {s} based?"),
    ("person", "born"): ("When was {s} born?", "In which year was {s} born?"),
    ("person", "born_city"): ("Where was {s} born?", "In which city was {s} born?"),
    ("org", "founded"): ("When was {s} founded?", "In which year was {s} founded?"),
    ("org", "city"): ("Where is {s} based?", "In which city is {s} based?", "Where are the headquarters of {s}?"),
    ("org", "leader"): ("Who leads {s}?", "Who is the head of {s}?", "Who runs {s}?"),
    ("org", "sector"): ("What kind of company is {s}?", "In which sector is {s} active?"),
    ("org", "sport"): ("Which sport does {s} play?",),
    ("org", "country"): ("In which country is {s} a political party?",),
    ("city", "country"): ("In which country is {s}?", "Where is {s}?"),
    ("city", "population"): ("How many thousand people live in {s}?",),
    ("country", "capital"): ("What is the capital of {s}?", "Which city is the capital of {s}?"),
    ("product", "kind"): ("What kind of product is the {s}?",),
    ("product", "maker"): ("Which company makes the {s}?", "Who makes the {s}?"),
    ("product", "year"): ("When was the {s} released?", "In which year did the {s} come out?"),
    ("product", "price"): ("How much does the {s} cost?",),
    ("film", "genre"): ("What kind of film is {s}?",),
    ("film", "director"): ("Who directed {s}?", "Who is the director of {s}?"),
    ("film", "year"): ("When did {s} come out?", "In which year was {s} released?"),
    ("film", "star"): ("Who stars in {s}?", "Who plays the lead in {s}?"),
}


def _group(e) -> str:
    return "org" if e.kind in _ORG_KINDS else e.kind


def _templates(e) -> list[tuple[tuple[str, ...], str]]:
    g = _group(e)
    out = list(FACTS[g])
    if g == "org":
        out += FACTS.get(e.kind, [])
    return out


def _values(e) -> dict:
    g = _group(e)
    a = e.attrs
    if g == "person":
        return {
            "nationality": a["nationality"],
            "occupation": a["occupation"],
            "employer": a["employer"],
            "joined": min(2023, a["born"] + 21 + a["born"] % 13),
            "city": a["city"],
            "born": a["born"],
            "born_city": a["born_city"],
        }
    if g == "org":
        v = {"founded": a["founded"], "city": a["city"], "leader": a["leader"]}
        for k in ("sector", "sport", "country"):
            if k in a:
                v[k] = a[k]
        return v
    if g == "city":
        return {"country": a["country"], "population": a["population"]}
    if g == "country":
        return {"capital": a["capital"]}
    if g == "product":
        return {"kind": a["kind"], "maker": a["maker"], "year": a["year"], "price": f"{a['price']} dollars"}
    return {"genre": a["genre"], "director": a["director"], "year": a["year"], "star": a["star"]}


def _related(rng, e):
    """An entity linked to ``e`` (its employer, leader, maker, ...), or None."""
    g = _group(e)
    key = {
        "person": "employer",
        "org": "leader",
        "product": "maker",
        "film": "director",
        "city": "country",
        "country": "capital",
    }[g]
    return e.attrs.get(key)


def _subject(rng, w: World, kind: str):
    if kind == "person":
        return w.person(rng, fresh_p=0.4)
    if kind == "org":
        return w.org(rng, pick(rng, ("company", "company", "club", "party", "institute", "culture")), fresh_p=0.35)
    if kind == "product":
        return w.product(rng, fresh_p=0.4)
    if kind == "film":
        return w.film(rng, fresh_p=0.4)
    if kind == "city":
        return w.city(rng, fresh_p=0.3)
    return w.country(rng)


_KINDS = ("person",) * 9 + ("org",) * 5 + ("product",) * 2 + ("film",) * 2 + ("city", "country")


def fact_paragraph(rng, w: World) -> tuple[list[Sentence], list[tuple]]:
    """Sentences stating facts about 2-4 entities, and the facts: (entity, relation, sent idx)."""
    sents: list[Sentence] = []
    facts: list[tuple] = []
    n_words = 0
    subjects: list = []
    n_subjects = 2 + int(rng.random() * 3)
    while len(subjects) < n_subjects:
        prev = subjects[-1] if subjects else None
        e = None
        if prev is not None and rng.random() < 0.3:
            e = _related(rng, prev)
        if e is None:
            kind = _group(prev) if prev is not None and rng.random() < 0.5 else pick(rng, _KINDS)
            e = _subject(rng, w, kind)
        if any(s.name == e.name for s in subjects):
            continue
        subjects.append(e)

    for e in subjects:
        g = _group(e)
        values = _values(e)
        tpls = _templates(e)
        if e.name.endswith("s"):  # no "Fibraix Systems's"
            tpls = [t for t in tpls if "{poss}" not in t[1]]
        rng.shuffle(tpls)
        covered: set[str] = set()
        n_facts = 2 + (rng.random() < 0.4)
        chosen = []
        for rels, tpl in tpls:
            if len(chosen) == n_facts:
                break
            if covered.isdisjoint(rels):
                chosen.append((rels, tpl))
                covered.update(rels)
        new: list[Sentence] = []
        for k, (rels, tpl) in enumerate(chosen):
            slots = dict(values)
            slots["s"] = e
            pronoun_ok = k > 0 and g in ("person", "org") and tpl.startswith("{s} ")
            r = rng.random()
            if pronoun_ok and r < 0.35:
                slots["s"] = "it" if g == "org" else ("she" if e["gender"] == "f" else "he")
            elif k > 0 and g == "person" and r < 0.6:
                slots["s"] = e["short"]
            if "{poss}" in tpl:
                if k > 0 and g == "person" and rng.random() < 0.5:
                    slots["poss"] = "her" if e["gender"] == "f" else "his"
                else:
                    slots["poss"] = _possessive(e)
            new.append(make(tpl, rng, slots))
            facts.append((e, rels, len(sents) + len(new) - 1))
        add = sum(len(s.tokens) for s in new)
        if sents and n_words + add > MAX_CONTEXT_WORDS:
            facts = [f for f in facts if f[2] < len(sents)]
            break
        sents.extend(new)
        n_words += add
    return sents, facts


def _possessive(e) -> Frag:
    return Frag(list(e.tokens) + ["'s"], list(e.tags) + ["O"], the=e.the)


def qa_record(rng, w: World) -> dict:
    """A SQuAD-shaped record: context, question, exact answer text and offset."""
    while True:
        sents, facts = fact_paragraph(rng, w)
        candidates = [(e, rel, i) for e, rels, i in facts for rel in rels if (_group(e), rel) in QUESTIONS]
        if candidates:
            break
    e, rel, idx = pick(rng, candidates)
    context, offsets = render_with_offsets(sents)
    a, b = sents[idx].spans[rel]
    start = offsets[idx][a]
    answer = render(sents[idx].tokens[a:b])[0]
    if context[start : start + len(answer)] != answer:  # pragma: no cover - an offset bug
        raise AssertionError(f"answer {answer!r} not at {start} in {context!r}")
    qslots = {"s": e}
    if rel == "joined":
        qslots["employer"] = e["employer"]
    question = make(pick(rng, QUESTIONS[(_group(e), rel)]), rng, qslots).text
    return {"context": context, "question": question, "answers": {"text": [answer], "answer_start": [start]}}
