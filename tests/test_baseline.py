"""The results of the code are pinned by the smoke pipeline, so that a change which moves no result
lands without re-running the default pipeline, and one which moves a result cannot land without it.

tests/smoke_baseline.json holds the smoke pipeline's results (one thread per process,
tests/conftest.py) — `reports/metrics.json` and each fine-tune's best validation score — and what
it was recorded beside: a digest of the code and conf files that `dvc.lock` records, and the md5 of
the default run's `reports/metrics.json`. The smoke run of this checkout must give exactly those
results. When a change moves them on purpose, `make baseline` re-runs the default pipeline (`dvc
repro`), then rewrites the file from this checkout: the new baseline, `dvc.lock` and
`reports/metrics.json` are committed together — the second test fails on a `reports/metrics.json`
that `dvc.lock` does not record, and on a baseline that matches neither their code nor their
results. Either may change alone: a `make repro` after a change that moves no result refreshes
only the code's hashes, one on another kind of host (another precision) only the results.
"""

from __future__ import annotations

import hashlib
import json

import pytest
import yaml
from imports import ROOT

BASELINE = ROOT / "tests" / "smoke_baseline.json"


METRICS = "reports/metrics.json"


def locked_code_digest() -> str:
    """A digest of the code and conf files (path, md5) that the committed dvc.lock records."""
    stages = yaml.safe_load((ROOT / "dvc.lock").read_text())["stages"]
    files = sorted(
        {
            (d["path"], d["md5"])
            for s in stages.values()
            for d in s["deps"]
            if d["path"].startswith(("src/", "pipelines/", "conf/"))
        }
    )
    return hashlib.sha256(json.dumps(files).encode()).hexdigest()


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
        BASELINE.write_text(
            json.dumps({"dvc_lock_code": locked_code_digest(), "metrics_md5": metrics_md5(), **got}, indent=2) + "\n"
        )
    baseline = json.loads(BASELINE.read_text())
    diff = changed({k: baseline[k] for k in got}, got)
    assert not diff, (
        "the smoke pipeline's results moved: if on purpose, run `make baseline` (the default pipeline, then "
        f"this file) and commit tests/smoke_baseline.json, dvc.lock and reports/metrics.json. {diff[:8]}"
    )


def test_the_baseline_and_dvc_lock_come_from_the_same_code_or_results():
    if not BASELINE.is_file():
        pytest.fail("tests/smoke_baseline.json is missing: run `make baseline`")
    assert locked_metrics_md5() == {metrics_md5()}, (
        f"{METRICS} is not the one dvc.lock records: commit the two that one `dvc repro` wrote"
    )
    recorded = json.loads(BASELINE.read_text())
    assert recorded["dvc_lock_code"] == locked_code_digest() or recorded["metrics_md5"] == metrics_md5(), (
        f"tests/smoke_baseline.json was recorded beside neither this dvc.lock's code nor this {METRICS}: "
        "`make baseline` refreshes all three"
    )
