"""peft's LoRA layer for `nn.Linear`, its adapters added to the layer's output in place.

`peft` computes `result = result + lora_B(lora_A(x)) * scaling`: three tensors the size of the
layer's output per adapter, layer and step, which make LoRA's peak resident memory on a CPU higher
than the full update's although it holds less (README, "Memory on a CPU"). Here the base layer runs
on the input flattened to rows and each adapter is added with one `addmm_` into that output (scale
included), so no output-sized temporary is made in the forward or kept for the backward. Everything
else — creating, merging, unmerging, saving, DDP — is peft's own: this is a subclass registered
through `LoraConfig._register_custom_module` (peft's documented, experimental way to supply a LoRA
layer), and the case it does not cover (adapters disabled or merged, per-call adapter names, LoRA
variants such as DoRA, a bias on `lora_B`) goes to peft's forward. `tests/test_adapters.py` compares
it with peft's own layer, output and gradients, so a peft upgrade that changes either fails there.
"""

from __future__ import annotations

import torch
from peft.tuners.lora import Linear


class InPlaceLoraLinear(Linear):
    def forward(self, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        adapters = [a for a in self.active_adapters if a in self.lora_A]
        if (
            args
            or kwargs
            or self.disable_adapters
            or self.merged
            or any(a in self.lora_variant or self.lora_B[a].bias is not None for a in adapters)
        ):
            return super().forward(x, *args, **kwargs)
        rows = x.reshape(-1, x.shape[-1])
        out = self.base_layer(rows)  # a new tensor no autograd node keeps: safe to add into
        for name in adapters:
            lora_a, lora_b = self.lora_A[name], self.lora_B[name]
            low = lora_a(self.lora_dropout[name](self._cast_input_dtype(rows, lora_a.weight.dtype)))
            out.addmm_(low.to(out.dtype), lora_b.weight.to(out.dtype).t(), alpha=self.scaling[name])
        return out.view(*x.shape[:-1], out.shape[-1])
