"""The model registry and serving: pretrain and finetune register their models (one registered
model per task, a version per run, the `current` alias on the last run outside a sweep), and
`mlflow models serve -m models:/lmforge-topic@current` answers real HTTP requests about stories
of the built-in world with the label the fine-tuned model predicts in process."""

from random import Random

import pytest
import requests
from conftest import compose
from mlflow.tracking import MlflowClient
from servers import BIN, free_port, serving

from lmforge.data.world import TOPICS, Ctx, render_sentences, story

pytestmark = pytest.mark.slow

ARGS = ["experiment=smoke", "trainer.precision=32-true", "progress=false"]


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A smoke pipeline up to fine-tuning topic (both inits) and ner (pretrained), tracked."""
    from lmforge.stages import finetune, prepare, pretrain

    root = tmp_path_factory.mktemp("served")
    prepare.run(compose(ARGS, root=root))
    pretrain.run(compose(ARGS, root=root))
    both = finetune.run(compose(ARGS + ["task=topic"], root=root))
    assert set(both) == {"topic"} and set(both["topic"]) == {"pretrained", "scratch"}
    assert both["topic"]["scratch"]["init"] == "scratch" and 0 <= both["topic"]["pretrained"]["best_val_score"] <= 1
    finetune.run(compose(ARGS + ["task=ner", "inits=[pretrained]"], root=root))
    return root


def stories(seed: int) -> list[str]:
    """One news story of each topic, from the world of the pipeline's seed."""
    world = Ctx(seed).w
    return [render_sentences(story(Random(f"serving:{topic}"), world, topic)[0]) for topic in TOPICS]


def readme_request() -> dict:
    """The JSON body of the README's `curl .../invocations` example."""
    import json
    import re

    from conftest import ROOT

    (body,) = re.findall(r"curl -s 127\.0\.0\.1:5002/invocations .*?-d '(.*?)'", (ROOT / "README.md").read_text())
    return json.loads(body)


def in_process(model_dir, records: list[dict]) -> list:
    """What the fine-tuned model directory predicts, loaded as the stages load it."""
    from lmforge.data.tokenizer import load_tokenizer
    from lmforge.tasks import load_task_model

    model, family, saved = load_task_model(model_dir)
    return family.predict(model, records, load_tokenizer(model_dir), saved.head or {})


def test_registered_models_are_served_over_http(project):
    from lmforge.serve import LanguageModel, TaskModel

    uri = f"sqlite:///{project}/mlflow.db"
    client = MlflowClient(tracking_uri=uri)

    # one registered model per task, a version per run, aliases on the last runs
    versions = client.search_model_versions("name='lmforge-topic'")
    assert sorted(v.tags["init"] for v in versions) == ["pretrained", "scratch"]
    current = client.get_model_version_by_alias("lmforge-topic", "current")
    assert current.tags["init"] == "pretrained" and current.tags["family"] == "classification"
    assert client.get_run(current.run_id).info.run_name == "finetune/topic/pretrained"
    assert client.get_model_version_by_alias("lmforge-topic", "current-scratch").tags["init"] == "scratch"
    lm = client.get_model_version_by_alias("lmforge-lm", "current")
    assert client.get_run(lm.run_id).info.run_name == "pretrain"

    # the pyfunc returns what the fine-tuned model predicts in process: one of the topics
    texts = stories(compose(ARGS).seed)
    model_dir = project / "artifacts/finetune/topic/pretrained/model"
    expected = in_process(model_dir, [{"text": t} for t in texts])
    assert len(expected) == len(TOPICS) and set(expected) <= set(TOPICS)
    assert TaskModel().load(model_dir).predict(None, texts) == expected
    ppl = LanguageModel().load(project / "artifacts/pretrain/model").predict(None, texts)
    assert all(1.0 < p < 1e6 for p in ppl)

    port = free_port()
    cmd = [
        str(BIN / "mlflow"),
        "models",
        "serve",
        "-m",
        "models:/lmforge-topic@current",
        "--env-manager",
        "local",
        "-h",
        "127.0.0.1",
        "-p",
        str(port),
    ]
    with serving(
        cmd, f"http://127.0.0.1:{port}/ping", project / "serve.log", timeout=120, MLFLOW_TRACKING_URI=uri
    ) as proc:
        url = f"http://127.0.0.1:{port}/invocations"
        r = requests.post(url, json={"dataframe_records": [{"text": t} for t in texts]}, timeout=60)
        assert r.status_code == 200, r.text
        assert r.json()["predictions"] == expected
        for inputs in ({"text": texts[:1]}, texts[:1]):  # (the server maps a bare list to the one column)
            r = requests.post(url, json={"inputs": inputs}, timeout=60)
            assert r.status_code == 200, r.text
            (label,) = r.json()["predictions"]
            assert label == expected[0] and label in TOPICS
        # the contract: a named string column; a request without it, or with another type, is refused
        # naming the column (MLflow ignores an extra column, logging a warning)
        for bad, says in [
            ({"dataframe_records": [{"txt": texts[0]}]}, "missing inputs ['text']"),
            ({"dataframe_records": [{"text": 5}]}, "input column 'text', row 0: 5 is not a string"),
            (
                {"dataframe_records": [{"text": texts[0]}, {"text": None}]},
                "input column 'text', row 1: null is not a string",
            ),
        ]:
            r = requests.post(url, json=bad, timeout=60)
            assert r.status_code == 400 and says in r.json()["message"], (bad, r.status_code, r.text)
        r = requests.post(url, json={"dataframe_records": [{"text": texts[0], "extra": 1}]}, timeout=60)
        assert r.status_code == 200 and r.json()["predictions"] == expected[:1]
        # the README's example, as typed: a story of the built-in world, answered with its predicted topic
        payload = readme_request()
        assert payload["dataframe_records"][0]["text"] in texts
        r = requests.post(url, json=payload, timeout=60)
        assert r.json()["predictions"] == [expected[texts.index(payload["dataframe_records"][0]["text"])]]
    assert proc.poll() is not None  # stopped


def test_a_registered_tagger_returns_a_tag_per_word(project):
    import mlflow.pyfunc

    mlflow.set_tracking_uri(f"sqlite:///{project}/mlflow.db")
    try:
        model = mlflow.pyfunc.load_model("models:/lmforge-ner@current")
    finally:
        mlflow.set_tracking_uri(None)
    texts = [stories(compose(ARGS).seed)[0].split(". ")[0] + " .", "The council met ."]
    import pandas as pd

    tags = model.predict(pd.DataFrame({"text": texts}))  # the signature names its column: a bare list is refused
    labels = set(model.unwrap_python_model().saved.head["labels"])
    assert [len(t) for t in tags] == [len(t.split()) for t in texts]
    assert {t for row in tags for t in row} <= labels
    expected = in_process(project / "artifacts/finetune/ner/pretrained/model", [{"tokens": t.split()} for t in texts])
    assert tags == expected
