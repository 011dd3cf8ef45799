"""End to end: a copy of the repo runs the real `dvc repro` at smoke size, tracked in a real MLflow
store (the session's `smoke_pipeline`); what DVC records is what ran: a second repro does nothing,
`dvc exp run -S key=value` reaches exactly the stages that read the key (MLflow params, dvc.lock),
an unknown key fails before any stage, `dvc params diff` lists a change, an unchanged re-run leaves
`dvc metrics diff` empty, and a stale params.yaml is refused."""

import json
import math
import time
from pathlib import Path

import pytest
import yaml
from conftest import copy_repo, ran_stages, run_in

pytestmark = pytest.mark.slow

TASKS = ("topic", "sentiment", "ner", "qa", "summarization", "translation")
PRIMARY = {
    "topic": ("accuracy", 1),
    "sentiment": ("accuracy", 1),
    "ner": ("f1", 1),
    "qa": ("f1", 100),
    "summarization": ("rougeL", 100),
    "translation": ("bleu", 100),
}


def mlflow_runs(repo: Path):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{repo}/mlflow.db")
    exp = client.get_experiment_by_name("lmforge")
    return client.search_runs([exp.experiment_id], max_results=1000)


def lock(repo: Path) -> dict:
    return yaml.safe_load((repo / "dvc.lock").read_text())["stages"]


def test_repro_runs_every_stage_and_tracks_it(smoke_pipeline):
    repo, log = smoke_pipeline
    assert ran_stages(log) == {
        "conf",
        "prepare",
        "pretrain",
        "report",
        *(f"finetune@{t}" for t in TASKS),
        *(f"evaluate@{t}" for t in TASKS),
    }
    metrics = json.loads((repo / "reports/metrics.json").read_text())
    p = metrics["pretrain"]
    assert 0 < p["val_loss"] < math.log(400) + 0.5 and p["val_ppl"] == pytest.approx(math.exp(p["val_loss"]), rel=1e-6)
    assert set(p) == {"val_loss", "val_ppl", "steps", "n_params"}  # results only: no timings
    assert set(metrics["tasks"]) == set(TASKS)
    for task, m in metrics["tasks"].items():
        key, scale = PRIMARY[task]
        assert m["metric"] == key and m["scale"] == scale
        for who in ("pretrained", "scratch", "baseline"):
            assert all(0.0 <= v <= scale for v in m[who].values()), (task, who, m[who])
    assert metrics["tasks"]["topic"]["baseline"]["accuracy"] < 0.75
    assert metrics["tasks"]["summarization"]["baseline"]["rouge1"] > 10
    timings = (repo / "reports/plots/timings.csv").read_text().splitlines()
    assert timings[0] == "stage,seconds" and len(timings) == 1 + 2 + 3 * len(TASKS)  # every stage that ran
    stages = {row.split(",")[0] for row in timings[1:]}
    assert stages >= {"prepare", "pretrain", "finetune@qa (scratch)", "evaluate@ner"}
    speed = json.loads((repo / "reports/runtime/pretrain.json").read_text())
    assert speed["tokens_per_s"] > 0 and speed["mfu"] > 0  # measured even on a run of a few steps
    report = (repo / "reports/report.md").read_text()
    assert "perplexity" in report and "| topic | accuracy | 0–1 |" in report and "Contamination" in report
    assert "| translation | bleu | 0–100 |" in report and "| ner/test |" in report
    assert "## Fine-tuning methods" in report and "| topic | scratch | full |" in report
    runtime = (repo / "reports/runtime.md").read_text()
    assert f"{speed['tokens_per_s']:,.0f} tokens/s" in runtime and "| finetune@topic (scratch) | " in runtime


def test_no_out_holds_what_the_machine_measured(smoke_pipeline):
    """Wall times, threads, memory, throughput and resume points live in reports/runtime/, so that
    the same work gives the same outs (and dvc.lock) on any machine."""
    repo, _ = smoke_pipeline
    measured = {"wall_s", "threads", "peak_memory_mb", "tokens_per_s", "mfu", "peak_flops", "resumed_from_step"}
    outs = [repo / "artifacts/prepare/stats.json", repo / "artifacts/pretrain/summary.json"]
    outs += [*(repo / "artifacts/finetune").glob("*/*/summary.json"), *(repo / "reports/metrics").glob("*.json")]
    assert len(outs) == 2 + 3 * len(TASKS)
    for path in outs:
        assert not measured & set(json.loads(path.read_text())), path
    assert not any(word in (repo / "reports/report.md").read_text() for word in ("tokens/s", "seconds", "MFU"))
    for task in TASKS:
        assert (repo / f"reports/plots/scores/{task}.csv").read_text().startswith("system,score\npretrained,")
    model_dir = repo / "artifacts/pretrain/model"
    assert {"lmforge.json", "model.safetensors", "tokenizer.json"} <= {f.name for f in model_dir.iterdir()}
    assert not list(repo.rglob("*.pt")) and not list(repo.rglob("*.pkl"))

    runs = mlflow_runs(repo)
    parents = [r for r in runs if r.data.tags.get("lmforge.kind") == "pipeline"]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    assert sorted(r.info.run_name for r in children) == sorted(
        [
            "prepare",
            "pretrain",
            "report",
            *(f"finetune/{t}/{i}" for t in TASKS for i in ("pretrained", "scratch")),
            *(f"evaluate/{t}" for t in TASKS),
        ]
    )
    assert all(r.info.status == "FINISHED" for r in children)
    # params: the sections each stage reads, from params.yaml — the same values dvc.lock records
    params = yaml.safe_load((repo / "params.yaml").read_text())
    pre = next(r for r in children if r.info.run_name == "pretrain")
    assert pre.data.params["optim.lr"] == str(params["optim"]["lr"]) and pre.data.params["model.d_model"] == "32"
    assert not any(k.startswith(("task.", "data.", "paths.")) for k in pre.data.params)
    ft = next(r for r in children if r.info.run_name == "finetune/qa/pretrained")
    assert ft.data.params["task.qa.doc_stride"] == str(params["task"]["qa"]["doc_stride"])
    assert not any(k.startswith(("task.topic", "optim.")) for k in ft.data.params)
    assert lock(repo)["pretrain"]["params"]["params.yaml"]["optim"] == params["optim"]
    assert {"train/loss", "val/loss", "perf/tokens_per_s", "train/lr"} <= set(pre.data.metrics)

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{repo}/mlflow.db")
    for task in TASKS:
        assert client.get_model_version_by_alias(f"lmforge-{task}", "current").tags["init"] == "pretrained"
        assert client.get_model_version_by_alias(f"lmforge-{task}", "current-scratch").tags["init"] == "scratch"


def test_second_repro_does_nothing_and_is_quick(smoke_pipeline, tmp_path):
    repo = copy_repo(smoke_pipeline[0], tmp_path / "repo")  # the shared one is read by other workers
    before = len(mlflow_runs(repo))
    t = time.perf_counter()
    out = run_in(["dvc", "repro"], repo)
    took = time.perf_counter() - t
    assert ran_stages(out.stdout) == set() and len(mlflow_runs(repo)) == before
    assert "up to date" in run_in(["dvc", "status"], repo).stdout
    assert took < 30  # generous on a loaded 2-core machine; the README quotes the measured time


def test_a_set_param_reaches_exactly_the_stages_that_read_it(smoke_pipeline, tmp_path):
    """A fine-tuning key re-runs its task's stages alone, a pretraining key pretraining and every stage
    after it. (The task's key first: after a new pretrained model every task's stages re-run.)"""
    repo = copy_repo(smoke_pipeline[0], tmp_path / "repo")
    before = lock(repo)
    out = run_in(["dvc", "exp", "run", "-S", "task=[topic,ner]", "-S", "task.topic.lr=0.005"], repo)
    assert ran_stages(out.stdout) == {"finetune@topic", "evaluate@topic", "report"}
    after = lock(repo)  # pretraining and the other task are left alone
    assert after["pretrain"] == before["pretrain"] and after["finetune@ner"] == before["finetune@ner"]
    ft = max(
        (r for r in mlflow_runs(repo) if r.info.run_name == "finetune/topic/pretrained"),
        key=lambda r: r.info.start_time,
    )
    assert ft.data.params["task.topic.lr"] == "0.005"

    out = run_in(["dvc", "exp", "run", "-S", "optim.lr=0.004", "-S", "task=[topic]"], repo)
    assert ran_stages(out.stdout) == {"pretrain", "finetune@topic", "evaluate@topic", "report"}
    after = lock(repo)
    assert after["pretrain"]["params"]["params.yaml"]["optim"]["lr"] == 0.004
    assert after["pretrain"]["outs"] != before["pretrain"]["outs"]
    pre = max((r for r in mlflow_runs(repo) if r.info.run_name == "pretrain"), key=lambda r: r.info.start_time)
    assert pre.data.params["optim.lr"] == "0.004"
    diff = run_in(["dvc", "params", "diff"], repo).stdout
    assert "optim.lr" in diff and "0.002" in diff and "0.004" in diff


def test_a_key_no_stage_reads_fails_before_any_stage(smoke_pipeline, tmp_path):
    repo = copy_repo(smoke_pipeline[0], tmp_path / "repo")
    params = (repo / "params.yaml").read_text()
    for args, named in (
        (["-S", "+optim.lrr=0.1"], "optim.lrr"),
        (["-S", "optim.beta1=1.5"], "optim.beta1"),
        (["-S", "+task.topic.foo=1"], "task.topic.foo"),
        (["-S", "model=nope"], "nope"),
        (["-S", "task=nope"], "Could not find 'task/nope'; Available options in 'task': ag_news,"),
        (["-S", "task=[topic,nope]"], "task=nope: no such task (conf/task/<name>.yaml); the tasks are: ag_news,"),
        (  # Hydra would merge the empty map into the configured one: refused, naming `~`
            ["-S", "task=sst2_local", "-S", "task.sst2_local.data.label_map={}"],
            "to empty it, delete it: '~task.sst2_local.data.label_map'",
        ),
    ):
        out = run_in(["dvc", "exp", "run", *args], repo, check=False)
        assert out.returncode != 0 and named in out.stdout + out.stderr, (args, out.stderr[-2000:])
        (said,) = [line for line in out.stderr.splitlines() if line.startswith("ERROR")]  # one line
        assert named in said and "search path" not in out.stderr, out.stderr[-2000:]
        assert ran_stages(out.stdout) == set()
    assert (repo / "params.yaml").read_text() == params


def test_an_unchanged_rerun_leaves_the_metrics_diff_and_the_lock_unchanged(smoke_pipeline, tmp_path):
    """The same work gives the same records: no wall time or other measurement in an out."""
    repo = copy_repo(smoke_pipeline[0], tmp_path / "repo")
    run_in(["git", "add", "reports/metrics.json", "dvc.lock"], repo)
    run_in(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "results"], repo)
    before, lock_before = (repo / "reports/metrics.json").read_text(), (repo / "dvc.lock").read_text()
    stages = ["prepare", "pretrain", "finetune@topic", "evaluate@topic", "evaluate@summarization", "report"]
    out = run_in(["dvc", "repro", "-f", "-s", *stages], repo)
    assert ran_stages(out.stdout) == set(stages)
    assert run_in(["dvc", "metrics", "diff"], repo).stdout.strip() == ""
    assert (repo / "reports/metrics.json").read_text() == before
    assert (repo / "dvc.lock").read_text() == lock_before


def test_a_stale_params_yaml_is_refused(smoke_pipeline, tmp_path):
    """`dvc repro` never recomposes params.yaml: after an edit of conf/, a stage refuses to run on
    the old one instead of silently ignoring the edit; recomposing lets the pipeline go on, what is
    left to run being the stages that read the edited key (running them: the set param's test)."""
    repo = copy_repo(smoke_pipeline[0], tmp_path / "repo")
    conf = repo / "conf/task/topic.yaml"
    conf.write_text(conf.read_text().replace("lr: 0.001", "lr: 0.0015"))
    # the whole pipeline stops at its first stage, naming the command that recomposes params.yaml
    out = run_in(["dvc", "repro"], repo, check=False)
    assert out.returncode != 0 and ran_stages(out.stdout) == {"conf"}, out.stdout[-2000:]
    (said,) = [line for line in (out.stdout + out.stderr).splitlines() if line.startswith("error: ")]
    assert "conf/ is now" in said and "`make params`" in said
    # and a stage run alone refuses too
    out = run_in(["dvc", "repro", "-f", "-s", "evaluate@topic"], repo, check=False)
    assert out.returncode != 0 and "was composed from another conf/" in out.stdout + out.stderr
    run_in(["python", "-m", "lmforge.params"], repo)
    assert yaml.safe_load((repo / "params.yaml").read_text())["task"]["topic"]["lr"] == 0.0015
    out = run_in(["dvc", "repro", "conf"], repo)  # the check passes, and re-runs nothing of its own
    assert ran_stages(out.stdout) == {"conf"}
    status = json.loads(run_in(["dvc", "status", "--json"], repo).stdout)  # what `dvc repro` would run now
    assert set(status) == {"finetune@topic", "evaluate@topic", "report"}, status
