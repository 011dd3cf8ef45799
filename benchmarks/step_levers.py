#!/usr/bin/env python
"""What two levers buy in the native Transformer's whole training step, each measured against the
step as it was: the MLP's activation (`model.activation`: GPT-2's tanh approximation, which was the
default, against the exact GELU, the default now) and the LM head's loss (the logits and
`F.cross_entropy`, as before, against `Backbone.lm_loss`: models/lm_loss.py, blocks of rows, no
[N, vocab] logits).

Three sides, each a bare PyTorch loop over `Transformer(cfg)` with its own copy of the same initial
weights and batch: forward, the head's loss, backward, clipping at norm 1.0 and fused AdamW, in fp32.
`before` is tanh + logits, `exact` the exact GELU + logits, `now` the exact GELU + `lm_loss`. The
default shape is the default pretraining's (gpt_tiny: 4 layers × 128, d_ff 512; a 4,096-token
vocabulary; batch 16 × 128); `--vocab 65 --block 64 --batch 12` is the nanoGPT pair's
(benchmarks/nanogpt_pair.py), where the head is tiny. Rounds alternate the order of the sides; each
ratio is the median over rounds of a side's milliseconds a step over `before`'s (below 1: faster).

    python benchmarks/step_levers.py             # 6 rounds of 60 steps a side: ~3 min on 2 cores
    python benchmarks/step_levers.py --quick     # 1 round of 3 steps: checks that it runs

Writes benchmarks/results/step_levers.json.
"""

from __future__ import annotations

import platform
import statistics
import time

from harness import TORCH_THREADS, Parser, alternate, medians, report

SIDES = {"before": ("gelu_tanh", False), "exact": ("gelu", False), "now": ("gelu", True)}  # (activation, lm_loss)


def main(argv=None) -> None:
    p = Parser(__doc__, "step_levers", rounds=6, threads=TORCH_THREADS, quick={"rounds": 1, "steps": 3})
    p.add_argument("--steps", type=int, default=60, help="timed steps per side and round")
    p.add_argument("--warmup", type=int, default=10, help="untimed steps before each side's first round")
    p.add_argument("--d-model", type=int, default=128)
    p.add_argument("--n-layers", type=int, default=4)
    p.add_argument("--n-heads", type=int, default=4)
    p.add_argument("--d-ff", type=int, default=512)
    p.add_argument("--block", type=int, default=128)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--vocab", type=int, default=4096)
    args = p.parse_args(argv)
    import torch
    import torch.nn.functional as F

    from lmforge.models.transformer import Transformer, TransformerConfig

    if args.threads:
        torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, args.vocab, (args.batch, args.block), generator=gen)
    y = torch.randint(0, args.vocab, (args.batch * args.block,), generator=gen)

    def trainer(activation: str, fused_loss: bool):
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
        torch.manual_seed(0)  # the same initial weights on every side
        m = Transformer(cfg)
        opt = torch.optim.AdamW(m.parameters(), lr=1e-3, betas=(0.9, 0.99), weight_decay=0.1, fused=True)

        def loss(hidden):
            if fused_loss:
                return m.lm_loss(hidden, y)
            return F.cross_entropy(m.lm_logits(hidden).float(), y)

        def steps(n: int) -> float:
            t0 = time.perf_counter()
            for _ in range(n):
                opt.zero_grad(set_to_none=True)
                loss(m(x).flatten(0, 1)).backward()
                torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
                opt.step()
            return 1e3 * (time.perf_counter() - t0) / max(n, 1)

        steps(args.warmup)
        return lambda: steps(args.steps)

    sides = {name: trainer(*how) for name, how in SIDES.items()}
    rounds = []
    for row in alternate(sides, args.rounds):
        rounds.append(row)
        print(f"round {len(rounds)}: " + ", ".join(f"{k} {v:.1f} ms" for k, v in row.items()), flush=True)
    ratios = {k: [r[k] / r["before"] for r in rounds] for k in ("exact", "now")}
    ratio = {k: statistics.median(v) for k, v in ratios.items()}
    ms = medians(rounds)
    threads = torch.get_num_threads()
    shape = (
        f"{args.n_layers}x{args.d_model} (d_ff {args.d_ff}), vocab {args.vocab}, "
        f"batch {args.batch}x{args.block}, {threads} threads"
    )
    report(
        "step_levers",
        [
            (
                "exact GELU / before",
                f"{ratio['exact']:.3f}x the time (rounds {min(ratios['exact']):.3f}-{max(ratios['exact']):.3f})",
            ),
            (
                "+ lm_loss (now) / before",
                f"{ratio['now']:.3f}x the time (rounds {min(ratios['now']):.3f}-{max(ratios['now']):.3f})",
            ),
            ("medians", ", ".join(f"{k} {v:.1f} ms" for k, v in ms.items()) + " a step"),
            ("shape", shape),
        ],
        {
            "config": vars(args),
            "threads": threads,
            "torch": torch.__version__,
            "machine": platform.processor() or platform.machine(),
            "rounds": rounds,
            "over_before": ratio,
        },
        args.out,
    )


if __name__ == "__main__":
    main()
