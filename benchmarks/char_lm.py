"""Tiny Shakespeare, character level: validation loss against wall time for the native
Transformer and the LSTM at matched parameter counts.

    python benchmarks/char_lm.py [--budget-s 300] [--transformer-d 128 --transformer-layers 4]
                                 [--lstm-d 224 --lstm-layers 2]
    python benchmarks/char_lm.py --quick      # a 10 s budget, evaluated every 5 s: checks that it runs

lmforge's char tokenizer (`train_tokenizer(kind="char")`) and flat token files (`pack_texts`,
`TokenFile`, step-indexed `RandomWindows`) over ../shared/data/tinyshakespeare/input.txt (first
90 % train, last 10 % validation, as nanoGPT's shakespeare_char). Each model trains for the
same wall-time budget (AdamW 3e-3 → cosine, warmup 100 steps, fp32, batch 32 × 128), the two
taking turns step by step so that a changing machine load affects both alike, and is evaluated
on the same 20 validation batches every `--eval-every-s` seconds of its own training time (eval
time is not counted). Writes benchmarks/results/char_lm.json (curves: wall seconds → validation loss, nats/char).
"""

from __future__ import annotations

import argparse
import atexit
import json
import math
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from lmforge.data.packing import TokenFile, pack_texts
from lmforge.data.tokenizer import special_ids, train_tokenizer
from lmforge.models.heads import CausalLM
from lmforge.models.lstm import LSTM, LSTMConfig
from lmforge.models.transformer import Transformer, TransformerConfig
from lmforge.optim import adamw
from lmforge.train.lm import RandomWindows

ROOT = Path(__file__).resolve().parents[1]
TEXT = ROOT.parent / "shared" / "data" / "tinyshakespeare" / "input.txt"


@torch.no_grad()
def val_loss(model, val: TokenFile, batch: int, block: int, n_batches: int = 20) -> float:
    model.eval()
    losses = []
    for j in range(n_batches):
        w = torch.from_numpy(np.stack([val.block(j * batch + r, block) for r in range(batch)]))
        logits = model(w[:, :-1])
        losses.append(F.cross_entropy(logits.reshape(-1, logits.size(-1)), w[:, 1:].reshape(-1)).item())
    model.train()
    return float(np.mean(losses))


class Run:
    """One model's training, advanced one optimizer step at a time (only step time is counted)."""

    def __init__(self, name, model, train_tf, val_tf, args):
        self.name, self.model, self.val_tf, self.args = name, model, val_tf, args
        self.opt = adamw(model, args.lr, 0.1, (0.9, 0.99))
        self.batches = iter(RandomWindows(train_tf, args.batch, args.block, args.seed))
        self.curve = [{"wall_s": 0.0, "step": 0, "val_loss": val_loss(model, val_tf, args.batch, args.block)}]
        self.trained, self.steps, self.next_eval = 0.0, 0, args.eval_every_s

    @property
    def done(self) -> bool:
        return self.trained >= self.args.budget_s

    def step(self) -> None:
        a = self.args
        t0 = time.perf_counter()
        warm = min(1.0, (self.steps + 1) / 100)
        cosine = 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, self.trained / a.budget_s)))
        for g in self.opt.param_groups:
            g["lr"] = a.lr * warm * cosine
        x, y = next(self.batches)
        logits = self.model(x)
        loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1))
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.opt.step()
        self.trained += time.perf_counter() - t0
        self.steps += 1
        if self.trained >= self.next_eval or self.done:
            self.curve.append(
                {
                    "wall_s": round(self.trained, 1),
                    "step": self.steps,
                    "val_loss": val_loss(self.model, self.val_tf, a.batch, a.block),
                }
            )
            print(self.name, json.dumps(self.curve[-1]), flush=True)
            self.next_eval += a.eval_every_s

    def result(self) -> dict:
        return {
            "n_params": self.model.backbone.num_params(non_embedding=False),
            "steps": self.steps,
            "tokens_per_s": self.steps * self.args.batch * self.args.block / self.trained,
            "final_val_loss": self.curve[-1]["val_loss"],
            "curve": self.curve,
        }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--budget-s", type=float, default=300)
    ap.add_argument("--eval-every-s", type=float, default=30)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--block", type=int, default=128)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--transformer-d", type=int, default=128)
    ap.add_argument("--transformer-layers", type=int, default=4)
    ap.add_argument("--lstm-d", type=int, default=224)
    ap.add_argument("--lstm-layers", type=int, default=2)
    ap.add_argument("--only", choices=["transformer", "lstm"], default=None)
    ap.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads; 1 by default: the LSTM's small sequential matmuls do not scale, "
        "and oversubscribed threads on a loaded machine slowed its steps 10x here",
    )
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "char_lm.json"))
    ap.add_argument("--quick", action="store_true", help="--budget-s 10 --eval-every-s 5: checks that it runs")
    args = ap.parse_args()
    if args.quick:
        args.budget_s, args.eval_every_s = 10.0, 5.0
    torch.set_num_threads(args.threads)

    text = TEXT.read_text(encoding="utf-8")
    cut = int(0.9 * len(text))
    tok = train_tokenizer([text[:cut]], kind="char", vocab_size=256, progress=False)
    vocab, eos = tok.get_vocab_size(), special_ids(tok)["eos"]
    tmp = Path(tempfile.mkdtemp(prefix="char_lm."))
    atexit.register(shutil.rmtree, tmp, True)  # the packed token files
    pack_texts([text[:cut]], tok, tmp / "train.bin", eos, progress=False)
    pack_texts([text[cut:]], tok, tmp / "val.bin", eos, progress=False)
    train_tf, val_tf = TokenFile(tmp / "train.bin", "uint16"), TokenFile(tmp / "val.bin", "uint16")

    torch.manual_seed(args.seed)
    models = {
        "transformer": CausalLM(
            Transformer(
                TransformerConfig(
                    vocab_size=vocab,
                    d_model=args.transformer_d,
                    n_layers=args.transformer_layers,
                    n_heads=max(1, args.transformer_d // 32),
                    d_ff=4 * args.transformer_d,
                    max_len=args.block,
                )
            )
        ),
        "lstm": CausalLM(
            LSTM(LSTMConfig(vocab_size=vocab, d_model=args.lstm_d, n_layers=args.lstm_layers, max_len=args.block))
        ),
    }
    result = {
        "vocab_size": vocab,
        "train_chars": len(train_tf),
        "val_chars": len(val_tf),
        "budget_s": args.budget_s,
        "batch": args.batch,
        "block": args.block,
        "threads": torch.get_num_threads(),
        "models": {},
    }
    runs = []
    for name, model in models.items():
        if not args.only or name == args.only:
            print(name, "parameters:", model.backbone.num_params(non_embedding=False), flush=True)
            runs.append(Run(name, model, train_tf, val_tf, args))
    # the models take turns, one step each: a machine whose load changes slows both alike
    while not all(r.done for r in runs):
        for r in runs:
            if not r.done:
                r.step()
    result["models"] = {r.name: r.result() for r in runs}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(
        json.dumps(
            {k: {kk: vv for kk, vv in v.items() if kk != "curve"} for k, v in result["models"].items()}, indent=2
        )
    )


if __name__ == "__main__":
    main()
