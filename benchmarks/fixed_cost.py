#!/usr/bin/env python
"""What a user waits for before any work: a config error's answer, `--help`, and each stage's
fixed cost (process start to the stage's first real work: imports, config, MLflow store), beside
the reference measured in the same run, `python -c "import torch"`.

    python benchmarks/fixed_cost.py [--repeat 3]

The stages run by hand on the smoke preset in a temporary root (tracking into its own MLflow
store), one task: prepare, pretrain, finetune, evaluate and report. A stage logs its start-up on
its "done" line; what remains of its process's wall time after its work is its exit. Writes
benchmarks/results/fixed_cost.json.
"""

from __future__ import annotations

from harness import PYTHON, STARTUP_RE, Parser, checked, median_wall, report, run, scratch, stage

STAGES = (
    ("prepare", []),
    ("pretrain", []),
    ("finetune", ["task=topic", "inits=[pretrained]"]),
    ("evaluate", ["task=topic", "inits=[pretrained]"]),
    ("report", ["task=topic"]),
)


def main(argv=None) -> None:
    p = Parser(__doc__, "fixed_cost")
    p.add_argument("--repeat", type=int, default=3, help="runs of each quick command (median)")
    args = p.parse_args(argv)

    torch_s, _ = median_wall([PYTHON, "-c", "import torch"], args.repeat)
    error_s, last = median_wall(stage("pretrain", "optim.lr=-1"), args.repeat)
    assert last.returncode == 2 and last.output.startswith("error: optim.lr"), last.output
    help_s, _ = median_wall(stage("pretrain", "--help"), args.repeat)
    cfg_s, _ = median_wall(stage("finetune", "--cfg", "job"), args.repeat)

    stages = {}
    with scratch() as tmp:
        common = [f"paths.root={tmp}", "experiment=smoke", "progress=false"]
        for name, overrides in STAGES:
            timed = checked(run(stage(name, *common, *overrides)), name)
            work, startup = map(float, STARTUP_RE.findall(timed.output)[0])
            exit_s = timed.wall_s - startup - work
            stages[name] = {"wall_s": timed.wall_s, "startup_s": startup, "work_s": work, "exit_s": exit_s}

    rows = [
        ("import torch (reference)", f"{torch_s:.2f} s"),
        ("config error answered", f"{error_s:.2f} s ({error_s / torch_s:.2f}x import torch)"),
        ("pretrain --help", f"{help_s:.2f} s"),
        ("finetune --cfg job", f"{cfg_s:.2f} s"),
    ]
    rows += [
        (
            f"{name}: start-up / work / exit",
            f"{s['startup_s']:.1f} / {s['work_s']:.1f} / {s['exit_s']:.1f} s "
            f"({s['startup_s'] / torch_s:.1f}x import torch)",
        )
        for name, s in stages.items()
    ]
    report(
        "fixed_cost",
        rows,
        {"import_torch_s": torch_s, "config_error_s": error_s, "help_s": help_s, "cfg_job_s": cfg_s, "stages": stages},
        args.out,
    )


if __name__ == "__main__":
    main()
