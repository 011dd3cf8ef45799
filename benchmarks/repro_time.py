#!/usr/bin/env python
"""Time `make repro` on a fresh clone of the committed HEAD, then a no-op `dvc repro`; with
`--against <commit>`, the same on a fresh clone of that commit right after, and the ratio.

    git clone <repo> <tmp>/head/lmforge     (the committed HEAD; uncommitted edits are not measured)
    make repro VENV=<venv> -o <venv>/.installed    (the existing venv: install time is not measured)
    dvc repro                                (again: nothing changed, so nothing may run; target <= 2 s)

Per-stage wall times come from two places: DVC's own log ("Running stage 'x'" lines, timed as
they arrive, and the start-up each stage's process reports on its "done" line) and the runtime
records the stages write (reports/runtime/: `wall_s`); what DVC's time for a stage holds beyond
the stage's own is its process start, exit and DVC. reports/metrics.json (results only) is copied
into the result, and every task's test score is printed: pretrained, scratch and baseline, with
whether pretrained beats both.

`--experiment <name>` composes the clone's params.yaml with that preset
(`python -m lmforge.params experiment=<name>`, what `dvc exp run -S experiment=<name>` composes)
before `make repro`, which never recomposes it. Targets: the default pipeline (six tasks, both
inits) within 15 minutes on 2 cores; a no-op within 2 s; with `--against d3cde62` (issue #20's
reference), HEAD's `make repro` wall time <= 0.5x the reference's, scores within their seed spread.

The reference runs in the same venv as HEAD, with its own src/ first on PYTHONPATH. `--against-set`
composes the reference's params.yaml with Hydra overrides: d3cde62 pins `trainer.precision=bf16-mixed`,
which a CPU without AVX512-BF16 or AMX only emulates (17x slower), where HEAD's `auto` picks fp32 —
`--against-set trainer.precision=32-true` compares the two at the precision the host computes.

    python benchmarks/repro_time.py --experiment smoke      # the tiny pipeline, ~1-3 min on 2 cores
    python benchmarks/repro_time.py                          # the default pipeline (params.yaml as committed)
    python benchmarks/repro_time.py --fresh-venv             # also time `make install` into a new venv
    python benchmarks/repro_time.py --against d3cde62 --against-set trainer.precision=32-true
"""

from __future__ import annotations

import os
import re
import shutil
import statistics
import sys
from pathlib import Path

from harness import (
    ROOT,
    STARTUP_RE,
    Parser,
    checked,
    copy_checkout,
    logs_beside,
    read_json,
    report,
    run,
    run_logged,
    scratch,
    stage_env,
)

STAGE_RE = re.compile(r"Running stage '([^']+)'")
NOOP_TARGET_S = 2.0
RATIO_TARGET = 0.5  # issue #20: HEAD's make repro against d3cde62's
# what --overlay-working-tree copies over the clone: the pipeline's inputs
OVERLAY = tuple("src pipelines conf hydra_plugins .dvc/config dvc.yaml params.yaml Makefile pyproject.toml".split())


def stage_files(stage: str) -> list[str]:
    """The files in which a stage of dvc.yaml records its own wall_s (a finetune: one per init)."""
    if stage in ("prepare", "pretrain"):
        return [f"reports/runtime/{stage}.json"]
    if m := re.fullmatch(r"finetune@(.+)", stage):
        return [f"reports/runtime/finetune/{m.group(1)}/{init}.json" for init in ("pretrained", "scratch")]
    if m := re.fullmatch(r"evaluate@(.+)", stage):
        return [f"reports/runtime/evaluate/{m.group(1)}.json"]
    return []


def dvc_run(label: str, cmd: list[str], clone: Path, env: dict, logs: Path, timeout=300.0, echo=False) -> dict:
    """Run a command that runs DVC; its times, and each stage DVC ran: from its "Running stage" line
    to the next one (or the end), and the start-up its process reported."""
    starts: list[tuple[float, str]] = []
    startup: dict[str, float] = {}

    def on_line(second: float, line: str) -> None:
        if m := STAGE_RE.search(line):
            starts.append((second, m.group(1)))
        elif (m := STARTUP_RE.search(line)) and starts:
            startup[starts[-1][1]] = startup.get(starts[-1][1], 0.0) + float(m.group(2))

    load = os.getloadavg()[0]
    timed = run_logged(label, cmd, logs, cwd=clone, env=env, timeout=timeout, echo=echo, on_line=on_line)
    ends = [second for second, _ in starts[1:]] + [timed.wall_s]
    stages = {name: {"dvc_s": end - start, "startup_s": startup.get(name)} for (start, name), end in zip(starts, ends)}
    return {
        "cmd": " ".join(cmd), "rc": timed.returncode, "wall_s": timed.wall_s, "cpu_s": timed.cpu_s,
        "timed_out": timed.timed_out, "load_before": load, "load_after": os.getloadavg()[0], "stages": stages,
    }  # fmt: skip


def pipeline(args, base: Path, logs: Path, result: dict, rev: str | None = None, overrides=()) -> None:
    """Clone (at `rev`, else HEAD), (install,) compose params.yaml (with the experiment and
    `overrides`), make repro, the no-op dvc repro; into `result`."""
    clone = base / "lmforge"
    cloned = run(["git", "clone", "--quiet", *(["--no-checkout"] if rev else []), str(args.repo), str(clone)])
    result["clone_s"] = checked(cloned, "git clone").wall_s
    if rev:
        checked(run(["git", "-C", str(clone), "checkout", "--quiet", rev]), f"git checkout {rev}")
    result["head"] = run(["git", "-C", str(clone), "log", "-1", "--format=%H %s"]).output.strip()
    print(f"cloned {args.repo} at {result['head'][:80]} into {clone} ({result['clone_s']:.1f} s)", flush=True)
    if args.overlay_working_tree and not rev:
        for name in OVERLAY:  # a file deleted in the working tree is deleted in the clone too
            if (clone / name).is_dir():
                shutil.rmtree(clone / name)
        result["overlay_working_tree"] = copy_checkout(clone, OVERLAY, repo=args.repo)
        print(f"overlaid the working tree's {', '.join(OVERLAY)} (uncommitted edits included)", flush=True)

    venv = base / "venv" if args.fresh_venv else args.venv.resolve()
    env = stage_env(clone / "src") | {"PATH": f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"}
    make = ["make", f"VENV={venv}"]
    if args.fresh_venv:
        result["install"] = dvc_run("make_install", make + ["install"], clone, env, logs, args.timeout, args.echo)
        if result["install"]["rc"] != 0:
            return
    elif not (venv / "bin" / "python").exists():
        sys.exit(f"--venv {venv} has no bin/python (make install there first, or pass --fresh-venv)")
    else:  # never remake the shared venv (a fresh clone's pyproject.toml is newer than its stamp)
        make += ["-o", str(venv / ".installed")]
    overrides = [*([f"experiment={args.experiment}"] if args.experiment else []), *overrides]
    result["overrides"] = overrides
    side = base.name
    if overrides:  # `make repro` = `dvc repro` never recomposes params.yaml; the stages refuse a stale one
        compose = [str(venv / "bin" / "python"), "-m", "lmforge.params", *overrides]
        result["compose_params"] = dvc_run(f"{side}_params", compose, clone, env, logs)
        if result["compose_params"]["rc"] != 0:
            return
    result["repro"] = dvc_run(f"{side}_make_repro", make + ["repro"], clone, env, logs, args.timeout, args.echo)
    result["precision"] = (read_json(clone / "artifacts" / "pretrain" / "summary.json") or {}).get("precision")
    if result["repro"]["rc"] == 0:
        dvc = [str(venv / "bin" / "dvc"), "repro"]
        noops = [dvc_run(f"{side}_noop_{i}", dvc, clone, env, logs) for i in range(max(1, args.noop_runs))]
        result["noop"] = noops
        result["noop_s"] = statistics.median(r["wall_s"] for r in noops)
        result["noop_reran_stages"] = sorted({name for r in noops for name in r["stages"]})
        result["git_status_after"] = run(["git", "-C", str(clone), "status", "--porcelain"]).output.splitlines()
    result["per_stage"] = {}
    for name, timing in result["repro"]["stages"].items():
        walls = [(read_json(clone / f) or {}).get("wall_s") for f in stage_files(name)]
        own = sum(walls) if walls and None not in walls else None
        outside = timing["dvc_s"] - own if own is not None else None
        result["per_stage"][name] = {**timing, "wall_s": own, "outside_s": outside}
    outside = [st["outside_s"] for st in result["per_stage"].values() if st["outside_s"] is not None]
    result["outside_total_s"] = sum(outside) if outside else None
    if result["repro"]["rc"] == 0:  # else the committed scores, not this run's
        result["metrics"] = read_json(clone / "reports" / "metrics.json")


def rows_of(result: dict) -> list[tuple[str, str]]:
    """The table: the whole run's times, each stage's, and each task's test scores."""
    rows = [("git clone", f"{result['clone_s']:.1f} s")]
    for key, what in (("install", "make install (fresh venv)"), ("compose_params", "compose params.yaml")):
        if key in result:
            rows.append((what, f"{result[key]['wall_s']:.1f} s (rc {result[key]['rc']})"))
    if rep := result.get("repro"):
        ended = f"rc {rep['rc']}{', TIMED OUT' if rep['timed_out'] else ''}"
        wall = f"{rep['wall_s']:.1f} s wall, {rep['cpu_s']:.1f} s CPU on {os.cpu_count()} cores ({ended})"
        composed = " ".join(result.get("overrides") or []) or "params.yaml as committed"
        rows.append((f"make repro ({composed}; pretrained in {result.get('precision')})", wall))
        rows.append(("  load average", f"{rep['load_before']:.1f} before, {rep['load_after']:.1f} after"))
    if "noop_s" in result:
        verdict = "ok" if result["noop_s"] <= NOOP_TARGET_S else f"OVER the {NOOP_TARGET_S:.0f} s target"
        reran = result["noop_reran_stages"]
        rows.append(("no-op dvc repro (median)", f"{result['noop_s']:.2f} s, {verdict}; re-ran {reran or 'nothing'}"))
    for name, st in result.get("per_stage", {}).items():
        own = "" if st["wall_s"] is None else f", its own {st['wall_s']:.1f} s, outside it {st['outside_s']:.1f} s"
        startup = "" if st["startup_s"] is None else f" (process start-up {st['startup_s']:.1f} s)"
        rows.append((f"  {name}", f"{st['dvc_s']:.1f} s in DVC's log{own}{startup}"))
    if result.get("outside_total_s") is not None:
        outside = f"{result['outside_total_s']:.1f} s (start, imports, tracking, exit, DVC)"
        rows.append(("outside the stages' own wall_s", outside))
    for task, t in ((result.get("metrics") or {}).get("tasks") or {}).items():
        key = t["metric"]
        p, s, b = (t[who][key] for who in ("pretrained", "scratch", "baseline"))
        beats = "" if p > max(s, b) else "   <- pretrained does not beat both"
        rows.append((f"{task} ({key})", f"pretrained {p:.3f}, scratch {s:.3f}, baseline {b:.3f}{beats}"))
    if "git_status_after" in result:  # expected: params.yaml, dvc.lock and reports/metrics.json
        rows.append(("git status in the clone after", "; ".join(result["git_status_after"]) or "clean"))
    return rows


def main(argv=None) -> bool:
    p = Parser(__doc__, "repro_time", workdir="where to clone")
    p.add_argument("--repo", type=Path, default=ROOT, help="repository to clone (default: this checkout)")
    p.add_argument("--venv", type=Path, default=ROOT / ".venv", help="existing virtual environment to reuse (VENV=)")
    p.add_argument("--fresh-venv", action="store_true", help="create a new venv in the clone and time make install")
    p.add_argument("--experiment", default=None, help="compose params.yaml with experiment=<name> (e.g. smoke)")
    p.add_argument(
        "--overlay-working-tree",
        action="store_true",
        help=f"copy the working tree's {' '.join(OVERLAY)} over the clone (uncommitted work; default: HEAD only)",
    )
    p.add_argument("--against", default=None, help="also time a fresh clone of this commit, after HEAD (e.g. d3cde62)")
    p.add_argument(
        "--against-set",
        action="append",
        default=[],
        metavar="OVERRIDE",
        help="Hydra override for the reference's params.yaml (repeatable; e.g. trainer.precision=32-true)",
    )
    p.add_argument("--noop-runs", type=int, default=2, help="no-op `dvc repro` runs to time (median reported)")
    p.add_argument("--timeout", type=float, default=3600.0, help="seconds allowed for `make repro`")
    p.add_argument("--quiet", dest="echo", action="store_false", help="do not echo the pipeline's output")
    args = p.parse_args(argv)
    if args.against_set and not args.against:
        p.error("--against-set composes the reference's params.yaml: give the reference with --against")
    logs = logs_beside(args.out)  # kept after the clone is deleted
    result: dict = {"benchmark": "repro_time", "config": vars(args)}
    with scratch(args.workdir, args.keep) as base:
        result["head"] = {}
        pipeline(args, base / "head", logs, result["head"])
        if args.against:
            result["reference"] = {}
            pipeline(args, base / "reference", logs, result["reference"], args.against, args.against_set)
    sides = [result["head"], *([result["reference"]] if args.against else [])]
    for one in sides:
        rep = one.get("repro", {})
        one["ok"] = rep.get("rc") == 0 and not rep.get("timed_out") and not one.get("noop_reran_stages")
    rows = rows_of(result["head"])
    if args.against:
        rows += [(f"reference {args.against}: {k.strip()}", v) for k, v in rows_of(result["reference"])]
        walls = [one.get("repro", {}).get("wall_s") for one in sides]
        if all(one["ok"] for one in sides):
            result["ratio"] = walls[0] / walls[1]
            verdict = "met" if result["ratio"] <= RATIO_TARGET else f"over the {RATIO_TARGET} target"
            rows.append(("HEAD's make repro over the reference's", f"{result['ratio']:.2f}x ({verdict})"))
    result["ok"] = all(one["ok"] for one in sides)
    report("repro_time", rows + [("ok", str(result["ok"]))], result, args.out)
    return result["ok"]


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
