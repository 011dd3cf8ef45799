"""The model registry and serving: pretrain and finetune register their models (one registered
model per task, a version per run, the `current` alias on the last run outside a sweep), and
`mlflow models serve -m models:/lmforge-topic@current` answers real HTTP requests with labels."""

import pytest
import requests
from mlflow.tracking import MlflowClient

from conftest import compose
from servers import BIN, free_port, serving

pytestmark = pytest.mark.slow

TEXTS = ["The striker scored twice in the final minutes.", "Shares fell after the quarterly report.",
         "The new phone has a bright screen and a weak battery."]


def test_registered_models_are_served_over_http(tmp_path):
    from lmforge.serve import LanguageModelScorer, TextClassifier
    from lmforge.stages import finetune, prepare, pretrain

    args = ["experiment=smoke", "trainer.precision=32-true"]
    prepare.run(compose(args, root=tmp_path))
    pretrain.run(compose(args, root=tmp_path))
    both = finetune.run(compose(args + ["task=topic", "init=both"], root=tmp_path))
    assert set(both) == {"pretrained", "scratch"} and both["scratch"]["init"] == "scratch"
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = MlflowClient(tracking_uri=uri)

    # one registered model per task, a version per run, aliases on the last runs
    versions = client.search_model_versions("name='lmforge-topic'")
    assert sorted(v.tags["init"] for v in versions) == ["pretrained", "scratch"]
    current = client.get_model_version_by_alias("lmforge-topic", "current")
    assert current.tags["init"] == "pretrained"
    assert client.get_run(current.run_id).info.run_name == "finetune/topic/pretrained"
    assert client.get_model_version_by_alias("lmforge-topic", "current-scratch").tags["init"] == "scratch"
    lm = client.get_model_version_by_alias("lmforge-lm", "current")
    assert client.get_run(lm.run_id).info.run_name == "pretrain"

    # the pyfunc returns what the fine-tuned model directory predicts
    model_dir = tmp_path / "artifacts/finetune/topic/pretrained/model"
    expected = TextClassifier().load(model_dir).predict(None, TEXTS)
    labels = set(TextClassifier().load(model_dir).config["labels"])
    assert set(expected) <= labels
    ppl = LanguageModelScorer().load(tmp_path / "artifacts/pretrain/model").predict(None, TEXTS)
    assert all(1.0 < p < 1e6 for p in ppl)

    port = free_port()
    cmd = [str(BIN / "mlflow"), "models", "serve", "-m", "models:/lmforge-topic@current",
           "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)]
    with serving(cmd, f"http://127.0.0.1:{port}/ping", tmp_path / "serve.log", timeout=120,
                 MLFLOW_TRACKING_URI=uri) as proc:
        url = f"http://127.0.0.1:{port}/invocations"
        r = requests.post(url, json={"dataframe_records": [{"text": t} for t in TEXTS]}, timeout=60)
        assert r.status_code == 200, r.text
        assert r.json()["predictions"] == expected
        r = requests.post(url, json={"inputs": TEXTS[:1]}, timeout=60)
        assert r.status_code == 200 and r.json()["predictions"] == expected[:1]
    assert proc.poll() is not None  # stopped


def test_a_registered_tagger_returns_a_tag_per_word(tmp_path):
    import mlflow.pyfunc

    from lmforge.stages import finetune, prepare, pretrain

    args = ["experiment=smoke", "trainer.precision=32-true", "data.synthetic.tasks=[ner]"]
    prepare.run(compose(args, root=tmp_path))
    pretrain.run(compose(args, root=tmp_path))
    finetune.run(compose(args + ["task=ner"], root=tmp_path))
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    model = mlflow.pyfunc.load_model("models:/lmforge-ner@current")
    texts = ["Anna Berg visited Oslo on Monday .", "The council met ."]
    tags = model.predict(texts)
    labels = set(mlflow.pyfunc.load_model("models:/lmforge-ner@current").unwrap_python_model().meta["labels"])
    assert [len(t) for t in tags] == [7, 4] and {t for row in tags for t in row} <= labels
