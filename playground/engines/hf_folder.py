"""A Hugging Face model folder for the CPU engine: one column of `--engine LABEL=FOLDER` on the CPU.

transformers loads the folder; a compressed-tensors checkpoint (llm-compressor's FP8-dynamic, say) is
decompressed to bfloat16 at load by the compressed-tensors package, so the column shows that
checkpoint's weights (its per-channel FP8 rounding) computed in bfloat16: a CPU has no FP8 matmul,
and its activations are not quantized here (vLLM quantizes them per token on a GPU).
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


def load_folder(label: str, folder: str, fp8: bool) -> LoadedFolder:
    """The folder's model in bfloat16 (with ``fp8``: its online per-tensor FP8 twin), and its tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging

    method = check_column(ColumnSpec(label, folder, "fp8" if fp8 else None))
    kwargs = {}
    if method == "compressed-tensors":
        try:
            from transformers.utils.quantization_config import CompressedTensorsConfig

            import compressed_tensors  # noqa: F401 - transformers needs it to read the checkpoint
        except ImportError as e:
            raise RequestError("engine", f"{label}: {folder} is a compressed-tensors checkpoint: pip install "
                                         "compressed-tensors") from e
        kwargs["quantization_config"] = CompressedTensorsConfig(dequantize=True)
    logging.set_verbosity_error()
    try:
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.bfloat16, **kwargs).eval()
        tokenizer = AutoTokenizer.from_pretrained(folder)
    except (OSError, ValueError, ImportError, KeyError) as e:  # what transformers raises for a folder it cannot load
        raise RequestError("engine", f"{label}: transformers cannot load {folder}: {e}") from e
    if fp8:
        from playground.engines.fp8 import quantize_linears

        quantize_linears(model)
    if method:
        quantization = f"{method} (from config.json; decompressed to bfloat16 on the CPU)"
    else:
        quantization = "fp8 (float8_e4m3fn weights, per-tensor amax/448)" if fp8 else None
    notes = (f"{folder}: activations in bfloat16 on the CPU",) if method else ()
    return LoadedFolder(model, tokenizer, quantization,
                        min(int(getattr(model.config, "max_position_embeddings", 2048) or 2048), 2048),
                        bool(getattr(tokenizer, "chat_template", None)), notes)
