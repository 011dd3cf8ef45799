#!/usr/bin/env python
"""The fused AdamW step against torch's per-tensor one, on MiniLM's parameters: the optimiser step
alone and a whole fine-tuning step (forward, backward, clipping, step).

Both sides use `lmforge.optim.adamw` (decay on matrices only, betas 0.9/0.999 as fine-tuning
uses) over the same model: all-MiniLM-L6-v2 (22.7M parameters, from its offline package) under
lmforge's `SequenceClassifier`, batches of `--batch` × `--tokens` random token ids (SST-2's
phrases average 13 MiniLM tokens) and two labels, bf16 autocast (what the default trainer runs on
a CPU with AVX512-BF16 or AMX), and gradient-norm clipping at 1.0 (`torch.nn.utils.clip_grad_norm_`,
as `lmforge.optim.FusedClipping` and Lightning clip). Rounds alternate which side runs first; the
reported ratios are medians over rounds of per-tensor time / fused time, measured in the same
process (machines here are noisy).

    python benchmarks/optimizer_step.py                  # 5 rounds of 20 steps per side: ~2 min on 2 cores
    python benchmarks/optimizer_step.py --quick          # 1 round of 3 steps: checks that it runs
    python benchmarks/optimizer_step.py --threads 1

Writes benchmarks/results/optimizer_step.json.
"""

from __future__ import annotations

import platform
import statistics
import time

from harness import ROOT, TORCH_THREADS, Parser, alternate, report


def main(argv=None) -> None:
    p = Parser(__doc__, "optimizer_step", rounds=5, threads=TORCH_THREADS, quick={"rounds": 1, "steps": 3})
    p.add_argument("--steps", type=int, default=20, help="timed steps per side and round")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--tokens", type=int, default=16, help="tokens per example")
    args = p.parse_args(argv)
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
    opts = {fused: adamw(model, 1e-5, 0.01, (0.9, 0.999), fused=fused) for fused in (False, True)}

    def backward():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits = model(ids, mask)
        torch.nn.functional.cross_entropy(logits.float(), labels).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)

    def timed(fused: bool, whole: bool, steps: int) -> float:
        """Milliseconds per step: the optimiser step alone, or with the forward and backward."""
        total = 0.0
        for _ in range(steps):
            if not whole:
                backward()
            t0 = time.perf_counter()
            if whole:
                backward()
            opts[fused].step()
            total += time.perf_counter() - t0
            opts[fused].zero_grad(set_to_none=False)
        return 1e3 * total / steps

    for fused in opts:  # warm-up: allocate the optimiser states
        timed(fused, True, 2)

    def side(what: str, name: str):
        return lambda: timed(name == "fused", what == "whole", args.steps)

    sides = {f"{what}_{name}_ms": side(what, name) for what in ("step", "whole") for name in ("per_tensor", "fused")}
    rounds = []
    for row in alternate(sides, args.rounds):
        rounds.append(row)
        print(
            f"round {len(rounds)}: optimiser step {row['step_per_tensor_ms']:.1f} → {row['step_fused_ms']:.1f} ms; "
            f"whole step {row['whole_per_tensor_ms']:.1f} → {row['whole_fused_ms']:.1f} ms",
            flush=True,
        )
    ratio = {
        what: statistics.median(r[f"{what}_per_tensor_ms"] / r[f"{what}_fused_ms"] for r in rounds)
        for what in ("step", "whole")
    }
    threads = torch.get_num_threads()
    report(
        "optimizer_step",
        [
            ("fused AdamW, optimiser step", f"{ratio['step']:.2f}x faster"),
            ("fused AdamW, whole fine-tuning step", f"{ratio['whole']:.2f}x faster"),
            ("model", f"{n_params / 1e6:.1f}M parameters, batch {args.batch} x {args.tokens}, {threads} threads"),
        ],
        {
            "model": "all-MiniLM-L6-v2 + SequenceClassifier",
            "parameters": n_params,
            "batch": args.batch,
            "tokens": args.tokens,
            "threads": threads,
            "torch": torch.__version__,
            "machine": platform.processor() or platform.machine(),
            "rounds": rounds,
            "optimizer_step_ratio": ratio["step"],
            "whole_step_ratio": ratio["whole"],
        },
        args.out,
    )


if __name__ == "__main__":
    main()
