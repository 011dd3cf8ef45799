#!/usr/bin/env python
"""Peak memory of `prepare` on a 64 MB and a 512 MB text corpus (8x): it must not grow (target <= 1.2x).

The corpora are built in a temporary folder from real English text under ../shared/data (next to
the repo): Tiny Shakespeare (its lines), SST-2 (movie-review sentences and phrases, lowercased),
Multi30k (English image captions) and CoNLL-2003 (Reuters news sentences, tokens re-joined by
spaces). Each paragraph draws 2-12 of these ~140,000 sentences at random (seeded), one per line
or run together, and ends with a line "(ref. <random number>)", so paragraphs do not repeat and
the vocabulary has a tail that keeps growing with the corpus (as numbers and names do in real
text). Paragraphs are separated by blank lines: `data=text_files` reads them as documents.

Each size is measured in fresh processes, one per command, through a small parent that runs the
command and reads its peak resident set size from `getrusage(RUSAGE_CHILDREN)`:

    prepare   python pipelines/prepare.py data=text_files data.text_files.paths=[<corpus>]
              tracking=none progress=false paths.root=<tmp>/<size>
              (the default tokenizer: byte-level BPE, 4,096 tokens, max_train_chars 50,000,000)
    pretrain  python pipelines/pretrain.py experiment=smoke (same data and root) tracking=none
              trainer.accelerator=cpu trainer.max_steps=<steps>: the tiny model reads the packed
              token files through numpy.memmap (lmforge.train.lm); its peak must stay flat too

Run with OMP_NUM_THREADS=1 RAYON_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false on a shared machine.
The last line printed is the result as JSON (also written to --out).

    python benchmarks/prepare_memory.py                     # 64 MB and 512 MB (~2 GB of temporary disk)
    python benchmarks/prepare_memory.py --sizes-mb 8 64     # quicker
    python benchmarks/prepare_memory.py --quick             # checks that it runs: 2 MB and 4 MB, 5 pretrain steps
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
TARGET_RATIO = 1.2

# Runs argv[1:] as its only child and prints that child's peak RSS (a fresh process per
# measurement: RUSAGE_CHILDREN is the largest of the children a process has waited for).
MEASURE = """
import json, resource, subprocess, sys, time
t0 = time.perf_counter()
rc = subprocess.call(sys.argv[1:], stdout=subprocess.DEVNULL if {quiet} else None)
print(json.dumps({{"rc": rc, "wall_s": time.perf_counter() - t0,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}}))
"""


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--sizes-mb",
        type=int,
        nargs=2,
        default=[64, 512],
        metavar=("SMALL", "LARGE"),
        help="corpus sizes in MB (default: 64 512)",
    )
    p.add_argument("--shared-data", type=Path, default=SHARED, help="folder with the source text")
    p.add_argument("--pretrain-steps", type=int, default=100, help="trainer.max_steps of the pretrain check")
    p.add_argument("--no-pretrain", action="store_true", help="measure prepare only")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workdir", type=Path, default=None, help="where to build the corpora (default: a temp dir)")
    p.add_argument("--keep", action="store_true", help="keep the work folder")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "prepare_memory.json")
    p.add_argument("--verbose", action="store_true", help="show the stages' output")
    p.add_argument(
        "--quick", action="store_true", help="check that it runs: --sizes-mb 2 4 --pretrain-steps 5 (unless given)"
    )
    a = p.parse_args(argv)
    if a.quick:
        given = set(argv if argv is not None else sys.argv[1:])
        if "--sizes-mb" not in given:
            a.sizes_mb = [2, 4]
        if "--pretrain-steps" not in given:
            a.pretrain_steps = 5
    return a


def sentences(shared: Path) -> list[str]:
    """The sentence pool: every non-empty line / sentence of the four sources."""
    pool: list[str] = []
    shakespeare = shared / "tinyshakespeare" / "input.txt"
    pool += [line.strip() for line in shakespeare.read_text(encoding="utf-8").split("\n") if line.strip()]
    sst2 = (shared / "sst2" / "train.tsv").read_text(encoding="utf-8").split("\n")[1:]
    pool += [row.split("\t")[0].strip() for row in sst2 if row.strip()]
    captions = (shared / "multi30k" / "train.en").read_text(encoding="utf-8").split("\n")
    pool += [line.strip() for line in captions if line.strip()]
    words: list[str] = []
    for line in (shared / "conll2003" / "eng.train").read_text(encoding="utf-8").split("\n"):
        if not line.strip() or line.startswith("-DOCSTART-"):
            if words:
                pool.append(" ".join(words))
            words = []
        else:
            words.append(line.split(" ")[0])
    return [s for s in pool if s]


def build_corpus(path: Path, n_bytes: int, pool: list[str], seed: int) -> dict:
    """Write paragraphs of random pool sentences to ``path`` until it holds ``n_bytes``."""
    rng = np.random.default_rng(seed)
    written = paragraphs = 0
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        while written < n_bytes:
            counts = rng.integers(2, 13, size=4096)
            picks = rng.integers(0, len(pool), size=int(counts.sum()))
            one_per_line = rng.random(4096) < 0.5
            refs = rng.integers(0, 10**7, size=4096)
            start = 0
            chunk = []
            for count, lines, ref in zip(counts, one_per_line, refs):
                body = [pool[i] for i in picks[start : start + count]]
                start += count
                chunk.append(("\n" if lines else " ").join(body) + f"\n(ref. {ref})\n\n")
            text = "".join(chunk)
            f.write(text)
            written += len(text.encode("utf-8"))
            paragraphs += len(chunk)
    return {"bytes": path.stat().st_size, "paragraphs": paragraphs}


def measure(cmd: list[str], quiet: bool, env: dict) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", MEASURE.format(quiet=quiet), *cmd],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
        check=True,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    if result["rc"] != 0:
        raise SystemExit(f"command failed (exit {result['rc']}): {' '.join(cmd)}")
    return result


def main(argv=None) -> dict:
    args = parse_args(argv)
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
        "RAYON_NUM_THREADS": os.environ.get("RAYON_NUM_THREADS", "1"),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")])),
    }
    work = args.workdir or Path(tempfile.mkdtemp(prefix="lmforge-prepare-memory-"))
    work.mkdir(parents=True, exist_ok=True)
    pool = sentences(args.shared_data)
    print(f"sentence pool: {len(pool):,} sentences from {args.shared_data}", flush=True)
    runs = {}
    try:
        for size in args.sizes_mb:
            corpus = work / f"corpus-{size}mb.txt"
            t0 = time.perf_counter()
            info = build_corpus(corpus, size << 20, pool, args.seed)
            print(
                f"{size} MB corpus: {info['paragraphs']:,} paragraphs, {info['bytes']:,} bytes "
                f"(built in {time.perf_counter() - t0:.0f} s)",
                flush=True,
            )
            root = work / f"run-{size}mb"
            data = [
                "data=text_files",
                f"data.text_files.paths=[{corpus}]",
                "tracking=none",
                f"paths.root={root}",
                "progress=false",
            ]
            prepare = measure([sys.executable, "pipelines/prepare.py", *data], not args.verbose, env)
            stats = json.loads((root / "artifacts" / "prepare" / "stats.json").read_text())
            run = {"corpus": info, "prepare": prepare, "docs": stats["docs"], "tokens": stats["tokens"]}
            print(
                f"  prepare: peak RSS {prepare['peak_rss_mb']:.0f} MB, {prepare['wall_s']:.0f} s, "
                f"{stats['tokens']['train']:,} train tokens",
                flush=True,
            )
            if not args.no_pretrain:
                pretrain = measure(
                    [
                        sys.executable,
                        "pipelines/pretrain.py",
                        "experiment=smoke",
                        *data,
                        "trainer.accelerator=cpu",
                        f"trainer.max_steps={args.pretrain_steps}",
                    ],
                    not args.verbose,
                    env,
                )
                run["pretrain"] = pretrain
                print(
                    f"  pretrain (smoke, {args.pretrain_steps} steps): peak RSS {pretrain['peak_rss_mb']:.0f} MB, "
                    f"{pretrain['wall_s']:.0f} s",
                    flush=True,
                )
            runs[f"{size}mb"] = run
            shutil.rmtree(root, ignore_errors=True)
            corpus.unlink()
    finally:
        if not args.keep and args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)

    small, large = (runs[f"{s}mb"] for s in args.sizes_mb)
    result = {
        "sizes_mb": args.sizes_mb,
        "prepare_peak_rss_mb": [small["prepare"]["peak_rss_mb"], large["prepare"]["peak_rss_mb"]],
        "prepare_wall_s": [small["prepare"]["wall_s"], large["prepare"]["wall_s"]],
        "prepare_ratio": large["prepare"]["peak_rss_mb"] / small["prepare"]["peak_rss_mb"],
        "target_ratio": TARGET_RATIO,
        "runs": runs,
    }
    if not args.no_pretrain:
        result["pretrain_peak_rss_mb"] = [small["pretrain"]["peak_rss_mb"], large["pretrain"]["peak_rss_mb"]]
        result["pretrain_wall_s"] = [small["pretrain"]["wall_s"], large["pretrain"]["wall_s"]]
        result["pretrain_ratio"] = large["pretrain"]["peak_rss_mb"] / small["pretrain"]["peak_rss_mb"]
    print(
        f"prepare peak RSS: {result['prepare_peak_rss_mb'][0]:.0f} MB ({args.sizes_mb[0]} MB corpus) -> "
        f"{result['prepare_peak_rss_mb'][1]:.0f} MB ({args.sizes_mb[1]} MB): ratio {result['prepare_ratio']:.2f} "
        f"(target <= {TARGET_RATIO}); wall {result['prepare_wall_s'][0]:.0f} s -> {result['prepare_wall_s'][1]:.0f} s"
    )
    if not args.no_pretrain:
        print(
            f"pretrain peak RSS: {result['pretrain_peak_rss_mb'][0]:.0f} MB "
            f"-> {result['pretrain_peak_rss_mb'][1]:.0f} MB: "
            f"ratio {result['pretrain_ratio']:.2f}"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
