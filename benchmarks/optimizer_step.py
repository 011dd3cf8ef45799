#!/usr/bin/env python
"""The fused AdamW step against torch's per-tensor one, on MiniLM's parameters: the optimiser step
alone and a whole fine-tuning step (forward, backward, clipping, step).

Both sides use `lmforge.optim.adamw` (decay on matrices only, betas 0.9/0.999 as fine-tuning
uses) over the same model: all-MiniLM-L6-v2 (22.7M parameters, from its offline package) under
lmforge's `SequenceClassifier`, batches of `--batch` × `--tokens` random token ids (SST-2's
phrases average 13 MiniLM tokens) and two labels, bf16 autocast as the default trainer runs, and
gradient-norm clipping at 1.0 (`torch.nn.utils.clip_grad_norm_`, as `lmforge.optim.FusedClipping`
and Lightning clip). Rounds alternate which side runs first; the reported ratios are medians over
rounds of per-tensor time / fused time, measured in the same process (machines here are noisy).

    python benchmarks/optimizer_step.py                  # 5 rounds of 20 steps per side: ~2 min on 2 cores
    python benchmarks/optimizer_step.py --quick          # 1 round of 3 steps: checks that it runs
    python benchmarks/optimizer_step.py --threads 1

Writes benchmarks/results/optimizer_step.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))  # measure this checkout's lmforge, installed or not


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0].replace("\n", " "),
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--steps", type=int, default=20, help="timed steps per side and round")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--tokens", type=int, default=16, help="tokens per example")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--quick", action="store_true", help="1 round of 3 steps")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "optimizer_step.json")
    args = p.parse_args(argv)
    if args.quick:
        args.rounds, args.steps = 1, 3
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    import torch
    from omegaconf import OmegaConf

    from lmforge.models import settings
    from lmforge.optim import adamw
    from lmforge.tasks.classification import SequenceClassifier

    if args.threads:
        torch.set_num_threads(args.threads)
    cls, cfg = settings(OmegaConf.load(ROOT / "conf" / "model" / "minilm.yaml"))
    torch.manual_seed(0)
    model = SequenceClassifier(cls.create(cfg), n_labels=2)
    model.train()
    n_params = sum(p.numel() for p in model.parameters())
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(1000, model.backbone.cfg.vocab_size, (args.batch, args.tokens), generator=gen)
    mask = torch.ones_like(ids)
    labels = torch.randint(0, 2, (args.batch,), generator=gen)
    opts = {
        "per_tensor": adamw(model, 1e-5, 0.01, (0.9, 0.999), fused=False),
        "fused": adamw(model, 1e-5, 0.01, (0.9, 0.999), fused=True),
    }

    def backward():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits = model(ids, mask)
        torch.nn.functional.cross_entropy(logits.float(), labels).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)

    def timed(opt, whole: bool, steps: int) -> float:
        total = 0.0
        for _ in range(steps):
            if not whole:
                backward()
            t0 = time.perf_counter()
            if whole:
                backward()
            opt.step()
            total += time.perf_counter() - t0
            opt.zero_grad(set_to_none=False)
        return total / steps

    for opt in opts.values():  # warm-up: allocate the optimiser states
        timed(opt, True, 2)
    rounds = []
    for r in range(args.rounds):
        order = list(opts) if r % 2 == 0 else list(reversed(opts))
        row = {}
        for what in ("step", "whole"):
            for name in order:
                row[f"{what}_{name}_ms"] = 1e3 * timed(opts[name], what == "whole", args.steps)
        rounds.append(row)
        print(
            f"round {r + 1}: optimiser step {row['step_per_tensor_ms']:.1f} → {row['step_fused_ms']:.1f} ms; "
            f"whole step {row['whole_per_tensor_ms']:.1f} → {row['whole_fused_ms']:.1f} ms",
            flush=True,
        )
    result = {
        "model": "all-MiniLM-L6-v2 + SequenceClassifier",
        "parameters": n_params,
        "batch": args.batch,
        "tokens": args.tokens,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "machine": platform.processor() or platform.machine(),
        "rounds": rounds,
        "optimizer_step_ratio": statistics.median(r["step_per_tensor_ms"] / r["step_fused_ms"] for r in rounds),
        "whole_step_ratio": statistics.median(r["whole_per_tensor_ms"] / r["whole_fused_ms"] for r in rounds),
    }
    print(
        f"fused AdamW: optimiser step {result['optimizer_step_ratio']:.2f}× faster, whole fine-tuning step "
        f"{result['whole_step_ratio']:.2f}× faster ({n_params / 1e6:.1f}M parameters, {result['threads']} threads)"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
