#!/usr/bin/env python
"""lmforge's pretrain stage against a nanoGPT-style training loop on nanoGPT's CPU recipe, both as
whole processes, back to back, in one invocation.

    python benchmarks/nanogpt_pair.py [--rounds 1] [--iters 2000]
    python benchmarks/nanogpt_pair.py --iters 100 --eval-interval 50    # checks that it runs (~30 s)

The recipe: character-level Tiny Shakespeare (../shared/data/tinyshakespeare/input.txt, first 90 %
train, last 10 % validation), 4 layers, 4 heads, 128 wide, block 64, batch 12, dropout 0,
AdamW 1e-3 with betas (0.9, 0.99) and decay 0.1, 100 warm-up steps then cosine to 1e-4 at the last
iteration, gradient clipping at 1.0, 2,000 iterations, 20 evaluation batches every 250.

The reference (`--reference`, this file's own `reference()`) is written here the way nanoGPT's
`train.py` works with `--device=cpu --compile=False`: its own GPT module (pre-LayerNorm blocks
without biases, fused qkv, `scaled_dot_product_attention`, GELU MLP, tied embeddings, GPT-2
initialisation), fp32, torch's default AdamW, random windows drawn each iteration, the loss read
every iteration and both splits estimated on 20 batches at every evaluation. nanoGPT itself could
not be fetched here; the issue's figures of nanoGPT (77 s for this recipe on a 2-core machine)
are the check on this reference.

lmforge runs `pipelines/prepare.py` (not timed: nanoGPT's `prepare.py` is not timed either) and
then `pipelines/pretrain.py` with the same settings, timed as a whole process: start-up, the stage's
tracking into its own MLflow store, checkpoints and the saved model included. The ratio is the
reference's wall time over lmforge's (> 1: lmforge is faster); target >= 1.3. Each side's
validation loss (nats per character) at the last iteration is reported beside it. Writes
benchmarks/results/nanogpt_pair.json.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import statistics
import sys
import time
from pathlib import Path

from harness import PYTHON, SHAKESPEARE, Parser, alternate, checked, report, run, scratch, stage

SHAPE = {"n_layer": 4, "n_head": 4, "n_embd": 128, "block_size": 64}
BATCH, LR, MIN_LR, WARMUP, BETAS, DECAY, CLIP, EVAL_ITERS = 12, 1e-3, 1e-4, 100, (0.9, 0.99), 0.1, 1.0, 20


def reference(iters: int, eval_interval: int, out: Path) -> None:
    """nanoGPT's loop, written here: only torch and numpy, no framework."""
    import numpy as np
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    torch.manual_seed(1337)
    text = SHAKESPEARE.read_text(encoding="utf-8")
    chars = sorted(set(text))
    lookup = {c: i for i, c in enumerate(chars)}
    data = np.array([lookup[c] for c in text], dtype=np.uint16)
    split = int(0.9 * len(data))
    splits = {"train": data[:split], "val": data[split:]}
    block, width, heads, layers = SHAPE["block_size"], SHAPE["n_embd"], SHAPE["n_head"], SHAPE["n_layer"]

    def get_batch(name):
        d = splits[name]
        starts = torch.randint(len(d) - block, (BATCH,)).tolist()
        x = torch.stack([torch.from_numpy(d[i : i + block].astype(np.int64)) for i in starts])
        y = torch.stack([torch.from_numpy(d[i + 1 : i + 1 + block].astype(np.int64)) for i in starts])
        return x, y

    class Attention(nn.Module):
        def __init__(self):
            super().__init__()
            self.c_attn = nn.Linear(width, 3 * width, bias=False)
            self.c_proj = nn.Linear(width, width, bias=False)

        def forward(self, x):
            b, t, c = x.shape
            q, k, v = (z.view(b, t, heads, c // heads).transpose(1, 2) for z in self.c_attn(x).split(width, dim=2))
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            return self.c_proj(y.transpose(1, 2).contiguous().view(b, t, c))

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln_1, self.ln_2 = nn.LayerNorm(width, bias=False), nn.LayerNorm(width, bias=False)
            self.attn = Attention()
            self.mlp = nn.Sequential(
                nn.Linear(width, 4 * width, bias=False), nn.GELU(), nn.Linear(4 * width, width, bias=False)
            )

        def forward(self, x):
            x = x + self.attn(self.ln_1(x))
            return x + self.mlp(self.ln_2(x))

    class GPT(nn.Module):
        def __init__(self):
            super().__init__()
            self.wte, self.wpe = nn.Embedding(len(chars), width), nn.Embedding(block, width)
            self.h = nn.ModuleList(Block() for _ in range(layers))
            self.ln_f = nn.LayerNorm(width, bias=False)
            self.lm_head = nn.Linear(width, len(chars), bias=False)
            self.wte.weight = self.lm_head.weight
            for m in self.modules():
                if isinstance(m, (nn.Linear, nn.Embedding)):
                    nn.init.normal_(m.weight, 0.0, 0.02)
            for name, p in self.named_parameters():
                if name.endswith(("attn.c_proj.weight", "mlp.2.weight")):
                    nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * layers))

        def forward(self, idx, targets):
            x = self.wte(idx) + self.wpe(torch.arange(idx.size(1)))
            for b in self.h:
                x = b(x)
            logits = self.lm_head(self.ln_f(x))
            return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))

    model = GPT()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        [{"params": [p for p in params if p.dim() >= 2], "weight_decay": DECAY},
         {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}],
        lr=LR, betas=BETAS,
    )  # fmt: skip

    def lr_at(it):
        if it < WARMUP:
            return LR * (it + 1) / (WARMUP + 1)
        ratio = min(1.0, (it - WARMUP) / max(1, iters - WARMUP))
        return MIN_LR + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (LR - MIN_LR)

    @torch.no_grad()
    def estimate_loss():
        model.eval()
        losses = {name: float(np.mean([model(*get_batch(name)).item() for _ in range(EVAL_ITERS)])) for name in splits}
        model.train()
        return losses

    t0, evals = time.perf_counter(), []
    x, y = get_batch("train")
    for it in range(iters + 1):
        for group in optimizer.param_groups:
            group["lr"] = lr_at(it)
        if it % eval_interval == 0:
            evals.append({"iter": it, **estimate_loss()})
            print(f"step {it}: train loss {evals[-1]['train']:.4f}, val loss {evals[-1]['val']:.4f}", flush=True)
        if it == iters:
            break
        loss = model(x, y)
        x, y = get_batch("train")
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        loss.item()
    out.write_text(json.dumps({"train_s": time.perf_counter() - t0, "evals": evals, "val_loss": evals[-1]["val"]}))


def main(argv=None) -> None:
    p = Parser(__doc__, "nanogpt_pair", rounds=1)
    p.add_argument("--iters", type=int, default=2000)
    p.add_argument("--eval-interval", type=int, default=250)
    p.add_argument("--reference", type=Path, default=None, help=argparse.SUPPRESS)  # run the reference, write here
    p.add_argument("--lmforge", nargs="*", default=[], help="extra overrides for pipelines/pretrain.py")
    args = p.parse_args(argv)
    if args.reference:
        return reference(args.iters, args.eval_interval, args.reference)
    if not SHAKESPEARE.is_file():
        sys.exit(f"{SHAKESPEARE} is absent: this benchmark needs ../shared/data/tinyshakespeare")

    with scratch() as tmp:
        common = [
            f"paths.root={tmp}", "progress=false", "data=text_files", f"data.text_files.paths=[{SHAKESPEARE}]",
            "data.val_fraction=0.1", "tokenizer=char",
        ]  # fmt: skip
        checked(run(stage("prepare", *common)), "prepare")
        pretrain = stage(
            "pretrain", *common, "model=gpt_tiny", f"model.max_len={SHAPE['block_size']}",
            f"trainer.block_size={SHAPE['block_size']}", f"trainer.batch_size={BATCH}",
            f"trainer.max_steps={args.iters}", f"trainer.val_check_interval={args.eval_interval}",
            f"trainer.limit_val_batches={EVAL_ITERS}", f"optim.lr={LR}", f"optim.beta2={BETAS[1]}",
            f"optim.warmup_steps={WARMUP}", f"optim.min_lr_ratio={MIN_LR / LR}", *args.lmforge,
        )  # fmt: skip
        result = tmp / "reference.json"
        ref_cmd = [PYTHON, __file__, f"--reference={result}", f"--iters={args.iters}"]
        ref_cmd.append(f"--eval-interval={args.eval_interval}")

        def ref_side() -> tuple[float, float]:
            timed = checked(run(ref_cmd), "reference")
            return timed.wall_s, json.loads(result.read_text())["val_loss"]

        def lmforge_side() -> tuple[float, float]:
            timed = checked(run(pretrain), "lmforge")
            tokens_s = re.findall(r"([\d.]+)k? tokens/s", timed.output)
            print(f"lmforge: {timed.wall_s:.1f} s {tokens_s[-1:] if tokens_s else ''}", flush=True)
            return timed.wall_s, json.loads((tmp / "artifacts" / "pretrain" / "summary.json").read_text())["val_loss"]

        rounds = list(alternate({"reference": ref_side, "lmforge": lmforge_side}, args.rounds))

    walls = {side: [r[side][0] for r in rounds] for side in rounds[0]}
    losses = {side: [r[side][1] for r in rounds] for side in rounds[0]}
    med = {side: statistics.median(w) for side, w in walls.items()}
    loss = {side: statistics.median(v) for side, v in losses.items()}
    ratio = med["reference"] / med["lmforge"]
    rows = [(side, f"{med[side]:.1f} s, validation loss {loss[side]:.4f}") for side in walls]
    rows.append(("reference / lmforge", f"{ratio:.2f}x (target >= 1.3)"))
    report(
        "nanogpt_pair",
        rows,
        {"iters": args.iters, "walls_s": walls, "val_loss": losses, "median_s": med, "ratio": ratio},
        args.out,
    )


if __name__ == "__main__":
    main()
