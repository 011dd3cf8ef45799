"""Labelled data files: the readers of lmforge.data.formats (files → rows naming file and line)
and each family's mapping of rows to records (`Family.record`), malformed input included; the
task configs that name such files."""

import json

import pytest
from task_utils import family

from lmforge.data import formats
from lmforge.errors import ConfigError, DataError
from lmforge.tasks.splits import load_splits


def write(path, text, encoding="utf-8"):
    path.write_bytes(text.encode(encoding))
    return path


def read(fmt, path, family_name, **data):
    """read_file as a task's split loading calls it: rows → the family's checked records."""
    fam = family(family_name, data={"source": "local", "format": fmt, "train": "t", "test": "t", **data})

    def convert(row, where):
        rec = fam.record(row, where)
        fam.check_record(rec, where)
        return rec

    return formats.read_file(fmt, str(path), fam.config.data, convert)


def rows(fmt, path, **data):
    """The rows a reader makes, before any family maps them."""
    settings = family("topic", data={"source": "local", "format": fmt, "train": "t", "test": "t", **data}).config.data
    return formats.read_file(fmt, str(path), settings, lambda row, where: {**row, "where": where})


def test_glue_tsv_with_label_map(tmp_path):
    f = write(tmp_path / "train.tsv", "sentence\tlabel\nit 's a charming , often affecting journey . \t1\nbad\t0\n")
    out = read(
        "glue_tsv",
        f,
        "classification",
        columns={"text": "sentence", "label": "label"},
        label_map={"0": "negative", "1": "positive"},
    )
    assert [r["label"] for r in out.records] == ["positive", "negative"]
    assert out.records[0]["text"].startswith("it 's a charming") and out.skipped == 0
    # GLUE's files are not quoted: a quote is text; without a header the columns are numbered
    g = write(tmp_path / "nohead.tsv", 'a "quoted\tx\nb\ty\n')
    assert [(r["0"], r["1"], r["where"]) for r in rows("glue_tsv", g, header=False).records] == [
        ('a "quoted', "x", f"{g}:1"),
        ("b", "y", f"{g}:2"),
    ]


@pytest.mark.parametrize("fmt, text", [("glue_tsv", "sentence\tlabel\ngood\t1\n"), ("csv", "sentence,label\ngood,1\n")])
def test_a_utf8_byte_order_mark_is_not_part_of_the_first_column_name(tmp_path, fmt, text):
    """Excel and Notepad write one before UTF-8 text."""
    f = tmp_path / "train.txt"
    f.write_bytes(b"\xef\xbb\xbf" + text.encode())
    (row,) = rows(fmt, f).records
    assert (row["sentence"], row["label"]) == ("good", "1")


def test_glue_tsv_malformed_line_names_file_and_line(tmp_path):
    f = write(tmp_path / "train.tsv", "sentence\tlabel\ngood\t1\ntoo\tmany\tcolumns\nfine\t7\n")
    settings = {"columns": {"text": "sentence"}, "label_map": {"0": "negative", "1": "positive"}}
    with pytest.raises(DataError, match=r"train\.tsv:3: 3 columns, expected 2"):
        read("glue_tsv", f, "classification", **settings)
    out = read("glue_tsv", f, "classification", skip_malformed=True, **settings)
    # line 3 has 3 columns, line 4 a label outside the map: both counted, the good one kept
    assert out.skipped == 2 and len(out.records) == 1
    assert any("train.tsv:4" in p and "label_map" in p for p in out.problems)


def test_csv_and_jsonl_columns(tmp_path):
    f = write(tmp_path / "d.csv", 'article,highlights\n"A story, with commas. Second.","A summary."\n')
    out = read("csv", f, "summarization", columns={"document": "article", "summary": "highlights"})
    assert out.records == [{"document": "A story, with commas. Second.", "summary": "A summary."}]
    j = write(tmp_path / "d.jsonl", '{"txt": "hi", "y": "pos"}\n\n{"txt": "ho", "y": "neg"\n')
    with pytest.raises(DataError, match=r"d\.jsonl:3: not valid JSON"):
        read("jsonl", j, "classification", columns={"text": "txt", "label": "y"})
    j = write(tmp_path / "e.jsonl", '{"txt": "hi", "y": "pos"}\n{"text": "no y"}\n')
    with pytest.raises(DataError, match=r"e\.jsonl:2: no column 'txt'"):
        read("jsonl", j, "classification", columns={"text": "txt", "label": "y"})


def test_csv_unclosed_quote_loses_only_its_line(tmp_path):
    f = write(tmp_path / "d.csv", 'text,label\n"open quote,a\nfine,b\nalso fine,c\n')
    with pytest.raises(DataError, match=r"d\.csv:2: .*a quote opened here is not closed"):
        rows("csv", f)
    out = rows("csv", f, skip_malformed=True)
    assert out.skipped == 1 and [(r["text"], r["where"]) for r in out.records] == [
        ("fine", f"{f}:3"),
        ("also fine", f"{f}:4"),
    ]


def test_text_that_is_not_utf8_names_the_line_and_the_setting(tmp_path):
    f = write(tmp_path / "latin.tsv", "text\tlabel\nok\ta\ncafé\tb\n", encoding="latin-1")
    with pytest.raises(DataError, match=r"latin\.tsv:3: not utf-8 text .*task\.data\.encoding"):
        rows("glue_tsv", f)
    assert rows("glue_tsv", f, encoding="latin-1").records[1]["text"] == "café"
    with pytest.raises(DataError, match=r"missing\.tsv: no such file"):
        rows("glue_tsv", tmp_path / "missing.tsv")


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
    # the reader gives the tags as written, one row per sentence, at its first line
    raw = rows("conll", f).records
    assert [r["where"] for r in raw] == [f"{f}:3", f"{f}:9"] and raw[0]["tags"][0] == "I-ORG"
    out = read("conll", f, "tagging", scheme="iob1")
    assert len(out.records) == 2
    assert out.records[0]["tags"] == ["B-ORG", "O", "B-MISC", "O", "O"]
    assert out.records[1]["tokens"][:2] == ["Peter", "Blackburn"]
    assert out.records[1]["tags"] == ["B-PER", "I-PER", "O", "B-LOC", "I-LOC", "O", "B-LOC", "O"]
    # read as IOB2, the tags stay as written
    assert read("conll", f, "tagging", scheme="iob2").records[0]["tags"][0] == "I-ORG"
    # another tag column: the chunk tags
    assert read("conll", f, "tagging", tag_column=2).records[0]["tags"][:2] == ["B-NP", "B-VP"]


def test_conll_malformed(tmp_path):
    bad = CONLL.replace("rejects VBZ B-VP O", "rejects VBZ B-VP X-WRONG").replace("in IN B-PP O", "in")
    f = write(tmp_path / "eng.train", bad)
    # a bad tag is refused by the family, naming the line where its sentence starts
    with pytest.raises(DataError, match=r"eng\.train:3: 'X-WRONG' is not an IOB tag"):
        read("conll", f, "tagging", scheme="iob1")
    out = read("conll", f, "tagging", scheme="iob1", skip_malformed=True)
    assert out.skipped == 2 and out.records == []  # both sentences have a bad line
    assert "eng.train:11" in out.problems[1] and "expected a token and a tag" in out.problems[1]


SQUAD = {
    "version": "1.1",
    "data": [
        {
            "title": "T",
            "paragraphs": [
                {
                    "context": "Paris is the capital of France. It was founded long ago.",
                    "qas": [
                        {
                            "id": "q1",
                            "question": "What is the capital of France?",
                            "answers": [{"text": "Paris", "answer_start": 0}, {"text": "Paris", "answer_start": 0}],
                        },
                        {"id": "q2", "question": "Capital of?", "answers": [{"text": "France", "answer_start": 3}]},
                    ],
                }
            ],
        }
    ],
}


def test_squad_json(tmp_path):
    f = write(tmp_path / "train-v1.1.json", json.dumps(SQUAD))
    with pytest.raises(DataError, match=r"train-v1\.1\.json: data\[0\]\.paragraphs\[0\]\.qas\[1\].*not at character 3"):
        read("squad", f, "qa")
    out = read("squad", f, "qa", skip_malformed=True)
    assert out.skipped == 1 and len(out.records) == 1
    r = out.records[0]
    assert r["id"] == "q1" and r["answers"] == {"text": ["Paris", "Paris"], "answer_start": [0, 0]}
    g = write(tmp_path / "broken.json", '{"data": [\n  {"paragraphs": }\n]}')
    with pytest.raises(DataError, match=r"broken\.json:2: not valid JSON"):
        read("squad", g, "qa")


def test_a_format_whose_records_the_family_cannot_use_is_refused(tmp_path):
    f = write(tmp_path / "train-v1.1.json", json.dumps(SQUAD))
    fam = family("ner", data={"source": "local", "format": "squad", "train": str(f), "test": str(f)})
    with pytest.raises(
        ConfigError,
        match=r"format='squad' holds records of id, context, question, answers; "
        r"the tagging family needs tokens, tags",
    ):
        load_splits(fam, 0, None, tmp_path, tmp_path)


def test_parallel(tmp_path):
    write(tmp_path / "train.en", "A dog runs.\nTwo men.\n")
    write(tmp_path / "train.de", "Ein Hund rennt.\nZwei Männer.\n")
    out = read("parallel", tmp_path / "train", "translation")
    assert out.records[1] == {"source": "Two men.", "target": "Zwei Männer."}
    # the languages name the files: German -> English reads the same pair the other way
    back = read("parallel", tmp_path / "train", "translation", source_lang="de", target_lang="en")
    assert back.records[1] == {"source": "Zwei Männer.", "target": "Two men."}
    write(tmp_path / "bad.en", "A dog.\nTwo men.\nThree.\n")
    write(tmp_path / "bad.de", "Ein Hund.\nZwei Männer.\n")
    with pytest.raises(DataError, match=r"bad\.en has 3 lines but .*bad\.de has 2"):
        read("parallel", tmp_path / "bad", "translation")
    write(tmp_path / "gap.en", "A dog.\nTwo men.\n")
    write(tmp_path / "gap.de", "Ein Hund.\n \n")
    with pytest.raises(DataError, match=r"gap\.de:2: empty line"):
        read("parallel", tmp_path / "gap", "translation")


def test_hub_rows_through_datasets_with_local_files(tmp_path):
    """The Hub code path (datasets.load_dataset + column mapping + label map), offline."""
    rows_ = [{"words": ["Anna", "sings"], "ner": [1, 0]}, {"words": ["Bob"], "ner": [1]}]
    f = write(tmp_path / "train.jsonl", "".join(json.dumps(r) + "\n" for r in rows_))
    fam = family(
        "ner",
        data={
            "source": "hub",
            "hub_name": "json",
            "train": str(f),
            "columns": {"tokens": "words", "tags": "ner"},
            "label_map": {"0": "O", "1": "B-PER"},
        },
    )
    out = formats.hub_rows(fam.config.data, {"train": "train"}, fam.record, files={"train": str(f)})
    assert out["train"].records == [
        {"tokens": ["Anna", "sings"], "tags": ["B-PER", "O"]},
        {"tokens": ["Bob"], "tags": ["B-PER"]},
    ]
    assert out["train"].skipped == 0
    # a Hub translation row holds both languages in one dict ({"de": ..., "en": ...})
    wmt = family("translation", data={"source": "hub", "hub_name": "wmt16", "source_lang": "de", "target_lang": "en"})
    pair = {"translation": {"de": "Ein Hund.", "en": "A dog."}}
    assert wmt.record(pair, "wmt16:train[0]") == {"source": "Ein Hund.", "target": "A dog."}
    with pytest.raises(DataError, match=r"wmt16:train\[1\]: translation has no language 'de' \(has \['en', 'fr'\]\)"):
        wmt.record({"translation": {"en": "A dog.", "fr": "Un chien."}}, "wmt16:train[1]")


def test_load_splits_local_carves_validation(tmp_path):
    from conftest import compose

    from lmforge.tasks import configure

    train = write(tmp_path / "train.tsv", "sentence\tlabel\n" + "".join(f"s{i}\t{i % 2}\n" for i in range(40)))
    dev = write(tmp_path / "dev.tsv", "sentence\tlabel\n" + "".join(f"d{i}\t{i % 2}\n" for i in range(6)))
    c = compose(
        [
            "task=sst2_local",
            "task.sst2_local.data.train=train.tsv",
            f"task.sst2_local.data.test={dev}",
            "task.sst2_local.data.validation_fraction=0.25",
            "task.sst2_local.data.max_train=20",
        ],
        root=tmp_path,
    )
    fam = configure("sst2_local", c.task.sst2_local)
    splits = load_splits(fam, 1, None, tmp_path / "no-index", tmp_path)  # a relative file is under the root
    assert len(splits["validation"]) == 10 and len(splits["train"]) == 20 and len(splits["test"]) == 6
    assert not {r["text"] for r in splits["validation"]} & {r["text"] for r in splits["train"]}
    assert {r["label"] for r in splits["test"]} == {"negative", "positive"} and splits.skipped == {
        "train": 0,
        "test": 0,
    }
    assert splits.where["train"] == str(train) and splits.where["test"] == str(dev)
    again = load_splits(fam, 1, None, tmp_path / "no-index", tmp_path)
    assert again == splits  # seeded
    assert load_splits(fam, 2, None, tmp_path / "no-index", tmp_path)["train"] != splits["train"]


def test_an_empty_split_is_refused_naming_the_file(tmp_path):
    train = write(
        tmp_path / "train.jsonl", "".join(json.dumps({"text": f"t{i}", "label": str(i % 2)}) + "\n" for i in range(10))
    )
    empty = write(tmp_path / "test.jsonl", "\n")
    fam = family("classification", data={"source": "local", "format": "jsonl", "train": str(train), "test": str(empty)})
    with pytest.raises(DataError, match=r"test\.jsonl: no records .*task\.classification\.data\.test"):
        load_splits(fam, 0, None, tmp_path, tmp_path)


def test_every_task_config_composes_and_checks():
    from conftest import ROOT, compose

    from lmforge.models import settings
    from lmforge.tasks import configure

    names = sorted(p.stem for p in (ROOT / "conf/task").glob("*.yaml"))
    assert {
        "topic",
        "sentiment",
        "ner",
        "qa",
        "summarization",
        "translation",
        "sst2_local",
        "conll2003_local",
        "multi30k_local",
        "squad",
        "wmt16_de_en",
    } <= set(names)
    # every task fits the default model; the smoke experiment keeps the built-in tasks inside its tiny one
    runs = [(name, "default") for name in names] + [
        (name, "smoke") for name in ("topic", "sentiment", "ner", "qa", "summarization", "translation")
    ]
    for name, experiment in runs:
        c = compose([f"task={name}", f"experiment={experiment}"])
        assert list(c.task) == [name]
        fam = configure(name, c.task[name])
        assert fam.task == name and fam.name == c.task[name].family
        if fam.config.data.source == "hub":
            assert fam.config.data.hub_name, name
        if fam.config.data.source == "builtin":
            assert (fam.config.data.world_task or name) in fam.world_tasks, name
        cls, model = settings(c.model)
        fam.check_backbone(model, cls.capabilities(model), f"model={c.model.name} experiment={experiment}")


def test_task_config_errors_name_the_key():
    from conftest import compose

    from lmforge.models import settings
    from lmforge.tasks import configure

    c = compose(["task=summarization", "task.summarization.max_source_length=250"])
    cls, model = settings(c.model)
    with pytest.raises(ConfigError, match=r"task\.summarization\.max_source_length=250"):
        configure("summarization", c.task.summarization).check_backbone(model, cls.capabilities(model), "gpt_tiny")
    c = compose(["task=multi30k_local", "task.multi30k_local.baseline=lexicon"])
    with pytest.raises(ConfigError, match=r"task\.multi30k_local\.baseline=lexicon"):
        configure("multi30k_local", c.task.multi30k_local)
    c = compose(["task=qa", "task.qa.doc_stride=100"])
    with pytest.raises(ConfigError, match=r"task\.qa\.doc_stride=100"):
        configure("qa", c.task.qa)
    c = compose(["task=topic", "+task.topic.pooling_mode=max"])
    with pytest.raises(ConfigError, match=r"task\.topic\.pooling_mode is not a setting"):
        configure("topic", c.task.topic)
