"""English -> a synthetic target language, built by rule from a seeded lexicon.

Source sentences come from a small grammar: [subject] [verb] [object] (prepositional phrase)
(time). The target language ("Forgish") differs from English by rule:

* an invented word for every English lemma (deterministic per seed; "a"/"an" share one);
* word order: time first, then subject, object, prepositional phrase, then the verb (SOV);
* noun phrases are determiner-noun-adjective (the adjective follows the noun);
* prepositions become postpositions (after their noun phrase);
* morphology: plural nouns take a plural suffix; the verb takes a tense suffix (past, present,
  future) and English "will"/"did"/"does" disappear; negation is a particle before the verb;
* person names are copied unchanged.
So each source has exactly one reference.
"""

from __future__ import annotations

from random import Random

from .entities import World, _stem
from .text import Sentence, pick, render

NOUNS = {  # singular -> plural
    "teacher": "teachers",
    "doctor": "doctors",
    "farmer": "farmers",
    "child": "children",
    "baker": "bakers",
    "sailor": "sailors",
    "student": "students",
    "driver": "drivers",
    "singer": "singers",
    "soldier": "soldiers",
    "dog": "dogs",
    "cat": "cats",
    "horse": "horses",
    "bird": "birds",
    "goat": "goats",
    "friend": "friends",
    "king": "kings",
    "queen": "queens",
    "book": "books",
    "letter": "letters",
    "car": "cars",
    "boat": "boats",
    "house": "houses",
    "garden": "gardens",
    "river": "rivers",
    "market": "markets",
    "school": "schools",
    "bridge": "bridges",
    "apple": "apples",
    "cake": "cakes",
    "song": "songs",
    "window": "windows",
    "door": "doors",
    "table": "tables",
    "chair": "chairs",
    "box": "boxes",
    "flower": "flowers",
    "tree": "trees",
    "stone": "stones",
    "key": "keys",
    "lamp": "lamps",
    "shop": "shops",
    "village": "villages",
    "forest": "forests",
    "road": "roads",
    "gift": "gifts",
    "city": "cities",
    "story": "stories",
    "ship": "ships",
    "bottle": "bottles",
    "basket": "baskets",
    "map": "maps",
}
THINGS = (
    "book",
    "letter",
    "car",
    "boat",
    "apple",
    "cake",
    "box",
    "flower",
    "key",
    "lamp",
    "gift",
    "bottle",
    "basket",
    "map",
    "chair",
    "table",
    "window",
    "door",
    "stone",
)
TEXTS = ("letter", "book", "song", "story", "map")
BUILT = ("house", "bridge", "boat", "ship", "school", "table", "chair", "box", "shop")
ANIMATE = (
    "teacher",
    "doctor",
    "farmer",
    "child",
    "baker",
    "sailor",
    "student",
    "driver",
    "singer",
    "soldier",
    "dog",
    "cat",
    "horse",
    "bird",
    "goat",
    "friend",
    "king",
    "queen",
)
PLACES = (
    "garden",
    "river",
    "market",
    "school",
    "bridge",
    "house",
    "village",
    "forest",
    "road",
    "shop",
    "city",
    "table",
    "tree",
    "window",
    "boat",
    "ship",
)
ADJECTIVES = (
    "old",
    "young",
    "big",
    "small",
    "red",
    "blue",
    "green",
    "happy",
    "tired",
    "quiet",
    "tall",
    "new",
    "heavy",
    "bright",
    "dark",
    "clever",
    "brave",
    "strange",
    "warm",
    "cold",
)
VERBS = {  # base -> (3rd person singular, past)
    "see": ("sees", "saw"),
    "find": ("finds", "found"),
    "buy": ("buys", "bought"),
    "build": ("builds", "built"),
    "carry": ("carries", "carried"),
    "paint": ("paints", "painted"),
    "sell": ("sells", "sold"),
    "visit": ("visits", "visited"),
    "help": ("helps", "helped"),
    "watch": ("watches", "watched"),
    "open": ("opens", "opened"),
    "clean": ("cleans", "cleaned"),
    "follow": ("follows", "followed"),
    "meet": ("meets", "met"),
    "write": ("writes", "wrote"),
    "bring": ("brings", "brought"),
    "make": ("makes", "made"),
    "take": ("takes", "took"),
    "draw": ("draws", "drew"),
    "push": ("pushes", "pushed"),
    "call": ("calls", "called"),
    "catch": ("catches", "caught"),
    "wash": ("washes", "washed"),
    "fix": ("fixes", "fixed"),
    "hold": ("holds", "held"),
    "love": ("loves", "loved"),
}
DET_SG = ("the", "a", "this", "that", "my", "our", "his", "her", "their", "every")
DET_PL = ("the", "these", "those", "my", "our", "some", "two", "three", "four", "five", "many")
PREPS = ("in", "near", "behind", "under", "with", "from", "for")
_PEOPLE = (
    "teacher",
    "doctor",
    "farmer",
    "child",
    "baker",
    "sailor",
    "student",
    "driver",
    "singer",
    "soldier",
    "friend",
    "king",
    "queen",
)
# what each verb takes as object, and what each preposition takes (keeps sentences sensible)
OBJECTS = {
    "see": ANIMATE + THINGS,
    "find": ANIMATE + THINGS,
    "watch": ANIMATE + ("ship", "boat", "car"),
    "follow": ANIMATE,
    "meet": _PEOPLE,
    "help": ANIMATE,
    "call": ANIMATE,
    "love": ANIMATE + THINGS,
    "catch": ANIMATE + ("key", "apple", "box"),
    "visit": _PEOPLE + PLACES,
    "write": TEXTS,
    "build": BUILT,
    "paint": THINGS + BUILT,
    "draw": ANIMATE + THINGS + PLACES,
}
PREP_OBJECTS = {"with": _PEOPLE + ("dog", "horse"), "for": _PEOPLE}
PRONOUNS = {"I": False, "you": False, "he": True, "she": True, "we": False, "they": False}  # 3sg?
TIMES = {
    "past": (("yesterday",), ("last", "week"), ("last", "year")),
    "present": (("every", "day"), ("every", "morning"), ("often",)),
    "future": (("tomorrow",), ("next", "week"), ("soon",)),
}


def lemmas() -> list[str]:
    out = set(NOUNS) | set(ADJECTIVES) | set(VERBS) | set(DET_SG) | set(DET_PL) | set(PREPS)
    out |= {p.lower() for p in PRONOUNS}
    out |= {w for ts in TIMES.values() for t in ts for w in t}
    out.add("not")
    return sorted(out)


class Lexicon:
    """The seeded target lexicon: ``words[lemma]`` and the suffixes ``plural``/``past``/...."""

    def __init__(self, seed: int):
        rng = Random(f"lmforge-lexicon:{seed}")
        english = set(lemmas()) | set(NOUNS.values()) | {f for v in VERBS.values() for f in v}
        used: set[str] = set()
        self.suffix: dict[str, str] = {}
        for name in ("plural", "past", "present", "future"):
            while True:
                s = pick(rng, "aeiou") + pick(rng, "nrlskmtv") + (pick(rng, "aeiou") if rng.random() < 0.5 else "")
                if s not in used:
                    used.add(s)
                    self.suffix[name] = s
                    break
        self.words: dict[str, str] = {}
        for lemma in lemmas():
            n_syl = 1 if lemma in DET_SG or lemma in DET_PL or lemma in PREPS or lemma == "not" else 2
            while True:
                cand = _stem(rng, n_syl + (rng.random() < 0.25))
                if 2 < len(cand) < 10 and cand not in used and cand not in english:
                    used.add(cand)
                    self.words[lemma] = cand
                    break


class _NP:
    __slots__ = ("det", "adj", "noun", "plural", "name", "pron")

    def __init__(self, det=None, adj=None, noun=None, plural=False, name=None, pron=None):
        self.det, self.adj, self.noun, self.plural, self.name, self.pron = det, adj, noun, plural, name, pron

    def english(self) -> list[str]:
        if self.name is not None:
            return list(self.name.tokens)
        if self.pron is not None:
            return [self.pron]
        out = []
        if self.det:
            out.append(self.det)
        if self.adj:
            out.append(self.adj)
        out.append(NOUNS[self.noun] if self.plural else self.noun)
        if out[0] == "a" and out[1][0] in "aeiou":
            out[0] = "an"
        return out

    def target(self, lex: Lexicon) -> list[str]:
        if self.name is not None:
            return list(self.name.tokens)
        if self.pron is not None:
            return [lex.words[self.pron.lower()]]
        out = [lex.words[self.det]] if self.det else []
        out.append(lex.words[self.noun] + (lex.suffix["plural"] if self.plural else ""))
        if self.adj:
            out.append(lex.words[self.adj])
        return out

    @property
    def third_singular(self) -> bool:
        if self.pron is not None:
            return PRONOUNS[self.pron]
        return not self.plural


def _np(rng, nouns, w: World | None, name_p: float = 0.0, adj_p: float = 0.4) -> _NP:
    if w is not None and rng.random() < name_p:
        return _NP(name=w.person(rng, fresh_p=0.5))
    noun = pick(rng, nouns)
    plural = rng.random() < 0.35
    det = pick(rng, DET_PL if plural else DET_SG)
    adj = pick(rng, ADJECTIVES) if rng.random() < adj_p else None
    return _NP(det=det, adj=adj, noun=noun, plural=plural)


class Clause:
    """One source sentence, as structure; renders to English and to the target language."""

    def __init__(self, rng, w: World | None):
        r = rng.random()
        if r < 0.2:
            self.subj = _NP(pron=pick(rng, tuple(PRONOUNS)))
        else:
            self.subj = _np(rng, ANIMATE, w, name_p=0.25)
        self.verb = pick(rng, tuple(VERBS))
        self.tense = pick(rng, ("past", "present", "future"))
        self.neg = rng.random() < 0.15
        objects = OBJECTS.get(self.verb, THINGS)
        self.obj = _np(rng, objects, w, name_p=0.1 if objects is not THINGS and objects[0] in ANIMATE else 0.0)
        self.pp = None
        if rng.random() < 0.5:
            prep = pick(rng, PREPS)
            self.pp = (prep, _np(rng, PREP_OBJECTS.get(prep, PLACES), None, adj_p=0.25))
        self.time = pick(rng, TIMES[self.tense]) if rng.random() < 0.4 else None
        while len(self.english()) > 16:  # keep sentences short: drop optional parts
            if self.time is not None:
                self.time = None
            elif self.pp is not None:
                self.pp = None
            else:
                self.obj.adj = None
                self.subj.adj = None

    def _english_verb(self) -> list[str]:
        third, past = VERBS[self.verb]
        sg3 = self.subj.third_singular
        if self.tense == "future":
            return ["will", "not", self.verb] if self.neg else ["will", self.verb]
        if self.tense == "past":
            return ["did", "not", self.verb] if self.neg else [past]
        if self.neg:
            return ["does" if sg3 else "do", "not", self.verb]
        return [third if sg3 else self.verb]

    def english(self) -> list[str]:
        out = self.subj.english() + self._english_verb() + self.obj.english()
        if self.pp is not None:
            out += [self.pp[0]] + self.pp[1].english()
        if self.time is not None:
            out += list(self.time)
        out[0] = out[0][0].upper() + out[0][1:]
        return out + ["."]

    def target(self, lex: Lexicon) -> list[str]:
        out = [lex.words[t] for t in self.time] if self.time is not None else []
        out += self.subj.target(lex) + self.obj.target(lex)
        if self.pp is not None:
            out += self.pp[1].target(lex) + [lex.words[self.pp[0]]]
        if self.neg:
            out.append(lex.words["not"])
        out.append(lex.words[self.verb] + lex.suffix[self.tense])
        out[0] = out[0][0].upper() + out[0][1:]
        return out + ["."]


def pair(rng, w: World | None, lex: Lexicon) -> tuple[str, str]:
    c = Clause(rng, w)
    return render(c.english())[0], render(c.target(lex))[0]


def english_sentence(rng, w: World | None) -> Sentence:
    toks = Clause(rng, w).english()
    return Sentence(toks, ["O"] * len(toks), {})


def target_sentence(rng, w: World | None, lex: Lexicon) -> Sentence:
    toks = Clause(rng, w).target(lex)
    return Sentence(toks, ["O"] * len(toks), {})
