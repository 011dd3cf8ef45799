#!/usr/bin/env python
"""Pretraining throughput: lmforge's Lightning step vs a bare PyTorch loop of the same model.

Both sides train `CausalLM(Transformer(cfg))` with the same initial weights, the same batches
(lmforge's `RandomWindows` over a real packed token file), the same precision (Lightning's
`bf16-mixed` vs `torch.autocast(bfloat16, cache_enabled=False)`, as Lightning calls it), the same
AdamW (`lmforge.optim.adamw`, fused as the stage's is, + the warmup-cosine schedule) and gradient
clipping at norm 1.0.

lmforge side: `LMModule` + `PackedLMData` + `make_trainer(conf/trainer/default.yaml)`, built as
`lmforge.stages.pretrain` builds them, except: no progress bar, no checkpointing, no validation,
no callbacks (the stage's History also sends every logged value to MLflow). A separate "full" run
adds the stage's callbacks (Throughput, History, StepCheckpoint) to show what they cost.

Rounds alternate the order of the two sides; the reported ratio is the median over rounds of
lmforge/bare tokens/s (the two sides of a round run back to back in this process). Timing is from
the end of the last warm-up step to the end of the last step (CUDA synchronised at those two
points only). With --compile, one untimed round per side compiles first.

    python benchmarks/pretrain_throughput.py                 # gpt_small shape, 2-core CPU: ~2 min idle
    python benchmarks/pretrain_throughput.py --precision 32-true
    python benchmarks/pretrain_throughput.py --quick         # tiny shapes, 1 round: checks that it runs (~1 min)
    python benchmarks/pretrain_throughput.py --device cuda --d-model 768 --n-layers 12 \
        --n-heads 12 --d-ff 3072 --block 1024 --vocab 32768 --steps 50 --warmup 10 --compile
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import platform
import statistics
import sys
import tempfile
import time
import types
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))  # measure this checkout's lmforge, installed or not

DEFAULT_TEXT = ROOT.parent / "shared" / "data" / "tinyshakespeare" / "input.txt"
PRECISIONS = ("bf16-mixed", "32-true", "16-mixed")
SDPA_BACKENDS = ("auto", "flash", "efficient", "cudnn", "math")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    g = p.add_argument_group("model (defaults: conf/model/gpt_small.yaml)")
    g.add_argument("--d-model", type=int, default=256)
    g.add_argument("--n-layers", type=int, default=4)
    g.add_argument("--n-heads", type=int, default=8)
    g.add_argument("--d-ff", type=int, default=1024)
    g.add_argument("--vocab", type=int, default=8192, help="tokenizer vocabulary to train, and the model's vocab_size")
    g = p.add_argument_group("training")
    g.add_argument("--block", type=int, default=256, help="sequence length T")
    g.add_argument("--batch", type=int, default=16)
    g.add_argument("--precision", choices=PRECISIONS, default="bf16-mixed")
    g.add_argument("--device", default="auto", help="auto (cuda if available) | cpu | cuda")
    g.add_argument("--compile", action="store_true", help="torch.compile the model on both sides (nn.Module.compile)")
    g.add_argument(
        "--sdpa-backend",
        choices=SDPA_BACKENDS,
        default="auto",
        help="force an attention kernel on both sides (torch.nn.attention.sdpa_kernel)",
    )
    g.add_argument("--seed", type=int, default=1234)
    g.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    g = p.add_argument_group("measurement")
    g.add_argument("--steps", type=int, default=8, help="timed optimizer steps per side per round")
    g.add_argument("--warmup", type=int, default=2, help="untimed steps before the timed ones (each round)")
    g.add_argument("--rounds", type=int, default=5, help="alternating lmforge/bare rounds (median taken)")
    g.add_argument("--no-full", action="store_true", help="skip the run with the pretrain stage's callbacks")
    g.add_argument(
        "--ckpt-every",
        type=int,
        default=None,
        help="StepCheckpoint interval in the full run (default: steps//2, so saves land in the timed window)",
    )
    g.add_argument(
        "--peak-n", type=int, default=None, help="matrix size for measure_matmul_peak (default 1024 cpu, 8192 cuda)"
    )
    g.add_argument("--no-sdpa-probe", action="store_true", help="skip the attention-backend probe")
    g = p.add_argument_group("data")
    g.add_argument(
        "--text",
        type=Path,
        default=DEFAULT_TEXT,
        help="text file to train the tokenizer on and pack (paragraphs = documents); generated text if missing",
    )
    g.add_argument("--gen-chars", type=int, default=3_000_000, help="size of the generated text when --text is missing")
    g = p.add_argument_group("output")
    g.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "pretrain_throughput.json")
    g.add_argument(
        "--workdir", type=Path, default=None, help="where the token files and checkpoints go (default: a temp dir)"
    )
    g.add_argument("--verbose", action="store_true", help="keep Lightning's info messages and warnings")
    p.add_argument(
        "--quick",
        action="store_true",
        help="check that it runs: tiny shapes (d=64, 2 layers, T=64, batch 4, vocab 1024), 3 steps, 1 round, "
        "generated text (explicit options given as well still win)",
    )
    a = p.parse_args(argv)
    if a.quick:
        quick = dict(
            d_model=64,
            n_layers=2,
            n_heads=2,
            d_ff=128,
            block=64,
            batch=4,
            vocab=1024,
            steps=3,
            warmup=2,
            rounds=1,
            peak_n=512,
            text=Path("/nonexistent"),
            gen_chars=200_000,
        )
        given = {x.split("=")[0] for x in (argv if argv is not None else sys.argv[1:]) if x.startswith("--")}
        for k, v in quick.items():
            if "--" + k.replace("_", "-") not in given:
                setattr(a, k, v)
    if a.d_model % a.n_heads:
        p.error("--d-model must be divisible by --n-heads")
    if a.steps < 1 or a.warmup < 1 or a.rounds < 1:
        p.error("--steps, --warmup and --rounds must be >= 1")
    return a


# --------------------------------------------------------------------------------------- imports


def import_stack(verbose: bool):
    """Import what the benchmark path needs (and nothing heavier: no mlflow/hydra/datasets)."""
    notes = []
    if not verbose:
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        warnings.filterwarnings("ignore", message=".*`training_step` returned.*")
        warnings.filterwarnings("ignore", message=".*Total length of `DataLoader`.*")
        warnings.filterwarnings("ignore", message=".*Precision bf16-mixed is not supported by the model summary.*")
        warnings.filterwarnings("ignore", message=".*LightningModule.*not.*log.*")
        warnings.filterwarnings("ignore", category=UserWarning, module="lightning")
        warnings.filterwarnings("ignore", message=".*LeafSpec.*")
        for name in ("lightning", "lightning.pytorch", "lightning.fabric", "lightning.pytorch.utilities.rank_zero"):
            logging.getLogger(name).setLevel(logging.ERROR)
    return notes


def load_trainer_cfg():
    """conf/trainer/default.yaml and conf/pipeline.yaml's optim block, as the stage would see them."""
    import yaml

    trainer = yaml.safe_load((ROOT / "conf" / "trainer" / "default.yaml").read_text())
    optim = yaml.safe_load((ROOT / "conf" / "pipeline.yaml").read_text())["optim"]
    try:
        from omegaconf import OmegaConf

        t = OmegaConf.create(trainer)
    except ImportError:  # a bare GPU machine: make_trainer only reads attributes
        t = types.SimpleNamespace(**trainer)
    return t, dict(optim)


def optim_settings(optim: dict):
    """The optimiser settings `LMModule` reads (lr, weight_decay, beta1, beta2, warmup_steps,
    min_lr_ratio): `lmforge.config.OptimConfig` (range-checked), or — where Hydra is not installed
    (a bare GPU machine) — the same attributes on a namespace."""
    try:
        from lmforge.config import OptimConfig
    except ImportError:
        return types.SimpleNamespace(**optim)
    return OptimConfig(**optim)


# ------------------------------------------------------------------------------------------ data


def generated_docs(n_chars: int, seed: int) -> list[str]:
    """Seeded pseudo-English: Zipf-distributed syllable words, sentences, paragraphs."""
    import numpy as np

    rng = np.random.default_rng(seed)
    onsets = [
        "",
        "b",
        "c",
        "d",
        "f",
        "g",
        "h",
        "l",
        "m",
        "n",
        "p",
        "r",
        "s",
        "t",
        "v",
        "w",
        "br",
        "ch",
        "cl",
        "dr",
        "fl",
        "gr",
        "pl",
        "sh",
        "st",
        "th",
        "tr",
    ]
    vowels = ["a", "e", "i", "o", "u", "ai", "ea", "ee", "oo", "ou"]
    codas = ["", "", "n", "r", "s", "t", "l", "nd", "st", "ng", "ck"]
    n_words = 60000
    lengths = rng.integers(1, 4, n_words)
    words = []
    for k in range(n_words):
        words.append(
            "".join(
                onsets[rng.integers(len(onsets))] + vowels[rng.integers(len(vowels))] + codas[rng.integers(len(codas))]
                for _ in range(lengths[k])
            )
        )
    probs = 1.0 / np.arange(1, n_words + 1) ** 1.1
    probs /= probs.sum()
    avg_len = float(np.dot(probs, [len(w) + 1 for w in words]))
    stream = rng.choice(n_words, size=int(n_chars / avg_len) + 64, p=probs)  # one draw: fast
    ends = rng.choice([".", ".", ".", "!", "?", ";"], size=len(stream))
    docs, pos, total = [], 0, 0
    while total < n_chars and pos < len(stream) - 20:
        sents = []
        for _ in range(int(rng.integers(2, 8))):
            n = int(rng.integers(4, 18))
            sents.append(" ".join(words[i] for i in stream[pos : pos + n]).capitalize() + ends[pos])
            pos += n
        doc = " ".join(sents)
        docs.append(doc)
        total += len(doc) + 2
    return docs


def build_tokens(args, workdir: Path) -> dict:
    """Train the real tokenizer and pack the real token files (train.bin/val.bin + meta.json)."""
    from lmforge.data.packing import pack_texts, token_dtype, write_meta
    from lmforge.data.tokenizer import special_ids, train_tokenizer

    t0 = time.perf_counter()
    if args.text and Path(args.text).is_file():
        raw = Path(args.text).read_text(encoding="utf-8")
        docs = [d.strip() for d in raw.split("\n\n") if d.strip()]
        source = str(args.text)
    else:
        docs = generated_docs(args.gen_chars, args.seed)
        source = f"generated ({args.gen_chars} chars; {args.text} not found)"
    n_val = max(1, len(docs) // 20)
    train_docs, val_docs = docs[:-n_val], docs[-n_val:]
    # The val split must hold one window; repeat it if the corpus is tiny.
    while sum(map(len, val_docs)) < 4 * (args.block + 1) * 2:
        val_docs = val_docs * 2
    tok = train_tokenizer(train_docs, kind="bpe", vocab_size=args.vocab, min_frequency=2, progress=False)
    t_tok = time.perf_counter() - t0
    ids = special_ids(tok)
    tokens_dir = workdir / "tokens"
    n_train = pack_texts(train_docs, tok, tokens_dir / "train.bin", ids["eos"], progress=False)
    n_val_tok = pack_texts(val_docs, tok, tokens_dir / "val.bin", ids["eos"], progress=False)
    vocab = tok.get_vocab_size(with_added_tokens=True)
    write_meta(
        tokens_dir,
        vocab_size=vocab,
        dtype=token_dtype(vocab),
        n_tokens={"train": n_train, "val": n_val_tok},
        eos_id=ids["eos"],
        pad_id=ids["pad"],
        tokenizer="bpe",
    )
    return {
        "source": source,
        "dir": str(tokens_dir),
        "tokenizer_vocab": vocab,
        "train_tokens": n_train,
        "val_tokens": n_val_tok,
        "n_docs": len(docs),
        "tokenizer_s": t_tok,
        "total_s": time.perf_counter() - t0,
    }


# ------------------------------------------------------------------------------------ attention


def sdpa_context(name: str):
    if name == "auto":
        return contextlib.nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel

    backend = {
        "flash": SDPBackend.FLASH_ATTENTION,
        "efficient": SDPBackend.EFFICIENT_ATTENTION,
        "cudnn": SDPBackend.CUDNN_ATTENTION,
        "math": SDPBackend.MATH,
    }[name]
    return sdpa_kernel(backend)


_SDPA_OPS = {  # the aten op each backend dispatches to
    "_scaled_dot_product_flash_attention_for_cpu": "flash (cpu)",
    "_scaled_dot_product_flash_attention": "flash",
    "_scaled_dot_product_efficient_attention": "efficient",
    "_scaled_dot_product_cudnn_attention": "cudnn",
    "_scaled_dot_product_fused_attention_overrideable": "overrideable",
    "_scaled_dot_product_attention_math": "math",
}


def sdpa_probe(device, dtype, b: int, h: int, t: int, hd: int, iters: int) -> dict:
    """Which SDPA kernel the model's call (causal, no mask) dispatches to, and fwd+bwd time of each."""
    import torch
    import torch.nn.functional as F

    info: dict = {"shape": [b, h, t, hd], "dtype": str(dtype)}
    if device.type == "cuda":
        b_ = torch.backends.cuda
        info["enabled"] = {
            "flash": b_.flash_sdp_enabled(),
            "efficient": b_.mem_efficient_sdp_enabled(),
            "math": b_.math_sdp_enabled(),
            "cudnn": getattr(b_, "cudnn_sdp_enabled", lambda: None)(),
        }
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    q, k, v = [torch.randn(b, h, t, hd, device=device, dtype=dtype, requires_grad=True) for _ in range(3)]

    def step():
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        y.sum().backward()

    # the dispatched op, from the profiler (definitive, unlike the enabled flags)
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step()
    names = {e.key for e in prof.key_averages()}
    chosen = [label for op, label in _SDPA_OPS.items() if f"aten::{op}" in names]
    info["auto_dispatches_to"] = chosen[0] if chosen else "unknown"
    info["ops_seen"] = sorted(n for n in names if "attention" in n)

    timings = {}
    for name in SDPA_BACKENDS:
        try:
            with sdpa_context(name):
                step()
                sync()
                best = float("inf")
                for _ in range(3):
                    t0 = time.perf_counter()
                    for _ in range(iters):
                        step()
                    sync()
                    best = min(best, (time.perf_counter() - t0) / iters)
            timings[name] = best * 1e3
        except Exception as e:  # backend not available for this device/dtype/shape
            timings[name] = f"unsupported: {type(e).__name__}: {str(e).splitlines()[0][:100] if str(e) else ''}"
    info["fwd_bwd_ms"] = timings
    return info


# ------------------------------------------------------------------------------------ the sides


def make_lm_module(model_group: dict, derived: dict, optim: dict, max_steps: int):
    """`LMModule` as the pretrain stage builds it: a backbone built from its spec (the model
    group's fields plus the derived vocab_size/pad_id/causal) under the LM head; and the backbone's
    TransformerConfig, which the bare side builds its own copy from."""
    from lmforge.models import build_backbone
    from lmforge.train.lm import LMModule

    backbone = build_backbone({**model_group, **derived})
    return LMModule(backbone, optim_settings(optim), max_steps, objective="clm"), backbone.cfg


def make_sync(device):
    import torch

    return torch.cuda.synchronize if device.type == "cuda" else (lambda: None)


def lightning_round(args, ctx, module, full: bool, workdir: Path) -> dict:
    """One `trainer.fit` of warmup+steps steps with lmforge's Trainer; returns timing."""
    import lightning as L

    from lmforge.train.lm import PackedLMData
    from lmforge.train.trainer import make_trainer

    sync = ctx["sync"]
    total = args.warmup + args.steps
    stamps: list[float] = []

    class StepTimer(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            if len(stamps) + 1 in (args.warmup, total):
                sync()
            stamps.append(time.perf_counter())

    t = ctx["trainer_cfg"]
    data = PackedLMData(
        ctx["tokens_dir"],
        ctx["meta"]["dtype"],
        args.batch,
        args.block,
        t.accumulate_grad_batches,
        t.limit_val_batches,
        args.seed,
    )
    callbacks: list = [StepTimer()]
    extra = {}
    ckpt_saves: list[float] = []
    throughput = None
    if full:
        from lmforge.train.callbacks import History, Throughput
        from lmforge.train.trainer import StepCheckpoint

        class TimedStepCheckpoint(StepCheckpoint):
            """The stage's StepCheckpoint, with the time of each batch-end hook recorded."""

            def on_train_batch_end(self, *a, **kw):
                n = self._last_global_step_saved
                t0 = time.perf_counter()
                super().on_train_batch_end(*a, **kw)
                if self._last_global_step_saved != n:
                    ckpt_saves.append(time.perf_counter() - t0)

        throughput = Throughput(args.batch * args.block, module.backbone.flops_per_token(args.block), ctx["peak"])
        ckpt_dir = workdir / "checkpoints"
        # as lmforge.stages.pretrain builds it (no validation runs here: val_every is past the end,
        # so every save happens at a batch end, inside the timed window)
        callbacks += [
            throughput,
            History(),
            TimedStepCheckpoint(
                dirpath=ckpt_dir,
                filename="{step}",
                every_n_train_steps=ctx["ckpt_every"],
                val_every=total + 1,
                save_last="link",
                save_top_k=1,
                enable_version_counter=False,
            ),
        ]
    else:
        extra["enable_checkpointing"] = False
    trainer = make_trainer(
        t,
        callbacks=callbacks,
        progress=False,
        max_steps=total,
        max_time=None,
        val_check_interval=t.val_check_interval,
        check_val_every_n_epoch=None,
        limit_val_batches=0,
        max_epochs=-1,
        default_root_dir=str(workdir / "lightning"),
        **extra,
    )
    with sdpa_context(args.sdpa_backend):
        trainer.fit(module, datamodule=data)
    assert trainer.global_step == total, (trainer.global_step, total)
    loss = trainer.callback_metrics.get("train/loss")
    out = timing(args, stamps)
    out["final_loss"] = float(loss) if loss is not None else None
    if full:
        out["checkpoint_saves_s"] = ckpt_saves
        out["throughput_callback_tokens_per_s"] = throughput.tokens_per_s
        out["throughput_callback_mfu"] = throughput.mfu
        out["checkpoint_every_n_steps"] = ctx["ckpt_every"]
    return out


def bare_round(args, ctx, model) -> dict:
    """The same training, written as a plain PyTorch loop."""
    import torch
    import torch.nn.functional as F
    from torch.utils.data import DataLoader

    from lmforge.data.packing import TokenFile
    from lmforge.optim import adamw, fused_ok, scheduled
    from lmforge.train.lm import RandomWindows

    device, sync, o = ctx["device"], ctx["sync"], ctx["optim"]
    total = args.warmup + args.steps
    # fused exactly when the Lightning side's is (one device: no FSDP)
    opt = adamw(model, o["lr"], o["weight_decay"], (o["beta1"], o["beta2"]), fused_ok(args.precision, None))
    sched = scheduled(opt, o["warmup_steps"], total, o["min_lr_ratio"])["lr_scheduler"]["scheduler"]
    tokens = TokenFile(Path(ctx["tokens_dir"]) / "train.bin", ctx["meta"]["dtype"], block_size=args.block)
    loader = DataLoader(RandomWindows(tokens, args.batch, args.block, args.seed, rank=0, world=1), batch_size=None)
    # cache_enabled=False as Lightning's MixedPrecision does (also: one torch.compile graph serves both)
    if args.precision == "bf16-mixed":
        autocast = lambda: torch.autocast(device.type, dtype=torch.bfloat16, cache_enabled=False)  # noqa: E731
    elif args.precision == "16-mixed":
        autocast = lambda: torch.autocast(device.type, dtype=torch.float16, cache_enabled=False)  # noqa: E731
    else:
        autocast = contextlib.nullcontext
    scaler = torch.amp.GradScaler(device.type) if args.precision == "16-mixed" else None
    clip = ctx["trainer_cfg"].gradient_clip_val
    model.train()
    stamps: list[float] = []
    it = iter(loader)
    with sdpa_context(args.sdpa_backend):
        for i in range(total):
            x, y = next(it)
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            with autocast():
                logits = model(x)
                loss = F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), y.reshape(-1))
            opt.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.unscale_(opt)
                torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
                scaler.step(opt)
                scaler.update()
            else:
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
                opt.step()
            sched.step()
            if i + 1 in (args.warmup, total):
                sync()
            stamps.append(time.perf_counter())
    out = timing(args, stamps)
    out["final_loss"] = float(loss.detach())
    return out


def timing(args, stamps: list[float]) -> dict:
    total = args.warmup + args.steps
    assert len(stamps) == total, (len(stamps), total)
    dt = stamps[-1] - stamps[args.warmup - 1]
    step_s = [b - a for a, b in zip(stamps[args.warmup - 1 :], stamps[args.warmup :])]
    return {
        "seconds": dt,
        "tokens_per_s": args.steps * args.batch * args.block / dt,
        "step_ms_median": 1e3 * statistics.median(step_s),
        "step_ms": [round(1e3 * s, 2) for s in step_s],
    }


# ------------------------------------------------------------------------------------------ main


def main(argv=None) -> dict:
    args = parse_args(argv)
    t_start = time.perf_counter()
    notes = import_stack(args.verbose)
    t_imp = time.perf_counter()
    import lightning
    import torch

    from lmforge.models.heads import CausalLM
    from lmforge.models.transformer import Transformer
    from lmforge.train.callbacks import measure_matmul_peak, precision_dtype

    import_s = time.perf_counter() - t_imp
    if args.threads:
        torch.set_num_threads(args.threads)

    if args.device == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit("--device cuda but torch.cuda.is_available() is False")
    if args.precision == "16-mixed" and device.type != "cuda":
        sys.exit("16-mixed needs CUDA here (use bf16-mixed or 32-true on CPU)")
    dtype = precision_dtype(args.precision)
    peak_n = args.peak_n or (8192 if device.type == "cuda" else 1024)
    device_name = (
        torch.cuda.get_device_name(device) if device.type == "cuda" else (platform.processor() or platform.machine())
    )

    workdir_ctx = (
        tempfile.TemporaryDirectory(prefix="lmforge-bench-")
        if args.workdir is None
        else contextlib.nullcontext(args.workdir)
    )
    with workdir_ctx as wd:
        workdir = Path(wd)
        workdir.mkdir(parents=True, exist_ok=True)
        print(
            f"lmforge pretrain throughput — device {device} ({device_name}), precision {args.precision}, "
            f"torch {torch.__version__}, lightning {lightning.__version__}, threads {torch.get_num_threads()}",
            flush=True,
        )
        data_info = build_tokens(args, workdir)
        print(
            f"data: {data_info['source']}: {data_info['train_tokens']:,} train tokens, tokenizer vocab "
            f"{data_info['tokenizer_vocab']} (trained in {data_info['tokenizer_s']:.1f} s)",
            flush=True,
        )
        from lmforge.data.packing import read_meta

        meta = read_meta(data_info["dir"])
        model_group = dict(
            arch="transformer",
            d_model=args.d_model,
            n_layers=args.n_layers,
            n_heads=args.n_heads,
            d_ff=args.d_ff,
            max_len=args.block,
            dropout=0.0,
        )  # a conf/model/*.yaml
        derived = dict(vocab_size=max(args.vocab, meta["vocab_size"]), pad_id=meta["pad_id"], causal=True)
        trainer_cfg, optim = load_trainer_cfg()
        accel = "gpu" if device.type == "cuda" else "cpu"
        for k, v in dict(
            accelerator=accel,
            devices=1,
            strategy="auto",
            precision=args.precision,
            batch_size=args.batch,
            block_size=args.block,
            accumulate_grad_batches=1,
        ).items():
            setattr(trainer_cfg, k, v)
        if float(trainer_cfg.gradient_clip_val) != 1.0:
            notes.append(
                f"conf/trainer/default.yaml gradient_clip_val={trainer_cfg.gradient_clip_val} (used on both sides)"
            )

        t0 = time.perf_counter()
        peak = measure_matmul_peak(device, dtype, n=peak_n)
        peak_s = time.perf_counter() - t0
        print(f"matmul peak ({dtype}, n={peak_n}): {peak / 1e12:.3f} TFLOP/s", flush=True)

        sdpa = None
        if not args.no_sdpa_probe:
            hd = args.d_model // args.n_heads
            sdpa = sdpa_probe(
                device,
                dtype if dtype != torch.float32 else torch.float32,
                args.batch,
                args.n_heads,
                args.block,
                hd,
                iters=5 if device.type == "cuda" else 2,
            )
            print(
                f"SDPA: auto dispatches to {sdpa['auto_dispatches_to']}"
                + (f"; enabled flags {sdpa['enabled']}" if "enabled" in sdpa else "")
                + "; fwd+bwd ms: "
                + ", ".join(
                    f"{k} {v:.2f}" if isinstance(v, float) else f"{k} n/a" for k, v in sdpa["fwd_bwd_ms"].items()
                ),
                flush=True,
            )
            if args.sdpa_backend != "auto":
                print(f"training forced to SDPA backend: {args.sdpa_backend}")

        # Same initial weights on both sides.
        torch.manual_seed(args.seed)
        module, model_cfg = make_lm_module(model_group, derived, optim, args.warmup + args.steps)
        torch.manual_seed(args.seed)
        bare_model = CausalLM(Transformer(model_cfg)).to(device)
        same_init = all(
            torch.equal(a.cpu(), b.cpu())
            for a, b in zip(module.model.state_dict().values(), bare_model.state_dict().values())
        )
        if args.compile:
            module.model.compile()
            bare_model.compile()
        n_params = module.backbone.num_params()
        fpt = module.backbone.flops_per_token(args.block)
        ckpt_every = args.ckpt_every or max(1, args.steps // 2)
        ctx = dict(
            device=device,
            sync=make_sync(device),
            tokens_dir=data_info["dir"],
            meta=meta,
            trainer_cfg=trainer_cfg,
            optim=optim,
            peak=peak,
            ckpt_every=ckpt_every,
        )
        print(
            f"model: {n_params / 1e6:.2f}M non-embedding params (d={args.d_model}, L={args.n_layers}, "
            f"H={args.n_heads}, d_ff={args.d_ff}, vocab={model_cfg.vocab_size}), T={args.block}, batch={args.batch}, "
            f"{fpt / 1e6:.1f} MFLOP/token; compile={args.compile}; same initial weights: {same_init}",
            flush=True,
        )
        print(
            f"timing {args.rounds} rounds x {args.warmup} warm-up + {args.steps} timed steps per side "
            f"(lmforge Trainer: no callbacks, no progress bar, no checkpointing, no validation)",
            flush=True,
        )

        compile_round = None
        if args.compile:  # compile (and inductor's first runs) outside the timed rounds
            t0 = time.perf_counter()
            lightning_round(args, ctx, module, full=False, workdir=workdir)
            t1 = time.perf_counter()
            bare_round(args, ctx, bare_model)
            compile_round = {"lmforge_s": t1 - t0, "bare_s": time.perf_counter() - t1}
            print(
                f"  compile warm-up round (not timed): lmforge {compile_round['lmforge_s']:.1f} s, "
                f"bare {compile_round['bare_s']:.1f} s",
                flush=True,
            )

        rounds = []
        for r in range(args.rounds):
            order = ("lmforge", "bare") if r % 2 == 0 else ("bare", "lmforge")
            res = {}
            for side in order:
                if side == "lmforge":
                    res[side] = lightning_round(args, ctx, module, full=False, workdir=workdir)
                else:
                    res[side] = bare_round(args, ctx, bare_model)
            res["ratio"] = res["lmforge"]["tokens_per_s"] / res["bare"]["tokens_per_s"]
            rounds.append(res)
            print(
                f"  round {r + 1}: lmforge {res['lmforge']['tokens_per_s']:,.0f} tok/s, bare "
                f"{res['bare']['tokens_per_s']:,.0f} tok/s, ratio {res['ratio']:.3f} "
                f"(final loss {res['lmforge']['final_loss']:.4f} vs {res['bare']['final_loss']:.4f})",
                flush=True,
            )

        full = None
        if not args.no_full:
            full = lightning_round(args, ctx, module, full=True, workdir=workdir)
            full_ref = bare_round(args, ctx, bare_model)  # its paired reference, run right after
            print(
                f"  full (+Throughput, History, StepCheckpoint every {ckpt_every}): "
                f"{full['tokens_per_s']:,.0f} tok/s ({len(full['checkpoint_saves_s'])} saves), bare right after "
                f"{full_ref['tokens_per_s']:,.0f} tok/s",
                flush=True,
            )

    med_l = statistics.median(r["lmforge"]["tokens_per_s"] for r in rounds)
    med_b = statistics.median(r["bare"]["tokens_per_s"] for r in rounds)
    ratio = statistics.median(r["ratio"] for r in rounds)  # paired: each round's two sides ran back to back
    best_l = max(r["lmforge"]["tokens_per_s"] for r in rounds)
    best_b = max(r["bare"]["tokens_per_s"] for r in rounds)
    pooled_l = statistics.median(s for r in rounds for s in r["lmforge"]["step_ms"])
    pooled_b = statistics.median(s for r in rounds for s in r["bare"]["step_ms"])
    mfu = lambda tps: tps * fpt / peak  # noqa: E731
    result = {
        "benchmark": "pretrain_throughput",
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "environment": {
            "device": str(device),
            "device_name": device_name,
            "torch": torch.__version__,
            "lightning": lightning.__version__,
            "python": platform.python_version(),
            "threads": torch.get_num_threads(),
            "cpus": os.cpu_count(),
        },
        "data": data_info,
        "model": {
            "non_embedding_params": n_params,
            "flops_per_token": fpt,
            "vocab_size": model_cfg.vocab_size,
            "same_initial_weights": same_init,
        },
        "peak_flops": peak,
        "peak_dtype": str(dtype),
        "peak_n": peak_n,
        "peak_measure_s": peak_s,
        "sdpa": sdpa,
        "compile_warmup_round": compile_round,
        "rounds": rounds,
        "lmforge_tokens_per_s": med_l,
        "bare_tokens_per_s": med_b,
        "ratio": ratio,
        "ratio_per_round": [r["ratio"] for r in rounds],
        "ratio_of_medians": med_l / med_b,
        "lmforge_best_tokens_per_s": best_l,
        "bare_best_tokens_per_s": best_b,
        "ratio_of_bests": best_l / best_b,
        "step_ms_median_pooled": {"lmforge": pooled_l, "bare": pooled_b},
        "ratio_of_pooled_step_medians": pooled_b / pooled_l,
        "load_average": os.getloadavg(),
        "lmforge_mfu": mfu(med_l),
        "bare_mfu": mfu(med_b),
        "loss_parity_round1": {"lmforge": rounds[0]["lmforge"]["final_loss"], "bare": rounds[0]["bare"]["final_loss"]},
        "notes": notes
        + [
            "lmforge side: make_trainer(conf/trainer/default.yaml, progress=False) with enable_checkpointing=False, "
            "limit_val_batches=0; the pretrain stage's History also sends each logged value to MLflow "
            "(History(sink=run.log_metrics); not measured here)",
            "ratio = median over alternating rounds of (lmforge tok/s / bare tok/s), the two sides of a round "
            "run back to back in this process; tokens/s columns are medians over rounds",
            "MFU = tokens/s x Transformer.flops_per_token(T) / measure_matmul_peak(device, training dtype)",
        ],
    }
    if full is not None:
        saves = full["checkpoint_saves_s"]
        step_s = statistics.median(r["bare"]["step_ms_median"] for r in rounds) / 1e3
        every = int(trainer_cfg.checkpoint_every_n_steps)
        per_save = statistics.mean(saves) if saves else 0.0
        result["full"] = full
        result["full_bare_reference"] = full_ref
        result["full_ratio"] = full["tokens_per_s"] / full_ref["tokens_per_s"]
        result["full_ratio_vs_median_bare"] = full["tokens_per_s"] / med_b
        result["full_mfu"] = mfu(full["tokens_per_s"])
        result["checkpoint_s_per_save"] = per_save
        result["checkpoint_overhead_at_config_interval"] = per_save / (every * step_s) if step_s else None
        result["config_checkpoint_every_n_steps"] = every
    result["wall_s"] = time.perf_counter() - t_start
    result["import_s"] = import_s

    print_table(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {args.out}  (total {result['wall_s']:.0f} s)")
    return result


def print_table(r: dict) -> None:
    rows = [
        ("bare PyTorch loop (reference)", r["bare_tokens_per_s"], 1.0, r["bare_mfu"]),
        ("lmforge Trainer (lean)", r["lmforge_tokens_per_s"], r["ratio"], r["lmforge_mfu"]),
    ]
    if "full" in r:
        rows.append(("lmforge + stage callbacks (1 run)", r["full"]["tokens_per_s"], r["full_ratio"], r["full_mfu"]))
    print()
    print(f"{'side':34} {'tokens/s':>12} {'ratio':>7} {'MFU':>7}")
    print("-" * 63)
    for name, tps, ratio, mfu in rows:
        print(f"{name:34} {tps:12,.0f} {ratio:7.3f} {100 * mfu:6.1f}%")
    print("-" * 63)
    per = ", ".join(f"{x:.3f}" for x in r["ratio_per_round"])
    print(f"ratio lmforge/bare = {r['ratio']:.3f} (target >= 1.0; median of per-round ratios {per})")
    print(
        f"  cross-checks: ratio of median tok/s {r['ratio_of_medians']:.3f}, of best rounds {r['ratio_of_bests']:.3f} "
        f"({r['lmforge_best_tokens_per_s']:,.0f} vs {r['bare_best_tokens_per_s']:,.0f} tok/s), of pooled per-step "
        f"medians {r['ratio_of_pooled_step_medians']:.3f}; "
        f"load average {', '.join(f'{x:.1f}' for x in r['load_average'])}"
    )
    print(
        f"peak {r['peak_flops'] / 1e12:.3f} TFLOP/s ({r['peak_dtype']}, n={r['peak_n']}); "
        f"{r['model']['flops_per_token'] / 1e6:.1f} MFLOP/token"
    )
    lp = r["loss_parity_round1"]
    print(f"loss after round 1: lmforge {lp['lmforge']:.4f}, bare {lp['bare']:.4f} (same weights, data, optimizer)")
    if "full" in r:
        f = r["full"]
        saves = f["checkpoint_saves_s"]
        print(
            f"full run: ratio vs the bare run right after it {r['full_ratio']:.3f}, vs the median bare "
            f"{r['full_ratio_vs_median_bare']:.3f}"
        )
        print(
            f"full run: Throughput callback says {f['throughput_callback_tokens_per_s']:,.0f} tok/s, MFU "
            f"{100 * f['throughput_callback_mfu']:.1f}%; StepCheckpoint every {f['checkpoint_every_n_steps']} steps: "
            f"{len(saves)} saves, {r['checkpoint_s_per_save']:.3f} s each (step checkpoint + last.ckpt link) -> "
            f"{100 * (r['checkpoint_overhead_at_config_interval'] or 0):.2f}% at the configured every "
            f"{r['config_checkpoint_every_n_steps']} steps"
        )
    for n in r["notes"]:
        print(f"note: {n}")


if __name__ == "__main__":
    main()
