"""News-like stories in five topics, each with an exact one-sentence summary.

A story is built from an event *frame* (a match, a takeover, an election, ...): a lead sentence
states the core of the event, detail sentences add facts, topic "colour" sentences spread the
topic over a wide vocabulary, neutral sentences (weather, reporting, officials) are shared by
all topics, and sometimes one colour sentence of another topic is mixed in. The label is the
frame's topic. The summary is the frame's core plus the clauses of (up to two of) the detail
sentences the story contains, so it combines facts from different sentences and never equals
the lead.
"""

from __future__ import annotations

from .entities import TOPICS, World
from .text import Sentence, frag, make, pick, pool

MAX_STORY_WORDS = 85
P_CROSS_TOPIC = 0.45  # chance of a colour sentence of another topic (a second one: a third of it)

pool("day", "[Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday]")
pool("month", "[January|February|March|April|May|June|July|August|September|October|November|December]")
pool("intens", "[really|extremely|very|quite|truly|incredibly|rather|remarkably|genuinely]")
pool("beat", "[beat|defeated|overcame|edged past|saw off|outplayed]")
pool("said", "[said|told reporters|stated|explained|added]")

_NTH = ("first", "second", "third", "fourth", "fifth", "sixth")
_CUR = ("million euros", "million dollars", "million crowns", "million francs")


def _n(rng, lo: int, hi: int) -> int:
    return lo + int(rng.random() * (hi - lo + 1))


def ordinal(n: int) -> str:
    """1 -> '1st', 12 -> '12th', 23 -> '23rd'."""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _person_slots(prefix: str, p) -> dict:
    """``{x}`` full name, ``{x_s}`` surname, pronouns ``{x_he}``/``{x_his}``, nationality, job."""
    f = p["gender"] == "f"
    return {
        prefix: p,
        prefix + "_s": p["short"],
        prefix + "_he": "she" if f else "he",
        prefix + "_his": "her" if f else "his",
        prefix + "_nat": p["nationality"],
        prefix + "_occ": p["occupation"],
    }


def _two(rng, make_one):
    a = make_one()
    for _ in range(20):
        b = make_one()
        if b.name != a.name:
            return a, b
    return a, b  # pragma: no cover - vanishingly unlikely


class Frame:
    """An event type: slot set-up, lead templates, (detail, summary clause) pairs, summaries."""

    def __init__(self, topic, setup, leads, details, summaries):
        self.topic = topic
        self.setup = setup
        self.leads = leads
        self.details = details
        self.summaries = summaries


# --------------------------------------------------------------------------------- sports
def _match(rng, w: World) -> dict:
    team, opp = _two(rng, lambda: w.org(rng, "club"))
    sw = _n(rng, 1, 5)
    feat = pick(
        rng,
        (
            ("scored twice", "scoring twice"),
            ("scored the winning goal", "scoring the winner"),
            ("scored a hat-trick", "scoring a hat-trick"),
            ("scored a late goal", "scoring late"),
            ("scored from a free kick", "scoring from a free kick"),
        ),
    )
    s = {
        "team": team,
        "opp": opp,
        "score": f"{sw}-{_n(rng, 0, sw - 1)}",
        "feat": feat[0],
        "feat_s": feat[1],
        "city": team["city"],
        "crowd": _n(rng, 4, 80),
        "minute": ordinal(_n(rng, 11, 89)),
        "pos": pick(rng, _NTH[:4]),
        "coach": team["leader"],
    }
    s.update(_person_slots("scorer", w.person(rng, "sports")))
    s.update(P=s["scorer"], O=team, C=team["city"])
    return s


_MATCH = Frame(
    "sports",
    _match,
    (
        "{team} <beat> {opp} {score} [on <day>|in a [tense|lively|hard-fought|one-sided] [match|game|contest]|at home|away from home].",
        "{team} [claimed|secured|earned] a {score} [win|victory] over {opp} [on <day>|in their latest [match|fixture]].",
        "[A|An impressive|A dramatic|A narrow] {score} [win|victory] over {opp} [kept|put] {team} [in the title race|on course for the title|near the top of the league].",
    ),
    (
        (
            "The [match|game] was played in {city} [in front of|before] {crowd} thousand [fans|supporters|spectators].",
            " in {city}",
        ),
        (
            "The result [lifts|moves|takes] {team} to {pos} place in the [league|table|standings].",
            " to move {pos} in the league",
        ),
        (
            "{scorer} {feat} [for {team}|for the [home|visiting] side|] [in the {minute} minute|after the break|before half-time|late in the game].",
            ", with {scorer_s} {feat_s}",
        ),
        (
            "{coach}, the [coach|manager|head coach] of {team}, [praised|thanked|applauded] the [players|squad|defence|young team] [after the game|afterwards|on <day>].",
            None,
        ),
        (
            "{opp} [had a player sent off|missed a penalty|hit the post twice] [in the first half|in the second half|early on].",
            None,
        ),
    ),
    ("{team} <beat> {opp} {score}", "{team} [won|secured a win] {score} against {opp}"),
)


def _transfer(rng, w: World) -> dict:
    to, frm = _two(rng, lambda: w.org(rng, "club"))
    s = {
        "to": to,
        "frm": frm,
        "fee": _n(rng, 2, 95),
        "cur": pick(rng, _CUR),
        "years": f"{_n(rng, 2, 5)}-year",
        "goals": _n(rng, 3, 31),
        "num": _n(rng, 2, 30),
        "position": pick(rng, ("striker", "midfielder", "defender", "goalkeeper", "winger")),
        "coach": to["leader"],
        "city": to["city"],
    }
    s.update(_person_slots("pl", w.person(rng, "sports")))
    s.update(P=s["pl"], O=to, C=to["city"])
    return s


_TRANSFER = Frame(
    "sports",
    _transfer,
    (
        "{to} [have signed|have completed the signing of|agreed a deal for|announced the arrival of] {pl_nat} {position} {pl} [on <day>|this week|].",
        "{pl}, the {pl_nat} {position}, [has joined|has signed for|is moving to] {to} [after weeks of talks|this week|].",
    ),
    (
        ("{pl_he} [arrives|joins] from {frm}, where {pl_he} scored {goals} goals last season.", " from {frm}"),
        ("The [fee|transfer fee] is [reported to be|believed to be|said to be] {fee} {cur}.", " for {fee} {cur}"),
        (
            "{pl_he} signed a {years} contract [and will wear the number {num} shirt|with the club|on <day>].",
            " on a {years} contract",
        ),
        ("{coach} said the {position} would [strengthen|improve|bring energy to] the [squad|attack|team].", None),
        ("[Fans|Supporters] [welcomed|greeted] {pl_s} at the [training ground|airport] [in {city}|on <day>].", None),
    ),
    ("{to} signed {pl}", "{pl} joined {to}"),
)


def _race(rng, w: World) -> dict:
    ev = w.event(rng, "sports")
    s = {"event": ev, "city": ev["city"], "nth": pick(rng, _NTH[1:]), "gap": _n(rng, 2, 40)}
    s.update(_person_slots("ath", w.person(rng, "sports")))
    s.update(_person_slots("run", w.person(rng, "sports")))
    s.update(P=s["ath"], O=w.org(rng, "club"), C=ev["city"])
    return s


_RACE = Frame(
    "sports",
    _race,
    (
        "{ath} [won|took|claimed] the {event} [on <day>|this weekend|after a tense final].",
        "{ath_nat} {ath_occ} {ath} [won|took|claimed|triumphed at] the {event} [on <day>|].",
    ),
    (
        (
            "The [race|competition|tournament] [was held|took place] in {city} [on <day>|over the weekend|in hot weather].",
            " in {city}",
        ),
        ("{run} finished second, {gap} [seconds|points] behind.", " ahead of {run}"),
        ("It was {ath_his} {nth} [title|victory|win] [at the event|in three years|].", " for {ath_his} {nth} title"),
        (
            "{ath_s} [thanked|praised] {ath_his} [coach|team|family] and [said|told reporters] {ath_he} [would rest|planned to rest] [before the next race|for a week].",
            None,
        ),
    ),
    ("{ath} won the {event}",),
)


# --------------------------------------------------------------------------------- business
def _takeover(rng, w: World) -> dict:
    buyer, target = _two(rng, lambda: w.org(rng, "company"))
    big = rng.random() < 0.4
    s = {
        "buyer": buyer,
        "target": target,
        "price": _n(rng, 2, 9) if big else _n(rng, 20, 900),
        "unit": "billion" if big else "million",
        "cur": pick(rng, ("dollars", "euros", "crowns")),
        "city": buyer["city"],
        "pct": _n(rng, 3, 40),
        "ceo": buyer["leader"],
        "country": buyer["city"]["country"],
        "sector": target["sector"],
    }
    s.update(P=buyer["leader"], O=buyer, C=buyer["city"])
    return s


_TAKEOVER = Frame(
    "business",
    _takeover,
    (
        "{buyer} [has agreed to buy|will acquire|announced a deal to buy|is buying] [its rival|the smaller firm|the {sector} group|] {target}.",
        "{target} [has agreed to be|will be] [bought|acquired|taken over] by {buyer}, the companies [said|announced] [on <day>|].",
    ),
    (
        ("The deal values {target} at {price} {unit} {cur}.", " for {price} {unit} {cur}"),
        (
            "The [combined company|merged group|new business] will be based in {city}.",
            ", creating a group based in {city}",
        ),
        (
            "[Shares|The stock] of {target} [rose|jumped|climbed] {pct} percent [after the announcement|on the news|in early trading].",
            ", sending {target} shares up {pct} percent",
        ),
        (
            "{ceo}, the chief executive of {buyer}, said the [merger|takeover|acquisition] would [cut costs|expand its market share|open new markets|create jobs].",
            None,
        ),
        (
            "[Regulators|Competition authorities] in {country} [must still approve|still need to approve|will review] the deal.",
            None,
        ),
    ),
    ("{buyer} [agreed to buy|will acquire|is buying] {target}",),
)


def _earnings(rng, w: World) -> dict:
    co = w.org(rng, "company")
    up = rng.random() < 0.5
    s = {
        "co": co,
        "pct": _n(rng, 2, 45),
        "rev": _n(rng, 30, 990),
        "cur": pick(rng, ("dollars", "euros")),
        "ceo": co["leader"],
        "city": co["city"],
        "emp": _n(rng, 2, 60),
        "moved": "rose" if up else "fell",
        "dir_n": pick(rng, ("rise", "jump", "increase") if up else ("fall", "drop", "decline")),
        "cverb": "credited" if up else "blamed",
    }
    s["reason"] = frag(
        "[strong demand in {country}|higher prices|lower costs|a successful new product|growing exports]"
        if up
        else "[weak demand|rising energy costs|a strike at its plant in {city}|falling prices|a costly recall]",
        rng,
        {"country": co["city"]["country"], "city": co["city"]},
    )
    s.update(P=co["leader"], O=co, C=co["city"])
    return s


_EARNINGS = Frame(
    "business",
    _earnings,
    (
        "{co} reported a {pct} percent {dir_n} in [quarterly|annual|half-year] profit [on <day>|this week|].",
        "[Profit|Profits] at {co} {moved} {pct} percent in the [last quarter|past year|first half], the [company|firm] said.",
    ),
    (
        ("Revenue [reached|came in at|totalled] {rev} million {cur}.", ", on revenue of {rev} million {cur}"),
        ("The company {cverb} {reason}.", ", citing {reason}"),
        (
            "{ceo}, [its|the] chief executive, said [investors|shareholders] should expect [stronger|steady|weaker] [sales|growth|demand] next year.",
            None,
        ),
        ("Shares in {co} {moved} [sharply|slightly|] [in early trading|after the report].", None),
        (
            "The [firm|group|company], which is based in {city}, employs [about|nearly|more than] {emp} thousand people.",
            None,
        ),
    ),
    ("{co} reported a {pct} percent {dir_n} in profit", "Profit at {co} {moved} {pct} percent"),
)


def _ceo(rng, w: World) -> dict:
    co, prev = _two(rng, lambda: w.org(rng, "company"))
    s = {
        "co": co,
        "prev": prev,
        "years": _n(rng, 3, 25),
        "oyears": _n(rng, 4, 20),
        "city": co["city"],
        "old": co["leader"],
        "goods": pick(
            rng, ("software", "machinery", "medicines", "clothing", "furniture", "electronics", "frozen food", "steel")
        ),
    }
    s.update(_person_slots("new", w.person(rng, "business")))
    s.update(P=s["new"], O=co, C=co["city"])
    return s


_CEO = Frame(
    "business",
    _ceo,
    (
        "{co} [has appointed|named|has named] {new} [as|] its new chief executive [on <day>|].",
        "{new} will [become|take over as] chief executive of {co}, the [company|firm|group] [said|announced] [on <day>|this week].",
    ),
    (
        ("{new_s} previously [worked|spent] {years} years at {prev}.", " after {years} years at {prev}"),
        (
            "{new_he} replaces {old}, who [is retiring|stepped down|resigned] [in <month>|last month|after {oyears} years in the role].",
            ", replacing {old}",
        ),
        ("[Investors|Analysts] [welcomed|questioned] the [appointment|decision|choice] [on <day>|].", None),
        ("{co} is based in {city} and [makes|sells] {goods}.", None),
    ),
    ("{co} named {new} chief executive", "{new} became chief executive of {co}"),
)


# --------------------------------------------------------------------------------- politics
def _election(rng, w: World) -> dict:
    national = rng.random() < 0.6
    place = w.country(rng) if national else w.city(rng)
    winner = w.person(rng, "politics")
    party = winner["employer"] if winner["employer"].kind == "party" else w.org(rng, "party")
    s = {
        "place": place,
        "party": party,
        "pct": _n(rng, 38, 71),
        "turnout": _n(rng, 41, 88),
        "n": _n(rng, 5, 40),
        "kind": pick(rng, ("presidential", "parliamentary")) if national else "mayoral",
        "capital": place["capital"] if national else place,
        "promise": frag(
            "[cut taxes|build new schools|fight corruption|reform the health system|lower fuel prices|invest in railways|protect the coast]",
            rng,
        ),
    }
    s.update(_person_slots("win", winner))
    s.update(_person_slots("riv", w.person(rng, "politics")))
    s.update(P=winner, O=party, C=s["capital"])
    return s


_ELECTION = Frame(
    "politics",
    _election,
    (
        "{win} of the {party} [won|has won|claimed victory in] the {kind} election in {place}.",
        "[Voters|Citizens] in {place} [elected|chose] {win} in [the|a] {kind} election [on <day>|this weekend|].",
    ),
    (
        ("{win_s} [received|won|took] {pct} percent of the vote.", " with {pct} percent of the vote"),
        (
            "{riv} [conceded defeat|admitted defeat|congratulated {win_s}] [on <day>|late on <day>|in a short speech].",
            ", defeating {riv}",
        ),
        ("{win_he} [promised|pledged|vowed] to {promise}.", " on a promise to {promise}"),
        ("Turnout was {turnout} percent, [the highest|the lowest] in {n} years.", None),
        (
            "[Supporters|Crowds] [celebrated|gathered] [in the streets of {capital}|outside the party headquarters] [late into the night|on <day> evening].",
            None,
        ),
    ),
    ("{win} won the {kind} election in {place}",),
)


def _law(rng, w: World) -> dict:
    country = w.country(rng)
    s = {
        "country": country,
        "yes": _n(rng, 120, 260),
        "no": _n(rng, 40, 119),
        "field": pick(rng, ("health", "finance", "education", "transport", "environment", "justice")),
        "oparty": w.org(rng, "party"),
        "policy": frag(
            "[raise the minimum wage|ban plastic bags|protect old forests|lower the voting age|reform pensions|expand public transport|limit rents in cities]",
            rng,
        ),
    }
    s.update(_person_slots("min", w.person(rng, "politics")))
    s.update(P=s["min"], O=s["oparty"], C=country["capital"])
    return s


_LAW = Frame(
    "politics",
    _law,
    (
        "[Lawmakers|The parliament|The national assembly] in {country} [passed|approved|voted for] a [law|bill] to {policy}.",
        "{country} will {policy} after [lawmakers|parliament|the assembly] [approved|passed] a new [law|bill] [on <day>|this week|].",
    ),
    (
        ("It passed by {yes} votes to {no}.", " by {yes} votes to {no}"),
        (
            "The {oparty} said it would [challenge|oppose|fight] the law [in court|at the next election|].",
            " despite opposition from the {oparty}",
        ),
        (
            "The [bill|measure|proposal] was [introduced|drafted|proposed] by {min}, the {field} minister.",
            ", a measure proposed by {min}",
        ),
        ("[The law|It] will take effect in <month>.", None),
        (
            "[Critics|Campaigners|Business groups] [warned|argued] that the [change|law] [would cost too much|came too late|went too far].",
            None,
        ),
    ),
    ("{country} passed a law to {policy}", "Lawmakers in {country} approved a law to {policy}"),
)


def _visit(rng, w: World) -> dict:
    c1, c2 = _two(rng, lambda: w.country(rng))
    s = {
        "country1": c1,
        "country2": c2,
        "city2": c2["capital"],
        "role": pick(rng, ("president", "prime minister", "foreign minister")),
        "hrole": pick(rng, ("president", "prime minister", "foreign minister")),
        "area": frag("[trade|energy|security|climate policy|fishing rights|migration|rail links]", rng),
        "event": w.event(rng, "politics"),
    }
    s.update(_person_slots("lead", w.person(rng, "politics")))
    s.update(_person_slots("host", w.person(rng, "politics")))
    s.update(P=s["lead"], O=w.org(rng, "party"), C=s["city2"])
    return s


_VISIT = Frame(
    "politics",
    _visit,
    (
        "{lead}, the {role} of {country1}, [arrived in|visited|travelled to] {city2} [for talks|for a two-day visit|on <day>].",
        "The {role} of {country1}, {lead}, [began|started] a visit to {city2} [on <day>|this week|].",
    ),
    (
        ("{lead_s} [met|held talks with] {host}, the {hrole} of {country2}.", " to meet {host}"),
        ("The two [sides|governments|leaders] signed an agreement on {area}.", " and signed an agreement on {area}"),
        ("The visit [came ahead of|was part of preparations for] the {event}.", None),
        (
            "[Protesters|A small crowd] gathered outside the [ministry|parliament|hotel] [during the talks|on <day>].",
            None,
        ),
    ),
    ("{lead} visited {city2}", "{lead} travelled to {city2}"),
)


# --------------------------------------------------------------------------------- science
def _discovery(rng, w: World) -> dict:
    inst = w.org(rng, "institute")
    city = w.city(rng)
    kind = int(rng.random() * 3)
    thing = (
        "a new species of [frog|beetle|orchid|deep-sea fish|bat|lizard]",
        "a [distant|small|cold|young] [planet|comet|galaxy|star]",
        "a [new|rare] [mineral|crystal]",
    )[kind]
    where = ("in the forests near {city}", "with a telescope in {city}", "in a mine near {city}")[kind]
    s = {
        "inst": inst,
        "thing": frag(thing, rng),
        "where": frag(where, rng, {"city": city}),
        "journal": w.misc_name(rng, pick(rng, ("Journal of {w} Studies", "{w} Review", "Annals of {w} Science"))),
        "n": _n(rng, 2, 12),
        "m": _n(rng, 2, 40),
        "cur": pick(rng, _CUR),
    }
    s.update(_person_slots("sci", w.person(rng, "science")))
    s.update(P=s["sci"], O=inst, C=city)
    return s


_DISCOVERY = Frame(
    "science",
    _discovery,
    (
        "[Researchers|Scientists|A team] at {inst} [have discovered|identified|found|described] {thing}.",
        "{thing} has been [discovered|identified] by [researchers|scientists] at {inst}.",
    ),
    (
        ("[The discovery|The find|It] was made {where}.", " {where}"),
        ("The team was led by {sci}, a {sci_occ} [from {C}|at the institute|].", ", in work led by {sci}"),
        (
            "The [results|findings] were published in {journal} [on <day>|this week|].",
            ", according to a study in {journal}",
        ),
        ("[The research|The project|The fieldwork] took {n} years [and cost {m} {cur}|].", None),
        (
            "{sci_s} said [more|further] [work|surveys|observations] would be needed [to confirm the result|to understand it].",
            None,
        ),
    ),
    ("[Researchers|Scientists] at {inst} discovered {thing}",),
)


def _mission(rng, w: World) -> dict:
    agency = w.org(rng, "institute")
    s = {
        "agency": agency,
        "craft": pick(rng, ("satellite", "probe", "space telescope")),
        "probe": w.misc_name(rng, pick(rng, ("{w} {d}", "{w}", "{a} {w}"))),
        "site": w.city(rng),
        "yrs": _n(rng, 2, 12),
        "m": _n(rng, 40, 900),
        "n": _n(rng, 3, 15),
        "cur": pick(rng, _CUR),
        "target": frag(
            "[the sun|the ocean currents|melting ice sheets|distant galaxies|the weather|dust storms|the moon]", rng
        ),
    }
    s.update(_person_slots("sci", w.person(rng, "science")))
    s.update(P=s["sci"], O=agency, C=s["site"])
    return s


_MISSION = Frame(
    "science",
    _mission,
    (
        "The {agency} [launched|has launched|sent up] [its new|a new] {craft}, {probe}, [on <day>|this week|early on <day>].",
        "A rocket carrying the {probe} {craft} of the {agency} lifted off [on <day>|early on <day>|this week].",
    ),
    (
        (
            "The [rocket|spacecraft|launch] [lifted off|took off|left] from a site near {site}.",
            " from a site near {site}",
        ),
        ("It will study {target} for {yrs} years.", " to study {target}"),
        ("The mission is led by {sci}, [a|an experienced] {sci_occ} at the {agency}.", None),
        ("[The {craft}|It] cost {m} {cur} [to build|and took {n} years to build].", None),
    ),
    ("The {agency} launched the {craft} {probe}",),
)


def _study(rng, w: World) -> dict:
    inst = w.org(rng, "institute")
    s = {
        "inst": inst,
        "country": w.country(rng),
        "n": _n(rng, 2, 90),
        "yrs": _n(rng, 2, 20),
        "finding": frag(
            "[daily walks|drinking tea|sleeping longer|eating fish|learning music|living near parks] [may|can|could] [lower|reduce] the risk of [heart disease|memory loss|diabetes|depression|back pain]",
            rng,
        ),
        "journal": w.misc_name(rng, pick(rng, ("Journal of {w} Medicine", "{w} Health Review"))),
    }
    s.update(_person_slots("sci", w.person(rng, "science")))
    s.update(P=s["sci"], O=inst, C=inst["city"])
    return s


_STUDY = Frame(
    "science",
    _study,
    (
        "A [new|large|long] study by {inst} [found|suggests|shows] that {finding}.",
        "{finding}, according to a [new|large] study by {inst}.",
    ),
    (
        (
            "[The researchers|The scientists|The team] followed {n} thousand [people|adults|volunteers] [in {country}|for {yrs} years].",
            ", based on data from {n} thousand people",
        ),
        ("The study was led by {sci} and published in {journal}.", ", in research led by {sci}"),
        (
            "[Other experts|Some doctors] said the [results|findings] [should be treated with caution|were encouraging].",
            None,
        ),
        ("{sci_s} [said|stressed] that [more research|a larger trial] [is needed|would follow].", None),
    ),
    ("A study by {inst} found that {finding}",),
)


# --------------------------------------------------------------------------------- culture
def _award(rng, w: World) -> dict:
    film = w.film(rng)
    fest = w.event(rng, "culture")
    s = {
        "film": film,
        "director": film["director"],
        "star": film["star"],
        "genre": film["genre"],
        "festival": fest,
        "city": fest["city"],
        "n": _n(rng, 3, 40),
        "prize": frag("[the top prize|the best film award|the main award|the audience award|the jury prize]", rng),
        "role": frag("[lonely|young|retired|stubborn] [teacher|sailor|detective|farmer|pianist|nurse]", rng),
    }
    s.update(P=film["director"], O=w.org(rng, "culture"), C=fest["city"])
    return s


_AWARD = Frame(
    "culture",
    _award,
    (
        "{film}, [the new film|the latest film|the new {genre}] by {director}, won {prize} at the {festival}.",
        "[The new film|The latest {genre}] by {director}, {film}, [won|took|was awarded] {prize} at the {festival}.",
    ),
    (
        ("The festival [took place|was held] in {city} [this week|last week|over the weekend].", " in {city}"),
        ("The [film|story] stars {star} as a {role}.", ", with {star} in the lead role"),
        ("[Critics|Reviewers|Audiences] [praised|admired] its [score|photography|script|costumes].", None),
        ("It will [open|be released] in {n} countries [next month|in the spring|later this year].", None),
    ),
    ("{film} won {prize} at the {festival}", "{director}'s film {film} won {prize} at the {festival}"),
)


def _exhibition(rng, w: World) -> dict:
    museum = w.org(rng, "culture")
    if not any(k in museum.name for k in ("Gallery", "Museum")):
        museum = w.misc_name(rng, "{w} Gallery")
        museum.etype, museum.kind = "ORG", "culture"
        museum.tags = ("B-ORG",) + ("I-ORG",) * (len(museum.tokens) - 1)
        museum.the = True
    s = {
        "museum": museum,
        "n": _n(rng, 12, 240),
        "yrs": _n(rng, 5, 50),
        "month": pick(rng, ("January", "March", "May", "July", "September", "November")),
        "medium": pick(rng, ("paintings", "sculptures", "photographs", "drawings", "prints")),
    }
    s.update(_person_slots("art", w.person(rng, "culture")))
    s.update(_person_slots("cur", w.person(rng, "culture")))
    s.update(P=s["art"], O=museum, C=w.city(rng))
    return s


_EXHIBITION = Frame(
    "culture",
    _exhibition,
    (
        "The {museum} [opened|has opened|unveiled] an exhibition of {medium} by {art} [on <day>|this week|].",
        "[An exhibition|A major show|A new exhibition] of {medium} by {art_nat} {art_occ} {art} [opened|has opened] at the {museum}.",
    ),
    (
        (
            "The show [includes|brings together|features] {n} works [made over {yrs} years|from private collections|].",
            ", featuring {n} works",
        ),
        ("It [runs|will run|is open] until {month}.", ", running until {month}"),
        (
            "{cur}, who organised the show, called {art_s} [a pioneer|one of the great artists of {art_his} generation].",
            None,
        ),
        ("[Entry|Admission] is free [for students|on Sundays|for children].", None),
    ),
    ("The {museum} opened an exhibition of {medium} by {art}",),
)


def _album(rng, w: World) -> dict:
    s = {
        "album": w.misc_name(rng, pick(rng, ("{a} {n}", "The {n}", "{w}", "{n} of {w}"))),
        "label": w.org(rng, "culture"),
        "city": w.city(rng),
        "n": _n(rng, 8, 16),
        "n2": _n(rng, 5, 30),
        "nth": pick(rng, ("new", "latest", "second", "third", "fifth")),
    }
    s.update(_person_slots("sing", w.person(rng, "culture")))
    s.update(P=s["sing"], O=s["label"], C=s["city"])
    return s


_ALBUM = Frame(
    "culture",
    _album,
    (
        "{sing} [released|has released] {sing_his} {nth} album, {album}, [on <day>|this week|last month].",
        "[The new album|The latest record] by {sing}, {album}, [came out|was released|went on sale] [on <day>|this week].",
    ),
    (
        (
            "[It|The record] [has|contains|features] {n} [songs|tracks] and was recorded in {city}.",
            ", recorded in {city}",
        ),
        (
            "{sing_s} will [tour|play concerts in] {n2} cities [starting in <month>|later this year|next spring].",
            ", and announced a tour of {n2} cities",
        ),
        ("The album was [produced|released] by {label}.", None),
        ("[Fans|Critics] [welcomed|discussed] the [new sound|lyrics|songs] [online|on the radio|].", None),
    ),
    ("{sing} released the album {album}",),
)


# ------------------------------------------------------------- hybrid frames (harder topics)
# Each borrows the entities and much of the vocabulary of another topic; the event decides.
def _sponsor(rng, w: World) -> dict:
    co, club = w.org(rng, "company"), w.org(rng, "club")
    s = {
        "co": co,
        "club": club,
        "years": f"{_n(rng, 2, 6)}-year",
        "fee": _n(rng, 2, 60),
        "cur": pick(rng, _CUR),
        "pct": _n(rng, 2, 15),
        "ceo": co["leader"],
        "city": club["city"],
    }
    s.update(P=co["leader"], O=co, C=club["city"])
    return s


_SPONSOR = Frame(
    "business",
    _sponsor,
    (
        "{co} [signed|agreed|announced] a {years} sponsorship deal with {club} [on <day>|this week|].",
        "{club} will wear the name of {co} on their shirts under a {years} [sponsorship|marketing] deal.",
    ),
    (
        (
            "The deal is worth {fee} {cur} a year, [according to|said] people familiar with it.",
            " worth {fee} {cur} a year",
        ),
        (
            "Shares in {co} [rose|climbed|gained] {pct} percent after the announcement.",
            ", lifting its shares {pct} percent",
        ),
        ("{ceo}, the chief executive of {co}, said the [club|team] and its fans fit the brand.", None),
        ("The company hopes the deal will [lift sales|raise its profile|win new customers] in {city}.", None),
    ),
    ("{co} signed a sponsorship deal with {club}",),
)


def _stadium(rng, w: World) -> dict:
    country = w.country(rng)
    s = {
        "country": country,
        "m": _n(rng, 40, 900),
        "cur": pick(rng, _CUR),
        "n": _n(rng, 2, 9),
        "event": w.event(rng, "sports"),
        "oparty": w.org(rng, "party"),
        "city": country["capital"],
        "yes": _n(rng, 120, 260),
        "no": _n(rng, 40, 119),
    }
    s.update(_person_slots("min", w.person(rng, "politics")))
    s.update(P=s["min"], O=s["oparty"], C=country["capital"])
    return s


_STADIUM = Frame(
    "politics",
    _stadium,
    (
        "The government of {country} will spend {m} {cur} on {n} new stadiums [before the {event}|over the next decade].",
        "[Lawmakers|Parliament] in {country} [approved|voted for] {m} {cur} of public money for new stadiums and sports halls.",
    ),
    (
        ("{min}, the sports minister, [announced|presented] the plan in {city}.", ", a plan presented by {min}"),
        ("The budget passed by {yes} votes to {no}.", " by {yes} votes to {no}"),
        (
            "The {oparty} called the spending [wasteful|a mistake|unfair to taxpayers].",
            " despite criticism from the {oparty}",
        ),
        ("[Fans|Clubs|Athletes] [welcomed|praised] the [decision|vote|budget], [the minister|officials] said.", None),
    ),
    ("{country} will spend {m} {cur} on new stadiums",),
)


def _injury(rng, w: World) -> dict:
    club = w.org(rng, "club")
    s = {
        "inst": w.org(rng, "institute"),
        "club": club,
        "sport": club["sport"],
        "n": _n(rng, 30, 400),
        "pct": _n(rng, 10, 60),
        "journal": w.misc_name(rng, pick(rng, ("Journal of {w} Medicine", "{w} Sports Science Review"))),
    }
    s.update(_person_slots("sci", w.person(rng, "science")))
    s.update(P=s["sci"], O=s["inst"], C=club["city"])
    return s


_INJURY = Frame(
    "science",
    _injury,
    (
        "[Scientists|Researchers] at {inst} have developed a [new test|blood test|scan] that [predicts|detects] knee injuries in {sport} players.",
        "A [new test|scan] [developed|designed] at {inst} can [predict|spot] knee injuries in {sport} players, [researchers|scientists] say.",
    ),
    (
        ("The test was tried on {n} players from {club}.", ", tested on players from {club}"),
        (
            "It [predicted|caught] {pct} percent more injuries than [older methods|standard checks].",
            ", catching {pct} percent more injuries than older methods",
        ),
        ("The [method|work] was [described|published] in {journal} by {sci} and [colleagues|co-workers].", None),
        ("{sci_s} said coaches could use it to [rest players|plan training] [before|during] the season.", None),
    ),
    ("Researchers at {inst} developed a test for knee injuries in {sport} players",),
)


def _documentary(rng, w: World) -> dict:
    co = w.org(rng, "company")
    fest = w.event(rng, "culture")
    s = {
        "film": w.misc_name(rng, pick(rng, ("The {a} {n}", "{n} of {w}", "The {w} Files"))),
        "co": co,
        "exec": co["leader"],
        "festival": fest,
        "city": fest["city"],
        "n": _n(rng, 70, 150),
        "topic": frag("[rise and fall|founder|collapse|early years]", rng),
    }
    s.update(_person_slots("dir", w.person(rng, "culture")))
    s.update(P=s["dir"], O=co, C=fest["city"])
    return s


_DOCUMENTARY = Frame(
    "culture",
    _documentary,
    (
        "{film}, a documentary by {dir} about the {topic} of {co}, [premiered|was shown for the first time] at the {festival}.",
        "A new documentary about {co}, {film}, by {dir_occ} {dir}, opened the {festival}.",
    ),
    (
        ("The film follows {exec}, the chief executive of {co}.", ", following {exec}"),
        ("The festival [took place|was held] in {city} [this week|over the weekend].", " in {city}"),
        (
            "[Audiences|Critics|Viewers] [applauded|discussed] its [interviews|editing|music] [at length|after the screening].",
            None,
        ),
        ("The documentary runs for {n} minutes and [took|needed] [three|four|two] years to make.", None),
    ),
    ("{dir}'s documentary {film} premiered at the {festival}",),
)


def _charity_run(rng, w: World) -> dict:
    ev = w.event(rng, "sports")
    role = pick(rng, ("mayor", "finance minister", "chief executive", "senator"))
    s = {
        "event": ev,
        "city": ev["city"],
        "role": role,
        "mins": _n(rng, 3, 5),
        "sec": _n(rng, 10, 59),
        "m": _n(rng, 5, 300),
        "pos": ordinal(_n(rng, 20, 900)),
    }
    s.update(_person_slots("run", w.person(rng, "business" if role == "chief executive" else "politics")))
    s.update(P=s["run"], O=w.org(rng, "club"), C=ev["city"])
    return s


_CHARITY_RUN = Frame(
    "sports",
    _charity_run,
    (
        "{run}, the {role}, [finished|completed|ran] the {event} in {mins} hours and {sec} minutes [on <day>|].",
        "The {role} {run} [finished|completed] the {event} [on <day>|at the weekend] in {mins} hours and {sec} minutes.",
    ),
    (
        ("{run_s} [came|finished] {pos} among thousands of runners.", ", finishing {pos}"),
        (
            "{run_he} [raised|collected] {m} thousand euros for a hospital in {city}.",
            " and raised {m} thousand euros for charity",
        ),
        ("{run_he} [trained|practised] [every morning|for six months] [with a coach|with a local club].", None),
        (
            "The [race|marathon|event] [was won by|went to] a [young|local|veteran] runner in [record time|hot weather].",
            None,
        ),
    ),
    ("{run} completed the {event}",),
)

FRAMES = {
    "sports": (_MATCH, _TRANSFER, _RACE, _CHARITY_RUN),
    "business": (_TAKEOVER, _EARNINGS, _CEO, _SPONSOR),
    "politics": (_ELECTION, _LAW, _VISIT, _STADIUM),
    "science": (_DISCOVERY, _MISSION, _STUDY, _INJURY),
    "culture": (_AWARD, _EXHIBITION, _ALBUM, _DOCUMENTARY),
}

# Topic colour: spread each topic over many words. Slots: {P} person, {O} organisation, {C} city.
COLOUR = {
    "sports": (
        "[Fans|Supporters] [celebrated|cheered|sang] [in the streets|outside the stadium] [late into the night|after the final whistle|for hours].",
        "The [squad|team|players] [will train|trained] [twice a day|hard|in {C}] ahead of the next [fixture|match|round].",
        "[An injury|A knee injury|A hamstring problem] [kept|ruled] {P} out of [training|the squad] [last month|earlier this season|for three weeks].",
        "The [league|championship|season] [resumes|continues] [next week|on <day>|after a short break].",
        "[Tickets|Season tickets] for the next [home game|match|final] [sold out|were sold out] [within hours|in minutes].",
        "The [referee|umpire] [was criticised|faced criticism] for [several decisions|a late penalty|a red card].",
        "[Coaches|Pundits|Former players] [expect|predict] a [tight|close|fierce] [title race|fight for the title|battle for promotion].",
        "{O} have [won|lost] [four|five|six|three] of their last [seven|eight|ten] [matches|games].",
    ),
    "business": (
        "[Analysts|Economists|Investors] [expect|predict] [demand|growth|sales] to [slow|recover|improve] [next quarter|this year|in the coming months].",
        "[Markets|The stock market|The main index] [closed|ended the day|finished] [higher|lower|flat] [on <day>|in {C}].",
        "The [firm|group|company] [plans to|hopes to|intends to] [hire|cut] [hundreds of|several hundred|about two thousand] [jobs|workers|staff] [in {C}|next year].",
        "[Interest rates|Energy prices|Shipping costs] [remain|have remained] [high|volatile|a concern] for [retailers|manufacturers|exporters].",
        "[Shareholders|The board] will [vote on|discuss] the [plan|proposal|dividend] at [a meeting|the annual meeting] in <month>.",
        "{O} [reported|posted] [steady|record|weaker] [sales|exports|orders] [in {C}|last year].",
        "[Bond yields|Oil prices|Currency markets] [moved|swung] [sharply|little] [after the central bank spoke|on <day>].",
    ),
    "politics": (
        "[Opposition leaders|Critics|Campaigners] [accused|criticised] the government [of ignoring voters|over rising prices|over its budget plans].",
        "The [cabinet|government|coalition] will [meet|debate the issue|discuss the plan] [next week|on <day>].",
        "[Protesters|Demonstrators|Hundreds of people] [marched|gathered|rallied] [outside parliament|in central {C}|near the ministry] [on <day>|this week].",
        "[Polls|Opinion polls|Surveys] [suggest|show] that [support for the government|trust in politicians] has [fallen|risen|held steady].",
        "{P} [called for|demanded] [new elections|an inquiry|a public debate] [on the matter|before the summer].",
        "[Diplomats|Officials] [from both countries|in {C}] [declined to comment|refused to comment] [on the talks|on the vote].",
        "The [ruling party|coalition|minority government] [holds|controls] [a narrow majority|most seats] in parliament.",
    ),
    "science": (
        "[The experiment|The data|The results] [could help|may help] [doctors|engineers|researchers] [predict|understand|prevent] [earthquakes|disease|floods|droughts].",
        "[Funding|The grant|Money for the work] [came from|was provided by] {O}.",
        "[Further|More] [tests|trials|observations|experiments] are [planned|expected] [next year|later this year|in <month>].",
        "[Colleagues|Other scientists|Experts] [called|described] the [work|result|method] [a breakthrough|an important step|a first].",
        "{P} [has studied|has worked on] the [problem|question|subject] for [more than|nearly|about] [ten|twenty|fifteen] years.",
        "The [laboratory|research centre] in {C} [uses|built] [a new microscope|powerful computers|a large telescope].",
        "[Samples|Measurements|Images] were [analysed|checked|compared] by [several|three|two] independent [labs|teams].",
    ),
    "culture": (
        "[Tickets|Seats] [sold out|were sold out] [within hours|in minutes|weeks in advance].",
        "[The audience|The crowd|Viewers] [responded with|gave] [a standing ovation|long applause].",
        "[Critics|Reviewers] [described|called] the [show|work|performance] [bold|moving|ambitious|daring].",
        "{P} [first became known|rose to fame] [in the 1990s|in the 1980s|in the early 2000s].",
        "The [festival|venue|theatre] [attracts|welcomes] [thousands of|many] [visitors|fans] [every year|each summer].",
        "[Rehearsals|Filming|Recording] [took|lasted] [six|eight|ten] [weeks|months] in {C}.",
        "[A documentary|A book|A retrospective] about {P} is [planned|in preparation] for [next year|the autumn].",
    ),
}

NEUTRAL = (
    "The [announcement|news] came [on <day>|late on <day>|early on <day>].",
    "[More details|Further information] [are expected|will be released|will follow] [later this week|in the coming days|next month].",
    "{C} [has a population of|is home to] about {pop} thousand people.",
    "The weather in {C} [was|remained|stayed] [mild|cold|warm|wet] [throughout the day|all week|on <day>].",
    "[Local|National] [media|newspapers|television] [reported|covered] the story [widely|at length|on <day>].",
    "[According to|As reported by] the {media}, [the news|the decision|the event] [surprised|did not surprise] [many|most|few] [observers|residents|people].",
    "It was [a busy|a quiet|an unusual] [week|day|month] in {C}.",
    "[Officials|A spokesperson|A spokesman] [in {C}|for the city] [declined to give|did not give] [further details|more details|a date].",
    "{C} is a city in {country}.",
    "The story was first reported by the {media}.",
)


def _generic_slots(rng, w: World, topic: str) -> dict:
    return {"P": w.person(rng, topic), "O": w.topic_org(rng, topic), "C": w.city(rng)}


def story(rng, w: World, topic: str) -> tuple[list[Sentence], str]:
    """One story of ``topic``: its sentences and its one-sentence summary."""
    frame = pick(rng, FRAMES[topic])
    slots = frame.setup(rng, w)
    lead = make(pick(rng, frame.leads), rng, slots)
    n_details = 2 + (rng.random() < 0.5)
    order = list(range(len(frame.details)))
    rng.shuffle(order)
    chosen = order[:n_details]
    if all(frame.details[i][1] is None for i in chosen):
        chosen[0] = next(i for i in order if frame.details[i][1] is not None)
    body: list[tuple[int, int, Sentence]] = []  # (drop priority, detail index or -1, sentence)
    for i in chosen:
        body.append((3, i, make(frame.details[i][0], rng, slots)))
    for tpl in _sample(rng, COLOUR[topic], 1 + (rng.random() < 0.5)):
        body.append((2, -1, make(tpl, rng, slots)))
    for _ in range((rng.random() < P_CROSS_TOPIC) + (rng.random() < P_CROSS_TOPIC / 3)):
        other = pick(rng, [t for t in TOPICS if t != topic])
        body.append((1, -1, make(pick(rng, COLOUR[other]), rng, _generic_slots(rng, w, other))))
    city = slots["C"]
    nslots = {
        "C": city,
        "pop": city["population"],
        "country": city["country"],
        "media": w.org(rng, "media", fresh_p=0.0),
    }
    for tpl in _sample(rng, NEUTRAL, int(rng.random() * 3)):
        body.append((0, -1, make(tpl, rng, nslots)))
    rng.shuffle(body)
    # keep within MAX_STORY_WORDS: drop neutral, then cross-topic, then colour sentences
    total = len(lead.tokens) + sum(len(s.tokens) for _, _, s in body)
    for prio in (0, 1, 2):
        while total > MAX_STORY_WORDS:
            idx = next((k for k, b in enumerate(body) if b[0] == prio), None)
            if idx is None:
                break
            total -= len(body[idx][2].tokens)
            body.pop(idx)
    sentences = [lead] + [s for _, _, s in body]
    included = sorted(i for _, i, _ in body if i >= 0 and frame.details[i][1] is not None)
    summary_src = pick(rng, frame.summaries) + "".join(frame.details[i][1] for i in included[:2]) + "."
    summary = make(summary_src, rng, slots)
    return sentences, summary


def _sample(rng, seq, k: int) -> list:
    idx = list(range(len(seq)))
    rng.shuffle(idx)
    return [seq[i] for i in idx[:k]]


__all__ = ["FRAMES", "COLOUR", "NEUTRAL", "MAX_STORY_WORDS", "story"]
