"""The default `dvc repro` (all six tasks, pretrained + scratch) timed in a fresh copy of the repo.

    .venv/bin/python benchmarks/tasks_repro.py [--experiment default] [--keep DIR]

Copies the working tree (tracked and new, non-ignored files) to a temporary folder, runs the
real `dvc repro` there with the committed params, and prints: the wall time, the CPU time of all
stage processes (user + system: on a shared machine the wall time also counts other people's
work, the CPU time does not), the machine's load average before and after, every stage's own
wall time (from the stages' summaries) and every task's test metrics — pretrained, scratch and
baseline — with whether pretrained beats both. Writes the same as JSON to
`benchmarks/results/tasks_repro.json`. Target: ≤ 15 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def copy_tree(dst: Path) -> None:
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout
    for rel in filter(None, files.split("\0")):
        if (ROOT / rel).is_file():
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, dst / rel)
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"],
                ["git", "-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qm", "bench"]):
        subprocess.run(cmd, cwd=dst, check=True, capture_output=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--experiment", default="default")
    ap.add_argument("--keep", type=Path, help="run in this folder and keep it")
    args = ap.parse_args()

    work = args.keep or Path(tempfile.mkdtemp(prefix="lmforge-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    copy_tree(work)
    if args.experiment != "default":
        import yaml

        params = yaml.safe_load((work / "params.yaml").read_text())
        params["experiment"] = args.experiment
        (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))

    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    for key in ("LMFORGE_ROOT", "LMFORGE_PARENT_RUN_ID"):
        env.pop(key, None)
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(["dvc", "repro"], cwd=work, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if out.returncode:
        sys.exit(f"dvc repro failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")

    metrics = json.loads((work / "reports/metrics.json").read_text())
    stages = {"prepare": json.loads((work / "artifacts/prepare/stats.json").read_text())["wall_s"],
              "pretrain": metrics["pretrain"]["wall_s"]}
    for f in sorted((work / "artifacts/finetune").glob("*/*/summary.json")):
        stages[f"finetune@{f.parent.parent.name}-{f.parent.name}"] = json.loads(f.read_text())["wall_s"]
    for f in sorted((work / "reports/metrics").glob("*.json")):
        stages[f"evaluate@{f.stem}"] = json.loads(f.read_text())["wall_s"]
    tasks = {}
    for name, t in metrics["tasks"].items():
        key = t["metric"]
        p, s, b = (t[w][key] for w in ("pretrained", "scratch", "baseline"))
        tasks[name] = {"metric": key, "scale": t.get("scale", 1), "pretrained": p, "scratch": s, "baseline": b,
                       "pretrained_beats_both": p > s and p > b,
                       "all": {w: t[w] for w in ("pretrained", "scratch", "baseline")}}
    result = {
        "experiment": args.experiment,
        "wall_s": wall,
        "cpu_s": (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime),
        "cores": os.cpu_count(),
        "load_avg_before": load_before,
        "load_avg_after": os.getloadavg(),
        "stage_wall_s": stages,
        "tasks": tasks,
    }
    dst = ROOT / "benchmarks" / "results" / "tasks_repro.json"
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text(json.dumps(result, indent=2) + "\n")
    print(f"dvc repro ({args.experiment}): {wall / 60:.1f} min wall, {result['cpu_s'] / 60:.1f} min CPU "
          f"on {os.cpu_count()} cores (load {load_before[0]:.1f} before, {result['load_avg_after'][0]:.1f} after)")
    for name, s in stages.items():
        print(f"  {name:36s} {s:7.1f} s")
    print(f"  {'task':14s} {'metric':8s} {'pretrained':>10s} {'scratch':>10s} {'baseline':>10s}")
    for name, t in tasks.items():
        mark = "" if t["pretrained_beats_both"] else "   <- pretrained does not beat both"
        print(f"  {name:14s} {t['metric']:8s} {t['pretrained']:10.3f} {t['scratch']:10.3f} {t['baseline']:10.3f}{mark}")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
