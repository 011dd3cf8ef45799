"""Real-data readers on small fixtures, malformed input included."""

import json

import pytest
from omegaconf import OmegaConf

from lmforge.config import TaskDataConfig
from lmforge.errors import DataError
from lmforge.tasks import formats


def cfg(**kw):
    return OmegaConf.structured(TaskDataConfig(**kw))


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_glue_tsv_with_label_map(tmp_path):
    f = write(tmp_path / "train.tsv", "sentence\tlabel\nit 's a charming , often affecting journey . \t1\nbad\t0\n")
    d = cfg(columns={"text": "sentence", "label": "label"}, label_map={"0": "negative", "1": "positive"})
    out = formats.read_file("glue_tsv", str(f), "classification", d)
    assert [r["label"] for r in out.records] == ["positive", "negative"]
    assert out.records[0]["text"].startswith("it 's a charming") and out.skipped == 0


def test_glue_tsv_malformed_line_names_file_and_line(tmp_path):
    f = write(tmp_path / "train.tsv", "sentence\tlabel\ngood\t1\ntoo\tmany\tcolumns\nfine\t7\n")
    d = cfg(columns={"text": "sentence"}, label_map={"0": "negative", "1": "positive"})
    with pytest.raises(DataError, match=r"train\.tsv:3: 3 columns"):
        formats.read_file("glue_tsv", str(f), "classification", d)
    d = cfg(columns={"text": "sentence"}, label_map={"0": "negative", "1": "positive"}, skip_malformed=True)
    out = formats.read_file("glue_tsv", str(f), "classification", d)
    # line 3 has 3 columns, line 4 a label outside the map: both counted, the good one kept
    assert out.skipped == 2 and len(out.records) == 1
    assert any("train.tsv:4" in p and "label_map" in p for p in out.problems)


def test_csv_and_jsonl_columns(tmp_path):
    f = write(tmp_path / "d.csv", 'article,highlights\n"A story, with commas. Second.","A summary."\n')
    out = formats.read_file("csv", str(f), "summarization", cfg(columns={"document": "article", "summary": "highlights"}))
    assert out.records == [{"document": "A story, with commas. Second.", "summary": "A summary."}]
    j = write(tmp_path / "d.jsonl", '{"txt": "hi", "y": "pos"}\n\n{"txt": "ho", "y": "neg"\n')
    with pytest.raises(DataError, match=r"d\.jsonl:3: not valid JSON"):
        formats.read_file("jsonl", str(j), "classification", cfg(columns={"text": "txt", "label": "y"}))
    j = write(tmp_path / "e.jsonl", '{"txt": "hi", "y": "pos"}\n{"text": "no y"}\n')
    with pytest.raises(DataError, match=r"e\.jsonl:2: no column 'txt'"):
        formats.read_file("jsonl", str(j), "classification", cfg(columns={"text": "txt", "label": "y"}))


CONLL = """-DOCSTART- -X- -X- O

EU NNP B-NP I-ORG
rejects VBZ B-VP O
German JJ B-NP I-MISC
call NN I-NP O
. . O O

Peter NNP B-NP I-PER
Blackburn NNP I-NP I-PER
in IN B-PP O
S. NNP B-NP I-LOC
Africa NNP I-NP I-LOC
and CC O O
Bonn NNP B-NP I-LOC
. . O O
"""


def test_conll_iob1_to_iob2(tmp_path):
    f = write(tmp_path / "eng.train", CONLL)
    out = formats.read_file("conll", str(f), "tagging", cfg(scheme="iob1"))
    assert len(out.records) == 2
    assert out.records[0]["tags"] == ["B-ORG", "O", "B-MISC", "O", "O"]
    assert out.records[1]["tokens"][:2] == ["Peter", "Blackburn"]
    assert out.records[1]["tags"] == ["B-PER", "I-PER", "O", "B-LOC", "I-LOC", "O", "B-LOC", "O"]
    # read as IOB2, the tags stay as written
    assert formats.read_file("conll", str(f), "tagging", cfg(scheme="iob2")).records[0]["tags"][0] == "I-ORG"


def test_conll_malformed(tmp_path):
    bad = CONLL.replace("rejects VBZ B-VP O", "rejects VBZ B-VP X-WRONG").replace("in IN B-PP O", "in")
    f = write(tmp_path / "eng.train", bad)
    with pytest.raises(DataError, match=r"eng\.train:4: 'X-WRONG' is not an IOB tag"):
        formats.read_file("conll", str(f), "tagging", cfg(scheme="iob1"))
    out = formats.read_file("conll", str(f), "tagging", cfg(scheme="iob1", skip_malformed=True))
    assert out.skipped == 2 and out.records == []  # both sentences have a bad line
    assert "eng.train:11" in out.problems[1]


SQUAD = {"version": "1.1", "data": [{"title": "T", "paragraphs": [
    {"context": "Paris is the capital of France. It was founded long ago.",
     "qas": [{"id": "q1", "question": "What is the capital of France?",
              "answers": [{"text": "Paris", "answer_start": 0}, {"text": "Paris", "answer_start": 0}]},
             {"id": "q2", "question": "Capital of?", "answers": [{"text": "France", "answer_start": 3}]}]}]}]}


def test_squad_json(tmp_path):
    f = write(tmp_path / "train-v1.1.json", json.dumps(SQUAD))
    with pytest.raises(DataError, match=r"train-v1\.1\.json: data\[0\]\.paragraphs\[0\]\.qas\[1\].*not at character 3"):
        formats.read_file("squad", str(f), "qa", cfg())
    out = formats.read_file("squad", str(f), "qa", cfg(skip_malformed=True))
    assert out.skipped == 1 and len(out.records) == 1
    r = out.records[0]
    assert r["id"] == "q1" and r["answers"] == {"text": ["Paris", "Paris"], "answer_start": [0, 0]}
    g = write(tmp_path / "broken.json", '{"data": [\n  {"paragraphs": }\n]}')
    with pytest.raises(DataError, match=r"broken\.json:2: not valid JSON"):
        formats.read_file("squad", str(g), "qa", cfg())
    with pytest.raises(Exception, match="holds qa data"):
        formats.read_file("squad", str(f), "tagging", cfg())


def test_parallel(tmp_path):
    write(tmp_path / "train.en", "A dog runs.\nTwo men.\n")
    write(tmp_path / "train.de", "Ein Hund rennt.\nZwei Männer.\n")
    out = formats.read_file("parallel", str(tmp_path / "train"), "translation", cfg())
    assert out.records[1] == {"source": "Two men.", "target": "Zwei Männer."}
    write(tmp_path / "bad.en", "A dog.\nTwo men.\nThree.\n")
    write(tmp_path / "bad.de", "Ein Hund.\nZwei Männer.\n")
    with pytest.raises(DataError, match=r"bad\.en has 3 lines but .*bad\.de has 2"):
        formats.read_file("parallel", str(tmp_path / "bad"), "translation", cfg())
    write(tmp_path / "gap.en", "A dog.\nTwo men.\n")
    write(tmp_path / "gap.de", "Ein Hund.\n \n")
    with pytest.raises(DataError, match=r"gap\.de:2: empty line"):
        formats.read_file("parallel", str(tmp_path / "gap"), "translation", cfg())


def test_hub_loader_through_datasets_with_local_files(tmp_path):
    """The Hub code path (datasets.load_dataset + column mapping + label map), offline."""
    rows = [{"words": ["Anna", "sings"], "ner": [1, 0]}, {"words": ["Bob"], "ner": [1]}]
    f = write(tmp_path / "train.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    d = cfg(hub_name="json", train=str(f), columns={"tokens": "words", "tags": "ner"},
            label_map={"0": "O", "1": "B-PER"})
    out = formats.load_hub("tagging", d, {"train": "train"})
    assert out["train"].records == [{"tokens": ["Anna", "sings"], "tags": ["B-PER", "O"]},
                                    {"tokens": ["Bob"], "tags": ["B-PER"]}]


def test_load_splits_local_carves_validation(tmp_path):
    from conftest import compose
    from lmforge.tasks import load_splits

    train = write(tmp_path / "train.tsv", "sentence\tlabel\n" + "".join(f"s{i}\t{i % 2}\n" for i in range(40)))
    dev = write(tmp_path / "dev.tsv", "sentence\tlabel\n" + "".join(f"d{i}\t{i % 2}\n" for i in range(6)))
    c = compose(["task=sst2_local", f"task.data.train={train}", f"task.data.test={dev}",
                 "task.data.validation_fraction=0.25", "task.data.max_train=20"])
    splits, labels, skipped = load_splits(c.task, tmp_path, seed=1)
    assert len(splits["validation"]) == 10 and len(splits["train"]) == 20 and len(splits["test"]) == 6
    assert not {r["text"] for r in splits["validation"]} & {r["text"] for r in splits["train"]}
    assert {r["label"] for r in splits["test"]} == {"negative", "positive"} and skipped == {"train": 0, "test": 0}
    again, _, _ = load_splits(c.task, tmp_path, seed=1)
    assert again == splits  # seeded


def test_every_task_config_composes_and_checks():
    from conftest import ROOT, compose
    from lmforge.config import validate
    from lmforge.tasks import check_config, family

    names = sorted(p.stem for p in (ROOT / "conf/task").glob("*.yaml"))
    assert {"topic", "sentiment", "ner", "qa", "summarization", "translation", "sst2_local",
            "conll2003_local", "multi30k_local", "squad", "wmt16_de_en"} <= set(names)
    for name in names:
        c = compose([f"task={name}"])
        validate(c)
        check_config(c.task, c.model.max_len)
        assert c.task.name == name and family(c.task.family).name == c.task.family
        if c.task.source == "hub":
            assert c.task.data.hub_name, name
    # smoke keeps every task inside the tiny model
    for name in ("qa", "summarization", "translation"):
        c = compose([f"task={name}", "experiment=smoke"])
        check_config(c.task, c.model.max_len)


def test_task_config_errors_name_the_key():
    from conftest import compose
    from lmforge.errors import ConfigError
    from lmforge.tasks import check_config

    c = compose(["task=summarization", "task.max_source_length=250"])
    with pytest.raises(ConfigError, match="task.max_source_length=250"):
        check_config(c.task, c.model.max_len)
    c = compose(["task=multi30k_local", "task.baseline=lexicon"])
    with pytest.raises(ConfigError, match="task.baseline=lexicon"):
        check_config(c.task, c.model.max_len)
    c = compose(["task=qa", "task.doc_stride=100"])
    with pytest.raises(ConfigError, match="task.doc_stride=100"):
        check_config(c.task, c.model.max_len)
