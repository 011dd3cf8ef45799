"""Translation: records `{"source": str, "target": str}`, a prefix LM on a causal backbone
(`prefix_lm.py`). Metrics: BLEU (primary) and chrF (sacrebleu), 0–100. Baselines: the source
copied (`baseline: copy`), or — on the built-in world — word by word through its lexicon
(`lexicon`). Built-in world task: `translation` (English → the world's rule-made target language).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lmforge.data.world import Made, WorldTask
from lmforge.data.world.text import render
from lmforge.data.world.translation import NOUNS, VERBS, Lexicon, pair
from lmforge.errors import ConfigError, DataError
from lmforge.schema import setting
from lmforge.tasks import register
from lmforge.tasks.prefix_lm import PrefixLMConfig, PrefixLMFamily

_TOKEN = re.compile(r"\w+(?:'\w+)?|[^\w\s]")


@dataclass
class TranslationConfig(PrefixLMConfig):
    baseline: str = setting("copy", choices=("copy", "lexicon"), eval_only=True)

    def check(self, key: str) -> None:
        if self.baseline == "lexicon" and self.data.source != "builtin":
            raise ConfigError(
                f"{key}.baseline=lexicon needs the built-in world's lexicon "
                f"({key}.data.source=builtin): use baseline=copy"
            )


def _translation(rng, ctx, label, i) -> Made:
    src, tgt = pair(rng, ctx.w, ctx.lex)
    return Made({"source": src, "target": tgt}, src, sentences=(src, tgt))


def translation_scores(predictions: list[str], references: list[str]) -> dict[str, float]:
    """Corpus BLEU (13a tokenisation) and chrF (sacrebleu), 0–100."""
    import sacrebleu

    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references")
    return {
        "bleu": float(sacrebleu.corpus_bleu(predictions, [references]).score),
        "chrf": float(sacrebleu.corpus_chrf(predictions, [references]).score),
    }


def word_by_word(sources: list[str], seed: int) -> list[str]:
    """The translation baseline of the built-in world: every English word replaced by its target
    word (nouns with the plural suffix when plural; verbs with the present suffix, or the past
    suffix for a past form), unknown words (names, auxiliaries) copied, English word order kept."""
    lex = Lexicon(seed)
    forms = dict(lex.words)
    forms["an"] = lex.words["a"]
    for sg, pl in NOUNS.items():
        forms[pl] = lex.words[sg] + lex.suffix["plural"]
    for base, (third, past) in VERBS.items():
        forms[base] = forms[third] = lex.words[base] + lex.suffix["present"]
        forms[past] = lex.words[base] + lex.suffix["past"]
    out = []
    for src in sources:
        toks = [forms.get(t.lower(), t) for t in _TOKEN.findall(src)]
        if toks:
            toks[0] = toks[0][:1].upper() + toks[0][1:]
        out.append(render(toks)[0])
    return out


@register("translation")
class Translation(PrefixLMFamily):
    config_class = TranslationConfig
    source, target = "source", "target"
    fields = {"source": str, "target": str}
    metrics = ("bleu", "chrf")
    world_tasks = {"translation": WorldTask(_translation)}
    description = {
        "model": "prefix LM: source <sep> target <eos>, greedy or beam decoding",
        "metric": "BLEU / chrF (sacrebleu)",
        "baseline": "word by word through the world's lexicon (or the source copied)",
    }
    serves = {"inputs": ["source"], "output": "translation"}

    def record(self, row, where):
        data_cfg = self.config.data
        pair_col = data_cfg.columns.get("translation", "translation")
        if pair_col in row and isinstance(row[pair_col], dict):  # wmt16-style {"de": .., "en": ..}
            langs = row[pair_col]
            try:
                row = {"source": langs[data_cfg.source_lang], "target": langs[data_cfg.target_lang]}
            except KeyError as exc:
                raise DataError(f"{where}: translation has no language {exc} (has {sorted(langs)})") from None
        rec = super().record(row, where)
        if not all(isinstance(v, str) and v.strip() for v in rec.values()):
            raise DataError(f"{where}: empty source or target")
        return rec

    def scores(self, predictions, records, head):
        return translation_scores(predictions, [r["target"] for r in records])

    def baseline(self, train, test, head, seed):
        if self.config.baseline == "lexicon":
            return word_by_word([r["source"] for r in test], seed)
        return [r["source"] for r in test]
