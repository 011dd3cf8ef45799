"""A pretraining run killed with SIGKILL resumes from its last checkpoint and ends where an
uninterrupted run ends — the same weights, the same curves and MLflow history — and the killed
run's MLflow run is closed as KILLED by the run that resumed its work. SIGTERM and SIGINT stop it
at a step's end with a checkpoint there, its run KILLED, one line and exit status 128 + signal;
it resumes to the same weights too. A checkpoint of another
model shape is refused before training; a damaged one is moved aside."""

import re
import shutil
import signal
import time
from pathlib import Path

import pytest
import torch
from conftest import compose
from mlflow.tracking import MlflowClient
from safetensors.torch import load_file
from servers import signal_at_step, stage_process

from lmforge.errors import ConfigError
from lmforge.stages import prepare, pretrain
from lmforge.stages.common import stage
from lmforge.train.trainer import latest_checkpoint

ARGS = [
    "experiment=smoke",
    "trainer.precision=32-true",
    "trainer.max_steps=100",
    "trainer.checkpoint_every_n_steps=10",
    "trainer.val_check_interval=20",
    "progress=false",
]
CHECKPOINTS = Path(".lmforge/checkpoints/pretrain")


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    """The smoke corpus, prepared once; each test copies it into a root of its own."""
    root = tmp_path_factory.mktemp("prepared")
    prepare.run(compose(ARGS + ["tracking=none"], root=root))
    return root / "artifacts" / "prepare"


def project(prepared: Path, root: Path) -> Path:
    shutil.copytree(prepared, root / "artifacts" / "prepare")
    return root


def metric_rows(uri: str, run_id: str, key: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in MlflowClient(tracking_uri=uri).get_metric_history(run_id, key))


def pretrain_runs(uri: str):
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("lmforge")
    return client.search_runs([exp.experiment_id], "attributes.run_name = 'pretrain'", order_by=["start_time ASC"])


@pytest.fixture(scope="module")
def uninterrupted(prepared, tmp_path_factory) -> tuple[Path, dict]:
    """The run the interrupted ones must end as: (its root, its weights)."""
    a = project(prepared, tmp_path_factory.mktemp("uninterrupted"))
    pretrain.run(compose(ARGS, root=a))
    return a, load_file(str(a / "artifacts/pretrain/model/model.safetensors"))


def interrupt_once_checkpointed(root: Path, signum: int, log: Path, prelude: str = "") -> int:
    """Start the stage's process, send `signum` once it has a complete checkpoint (last.ckpt links
    to one once it is written), return its exit status."""
    proc = stage_process("pretrain", ARGS, root, log, prelude)
    deadline = time.time() + 180
    while time.time() < deadline and proc.poll() is None and not list((root / CHECKPOINTS).glob("*/last.ckpt")):
        time.sleep(0.02)
    assert proc.poll() is None, f"the run ended before it could be stopped:\n{log.read_text()[-3000:]}"
    proc.send_signal(signum)
    return proc.wait(timeout=60)


def curves(root: Path) -> dict[str, str]:
    return {name: (root / "artifacts/pretrain/curves" / name).read_text() for name in ("train.csv", "val.csv")}


def assert_same_weights(root: Path, reference: dict) -> None:
    resumed = load_file(str(root / "artifacts/pretrain/model/model.safetensors"))
    assert resumed.keys() == reference.keys()
    for k, v in reference.items():
        torch.testing.assert_close(resumed[k], v, rtol=0, atol=1e-6, msg=k)


def test_killed_run_resumes_to_the_same_weights_curves_and_history(prepared, uninterrupted, tmp_path):
    a, reference = uninterrupted
    b = project(prepared, tmp_path / "b")
    uri_a, uri_b = f"sqlite:///{a}/mlflow.db", f"sqlite:///{b}/mlflow.db"
    (uninterrupted_run,) = pretrain_runs(uri_a)

    assert interrupt_once_checkpointed(b, signal.SIGKILL, tmp_path / "killed.log") == -signal.SIGKILL
    assert not (b / "artifacts/pretrain").exists()  # nothing half-written for DVC to cache
    (killed,) = pretrain_runs(uri_b)
    assert killed.info.status == "RUNNING"  # as a killed process leaves it

    summary = pretrain.run(compose(ARGS, root=b))
    assert 0 < summary["resumed_from_step"] < 100 and summary["steps"] == 100
    assert_same_weights(b, reference)

    # the killed run is closed by the one that resumed its work, and each names the other
    killed, resuming = pretrain_runs(uri_b)
    assert killed.info.status == "KILLED" and resuming.info.status == "FINISHED"
    assert killed.data.tags["lmforge.resumed_by"] == resuming.info.run_id
    assert resuming.data.tags["lmforge.resumes"] == killed.info.run_id
    assert killed.data.tags["lmforge.resume_key"] == resuming.data.tags["lmforge.resume_key"]

    # the resumed run's curves hold every step from 0, as the uninterrupted run's do
    for key in ("train/loss", "val/loss"):
        rows = metric_rows(uri_b, resuming.info.run_id, key)
        assert rows and rows == metric_rows(uri_a, uninterrupted_run.info.run_id, key), key
    assert [s for s, _ in metric_rows(uri_b, resuming.info.run_id, "val/loss")] == [20, 40, 60, 80, 100]
    assert sorted(p.name for p in (a / "artifacts/pretrain/curves").glob("*.csv")) == ["train.csv", "val.csv"]
    assert curves(b) == curves(a)
    assert not (b / CHECKPOINTS).exists() or not any((b / CHECKPOINTS).rglob("*.ckpt"))


@pytest.mark.parametrize(
    "signum, at",
    [(signal.SIGTERM, 40), (signal.SIGINT, 13)],
    ids=["SIGTERM at a validated step", "SIGINT between validations"],
)
def test_a_signal_stops_at_a_checkpoint_and_the_rerun_resumes_to_the_same_weights(
    prepared, uninterrupted, tmp_path, signum, at
):
    root = project(prepared, tmp_path / "r")
    log = tmp_path / "stopped.log"
    proc = stage_process("pretrain", ARGS, root, log, signal_at_step(at, signum))
    assert proc.wait(timeout=180) == 128 + signum, log.read_text()[-3000:]
    text = log.read_text()
    assert "Traceback" not in text
    name = signal.Signals(signum).name
    last = text.strip().splitlines()[-1]
    # at the step's end (a validated step's: after its validation and checkpoint)
    step = re.fullmatch(
        rf"pretrain: stopped by {name} at step (\d+) \(checkpoint (.+)\); run the same command to resume", last
    )
    assert step and int(step[1]) == at, last
    assert not (root / "artifacts/pretrain").exists()
    (stopped,) = pretrain_runs(f"sqlite:///{root}/mlflow.db")
    assert stopped.info.status == "KILLED" and name in stopped.data.tags["lmforge.error"]
    saved = torch.load(step[2], map_location="cpu", weights_only=True)
    assert saved["global_step"] == at and not Path(step[2]).is_symlink()

    summary = pretrain.run(compose(ARGS, root=root))
    assert summary["resumed_from_step"] == at and summary["steps"] == 100
    assert_same_weights(root, uninterrupted[1])
    assert curves(root) == curves(uninterrupted[0])


def test_checkpoint_of_another_shape_is_refused(prepared, tmp_path):
    root = project(prepared, tmp_path / "r")
    args = ARGS + ["tracking=none", "trainer.max_steps=10", "trainer.keep_checkpoints=true"]
    pretrain.run(compose(args, root=root))
    (last,) = (root / CHECKPOINTS).glob("*/last.ckpt")
    # the same run, now configured wider: plant the old checkpoint where it would resume from
    wide = args + ["model.d_model=48", "model.n_heads=4"]
    with stage(compose(wide, root=root), "pretrain", pretrain.PARAMS) as ctx:
        target = pretrain.checkpoint_dir(ctx, pretrain.setup(ctx))
    assert target != last.parent
    target.mkdir(parents=True)
    (target / "last.ckpt").write_bytes(last.read_bytes())
    with pytest.raises(ConfigError, match=r"last\.ckpt.*different model shape"):
        pretrain.run(compose(wide, root=root))


def test_finished_run_leaves_no_checkpoint_and_changed_inputs_never_resume(prepared, tmp_path):
    """Checkpoints exist to resume a killed run: a finished stage deletes them, and a checkpoint
    left behind (keep_checkpoints) is only resumed on the same inputs."""
    from lmforge.fileio import content_digest

    root = project(prepared, tmp_path / "r")
    args = ARGS + ["tracking=none", "trainer.max_steps=10"]
    pretrain.run(compose(args, root=root))
    assert not any((root / CHECKPOINTS).rglob("*.ckpt"))

    kept = pretrain.run(compose(args + ["trainer.keep_checkpoints=true"], root=root))
    assert kept["resumed_from_step"] == 0 and list((root / CHECKPOINTS).rglob("last.ckpt"))
    tokens = root / "artifacts/prepare/tokens"
    before = content_digest(tokens)
    val = (tokens / "val.bin").read_bytes()
    (tokens / "val.bin").write_bytes(val[2:4] + val[2:])  # the inputs change: one token, same size
    assert content_digest(tokens) != before
    again = pretrain.run(compose(args + ["trainer.keep_checkpoints=true"], root=root))
    assert again["resumed_from_step"] == 0  # a fresh run, not the finished checkpoint


def test_a_damaged_checkpoint_is_moved_aside(prepared, tmp_path, caplog):
    """A checkpoint cut short (a kill during its write, a full disk) never blocks a re-run: it is
    moved aside with a warning and the newest readable one is resumed, or none."""
    root = project(prepared, tmp_path / "r")
    args = ARGS + ["tracking=none", "trainer.max_steps=20", "trainer.keep_checkpoints=true"]
    pretrain.run(compose(args, root=root))
    (ckpt_dir,) = (root / CHECKPOINTS).iterdir()
    good = ckpt_dir / "step=20.ckpt"
    assert (ckpt_dir / "last.ckpt").resolve() == good.resolve()
    older = ckpt_dir / "step=10.ckpt"
    shutil.copy2(good, older)
    data = good.read_bytes()
    good.write_bytes(data[: len(data) // 2])  # cut short
    time.sleep(0.01)

    assert latest_checkpoint(ckpt_dir) == older
    assert "cannot be read" in caplog.text and "moved the damaged checkpoint aside" in caplog.text
    assert sorted(p.name.split(".corrupt")[0] for p in ckpt_dir.glob("*.corrupt-*")) == ["last.ckpt", "step=20.ckpt"]
    older.write_bytes(b"not a checkpoint")
    assert latest_checkpoint(ckpt_dir) is None  # nothing readable left: a fresh start
    assert not list(ckpt_dir.glob("*.ckpt"))


# what submitit's handler of its preemption signal does in a SLURM job: requeue the job, then exit
SUBMITIT = """
import signal, sys
def requeue(signum, frame):
    open({marker!r}, "w").write("requeued")
    sys.exit(-1)
signal.signal(signal.SIGUSR2, requeue)
"""


def test_a_slurm_preemption_checkpoints_where_it_stands_then_submitit_requeues(prepared, uninterrupted, tmp_path):
    """In a job of the SLURM launcher, submitit's USR2 handler requeues the job: lmforge's runs first
    (the step ends, a checkpoint is saved there), then hands the signal over; the requeued run
    resumes from that step to an uninterrupted run's weights."""
    root = project(prepared, tmp_path / "r")
    log, marker = tmp_path / "stopped.log", tmp_path / "requeued"
    status = interrupt_once_checkpointed(root, signal.SIGUSR2, log, SUBMITIT.format(marker=str(marker)))
    assert status == 255 and marker.read_text() == "requeued", log.read_text()[-3000:]
    last = next(line for line in reversed(log.read_text().splitlines()) if line.startswith("pretrain: stopped"))
    step = re.fullmatch(
        r"pretrain: stopped by SIGUSR2 at step (\d+) \(checkpoint (.+)\); run the same command to resume", last
    )
    assert step, last
    assert torch.load(step[2], map_location="cpu", weights_only=True)["global_step"] == int(step[1])
    summary = pretrain.run(compose(ARGS, root=root))
    assert summary["resumed_from_step"] == int(step[1]) and summary["steps"] == 100
    assert_same_weights(root, uninterrupted[1])
