"""pretrain: a language model on the packed corpus; resumes from its last checkpoint.

The backbone is the `model` group's (native Transformer, LSTM, or a Hugging Face model built
from a config) trained from scratch, or a Hugging Face checkpoint (`model.pretrained`) trained
further on the corpus (domain-adaptive pretraining). The objective is `objective.name`: `clm`
(next token) or `mlm` (BERT masking; the native Transformer then runs bidirectionally).

A checkpoint brings its own tokenizer, while the prepare stage packed the corpus with lmforge's.
So the corpus is re-tokenized once: each packed document (between two `<eos>`) is decoded with
the prepare tokenizer and packed again with the checkpoint's, into a cache keyed by both
(`.lmforge/tokens/<hash>/`, the same flat files + meta.json). Decoding is exact for the default
byte-level BPE; WordPiece and char tokenizers lose some whitespace / unknown characters.
"""

from __future__ import annotations

import hashlib
import math
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from omegaconf import DictConfig

from lmforge import __version__
from lmforge.config import fingerprint, to_container
from lmforge.data.packing import TokenFile, pack_texts, read_meta, token_dtype, write_meta
from lmforge.data.tokenizer import load_tokenizer, special_ids
from lmforge.errors import ConfigError
from lmforge.fileio import atomic_dir, content_digest, write_json
from lmforge.models.io import write_model_dir
from lmforge.models import backbone_spec
from lmforge.stages.common import log, stage
from lmforge.train.callbacks import History, Throughput, measure_matmul_peak, precision_dtype
from lmforge.train.lm import LMModule, MLMMasker, PackedLMData, next_token_pairs
from lmforge.train.trainer import check_checkpoint, latest_checkpoint, make_trainer


def compute_device(accelerator: str) -> str:
    return "cuda" if accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available() else "cpu"


def documents(tokens: TokenFile, eos_id: int, chunk: int = 1 << 20) -> Iterator[np.ndarray]:
    """The documents of a packed token file (the ids between `<eos>`s), reading `chunk` at a time."""
    rest = np.empty(0, dtype=tokens.dtype)
    for start in range(0, len(tokens), chunk):
        block = np.concatenate([rest, np.asarray(tokens[start : start + chunk])])
        ends = np.flatnonzero(block == eos_id)
        prev = 0
        for e in ends:
            yield block[prev:e]
            prev = e + 1
        rest = block[prev:]
    if len(rest):
        yield rest


def retokenized(tokens_dir: Path, source_tok: Path, target_tok: Path, cache: Path) -> Path:
    """The packed corpus of `tokens_dir` (tokenizer `source_tok`) re-packed with `target_tok`;
    built once into `cache/<hash of both>/`, atomically."""
    meta = read_meta(tokens_dir)
    h = hashlib.sha256((tokens_dir / "meta.json").read_bytes())
    for split in ("train", "val"):
        h.update(str((tokens_dir / f"{split}.bin").stat().st_size).encode())
    h.update((Path(source_tok) / "tokenizer.json").read_bytes())
    h.update((Path(target_tok) / "tokenizer.json").read_bytes())
    out = cache / h.hexdigest()[:16]
    if (out / "meta.json").is_file():
        return out
    src, dst = load_tokenizer(source_tok), load_tokenizer(target_tok)
    ids = special_ids(dst)
    vocab = dst.get_vocab_size(with_added_tokens=True)
    log.info("re-tokenizing the corpus with %s into %s", target_tok, out)

    def texts(split: str) -> Iterator[str]:
        docs = documents(TokenFile(tokens_dir / f"{split}.bin", meta["dtype"]), meta["eos_id"])
        while batch := [d.tolist() for _, d in zip(range(1000), docs)]:
            yield from src.decode_batch(batch)

    with atomic_dir(out) as tmp:
        n_tokens = {split: pack_texts(texts(split), dst, tmp / f"{split}.bin", ids["eos"], progress=False)
                    for split in ("train", "val")}
        write_meta(tmp, vocab_size=vocab, dtype=token_dtype(vocab), n_tokens=n_tokens, eos_id=ids["eos"],
                   pad_id=ids["pad"], tokenizer=str(target_tok), source=str(tokens_dir))
    return out


def setup(cfg: DictConfig, p) -> tuple[LMModule, dict, Path, Path, dict]:
    """The LightningModule, the backbone spec, the tokenizer directory, the token directory and
    its meta — for a fresh backbone (prepare's tokenizer) or a checkpoint (its own tokenizer)."""
    m, objective = cfg.model, cfg.objective.name
    meta = read_meta(p.tokens)
    if m.arch == "hf" and m.pretrained:
        from lmforge.models import hf

        backbone, spec = hf.pretrained_spec(m.pretrained)
        tok_dir = hf.tokenizer_dir(m.pretrained)
        tokens_dir = retokenized(p.tokens, p.tokenizer, tok_dir, p.checkpoints.parent / "tokens")
        meta = read_meta(tokens_dir)
    else:
        causal = not (objective == "mlm" and m.arch == "transformer")
        spec = backbone_spec(to_container(m), vocab_size=meta["vocab_size"], pad_id=meta["pad_id"], causal=causal)
        backbone, tok_dir, tokens_dir = None, p.tokenizer, p.tokens
    module = LMModule(spec, dict(cfg.optim), cfg.trainer.max_steps, objective=objective, backbone=backbone)
    return module, module.backbone.cfg.to_dict() | {"arch": spec["arch"]}, tok_dir, tokens_dir, meta


def batch_maker(cfg: DictConfig, tok_dir: Path, vocab_size: int):
    """How windows become batches: next-token pairs (clm) or BERT masking (mlm)."""
    if cfg.objective.name == "clm":
        return next_token_pairs
    ids = special_ids(load_tokenizer(tok_dir))
    if "mask" not in ids:
        raise ConfigError(f"objective=mlm: the tokenizer in {tok_dir} has no mask token")
    return MLMMasker(ids["mask"], vocab_size, list(ids.values()), cfg.objective.mask_prob)


def checkpoint_dir(cfg: DictConfig, p, tokens_dir: Path, tok_dir: Path) -> Path:
    """Where pretraining checkpoints live: outside DVC's outputs, keyed by everything that shapes
    the run (the config and the content of the tokens and tokenizer it reads)."""
    return p.checkpoints / "pretrain" / fingerprint(
        cfg, "seed", "data", "tokenizer", "model", "objective", "optim", "trainer",
        inputs=content_digest(tokens_dir, tok_dir))


def run(cfg: DictConfig) -> dict:
    t, m = cfg.trainer, cfg.model
    with stage(cfg, "pretrain") as run:
        p = run.paths
        module, spec, tok_dir, tokens_dir, meta = setup(cfg, p)
        if t.compile:  # in place: parameter names (checkpoints, safetensors) stay the same
            module.model.compile()
        data = PackedLMData(tokens_dir, meta["dtype"], t.batch_size, t.block_size,
                            t.accumulate_grad_batches, t.limit_val_batches, cfg.seed,
                            make=batch_maker(cfg, tok_dir, module.backbone.cfg.vocab_size))

        ckpt_dir = checkpoint_dir(cfg, p, tokens_dir, tok_dir)
        resume = latest_checkpoint(ckpt_dir)
        resumed_step = check_checkpoint(resume, module) if resume else 0
        if resume:
            log.info("resuming from %s (step %d)", resume, resumed_step)

        device = compute_device(t.accelerator)
        peak = measure_matmul_peak(device, precision_dtype(t.precision))
        throughput = Throughput(t.batch_size * t.block_size, module.backbone.flops_per_token(t.block_size), peak)
        history = History()
        callbacks = [
            throughput, history,
            # no monitor: the top-1 checkpoint is the newest, and last.ckpt links to it (one write, not two)
            ModelCheckpoint(dirpath=ckpt_dir, filename="{step}", every_n_train_steps=t.checkpoint_every_n_steps,
                            save_last="link", save_top_k=1, enable_version_counter=False),
        ]
        trainer = make_trainer(t, callbacks=callbacks, logger=run.lightning_logger(), max_steps=t.max_steps,
                               max_time=t.max_time, val_check_interval=t.val_check_interval,
                               check_val_every_n_epoch=None, limit_val_batches=t.limit_val_batches,
                               max_epochs=-1)
        trainer.fit(module, datamodule=data, ckpt_path=str(resume) if resume else None)
        final = trainer.validate(module, datamodule=data, verbose=False)[0]

        val_loss = float(final["val/loss"])
        summary = {
            "val_loss": val_loss,
            "val_ppl": math.exp(min(val_loss, 50.0)),
            "tokens_per_s": throughput.tokens_per_s,
            "mfu": throughput.mfu,
            "peak_flops": peak,
            "steps": trainer.global_step,
            "n_params": module.backbone.num_params(),
            "device": device,
            "precision": t.precision,
            "arch": spec["arch"],
            "objective": cfg.objective.name,
            "pretrained_from": m.pretrained,
            "resumed_from_step": resumed_step,
        }
        with atomic_dir(p.pretrain) as tmp:
            write_model_dir(tmp / "model", module.model, {
                "lmforge_version": __version__, "kind": "causal_lm" if cfg.objective.name == "clm" else "masked_lm",
                "objective": cfg.objective.name, "backbone": spec,
            }, tok_dir)
            history.write_csv(tmp / "curves" / "train.csv", "train/loss")
            history.write_csv(tmp / "curves" / "val.csv", "val/loss")
            summary["wall_s"] = run.elapsed()
            write_json(tmp / "summary.json", summary)
        if not t.keep_checkpoints:
            shutil.rmtree(ckpt_dir, ignore_errors=True)
        run.log_metrics({"final/" + k: v for k, v in summary.items() if isinstance(v, (int, float))})
        run.log_artifact(p.pretrain / "model", "model")
        run.log_artifact(p.pretrain / "curves", "curves")
        run.register_model(p.pretrain / "model")  # pyfunc: text → perplexity
        log.info("pretrain: val loss %.3f, ppl %.1f, %.0f tokens/s, MFU %.1f%%",
                 val_loss, summary["val_ppl"], summary["tokens_per_s"], 100 * summary["mfu"])
    return summary
