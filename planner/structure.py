"""Count a model's parameters from its real module tree, built on the meta device (no weights).

This is what accelerate's ``estimate-memory`` does: transformers builds the architecture from
config.json under ``torch.device("meta")`` in a second or two, and every parameter is then
sorted by how vLLM 0.25.1 stores it. The sorting rules, each read from vLLM's model files:

- Embedding and LM head: ``VocabParallelEmbedding`` / ``ParallelLMHead``, 16-bit, vocabulary padded
  to a multiple of 64 and split across tensor-parallel ranks; online FP8 leaves them alone.
- Linear layers inside decoder layers: ``QKVParallelLinear``, ``MergedColumnParallelLinear``,
  ``RowParallelLinear``: FP8 under ``quantization="fp8"``, split across ranks.
- MLA latent projections (``kv_a_proj_with_mqa``, ``q_a_proj``): ``ReplicatedLinear`` with the
  model's quant_config (deepseek_v2.py): FP8, but every rank holds all of it.
- Routed experts (``FusedMoE`` / ``RoutedExperts``): FP8 under the online MoE method, split across ranks.
- Router gates (``mlp.gate``, Llama-4's ``feed_forward.router``, ``shared_expert_gate``): built with
  ``quant_config=None`` and replicated.
- Norms, biases and everything 1-D: 16-bit.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
import json

REPLICATED_QUANTIZED = ("kv_a_proj_with_mqa", "q_a_proj")


@dataclass(frozen=True)
class ParamCensus:
    """Parameters by how vLLM stores them (whole model, before tensor parallelism)."""

    embedding: int
    lm_head: int  # 0 when tied to the embedding
    linear_split: int  # FP8-able, split across TP ranks
    linear_replicated: int  # FP8-able, on every rank (MLA latent projections)
    experts: int  # routed experts: FP8-able, split across ranks
    sixteen_bit_split: int  # biases of split linears
    sixteen_bit_replicated: int  # norms, router gates
    largest_expert_layer: int = 0  # one layer's routed experts (the biggest single tensor group)
    source: str = ""
    # Every decoder nn.Linear, grouped by its name with the layer index as '*': (name, in_features,
    # out_features, how many). A pre-quantized checkpoint's scales depend on each Linear's shape.
    linears: tuple[tuple[str, int, int, int], ...] = ()
    expert_layers: int = 0  # layers holding routed experts
    expert_bias: int = 0  # elements of the routed experts' biases (gpt-oss), whole model

    @property
    def total(self) -> int:
        return (self.embedding + self.lm_head + self.linear_split + self.linear_replicated + self.experts
                + self.sixteen_bit_split + self.sixteen_bit_replicated)


def census_from_config(config: dict) -> ParamCensus:
    """Build the architecture on the meta device and count. Raises KeyError/ValueError for an
    architecture transformers does not know (the caller falls back to the hand formula)."""
    return _census(json.dumps(config, sort_keys=True))


@lru_cache(maxsize=64)
def _census(config_json: str) -> ParamCensus:
    import torch
    import transformers
    from transformers import AutoConfig, AutoModelForCausalLM

    config = json.loads(config_json)
    fields = {k: v for k, v in config.items() if k != "model_type" and not k.startswith("_")}
    hf = AutoConfig.for_model(config["model_type"], **fields)
    text = getattr(hf, "text_config", None) or hf  # multimodal: the language model only
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(text)
    num_experts = int(getattr(text, "num_experts", 0) or getattr(text, "num_local_experts", 0)
                      or getattr(text, "n_routed_experts", 0) or 0)
    linear_names = {name for name, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
    counts = dict(embedding=0, lm_head=0, linear_split=0, linear_replicated=0, experts=0,
                  sixteen_bit_split=0, sixteen_bit_replicated=0)
    expert_layers: dict[str, int] = {}
    expert_bias = 0
    linears: dict[tuple[str, int, int], int] = {}
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) and not name.startswith("lm_head"):
            generic = ".".join("*" if part.isdigit() else part for part in name.split("."))
            key = (generic, module.in_features, module.out_features)
            linears[key] = linears.get(key, 0) + 1
    tied = bool(getattr(text, "tie_word_embeddings", False))
    for name, param in model.named_parameters(remove_duplicate=False):
        n = param.numel()
        owner, _, leaf = name.rpartition(".")
        if name.startswith("lm_head."):
            counts["lm_head"] += 0 if tied else n
        elif "embed_tokens" in name or owner.endswith("wte") or owner.endswith("embeddings"):
            counts["embedding"] += n
        elif ".experts." in name:
            counts["experts"] += n
            expert_bias += n if param.dim() == 2 else 0  # (experts, width) biases beside (experts, out, in) weights
            layer = name.split(".experts.")[0]
            expert_layers[layer] = expert_layers.get(layer, 0) + n
        elif (owner.endswith(".gate") or owner.endswith(".router")) and num_experts and param.dim() == 2 \
                and param.shape[0] == num_experts:
            counts["sixteen_bit_replicated"] += n  # the router (Llama-4's is .router): quant_config=None, replicated
        elif owner.endswith("shared_expert_gate"):
            counts["sixteen_bit_replicated"] += n
        elif owner in linear_names and leaf == "weight":
            key = "linear_replicated" if owner.rsplit(".", 1)[-1] in REPLICATED_QUANTIZED else "linear_split"
            counts[key] += n
        elif owner in linear_names:
            counts["sixteen_bit_split"] += n  # biases
        else:
            counts["sixteen_bit_replicated"] += n  # norms and other 1-D weights
    return ParamCensus(**counts, largest_expert_layer=max(expert_layers.values(), default=0),
                       source=f"meta-device census (transformers {transformers.__version__})",
                       linears=tuple((name, i, o, c) for (name, i, o), c in linears.items()),
                       expert_layers=len(expert_layers), expert_bias=expert_bias)
