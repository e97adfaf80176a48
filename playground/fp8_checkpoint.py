"""The only module that imports llm-compressor: a 16-bit folder written as a compressed-tensors
FP8-dynamic checkpoint, the way published FP8 checkpoints are made.

FP8_DYNAMIC is llm-compressor's data-free scheme: float8_e4m3fn weights with one scale per output
channel (min-max), activations quantized per token at run time, lm_head left 16-bit. vLLM reads it
from config.json's quantization_config; on the CPU, compressed-tensors decompresses it for transformers.

llm-compressor is an optional install (its releases pin transformers below the app's): see
``INSTALL``. compressed-tensors, which reads the checkpoint, is in requirements.txt.
"""

from __future__ import annotations

from pathlib import Path

from playground.engines.base import RequestError

INSTALL = ("pip install --no-deps llmcompressor==0.14.0.1 compressed-tensors==0.19.0 (--no-deps: its release pins "
           "transformers<=5.17; FP8_DYNAMIC needs no calibration data)")
SCHEME = "FP8_DYNAMIC"


def write_fp8_dynamic(source: str | Path, dest: str | Path) -> Path:
    """Quantize the 16-bit model in ``source`` (a Hugging Face folder) and save it compressed in ``dest``."""
    try:
        from llmcompressor import oneshot
        from llmcompressor.modifiers.quantization import QuantizationModifier
    except ImportError as e:
        raise RequestError("model", f"writing an FP8-dynamic checkpoint needs llm-compressor: {INSTALL}") from e
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.bfloat16)
    # lm_head stays 16-bit, as in the published FP8-dynamic checkpoints (and vLLM's own FP8).
    oneshot(model=model, recipe=QuantizationModifier(targets="Linear", scheme=SCHEME, ignore=["lm_head"]))
    dest = Path(dest)
    model.save_pretrained(dest, save_compressed=True)
    AutoTokenizer.from_pretrained(source).save_pretrained(dest)
    return dest
