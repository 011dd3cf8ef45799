#!/usr/bin/env python
"""The pretrain stage on an idle machine and beside one ordinary busy process (a single-threaded
`while True: pass`), in one invocation: lmforge chooses torch's threads for the free cores
(`lmforge.host`), and the same run with torch's default threads pinned ($OMP_NUM_THREADS = all
cores, which turns lmforge's choice off) shows what that choice saves.

    python benchmarks/busy_machine.py [--rounds 2] [--steps 300]

The model is gpt_tiny's shape (4 layers, 128 wide) at block 64, batch 12, over the smoke corpus;
the runs alternate (idle, busy, busy with default threads) so that a drifting machine affects all
alike, and each ratio is of medians. Target: busy / idle <= 1.5. Writes
benchmarks/results/busy_machine.json.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
from pathlib import Path

from harness import PYTHON, ROOT, busy_neighbour, checked, report, run


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--out", type=Path, default=None, help="JSON result (default: benchmarks/results/busy_machine.json)")
    args = p.parse_args(argv)

    cores = str(len(os.sched_getaffinity(0)))
    walls: dict[str, list[float]] = {"idle": [], "busy": [], "busy, default threads": []}
    with tempfile.TemporaryDirectory() as tmp:
        common = [f"paths.root={tmp}", "experiment=smoke", "progress=false", "tracking=none"]
        checked(run([PYTHON, str(ROOT / "pipelines/prepare.py"), *common]), "prepare")
        pretrain = [
            PYTHON,
            str(ROOT / "pipelines/pretrain.py"),
            *common,
            "model.d_model=128",
            "model.n_layers=4",
            f"trainer.max_steps={args.steps}",
            "trainer.batch_size=12",
            "trainer.block_size=64",
            "trainer.val_check_interval=100",
            "trainer.checkpoint_every_n_steps=100",
        ]
        env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
        for _ in range(args.rounds):
            for name in walls:
                shutil.rmtree(Path(tmp) / ".lmforge", ignore_errors=True)
                if name == "idle":
                    timed = run(pretrain, env=env)
                else:
                    with busy_neighbour():
                        timed = run(pretrain, env={**env, **({"OMP_NUM_THREADS": cores} if "default" in name else {})})
                walls[name].append(checked(timed, f"pretrain ({name})").wall_s)

    med = {name: statistics.median(w) for name, w in walls.items()}
    rows = [(name, f"{med[name]:.1f} s ({med[name] / med['idle']:.2f}x idle)") for name in walls]
    report(
        "busy_machine",
        rows,
        {
            "walls_s": walls,
            "median_s": med,
            "busy_over_idle": med["busy"] / med["idle"],
            "default_threads_busy_over_idle": med["busy, default threads"] / med["idle"],
        },
    )


if __name__ == "__main__":
    main()
