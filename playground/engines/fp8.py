"""vLLM's FP8 (E4M3) W8A8 numerics emulated on a CPU at 16-bit cost.

What vLLM does on an H100/H200 for ``quantization="fp8"`` on a 16-bit checkpoint
(``Fp8PerTensorOnlineLinearMethod``, vllm/model_executor/layers/quantization/online/fp8.py):
the weight of each *merged* layer (qkv_proj = q, k, v; gate_up_proj = gate, up) is quantized once
with one per-tensor scale amax / 448 (``ops.scaled_fp8_quant(weight, scale=None)``), and every
activation is quantized dynamically per token (``kFp8DynamicTokenSym``, chosen when
``cutlass_fp8_supported()``; per tensor on GPUs without CUTLASS FP8). The matmul multiplies the FP8
values, accumulates in fp32 and applies ``x_scale * w_scale`` in its epilogue.

A CPU has no FP8 matmul, but every E4M3 value is exact in bfloat16 and float32. So the weights are
rounded onto the E4M3 grid once at load and kept, unscaled, in the compute dtype; per call the
activation is rounded onto the grid with its dynamic scale (a few element-wise operations on a small
tensor), the two grids are multiplied in the compute dtype, and the output is scaled. The rounding is
vLLM's; the matmul's accumulation order and the compute dtype are the CPU's.

448 is the largest finite float8_e4m3fn value (E5M2's is 57344).
"""

from __future__ import annotations

import torch
from torch import nn

from playground.engines.fp8_scheme import CHANNEL_DYNAMIC, ONLINE, Fp8Scheme  # noqa: F401 - re-exported

E4M3_MAX = float(torch.finfo(torch.float8_e4m3fn).max)  # 448.0
E5M2_MAX = float(torch.finfo(torch.float8_e5m2).max)  # 57344.0
MIN_SCALE = 1.0 / (E4M3_MAX * 512.0)  # vLLM's _FP8_MIN_SCALING_FACTOR (input_quant_fp8.py)

# vLLM fuses these HF projections into one layer; online FP8 gives the fused layer one weight scale
MERGED = (("q_proj", "k_proj", "v_proj"), ("gate_proj", "up_proj"))


def _amax_scale(amax: torch.Tensor) -> torch.Tensor:
    return (amax.float() / E4M3_MAX).clamp(min=MIN_SCALE)


def to_e4m3(x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """x / scale rounded to the nearest float8_e4m3fn value (saturating, as vLLM clamps first)."""
    return (x.float() / scale).clamp(-E4M3_MAX, E4M3_MAX).to(torch.float8_e4m3fn)


def quantize_per_tensor(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(float8_e4m3fn weight, float32 scale) with weight ~= q.float() * scale."""
    scale = _amax_scale(weight.detach().abs().max())
    return to_e4m3(weight, scale), scale


def quantize_per_channel(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(float8_e4m3fn weight, float32 scales of shape [out, 1]): one scale per output row."""
    scale = _amax_scale(weight.detach().abs().amax(dim=1, keepdim=True))
    return to_e4m3(weight, scale), scale


class Fp8Linear(nn.Module):
    """A Linear computing vLLM's W8A8 FP8 numbers: E4M3 weight and activation grids, scaled output.

    ``weight_fp8`` (float8_e4m3fn) and ``weight_scale`` are what vLLM stores; ``weight_grid`` is the
    same values in the compute dtype, made once so that no call dequantizes anything."""

    def __init__(self, weight_fp8: torch.Tensor, weight_scale: torch.Tensor, bias: torch.Tensor | None,
                 compute_dtype: torch.dtype, activation: str = "token"):
        super().__init__()
        if activation not in ("token", "tensor"):
            raise ValueError(f"activation: {activation!r} is not 'token' or 'tensor'")
        self.register_buffer("weight_fp8", weight_fp8)
        self.register_buffer("weight_scale", weight_scale.float().reshape(-1) if weight_scale.numel() > 1
                             else weight_scale.float().reshape(()))
        self.register_buffer("weight_grid", weight_fp8.to(compute_dtype))
        self.bias = None if bias is None else nn.Parameter(bias.detach().to(compute_dtype), requires_grad=False)
        self.compute_dtype, self.activation = compute_dtype, activation
        self.out_features, self.in_features = weight_fp8.shape
        self.shared_input: SharedInput | None = None  # set for the members of a merged group

    @classmethod
    def from_linear(cls, linear: nn.Linear, scheme: Fp8Scheme = ONLINE, weight_scale: torch.Tensor | None = None,
                    compute_dtype: torch.dtype | None = None) -> Fp8Linear:
        """Quantize a 16-bit Linear; ``weight_scale`` overrides the per-tensor scale (a merged layer's)."""
        w = linear.weight.detach()
        if weight_scale is not None:
            q, scale = to_e4m3(w, weight_scale), weight_scale
        elif scheme.weight == "channel":
            q, scale = quantize_per_channel(w)
        else:
            q, scale = quantize_per_tensor(w)
        return cls(q, scale, linear.bias, compute_dtype or w.dtype, scheme.activation)

    def dequantized_weight(self) -> torch.Tensor:
        scale = self.weight_scale.unsqueeze(-1) if self.weight_scale.dim() else self.weight_scale
        return (self.weight_fp8.float() * scale).to(self.compute_dtype)

    def quantize_input(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(x as rows on the E4M3 grid in the compute dtype, their float32 scales): vLLM's dynamic
        activation quantization. The members of a merged group (q, k, v; gate, up) read one input,
        which vLLM quantizes once: so does this, keyed by the input tensor itself."""
        shared = self.shared_input
        cached = shared.last if shared is not None else None
        if cached is not None and cached[0] is x:
            return cached[1], cached[2]
        x2 = x.reshape(-1, self.in_features)
        amax = (torch.linalg.vector_norm(x2, float("inf"), dim=-1, keepdim=True, dtype=torch.float32)
                if self.activation == "token" else x2.abs().amax().float())
        x_scale = amax.div_(E4M3_MAX).clamp_(min=MIN_SCALE)
        # |x / x_scale| <= 448 by construction (the scale only grows at its floor): vLLM's clamp changes nothing here
        x_grid = (x2 / x_scale).to(torch.float8_e4m3fn).to(self.compute_dtype)
        if shared is not None:
            shared.last = (x, x_grid, x_scale)  # one assignment: safe with two worker threads on one model
        return x_grid, x_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x_grid, x_scale = self.quantize_input(x)
        # the FP8 kernel's epilogue: fp8 x fp8 products, then x_scale * w_scale, output in the 16-bit dtype
        y = (nn.functional.linear(x_grid, self.weight_grid) * (x_scale * self.weight_scale)).to(self.compute_dtype)
        if self.bias is not None:
            y = y + self.bias
        return y.reshape(*x.shape[:-1], self.out_features)


class SharedInput:
    """The last input of a merged group (q, k, v or gate, up) and its quantization."""

    last: tuple | None = None


def _merged_scales(module: nn.Module) -> dict[str, torch.Tensor]:
    """The one per-tensor scale of each fused layer vLLM builds, keyed by the HF child's name."""
    scales = {}
    for group in MERGED:
        children = [getattr(module, name, None) for name in group]
        if all(isinstance(c, nn.Linear) for c in children):
            amax = torch.stack([c.weight.detach().abs().max().float() for c in children]).max()
            scales.update({name: _amax_scale(amax) for name in group})
    return scales


def quantize_linears(module: nn.Module, scheme: Fp8Scheme = ONLINE, skip: tuple[str, ...] = ("lm_head",),
                     compute_dtype: torch.dtype | None = None) -> int:
    """Replace every nn.Linear under ``module`` (except names in ``skip``, as vLLM keeps lm_head
    16-bit) by an Fp8Linear, in place. Returns how many were replaced."""
    replaced = 0
    shared = _merged_scales(module) if scheme.weight == "tensor" else {}
    holder = {}
    for group in MERGED:
        if all(isinstance(getattr(module, n, None), nn.Linear) for n in group):
            one = SharedInput()
            holder.update({n: one for n in group})
    for name, child in list(module.named_children()):
        if name in skip:
            continue
        if isinstance(child, nn.Linear):
            fp8 = Fp8Linear.from_linear(child, scheme, shared.get(name), compute_dtype)
            fp8.shared_input = holder.get(name)
            setattr(module, name, fp8)
            replaced += 1
        else:
            replaced += quantize_linears(child, scheme, skip, compute_dtype)
    return replaced
