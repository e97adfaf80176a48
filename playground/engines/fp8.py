"""FP8 (E4M3) weight storage for the CPU twin: per-tensor scale = amax / 448, dequantized at use.

448 is the largest finite float8_e4m3fn value (E5M2's is 57344); scaling by amax / 448 maps the
largest weight onto it, which is what vLLM's per-tensor `scaled_fp8_quant` does on the GPU.
"""

from __future__ import annotations

import torch
from torch import nn

E4M3_MAX = float(torch.finfo(torch.float8_e4m3fn).max)  # 448.0
E5M2_MAX = float(torch.finfo(torch.float8_e5m2).max)  # 57344.0


def quantize_per_tensor(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(float8_e4m3fn weight, float32 scale) with weight ~= q.float() * scale."""
    amax = weight.detach().abs().max().float().clamp(min=1e-12)
    scale = amax / E4M3_MAX
    q = (weight.float() / scale).clamp(-E4M3_MAX, E4M3_MAX).to(torch.float8_e4m3fn)
    return q, scale


class Fp8Linear(nn.Module):
    """A Linear whose weight lives in float8_e4m3fn; activations stay in the compute dtype."""

    def __init__(self, linear: nn.Linear):
        super().__init__()
        q, scale = quantize_per_tensor(linear.weight)
        self.register_buffer("weight_fp8", q)
        self.register_buffer("weight_scale", scale)
        self.bias = linear.bias
        self.compute_dtype = linear.weight.dtype
        self.in_features, self.out_features = linear.in_features, linear.out_features

    def dequantized_weight(self) -> torch.Tensor:
        return (self.weight_fp8.to(torch.float32) * self.weight_scale).to(self.compute_dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(x, self.dequantized_weight(), self.bias)


def quantize_linears(module: nn.Module, skip: tuple[str, ...] = ("lm_head",)) -> int:
    """Replace every nn.Linear under ``module`` (except names in ``skip``, as vLLM keeps lm_head
    16-bit) by an Fp8Linear, in place. Returns how many were replaced."""
    replaced = 0
    for name, child in list(module.named_children()):
        if name in skip:
            continue
        if isinstance(child, nn.Linear):
            setattr(module, name, Fp8Linear(child))
            replaced += 1
        else:
            replaced += quantize_linears(child, skip)
    return replaced
