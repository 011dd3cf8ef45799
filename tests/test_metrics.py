"""Task metrics (each in its family's module) against values computed by hand."""

import pytest
import torch

from lmforge.tasks.base import sentences
from lmforge.tasks.classification import scores as classification_scores
from lmforge.tasks.qa import squad_scores
from lmforge.tasks.summarization import rouge_scores
from lmforge.tasks.tagging import entity_scores, iob1_to_iob2
from lmforge.tasks.translation import translation_scores


def test_accuracy_and_macro_f1_by_hand():
    s = classification_scores(torch.tensor([0, 1, 1]), torch.tensor([0, 1, 0]), 2)
    # class 0: P 1/1, R 1/2 -> F 2/3; class 1: P 1/2, R 1/1 -> F 2/3
    assert s == {"accuracy": pytest.approx(2 / 3), "macro_f1": pytest.approx(2 / 3)}
    s = classification_scores(torch.tensor([0, 0, 0, 0]), torch.tensor([0, 0, 0, 1]), 2)
    # class 1 never predicted: F 0; class 0: P 3/4, R 1 -> F 6/7
    assert s["accuracy"] == pytest.approx(0.75) and s["macro_f1"] == pytest.approx(3 / 7)


def test_iob1_to_iob2():
    # CoNLL-2003 style: I- opens an entity; B- only separates two adjacent entities of one type
    assert iob1_to_iob2(["I-PER", "I-PER", "O", "I-LOC", "B-LOC", "I-ORG"]) == [
        "B-PER",
        "I-PER",
        "O",
        "B-LOC",
        "B-LOC",
        "B-ORG",
    ]
    assert iob1_to_iob2(["B-PER", "I-PER", "O"]) == ["B-PER", "I-PER", "O"]  # IOB2 stays as it is


def test_entity_scores_by_hand():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O"]]
    pred = [["B-PER", "I-PER", "O", "B-ORG"], ["B-ORG", "O"]]
    # gold entities: PER(0-1), LOC(3), ORG(0); predicted: PER(0-1), ORG(3), ORG(0) -> 2 of 3 right
    s = entity_scores(gold, pred)
    assert s["precision"] == pytest.approx(2 / 3) and s["recall"] == pytest.approx(2 / 3)
    assert s["f1"] == pytest.approx(2 / 3)
    # a span cut short is wrong at entity level
    s = entity_scores([["B-PER", "I-PER"]], [["B-PER", "O"]])
    assert s["f1"] == 0.0
    with pytest.raises(ValueError, match="sentence 0"):
        entity_scores([["O", "O"]], [["O"]])


def test_squad_scores_by_hand():
    # normalisation drops articles and punctuation: exact match
    s = squad_scores(["The 1987."], [["1987"]])
    assert s == {"exact_match": pytest.approx(100.0), "f1": pytest.approx(100.0)}
    # "in 1987 year" vs "1987": precision 1/3, recall 1 -> F1 0.5; the best of two golds counts
    s = squad_scores(["in 1987 year", "Paris"], [["1987"], ["London", "Paris"]])
    assert s["exact_match"] == pytest.approx(50.0) and s["f1"] == pytest.approx((50.0 + 100.0) / 2)


def test_rouge_by_hand():
    s = rouge_scores(["the cat sat"], ["the cat sat on the mat"])
    # unigrams: P 3/3, R 3/6 -> F 2/3; bigrams: P 2/2, R 2/5 -> F 4/7; LCS 3 -> as ROUGE-1
    assert s["rouge1"] == pytest.approx(100 * 2 / 3) and s["rouge2"] == pytest.approx(100 * 4 / 7)
    assert s["rougeL"] == pytest.approx(100 * 2 / 3)
    assert rouge_scores(["cats running"], ["cat runs"])["rouge1"] == pytest.approx(100.0)  # stemming


def test_bleu_chrf_by_hand():
    s = translation_scores(["a b c d"], ["a b c e"])
    # precisions 3/4, 2/3, 1/2 and 0/1 (exp smoothing: 1/2), brevity penalty 1
    assert s["bleu"] == pytest.approx(100 * (0.75 * (2 / 3) * 0.5 * 0.5) ** 0.25, abs=0.01)
    same = translation_scores(["Der Hund schläft ."], ["Der Hund schläft ."])
    assert same["bleu"] == pytest.approx(100.0) and same["chrf"] == pytest.approx(100.0)
    assert 0 < translation_scores(["Der Hund"], ["Die Katze schläft"])["chrf"] < 50
    with pytest.raises(ValueError, match="2 predictions but 1 references"):
        translation_scores(["a", "b"], ["a"])


def test_sentences():
    assert sentences("One. Two! Three? Four") == ["One.", "Two!", "Three?", "Four"]
