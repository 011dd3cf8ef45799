#!/usr/bin/env python
"""Peak memory of `prepare` on a 64 MB and a 512 MB text corpus (8x): it must not grow (target <= 1.2x).

The corpora are built in a temporary folder from real English text under ../shared/data (next to
the repo): Tiny Shakespeare (its lines), SST-2 (movie-review sentences and phrases, lowercased),
Multi30k (English image captions) and CoNLL-2003 (Reuters news sentences, tokens re-joined by
spaces). Each paragraph draws 2-12 of these ~140,000 sentences at random (seeded), one per line
or run together, and ends with a line "(ref. <random number>)", so paragraphs do not repeat and
the vocabulary has a tail that keeps growing with the corpus (as numbers and names do in real
text). Paragraphs are separated by blank lines: `data=text_files` reads them as documents.

Each size is measured in fresh processes, one per command, whose peak resident set size is the
largest of that process tree's (`wait4`):

    prepare   python pipelines/prepare.py data=text_files data.text_files.paths=[<corpus>]
              tracking=none progress=false paths.root=<tmp>/<size>
              (the default tokenizer: byte-level BPE, 4,096 tokens, max_train_chars 50,000,000)
    pretrain  python pipelines/pretrain.py experiment=smoke (same data and root) tracking=none
              trainer.accelerator=cpu trainer.max_steps=<steps>: the tiny model reads the packed
              token files through numpy.memmap (lmforge.train.lm); its peak must stay flat too

The stages run with --threads threads (OMP, MKL, RAYON; default 1, for a shared machine).

    python benchmarks/prepare_memory.py                     # 64 MB and 512 MB (~2 GB of temporary disk)
    python benchmarks/prepare_memory.py --sizes-mb 8 64     # quicker
    python benchmarks/prepare_memory.py --quick             # checks that it runs: 2 MB and 4 MB, 5 pretrain steps
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
from harness import SHARED, Parser, checked, report, run, scratch, stage, stage_env

TARGET_RATIO = 1.2


def sentences(shared: Path) -> list[str]:
    """The sentence pool: every non-empty line / sentence of the four sources."""
    read = lambda *parts: shared.joinpath(*parts).read_text(encoding="utf-8").split("\n")  # noqa: E731
    pool = read("tinyshakespeare", "input.txt")
    pool += [row.split("\t")[0] for row in read("sst2", "train.tsv")[1:]]
    pool += read("multi30k", "train.en")
    words: list[str] = []
    for line in read("conll2003", "eng.train"):
        if not line.strip() or line.startswith("-DOCSTART-"):
            pool.append(" ".join(words))
            words = []
        else:
            words.append(line.split(" ")[0])
    return [s.strip() for s in pool if s.strip()]


def build_corpus(path: Path, n_bytes: int, pool: list[str], seed: int) -> dict:
    """Write paragraphs of random pool sentences to `path` until it holds `n_bytes`."""
    rng = np.random.default_rng(seed)
    written = paragraphs = 0
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        while written < n_bytes:
            counts = rng.integers(2, 13, size=4096)
            picks = iter(rng.integers(0, len(pool), size=int(counts.sum())))
            one_per_line = rng.random(4096) < 0.5
            refs = rng.integers(0, 10**7, size=4096)
            text = "".join(
                ("\n" if lines else " ").join(pool[next(picks)] for _ in range(count)) + f"\n(ref. {ref})\n\n"
                for count, lines, ref in zip(counts, one_per_line, refs)
            )
            f.write(text)
            written += len(text.encode("utf-8"))
            paragraphs += len(counts)
    return {"bytes": path.stat().st_size, "paragraphs": paragraphs}


def main(argv=None) -> None:
    quick = {"sizes_mb": [2, 4], "pretrain_steps": 5}
    threads = "OMP, MKL and RAYON threads of the stages (default 1, for a shared machine)"
    p = Parser(__doc__, "prepare_memory", threads=threads, workdir="where to build the corpora", quick=quick)
    p.add_argument("--sizes-mb", type=int, nargs=2, default=[64, 512], metavar=("SMALL", "LARGE"))
    p.add_argument("--shared-data", type=Path, default=SHARED, help="folder with the source text")
    p.add_argument("--pretrain-steps", type=int, default=100, help="trainer.max_steps of the pretrain check")
    p.add_argument("--no-pretrain", action="store_true", help="measure prepare only")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--verbose", action="store_true", help="show the stages' output")
    p.set_defaults(threads=1)
    args = p.parse_args(argv)

    env = stage_env(threads=args.threads)
    pool = sentences(args.shared_data)
    print(f"sentence pool: {len(pool):,} sentences from {args.shared_data}", flush=True)
    runs, peak, wall = {}, {"prepare": [], "pretrain": []}, {"prepare": [], "pretrain": []}
    with scratch(args.workdir, args.keep) as work:
        for size in args.sizes_mb:
            corpus, root = work / f"corpus-{size}mb.txt", work / f"run-{size}mb"
            t0 = time.perf_counter()
            info = build_corpus(corpus, size << 20, pool, args.seed)
            print(f"{size} MB corpus: {info['paragraphs']:,} paragraphs, {info['bytes']:,} bytes "
                  f"(built in {time.perf_counter() - t0:.0f} s)", flush=True)  # fmt: skip
            data = ["data=text_files", f"data.text_files.paths=[{corpus}]", "tracking=none", f"paths.root={root}"]
            commands = {"prepare": stage("prepare", *data, "progress=false")}
            if not args.no_pretrain:
                commands["pretrain"] = stage(
                    "pretrain", "experiment=smoke", *data, "progress=false", "trainer.accelerator=cpu",
                    f"trainer.max_steps={args.pretrain_steps}",
                )  # fmt: skip
            run_info: dict = {"corpus": info}
            for name, cmd in commands.items():
                timed = checked(run(cmd, env=env, echo=args.verbose), name)
                run_info[name] = {"rc": timed.returncode, "wall_s": timed.wall_s, "peak_rss_mb": timed.peak_rss_mb}
                peak[name].append(timed.peak_rss_mb)
                wall[name].append(timed.wall_s)
                print(f"  {name}: peak RSS {timed.peak_rss_mb:.0f} MB, {timed.wall_s:.0f} s", flush=True)
                if name == "prepare":
                    stats = json.loads((root / "artifacts" / "prepare" / "stats.json").read_text())
                    run_info |= {"docs": stats["docs"], "tokens": stats["tokens"]}
            runs[f"{size}mb"] = run_info
            corpus.unlink()
            shutil.rmtree(root)  # its tokens: a gigabyte at 512 MB

    small, large = args.sizes_mb
    result = {"sizes_mb": args.sizes_mb, "target_ratio": TARGET_RATIO, "runs": runs}
    rows = []
    for name in commands:
        ratio = peak[name][1] / peak[name][0]
        result |= {f"{name}_peak_rss_mb": peak[name], f"{name}_wall_s": wall[name], f"{name}_ratio": ratio}
        target = f" (target <= {TARGET_RATIO})" if name == "prepare" else ""
        rss = f"{peak[name][0]:.0f} MB ({small} MB corpus) -> {peak[name][1]:.0f} MB ({large} MB)"
        walls = f"wall {wall[name][0]:.0f} -> {wall[name][1]:.0f} s"
        rows.append((f"{name} peak RSS", f"{rss}: ratio {ratio:.2f}{target}; {walls}"))
    report("prepare_memory", rows, result, args.out)


if __name__ == "__main__":
    main()
