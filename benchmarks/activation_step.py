#!/usr/bin/env python
"""The native Transformer's MLP activation in a whole training step: `model.activation=gelu_tanh`
(GPT-2's tanh approximation, the default) against `gelu` (the exact GELU, `torch.nn.GELU()`'s, which
the nanoGPT reference of benchmarks/nanogpt_pair.py uses), nothing else changed.

Both sides are a bare PyTorch loop over `Transformer(cfg)` at the nanoGPT pair's shape by default
(4 layers, 4 heads, 128 wide, block 64, batch 12, 65 characters), each with its own copy of the same
initial weights and batch: forward, the LM head, cross-entropy, backward, clipping at norm 1.0 and
fused AdamW, in fp32. Rounds alternate the order of the sides; the ratio is the median over rounds
of exact/tanh milliseconds a step (below 1: the exact GELU is faster). Changing the default would
move every result (and the GPT-2 export's `activation_function`): this measures what it would buy.

    python benchmarks/activation_step.py               # 8 rounds of 200 steps a side: ~3 min on 2 cores
    python benchmarks/activation_step.py --quick       # 1 round of 5 steps: checks that it runs

Writes benchmarks/results/activation_step.json.
"""

from __future__ import annotations

import platform
import statistics
import time

from harness import TORCH_THREADS, Parser, alternate, report


def main(argv=None) -> None:
    p = Parser(__doc__, "activation_step", rounds=8, threads=TORCH_THREADS, quick={"rounds": 1, "steps": 5})
    p.add_argument("--steps", type=int, default=200, help="timed steps per side and round")
    p.add_argument("--warmup", type=int, default=20, help="untimed steps before each side's first round")
    p.add_argument("--d-model", type=int, default=128)
    p.add_argument("--n-layers", type=int, default=4)
    p.add_argument("--n-heads", type=int, default=4)
    p.add_argument("--d-ff", type=int, default=512)
    p.add_argument("--block", type=int, default=64)
    p.add_argument("--batch", type=int, default=12)
    p.add_argument("--vocab", type=int, default=65)
    args = p.parse_args(argv)
    import torch
    import torch.nn.functional as F

    from lmforge.models.transformer import Transformer, TransformerConfig

    if args.threads:
        torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, args.vocab, (args.batch, args.block), generator=gen)
    y = torch.randint(0, args.vocab, (args.batch, args.block), generator=gen)

    def model(activation: str) -> Transformer:
        cfg = TransformerConfig(
            vocab_size=args.vocab,
            max_len=args.block,
            causal=True,
            dropout=0.0,
            d_model=args.d_model,
            n_layers=args.n_layers,
            n_heads=args.n_heads,
            d_ff=args.d_ff,
            activation=activation,
        )
        torch.manual_seed(0)  # the same initial weights on both sides
        return Transformer(cfg)

    def trainer(m):
        opt = torch.optim.AdamW(m.parameters(), lr=1e-3, betas=(0.9, 0.99), weight_decay=0.1, fused=True)

        def steps(n: int) -> float:
            t0 = time.perf_counter()
            for _ in range(n):
                logits = m.lm_logits(m(x))[..., : args.vocab]
                loss = F.cross_entropy(logits.reshape(-1, args.vocab), y.reshape(-1))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
                opt.step()
            return 1e3 * (time.perf_counter() - t0) / max(n, 1)

        steps(args.warmup)
        return steps

    sides = {"tanh_ms": trainer(model("gelu_tanh")), "exact_ms": trainer(model("gelu"))}
    rounds = []
    for row in alternate({name: (lambda s=s: s(args.steps)) for name, s in sides.items()}, args.rounds):
        rounds.append(row)
        print(f"round {len(rounds)}: tanh {row['tanh_ms']:.1f} ms, exact {row['exact_ms']:.1f} ms a step", flush=True)
    ratios = [r["exact_ms"] / r["tanh_ms"] for r in rounds]
    ratio = statistics.median(ratios)
    tanh, exact = (statistics.median(r[k] for r in rounds) for k in ("tanh_ms", "exact_ms"))
    threads = torch.get_num_threads()
    shape = f"{args.n_layers}x{args.d_model} (d_ff {args.d_ff}), batch {args.batch}x{args.block}, {threads} threads"
    report(
        "activation_step",
        [
            ("exact over tanh GELU, whole step", f"{ratio:.3f}x the time (rounds {min(ratios):.3f}-{max(ratios):.3f})"),
            ("medians", f"tanh {tanh:.1f} ms, exact {exact:.1f} ms a step"),
            ("shape", shape),
        ],
        {
            "config": vars(args),
            "threads": threads,
            "torch": torch.__version__,
            "machine": platform.processor() or platform.machine(),
            "rounds": rounds,
            "exact_over_tanh": ratio,
        },
        args.out,
    )


if __name__ == "__main__":
    main()
