#!/usr/bin/env python
"""Pretraining throughput: lmforge's Lightning step vs a bare PyTorch loop of the same model.

Both sides train `CausalLM(Transformer(cfg))` with the same initial weights, the same batches
(lmforge's `RandomWindows` over a real packed token file), the same precision (by default the one
`trainer.precision=auto` picks for the device: fp32, or Lightning's `bf16-mixed` against
`torch.autocast(bfloat16, cache_enabled=False)`, as Lightning calls it, where it computes bf16 natively), the same
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

import contextlib
import logging
import platform
import statistics
import time
import types
import warnings
from pathlib import Path

import yaml
from harness import ROOT, SHAKESPEARE, TORCH_THREADS, Parser, alternate, report, scratch

PRECISIONS = ("auto", "bf16-mixed", "32-true", "16-mixed")
SDPA_BACKENDS = ("auto", "flash", "efficient", "cudnn", "math")
SDPA_OPS = {  # the aten op each attention backend dispatches to
    "_scaled_dot_product_flash_attention_for_cpu": "flash (cpu)",
    "_scaled_dot_product_flash_attention": "flash",
    "_scaled_dot_product_efficient_attention": "efficient",
    "_scaled_dot_product_cudnn_attention": "cudnn",
    "_scaled_dot_product_fused_attention_overrideable": "overrideable",
    "_scaled_dot_product_attention_math": "math",
}
QUICK = dict(d_model=64, n_layers=2, n_heads=2, d_ff=128, block=64, batch=4, vocab=1024, steps=3, warmup=2, rounds=1)
QUICK |= dict(peak_n=512, text=Path("/nonexistent"), gen_chars=200_000)


def parse_args(argv=None):
    workdir = "for the token files and checkpoints"
    p = Parser(__doc__, "pretrain_throughput", rounds=5, threads=TORCH_THREADS, workdir=workdir, quick=QUICK)
    g = p.add_argument_group("model (defaults: conf/model/gpt_small.yaml)")
    g.add_argument("--d-model", type=int, default=256)
    g.add_argument("--n-layers", type=int, default=4)
    g.add_argument("--n-heads", type=int, default=8)
    g.add_argument("--d-ff", type=int, default=1024)
    g.add_argument("--vocab", type=int, default=8192, help="tokenizer vocabulary to train, and the model's vocab_size")
    g = p.add_argument_group("training")
    g.add_argument("--block", type=int, default=256, help="sequence length T")
    g.add_argument("--batch", type=int, default=16)
    g.add_argument("--precision", choices=PRECISIONS, default="auto", help="auto: as trainer.precision=auto picks")
    g.add_argument("--device", default="auto", help="auto (cuda if available) | cpu | cuda")
    g.add_argument("--compile", action="store_true", help="torch.compile the model on both sides (nn.Module.compile)")
    g.add_argument("--sdpa-backend", choices=SDPA_BACKENDS, default="auto", help="force an attention kernel on both")
    g.add_argument("--seed", type=int, default=1234)
    g = p.add_argument_group("measurement")
    g.add_argument("--steps", type=int, default=8, help="timed optimizer steps per side per round")
    g.add_argument("--warmup", type=int, default=2, help="untimed steps before the timed ones (each round)")
    g.add_argument("--no-full", action="store_true", help="skip the run with the pretrain stage's callbacks")
    g.add_argument("--ckpt-every", type=int, default=None, help="StepCheckpoint interval of the full run (steps//2)")
    g.add_argument("--peak-n", type=int, default=None, help="matrix size for measure_matmul_peak (1024 cpu, 8192 cuda)")
    g.add_argument("--no-sdpa-probe", action="store_true", help="skip the attention-backend probe")
    g = p.add_argument_group("data")
    g.add_argument("--text", type=Path, default=SHAKESPEARE, help="text to train the tokenizer on (else generated)")
    g.add_argument("--gen-chars", type=int, default=3_000_000, help="size of the generated text when --text is missing")
    g.add_argument("--verbose", action="store_true", help="keep Lightning's info messages and warnings")
    args = p.parse_args(argv)
    if args.d_model % args.n_heads:
        p.error("--d-model must be divisible by --n-heads")
    if min(args.steps, args.warmup, args.rounds) < 1:
        p.error("--steps, --warmup and --rounds must be >= 1")
    return args


def generated_docs(n_chars: int, seed: int) -> list[str]:
    """Seeded pseudo-English: Zipf-distributed syllable words, sentences, paragraphs."""
    import numpy as np

    rng = np.random.default_rng(seed)
    onsets = [""] + "b c d f g h l m n p r s t v w br ch cl dr fl gr pl sh st th tr".split()
    vowels = "a e i o u ai ea ee oo ou".split()
    codas = ["", ""] + "n r s t l nd st ng ck".split()
    n_words = 60000
    pick = lambda options: options[rng.integers(len(options))]  # noqa: E731
    words = ["".join(pick(onsets) + pick(vowels) + pick(codas) for _ in range(n)) for n in rng.integers(1, 4, n_words)]
    probs = 1.0 / np.arange(1, n_words + 1) ** 1.1
    probs /= probs.sum()
    avg_len = float(np.dot(probs, [len(w) + 1 for w in words]))
    stream = rng.choice(n_words, size=int(n_chars / avg_len) + 64, p=probs)  # one draw: fast
    ends = rng.choice([".", ".", ".", "!", "?", ";"], size=len(stream))
    docs, pos, total = [], 0, 0
    while total < n_chars and pos < len(stream) - 20:
        sentences = []
        for _ in range(int(rng.integers(2, 8))):
            n = int(rng.integers(4, 18))
            sentences.append(" ".join(words[i] for i in stream[pos : pos + n]).capitalize() + ends[pos])
            pos += n
        docs.append(" ".join(sentences))
        total += len(docs[-1]) + 2
    return docs


def build_tokens(args, workdir: Path) -> dict:
    """Train the real tokenizer and pack the real token files (train.bin/val.bin + meta.json)."""
    from lmforge.data.packing import pack_texts, token_dtype, write_meta
    from lmforge.data.tokenizer import special_ids, train_tokenizer

    t0 = time.perf_counter()
    if args.text.is_file():
        docs, source = (
            [d.strip() for d in args.text.read_text(encoding="utf-8").split("\n\n") if d.strip()],
            str(args.text),
        )
    else:
        docs, source = generated_docs(args.gen_chars, args.seed), f"generated ({args.gen_chars} chars; no {args.text})"
    n_val = max(1, len(docs) // 20)
    train_docs, val_docs = docs[:-n_val], docs[-n_val:]
    while sum(map(len, val_docs)) < 4 * (args.block + 1) * 2:  # the val split must hold a window
        val_docs = val_docs * 2
    tok = train_tokenizer(train_docs, kind="bpe", vocab_size=args.vocab, min_frequency=2, progress=False)
    tokenizer_s = time.perf_counter() - t0
    ids, tokens_dir = special_ids(tok), workdir / "tokens"
    n_train = pack_texts(train_docs, tok, tokens_dir / "train.bin", ids["eos"], progress=False)
    n_val_tok = pack_texts(val_docs, tok, tokens_dir / "val.bin", ids["eos"], progress=False)
    vocab = tok.get_vocab_size(with_added_tokens=True)
    n_tokens = {"train": n_train, "val": n_val_tok}
    meta = dict(vocab_size=vocab, dtype=token_dtype(vocab), n_tokens=n_tokens, eos_id=ids["eos"], pad_id=ids["pad"])
    write_meta(tokens_dir, **meta, tokenizer="bpe")
    return {
        "source": source, "dir": str(tokens_dir), "tokenizer_vocab": vocab, "train_tokens": n_train,
        "val_tokens": n_val_tok, "n_docs": len(docs), "tokenizer_s": tokenizer_s, "total_s": time.perf_counter() - t0,
    }  # fmt: skip


def sdpa_context(name: str):
    if name == "auto":
        return contextlib.nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel

    backends = {"flash": "FLASH_ATTENTION", "efficient": "EFFICIENT_ATTENTION", "cudnn": "CUDNN_ATTENTION"}
    return sdpa_kernel(getattr(SDPBackend, backends.get(name, "MATH")))


def sdpa_probe(device, dtype, shape: tuple[int, int, int, int], iters: int) -> dict:
    """Which SDPA kernel the model's call (causal, no mask) dispatches to (from the profiler: the
    enabled flags do not say), and the fwd+bwd time of each backend."""
    import torch
    import torch.nn.functional as F
    from torch.profiler import ProfilerActivity, profile

    info: dict = {"shape": list(shape), "dtype": str(dtype)}
    if device.type == "cuda":
        cuda = torch.backends.cuda
        info["enabled"] = {
            "flash": cuda.flash_sdp_enabled(), "efficient": cuda.mem_efficient_sdp_enabled(),
            "math": cuda.math_sdp_enabled(), "cudnn": getattr(cuda, "cudnn_sdp_enabled", lambda: None)(),
        }  # fmt: skip
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    q, k, v = [torch.randn(*shape, device=device, dtype=dtype, requires_grad=True) for _ in range(3)]

    def step():
        F.scaled_dot_product_attention(q, k, v, is_causal=True).sum().backward()

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step()
    names = {e.key for e in prof.key_averages()}
    chosen = [label for op, label in SDPA_OPS.items() if f"aten::{op}" in names]
    info["auto_dispatches_to"] = chosen[0] if chosen else "unknown"
    info["ops_seen"] = sorted(n for n in names if "attention" in n)
    info["fwd_bwd_ms"] = {}
    for name in SDPA_BACKENDS:
        try:
            with sdpa_context(name):
                step()
                best = float("inf")
                for _ in range(3):
                    sync()
                    t0 = time.perf_counter()
                    for _ in range(iters):
                        step()
                    sync()
                    best = min(best, (time.perf_counter() - t0) / iters)
            info["fwd_bwd_ms"][name] = best * 1e3
        except Exception as e:  # not available for this device, dtype or shape
            info["fwd_bwd_ms"][name] = (
                f"unsupported: {type(e).__name__}: {str(e).splitlines()[0][:100] if str(e) else ''}"
            )
    return info


def timing(args, stamps: list[float]) -> dict:
    """Tokens/s from the end of the last warm-up step to the end of the last step."""
    assert len(stamps) == args.warmup + args.steps, (len(stamps), args.warmup + args.steps)
    seconds = stamps[-1] - stamps[args.warmup - 1]
    step_s = [b - a for a, b in zip(stamps[args.warmup - 1 :], stamps[args.warmup :])]
    return {
        "seconds": seconds,
        "tokens_per_s": args.steps * args.batch * args.block / seconds,
        "step_ms_median": 1e3 * statistics.median(step_s),
        "step_ms": [round(1e3 * s, 2) for s in step_s],
    }


def lightning_round(args, ctx, module, full: bool, workdir: Path) -> dict:
    """One `trainer.fit` of warmup+steps steps with lmforge's Trainer (and, when `full`, the
    pretrain stage's callbacks)."""
    import lightning as L

    from lmforge.train.callbacks import History, Throughput
    from lmforge.train.lm import PackedLMData
    from lmforge.train.trainer import StepCheckpoint, make_trainer

    total, stamps, saves = args.warmup + args.steps, [], []

    class StepTimer(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            if len(stamps) + 1 in (args.warmup, total):
                ctx.sync()
            stamps.append(time.perf_counter())

    class TimedStepCheckpoint(StepCheckpoint):
        """The stage's StepCheckpoint, with the time of each save recorded."""

        def on_train_batch_end(self, *a, **kw):
            before, t0 = self._last_global_step_saved, time.perf_counter()
            super().on_train_batch_end(*a, **kw)
            if self._last_global_step_saved != before:
                saves.append(time.perf_counter() - t0)

    cfg = ctx.trainer_cfg
    data = PackedLMData(ctx.tokens_dir, ctx.meta["dtype"], args.batch, args.block, 1, cfg.limit_val_batches, args.seed)
    callbacks: list = [StepTimer()]
    if full:  # as lmforge.stages.pretrain builds them; no validation runs, so every save is inside the timed window
        throughput = Throughput(args.batch * args.block, module.backbone.flops_per_token(args.block), ctx.peak)
        checkpoint = TimedStepCheckpoint(
            dirpath=workdir / "checkpoints", filename="{step}", every_n_train_steps=ctx.ckpt_every,
            val_every=total + 1, save_last="link", save_top_k=1, enable_version_counter=False,
        )  # fmt: skip
        callbacks += [throughput, History(), checkpoint]
    trainer = make_trainer(
        cfg, callbacks=callbacks, progress=False, max_steps=total, max_time=None,
        val_check_interval=cfg.val_check_interval, check_val_every_n_epoch=None, limit_val_batches=0, max_epochs=-1,
        default_root_dir=str(workdir / "lightning"), **({} if full else {"enable_checkpointing": False}),
    )  # fmt: skip
    with sdpa_context(args.sdpa_backend):
        trainer.fit(module, datamodule=data)
    assert trainer.global_step == total, (trainer.global_step, total)
    loss = trainer.callback_metrics.get("train/loss")
    out = {**timing(args, stamps), "final_loss": float(loss) if loss is not None else None}
    if full:
        out |= {
            "checkpoint_saves_s": saves, "checkpoint_every_n_steps": ctx.ckpt_every,
            "throughput_callback_tokens_per_s": throughput.tokens_per_s, "throughput_callback_mfu": throughput.mfu,
        }  # fmt: skip
    return out


def bare_round(args, ctx, model) -> dict:
    """The same training, written as a plain PyTorch loop."""
    import torch
    import torch.nn.functional as F
    from torch.utils.data import DataLoader

    from lmforge.data.packing import TokenFile
    from lmforge.optim import adamw, fused_ok, scheduled
    from lmforge.train.lm import RandomWindows

    device, o, total = ctx.device, ctx.optim, args.warmup + args.steps
    # fused exactly when the Lightning side's is (one device: no FSDP)
    opt = adamw(model, o.lr, o.weight_decay, (o.beta1, o.beta2), fused_ok(args.precision, None))
    sched = scheduled(opt, o.warmup_steps, total, o.min_lr_ratio)["lr_scheduler"]["scheduler"]
    tokens = TokenFile(Path(ctx.tokens_dir) / "train.bin", ctx.meta["dtype"], block_size=args.block)
    batches = iter(
        DataLoader(RandomWindows(tokens, args.batch, args.block, args.seed, rank=0, world=1), batch_size=None)
    )
    # cache_enabled=False as Lightning's MixedPrecision does (also: one torch.compile graph serves both)
    half = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}.get(args.precision)
    autocast = (
        (lambda: torch.autocast(device.type, dtype=half, cache_enabled=False)) if half else contextlib.nullcontext
    )
    scaler = torch.amp.GradScaler(device.type) if args.precision == "16-mixed" else None
    clip = ctx.trainer_cfg.gradient_clip_val
    model.train()
    stamps: list[float] = []
    with sdpa_context(args.sdpa_backend):
        for i in range(total):
            x, y = (t.to(device, non_blocking=True) for t in next(batches))
            with autocast():
                logits = model(x)
                loss = F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), y.reshape(-1))
            opt.zero_grad(set_to_none=True)
            (scaler.scale(loss) if scaler else loss).backward()
            if scaler:
                scaler.unscale_(opt)
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
            if scaler:
                scaler.step(opt)
                scaler.update()
            else:
                opt.step()
            sched.step()
            if i + 1 in (args.warmup, total):
                ctx.sync()
            stamps.append(time.perf_counter())
    return {**timing(args, stamps), "final_loss": float(loss.detach())}


def main(argv=None) -> dict:
    args = parse_args(argv)
    t_start = time.perf_counter()
    if not args.verbose:  # Lightning's notes on a short fit without validation say nothing of its speed
        warnings.simplefilter("ignore")
        for name in ("lightning", "lightning.pytorch", "lightning.fabric", "lightning.pytorch.utilities.rank_zero"):
            logging.getLogger(name).setLevel(logging.ERROR)
    import lightning
    import torch

    from lmforge.data.packing import read_meta
    from lmforge.host import auto_precision
    from lmforge.models import build_backbone
    from lmforge.models.heads import CausalLM
    from lmforge.models.transformer import Transformer
    from lmforge.train.callbacks import measure_matmul_peak, precision_dtype
    from lmforge.train.lm import LMModule

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda but torch.cuda.is_available() is False")
    if args.precision == "auto":
        args.precision = auto_precision(device.type)
    if args.precision == "16-mixed" and device.type != "cuda":
        raise SystemExit("16-mixed needs CUDA here (use bf16-mixed or 32-true on CPU)")
    cuda = device.type == "cuda"
    dtype, peak_n = precision_dtype(args.precision), args.peak_n or (8192 if cuda else 1024)
    environment = {
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if cuda else platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "lightning": lightning.__version__,
        "threads": torch.get_num_threads(),
    }
    print(f"lmforge pretrain throughput: {environment}", flush=True)
    # the stage's trainer settings and optimiser (conf/trainer/default.yaml, conf/pipeline.yaml's optim),
    # read as plain attributes: a bare GPU machine may lack Hydra and OmegaConf
    trainer_cfg = types.SimpleNamespace(**yaml.safe_load((ROOT / "conf" / "trainer" / "default.yaml").read_text()))
    vars(trainer_cfg).update(accelerator="gpu" if cuda else "cpu", devices=1, strategy="auto")
    vars(trainer_cfg).update(precision=args.precision, accumulate_grad_batches=1)
    optim = types.SimpleNamespace(**yaml.safe_load((ROOT / "conf" / "pipeline.yaml").read_text())["optim"])

    with scratch(args.workdir, args.keep) as workdir:
        data = build_tokens(args, workdir)
        meta = read_meta(data["dir"])
        print(f"data: {data}", flush=True)
        peak = measure_matmul_peak(device, dtype, n=peak_n)
        sdpa = None
        if not args.no_sdpa_probe:
            shape = (args.batch, args.n_heads, args.block, args.d_model // args.n_heads)
            sdpa = sdpa_probe(device, dtype, shape, iters=5 if cuda else 2)
            print(f"SDPA: {sdpa}", flush=True)
        # LMModule as the pretrain stage builds it (a conf/model group and the fields derived from the
        # data), and the bare side's copy of its backbone, with the same initial weights
        model = dict(arch="transformer", d_model=args.d_model, n_layers=args.n_layers, n_heads=args.n_heads)
        model |= dict(d_ff=args.d_ff, max_len=args.block, dropout=0.0, causal=True, pad_id=meta["pad_id"])
        model["vocab_size"] = max(args.vocab, meta["vocab_size"])
        torch.manual_seed(args.seed)
        module = LMModule(build_backbone(model), optim, args.warmup + args.steps, objective="clm")
        torch.manual_seed(args.seed)
        bare_model = CausalLM(Transformer(module.backbone.cfg)).to(device)
        pairs = zip(module.model.state_dict().values(), bare_model.state_dict().values())
        model["same_initial_weights"] = all(torch.equal(a.cpu(), b.cpu()) for a, b in pairs)
        model["non_embedding_params"] = module.backbone.num_params()
        model["flops_per_token"] = fpt = module.backbone.flops_per_token(args.block)
        if args.compile:
            module.model.compile()
            bare_model.compile()
        ctx = types.SimpleNamespace(
            device=device,
            sync=torch.cuda.synchronize if cuda else lambda: None,
            tokens_dir=data["dir"],
            meta=meta,
            trainer_cfg=trainer_cfg,
            optim=optim,
            peak=peak,
            ckpt_every=args.ckpt_every or max(1, args.steps // 2),
        )
        print(f"model: {model}; {args.rounds} rounds of {args.warmup} warm-up + {args.steps} timed steps", flush=True)
        sides = {
            "lmforge": lambda: lightning_round(args, ctx, module, full=False, workdir=workdir),
            "bare": lambda: bare_round(args, ctx, bare_model),
        }
        compile_round = {}
        for side, once in sides.items() if args.compile else ():  # compiling, outside the timed rounds
            t0 = time.perf_counter()
            once()
            compile_round[f"{side}_s"] = time.perf_counter() - t0
        rounds = []
        for res in alternate(sides, args.rounds):
            rounds.append(res | {"ratio": res["lmforge"]["tokens_per_s"] / res["bare"]["tokens_per_s"]})
            tokens_s = ", ".join(f"{side} {res[side]['tokens_per_s']:,.0f}" for side in sides)
            print(f"  round {len(rounds)}: {tokens_s} tokens/s, ratio {rounds[-1]['ratio']:.3f}", flush=True)
        if not args.no_full:
            full = lightning_round(args, ctx, module, full=True, workdir=workdir)
            full_ref = bare_round(args, ctx, bare_model)  # its paired reference, run right after

    med = {side: statistics.median(r[side]["tokens_per_s"] for r in rounds) for side in sides}
    mfu = {side: med[side] * fpt / peak for side in sides}
    ratios = [r["ratio"] for r in rounds]
    result = {
        "benchmark": "pretrain_throughput",
        "config": vars(args),
        "environment": environment,
        "data": data,
        "model": model,
        "peak_flops": peak,
        "peak_dtype": str(dtype),
        "peak_n": peak_n,
        "sdpa": sdpa,
        "compile_warmup_round": compile_round or None,
        "rounds": rounds,
        "lmforge_tokens_per_s": med["lmforge"],
        "bare_tokens_per_s": med["bare"],
        "ratio": statistics.median(ratios),  # paired: each round's two sides ran back to back
        "ratio_per_round": ratios,
        "ratio_of_medians": med["lmforge"] / med["bare"],
        "lmforge_mfu": mfu["lmforge"],
        "bare_mfu": mfu["bare"],
    }
    loss = {side: rounds[0][side]["final_loss"] for side in sides}
    per_round = ", ".join(f"{x:.3f}" for x in ratios)
    rows = [
        ("bare PyTorch loop (reference)", f"{med['bare']:,.0f} tokens/s, MFU {100 * mfu['bare']:.1f}%"),
        ("lmforge Trainer (lean)", f"{med['lmforge']:,.0f} tokens/s, MFU {100 * mfu['lmforge']:.1f}%"),
        ("ratio lmforge / bare", f"{result['ratio']:.3f} (target >= 1.0; the median of {per_round})"),
        ("peak", f"{peak / 1e12:.3f} TFLOP/s ({dtype}, n={peak_n}); the model: {fpt / 1e6:.1f} MFLOP/token"),
        ("loss after round 1", f"lmforge {loss['lmforge']:.4f}, bare {loss['bare']:.4f} (same weights, data)"),
    ]
    if sdpa:
        ms = ", ".join(f"{k} {v:.2f}" if isinstance(v, float) else f"{k} n/a" for k, v in sdpa["fwd_bwd_ms"].items())
        enabled = f"; enabled {sdpa['enabled']}" if "enabled" in sdpa else ""
        rows.append(("attention (SDPA)", f"auto dispatches to {sdpa['auto_dispatches_to']}{enabled}; fwd+bwd ms: {ms}"))
    if not args.no_full:
        saves = full["checkpoint_saves_s"]
        step_s = statistics.median(r["bare"]["step_ms_median"] for r in rounds) / 1e3
        every = int(trainer_cfg.checkpoint_every_n_steps)
        per_save = statistics.mean(saves) if saves else 0.0
        result |= {
            "full": full,
            "full_bare_reference": full_ref,
            "full_ratio": full["tokens_per_s"] / full_ref["tokens_per_s"],
            "full_mfu": full["tokens_per_s"] * fpt / peak,
            "checkpoint_s_per_save": per_save,
            "config_checkpoint_every_n_steps": every,
            "checkpoint_overhead_at_config_interval": per_save / (every * step_s),
        }
        rows += [
            ("lmforge + stage callbacks", f"{full['tokens_per_s']:,.0f} tokens/s, MFU {100 * result['full_mfu']:.1f}%, "
                                          f"ratio {result['full_ratio']:.3f} to the bare run right after it"),
            ("  its Throughput callback", f"{full['throughput_callback_tokens_per_s']:,.0f} tokens/s, "
                                          f"MFU {100 * full['throughput_callback_mfu']:.1f}%"),
            ("  its StepCheckpoint", f"{len(saves)} saves, {per_save:.3f} s each: at the configured interval "
                                     f"({every} steps) {100 * result['checkpoint_overhead_at_config_interval']:.2f}%"),
        ]  # fmt: skip
    result["wall_s"] = time.perf_counter() - t_start
    report("pretrain_throughput", rows, result, args.out)
    return result


if __name__ == "__main__":
    main()
