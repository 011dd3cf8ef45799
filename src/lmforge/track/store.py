"""The MLflow store: connecting to it (failing fast, with what would work), the experiment, the
tags every run carries, lossless params, and the processes behind runs (to tell a run that is
still going from one whose process was killed)."""

from __future__ import annotations

import logging
import os
import socket
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

from lmforge.errors import ConfigError, first_line

log = logging.getLogger(__name__)

MAX_PARAM_LEN = 6000  # MLflow's limit on a param value
PART = "/part-"  # continuation keys of a long param: "<key>/part-2", "<key>/part-3", …
PARTS_TAG = "lmforge.param_parts."  # + key: how many parts a long param was split into
SESSION_TAG = "lmforge.session"
KIND_TAG = "lmforge.kind"
ERROR_TAG = "lmforge.error"
PROCESS_TAG = "lmforge.process"  # host:pid:start time of the process that opened the run
ENV_PARENT = "LMFORGE_PARENT_RUN_ID"


def _proc_stat(pid: int) -> tuple[int, str] | None:
    """(parent pid, start time) of a process, from /proc; None where /proc is absent."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[1]), fields[19]


def process_key(pid: int | None = None) -> str:
    """host:pid:start time — names a process for as long as it lives, never a later one."""
    pid = pid or os.getpid()
    st = _proc_stat(pid)
    return f"{socket.gethostname()}:{pid}:{st[1] if st else 0}"


def process_alive(key: str) -> bool:
    """False only when `key`'s process is known to be gone (same host, pid dead or reused)."""
    host, pid, start = key.rsplit(":", 2)
    if host != socket.gethostname():
        return True  # cannot tell: leave it
    st = _proc_stat(int(pid))
    return st is not None and st[1] == start


def dvc_session() -> str | None:
    """A key for the `dvc` process this stage runs under (its process key), or None."""
    pid = os.getppid()
    for _ in range(10):
        if pid <= 1:
            return None
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return None
        names = [Path(a.decode(errors="replace")).name for a in argv[:3]]
        if "dvc" in names:
            return process_key(pid)
        st = _proc_stat(pid)
        if st is None:
            return None
        pid = st[0]
    return None


def git_commit(root: Path) -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


def context_tags(root: Path) -> dict[str, str]:
    """Tags every run gets: git commit, and the DVC stage / experiment when DVC runs it."""
    tags = {}
    if commit := git_commit(root):
        tags["mlflow.source.git.commit"] = commit
    for env, tag in (
        ("DVC_STAGE", "lmforge.dvc.stage"),
        ("DVC_EXP_NAME", "lmforge.dvc.exp"),
        ("DVC_EXP_BASELINE_REV", "lmforge.dvc.baseline"),
    ):
        if value := os.environ.get(env):
            tags[tag] = value
    return tags


def _holders(path: Path) -> list[str]:
    """The other processes that have `path` open ("pid 123 (python)"), read from /proc: who can free
    a busy store."""
    target, out = str(path.resolve()), []
    for fds in Path("/proc").glob("[0-9]*/fd"):
        pid = fds.parent.name
        if pid == str(os.getpid()):
            continue
        try:
            if any(os.readlink(fd) == target for fd in fds.iterdir()):
                out.append(f"pid {pid} ({(fds.parent / 'comm').read_text().strip()})")
        except OSError:  # gone, or not ours to read
            continue
    return out


def _check_sqlite(uri: str, busy_timeout_s: float) -> None:
    """A SQLite store must be a readable, writable database (or not exist yet, in a writable folder),
    and not locked by another writer for longer than `busy_timeout_s`."""
    path = Path(uri.removeprefix("sqlite:///"))
    what = f"tracking.uri={uri}"
    fix = "use tracking=none to run without tracking, or point tracking.uri at a fresh store"
    if path.exists():
        # the mode bits too: a store made read-only (chmod a-w) stays so for root, whom access() lets write
        if not os.access(path, os.R_OK | os.W_OK) or not path.stat().st_mode & 0o222:
            raise ConfigError(f"{what}: {path} is read-only; {fix}")
        try:
            with sqlite3.connect(f"file:{path}?mode=rw", uri=True, timeout=busy_timeout_s) as db:
                db.execute("BEGIN IMMEDIATE")  # waits, up to the timeout, for another writer to finish
                ok = db.execute("PRAGMA quick_check").fetchone()
                db.rollback()
        except sqlite3.OperationalError as e:
            if "locked" in str(e) or "busy" in str(e):
                who = ", ".join(_holders(path)) or "another process"
                raise ConfigError(
                    f"{what}: {path} is busy: {who} has held it locked for {busy_timeout_s:g} s; let it finish or "
                    "stop it, or wait longer (tracking.busy_timeout_s)"
                ) from None
            raise ConfigError(f"{what}: {path} is not a readable SQLite database ({e}); {fix}") from None
        except sqlite3.Error as e:
            raise ConfigError(f"{what}: {path} is not a readable SQLite database ({e}); {fix}") from None
        if not ok or ok[0] != "ok":
            raise ConfigError(f"{what}: {path} is damaged (SQLite quick_check: {ok[0] if ok else '?'}); {fix}")
    elif not os.access(path.parent if path.parent.exists() else Path.cwd(), os.W_OK):
        raise ConfigError(f"{what}: cannot create {path} (its folder is not writable); {fix}")


def connect(tracking: Any):
    """An MlflowClient for `tracking` (the config group), failing fast with a ConfigError when the
    backend cannot be reached or used. MLflow retries HTTP calls with backoff for minutes by
    default: an http(s) server must answer /health within tracking.connect_timeout_s, and later
    calls retry tracking.http_retries times (unless MLFLOW_HTTP_REQUEST_* are set)."""
    from mlflow.tracking import MlflowClient

    uri = str(tracking.uri)
    if uri.startswith("sqlite:///"):
        _check_sqlite(uri, float(tracking.busy_timeout_s))
    if uri.startswith(("http://", "https://")):
        import requests

        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", str(tracking.http_retries))
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "60")
        try:
            r = requests.get(uri.rstrip("/") + "/health", timeout=float(tracking.connect_timeout_s))
            r.raise_for_status()
        except Exception as e:
            raise ConfigError(
                f"tracking.uri={uri}: the MLflow tracking server does not answer ({type(e).__name__}: {e}). "
                "Start it (`make server`), point tracking.uri at a running one, or use tracking=embedded."
            ) from None
    return MlflowClient(tracking_uri=uri)


def _unusable(tracking: Any, e: Exception) -> ConfigError:
    return ConfigError(
        f"tracking.uri={tracking.uri}: cannot use the MLflow tracking backend ({first_line(e)}); "
        "use tracking=none to run without tracking"
    )


def check_experiment(client, tracking: Any) -> None:
    """Fail before any work when the backend cannot be read (writes nothing)."""
    try:
        client.get_experiment_by_name(tracking.experiment)
    except Exception as e:
        raise _unusable(tracking, e) from None


def _local_location(tracking: Any) -> str | None:
    """The artifact location this project's experiment must have (a file: URI), or None where the
    store decides (a tracking server) or none is configured."""
    if not tracking.artifact_location or str(tracking.uri).startswith(("http://", "https://")):
        return None
    return Path(tracking.artifact_location).as_uri()


def _copied_store(tracking: Any, exp: Any, location: str | None) -> bool:
    """A store that sits beside this project's artifact folder (the project's own SQLite file) but
    whose experiment keeps its artifacts elsewhere: the project was copied or moved, and new runs
    would write into the tree it came from."""
    uri = str(tracking.uri)
    if location is None or exp.artifact_location == location or not uri.startswith("sqlite:///"):
        return False
    return Path(uri.removeprefix("sqlite:///")).parent == Path(tracking.artifact_location).parent


def experiment_id(client, tracking: Any) -> str:
    """The id of tracking.experiment, created on first use (safe when processes race to create it).
    In a copied or moved project, the experiment that came with the store (its artifacts in the tree
    it came from) is renamed "<name> (artifacts in <path>)" and a new one is made here, so that runs
    write only under their own root."""
    name, location = tracking.experiment, _local_location(tracking)
    try:
        exp = client.get_experiment_by_name(name)
        if exp and _copied_store(tracking, exp, location):
            kept = f"{name} (artifacts in {exp.artifact_location.removeprefix('file://')})"
            try:
                client.rename_experiment(exp.experiment_id, kept)
                log.info("this project's store came from another folder: its runs are kept as experiment %r", kept)
            except Exception:  # another process of this project renamed it first
                pass
            exp = client.get_experiment_by_name(name)
        if exp:
            return exp.experiment_id
        try:
            return client.create_experiment(name, artifact_location=location)
        except Exception:  # another process created it meanwhile
            exp = client.get_experiment_by_name(name)
            if exp is None:
                raise
            return exp.experiment_id
    except Exception as e:  # the backend is unreachable or broken
        raise _unusable(tracking, e) from None


def split_params(params: dict[str, Any]) -> tuple[dict[str, str], dict[str, str]]:
    """(params as MLflow strings, {key: full value} of those split over continuation keys)."""
    out, long = {}, {}
    for k, v in params.items():
        s = str(v)
        if len(s) <= MAX_PARAM_LEN:
            out[k] = s
            continue
        long[k] = s
        chunks = [s[i : i + MAX_PARAM_LEN] for i in range(0, len(s), MAX_PARAM_LEN)]
        out[k] = chunks[0]
        for i, chunk in enumerate(chunks[1:], 2):
            out[f"{k}{PART}{i}"] = chunk
    return out, long


def read_params(run) -> dict[str, str]:
    """A run's params with long values joined back (the inverse of `split_params`)."""
    params, tags = dict(run.data.params), run.data.tags
    for tag, n in tags.items():
        if tag.startswith(PARTS_TAG):
            key = tag[len(PARTS_TAG) :]
            parts = [params.pop(f"{key}{PART}{i}") for i in range(2, int(n) + 1)]
            params[key] = params[key] + "".join(parts)
    return params


def run_rows(runs) -> list[dict]:
    """Runs as the rows of a comparison table (`report.compare`): name, status, params, metrics."""
    return [
        {
            "name": r.info.run_name or r.info.run_id[:8],
            "status": r.info.status,
            "params": read_params(r),
            "metrics": dict(r.data.metrics),
        }
        for r in runs
    ]
