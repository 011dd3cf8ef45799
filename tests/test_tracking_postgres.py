"""A shared tracking database: a real PostgreSQL and a real `mlflow server` on it (started as
`make server DB=postgres` starts them), four sweep jobs logging to it at once, and every run,
param, metric and artifact found again through the server. Skips where the PostgreSQL server
binaries or psycopg2 are missing (`.ci/run` installs them)."""

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import ROOT, compose
from mlflow.tracking import MlflowClient
from servers import env, free_port, postgres_mlflow_server
from test_sweeps import sweep
from test_tracking import corpus, section_params, text_args

from lmforge.track import postgres
from lmforge.track.store import read_params

if postgres.find_bindir() is None:
    MISSING = "the PostgreSQL server binaries (/usr/lib/postgresql/*/bin/initdb) are not installed"
elif importlib.util.find_spec("psycopg2") is None:
    MISSING = "psycopg2 (MLflow's PostgreSQL driver) is not installed"
else:
    MISSING = ""
needs_postgres = pytest.mark.skipif(bool(MISSING), reason=MISSING)


@contextmanager
def server_dir(tmp_path: Path):
    """The server's folder. Run by root, PostgreSQL runs as the `postgres` user, which cannot
    enter pytest's private tmp_path (mode 0700): then a folder of its own in the temp dir."""
    if os.geteuid() != 0:
        yield tmp_path / "server"
        return
    root = Path(tempfile.mkdtemp(prefix="lmforge-pg-test-"))
    root.chmod(0o711)
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_missing_postgres_is_one_line_saying_what_to_install(tmp_path):
    """`serve` without what it needs: one line saying what to install, exit status 2, nothing
    started or created. The module imports only the standard library and lmforge, so Python
    without site-packages (-S) is a real install without psycopg2 (and, where Debian's server is
    absent, without the server binaries, which are checked first)."""
    out = subprocess.run(
        [sys.executable, "-S", "-m", "lmforge.track.postgres", "serve", "--dir", str(tmp_path / "server")],
        env=env(PYTHONPATH=str(ROOT / "src")),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2, out.stderr
    assert out.stdout == "" and out.stderr.count("\n") == 1 and out.stderr.startswith("error: ")
    assert (
        "apt-get install postgresql" if postgres.find_bindir() is None else "pip install psycopg2-binary"
    ) in out.stderr
    assert not (tmp_path / "server").exists()  # nothing started, nothing created


@pytest.mark.slow
@needs_postgres
def test_four_parallel_sweep_jobs_on_a_postgres_tracking_server(tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    text = corpus(tmp_path / "corpus.txt")
    port, pg_port = free_port(), free_port()
    uri = f"http://127.0.0.1:{port}"
    # each job writes its outputs into a folder of its own (a stage's outputs are one per project:
    # parallel jobs would replace each other's): they share nothing but the tracking server
    args = text_args(text) + [
        "tracking=server",
        f"tracking.uri={uri}",
        "tokenizer.vocab_size=300",
        "paths.artifacts=${paths.root}/artifacts/seed-${seed}",
    ]
    seeds = (1, 2, 3, 4)
    with server_dir(tmp_path) as root:
        with postgres_mlflow_server(root, port, pg_port):
            sweep(
                "prepare",
                args + ["hydra/launcher=parallel", "hydra.launcher.n_jobs=4", "seed=" + ",".join(map(str, seeds))],
                tmp_path,
            )

            client = MlflowClient(tracking_uri=uri)
            exp = client.get_experiment_by_name("lmforge")
            runs = client.search_runs([exp.experiment_id], max_results=1000)
            (parent,) = [r for r in runs if r.data.tags.get("lmforge.kind") == "sweep"]
            children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
            assert len(runs) == 5 and len(children) == 4
            assert parent.info.status == "FINISHED" and parent.data.tags["lmforge.sweep.launcher"] == "JoblibLauncher"
            assert parent.data.metrics == {"jobs": 4.0, "jobs_failed": 0.0}
            assert sorted(r.info.run_name for r in children) == sorted(
                f"prepare #{i} seed={s}" for i, s in enumerate(seeds)
            )
            assert sorted(int(r.data.params["seed"]) for r in children) == list(seeds)
            for r in children:
                assert r.info.status == "FINISHED", r.data.tags.get("lmforge.error")
                seed = r.data.params["seed"]
                expected = compose(args + [f"seed={seed}"], root=tmp_path)
                assert read_params(r) == section_params(expected, ("seed", "data", "tokenizer"))
                stats_file = tmp_path / f"artifacts/seed-{seed}/prepare/stats.json"
                stats = json.loads(stats_file.read_text())
                assert r.data.metrics["tokens_train"] == stats["tokens"]["train"] > 0
                assert r.data.metrics["tokens_val"] == stats["tokens"]["val"] > 0
                assert r.data.metrics["wall_s"] > 0
                # the artifact store is proxied: the client fetches through the server, not from disk
                assert r.info.artifact_uri.startswith("mlflow-artifacts:")
                got = Path(client.download_artifacts(r.info.run_id, "stats.json", str(tmp_path / r.info.run_id)))
                assert got.read_text() == stats_file.read_text()

            # the runs are rows of the PostgreSQL database (not a sqlite file beside it)
            import psycopg2

            db = psycopg2.connect(host="127.0.0.1", port=pg_port, user=postgres.DB_USER, dbname=postgres.DB_NAME)
            try:
                with db.cursor() as cur:
                    cur.execute("SELECT count(*) FROM runs WHERE experiment_id = %s", (int(exp.experiment_id),))
                    assert cur.fetchone()[0] == 5
                    cur.execute("SELECT count(DISTINCT run_uuid) FROM params WHERE key = 'seed'")
                    assert cur.fetchone()[0] == 4
            finally:
                db.close()
            assert len(list((root / "artifacts").rglob("stats.json"))) == 4  # stored by the server
        # stopping the server stopped PostgreSQL too
        assert not postgres.Cluster(root / "pg", pg_port, postgres.find_bindir()).running()
