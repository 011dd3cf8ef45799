"""A shared tracking database: a real PostgreSQL that the environment provides, as CI systems
provide services (`.ci/run` starts Debian's cluster and exports its address), a real `mlflow
server` on a fresh database in it (as `make server BACKEND=postgresql://...` runs it), four sweep
jobs logging to it at once, and every run, param, metric and artifact found again through the
server and in the database's rows.

$LMFORGE_TEST_POSTGRES names the server, `postgresql://<user>:<password>@<host>:<port>/<database>`,
as a role that may create databases; without it (or without psycopg2) the test skips."""

import importlib.util
import json
import os
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from conftest import compose
from mlflow.tracking import MlflowClient
from servers import free_port, mlflow_server
from test_sweeps import sweep
from test_tracking import corpus, section_params, text_args

from lmforge.track.store import read_params

DSN = os.environ.get("LMFORGE_TEST_POSTGRES", "")
if not DSN:
    MISSING = "no PostgreSQL server given ($LMFORGE_TEST_POSTGRES; .ci/run starts one)"
elif importlib.util.find_spec("psycopg2") is None:
    MISSING = "psycopg2 (MLflow's PostgreSQL driver) is not installed"
else:
    MISSING = ""
pytestmark = pytest.mark.skipif(bool(MISSING), reason=MISSING)


@pytest.fixture
def database():
    """A database of this test's own in the given server (its SQLAlchemy URL), dropped after it."""
    import psycopg2
    from psycopg2 import sql

    name = f"lmforge_test_{uuid.uuid4().hex[:12]}"
    admin = psycopg2.connect(DSN)
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        yield urlsplit(DSN)._replace(path=f"/{name}").geturl()
    finally:
        with admin.cursor() as cur:
            cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        admin.close()


@pytest.mark.slow
def test_four_parallel_sweep_jobs_on_a_postgres_tracking_server(database, tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    text = corpus(tmp_path / "corpus.txt")
    port = free_port()
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
    root = tmp_path / "server"
    with mlflow_server(root, port, backend=database):
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

        db = psycopg2.connect(database)
        try:
            with db.cursor() as cur:
                cur.execute("SELECT count(*) FROM runs WHERE experiment_id = %s", (int(exp.experiment_id),))
                assert cur.fetchone()[0] == 5
                cur.execute("SELECT count(DISTINCT run_uuid) FROM params WHERE key = 'seed'")
                assert cur.fetchone()[0] == 4
        finally:
            db.close()
        assert len(list((root / "artifacts").rglob("stats.json"))) == 4  # stored by the server
        assert not (root / "mlflow.db").exists()
