#!/usr/bin/env python
"""Run the lmforge benchmarks fixed_cost, busy_machine, nanogpt_pair, pretrain_throughput, repro_time
and prepare_memory with their defaults (`make bench`) and print one summary.

Each benchmark runs in its own process (so one's imports and threads do not skew another) and
writes its JSON under benchmarks/results/; this script collects them into
benchmarks/results/run_all.json.

    python benchmarks/run_all.py                       # all six, defaults (the default pipeline: long)
    python benchmarks/run_all.py --quick               # each in its quick mode (repro_time: --experiment smoke)
    python benchmarks/run_all.py --only pretrain_throughput --pretrain-args "--precision 32-true"
    python benchmarks/run_all.py --only prepare_memory --memory-args "--sizes-mb 8 64"

(minilm.py and char_lm.py are not in this run: an hour of CPU and a fixed time budget; run them alone.)
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHES = ("fixed_cost", "busy_machine", "nanogpt_pair", "pretrain_throughput", "repro_time", "prepare_memory")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0].replace("\n", " "),
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--only", choices=BENCHES, action="append", help="run only this benchmark (repeatable)")
    p.add_argument(
        "--quick",
        action="store_true",
        help="quick modes: --quick to pretrain_throughput and prepare_memory, --experiment smoke to repro_time, "
        "one round of fixed_cost and busy_machine",
    )
    p.add_argument("--pretrain-args", default="", help="extra arguments for pretrain_throughput.py (one string)")
    p.add_argument("--repro-args", default="", help="extra arguments for repro_time.py (one string)")
    p.add_argument("--memory-args", default="", help="extra arguments for prepare_memory.py (one string)")
    p.add_argument("--results", type=Path, default=HERE / "results", help="folder for the JSON results")
    return p.parse_args(argv)


def run(name: str, extra: list[str], results: Path) -> dict:
    out = results / f"{name}.json"
    if out.exists():
        out.unlink()  # never report a previous run's numbers
    cmd = [sys.executable, str(HERE / f"{name}.py"), "--out", str(out), *extra]
    print(f"\n=== {name}: {' '.join(shlex.quote(c) for c in cmd)}", flush=True)
    t0 = time.perf_counter()
    rc = subprocess.call(cmd)
    wall = time.perf_counter() - t0
    data = json.loads(out.read_text()) if out.exists() else None
    return {"rc": rc, "wall_s": wall, "result": data, "out": str(out)}


def summary_lines(runs: dict) -> list[str]:
    lines = []
    pt = runs.get("pretrain_throughput")
    if pt:
        r = pt["result"]
        if r:
            c = r["config"]
            lines.append(
                f"pretrain_throughput  d={c['d_model']} L={c['n_layers']} T={c['block']} B={c['batch']} "
                f"{c['precision']} on {r['environment']['device']}{' compiled' if c['compile'] else ''}"
            )
            lines.append(
                f"  bare {r['bare_tokens_per_s']:,.0f} tok/s (MFU {100 * r['bare_mfu']:.1f}%), lmforge "
                f"{r['lmforge_tokens_per_s']:,.0f} tok/s (MFU {100 * r['lmforge_mfu']:.1f}%), ratio "
                f"{r['ratio']:.3f} (target >= 1.0)"
            )
            if "full" in r:
                lines.append(
                    f"  with the stage's callbacks: {r['full']['tokens_per_s']:,.0f} tok/s, "
                    f"ratio {r['full_ratio']:.3f}; "
                    f"checkpointing every {r['config_checkpoint_every_n_steps']} steps costs "
                    f"{100 * (r['checkpoint_overhead_at_config_interval'] or 0):.2f}%"
                )
        else:
            lines.append(f"pretrain_throughput  FAILED (rc {pt['rc']})")
    rt = runs.get("repro_time")
    if rt:
        r = rt["result"]
        if r and "repro" in r:
            lines.append(
                f"repro_time  experiment={r.get('experiment')} at {r.get('head', '')[:60]}"
                + (" + working-tree overlay" if r.get("overlay_working_tree") else "")
            )
            lines.append(
                f"  make repro {r['repro']['wall_s']:.1f} s (rc {r['repro']['rc']}), no-op dvc repro "
                + (f"{r['noop_s']:.2f} s (target <= 2 s)" if "noop_s" in r else "not run")
            )
            stages = r["repro"]["stages_from_dvc_log_s"]
            if stages:
                lines.append("  stages: " + ", ".join(f"{s} {w:.1f}s" for s, w in stages.items()))
            if "outside_total_s" in r:
                lines.append(
                    f"  time outside the stages' own wall_s (start-up, imports, tracking, DVC): "
                    f"{r['outside_total_s']:.1f} s"
                )
        else:
            lines.append(f"repro_time  FAILED (rc {rt['rc']})")
    fc = runs.get("fixed_cost")
    if fc:
        r = fc["result"]
        lines.append(
            f"fixed_cost  config error {r['config_error_s']:.2f} s "
            f"(import torch {r['import_torch_s']:.2f} s); start-up "
            + ", ".join(f"{s} {v['startup_s']:.1f} s" for s, v in r["stages"].items())
            if r
            else f"fixed_cost  FAILED (rc {fc['rc']})"
        )
    bm = runs.get("busy_machine")
    if bm:
        r = bm["result"]
        lines.append(
            f"busy_machine  pretrain beside a busy process {r['busy_over_idle']:.2f}x idle (target <= 1.5; with "
            f"torch's default threads {r['default_threads_busy_over_idle']:.2f}x)"
            if r
            else f"busy_machine  FAILED (rc {bm['rc']})"
        )
    ng = runs.get("nanogpt_pair")
    if ng:
        r = ng["result"]
        lines.append(
            f"nanogpt_pair  {r['iters']} iterations: reference {r['median_s']['reference']:.1f} s, lmforge "
            f"{r['median_s']['lmforge']:.1f} s: {r['ratio']:.2f}x (target >= 1.3)"
            if r
            else f"nanogpt_pair  FAILED (rc {ng['rc']})"
        )
    pm = runs.get("prepare_memory")
    if pm:
        r = pm["result"]
        if r:
            small, large = r["sizes_mb"]
            lines.append(
                f"prepare_memory  peak RSS of prepare {r['prepare_peak_rss_mb'][0]:.0f} MB ({small} MB corpus) -> "
                f"{r['prepare_peak_rss_mb'][1]:.0f} MB ({large} MB): ratio {r['prepare_ratio']:.2f} "
                f"(target <= {r['target_ratio']})"
            )
            if "pretrain_ratio" in r:
                lines.append(
                    f"  smoke pretrain on its tokens: {r['pretrain_peak_rss_mb'][0]:.0f} -> "
                    f"{r['pretrain_peak_rss_mb'][1]:.0f} MB, ratio {r['pretrain_ratio']:.2f}"
                )
        else:
            lines.append(f"prepare_memory  FAILED (rc {pm['rc']})")
    return lines


def main(argv=None) -> int:
    args = parse_args(argv)
    args.results.mkdir(parents=True, exist_ok=True)
    todo = args.only or list(BENCHES)
    runs = {}
    for name in BENCHES:
        if name not in todo:
            continue
        if name == "pretrain_throughput":
            extra = (["--quick"] if args.quick else []) + shlex.split(args.pretrain_args)
        elif name == "prepare_memory":
            extra = (["--quick"] if args.quick else []) + shlex.split(args.memory_args)
        elif name == "repro_time":
            extra = (["--experiment", "smoke"] if args.quick else []) + shlex.split(args.repro_args)
        elif name == "fixed_cost":
            extra = ["--repeat", "1"] if args.quick else []
        elif name == "nanogpt_pair":
            extra = ["--iters", "200", "--eval-interval", "100"] if args.quick else []
        else:  # busy_machine
            extra = ["--rounds", "1", "--steps", "100"] if args.quick else []
        runs[name] = run(name, extra, args.results)
    print("\n=== summary")
    for line in summary_lines(runs):
        print(line)
    for name, r in runs.items():
        print(f"{name}: rc {r['rc']}, {r['wall_s']:.0f} s, {r['out']}")
    (args.results / "run_all.json").write_text(
        json.dumps({k: {"rc": v["rc"], "wall_s": v["wall_s"], "out": v["out"]} for k, v in runs.items()}, indent=2)
        + "\n"
    )
    return 0 if all(r["rc"] == 0 for r in runs.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
