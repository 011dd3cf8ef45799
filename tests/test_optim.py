"""The optimiser: AdamW runs fused under the default bf16 autocast, and its gradients are clipped
exactly as Lightning clips an unfused one (Lightning itself refuses to clip a fused optimiser
under mixed precision)."""

import lightning as L
import pytest
import torch
from lightning.pytorch.strategies import FSDPStrategy, SingleDeviceStrategy

from lmforge.config import OptimConfig
from lmforge.models.transformer import Transformer, TransformerConfig
from lmforge.optim import adamw, fused_ok, scheduled
from lmforge.train.lm import LMModule

pytestmark = pytest.mark.usefixtures("one_thread")

VOCAB = 50


class Unfused(LMModule):
    """The reference: the same module with torch's per-tensor AdamW, clipped by Lightning."""

    def configure_optimizers(self):
        o = self.optim
        return scheduled(
            adamw(self.model, o.lr, o.weight_decay, (o.beta1, o.beta2), fused=False),
            o.warmup_steps,
            self.max_steps,
            o.min_lr_ratio,
        )


def train(module_class, clip: float | None, algorithm: str = "norm", steps: int = 6):
    torch.manual_seed(0)
    cfg = TransformerConfig(vocab_size=VOCAB, d_model=32, n_layers=1, n_heads=2, d_ff=64, max_len=16, causal=True)
    module = module_class(Transformer(cfg), OptimConfig(lr=1e-2, warmup_steps=0), steps)
    gen = torch.Generator().manual_seed(1)
    windows = torch.randint(6, VOCAB, (steps * 4, 17), generator=gen)
    data = torch.utils.data.DataLoader([(w[:-1], w[1:]) for w in windows], batch_size=4)
    trainer = L.Trainer(
        max_steps=steps,
        accelerator="cpu",
        precision="bf16-mixed",
        gradient_clip_val=clip,
        gradient_clip_algorithm=algorithm,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(module, data)
    return trainer.optimizers[0], torch.cat([p.detach().flatten() for p in module.parameters()])


@pytest.mark.parametrize("algorithm", ["norm", "value"])
def test_fused_adamw_is_clipped_as_lightning_clips_the_unfused_one(algorithm):
    # a tiny threshold: clipped gradients fall below Adam's eps, so clipping decides every update
    opt, fused = train(LMModule, clip=1e-9, algorithm=algorithm)
    ref_opt, unfused = train(Unfused, clip=1e-9, algorithm=algorithm)
    _, unclipped = train(LMModule, clip=None)
    assert opt.defaults["fused"] is True and not ref_opt.defaults["fused"]
    assert torch.allclose(fused, unfused, atol=1e-5)
    assert (fused - unclipped).abs().max() > 100 * (fused - unfused).abs().max()
    assert (fused - unclipped).abs().max() > 1e-3


def test_fused_only_where_clipping_stays_right():
    single = SingleDeviceStrategy("cpu")
    assert fused_ok("bf16-mixed", single) and fused_ok("32-true", single)
    # fp16 autocast: its GradScaler leaves the unscaling to a fused step, after the clipping
    assert not fused_ok("16-mixed", single)
    # FSDP: the gradient norm spans the shards of every rank
    assert not fused_ok("bf16-mixed", FSDPStrategy())
