"""MLflow: a stage's run holds its own sections as params (checked values, losslessly) and its
curves as metrics; DVC tags; the workspace store of queued experiments; a run whose process died
is closed by the run that resumes its work; a tracking backend that is unusable at the start
fails fast, one lost mid-run does not stop training; the server mode end to end against a real
`mlflow server`."""

import dataclasses
import os
import random
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT, compose
from mlflow.tracking import MlflowClient
from servers import env, free_port, mlflow_server

from lmforge.config import flatten, section
from lmforge.errors import ConfigError
from lmforge.track.run import StageRun
from lmforge.track.store import MAX_PARAM_LEN, PROCESS_TAG, read_params


def corpus(path: Path) -> Path:
    rng = random.Random(0)
    words = [f"w{i}" for i in range(300)]
    path.write_text("\n\n".join(" ".join(rng.choices(words, k=60)) for _ in range(300)))
    return path


def text_args(text: Path) -> list[str]:
    return [
        "experiment=smoke",
        "data=text_files",
        f"data.text_files.paths=[{text}]",
        "trainer.precision=32-true",
        "progress=false",
    ]


def runs(uri: str, experiment: str = "lmforge"):
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    return client, client.search_runs([exp.experiment_id], max_results=1000, order_by=["start_time ASC"])


def section_params(cfg, names: tuple[str, ...]) -> dict[str, str]:
    """The params a stage reading `names` logs: those sections, checked, as MLflow strings."""
    checked = {n: section(cfg, n) for n in names}
    return {
        k: str(v)
        for k, v in flatten(
            {n: dataclasses.asdict(v) if dataclasses.is_dataclass(v) else v for n, v in checked.items()}
        ).items()
    }


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


def test_stage_runs_hold_their_own_sections_and_their_curves(tmp_path):
    """A run's params are the sections its stage reads — checked, defaults included, nothing of
    the app's settings — and its curves are metrics, step by step, as its curves CSV holds them."""
    from lmforge.stages import prepare, pretrain

    args = ["experiment=smoke", "trainer.precision=32-true", "progress=false", "optim.lr=3e-3"]
    cfg = compose(args, root=tmp_path)
    stats = prepare.run(cfg)
    summary = pretrain.run(cfg)
    client, (prep, pre) = runs(cfg.tracking.uri)

    assert prep.info.run_name == "prepare" and prep.info.status == "FINISHED"
    assert read_params(prep) == section_params(cfg, prepare.PARAMS)
    assert prep.data.metrics["tokens_train"] == stats["tokens"]["train"]

    params = read_params(pre)
    sections = section_params(cfg, tuple(s for s in pretrain.PARAMS if s != "model"))
    assert {k: v for k, v in params.items() if not k.startswith("model.")} == sections
    assert params["optim.lr"] == "0.003" and params["trainer.max_steps"] == "20"
    assert not any(k.startswith(("paths.", "tracking.", "data.", "task.", "tokenizer.")) for k in params)
    # the backbone's checked settings, with what lmforge derived (vocabulary, padding id)
    assert params["model.d_model"] == str(cfg.model.d_model) and params["model.vocab_size"] == str(stats["vocab_size"])
    assert {"model.n_heads", "model.layer_norm_eps", "model.causal"} <= set(params)

    curves = tmp_path / "artifacts/pretrain/curves"
    for name, key in (("train.csv", "train/loss"), ("val.csv", "val/loss")):
        lines = (curves / name).read_text().splitlines()
        column = lines[0].split(",").index(key.replace("/", "_"))
        rows = [(int(line.split(",")[0]), float(line.split(",")[column])) for line in lines[1:]]
        history = sorted((m.step, m.value) for m in client.get_metric_history(pre.info.run_id, key))
        assert [s for s, _ in history] == [s for s, _ in rows] and len(rows) >= 2
        assert [v for _, v in history] == pytest.approx([v for _, v in rows], rel=1e-5)
    assert [s for s, _ in rows] == [10, 20]  # validations
    assert pre.data.metrics["final/val_loss"] == pytest.approx(summary["val_loss"])
    assert {"perf/tokens_per_s", "perf/mfu", "train/lr", "wall_s"} <= set(pre.data.metrics)
    assert {a.path for a in client.list_artifacts(pre.info.run_id)} >= {"curves", "model"}


def test_runs_carry_git_commit_and_dvc_tags(tmp_path, monkeypatch):
    monkeypatch.setenv("DVC_STAGE", "finetune@topic-pretrained")
    monkeypatch.setenv("DVC_EXP_NAME", "brisk-kite")
    monkeypatch.delenv("LMFORGE_PARENT_RUN_ID", raising=False)
    cfg = compose(["experiment=smoke"], root=tmp_path)
    with StageRun(cfg.tracking, "finetune/topic/pretrained", {}, root=ROOT):
        pass
    _, (r,) = runs(cfg.tracking.uri)
    tags = r.data.tags
    assert tags["lmforge.dvc.stage"] == "finetune@topic-pretrained" and tags["lmforge.dvc.exp"] == "brisk-kite"
    assert tags["lmforge.stage"] == "finetune"
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


def tree(root: Path) -> dict[str, bytes]:
    return {str(f.relative_to(root)): f.read_bytes() for f in sorted(root.rglob("*")) if f.is_file()}


def test_a_copied_project_tracks_only_under_its_own_root(tmp_path):
    """`cp -a project copy`: the copy's store names the original's artifact folder; its runs must
    write under the copy (and leave the original as it was), the original's runs stay readable."""
    original, copy = tmp_path / "project", tmp_path / "copy"
    cfg = compose(["experiment=smoke"], root=original)
    with StageRun(cfg.tracking, "probe", {}, root=original) as run:
        run.begin()
        run.log_text("first", "note.txt")
    shutil.copytree(original, copy, symlinks=True)
    before = tree(original)
    moved = compose(["experiment=smoke"], root=copy)
    with StageRun(moved.tracking, "probe", {}, root=copy) as again:
        again.begin()
        again.log_text("second", "note.txt")
    assert tree(original) == before
    client = MlflowClient(tracking_uri=moved.tracking.uri)
    new = client.get_run(again.run_id)
    assert new.info.artifact_uri.startswith((copy / "mlartifacts").as_uri())
    assert (copy / "mlartifacts" / again.run_id / "artifacts" / "note.txt").read_text() == "second"
    exp = client.get_experiment_by_name("lmforge")
    kept = client.get_experiment_by_name(f"lmforge (artifacts in {original}/mlartifacts)")
    assert [r.info.run_id for r in client.search_runs([kept.experiment_id])] == [run.run_id]
    with StageRun(moved.tracking, "probe", {}, root=copy) as third:  # settled: no second rename
        third.begin()
    assert client.get_run(third.run_id).info.experiment_id == exp.experiment_id


def test_a_run_whose_process_died_is_closed_by_the_run_that_resumes_its_work(tmp_path):
    """`resumes(key)`: RUNNING runs of the same work whose process is gone (here: our pid with
    another start time — a process that no longer exists) are closed as KILLED, and each run names
    the other; a live run, or one of other work, is left alone. (test_resume kills a real one.)"""
    cfg = compose(["experiment=smoke"], root=tmp_path)
    gone = f"{socket.gethostname()}:{os.getpid()}:1"
    alive = StageRun(cfg.tracking, "pretrain", {}, root=tmp_path).__enter__()  # this process: alive
    alive.resumes("work-1")
    dead = StageRun(cfg.tracking, "pretrain", {}, {PROCESS_TAG: gone}, root=tmp_path).__enter__()
    dead.resumes("work-1")
    other = StageRun(cfg.tracking, "pretrain", {}, {PROCESS_TAG: gone}, root=tmp_path).__enter__()
    other.resumes("work-2")
    with StageRun(cfg.tracking, "pretrain", {}, root=tmp_path) as resuming:
        resuming.resumes("work-1")
    client = MlflowClient(tracking_uri=cfg.tracking.uri)
    closed = client.get_run(dead.run_id)
    assert closed.info.status == "KILLED" and closed.data.tags["lmforge.resumed_by"] == resuming.run_id
    assert client.get_run(resuming.run_id).data.tags["lmforge.resumes"] == dead.run_id
    assert client.get_run(other.run_id).info.status == "RUNNING"
    assert client.get_run(alive.run_id).info.status == "RUNNING"
    alive.__exit__(None, None, None)
    assert client.get_run(alive.run_id).info.status == "FINISHED"


def test_a_run_of_a_stage_that_does_not_resume_is_closed_by_the_next_run_of_that_stage(tmp_path):
    """A killed prepare (or evaluate, or report) leaves its run RUNNING; the next run of the same
    stage closes it as KILLED — not a live one, not another stage's, not one of resumable work."""
    cfg = compose(["experiment=smoke"], root=tmp_path)
    gone = f"{socket.gethostname()}:{os.getpid()}:1"

    def started(stage: str, process: str | None = None) -> StageRun:
        run = StageRun(cfg.tracking, stage, {}, {PROCESS_TAG: process} if process else None, root=tmp_path)
        run.__enter__().begin()
        return run

    alive, dead, other = started("prepare"), started("prepare", gone), started("evaluate/topic", gone)
    resumable = started("pretrain", gone)
    resumable.resumes("work-1")
    with StageRun(cfg.tracking, "prepare", {}, root=tmp_path) as next_run:
        next_run.begin()
    client = MlflowClient(tracking_uri=cfg.tracking.uri)
    named = {"alive": alive, "dead": dead, "other": other, "resumable": resumable, "next_run": next_run}
    status = {name: client.get_run(r.run_id).info.status for name, r in named.items()}
    assert status == {
        "alive": "RUNNING",
        "dead": "KILLED",
        "other": "RUNNING",
        "resumable": "RUNNING",
        "next_run": "FINISHED",
    }
    with StageRun(cfg.tracking, "evaluate/topic", {}, root=tmp_path) as evaluate:
        evaluate.begin()
    assert client.get_run(other.run_id).info.status == "KILLED"


def test_a_damaged_sqlite_store_fails_before_any_work(tmp_path):
    from lmforge.stages import prepare

    (tmp_path / "mlflow.db").write_bytes(b"this is not a database" * 100)
    with pytest.raises(
        ConfigError,
        match=r"tracking\.uri=sqlite:///.*mlflow\.db: .* is not a readable SQLite "
        r"database .*use tracking=none",
    ):
        prepare.run(compose(["experiment=smoke"], root=tmp_path))
    assert not (tmp_path / "artifacts").exists()


def test_unreachable_server_fails_fast_with_a_clear_message(tmp_path):
    from lmforge.stages import prepare

    uri = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    text = corpus(tmp_path / "corpus.txt")
    t0 = time.perf_counter()
    with pytest.raises(ConfigError, match=f"tracking.uri={uri}.*does not answer"):
        prepare.run(compose(text_args(text) + ["tracking=server", f"tracking.uri={uri}"], root=tmp_path))
    assert time.perf_counter() - t0 < 10
    assert not (tmp_path / "artifacts" / "prepare").exists()  # failed before any work
    # the app: exit status 2 and the message in one line, no traceback
    out = subprocess.run(
        [
            sys.executable,
            str(ROOT / "pipelines/prepare.py"),
            *text_args(text),
            "tracking=server",
            f"tracking.uri={uri}",
        ],
        env=env(LMFORGE_ROOT=str(tmp_path)),
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = [line for line in (out.stdout + out.stderr).splitlines() if line.strip()]
    assert out.returncode == 2, out.stdout + out.stderr
    assert len(lines) == 1 and "does not answer" in lines[0], lines
    assert "Traceback" not in out.stderr


@pytest.mark.slow
def test_server_mode_end_to_end_and_a_server_lost_mid_run(tmp_path, monkeypatch):
    from lmforge.stages import prepare

    text = corpus(tmp_path / "corpus.txt")
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    args = text_args(text) + ["tracking=server"]
    monkeypatch.setenv("LMFORGE_TRACKING_URI", uri)
    with mlflow_server(tmp_path / "server", port):
        cfg = compose(args, root=tmp_path)
        stats = prepare.run(cfg)
        client, (r,) = runs(uri)
        assert r.info.run_name == "prepare" and r.info.status == "FINISHED"
        assert read_params(r) == section_params(cfg, ("seed", "data", "tokenizer"))
        assert read_params(r)["tokenizer.vocab_size"] == "400"
        assert r.data.metrics["tokens_train"] == stats["tokens"]["train"]
        assert r.info.artifact_uri.startswith("mlflow-artifacts:")  # proxied by the server
        got = Path(client.download_artifacts(r.info.run_id, "stats.json", str(tmp_path)))
        assert got.read_text() == (tmp_path / "artifacts/prepare/stats.json").read_text()
        assert (tmp_path / "server/artifacts").is_dir()

        # the server goes away while pretraining: training finishes, the model is written
        long = args + [
            "trainer.max_steps=150",
            "trainer.checkpoint_every_n_steps=5",
            "trainer.val_check_interval=100",
            "tracking.http_retries=0",
        ]
        log = open(tmp_path / "pretrain.log", "w")
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "pipelines/pretrain.py"), *long],
            env=env(LMFORGE_ROOT=str(tmp_path), LMFORGE_TRACKING_URI=uri),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        ckpts = tmp_path / ".lmforge/checkpoints/pretrain"
        deadline = time.time() + 120
        while time.time() < deadline and not list(ckpts.glob("*/step=*.ckpt")) and proc.poll() is None:
            time.sleep(0.05)
    # the server is stopped here (context exit), the stage still running
    assert proc.poll() is None, (tmp_path / "pretrain.log").read_text()[-3000:]
    assert proc.wait(timeout=300) == 0, (tmp_path / "pretrain.log").read_text()[-3000:]
    log.close()
    output = (tmp_path / "pretrain.log").read_text()
    assert "MLflow tracking failed" in output and "goes on without tracking" in output
    model = tmp_path / "artifacts/pretrain/model"
    assert (model / "model.safetensors").is_file() and (model / "lmforge.json").is_file()
    assert (tmp_path / "artifacts/pretrain/summary.json").is_file()
