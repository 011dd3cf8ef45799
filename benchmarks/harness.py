"""What the benchmarks share: run a command and time it (wall and CPU of the process tree), take
medians, keep a busy neighbour running, write the JSON and print the table. Each benchmark script
is then only its measurement.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
PYTHON = sys.executable


@dataclass
class Timed:
    wall_s: float
    cpu_s: float  # user + system of the command and its children
    returncode: int
    output: str  # stdout and stderr together


def run(cmd: list[str], cwd: Path = ROOT, env: dict | None = None, timeout: float = 3600) -> Timed:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    out = subprocess.run(
        cmd, cwd=cwd, env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=timeout
    )
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Timed(wall, cpu, out.returncode, out.stdout + out.stderr)


def checked(timed: Timed, what: str) -> Timed:
    if timed.returncode != 0:
        sys.exit(f"{what} failed (exit {timed.returncode}):\n{timed.output[-3000:]}")
    return timed


def median_wall(cmd: list[str], repeat: int, **kwargs) -> tuple[float, Timed]:
    """The median wall time of `repeat` runs, and the last run."""
    runs = [run(cmd, **kwargs) for _ in range(repeat)]
    return statistics.median(r.wall_s for r in runs), runs[-1]


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
    """Print `rows` as a two-column table and write `data` (plus the host) as JSON."""
    width = max(len(k) for k, _ in rows)
    print(f"\n{name}")
    for key, value in rows:
        print(f"  {key.ljust(width)}  {value}")
    out = out or RESULTS / f"{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    host = {"cores": len(os.sched_getaffinity(0)), "load_1min": os.getloadavg()[0], "python": sys.version.split()[0]}
    out.write_text(json.dumps({"host": host, **data}, indent=2, default=lambda o: asdict(o)) + "\n")
    print(f"  -> {out}")
    return out
