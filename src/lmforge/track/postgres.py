"""MLflow on PostgreSQL: a tracking server whose store is a PostgreSQL cluster under the project.

`make server DB=postgres` runs `python -m lmforge.track.postgres serve --dir mlflow-server`:
the first time it creates the cluster in `mlflow-server/pg/` (initdb), then starts it on
127.0.0.1 only (no Unix socket: a deep project path cannot overflow the socket name), creates
the `mlflow` database once, and runs `mlflow server` on it with `mlflow-server/artifacts` as the
artifact store, proxied by the server (clients need no access to these files). Ctrl-C, SIGTERM
or `python -m lmforge.track.postgres stop --dir mlflow-server` (`make server-stop`) stops the
MLflow server and then PostgreSQL.

PostgreSQL refuses to run as root: run by root, the cluster belongs to the `postgres` user (as
Debian's own clusters do) and its commands run as that user; run by anyone else, it belongs to
them. Connections are trusted from 127.0.0.1 (database user `lmforge`, no password): the
server is for the users of this machine, like the MLflow server it sits behind.

Only the standard library and lmforge.errors are imported: psycopg2 is needed by `mlflow
server` itself, and this module checks it is there before starting anything.
"""

from __future__ import annotations

import argparse
import glob
import importlib.util
import os
import pwd
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from lmforge.errors import LmforgeError

DB_USER = "lmforge"
DB_NAME = "mlflow"
SERVER_OWNER = "postgres"  # the account that runs PostgreSQL when we are root
INSTALL_HINT = (
    "install Debian's PostgreSQL server (`sudo apt-get install postgresql`) or put its initdb and pg_ctl on PATH"
)


class MissingPostgres(LmforgeError):
    """The PostgreSQL server binaries or the psycopg2 driver are not installed."""


def find_bindir(data_dir: Path | None = None) -> Path | None:
    """The folder of the PostgreSQL server binaries (initdb, pg_ctl, postgres): Debian's
    /usr/lib/postgresql/<version>/bin — the version that made `data_dir`, else the newest — or
    the folder of `initdb` on PATH; None when there is none."""
    debian = sorted(
        (Path(p).parent for p in glob.glob("/usr/lib/postgresql/*/bin/initdb")),
        key=lambda b: [int(x) for x in b.parent.name.split(".") if x.isdigit()],
        reverse=True,
    )
    if data_dir is not None and (data_dir / "PG_VERSION").is_file():
        made_by = (data_dir / "PG_VERSION").read_text().strip()
        debian.sort(key=lambda b: b.parent.name != made_by)  # stable: the cluster's version first
    if debian:
        return debian[0]
    initdb = shutil.which("initdb")
    return Path(initdb).resolve().parent if initdb else None


def require_installed(data_dir: Path | None = None) -> Path:
    """The server binaries' folder; MissingPostgres (one line: what to install) without them
    or without psycopg2, MLflow's PostgreSQL driver."""
    bindir = find_bindir(data_dir)
    if bindir is None or not (bindir / "pg_ctl").is_file():
        raise MissingPostgres(f"PostgreSQL server binaries (initdb, pg_ctl) not found: {INSTALL_HINT}.")
    if importlib.util.find_spec("psycopg2") is None:
        raise MissingPostgres(
            "MLflow needs psycopg2 to use PostgreSQL: `pip install psycopg2-binary` "
            "(or `make install`, which installs lmforge's pinned dependencies)."
        )
    return bindir


@dataclass(frozen=True)
class Cluster:
    """A PostgreSQL cluster in `data_dir`, listening on 127.0.0.1:`port`."""

    data_dir: Path
    port: int
    bindir: Path

    @property
    def uri(self) -> str:
        """MLflow's --backend-store-uri for the tracking database."""
        return f"postgresql://{DB_USER}@127.0.0.1:{self.port}/{DB_NAME}"

    @property
    def log(self) -> Path:
        return self.data_dir / "postgres.log"  # written by the server's owner: inside its folder

    # -- running PostgreSQL's programs -------------------------------------------------------------
    def _owner_kwargs(self) -> dict:
        """subprocess arguments that run a server program as the cluster's owner: ourselves, or
        the `postgres` account when we are root (initdb, pg_ctl and postgres refuse root)."""
        if os.geteuid() != 0:
            return {}
        try:
            pwd.getpwnam(SERVER_OWNER)
        except KeyError:
            raise LmforgeError(
                f"PostgreSQL refuses to run as root and there is no `{SERVER_OWNER}` user: "
                f"run this as a regular user, or {INSTALL_HINT} (it creates that user)."
            ) from None
        return {"user": SERVER_OWNER, "group": SERVER_OWNER, "extra_groups": [], "cwd": self.data_dir}

    def _run(self, args: list[str], as_owner: bool = True, check: bool = True) -> subprocess.CompletedProcess:
        kwargs = self._owner_kwargs() if as_owner else {}
        out = subprocess.run(
            [str(self.bindir / args[0]), *args[1:]], capture_output=True, text=True, timeout=120, **kwargs
        )
        if check and out.returncode != 0:
            raise LmforgeError(
                f"PostgreSQL: `{' '.join(args)}` failed ({out.returncode}):\n"
                f"{(out.stdout + out.stderr).strip()[-2000:]}{self._log_tail()}"
            )
        return out

    def _log_tail(self) -> str:
        try:
            return f"\n{self.log} ends with:\n{self.log.read_text()[-2000:]}"
        except OSError:
            return ""

    # -- lifecycle ---------------------------------------------------------------------------------
    def init(self) -> bool:
        """Create the cluster the first time (True), else nothing (False)."""
        if (self.data_dir / "PG_VERSION").is_file():
            return False
        self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        if any(self.data_dir.iterdir()):
            raise LmforgeError(
                f"{self.data_dir} is not empty and holds no PostgreSQL cluster: move it away or empty it."
            )
        kwargs = self._owner_kwargs()
        if kwargs:  # root: the cluster belongs to the `postgres` account, which must reach it
            owner = pwd.getpwnam(SERVER_OWNER)
            os.chown(self.data_dir, owner.pw_uid, owner.pw_gid)
            reach = subprocess.run(
                ["sh", "-c", 'cd "$1"', "sh", str(self.data_dir)],
                capture_output=True,
                user=SERVER_OWNER,
                group=SERVER_OWNER,
                extra_groups=[],
            )
            if reach.returncode != 0:
                raise LmforgeError(
                    f"PostgreSQL runs as the `{SERVER_OWNER}` user, which cannot reach "
                    f"{self.data_dir}: let it through the folders above (chmod o+x) or use "
                    "another --dir."
                )
        self._run(["initdb", "-D", str(self.data_dir), "-U", DB_USER, "-A", "trust", "-E", "UTF8", "--locale=C"])
        return True

    def running(self) -> bool:
        """pg_ctl status: 0 running, 3 not running (a stale postmaster.pid counts as not running)."""
        if not (self.data_dir / "PG_VERSION").is_file():
            return False
        return self._run(["pg_ctl", "-D", str(self.data_dir), "status"], check=False).returncode == 0

    def start(self) -> None:
        """Start the server on 127.0.0.1:port, without a Unix socket, and wait until it accepts
        connections. pg_ctl detaches it from our process group: Ctrl-C reaches us, not it."""
        options = f"-h 127.0.0.1 -p {self.port} -k ''"
        self._run(["pg_ctl", "-D", str(self.data_dir), "-o", options, "-l", str(self.log), "-w", "-t", "60", "start"])

    def create_database(self) -> bool:
        """Create the tracking database once (True when it did)."""
        connect = ["-h", "127.0.0.1", "-p", str(self.port), "-U", DB_USER]
        found = self._run(
            ["psql", *connect, "-d", "postgres", "-tAc", f"SELECT 1 FROM pg_database WHERE datname = '{DB_NAME}'"],
            as_owner=False,
        )
        if found.stdout.strip() == "1":
            return False
        self._run(["createdb", *connect, DB_NAME], as_owner=False)
        return True

    def stop(self) -> bool:
        """Stop the server (fast: open sessions are rolled back) if it runs; True when it did."""
        if not self.running():
            return False
        self._run(["pg_ctl", "-D", str(self.data_dir), "-m", "fast", "-w", "-t", "60", "stop"])
        return True


# -- the tracking server -----------------------------------------------------------------------------
def _pid_file(root: Path) -> Path:
    return root / "server.pid"  # this `serve` process, then the MLflow server's process group


def _runs(pid: int, word: bytes) -> bool:
    """Whether process `pid` exists and its command line holds `word` (not a reused pid)."""
    try:
        return word in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def _stop_group(pgid: int, leader: subprocess.Popen | None = None, timeout: float = 20) -> None:
    """SIGTERM a process group; SIGKILL what is left once its leader exits or after `timeout`.
    `leader`: the group's leader when it is our child (we reap it)."""
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.time() + timeout
    while time.time() < deadline:
        if (leader.poll() is not None) if leader is not None else not _runs(pgid, b"mlflow"):
            break
        time.sleep(0.1)
    try:
        os.killpg(pgid, signal.SIGKILL)  # stragglers (its workers), or all of it after the timeout
    except ProcessLookupError:
        pass
    if leader is not None:
        leader.wait()


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/health", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def serve(root: Path, port: int, pg_port: int, workers: int = 1, host: str = "127.0.0.1") -> int:
    """Run PostgreSQL and an MLflow server on it until one of them stops or we are told to stop
    (SIGINT, SIGTERM); then stop both. Returns the MLflow server's exit status (0 when stopped)."""
    root = root.resolve()
    cluster = Cluster(root / "pg", pg_port, require_installed(root / "pg"))
    if cluster.running():
        raise LmforgeError(
            f"PostgreSQL already runs on {cluster.data_dir}: is a server up? "
            f"Stop it with `python -m lmforge.track.postgres stop --dir {root}` (make server-stop)."
        )
    signal.signal(signal.SIGTERM, _interrupt)
    server = None
    try:
        t0 = time.perf_counter()
        made = cluster.init()
        t1 = time.perf_counter()
        cluster.start()
        t2 = time.perf_counter()
        cluster.create_database()
        print(
            f"PostgreSQL {cluster.bindir.parent.name} on 127.0.0.1:{pg_port}, data in {cluster.data_dir} "
            + (f"(created in {t1 - t0:.1f} s, " if made else "(")
            + f"started in {t2 - t1:.1f} s)",
            flush=True,
        )
        (root / "artifacts").mkdir(exist_ok=True)
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mlflow",
                "server",
                "--host",
                host,
                "--port",
                str(port),
                "--workers",
                str(workers),
                "--backend-store-uri",
                cluster.uri,
                "--artifacts-destination",
                str(root / "artifacts"),
            ],
            start_new_session=True,
        )  # its own group: we stop it, then PostgreSQL, in that order
        _pid_file(root).write_text(f"{os.getpid()}\n{server.pid}\n")
        url = f"http://{host}:{port}"
        while server.poll() is None and not _healthy(url):
            time.sleep(0.3)
        if server.poll() is None:
            print(
                f"MLflow tracking server on {url} (ready in {time.perf_counter() - t2:.1f} s), store "
                f"{cluster.uri}, artifacts in {root / 'artifacts'}. Ctrl-C or `make server-stop` stops both.",
                flush=True,
            )
        return server.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not orphan PostgreSQL
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if server is not None:
            _stop_group(server.pid, server)
        if cluster.stop():
            print("stopped the MLflow server and PostgreSQL", flush=True)
        _pid_file(root).unlink(missing_ok=True)


def stop(root: Path, timeout: float = 60) -> None:
    """Stop a `serve` running on `root` (it stops MLflow, then PostgreSQL); clean up after one
    that was killed: its MLflow server, then its PostgreSQL."""
    root = root.resolve()
    pid_file = _pid_file(root)
    if pid_file.is_file():
        serve_pid, server_pgid = (int(x) for x in pid_file.read_text().split())
        if _runs(serve_pid, b"lmforge.track.postgres"):
            os.kill(serve_pid, signal.SIGTERM)
            deadline = time.time() + timeout
            while _runs(serve_pid, b"lmforge.track.postgres") and time.time() < deadline:
                time.sleep(0.1)
        if _runs(server_pgid, b"mlflow"):
            _stop_group(server_pgid)
        pid_file.unlink(missing_ok=True)
    bindir = find_bindir(root / "pg")
    if bindir is not None and Cluster(root / "pg", 0, bindir).stop():
        print(f"stopped PostgreSQL on {root / 'pg'}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lmforge.track.postgres", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("serve", help="start PostgreSQL and an MLflow server on it (foreground)")
    down = commands.add_parser("stop", help="stop them")
    for p in (up, down):
        p.add_argument(
            "--dir",
            type=Path,
            default=Path("mlflow-server"),
            help="the server's folder: pg/ (the cluster), artifacts/ (default: mlflow-server)",
        )
    up.add_argument("--port", type=int, default=5000, help="the MLflow server's port (default: 5000)")
    up.add_argument("--pg-port", type=int, default=5433, help="PostgreSQL's port on 127.0.0.1 (default: 5433)")
    up.add_argument("--workers", type=int, default=1, help="MLflow server worker processes (default: 1)")
    up.add_argument("--host", default="127.0.0.1", help="the MLflow server's address (default: 127.0.0.1)")
    args = parser.parse_args(argv)
    try:
        if args.command == "serve":
            return serve(args.dir, args.port, args.pg_port, args.workers, args.host)
        stop(args.dir)
        return 0
    except LmforgeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
