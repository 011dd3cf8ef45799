"""What the benchmarks share, so that each benchmark script is only its measurement: the command
line (`Parser`: --out, --rounds, --threads, --workdir, --quick), running a command and timing it
(wall, CPU and peak memory of its process tree, a log, a time limit), stage commands and their
environment, fresh project roots and scratch folders, rounds that alternate their sides, medians,
a busy neighbour, and the result: a printed table and the JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager, nullcontext, suppress
from dataclasses import asdict, dataclass, is_dataclass
from pathlib import Path
from typing import Callable, Iterator, TypeVar

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
SHARED = ROOT.parent / "shared" / "data"
SHAKESPEARE = SHARED / "tinyshakespeare" / "input.txt"
PYTHON = sys.executable
TORCH_THREADS = "torch's threads (default: torch's choice)"  # Parser(threads=...) of an in-process benchmark
STARTUP_RE = re.compile(r"done in ([\d.]+) s \(after ([\d.]+) s of process start-up\)")  # a stage's last line
sys.path.insert(0, str(ROOT / "src"))  # what runs in-process measures this checkout's lmforge, installed or not
T = TypeVar("T")


class Parser(argparse.ArgumentParser):
    """The script's docstring as its help, `--out` (default benchmarks/results/<name>.json), and on
    request `--rounds` (its default), `--threads` and `--workdir` with `--keep` (what they are for),
    and `--quick` (the settings it stands for; options given explicitly still win)."""

    def __init__(self, doc: str, name: str, *, rounds=None, threads: str = "", workdir: str = "", quick=None):
        head, _, rest = doc.strip().partition("\n\n")
        super().__init__(description=head, epilog=rest, formatter_class=argparse.RawDescriptionHelpFormatter)
        self.quick = quick or {}
        self.add_argument("--out", type=Path, default=RESULTS / f"{name}.json", help="the JSON result")
        if rounds is not None:
            self.add_argument("--rounds", type=int, default=rounds, help="rounds, alternating order (medians)")
        if threads:
            self.add_argument("--threads", type=int, default=None, help=threads)
        if workdir:
            self.add_argument("--workdir", type=Path, default=None, help=f"{workdir} (default: a temporary folder)")
            self.add_argument("--keep", action="store_true", help="keep the temporary folder")
        if quick:
            shown = " ".join(f"--{k.replace('_', '-')} {v}" for k, v in quick.items())
            self.add_argument("--quick", action="store_true", help=f"checks that it runs: {shown}")

    def parse_args(self, args=None, namespace=None):
        parsed = super().parse_args(args, namespace)
        if getattr(parsed, "quick", False):
            given = {a.split("=")[0] for a in (sys.argv[1:] if args is None else args) if a.startswith("--")}
            for key, value in self.quick.items():
                if f"--{key.replace('_', '-')}" not in given:
                    setattr(parsed, key, value)
        return parsed


@dataclass
class Timed:
    wall_s: float
    cpu_s: float  # user + system of the command and every process it waited for
    peak_rss_mb: float  # the largest resident set among those processes
    returncode: int
    timed_out: bool
    output: str  # stdout and stderr together


def run(cmd, cwd=ROOT, env=None, timeout: float | None = 3600, log=None, echo=False, on_line=None) -> Timed:
    """Run `cmd` in a process group of its own and time it. `env` is laid over this process's (None
    removes a variable). Each line of output is kept, written to `log` with its second, echoed when
    `echo`, and given to `on_line(second, line)` as it comes; past `timeout` the group is killed."""
    env = {k: v for k, v in {**os.environ, **(env or {})}.items() if v is not None}
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace",
        bufsize=1, start_new_session=True,
    )  # fmt: skip
    killed = threading.Event()

    def kill() -> None:
        killed.set()
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)

    timer = threading.Timer(timeout, kill) if timeout else None
    if timer:
        timer.start()
    lines: list[str] = []
    try:
        with open(log, "w") if log else nullcontext() as sink:
            for line in proc.stdout:
                second = time.perf_counter() - t0
                lines.append(line)
                if sink:
                    sink.write(f"[{second:8.2f}] {line}")
                if echo:
                    print(f"  | {line}", end="", flush=True)
                if on_line:
                    on_line(second, line)
        _, status, usage = os.wait4(proc.pid, 0)  # this command's own resource usage, children included
    except BaseException:
        kill()
        raise
    finally:
        if timer:
            timer.cancel()
        proc.stdout.close()
    proc.returncode = os.waitstatus_to_exitcode(status)
    cpu = usage.ru_utime + usage.ru_stime
    wall = time.perf_counter() - t0
    return Timed(wall, cpu, usage.ru_maxrss / 1024, proc.returncode, killed.is_set(), "".join(lines))


def run_logged(label: str, cmd: list[str], logs: Path, **kwargs) -> Timed:
    """`run`, announced, with its output in <logs>/<label>.log and its last lines shown if it fails."""
    print(f"[{label}] {shlex.join(cmd)}", flush=True)
    timed = run(cmd, log=logs / f"{label.replace('/', '_')}.log", **kwargs)
    print(f"[{label}] rc {timed.returncode}, {timed.wall_s:.1f} s", flush=True)
    if timed.returncode != 0:
        print("\n".join("  ! " + line for line in timed.output.splitlines()[-20:]), flush=True)
    return timed


def logs_beside(out: Path) -> Path:
    """An empty folder for the commands' output beside the result: <out stem>_logs/."""
    logs = out.with_name(out.stem + "_logs")
    shutil.rmtree(logs, ignore_errors=True)
    logs.mkdir(parents=True)
    return logs


def checked(timed: Timed, what: str) -> Timed:
    if timed.returncode != 0:
        why = "timed out" if timed.timed_out else f"exit {timed.returncode}"
        sys.exit(f"{what} failed ({why}):\n{timed.output[-3000:]}")
    return timed


def median_wall(cmd: list[str], repeat: int, **kwargs) -> tuple[float, Timed]:
    """The median wall time of `repeat` runs, and the last run."""
    runs = [run(cmd, **kwargs) for _ in range(repeat)]
    return statistics.median(r.wall_s for r in runs), runs[-1]


def stage(name: str, *overrides: str, root: Path = ROOT) -> list[str]:
    """The command of a stage app, as a user types it in `root`."""
    return [PYTHON, str(root / "pipelines" / f"{name}.py"), *overrides]


def stage_env(src: Path = ROOT / "src", threads: int | None = None) -> dict:
    """For `run(env=...)`: stages as a user runs them in a project root of their own (its `src` first,
    no variable that points at another root, the Hub offline), with `threads` threads when given."""
    env: dict = dict.fromkeys(("LMFORGE_ROOT", "LMFORGE_TRACKING_URI", "VIRTUAL_ENV", "PYTHONHOME"))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(src), os.environ.get("PYTHONPATH")]))
    env |= {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    env |= {"TOKENIZERS_PARALLELISM": "false", "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}
    if threads:
        env |= dict.fromkeys(("OMP_NUM_THREADS", "MKL_NUM_THREADS", "RAYON_NUM_THREADS"), str(threads))
    return env


def copy_checkout(dst: Path, only: tuple[str, ...] = (), repo: Path = ROOT) -> int:
    """Copy the checkout's tracked and new (not ignored) files, what a fresh clone with today's edits
    holds, to `dst` (only those under the paths `only`, if given); returns how many."""
    listing = ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", *only]
    names = subprocess.run(listing, cwd=repo, capture_output=True, text=True, check=True).stdout.split("\0")
    files = [name for name in names if name and (repo / name).is_file()]
    for name in files:
        (dst / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(repo / name, dst / name)
    return len(files)


@contextmanager
def scratch(given: Path | None = None, keep: bool = False, near: Path | None = None) -> Iterator[Path]:
    """A folder to work in: `given` (made if absent, and left there), else a new temporary one (inside
    `near`, if given), removed afterwards unless `keep`."""
    if given:
        given.mkdir(parents=True, exist_ok=True)
        yield given.resolve()
        return
    path = Path(tempfile.mkdtemp(prefix="lmforge-bench-", dir=near))
    try:
        yield path
    finally:
        if keep:
            print(f"kept {path}")
        else:
            shutil.rmtree(path, ignore_errors=True)


def read_json(path: Path):
    """A JSON file's content, or None where it is absent or unreadable (a stage that failed)."""
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def alternate(sides: dict[str, Callable[[], T]], rounds: int) -> Iterator[dict[str, T]]:
    """Each round runs every side back to back, in the reverse order every other round (so that a
    drifting machine affects all alike), and yields {side: what it returned}."""
    for r in range(rounds):
        order = list(sides) if r % 2 == 0 else list(reversed(sides))
        results = {name: sides[name]() for name in order}
        yield {name: results[name] for name in sides}


def medians(rounds: list[dict[str, float]]) -> dict[str, float]:
    """Each side's median over the rounds."""
    return {name: statistics.median(r[name] for r in rounds) for name in rounds[0]}


@contextmanager
def busy_neighbour() -> Iterator[None]:
    """One ordinary single-threaded busy process beside the measurement (a browser tab, a second CI
    job), started a moment before and killed after."""
    proc = subprocess.Popen([PYTHON, "-c", "while True: pass"])
    try:
        time.sleep(0.5)
        yield
    finally:
        proc.kill()
        proc.wait()


def report(name: str, rows: list[tuple[str, str]], data: dict, out: Path | None = None) -> Path:
    """Print `rows` as a two-column table and write `data` (with the host and the table, which
    run_all.py prints) as JSON."""
    table(name, rows)
    out = out or RESULTS / f"{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    host = {"cores": len(os.sched_getaffinity(0)), "load_1min": os.getloadavg()[0], "python": sys.version.split()[0]}
    text = json.dumps({"host": host, **data, "summary": rows}, indent=2, default=_jsonable)
    out.write_text(text + "\n")
    print(f"  -> {out}")
    return out


def table(name: str, rows: list[tuple[str, str]]) -> None:
    width = max(len(k) for k, _ in rows)
    print(f"\n{name}")
    for key, value in rows:
        print(f"  {key.ljust(width)}  {value}")


def _jsonable(value):
    return asdict(value) if is_dataclass(value) else str(value)
