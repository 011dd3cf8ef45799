"""MLflow review: lossless params, DVC tags, the workspace store of queued experiments, a tracking
server that is unreachable at the start (fails fast) or lost mid-run (training finishes), and
the server mode end to end against a real `mlflow server`."""

import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from conftest import ROOT, compose
from lmforge.errors import ConfigError
from lmforge.track.mlflow import MAX_PARAM_LEN, StageRun, read_params
from servers import env, free_port, mlflow_server


def corpus(path: Path) -> Path:
    rng = random.Random(0)
    words = [f"w{i}" for i in range(300)]
    path.write_text("\n\n".join(" ".join(rng.choices(words, k=60)) for _ in range(300)))
    return path


def text_args(text: Path) -> list[str]:
    return ["experiment=smoke", "data=text_files", f"data.text_files.paths=[{text}]", "trainer.precision=32-true"]


def runs(uri: str, experiment: str = "lmforge"):
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    return client, client.search_runs([exp.experiment_id], max_results=1000)


def test_long_params_are_logged_losslessly(tmp_path):
    cfg = compose(["experiment=smoke"], root=tmp_path)
    long = str([f"/data/shard-{i:05d}.jsonl" for i in range(1000)])  # ~25,000 characters
    assert len(long) > 3 * MAX_PARAM_LEN
    with StageRun(cfg.tracking, "probe", {"data.paths": long, "seed": 1}, root=tmp_path) as run:
        pass
    client, (r,) = runs(cfg.tracking.uri)
    assert read_params(r) == {"data.paths": long, "seed": "1"}
    assert all(len(v) <= MAX_PARAM_LEN for v in r.data.params.values())
    whole = Path(client.download_artifacts(run.run_id, "params/data.paths.txt", str(tmp_path)))
    assert whole.read_text() == long


def test_runs_carry_git_commit_and_dvc_tags(tmp_path, monkeypatch):
    monkeypatch.setenv("DVC_STAGE", "finetune@topic-pretrained")
    monkeypatch.setenv("DVC_EXP_NAME", "brisk-kite")
    monkeypatch.setenv("LMFORGE_PARENT_RUN_ID", "")
    cfg = compose(["experiment=smoke"], root=tmp_path)
    with StageRun(cfg.tracking, "finetune/topic/pretrained", {}, root=ROOT):
        pass
    _, (r,) = runs(cfg.tracking.uri)
    tags = r.data.tags
    assert tags["lmforge.dvc.stage"] == "finetune@topic-pretrained" and tags["lmforge.dvc.exp"] == "brisk-kite"
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    assert tags["mlflow.source.git.commit"] == head


def test_queued_experiment_copy_tracks_into_the_workspace_store(tmp_path):
    copy = tmp_path / "ws" / ".dvc" / "tmp" / "exps" / "tmpab12cd"
    cfg = compose(["experiment=smoke"], root=copy)
    assert cfg.paths.root == str(copy)
    assert cfg.tracking.uri == f"sqlite:///{tmp_path}/ws/mlflow.db"
    assert cfg.tracking.artifact_location == f"{tmp_path}/ws/mlartifacts"
    plain = compose(["experiment=smoke"], root=tmp_path / "ws")
    assert plain.tracking.uri == cfg.tracking.uri


def test_unreachable_server_fails_fast_with_a_clear_message(tmp_path):
    from lmforge.stages import prepare

    uri = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    text = corpus(tmp_path / "corpus.txt")
    t0 = time.perf_counter()
    with pytest.raises(ConfigError, match=f"tracking.uri={uri}.*does not answer"):
        prepare.run(compose(text_args(text) + ["tracking=server", f"tracking.uri={uri}"], root=tmp_path))
    assert time.perf_counter() - t0 < 10
    assert not (tmp_path / "artifacts" / "prepare").exists()  # failed before any work
    # the app: exit status 2 and the message, no traceback
    out = subprocess.run([sys.executable, str(ROOT / "pipelines/prepare.py"), *text_args(text),
                          "tracking=server", f"tracking.uri={uri}"],
                         env=env(LMFORGE_ROOT=str(tmp_path)), capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "does not answer" in out.stderr + out.stdout
    assert "Traceback" not in out.stderr


@pytest.mark.slow
def test_server_mode_end_to_end_and_a_server_lost_mid_run(tmp_path):
    from lmforge.stages import prepare

    text = corpus(tmp_path / "corpus.txt")
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    args = text_args(text) + ["tracking=server"]
    os.environ["LMFORGE_TRACKING_URI"] = uri
    try:
        with mlflow_server(tmp_path / "server", port):
            stats = prepare.run(compose(args, root=tmp_path))
            client, found = runs(uri)
            (r,) = found
            assert r.info.run_name == "prepare" and r.info.status == "FINISHED"
            assert read_params(r)["tokenizer.vocab_size"] == "400"
            assert r.data.metrics["tokens_train"] == stats["tokens"]["train"]
            assert r.info.artifact_uri.startswith("mlflow-artifacts:")  # proxied by the server
            got = Path(client.download_artifacts(r.info.run_id, "stats.json", str(tmp_path)))
            assert got.read_text() == (tmp_path / "artifacts/prepare/stats.json").read_text()
            assert (tmp_path / "server/artifacts").is_dir()

            # the server goes away while pretraining: training finishes, the model is written
            long = args + ["trainer.max_steps=150", "trainer.checkpoint_every_n_steps=5",
                           "trainer.val_check_interval=100", "tracking.http_retries=0"]
            log = open(tmp_path / "pretrain.log", "w")
            proc = subprocess.Popen([sys.executable, str(ROOT / "pipelines/pretrain.py"), *long],
                                    env=env(LMFORGE_ROOT=str(tmp_path), LMFORGE_TRACKING_URI=uri),
                                    stdout=log, stderr=subprocess.STDOUT)
            ckpts = tmp_path / ".lmforge/checkpoints/pretrain"
            deadline = time.time() + 120
            while time.time() < deadline and not list(ckpts.glob("*/step=*.ckpt")) and proc.poll() is None:
                time.sleep(0.05)
        # the server is stopped here (context exit), the stage still running
        assert proc.poll() is None, (tmp_path / "pretrain.log").read_text()[-3000:]
        assert proc.wait(timeout=300) == 0, (tmp_path / "pretrain.log").read_text()[-3000:]
        output = (tmp_path / "pretrain.log").read_text()
        assert "MLflow tracking failed" in output and "goes on without tracking" in output
        model = tmp_path / "artifacts/pretrain/model"
        assert (model / "model.safetensors").is_file() and (model / "config.json").is_file()
    finally:
        os.environ.pop("LMFORGE_TRACKING_URI", None)
