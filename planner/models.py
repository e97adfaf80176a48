"""Model shapes: a ModelSpec from a catalog name, a config.json path, or a config dict.

Parsing goes through transformers' own config classes, so defaults (num_key_value_heads,
head_dim, tied embeddings, ...) are the ones the model's code uses.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from pathlib import Path

from planner.assets import load_json
from planner.errors import PlannerError

DTYPE_BYTES = {"float16": 2, "bfloat16": 2, "float32": 4}


@dataclass(frozen=True)
class ModelSpec:
    """The shapes that decide memory: everything is per model, not per GPU."""

    name: str
    architecture: str
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    vocab_size: int
    max_position_embeddings: int
    torch_dtype: str = "bfloat16"
    tie_word_embeddings: bool = False
    attention_bias: bool = False
    num_experts: int = 0  # 0: dense MLP
    experts_per_token: int = 0
    norms_per_layer: int = 2
    source: str = ""

    # Parameter counts by component (whole model, before tensor parallelism).
    @property
    def embedding_params(self) -> int:
        return self.vocab_size * self.hidden_size

    @property
    def lm_head_params(self) -> int:
        return 0 if self.tie_word_embeddings else self.vocab_size * self.hidden_size

    @property
    def attention_params_per_layer(self) -> int:
        q_out = self.num_heads * self.head_dim
        kv_out = self.num_kv_heads * self.head_dim
        weights = self.hidden_size * (q_out + 2 * kv_out) + q_out * self.hidden_size
        bias = (q_out + 2 * kv_out) if self.attention_bias else 0
        return weights + bias

    @property
    def mlp_params_per_layer(self) -> int:
        gated = 3 * self.hidden_size * self.intermediate_size  # gate, up, down
        if self.num_experts:
            return self.num_experts * gated + self.hidden_size * self.num_experts  # + router
        return gated

    @property
    def norm_params(self) -> int:
        return self.num_layers * self.norms_per_layer * self.hidden_size + self.hidden_size

    @property
    def linear_params(self) -> int:
        """Parameters in Linear layers: what FP8 weight quantization stores in 1 byte."""
        return self.num_layers * (self.attention_params_per_layer + self.mlp_params_per_layer)

    @property
    def total_params(self) -> int:
        return self.embedding_params + self.lm_head_params + self.linear_params + self.norm_params

    @property
    def active_params_per_token(self) -> int:
        """Parameters one token touches (MoE: only experts_per_token experts)."""
        if not self.num_experts:
            return self.total_params
        dense_mlp = 3 * self.hidden_size * self.intermediate_size * self.experts_per_token
        unused = self.num_layers * (self.mlp_params_per_layer - dense_mlp)
        return self.total_params - unused


def _catalog() -> dict:
    return load_json("models.json")["models"]


def catalog_names() -> list[str]:
    return list(_catalog())


def model_spec(model: str | Path | dict, *, name: str | None = None) -> ModelSpec:
    """Shapes of ``model``: a catalog name (``"llama-2-7b"``), a config.json path or its folder,
    or an already-loaded config dict."""
    source = ""
    if isinstance(model, dict):
        config = model
        label = name or config.get("_name_or_path") or config.get("model_type", "custom")
    elif isinstance(model, (str, Path)):
        text = str(model).strip()
        catalog = _catalog()
        if text.lower() in catalog:
            entry = catalog[text.lower()]
            config, label, source = entry["config"], text.lower(), entry["source"]
        else:
            path = Path(text).expanduser()
            if path.is_dir():
                path = path / "config.json"
            if not path.is_file():
                close = difflib.get_close_matches(text.lower(), catalog, n=3, cutoff=0.4)
                hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
                raise PlannerError(
                    "model",
                    f"{text!r} is neither a catalog model nor a config.json path.{hint} "
                    f"Catalog: {', '.join(catalog)}.",
                )
            try:
                config = json.loads(path.read_text(encoding="utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError) as e:
                raise PlannerError("model", f"{path} is not valid JSON ({e})") from e
            if not isinstance(config, dict):
                raise PlannerError("model", f"{path} must hold a JSON object, not {type(config).__name__}")
            label, source = name or path.parent.name, str(path)
    else:
        raise PlannerError("model", f"expected a name, a path or a config dict, got {type(model).__name__}")
    return _spec_from_config(config, label, source)


def _spec_from_config(config: dict, label: str, source: str) -> ModelSpec:
    from transformers import AutoConfig  # heavy import, only when a config is parsed

    model_type = config.get("model_type")
    if not model_type:
        raise PlannerError("model", "config.json has no 'model_type' (for example \"llama\")")
    try:  # transformers validates the fields through huggingface_hub's strict dataclasses
        from huggingface_hub.errors import StrictDataclassError
    except ImportError:  # older huggingface_hub: validation errors are ValueErrors
        StrictDataclassError = ValueError  # noqa: N806

    fields = {k: v for k, v in config.items() if k != "model_type" and not k.startswith("_")}
    try:
        hf = AutoConfig.for_model(model_type, **fields)
    except (ValueError, KeyError, TypeError, StrictDataclassError) as e:
        raise PlannerError("model", f"config.json could not be parsed as model_type {model_type!r}: {e}") from e

    def need(attr: str) -> int:
        value = getattr(hf, attr, None)
        if not isinstance(value, int) or value <= 0:
            raise PlannerError("model", f"config.json field {attr!r} must be a positive integer, got {value!r}")
        return value

    hidden = need("hidden_size")
    heads = need("num_attention_heads")
    kv_heads = getattr(hf, "num_key_value_heads", None) or heads
    head_dim = getattr(hf, "head_dim", None) or hidden // heads
    if heads % kv_heads:
        raise PlannerError("model", f"num_attention_heads ({heads}) is not a multiple of num_key_value_heads ({kv_heads})")
    dtype = str(config.get("torch_dtype") or config.get("dtype") or "bfloat16").replace("torch.", "")
    experts = int(getattr(hf, "num_local_experts", 0) or getattr(hf, "num_experts", 0) or 0)
    return ModelSpec(
        name=label,
        architecture=(config.get("architectures") or [type(hf).__name__.replace("Config", "ForCausalLM")])[0],
        hidden_size=hidden,
        intermediate_size=need("intermediate_size"),
        num_layers=need("num_hidden_layers"),
        num_heads=heads,
        num_kv_heads=kv_heads,
        head_dim=head_dim,
        vocab_size=need("vocab_size"),
        max_position_embeddings=need("max_position_embeddings"),
        torch_dtype=dtype if dtype in DTYPE_BYTES else "bfloat16",
        tie_word_embeddings=bool(getattr(hf, "tie_word_embeddings", False)),
        attention_bias=model_type in ("qwen2",) or bool(getattr(hf, "attention_bias", False)),
        num_experts=experts,
        experts_per_token=int(getattr(hf, "num_experts_per_tok", 0) or 0) if experts else 0,
        norms_per_layer=4 if model_type in ("gemma2", "gemma3") else 2,
        source=source,
    )
