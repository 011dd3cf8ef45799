#!/usr/bin/env python
"""The pretrain stage on an idle machine and beside one ordinary busy process (a single-threaded
`while True: pass`), in one invocation: lmforge chooses torch's threads for the free cores
(`lmforge.host`), and the same run with torch's default threads pinned ($OMP_NUM_THREADS = all
cores, which turns lmforge's choice off) shows what that choice saves.

    python benchmarks/busy_machine.py [--rounds 2] [--steps 300]

The model is gpt_tiny's shape (4 layers, 128 wide) at block 64, batch 12, over the smoke corpus;
the runs alternate (idle, busy, busy with default threads, then the reverse) so that a drifting
machine affects all alike, and each ratio is of medians. Target: busy / idle <= 1.5. Writes
benchmarks/results/busy_machine.json.
"""

from __future__ import annotations

import os
import shutil
from contextlib import nullcontext

from harness import Parser, alternate, busy_neighbour, checked, medians, report, run, scratch, stage


def main(argv=None) -> None:
    p = Parser(__doc__, "busy_machine", rounds=2)
    p.add_argument("--steps", type=int, default=300)
    args = p.parse_args(argv)

    with scratch() as tmp:
        common = [f"paths.root={tmp}", "experiment=smoke", "progress=false", "tracking=none"]
        checked(run(stage("prepare", *common)), "prepare")
        pretrain = stage(
            "pretrain", *common, "model.d_model=128", "model.n_layers=4", f"trainer.max_steps={args.steps}",
            "trainer.batch_size=12", "trainer.block_size=64", "trainer.val_check_interval=100",
            "trainer.checkpoint_every_n_steps=100",
        )  # fmt: skip

        def side(neighbour: bool, threads: str | None):
            def once() -> float:
                shutil.rmtree(tmp / ".lmforge", ignore_errors=True)  # no resuming from the last run
                with busy_neighbour() if neighbour else nullcontext():
                    return checked(run(pretrain, env={"OMP_NUM_THREADS": threads}), "pretrain").wall_s

            return once

        cores = str(len(os.sched_getaffinity(0)))
        sides = {"idle": side(False, None), "busy": side(True, None), "busy, default threads": side(True, cores)}
        rounds = list(alternate(sides, args.rounds))

    med = medians(rounds)
    rows = [(name, f"{med[name]:.1f} s ({med[name] / med['idle']:.2f}x idle)") for name in sides]
    report(
        "busy_machine",
        rows,
        {
            "walls_s": {name: [r[name] for r in rounds] for name in sides},
            "median_s": med,
            "busy_over_idle": med["busy"] / med["idle"],
            "default_threads_busy_over_idle": med["busy, default threads"] / med["idle"],
        },
        args.out,
    )


if __name__ == "__main__":
    main()
