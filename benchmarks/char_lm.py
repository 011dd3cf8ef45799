#!/usr/bin/env python
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
time is not counted). Writes benchmarks/results/char_lm.json (curves: wall seconds → validation
loss, nats/char).
"""

from __future__ import annotations

import math
import time

from harness import SHAKESPEARE, Parser, report, scratch


def main(argv=None) -> None:
    p = Parser(__doc__, "char_lm", threads="torch's threads (default 1)", quick={"budget_s": 10.0, "eval_every_s": 5.0})
    p.add_argument("--budget-s", type=float, default=300)
    p.add_argument("--eval-every-s", type=float, default=30)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--block", type=int, default=128)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--transformer-d", type=int, default=128)
    p.add_argument("--transformer-layers", type=int, default=4)
    p.add_argument("--lstm-d", type=int, default=224)
    p.add_argument("--lstm-layers", type=int, default=2)
    p.add_argument("--only", choices=["transformer", "lstm"], default=None)
    # one thread by default: the LSTM's small sequential matmuls do not scale, and oversubscribed
    # threads on a loaded machine slowed its steps 10x here
    p.set_defaults(threads=1)
    args = p.parse_args(argv)
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

    torch.set_num_threads(args.threads)
    text = SHAKESPEARE.read_text(encoding="utf-8")
    cut = int(0.9 * len(text))
    tok = train_tokenizer([text[:cut]], kind="char", vocab_size=256, progress=False)
    vocab, eos = tok.get_vocab_size(), special_ids(tok)["eos"]

    @torch.no_grad()
    def val_loss(model, n_batches: int = 20) -> float:
        model.eval()
        losses = []
        for j in range(n_batches):
            w = torch.from_numpy(np.stack([val.block(j * args.batch + r, args.block) for r in range(args.batch)]))
            logits = model(w[:, :-1])
            losses.append(F.cross_entropy(logits.reshape(-1, logits.size(-1)), w[:, 1:].reshape(-1)).item())
        model.train()
        return float(np.mean(losses))

    class Run:
        """One model's training, advanced one optimizer step at a time (only step time is counted)."""

        def __init__(self, model):
            self.model, self.opt = model, adamw(model, args.lr, 0.1, (0.9, 0.99))
            self.batches = iter(RandomWindows(train, args.batch, args.block, args.seed))
            self.curve = [{"wall_s": 0.0, "step": 0, "val_loss": val_loss(model)}]
            self.trained, self.steps, self.next_eval = 0.0, 0, args.eval_every_s

        def step(self, name: str) -> None:
            t0 = time.perf_counter()
            warm = min(1.0, (self.steps + 1) / 100)
            cosine = 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, self.trained / args.budget_s)))
            for group in self.opt.param_groups:
                group["lr"] = args.lr * warm * cosine
            x, y = next(self.batches)
            logits = self.model(x)
            loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1))
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
            self.opt.step()
            self.trained += time.perf_counter() - t0
            self.steps += 1
            if self.trained >= self.next_eval or self.trained >= args.budget_s:
                point = {"wall_s": round(self.trained, 1), "step": self.steps, "val_loss": val_loss(self.model)}
                self.curve.append(point)
                print(name, self.curve[-1], flush=True)
                self.next_eval += args.eval_every_s

    with scratch() as tmp:  # the packed token files
        pack_texts([text[:cut]], tok, tmp / "train.bin", eos, progress=False)
        pack_texts([text[cut:]], tok, tmp / "val.bin", eos, progress=False)
        train, val = TokenFile(tmp / "train.bin", "uint16"), TokenFile(tmp / "val.bin", "uint16")
        torch.manual_seed(args.seed)
        transformer = TransformerConfig(
            vocab_size=vocab, d_model=args.transformer_d, n_layers=args.transformer_layers,
            n_heads=max(1, args.transformer_d // 32), d_ff=4 * args.transformer_d, max_len=args.block,
        )  # fmt: skip
        lstm = LSTMConfig(vocab_size=vocab, d_model=args.lstm_d, n_layers=args.lstm_layers, max_len=args.block)
        models = {"transformer": CausalLM(Transformer(transformer)), "lstm": CausalLM(LSTM(lstm))}
        runs = {name: Run(model) for name, model in models.items() if args.only in (None, name)}
        # the models take turns, one step each: a machine whose load changes slows both alike
        while any(r.trained < args.budget_s for r in runs.values()):
            for name, r in runs.items():
                if r.trained < args.budget_s:
                    r.step(name)
        results = {
            name: {
                "n_params": r.model.backbone.num_params(non_embedding=False),
                "steps": r.steps,
                "tokens_per_s": r.steps * args.batch * args.block / r.trained,
                "final_val_loss": r.curve[-1]["val_loss"],
                "curve": r.curve,
            }
            for name, r in runs.items()
        }
        sizes = {"train_chars": len(train), "val_chars": len(val)}
    rows = [
        (name, f"{m['n_params']:,} parameters, {m['steps']} steps, {m['tokens_per_s']:,.0f} tokens/s, "
               f"validation loss {m['final_val_loss']:.4f} after {args.budget_s:.0f} s")
        for name, m in results.items()
    ]  # fmt: skip
    report(
        "char_lm",
        rows,
        {"vocab_size": vocab, **sizes, "budget_s": args.budget_s, "batch": args.batch, "block": args.block,
         "threads": torch.get_num_threads(), "models": results},
        args.out,
    )  # fmt: skip


if __name__ == "__main__":
    main()
