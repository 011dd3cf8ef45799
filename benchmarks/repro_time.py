#!/usr/bin/env python
"""Time `make repro` on a fresh clone of the committed HEAD, then a no-op `dvc repro`.

    git clone <repo> <tmp>/lmforge          (the committed HEAD; uncommitted edits are not measured)
    make repro VENV=<venv> -o <venv>/.installed    (the existing venv: install time is not measured)
    dvc repro                                (again: nothing changed, so nothing may run; target <= 2 s)

Per-stage wall times come from two places: DVC's own log ("Running stage 'x'" lines, timed as
they arrive) and the files the stages write (artifacts/prepare/stats.json,
artifacts/*/summary.json, reports/metrics/*.json: `wall_s`). reports/metrics.json (results only) is copied
into the result, and every task's test score is printed: pretrained, scratch and baseline, with
whether pretrained beats both.

`--experiment <name>` composes the clone's params.yaml with that preset
(`python -m lmforge.params experiment=<name>`, what `dvc exp run -S experiment=<name>` composes)
before `make repro`, which never recomposes it. Targets: the default pipeline (six tasks, both inits) within 15
minutes on 2 cores; a no-op within 2 s.

    python benchmarks/repro_time.py --experiment smoke      # the tiny pipeline, ~1-3 min on 2 cores
    python benchmarks/repro_time.py                          # the default pipeline (params.yaml as committed)
    python benchmarks/repro_time.py --fresh-venv             # also time `make install` into a new venv
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STAGE_RE = re.compile(r"Running stage '([^']+)'")
SKIP_RE = re.compile(r"Stage '([^']+)' didn't change, skipping")
NOOP_TARGET_S = 2.0


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--repo", type=Path, default=ROOT, help="repository to clone (default: this checkout)")
    p.add_argument("--venv", type=Path, default=ROOT / ".venv", help="existing virtual environment to reuse (VENV=)")
    p.add_argument(
        "--fresh-venv", action="store_true", help="create a new venv in the clone and time `make install` too"
    )
    p.add_argument(
        "--experiment",
        default=None,
        help="compose the clone's params.yaml with experiment=<name> (e.g. smoke) before make repro",
    )
    p.add_argument(
        "--overlay-working-tree",
        action="store_true",
        help="copy the repo's current src/ pipelines/ conf/ hydra_plugins/ .dvc/config dvc.yaml params.yaml "
        "Makefile pyproject.toml over the clone (measure uncommitted work; default: the committed HEAD only)",
    )
    p.add_argument("--noop-runs", type=int, default=2, help="how many no-op `dvc repro` runs to time (median reported)")
    p.add_argument("--timeout", type=float, default=3600.0, help="seconds allowed for `make repro`")
    p.add_argument("--workdir", type=Path, default=None, help="where to clone (default: a temp dir)")
    p.add_argument("--keep", action="store_true", help="keep the clone (default: delete it)")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "repro_time.json")
    p.add_argument("--quiet", action="store_true", help="do not echo the pipeline's output")
    return p.parse_args(argv)


def run_timed(cmd: list[str], cwd: Path, env: dict, timeout: float, log_path: Path, echo: bool) -> dict:
    """Run `cmd`, stream its output (timestamped) to a log, note when each DVC stage starts."""
    t0 = time.perf_counter()
    cpu0, load0 = resource.getrusage(resource.RUSAGE_CHILDREN), os.getloadavg()[0]
    events: list[tuple[float, str, str]] = []  # (t, kind, stage)
    tail: list[str] = []
    proc = subprocess.Popen(
        cmd,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
        start_new_session=True,
    )
    timed_out = False
    with open(log_path, "w") as log:
        assert proc.stdout is not None
        deadline = t0 + timeout
        for line in proc.stdout:
            now = time.perf_counter() - t0
            log.write(f"[{now:8.2f}] {line}")
            if echo:
                sys.stdout.write(f"  | {line}")
                sys.stdout.flush()
            tail = (tail + [line.rstrip()])[-40:]
            if m := STAGE_RE.search(line):
                events.append((now, "run", m.group(1)))
            elif m := SKIP_RE.search(line):
                events.append((now, "skip", m.group(1)))
            if time.perf_counter() > deadline:
                timed_out = True
                os.killpg(proc.pid, signal.SIGTERM)  # the process group this call started
                break
    try:
        rc = proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        rc = proc.wait()
    wall = time.perf_counter() - t0
    cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    # CPU time of the command and all it waited for: unlike the wall time, not inflated by
    # other work on a shared machine (the load averages say how shared it was)
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    stages = {}
    runs = [(t, s) for t, k, s in events if k == "run"]
    for i, (t, s) in enumerate(runs):
        end = runs[i + 1][0] if i + 1 < len(runs) else wall
        stages[s] = round(end - t, 3)
    return {
        "cmd": " ".join(cmd),
        "rc": rc,
        "wall_s": wall,
        "cpu_s": cpu,
        "load_before": load0,
        "load_after": os.getloadavg()[0],
        "timed_out": timed_out,
        "stages_from_dvc_log_s": stages,
        "skipped": [s for _, k, s in events if k == "skip"],
        "log": str(log_path),
        "tail": tail,
    }


OVERLAY = (
    "src",
    "pipelines",
    "conf",
    "hydra_plugins",
    ".dvc/config",
    "dvc.yaml",
    "params.yaml",
    "Makefile",
    "pyproject.toml",
)


def overlay(repo: Path, clone: Path) -> None:
    """Copy the pipeline's inputs from the working tree over the clone (files deleted in the working
    tree are deleted in the clone too)."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in OVERLAY:
        src, dst = repo / name, clone / name
        if src.is_dir():
            shutil.rmtree(dst, ignore_errors=True)
            shutil.copytree(src, dst, ignore=ignore)
        elif src.is_file():
            shutil.copy2(src, dst)


def read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def stage_reports(clone: Path) -> dict:
    """`wall_s` (and the whole small summary) of every file the stages write."""
    out = {}
    files = [clone / "artifacts" / "prepare" / "stats.json"]
    files += sorted((clone / "artifacts").glob("*/summary.json"))
    files += sorted((clone / "artifacts").glob("finetune/*/*/summary.json"))
    files += sorted((clone / "reports" / "metrics").glob("*.json"))
    for f in files:
        data = read_json(f)
        if data is None:
            continue
        rel = str(f.relative_to(clone))
        out[rel] = {
            "wall_s": data.get("wall_s") if isinstance(data, dict) else None,
            "data": data if len(json.dumps(data)) < 4000 else "(large; see the file)",
        }
    return out


def stage_files(stage: str) -> list[str]:
    """The files in which a stage of dvc.yaml records its own wall_s (a finetune: one per init)."""
    if stage == "prepare":
        return ["artifacts/prepare/stats.json"]
    if stage == "pretrain":
        return ["artifacts/pretrain/summary.json"]
    if m := re.fullmatch(r"finetune@(.+)", stage):
        return [f"artifacts/finetune/{m.group(1)}/{init}/summary.json" for init in ("pretrained", "scratch")]
    if m := re.fullmatch(r"evaluate@(.+)", stage):
        return [f"reports/metrics/{m.group(1)}.json"]
    return []


def per_stage(dvc_times: dict, reports: dict) -> dict:
    rows = {}
    for st, dvc_s in dvc_times.items():
        walls = [(reports.get(f) or {}).get("wall_s") for f in stage_files(st)]
        own = sum(walls) if walls and all(isinstance(w, (int, float)) for w in walls) else None
        rows[st] = {"dvc_s": dvc_s, "wall_s": own, "outside_s": (dvc_s - own) if own is not None else None}
    return rows


def main(argv=None) -> dict:
    args = parse_args(argv)
    result: dict = {
        "benchmark": "repro_time",
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
    }
    tmp_ctx = tempfile.mkdtemp(prefix="lmforge-repro-") if args.workdir is None else str(args.workdir)
    base = Path(tmp_ctx)
    base.mkdir(parents=True, exist_ok=True)
    clone = base / "lmforge"
    logs = args.out.parent / (args.out.stem + "_logs")  # kept after the clone is deleted
    shutil.rmtree(logs, ignore_errors=True)
    logs.mkdir(parents=True, exist_ok=True)
    try:
        return _run(args, result, base, clone, logs)
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
        else:
            print(f"kept {base}")


def _run(args, result: dict, base: Path, clone: Path, logs: Path) -> dict:
    # 1. clone the committed HEAD
    t0 = time.perf_counter()
    subprocess.run(["git", "clone", "--quiet", str(args.repo), str(clone)], check=True)
    result["clone_s"] = time.perf_counter() - t0
    head = subprocess.run(
        ["git", "-C", str(clone), "log", "-1", "--format=%H %s"], capture_output=True, text=True, check=True
    ).stdout.strip()
    result["head"] = head
    print(f"cloned {args.repo} at {head[:80]} into {clone} ({result['clone_s']:.1f} s)")

    if args.overlay_working_tree:
        overlay(args.repo, clone)
        result["overlay_working_tree"] = OVERLAY
        print(f"overlaid the working tree's {', '.join(OVERLAY)} (uncommitted edits included)")

    # 2. the environment: the clone's own src first (the shared venv's editable install points elsewhere)
    env = dict(os.environ)
    for k in ("LMFORGE_ROOT", "VIRTUAL_ENV", "PYTHONHOME", "LMFORGE_TRACKING_URI"):
        env.pop(k, None)
    env["PYTHONPATH"] = str(clone / "src") + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("HF_DATASETS_OFFLINE", "1")
    env["PYTHONUNBUFFERED"] = "1"

    venv = (base / "venv") if args.fresh_venv else args.venv.resolve()
    if not args.fresh_venv and not (venv / "bin" / "python").exists():
        sys.exit(f"--venv {venv} has no bin/python (make install there first, or pass --fresh-venv)")
    env["PATH"] = str(venv / "bin") + os.pathsep + env.get("PATH", "")
    make = ["make", f"VENV={venv}"]
    if args.fresh_venv:
        print(f"make install VENV={venv} ...", flush=True)
        inst = run_timed(make + ["install"], clone, env, args.timeout, logs / "make_install.log", not args.quiet)
        result["install"] = inst
        print(f"make install: {inst['wall_s']:.1f} s (rc {inst['rc']})")
        if inst["rc"] != 0:
            return finish(args, result)
    else:
        # never remake the shared venv (a fresh clone's pyproject.toml is newer than its stamp)
        make += ["-o", str(venv / ".installed")]

    # 3. the experiment: params.yaml composed with the preset (`make repro` = `dvc repro` never
    # recomposes it; the stages refuse a params.yaml that is stale against conf/)
    result["experiment"] = args.experiment or "default"
    if args.experiment:
        t0 = time.perf_counter()
        comp = run_timed(
            [str(venv / "bin" / "python"), "-m", "lmforge.params", f"experiment={args.experiment}"],
            clone,
            env,
            300,
            logs / "params.log",
            False,
        )
        result["compose_params_s"] = time.perf_counter() - t0
        print(
            f"params.yaml composed with experiment={args.experiment} ({result['compose_params_s']:.1f} s, "
            f"rc {comp['rc']})"
        )
        if comp["rc"] != 0:
            print("\n".join("  ! " + line for line in comp["tail"][-15:]))
            result["repro"] = {
                "rc": comp["rc"],
                "wall_s": 0.0,
                "timed_out": False,
                "stages_from_dvc_log_s": {},
                "tail": comp["tail"],
                "cmd": comp["cmd"],
            }
            return finish(args, result)

    # 4. the pipeline
    print(f"{' '.join(make)} repro ...", flush=True)
    rep = run_timed(make + ["repro"], clone, env, args.timeout, logs / "make_repro.log", not args.quiet)
    result["repro"] = rep
    print(
        f"make repro: {rep['wall_s']:.1f} s wall, {rep['cpu_s']:.1f} s CPU on {os.cpu_count()} cores, load "
        f"{rep['load_before']:.1f} before / {rep['load_after']:.1f} after (rc {rep['rc']}"
        f"{', TIMED OUT' if rep['timed_out'] else ''})"
    )

    # 5. the no-op repro
    dvc = str(venv / "bin" / "dvc")
    if rep["rc"] == 0:
        noops = []
        for i in range(max(1, args.noop_runs)):
            r = run_timed([dvc, "repro"], clone, env, 300, logs / f"noop_{i}.log", False)
            r["ran_stages"] = list(r["stages_from_dvc_log_s"])
            noops.append(r)
            print(
                f"no-op dvc repro #{i + 1}: {r['wall_s']:.2f} s "
                f"(rc {r['rc']}; stages re-run: {r['ran_stages'] or 'none'})"
            )
        result["noop"] = noops
        result["noop_s"] = statistics.median(r["wall_s"] for r in noops)
        result["noop_reran_stages"] = sorted({s for r in noops for s in r["ran_stages"]})
        st = subprocess.run(["git", "-C", str(clone), "status", "--porcelain"], capture_output=True, text=True)
        result["git_status_after"] = st.stdout.splitlines()
    else:
        print("\n".join("  ! " + line for line in rep["tail"][-25:]))

    # 6. what the stages report
    result["stage_reports"] = stage_reports(clone)
    result["metrics"] = read_json(clone / "reports" / "metrics.json")
    return finish(args, result)


def task_table(metrics: dict) -> dict:
    """Print and return each task's primary test score: pretrained, scratch, baseline."""
    rows = {}
    print(f"{'task':14} {'metric':9} {'pretrained':>10} {'scratch':>10} {'baseline':>10}")
    for name, t in metrics.get("tasks", {}).items():
        key = t["metric"]
        p, s, b = (t[who][key] for who in ("pretrained", "scratch", "baseline"))
        rows[name] = {
            "metric": key,
            "pretrained": p,
            "scratch": s,
            "baseline": b,
            "pretrained_beats_both": p > max(s, b),
        }
        mark = "" if p > max(s, b) else "   <- pretrained does not beat both"
        print(f"{name:14} {key:9} {p:10.3f} {s:10.3f} {b:10.3f}{mark}")
    return rows


def finish(args, result: dict) -> dict:
    rep = result.get("repro", {})
    result["ok"] = rep.get("rc") == 0 and not rep.get("timed_out") and not result.get("noop_reran_stages")
    print()
    print(f"{'what':44} {'seconds':>10}")
    print("-" * 56)
    print(f"{'git clone':44} {result.get('clone_s', 0):10.2f}")
    if "install" in result:
        print(f"{'make install (fresh venv)':44} {result['install']['wall_s']:10.2f}")
    if rep:
        print(f"{'make repro (experiment=' + str(result.get('experiment')) + ')':44} {rep['wall_s']:10.2f}")
    if "noop_s" in result:
        flag = "ok" if result["noop_s"] <= NOOP_TARGET_S else f"OVER the {NOOP_TARGET_S:.0f} s target"
        print(f"{'no-op dvc repro (median)':44} {result['noop_s']:10.2f}  {flag}")
    print("-" * 56)
    stages = per_stage(rep.get("stages_from_dvc_log_s", {}), result.get("stage_reports") or {})
    result["per_stage"] = stages
    if stages:
        print(f"{'stage':40} {'DVC log s':>10} {'wall_s':>8} {'outside':>8}")
        for st, row in stages.items():
            own = f"{row['wall_s']:8.2f}" if row["wall_s"] is not None else f"{'-':>8}"
            out = f"{row['outside_s']:8.2f}" if row["outside_s"] is not None else f"{'-':>8}"
            print(f"{st:40} {row['dvc_s']:10.2f} {own} {out}")
        known = [r["outside_s"] for r in stages.values() if r["outside_s"] is not None]
        if known:
            result["outside_total_s"] = sum(known)
            print(
                f"'outside' = DVC's time for the stage minus the stage's own wall_s (process start, imports, "
                f"config, tracking setup, DVC caching): {sum(known):.1f} s in all, "
                f"{statistics.median(known):.1f} s median per stage"
            )
    if result.get("metrics") is not None:
        result["tasks"] = task_table(result["metrics"])
    if result.get("noop_reran_stages"):
        print(f"NOT a no-op: the second dvc repro re-ran {result['noop_reran_stages']}")
    if result.get("git_status_after"):
        print(
            "git status in the clone after the pipeline (expected: params.yaml, dvc.lock and the committed "
            "reports/metrics.json only):"
        )
        print("\n".join("  " + line for line in result["git_status_after"]))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"\nwrote {args.out}; ok={result['ok']}")
    return result


if __name__ == "__main__":
    res = main()
    sys.exit(0 if res.get("ok") else 1)
