"""What vLLM's FP8 does to a Linear, as values: the granularity of the weight and activation scales.
No torch here: the engine line and the page say what is emulated before the model is loaded."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Fp8Scheme:
    """How weights and activations are scaled: the granularity of each scale."""

    weight: str  # "tensor" (one scale per merged layer) or "channel" (one per output row)
    activation: str  # "token" (one scale per row of the input) or "tensor"

    def describe(self) -> str:
        return (f"E4M3 weights rounded once at load (per-{self.weight} scale amax/448), activations rounded to "
                f"E4M3 at each call (dynamic per-{self.activation} scale), matmul in the CPU's compute dtype")


ONLINE = Fp8Scheme(weight="tensor", activation="token")  # quantization="fp8" on a CUTLASS-FP8 GPU (H100, H200)
CHANNEL_DYNAMIC = Fp8Scheme(weight="channel", activation="token")  # compressed-tensors FP8_DYNAMIC checkpoints
