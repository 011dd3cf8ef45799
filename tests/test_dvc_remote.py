"""Results can be shared: after the smoke pipeline, `dvc push` to a remote (a temporary folder); a
fresh `git clone` then `dvc pull`s every output, `dvc status` is clean and `dvc repro` runs nothing."""

from __future__ import annotations

import pytest
from conftest import copy_repo, ran_stages, run_in

pytestmark = pytest.mark.slow

GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]


def test_push_then_pull_in_a_fresh_clone(smoke_pipeline, tmp_path):
    repo = copy_repo(smoke_pipeline[0], tmp_path / "repo")
    remote = tmp_path / "remote"
    run_in(["dvc", "remote", "add", "-d", "shared", str(remote)], repo)
    run_in(["git", "add", "dvc.lock", "reports/metrics.json", ".dvc/config"], repo)
    run_in([*GIT, "commit", "-qm", "results"], repo)
    pushed = run_in(["dvc", "push"], repo).stdout
    assert "pushed" in pushed and any(remote.rglob("*"))

    clone = tmp_path / "clone"
    run_in(["git", "clone", "-q", str(repo), str(clone)], tmp_path)
    assert not (clone / "artifacts").exists()
    assert "changed" in run_in(["dvc", "status"], clone).stdout or "deleted" in run_in(["dvc", "status"], clone).stdout
    run_in(["dvc", "pull"], clone)
    for out in (
        "artifacts/prepare/tokens/train.bin",
        "artifacts/pretrain/model/model.safetensors",
        "artifacts/finetune/qa/scratch/model/lmforge.json",
        "reports/metrics/translation.json",
        "reports/report.md",
        "artifacts/pretrain/curves/val.csv",
    ):
        assert (clone / out).read_bytes() == (repo / out).read_bytes(), out
    assert "up to date" in run_in(["dvc", "status"], clone).stdout
    assert ran_stages(run_in(["dvc", "repro"], clone).stdout) == set()
