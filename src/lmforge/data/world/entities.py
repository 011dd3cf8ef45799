"""The seeded set of invented entities: persons, organisations, places and misc names.

All names are built from syllables by a ``random.Random`` so that a model cannot rely on
having seen a name before: it has to read the context. Attributes (occupation, employer, home
city, founding year, ...) are fixed per world, so fact sentences in the corpus agree with the
facts stated in the task passages. ``World.fresh_*`` makes one-off entities that are not part
of the world (used in a share of the documents).
"""

from __future__ import annotations

from .text import RESERVED, pick, words

TOPICS = ("business", "culture", "politics", "science", "sports")

_ONSETS = ("b d f g h k l m n p r s t v z br dr gr kr tr pr st sk ch sh th j y b d k l m n r s t v").split()
_VOWELS = "a e i o u a e i o a e o ai ei au ou".split()
_CODAS = ["", "", "", "", "", "", "n", "r", "l", "s", "m", "rn", "nd", "lt", "sk", "th", "v", "x"]
_FEMALE_END = ("a", "ia", "ella", "ine", "ira", "eta", "ana", "ise", "ora", "elle")
_MALE_END = ("o", "an", "or", "ek", "is", "en", "ard", "ul", "ius", "as")
_LAST_END = ("", "", "", "", "son", "ez", "ov", "ani", "dal", "ic", "mark", "ford", "ssen", "elli")
_CITY_END = ("", "", "", "burg", "ton", "via", "ora", "mouth", "holm", "stad", "ano", "ford")
_CITY_PRE = ("Port", "New", "San", "Lake", "Fort", "Saint")
_CITY_POST = ("Bay", "Falls", "Springs", "Harbour", "Heights")
_COUNTRY_END = ("ia", "land", "ora", "istan", "a", "ea", "ania", "ovia")

OCCUPATIONS = {
    "sports": (
        "footballer",
        "striker",
        "goalkeeper",
        "sprinter",
        "tennis player",
        "cyclist",
        "swimmer",
        "coach",
        "boxer",
        "marathon runner",
    ),
    "business": ("banker", "economist", "entrepreneur", "investor", "accountant", "executive", "analyst", "trader"),
    "politics": ("politician", "senator", "diplomat", "minister", "mayor", "lawyer", "campaigner", "judge"),
    "science": ("physicist", "biologist", "chemist", "astronomer", "engineer", "geologist", "mathematician", "doctor"),
    "culture": (
        "novelist",
        "painter",
        "actor",
        "singer",
        "film director",
        "composer",
        "poet",
        "dancer",
        "photographer",
    ),
}
SPORTS = ("football", "basketball", "hockey", "rugby", "volleyball", "handball")
SECTORS = (
    "technology",
    "energy",
    "food",
    "banking",
    "shipping",
    "textile",
    "software",
    "mining",
    "retail",
    "pharmaceutical",
    "airline",
    "telecoms",
    "insurance",
    "chemicals",
)
PRODUCT_KINDS = (
    "phone",
    "laptop",
    "tablet",
    "smartwatch",
    "camera",
    "speaker",
    "blender",
    "kettle",
    "coffee machine",
    "vacuum cleaner",
    "e-reader",
    "headset",
)
GENRES = (
    "drama",
    "comedy",
    "thriller",
    "documentary",
    "musical",
    "horror film",
    "western",
    "romance",
    "war film",
    "mystery",
)
_TITLE_ADJ = (
    "Silent",
    "Broken",
    "Golden",
    "Last",
    "Hidden",
    "Distant",
    "Crimson",
    "Endless",
    "Quiet",
    "Burning",
    "Frozen",
    "Lonely",
    "Second",
    "Wild",
    "Paper",
    "Iron",
    "Glass",
    "Velvet",
    "Northern",
    "Fading",
)
_TITLE_NOUN = (
    "Harbour",
    "River",
    "Garden",
    "Kingdom",
    "Mirror",
    "Winter",
    "Promise",
    "Journey",
    "Storm",
    "Island",
    "Letter",
    "Bridge",
    "Shadow",
    "Voyage",
    "Summer",
    "Orchard",
    "Lantern",
    "Crown",
    "Tide",
    "Station",
)
_MODEL = ("X{d}", "{d}", "Pro", "Mini", "S{d}", "Max", "Lite", "One", "Air", "Go", "Z{d}", "Plus")


_THE_PREFIX = ("University of", "Party of", "Journal of", "Annals of")
_THE_SUFFIX = (
    "Institute",
    "Observatory",
    "Space Agency",
    "Research Centre",
    "Museum of Art",
    "Philharmonic",
    "Institute of Technology",
    "Gallery",
    "Theatre",
    "Herald",
    "Times",
    "Post",
    "Party",
    "Alliance",
    "Union",
    "Front",
    "Democrats",
)


class Entity:
    """A named entity: its surface tokens, BIO tags, NER type, kind and attributes."""

    __slots__ = ("name", "etype", "kind", "tokens", "tags", "attrs", "the")

    def __init__(self, name: str, etype: str, kind: str, /, **attrs):
        self.name = name
        self.etype = etype
        self.kind = kind
        self.tokens = words(name)
        self.tags = tuple(["B-" + etype] + ["I-" + etype] * (len(self.tokens) - 1))
        self.attrs = attrs
        # institutional names read with an article: "the University of X", "the X Party"
        self.the = etype in ("ORG", "MISC") and (name.startswith(_THE_PREFIX) or name.endswith(_THE_SUFFIX))

    def __getitem__(self, key):
        return self.attrs[key]

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return f"Entity({self.name!r}, {self.etype}, {self.kind})"


def _syllable(rng, coda_p: float = 0.35) -> str:
    s = pick(rng, _ONSETS) + pick(rng, _VOWELS)
    if rng.random() < coda_p:
        s += pick(rng, _CODAS)
    return s


def _stem(rng, n: int) -> str:
    return "".join(_syllable(rng, 0.3 if i < n - 1 else 0.5) for i in range(n))


def _join(stem: str, end: str) -> str:
    """Attach an ending; a vowel-initial ending replaces the stem's final vowels."""
    if end[:1] in ("a", "e", "i", "o", "u"):
        stem = stem.rstrip("aeiouy") or stem
    return stem + end


def nationality_of(country: str) -> str:
    low = country
    if low.endswith("land"):
        return low[:-4] + "ish" if len(low) > 6 else low + "er"
    if low.endswith("istan"):
        return low[:-5] + "i"
    if low.endswith("ia") or low.endswith("a"):
        return low + "n"
    if low.endswith("ea"):
        return low + "n"
    return low + "ese"


class World:
    """The fixed entities of one seed; ``fresh_*`` methods make one-off entities."""

    def __init__(self, rng, n_persons: int = 1500):
        self._used: set[str] = set()
        self.countries: list[Entity] = []
        for _ in range(16):
            name = self._unique(rng, lambda: _join(_stem(rng, 2), pick(rng, _COUNTRY_END)).capitalize())
            nat = nationality_of(name)
            self.countries.append(Entity(name, "LOC", "country", nationality=Entity(nat, "MISC", "nationality")))
        self.cities: list[Entity] = [self._city(rng, c) for c in self.countries for _ in range(6)]
        for c in self.countries:
            c.attrs["capital"] = next(x for x in self.cities if x["country"] is c)
        self.orgs: dict[str, list[Entity]] = {
            "company": [self._company(rng) for _ in range(100)],
            "club": [self._club(rng) for _ in range(40)],
            "party": [self._party(rng) for _ in range(16)],
            "institute": [self._institute(rng) for _ in range(40)],
            "culture": [self._culture_org(rng) for _ in range(30)],
            "media": [self._media(rng) for _ in range(12)],
        }
        self.persons: list[Entity] = [self._person(rng) for _ in range(n_persons)]
        self.by_topic: dict[str, list[Entity]] = {t: [] for t in TOPICS}
        for p in self.persons:
            self.by_topic[p["topic"]].append(p)
        for p in self.persons:
            p.attrs["employer"] = pick(rng, self.orgs[_TOPIC_ORG[p["topic"]]])
        leaders: set[int] = set()
        for kind, orgs in self.orgs.items():
            for o in orgs:
                while True:  # a person leads at most one organisation, and works for it
                    p = self.person(rng, _ORG_TOPIC[kind], fresh_p=0.0)
                    if id(p) not in leaders:
                        break
                leaders.add(id(p))
                o.attrs["leader"] = p
                p.attrs["employer"] = o
        self.products = [self.fresh_product(rng, unique=True) for _ in range(80)]
        self.films = [self.fresh_film(rng, unique=True) for _ in range(80)]
        self.events = {t: [self._event(rng, t) for _ in range(12)] for t in TOPICS}

    # -- names ------------------------------------------------------------------------------
    def _unique(self, rng, make, register: bool = True) -> str:
        for _ in range(1000):
            name = make()
            low = name.lower()
            if 3 < len(name) < 13 and low not in self._used and low not in RESERVED:
                if register:
                    self._used.add(name.lower())
                return name
        raise RuntimeError("could not invent a unique name")  # pragma: no cover

    def _word(self, rng, register: bool = True) -> str:
        return self._unique(rng, lambda: _stem(rng, 1 + (rng.random() < 0.6)).capitalize(), register)

    def first_name(self, rng, gender: str) -> str:
        ends = _FEMALE_END if gender == "f" else _MALE_END
        while True:
            stem = _stem(rng, 1 + (rng.random() < 0.35))
            name = _join(stem, pick(rng, ends)).capitalize()
            if len(name) > 3 and name.lower() not in RESERVED:
                return name

    def last_name(self, rng) -> str:
        return _join(_stem(rng, 1 + (rng.random() < 0.7)), pick(rng, _LAST_END)).capitalize()

    # -- places -----------------------------------------------------------------------------
    def _city(self, rng, country: Entity, register: bool = True) -> Entity:
        base = self._unique(
            rng, lambda: _join(_stem(rng, 1 + (rng.random() < 0.6)), pick(rng, _CITY_END)).capitalize(), register
        )
        r = rng.random()
        name = (
            f"{pick(rng, _CITY_PRE)} {base}" if r < 0.12 else (f"{base} {pick(rng, _CITY_POST)}" if r < 0.2 else base)
        )
        return Entity(name, "LOC", "city", country=country, population=int(rng.random() * 900) + 20)

    def city(self, rng, fresh_p: float = 0.15) -> Entity:
        if rng.random() < fresh_p:
            return self._city(rng, pick(rng, self.countries), register=False)
        return pick(rng, self.cities)

    def country(self, rng) -> Entity:
        return pick(rng, self.countries)

    # -- organisations ----------------------------------------------------------------------
    def _org(self, rng, name: str, kind: str, **attrs) -> Entity:
        attrs.setdefault("city", pick(rng, self.cities))
        attrs.setdefault("founded", 1850 + int(rng.random() * 170))
        return Entity(name, "ORG", kind, topic=_ORG_TOPIC[kind], **attrs)

    def _company(self, rng, register: bool = True) -> Entity:
        w = self._word(rng, register)
        suffix = pick(
            rng,
            (
                "Systems",
                "Industries",
                "Holdings",
                "Group",
                "Motors",
                "Foods",
                "Energy",
                "Labs",
                "Bank",
                "Airlines",
                "Logistics",
                "Pharma",
                "Capital",
                "Electronics",
                "",
                "",
                "",
            ),
        )
        return self._org(rng, f"{w} {suffix}".strip(), "company", sector=pick(rng, SECTORS), short=w)

    def _club(self, rng, register: bool = True) -> Entity:
        city = pick(rng, self.cities) if register else self._city(rng, pick(rng, self.countries), register=False)
        base = city.name
        r = rng.random()
        if r < 0.6:
            name = f"{base} {pick(rng, ('United', 'Rovers', 'Athletic', 'Wanderers', 'Lions', 'Falcons', 'City', 'Rangers'))}"
        elif r < 0.8:
            name = f"FC {base}"
        else:
            name = f"{self._word(rng, register)} {pick(rng, ('Sporting', 'Olympic', 'Albion'))}"
        return self._org(rng, name, "club", city=city, sport=pick(rng, SPORTS))

    def _party(self, rng, register: bool = True) -> Entity:
        w = self._word(rng, register)
        name = pick(
            rng, (f"{w} Party", f"{w} Alliance", f"Party of {w}", f"{w} Union", f"{w} Front", "{} Democrats".format(w))
        )
        return self._org(rng, name, "party", country=pick(rng, self.countries))

    def _institute(self, rng, register: bool = True) -> Entity:
        w = self._word(rng, register)
        city = pick(rng, self.cities)
        name = pick(
            rng,
            (
                f"{w} Institute",
                f"University of {city.name}",
                f"{w} Observatory",
                f"{city.name} Institute of Technology",
                f"{w} Space Agency",
                f"{w} Research Centre",
            ),
        )
        return self._org(rng, name, "institute", city=city)

    def _culture_org(self, rng, register: bool = True) -> Entity:
        w = self._word(rng, register)
        city = pick(rng, self.cities)
        name = pick(
            rng,
            (
                f"{w} Studios",
                f"{city.name} Philharmonic",
                f"{w} Gallery",
                f"{city.name} Museum of Art",
                f"{w} Records",
                f"{w} Press",
                f"{w} Theatre",
            ),
        )
        return self._org(rng, name, "culture", city=city)

    def _media(self, rng) -> Entity:
        city = pick(rng, self.cities)
        w = self._word(rng)
        name = pick(rng, (f"{city.name} Herald", f"{w} Times", f"{city.name} Post", f"{w} Daily", f"{w} Broadcasting"))
        return self._org(rng, name, "media", city=city)

    def org(self, rng, kind: str, fresh_p: float = 0.2) -> Entity:
        if rng.random() < fresh_p and kind != "media":
            make = {
                "company": self._company,
                "club": self._club,
                "party": self._party,
                "institute": self._institute,
                "culture": self._culture_org,
            }[kind]
            o = make(rng, register=False)
            leader = self.fresh_person(rng, _ORG_TOPIC[kind], with_employer=False)
            leader.attrs["employer"] = o
            o.attrs["leader"] = leader
            return o
        return pick(rng, self.orgs[kind])

    def topic_org(self, rng, topic: str, fresh_p: float = 0.2) -> Entity:
        return self.org(rng, _TOPIC_ORG[topic], fresh_p)

    # -- persons ----------------------------------------------------------------------------
    def _person(self, rng, topic: str | None = None, register: bool = True) -> Entity:
        gender = "f" if rng.random() < 0.5 else "m"
        first = self.first_name(rng, gender)
        last = self._unique(rng, lambda: self.last_name(rng), register)
        topic = topic or pick(rng, TOPICS)
        born_city = pick(rng, self.cities)
        p = Entity(
            f"{first} {last}",
            "PER",
            "person",
            first=first,
            last=last,
            gender=gender,
            topic=topic,
            occupation=pick(rng, OCCUPATIONS[topic]),
            born=1940 + int(rng.random() * 64),
            born_city=born_city,
            city=pick(rng, self.cities),
            nationality=born_city["country"]["nationality"],
        )
        p.attrs["short"] = Entity(last, "PER", "person")
        return p

    def fresh_person(self, rng, topic: str | None = None, with_employer: bool = True) -> Entity:
        p = self._person(rng, topic, register=False)
        if with_employer:
            p.attrs["employer"] = self.org(rng, _TOPIC_ORG[p["topic"]], fresh_p=0.3)
        return p

    def person(self, rng, topic: str | None = None, fresh_p: float = 0.3) -> Entity:
        if rng.random() < fresh_p:
            return self.fresh_person(rng, topic)
        return pick(rng, self.by_topic[topic] if topic else self.persons)

    # -- misc -------------------------------------------------------------------------------
    def fresh_product(self, rng, unique: bool = False) -> Entity:
        w = self._word(rng, register=unique)
        model = pick(rng, _MODEL).format(d=2 + int(rng.random() * 8))
        return Entity(
            f"{w} {model}",
            "MISC",
            "product",
            kind=pick(rng, PRODUCT_KINDS),
            maker=pick(rng, self.orgs["company"]),
            year=2005 + int(rng.random() * 19),
            price=19 + int(rng.random() * 60) * 10,
        )

    def product(self, rng, fresh_p: float = 0.25) -> Entity:
        return self.fresh_product(rng) if rng.random() < fresh_p else pick(rng, self.products)

    def fresh_film(self, rng, unique: bool = False) -> Entity:
        def make():
            r = rng.random()
            if r < 0.45:
                return f"The {pick(rng, _TITLE_ADJ)} {pick(rng, _TITLE_NOUN)}"
            if r < 0.7:
                return f"{pick(rng, _TITLE_NOUN)} of {self._word(rng, False)}"
            if r < 0.85:
                return f"{pick(rng, _TITLE_ADJ)} {pick(rng, _TITLE_NOUN)}"
            return f"Return to {self._word(rng, False)}"

        title = self._unique(rng, make, register=unique)
        return Entity(
            title,
            "MISC",
            "film",
            genre=pick(rng, GENRES),
            director=self.person(rng, "culture", fresh_p=0.3),
            star=self.person(rng, "culture", fresh_p=0.3),
            year=1960 + int(rng.random() * 64),
        )

    def film(self, rng, fresh_p: float = 0.25) -> Entity:
        return self.fresh_film(rng) if rng.random() < fresh_p else pick(rng, self.films)

    def _event(self, rng, topic: str, register: bool = True) -> Entity:
        city = pick(rng, self.cities)
        w = self._word(rng, register)
        names = {
            "sports": (f"{city.name} Open", f"{city.name} Marathon", f"{w} Cup", f"{w} Grand Prix", f"{w} Games"),
            "culture": (
                f"{city.name} Film Festival",
                f"{w} Music Festival",
                f"{city.name} Book Fair",
                f"{w} Arts Festival",
            ),
            "politics": (f"{w} Summit", f"{w} Accord", f"{city.name} Conference"),
            "science": (f"{w} Science Forum", f"{city.name} Symposium", f"{w} Prize"),
            "business": (f"{city.name} Trade Fair", f"{w} Economic Forum", f"{w} Expo"),
        }[topic]
        return Entity(pick(rng, names), "MISC", "event", topic=topic, city=city)

    def event(self, rng, topic: str, fresh_p: float = 0.2) -> Entity:
        if rng.random() < fresh_p:
            return self._event(rng, topic, register=False)
        return pick(rng, self.events[topic])

    def misc_name(self, rng, pattern: str) -> Entity:
        """A one-off MISC name (album, journal, probe, ...): ``pattern`` uses ``{w}``."""
        return Entity(
            pattern.format(
                w=self._word(rng, False), d=2 + int(rng.random() * 8), a=pick(rng, _TITLE_ADJ), n=pick(rng, _TITLE_NOUN)
            ),
            "MISC",
            "misc",
        )


_ORG_TOPIC = {
    "company": "business",
    "club": "sports",
    "party": "politics",
    "institute": "science",
    "culture": "culture",
    "media": "culture",
}
_TOPIC_ORG = {
    "business": "company",
    "sports": "club",
    "politics": "party",
    "science": "institute",
    "culture": "culture",
}
