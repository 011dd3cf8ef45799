"""Hydra sweeps in MLflow: one parent run per sweep, one child per job named after its overrides,
holding its stage's sections as params; failed jobs recorded and the sweep goes on; Optuna gets
the optimised metric and the best trial lands on the parent; parallel launchers (joblib,
submitit_local) lose nothing in the shared sqlite store; sweep folders never collide."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, compose
from mlflow.tracking import MlflowClient
from servers import env
from test_tracking import corpus, section_params, text_args

from lmforge.errors import ConfigError
from lmforge.track.run import metric_value
from lmforge.track.store import read_params


def sweep(stage: str, args: list[str], root: Path, timeout: float = 600) -> str:
    out = subprocess.run(
        [sys.executable, str(ROOT / f"pipelines/{stage}.py"), "-m", *args],
        env=env(LMFORGE_ROOT=str(root)),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-5000:]
    return out.stdout + out.stderr


def sweep_runs(root: Path):
    client = MlflowClient(tracking_uri=f"sqlite:///{root}/mlflow.db")
    exp = client.get_experiment_by_name("lmforge")
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    (parent,) = [r for r in runs if r.data.tags.get("lmforge.kind") == "sweep"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(runs) == len(children) + 1  # every run of the sweep is under its parent
    return client, parent, children


def test_metric_value_reads_a_nested_summary_key():
    summary = {"val_loss": 2.5, "tokens": {"train": 10}, "topic": {"pretrained": {"best_val_score": 0.75}}}
    assert metric_value(summary, "val_loss") == 2.5
    assert metric_value(summary, "tokens.train") == metric_value(summary, "tokens/train") == 10.0
    assert metric_value({"topic": summary["topic"]}, "*.pretrained.best_val_score") == 0.75
    with pytest.raises(
        ConfigError,
        match=r"optimized_metric='\*\.pretrained\.best_val_score' is not in the "
        r"stage's summary \(at '\*'",
    ):
        metric_value(summary, "*.pretrained.best_val_score")  # `*` needs exactly one key there
    with pytest.raises(ConfigError, match=r"at 'val_los'.*'val_loss'"):
        metric_value(summary, "val_los")


def test_sweep_is_one_parent_run_and_failed_jobs_do_not_stop_it(tmp_path):
    text = corpus(tmp_path / "corpus.txt")
    missing = tmp_path / "missing.txt"
    # 4 jobs: vocab 100 is an invalid config (fails before its stage), a missing file fails inside it
    out = sweep(
        "prepare",
        [
            "experiment=smoke",
            "data=text_files",
            "progress=false",
            "tokenizer.vocab_size=100,400",
            f"data.text_files.paths=[{text}],[{missing}]",
        ],
        tmp_path,
    )
    client, parent, children = sweep_runs(tmp_path)
    # each failed job is one line, as a single run's bad input is: no traceback
    failures = [line for line in out.splitlines() if "job failed:" in line]
    assert len(failures) == 3 and "Traceback" not in out, out[-3000:]
    assert sum("tokenizer.vocab_size" in line for line in failures) == 2
    assert sum(str(missing) in line for line in failures) == 1

    assert parent.info.status == "FINISHED"
    assert (
        parent.info.run_name == f"sweep prepare tokenizer.vocab_size=100,400 data.text_files.paths=[{text}],[{missing}]"
    )
    assert parent.data.tags["lmforge.sweep.overrides"] == (
        f"experiment=smoke data=text_files progress=false tokenizer.vocab_size=100,400 "
        f"data.text_files.paths=[{text}],[{missing}]"
    )
    assert parent.data.metrics == {"jobs": 4.0, "jobs_failed": 3.0}
    by_name = {r.info.run_name: r for r in children}
    assert sorted(by_name) == sorted(
        f"prepare #{i} tokenizer.vocab_size={v} data.text_files.paths=[{p}]"
        for i, (v, p) in enumerate((v, p) for v in (100, 400) for p in (text, missing))
    )
    ok = by_name[f"prepare #2 tokenizer.vocab_size=400 data.text_files.paths=[{text}]"]
    assert ok.info.status == "FINISHED" and ok.data.metrics["tokens_train"] > 0
    # its params: the prepare stage's sections (seed, data, tokenizer), checked; nothing else
    ok_cfg = compose(
        ["experiment=smoke", "data=text_files", "tokenizer.vocab_size=400", f"data.text_files.paths=[{text}]"],
        root=tmp_path,
    )
    assert read_params(ok) == section_params(ok_cfg, ("seed", "data", "tokenizer"))
    failed = [r for r in children if r is not ok]
    assert all(r.info.status == "FAILED" for r in failed)
    # every job has the same params, failed ones too (as given when the check is what failed)
    assert all(set(read_params(r)) == set(read_params(ok)) for r in failed)
    errors = sorted(r.data.tags["lmforge.error"].split(":")[0] for r in failed)
    assert errors == ["ConfigError", "ConfigError", "DataError"]
    # a comparison table of the jobs is written into the sweep folder and logged on the parent
    sweep_dir = Path(parent.data.tags["lmforge.sweep.dir"])
    table = (sweep_dir / "compare" / "compare.md").read_text()
    assert "params that differ: data.text_files.paths, tokenizer.vocab_size\n" in table
    assert "compare/compare.md" in [a.path for a in client.list_artifacts(parent.info.run_id, "compare")]


def test_optuna_sweep_optimises_the_returned_metric_and_logs_the_best_trial(tmp_path):
    text = corpus(tmp_path / "corpus.txt")
    # larger vocabularies need fewer tokens: minimising tokens.train picks the largest one tried;
    # 100 is invalid: its trials fail and the study goes on
    sweep(
        "prepare",
        text_args(text)
        + [
            "hparams_search=optuna",
            "optimized_metric=tokens.train",
            "tokenizer.vocab_size=choice(100,300,400,500)",
            "hydra.sweeper.n_trials=6",
        ],
        tmp_path,
    )
    client, parent, children = sweep_runs(tmp_path)
    assert len(children) == 6
    finished = [r for r in children if r.info.status == "FINISHED"]
    assert finished and all(r.data.metrics["objective"] == r.data.metrics["tokens_train"] for r in finished)
    best = min(finished, key=lambda r: r.data.metrics["objective"])
    assert parent.data.metrics["best/objective"] == best.data.metrics["objective"]
    assert parent.data.tags["lmforge.sweep.best_run_id"] == best.info.run_id
    assert parent.data.params["best.tokenizer.vocab_size"] == best.data.params["tokenizer.vocab_size"]
    tried = {int(r.data.params["tokenizer.vocab_size"]) for r in finished}
    assert int(parent.data.params["best.tokenizer.vocab_size"]) == max(tried)
    assert all(r.info.status == "FAILED" for r in children if r.data.params["tokenizer.vocab_size"] == "100")
    assert parent.data.metrics["jobs_failed"] == len(children) - len(finished)
    # Optuna's own verdict agrees, and is logged on the parent
    results = yaml.safe_load((Path(parent.data.tags["lmforge.sweep.dir"]) / "optimization_results.yaml").read_text())
    assert results["best_value"] == best.data.metrics["objective"]
    assert "optimization_results.yaml" in [a.path for a in client.list_artifacts(parent.info.run_id)]


def test_sweeps_started_in_the_same_second_never_share_a_folder(tmp_path):
    text = corpus(tmp_path / "corpus.txt")
    cmd = [sys.executable, str(ROOT / "pipelines/prepare.py"), "-m", *text_args(text), "tracking=none", "seed=1,2"]
    procs = [
        subprocess.Popen(
            cmd, env=env(LMFORGE_ROOT=str(tmp_path)), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-3000:]
    dirs = sorted((tmp_path / "multirun" / "prepare").iterdir())
    assert len(dirs) == 2
    for d in dirs:  # each sweep: its own folder, one numbered subfolder per job
        assert sorted(p.name for p in d.iterdir() if p.is_dir() and p.name.isdigit()) == ["0", "1"]


@pytest.mark.slow
def test_joblib_sweep_of_four_jobs_loses_no_run_param_or_metric(tmp_path):
    from lmforge.stages import prepare, pretrain

    text = corpus(tmp_path / "corpus.txt")
    args = text_args(text)
    prepare.run(compose(args + ["tracking=none"], root=tmp_path))
    seeds = (1, 2, 3, 4)
    sweep(
        "pretrain",
        args + ["hydra/launcher=parallel", "hydra.launcher.n_jobs=4", "seed=" + ",".join(map(str, seeds))],
        tmp_path,
    )
    client, parent, children = sweep_runs(tmp_path)
    assert parent.data.tags["lmforge.sweep.launcher"] == "JoblibLauncher"
    assert parent.info.status == "FINISHED" and parent.data.metrics["jobs"] == 4
    assert sorted(r.info.run_name for r in children) == sorted(f"pretrain #{i} seed={s}" for i, s in enumerate(seeds))
    model_keys = None
    for r in children:
        assert r.info.status == "FINISHED"
        seed = int(r.data.params["seed"])
        params = read_params(r)
        expected = section_params(
            compose(args + [f"seed={seed}"], root=tmp_path), tuple(s for s in pretrain.PARAMS if s != "model")
        )
        assert {k: v for k, v in params.items() if not k.startswith("model.")} == expected  # every param, exactly
        keys = {k for k in params if k.startswith("model.")}  # the backbone's settings, as it was built
        assert model_keys in (None, keys) and "model.d_model" in keys
        model_keys = keys
        history = client.get_metric_history(r.info.run_id, "train/loss")
        assert len({m.step for m in history}) == len(history) == 10  # every 2nd of 20 steps
        assert {"final/val_loss", "wall_s"} <= set(r.data.metrics)
    # each job wrote into its own numbered folder of one sweep folder
    sweep_dir = Path(parent.data.tags["lmforge.sweep.dir"])
    outs = sorted(r.data.tags["lmforge.sweep.output_dir"] for r in children)
    assert outs == [str(sweep_dir / str(i)) for i in range(4)]
    assert json.loads((sweep_dir / "mlflow_sweep.json").read_text())["run_id"] == parent.info.run_id


@pytest.mark.slow
def test_submitit_local_launcher_runs_the_jobs_as_children(tmp_path):
    text = corpus(tmp_path / "corpus.txt")
    sweep("prepare", text_args(text) + ["hydra/launcher=processes", "tokenizer.vocab_size=300,400"], tmp_path)
    _, parent, children = sweep_runs(tmp_path)
    assert parent.data.tags["lmforge.sweep.launcher"] == "LocalLauncher"
    assert sorted(r.data.params["tokenizer.vocab_size"] for r in children) == ["300", "400"]
    assert all(r.info.status == "FINISHED" for r in children) and parent.info.status == "FINISHED"


@pytest.mark.slow
def test_finetune_lr_preset_tunes_one_task(tmp_path):
    """`hparams_search=finetune_lr task=<one>` with that task's search space (the README's
    example): each trial fine-tunes the task (pretrained init) with its own lr and dropout and
    returns its best validation score; the best trial's values land on the parent."""
    from lmforge.stages import prepare, pretrain

    args = ["experiment=smoke", "trainer.precision=32-true", "progress=false"]
    prepare.run(compose(args + ["tracking=none"], root=tmp_path))
    pretrain.run(compose(args + ["tracking=none"], root=tmp_path))
    sweep(
        "finetune",
        args
        + [
            "hparams_search=finetune_lr",
            "task=topic",
            "task.topic.lr=tag(log, interval(1e-4, 3e-3))",
            "task.topic.dropout=interval(0.0, 0.3)",
            "hydra.sweeper.n_trials=2",
        ],
        tmp_path,
    )
    _, parent, children = sweep_runs(tmp_path)
    assert len(children) == 2 and all(r.info.status == "FINISHED" for r in children), [
        r.data.tags.get("lmforge.error") for r in children
    ]
    assert len({r.data.params["task.topic.lr"] for r in children}) == 2  # the trials' own values reached them
    assert all(r.data.tags["lmforge.init"] == "pretrained" for r in children)
    assert all(r.data.metrics["objective"] == r.data.metrics["final/best_val_score"] for r in children)
    best = max(children, key=lambda r: r.data.metrics["objective"])
    assert parent.data.metrics["best/objective"] == best.data.metrics["objective"]
    assert parent.data.params["best.task.topic.lr"] == best.data.params["task.topic.lr"]
    assert parent.data.params["best.task.topic.dropout"] == best.data.params["task.topic.dropout"]
