#!/usr/bin/env python
"""Run the lmforge benchmarks fixed_cost, busy_machine, nanogpt_pair, pretrain_throughput, repro_time
and prepare_memory with their defaults (`make bench`) and print one summary.

Each benchmark runs in its own process (so one's imports and threads do not skew another) and
writes its JSON under benchmarks/results/, whose table this script prints again at the end; it
writes what ran to benchmarks/results/run_all.json.

    python benchmarks/run_all.py                       # all six, defaults (the default pipeline: long)
    python benchmarks/run_all.py --quick               # each in its quick mode (repro_time: --experiment smoke)
    python benchmarks/run_all.py --only pretrain_throughput --pretrain-args "--precision 32-true"
    python benchmarks/run_all.py --only prepare_memory --memory-args "--sizes-mb 8 64"

(minilm.py and char_lm.py are not in this run: an hour of CPU and a fixed time budget; run them alone.)
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from harness import PYTHON, RESULTS, ROOT, Parser, read_json, report, run, table

QUICK = {  # each benchmark's quick mode
    "fixed_cost": ["--repeat", "1"],
    "busy_machine": ["--rounds", "1", "--steps", "100"],
    "nanogpt_pair": ["--iters", "200", "--eval-interval", "100"],
    "pretrain_throughput": ["--quick"],
    "repro_time": ["--experiment", "smoke"],
    "prepare_memory": ["--quick"],
}


def main(argv=None) -> int:
    p = Parser(__doc__, "run_all")
    p.add_argument("--only", choices=list(QUICK), action="append", help="run only this benchmark (repeatable)")
    p.add_argument("--quick", action="store_true", help="each benchmark in its quick mode: " + str(QUICK))
    p.add_argument("--pretrain-args", default="", help="extra arguments for pretrain_throughput.py (one string)")
    p.add_argument("--repro-args", default="", help="extra arguments for repro_time.py (one string)")
    p.add_argument("--memory-args", default="", help="extra arguments for prepare_memory.py (one string)")
    p.add_argument("--results", type=Path, default=RESULTS, help="folder for the JSON results")
    p.set_defaults(out=None)  # <results>/run_all.json
    args = p.parse_args(argv)
    extra = {"pretrain_throughput": args.pretrain_args, "repro_time": args.repro_args}
    extra["prepare_memory"] = args.memory_args

    runs = {}
    for name in [name for name in QUICK if name in (args.only or QUICK)]:
        out = args.results / f"{name}.json"
        out.unlink(missing_ok=True)  # never report a previous run's numbers
        cmd = [PYTHON, str(ROOT / "benchmarks" / f"{name}.py"), "--out", str(out)]
        cmd += (QUICK[name] if args.quick else []) + shlex.split(extra.get(name, ""))
        print(f"\n=== {name}: {shlex.join(cmd)}", flush=True)
        timed = run(cmd, env={"PYTHONUNBUFFERED": "1"}, echo=True, timeout=None)
        runs[name] = {"rc": timed.returncode, "wall_s": timed.wall_s, "out": str(out)}
        runs[name]["summary"] = (read_json(out) or {}).get("summary", [])

    for name, result in runs.items():
        table(f"{name}: rc {result['rc']}, {result['wall_s']:.0f} s", result.pop("summary") or [("FAILED", "")])
    rows = [(name, f"rc {r['rc']}, {r['wall_s']:.0f} s, {r['out']}") for name, r in runs.items()]
    report("run_all", rows, runs, args.out or args.results / "run_all.json")
    return 0 if all(r["rc"] == 0 for r in runs.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
