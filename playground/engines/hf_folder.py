"""A Hugging Face model folder for the CPU engine: one column of `--engine LABEL=FOLDER` on the CPU.

transformers loads the folder (compressed-tensors reads a compressed-tensors checkpoint). An FP8
checkpoint (llm-compressor's FP8-dynamic, say) keeps its own E4M3 weights and per-channel scales and
computes vLLM's numbers for them (playground/engines/fp8.py: activations rounded per token at each
call); another quantized checkpoint is decompressed to the compute dtype. ``fp8`` on a 16-bit folder
is its online FP8 twin, as on the embedded model.
"""

from __future__ import annotations

from dataclasses import dataclass

from playground.columns import ColumnSpec, check_column
from playground.engines.base import RequestError


@dataclass(frozen=True)
class LoadedFolder:
    model: object
    tokenizer: object
    quantization: str | None
    max_model_len: int
    chat_template: bool
    notes: tuple[str, ...]


def fp8_activation(folder: str) -> str | None:
    """'token' or 'tensor' for a compressed-tensors checkpoint whose Linears are FP8 W8A8 with dynamic
    activations (the schemes vLLM runs as CompressedTensorsW8A8Fp8); None for any other scheme."""
    import json
    from pathlib import Path

    quant = json.loads((Path(folder) / "config.json").read_text()).get("quantization_config") or {}
    groups = list((quant.get("config_groups") or {}).values())
    if len(groups) != 1:
        return None
    weights, inputs = groups[0].get("weights") or {}, groups[0].get("input_activations") or {}
    if (weights.get("type"), weights.get("num_bits"), inputs.get("type"), inputs.get("num_bits")) != ("float", 8, "float", 8):
        return None
    if weights.get("strategy") not in ("channel", "tensor") or not inputs.get("dynamic"):
        return None
    return "token" if inputs.get("strategy") == "token" else "tensor"


def _checkpoint_fp8_linears(model, dtype, activation: str) -> int:
    """Every Linear that holds float8_e4m3fn weights (and its weight_scale) becomes an Fp8Linear of
    those same values: the checkpoint's rounding, not a new one."""
    import torch
    from torch import nn

    from playground.engines.fp8 import Fp8Linear

    replaced = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.Linear) and child.weight.dtype == torch.float8_e4m3fn:
                setattr(parent, name, Fp8Linear(child.weight.detach(), child.weight_scale.detach().float(), child.bias,
                                                dtype, activation))
                replaced += 1
    # compressed-tensors hooks the model to decompress itself at its first call: the Linears it would
    # decompress are gone (and on a long cache its argument walk recursed without end)
    for key, hook in list(model._forward_pre_hooks.items()):
        if getattr(hook, "__module__", "").startswith("compressed_tensors"):
            del model._forward_pre_hooks[key]
    return replaced


def load_folder(folder: str, fp8: bool, dtype) -> LoadedFolder:
    """The folder's model in ``dtype`` (with ``fp8``: its online FP8 twin), and its tokenizer."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging

    from playground.engines.fp8 import quantize_linears
    from playground.engines.fp8_scheme import ONLINE

    method = check_column(ColumnSpec("", folder, "fp8" if fp8 else None))
    kwargs, activation = {}, None
    if method == "compressed-tensors":
        try:
            import compressed_tensors  # noqa: F401 - transformers needs it to read the checkpoint
            from transformers.utils.quantization_config import CompressedTensorsConfig
        except ImportError as e:
            raise RequestError("engine", f"{folder} is a compressed-tensors checkpoint: pip install "
                                         "compressed-tensors") from e
        activation = fp8_activation(folder)
        if activation is None:  # not FP8 W8A8: its weights decompressed, computed in 16-bit
            kwargs["quantization_config"] = CompressedTensorsConfig(dequantize=True)
    logging.set_verbosity_error()
    try:
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype, **kwargs).eval()
        tokenizer = AutoTokenizer.from_pretrained(folder)
    except (OSError, ValueError, ImportError, KeyError) as e:  # what transformers raises for a folder it cannot load
        raise RequestError("engine", f"transformers cannot load {folder}: {e}") from e
    if activation is not None:
        _checkpoint_fp8_linears(model, dtype, activation)
        quantization = (f"{method} FP8 from config.json: the checkpoint's E4M3 weights and scales, activations "
                        f"rounded to E4M3 at each call (dynamic per-{activation} scale), matmul in the CPU's compute dtype")
    elif method:
        quantization = f"{method} (from config.json; decompressed to 16-bit on the CPU)"
    elif fp8:
        quantize_linears(model, ONLINE, compute_dtype=dtype)
        quantization = "fp8 emulated: " + ONLINE.describe()
    else:
        quantization = None
    return LoadedFolder(model, tokenizer, quantization,
                        min(int(getattr(model.config, "max_position_embeddings", 2048) or 2048), 2048),
                        bool(getattr(tokenizer, "chat_template", None)), ())
