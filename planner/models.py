"""Model shapes: a ModelSpec from a catalog name, a config.json path, a config dict or its text.

Parameter counts come from the real module tree (planner/structure.py, built on the meta device);
the attention layout of every layer (full, sliding window, MLA latent) and, for hybrid models, the
recurrent state of each Mamba / gated-delta-net / short-conv layer from the config as transformers
parses it. A hand formula remains only for architectures transformers does not know,
and the spec says which path was used (``structure_source``).
"""

from __future__ import annotations

import contextlib
import difflib
import json
import math
from dataclasses import dataclass
from pathlib import Path

from planner.assets import load_json
from planner.errors import PlannerError
from planner.quantization import QuantScheme, parse_quantization_config
from planner.structure import ParamCensus, census_from_config

DTYPE_BYTES = {"float16": 2, "bfloat16": 2, "float32": 4}
UNSUPPORTED_LAYER_TYPES: tuple[str, ...] = ()
# Attention-free state-space models (vLLM's ModelConfig.is_attention_free): no attention heads, one state per sequence
ATTENTION_FREE_MODEL_TYPES = ("mamba", "falcon_mamba", "mamba2")
# vLLM's _get_and_verify_max_len when config.json names no maximum length (Mamba configs do not)
DEFAULT_MAX_LEN = 2048
CHUNKED_ATTENTION_NOTE = (
    "chunked local attention (attention_chunk_size {chunk:,}) sized as full attention: vLLM 0.25.1 turns the hybrid "
    "KV-cache manager off for it by default (config/vllm.py, unless VLLM_ALLOW_CHUNKED_LOCAL_ATTN_WITH_HYBRID_KV_CACHE=1), "
    "so every layer's cache holds the whole context (kv_cache_utils.unify_hybrid_kv_cache_specs)")
# transformers' normalized layer_types (configuration_utils._LEGACY_LAYER_TYPE_REMAP: "mamba" and GDN layers are
# "linear_attention", "attention" is "full_attention"); "hybrid" layers (Falcon-H1) hold both an attention and a
# Mamba mixer; "mlp" / "moe" layers (Nemotron-H) hold no cache at all.
RECURRENT_LAYER_TYPES = ("linear_attention", "mamba", "conv", "hybrid")
NO_CACHE_LAYER_TYPES = ("mlp", "moe")


@dataclass(frozen=True)
class AttentionLayer:
    """What one decoder layer keeps per token, as vLLM's KV-cache spec for it says.

    kind: "full" (FullAttentionSpec: K and V per KV head), "sliding" (SlidingWindowSpec, bounded by
    ``window``), "mla" (MLAAttentionSpec: one latent of ``head_dim`` = kv_lora_rank + rope dims,
    shared by all heads and not split by tensor parallelism)."""

    kind: str
    num_kv_heads: int
    head_dim: int
    window: int | None = None

    def bytes_per_token(self, kv_bytes: int, tp: int) -> int:
        if self.kind == "mla":
            return self.head_dim * kv_bytes
        return 2 * max(1, self.num_kv_heads // tp) * self.head_dim * kv_bytes


@dataclass(frozen=True)
class RecurrentLayer:
    """The per-sequence state of one recurrent layer, as vLLM's MambaSpec holds it: one page per running
    sequence whatever its length (vllm/model_executor/layers/mamba/mamba_utils.py, MambaStateShapeCalculator).

    kind: "mamba2" (conv state of intermediate + 2 x groups x state channels, SSM state heads x head_dim x
    state), "mamba1" (conv and SSM state over the intermediate channels), "gdn" (gated delta net:
    conv over 2 x key heads x key dim + value heads x value dim, state value heads x value dim x key dim),
    "short_conv" (LFM2: a conv state only). ``ssm_float32``: the SSM state is kept in float32 whatever the
    model dtype (Nemotron-H's default, vLLM's NemotronHForCausalLMConfig)."""

    kind: str
    channels: int  # mamba1/mamba2: the mixer's intermediate size; gdn: key heads; short_conv: conv_dim
    conv_kernel: int
    heads: int = 0  # mamba2 heads; gdn value heads
    head_dim: int = 0  # mamba2 head_dim; gdn value head dim
    state_size: int = 0  # mamba1/mamba2 d_state; gdn key head dim
    n_groups: int = 0  # mamba2
    ssm_float32: bool = False

    def groups_on(self, tp: int) -> int:
        """Mamba2 groups once split over ``tp`` ranks: a group count the ranks do not divide is extended so that
        every head keeps its group (MambaStateShapeCalculator.extra_groups_for_head_shards, MambaMixer2)."""
        return self.n_groups + (0 if self.n_groups % tp == 0 else tp - self.n_groups)

    def state_shapes(self, tp: int) -> tuple[tuple[int, ...], tuple[int, ...] | None]:
        """(conv state, SSM state) element shapes on one rank; vLLM's default 'SD' conv layout."""
        if self.kind == "mamba2":
            conv_dim = self.channels + 2 * self.groups_on(tp) * self.state_size
            return (self.conv_kernel - 1, conv_dim // tp), (self.heads // tp, self.head_dim, self.state_size)
        if self.kind == "mamba1":
            return (self.conv_kernel - 1, self.channels // tp), (self.channels // tp, self.state_size)
        if self.kind == "gdn":
            conv_dim = 2 * self.channels * self.state_size + self.heads * self.head_dim
            return (self.conv_kernel - 1, conv_dim // tp), (self.heads // tp, self.head_dim, self.state_size)
        return (self.conv_kernel - 1, self.channels // tp), None  # short_conv (conv_kernel = conv_L_cache)

    def state_bytes(self, dtype_bytes: int, tp: int = 1) -> int:
        """MambaSpec.page_size_bytes before padding: every state tensor of one sequence, in bytes."""
        conv, ssm = self.state_shapes(tp)
        total = math.prod(conv) * dtype_bytes
        if ssm is not None:
            total += math.prod(ssm) * (4 if self.ssm_float32 else dtype_bytes)
        return total


@dataclass(frozen=True)
class ModelSpec:
    """The shapes that decide memory: everything is per model, not per GPU."""

    name: str
    architecture: str
    hidden_size: int
    intermediate_size: int  # the dense MLP width (MoE: the expert width, moe_intermediate_size)
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    vocab_size: int
    max_position_embeddings: int
    params: ParamCensus
    layers: tuple[AttentionLayer, ...]  # the layers with an attention KV cache
    torch_dtype: str = "bfloat16"
    tie_word_embeddings: bool = False
    num_experts: int = 0  # routed experts per MoE layer; 0: dense
    experts_per_token: int = 0
    rotary_dim: int = 0
    structure_source: str = ""
    source: str = ""
    notes: tuple[str, ...] = ()
    state_layers: tuple[RecurrentLayer, ...] = ()  # hybrid / recurrent models: one state per sequence each
    kv_b_proj_params: int = 0  # MLA: every layer's kv_b_proj (latent -> per-head K and V), whole model
    quant: QuantScheme | None = None  # the checkpoint's own quantization (config.json's quantization_config)
    # a vision (or other encoder) tower beside the language model: sized text-only, run with language_model_only
    is_multimodal: bool = False

    @property
    def is_hybrid(self) -> bool:
        """Recurrent layers beside attention (vLLM's ModelConfig.is_hybrid / attention-free models)."""
        return bool(self.state_layers)

    @property
    def embedding_params(self) -> int:
        return self.params.embedding

    @property
    def lm_head_params(self) -> int:
        return self.params.lm_head

    @property
    def linear_params(self) -> int:
        """Parameters FP8 weight quantization stores in 1 byte (decoder Linear layers and experts)."""
        return self.params.linear_split + self.params.linear_replicated + self.params.experts

    @property
    def total_params(self) -> int:
        return self.params.total

    @property
    def active_params_per_token(self) -> int:
        """Parameters one token touches (MoE: only experts_per_token of the routed experts)."""
        if not self.num_experts:
            return self.total_params
        return self.total_params - self.params.experts + self.params.experts * self.experts_per_token // self.num_experts

    @property
    def is_mla(self) -> bool:
        return any(layer.kind == "mla" for layer in self.layers)

    @property
    def sliding_window(self) -> int | None:
        return next((layer.window for layer in self.layers if layer.kind == "sliding"), None)


def _catalog() -> dict:
    return load_json("models.json")["models"]


def catalog_names() -> list[str]:
    return list(_catalog())


def catalog_hf_ids() -> dict[str, str]:
    """Catalog name -> the Hugging Face id its config.json was published under."""
    return {name: entry["hf_id"] for name, entry in _catalog().items() if entry.get("hf_id")}


def catalog_config(name: str) -> dict:
    return _catalog()[name]["config"]


def model_spec(model: str | Path | dict, *, name: str | None = None, models_dir: str | Path | None = None,
               allow_paths: bool = True) -> ModelSpec:
    """Shapes of ``model``: a catalog name (``"llama-2-7b"``), a config dict, the text of a config.json
    (starting with ``{``), or a config.json path or its folder.

    Paths are read only when ``allow_paths`` (the Python API and CLI); over the web they are read only
    under ``models_dir``, the folder the operator allowed, so a visitor cannot probe the host's files."""
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
        elif text.startswith("{"):
            try:
                config = json.loads(text)
            except json.JSONDecodeError as e:
                raise PlannerError("model", f"the pasted config.json is not valid JSON ({e})") from e
            if not isinstance(config, dict):
                raise PlannerError("model", "the pasted config.json must be a JSON object")
            label = name or config.get("_name_or_path") or config.get("model_type", "custom")
        else:
            config, label, source = _read_config_path(text, catalog, name, models_dir, allow_paths)
    else:
        raise PlannerError("model", f"expected a name, a path or a config dict, got {type(model).__name__}")
    with _transformers_quiet():
        return _spec_from_config(config, label, source)


@contextlib.contextmanager
def _transformers_quiet():
    """transformers' warnings about a published config (Llama-4's equal rope frequency factors, say) are about
    training code the planner never runs; a plan's own warnings say what matters to it."""
    from transformers.utils import logging

    level = logging.get_verbosity()
    logging.set_verbosity_error()
    try:
        yield
    finally:
        logging.set_verbosity(level)


def _read_config_path(text: str, catalog: dict, name: str | None, models_dir, allow_paths: bool):
    close = difflib.get_close_matches(text.lower(), catalog, n=3, cutoff=0.4)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    if not allow_paths and models_dir is None:
        raise PlannerError("model", f"{text!r} is not a catalog model.{hint} Paste the model's config.json "
                                    f"instead, or choose from the catalog: {', '.join(catalog)}.")
    path = Path(text).expanduser()
    if models_dir is not None and not allow_paths:
        root = Path(models_dir).resolve()
        path = (root / text).resolve()
        if root != path and root not in path.parents:
            raise PlannerError("model", f"{text!r} is outside the models folder this server allows")
    if path.is_dir():
        path = path / "config.json"
    if not path.is_file() or path.name != "config.json" and path.suffix != ".json":
        raise PlannerError("model", f"{text!r} is neither a catalog model nor a config.json.{hint} "
                                    f"Catalog: {', '.join(catalog)}.")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise PlannerError("model", f"{path.name} is not valid JSON ({e})") from e
    if not isinstance(config, dict):
        raise PlannerError("model", f"{path.name} must hold a JSON object, not {type(config).__name__}")
    return config, name or path.parent.name, str(path)


def _parse_config(config: dict):
    from transformers import AutoConfig

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
    return getattr(hf, "text_config", None) or hf


def _recurrent_layer(hf, model_type: str, hidden: int) -> RecurrentLayer:
    """The state vLLM keeps for one recurrent layer of this family: each rule is the family's
    get_mamba_state_shape_from_config in vllm/model_executor/models/<family>.py (vLLM 0.25.1)."""
    g = lambda name, default=None: getattr(hf, name, default)  # noqa: E731
    if model_type in ("granitemoehybrid", "bamba", "falcon_h1"):
        channels = g("mamba_d_ssm") or int(g("mamba_expand", 2) * hidden)  # falcon_h1.py prefers mamba_d_ssm
        return RecurrentLayer("mamba2", channels, g("mamba_d_conv"), g("mamba_n_heads"), g("mamba_d_head"),
                              g("mamba_d_state"), g("mamba_n_groups"))
    if model_type == "nemotron_h":  # NemotronHForCausalLMConfig: SSM state in float32 unless the config says otherwise
        return RecurrentLayer("mamba2", g("mamba_num_heads") * g("mamba_head_dim"), g("conv_kernel"), g("mamba_num_heads"),
                              g("mamba_head_dim"), g("ssm_state_size"), g("n_groups"),
                              ssm_float32=str(g("mamba_ssm_cache_dtype") or "float32") == "float32")
    if model_type == "mamba2":
        return RecurrentLayer("mamba2", g("expand") * hidden, g("conv_kernel"), g("num_heads"), g("head_dim"),
                              g("state_size"), g("n_groups"))
    if model_type == "jamba":
        return RecurrentLayer("mamba1", g("mamba_expand") * hidden, g("mamba_d_conv"), state_size=g("mamba_d_state"))
    if model_type in ("mamba", "falcon_mamba"):
        return RecurrentLayer("mamba1", g("intermediate_size"), g("conv_kernel"), state_size=g("state_size"))
    if model_type in ("qwen3_next", "qwen3_5", "qwen3_5_text", "qwen3_5_moe", "qwen3_5_moe_text"):
        return RecurrentLayer("gdn", g("linear_num_key_heads"), g("linear_conv_kernel_dim"), g("linear_num_value_heads"),
                              g("linear_value_head_dim"), g("linear_key_head_dim"))
    if model_type in ("lfm2", "lfm2_moe"):
        return RecurrentLayer("short_conv", g("conv_dim") or hidden, g("conv_L_cache"))
    raise PlannerError("model", f"{model_type!r} has recurrent (Mamba / linear-attention) layers whose state the planner "
                                "does not know how to size; it refuses rather than guess. docs/planner.md lists the "
                                "hybrid families it sizes (Granite-4.0-H, Falcon-H1, Nemotron-H, Jamba, Qwen3-Next, LFM2).")


def _attention_layers(hf, num_layers: int, kv_heads: int, head_dim: int,
                      model_type: str = "", hidden: int = 0) -> tuple[tuple[AttentionLayer, ...], tuple[RecurrentLayer, ...]]:
    """Each layer's KV-cache spec, as vLLM builds it from the same config: the attention layers and, for
    hybrid models, the recurrent layers (one state per sequence each)."""
    kv_lora_rank = getattr(hf, "kv_lora_rank", None)
    if kv_lora_rank:
        latent = kv_lora_rank + (getattr(hf, "qk_rope_head_dim", 0) or 0)
        return tuple(AttentionLayer("mla", 1, latent) for _ in range(num_layers)), ()
    window = getattr(hf, "sliding_window", None)
    if getattr(hf, "use_sliding_window", True) is False:
        window = None
    types = list(getattr(hf, "layer_types", None) or [])
    unsupported = sorted({t for t in types if t in UNSUPPORTED_LAYER_TYPES})
    if unsupported:
        raise PlannerError("model", f"layers of type {', '.join(unsupported)} are not sized by the planner yet; it "
                                    "refuses rather than guess. docs/planner.md lists what is covered.")
    if not types:
        types = ["sliding_attention" if window else "full_attention"] * num_layers
    layers, states = [], []
    state = None  # every recurrent layer of a model keeps the same state
    for kind in types[:num_layers]:
        if kind in RECURRENT_LAYER_TYPES:
            state = state or _recurrent_layer(hf, model_type, hidden)
            states.append(state)
            if kind != "hybrid":
                continue
        if kind in NO_CACHE_LAYER_TYPES:
            continue
        if kind == "sliding_attention" and window:
            layers.append(AttentionLayer("sliding", kv_heads, head_dim, int(window)))
        else:  # full attention, and chunked local attention (CHUNKED_ATTENTION_NOTE)
            layers.append(AttentionLayer("full", kv_heads, head_dim))
    return tuple(layers), tuple(states)


def _formula_census(hidden, inter, layers, heads, kv_heads, head_dim, vocab, tied, experts) -> ParamCensus:
    """The fallback when transformers does not know the architecture: a Llama-shaped layer."""
    q, kv = heads * head_dim, kv_heads * head_dim
    attention = hidden * (q + 2 * kv) + q * hidden
    mlp = 3 * hidden * inter
    return ParamCensus(
        embedding=vocab * hidden, lm_head=0 if tied else vocab * hidden,
        linear_split=layers * (attention + (0 if experts else mlp)), linear_replicated=0,
        experts=layers * experts * mlp, sixteen_bit_split=0,
        sixteen_bit_replicated=layers * (2 * hidden + (hidden * experts)) + hidden,
        largest_expert_layer=experts * mlp, source="hand formula (architecture unknown to transformers)")


def _spec_from_config(config: dict, label: str, source: str) -> ModelSpec:
    hf = _parse_config(config)
    # vLLM reads the checkpoint's quantization first (ModelConfig._verify_quantization): a malformed or unknown
    # one is refused here, before any shape is sized
    quant = parse_quantization_config(config, str(config.get("model_type") or ""))

    def need(attr: str) -> int:
        value = getattr(hf, attr, None)
        if not isinstance(value, int) or value <= 0:
            raise PlannerError("model", f"config.json field {attr!r} must be a positive integer, got {value!r}")
        return value

    model_type = str(getattr(hf, "model_type", None) or config.get("model_type"))
    attention_free = model_type in ATTENTION_FREE_MODEL_TYPES
    hidden, num_layers = need("hidden_size"), need("num_hidden_layers")
    # a pure state-space model has no attention heads: its whole cache is the per-sequence Mamba state
    heads = 0 if attention_free else need("num_attention_heads")
    kv_heads = 0 if attention_free else getattr(hf, "num_key_value_heads", None) or heads
    head_dim = 0 if attention_free else getattr(hf, "head_dim", None) or hidden // heads
    if heads and heads % kv_heads:
        raise PlannerError("model", f"num_attention_heads ({heads}) is not a multiple of num_key_value_heads ({kv_heads})")
    experts = int(getattr(hf, "num_local_experts", 0) or getattr(hf, "num_experts", 0)
                  or getattr(hf, "n_routed_experts", 0) or 0)
    expert_width = getattr(hf, "moe_intermediate_size", None) if experts else None
    inter = expert_width or need("intermediate_size")
    tied = bool(getattr(hf, "tie_word_embeddings", False))
    vocab = need("vocab_size")
    notes = []
    max_len = getattr(hf, "max_position_embeddings", None)
    if attention_free and max_len is None:
        max_len = DEFAULT_MAX_LEN
        notes.append(f"attention-free (Mamba): no attention KV cache, one recurrent state per sequence whatever its "
                     f"length; config.json names no maximum length, so vLLM assumes {DEFAULT_MAX_LEN:,} unless "
                     "max_model_len is given")
    chunk = getattr(hf, "attention_chunk_size", None)
    if chunk and "chunked_attention" in (getattr(hf, "layer_types", None) or []):
        notes.append(CHUNKED_ATTENTION_NOTE.format(chunk=chunk))
    try:
        census = census_from_config(config)
    except Exception as e:  # noqa: BLE001 - any failure to build the module tree means: use the formula, and say so
        census = _formula_census(hidden, inter, num_layers, heads, kv_heads, head_dim, vocab, tied, experts)
        notes.append(f"transformers could not build this architecture ({type(e).__name__}); sizes use a "
                     "Llama-shaped hand formula and may be off")
    # nested (Gemma-3: text_config beside vision_config) or flat (Qwen2-VL: the text fields at the top level)
    multimodal = (getattr(hf, "vision_config", None) is not None
                  or any(key in config for key in ("text_config", "vision_config")))
    dtype = str(config.get("torch_dtype") or config.get("dtype") or "bfloat16").replace("torch.", "")
    rotary = getattr(hf, "qk_rope_head_dim", None) or head_dim
    kv_b_proj = 0
    if getattr(hf, "kv_lora_rank", None):
        kv_b_proj = num_layers * hf.kv_lora_rank * heads * ((getattr(hf, "qk_nope_head_dim", 0) or 0)
                                                            + (getattr(hf, "v_head_dim", 0) or 0))
    if getattr(hf, "position_embedding_type", None) == "nope":
        rotary = 0  # Granite-4.0-H: no rotary embedding, so no cos/sin cache (granitemoehybrid.py)
    layers, state_layers = _attention_layers(hf, num_layers, kv_heads, head_dim, model_type, hidden)
    return ModelSpec(
        name=label,
        architecture=(config.get("architectures") or [type(hf).__name__.replace("Config", "ForCausalLM")])[0],
        hidden_size=hidden, intermediate_size=inter, num_layers=num_layers, num_heads=heads,
        num_kv_heads=kv_heads, head_dim=head_dim, vocab_size=vocab,
        max_position_embeddings=max_len if attention_free else need("max_position_embeddings"), params=census,
        layers=layers, state_layers=state_layers, kv_b_proj_params=kv_b_proj,
        torch_dtype=dtype if dtype in DTYPE_BYTES else "bfloat16", tie_word_embeddings=tied,
        num_experts=experts, experts_per_token=int(getattr(hf, "num_experts_per_tok", 0) or 0) if experts else 0,
        rotary_dim=rotary, structure_source=census.source, source=source, notes=tuple(notes), quant=quant,
        is_multimodal=multimodal,
    )
