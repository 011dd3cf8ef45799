#!/usr/bin/env python
"""Peak memory of a fine-tuning step on MiniLM: every weight (`full`) against LoRA as
`task.<t>.method=lora` adds it (`lora`: `lmforge.models.adapters.add_lora`, whose layer adds the
adapters in place) and against LoRA through peft's own layer (`lora-peft`), each under glibc's
default allocator and with its mmap threshold fixed (`MALLOC_MMAP_THRESHOLD_`).

Each side runs in a process of its own (a process's peak resident memory, VmHWM, is the figure):
all-MiniLM-L6-v2 (22.7M parameters, from its offline package) under lmforge's `TokenClassifier`,
batches of `--batch` × `--tokens` random token ids and 9 tags (a batch of 32 of CoNLL-2003's
sentences pads to 51 MiniLM tokens at the median, the longest to the task's `max_length`, 128),
fp32, AdamW as fine-tuning builds it, `--steps` steps after two of warm-up. The peak is measured
from the first step on (what the model, its data and the optimiser hold before training is the same
for all); the resident memory at that point is reported beside it.

Why both allocators: by default glibc serves the tensors of a step (under 32 MB each) from heaps it
keeps and reuses, so a process's resident peak follows how the allocations of a step interleave,
not only what is alive at once. With the mmap threshold fixed at 128 KiB every larger tensor is
mapped and unmapped, and the resident peak follows live memory — at the price of a page fault per
page, so steps are slower. LoRA keeps no gradient or AdamW state for the backbone's weights
(22.7M × 3 floats); `peft`'s own layer adds an adapter's output to the layer's out of place (three
temporaries the size of the layer's output per adapted layer and step), which glibc keeps.

    python benchmarks/lora_memory.py                    # ~6 min on 2 cores
    python benchmarks/lora_memory.py --quick            # 1 step: checks that it runs
    python benchmarks/lora_memory.py --targets query value --rank 8

Writes benchmarks/results/lora_memory.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

from harness import PYTHON, ROOT, TORCH_THREADS, Parser, report

METHODS = ("full", "lora", "lora-peft")
ALLOCATORS = {"glibc default": {}, "mmap threshold 128 KiB": {"MALLOC_MMAP_THRESHOLD_": "131072"}}


def child(args) -> dict:
    """One side, in this process: the step's peak resident memory and its time."""
    import torch
    from omegaconf import OmegaConf

    from lmforge.host import peak_memory_mb, reset_peak_memory
    from lmforge.models import settings
    from lmforge.models.adapters import add_lora
    from lmforge.optim import adamw
    from lmforge.tasks.tagging import TokenClassifier

    if args.threads:
        torch.set_num_threads(args.threads)
    cls, cfg = settings(OmegaConf.load(ROOT / "conf" / "model" / "minilm.yaml"))
    torch.manual_seed(0)
    model = TokenClassifier(cls.create(cfg), n_labels=9)
    if args.child == "lora":
        add_lora(model.backbone, args.rank, 2.0 * args.rank, 0.0, args.targets, "benchmark")
    elif args.child == "lora-peft":
        from peft import LoraConfig
        from peft.functional import inject_adapter_in_model

        config = LoraConfig(r=args.rank, lora_alpha=2.0 * args.rank, target_modules=args.targets)
        inject_adapter_in_model(config, model.backbone)  # peft's layer; the rest frozen, as add_lora's
    model.train()
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    gen = torch.Generator().manual_seed(0)
    (tokens,) = args.tokens
    ids = torch.randint(1000, model.backbone.cfg.vocab_size, (args.batch, tokens), generator=gen)
    mask = torch.ones_like(ids)
    tags = torch.randint(0, 9, (args.batch, tokens), generator=gen)
    opt = adamw(model, 1e-3, 0.01, (0.9, 0.999))

    def step():
        logits = model(ids, mask)
        torch.nn.functional.cross_entropy(logits.flatten(0, 1), tags.flatten()).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    reset_peak_memory()
    start = peak_memory_mb()  # the peak starts afresh at the resident memory of now
    for _ in range(2):  # warm-up: the optimiser's state
        step()
    t0 = time.perf_counter()
    for _ in range(args.steps):
        step()
    ms = 1e3 * (time.perf_counter() - t0) / args.steps
    return {"trainable": trainable, "rss_start_mb": start, "peak_mb": peak_memory_mb(), "ms_per_step": ms}


def main(argv=None) -> None:
    p = Parser(__doc__, "lora_memory", threads=TORCH_THREADS, quick={"steps": 1})
    p.add_argument("--steps", type=int, default=8, help="timed steps per side")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--tokens", type=int, nargs="+", default=[51, 128], help="tokens per example (each a run)")
    p.add_argument("--rank", type=int, default=16, help="LoRA's rank (alpha is twice it)")
    p.add_argument("--targets", nargs="+", default=["query", "key", "value", "dense"], help="LoRA's target layers")
    p.add_argument("--child", choices=METHODS, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(child(args)))
        return

    forwarded = [f"--steps={args.steps}", f"--batch={args.batch}", f"--rank={args.rank}", "--targets", *args.targets]
    forwarded += [f"--threads={args.threads}"] if args.threads else []
    sides: dict = {}

    def side(method: str, tokens: int, alloc: str) -> str:
        return f"{method}, {args.batch} x {tokens} tokens, {alloc}"

    for tokens in args.tokens:
        for alloc, extra in ALLOCATORS.items():
            for method in METHODS:
                env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), **extra}
                cmd = [PYTHON, __file__, f"--child={method}", *forwarded, "--tokens", str(tokens)]
                out = subprocess.run(cmd, env=env, capture_output=True, text=True)
                name = side(method, tokens, alloc)
                if out.returncode:
                    sys.exit(f"{name} failed:\n{out.stderr[-3000:]}")
                s = sides[name] = json.loads(out.stdout.strip().splitlines()[-1])
                print(f"{name}: peak {s['peak_mb']:.1f} MB, {s['ms_per_step']:.1f} ms a step", flush=True)
    rows = [
        (
            name,
            f"peak {s['peak_mb']:.0f} MB (from {s['rss_start_mb']:.0f} MB at the first step), "
            f"{s['ms_per_step']:.0f} ms a step, {s['trainable']:,} trainable",
        )
        for name, s in sides.items()
    ]
    ratios = {
        f"{method} over full, {args.batch} x {tokens} tokens, {alloc}": sides[side(method, tokens, alloc)]["peak_mb"]
        / sides[side("full", tokens, alloc)]["peak_mb"]
        for method in METHODS[1:]
        for tokens in args.tokens
        for alloc in ALLOCATORS
    }
    rows += [(f"peak of {key}", f"{r:.2f}") for key, r in ratios.items()]
    report(
        "lora_memory",
        rows,
        {"settings": vars(args) | {"out": str(args.out)}, "sides": sides, "ratios": ratios},
        args.out,
    )


if __name__ == "__main__":
    main()
