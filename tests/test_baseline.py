"""The results of the code are pinned by the smoke pipeline, so that a change which moves no result
lands without re-running the default pipeline, and one which moves a result cannot land without it.

tests/smoke_baseline.json holds the smoke pipeline's results (one thread per process,
tests/conftest.py) — `reports/metrics.json` and each fine-tune's best validation score — and the
md5 of the default run's `reports/metrics.json` it was recorded beside. The smoke run of this
checkout must give exactly those results. When a change moves them on purpose, `make baseline`
re-runs the default pipeline (`dvc repro`), then rewrites the file from this checkout: the new
baseline, `dvc.lock` and `reports/metrics.json` are committed together — the second test fails on
a baseline, `reports/metrics.json` and `dvc.lock` that are not from one run. A `make repro` that
only refreshes code hashes in `dvc.lock` (a change that moves no result) leaves them agreeing.
"""

from __future__ import annotations

import hashlib
import json

import pytest
import yaml
from imports import ROOT

BASELINE = ROOT / "tests" / "smoke_baseline.json"


METRICS = "reports/metrics.json"


def metrics_md5() -> str:
    return hashlib.md5((ROOT / METRICS).read_bytes()).hexdigest()


def locked_metrics_md5() -> set[str]:
    """The md5 that the committed dvc.lock records for reports/metrics.json (one per stage that
    writes it: one)."""
    stages = yaml.safe_load((ROOT / "dvc.lock").read_text())["stages"]
    return {o["md5"] for s in stages.values() for o in s.get("outs", []) if o["path"] == METRICS}


def stale_code() -> dict:
    """The code and conf deps that dvc.lock records otherwise than the checkout has them."""
    from dvc.repo import Repo

    stale = {}
    for stage, items in Repo(str(ROOT)).status().items():
        for item in items:
            for path, change in (item.get("changed deps", {}) if isinstance(item, dict) else {}).items():
                if path.startswith(("src/", "pipelines/", "conf/")):
                    stale.setdefault(stage, {})[path] = change
    return stale


def changed(old, new, key="") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        return [
            c for k in sorted(set(old) | set(new)) for c in changed(old.get(k), new.get(k), f"{key}.{k}".lstrip("."))
        ]
    return [] if old == new else [f"{key}: {old} -> {new}"]


def results(repo) -> dict:
    finetunes = sorted((repo / "artifacts" / "finetune").glob("*/*/summary.json"))
    return {
        "metrics": json.loads((repo / "reports" / "metrics.json").read_text()),
        "best_val_score": {
            f"{p.parent.parent.name}/{p.parent.name}": json.loads(p.read_text())["best_val_score"] for p in finetunes
        },
    }


def test_the_smoke_pipeline_gives_the_baseline_results(smoke_pipeline, request):
    repo, _ = smoke_pipeline
    got = results(repo)
    assert len(got["best_val_score"]) == 2 * len(got["metrics"]["tasks"])  # both inits of every task
    if request.config.getoption("--update-baseline"):
        stale = stale_code()
        assert not stale, f"dvc.lock is stale for this code: run `dvc repro` before the baseline ({stale})"
        BASELINE.write_text(json.dumps({"metrics_md5": metrics_md5(), **got}, indent=2) + "\n")
    baseline = json.loads(BASELINE.read_text())
    diff = changed({k: baseline[k] for k in got}, got)
    assert not diff, (
        "the smoke pipeline's results moved: if on purpose, run `make baseline` (the default pipeline, then "
        f"this file) and commit tests/smoke_baseline.json, dvc.lock and reports/metrics.json. {diff[:8]}"
    )


def test_the_baseline_metrics_and_dvc_lock_come_from_one_run():
    if not BASELINE.is_file():
        pytest.fail("tests/smoke_baseline.json is missing: run `make baseline`")
    assert locked_metrics_md5() == {metrics_md5()}, (
        f"{METRICS} is not the one dvc.lock records: commit the two that one `dvc repro` wrote"
    )
    assert json.loads(BASELINE.read_text())["metrics_md5"] == metrics_md5(), (
        f"tests/smoke_baseline.json was not recorded beside this {METRICS}: `make baseline` refreshes both"
    )
