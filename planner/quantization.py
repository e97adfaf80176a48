"""Pre-quantized checkpoints: what config.json's ``quantization_config`` says, and the bytes vLLM 0.25.1 keeps for it.

vLLM reads the scheme before anything else (``ModelConfig._verify_quantization`` in vllm/config/model.py): the
method named by ``quant_method``, overridden by a compatible kernel family (``override_quantization_method``:
awq -> auto_awq, gptq -> auto_gptq, mxfp4 on gpt-oss -> gpt_oss_mxfp4, modelopt FP8 -> modelopt). Each method's
``get_quant_method`` decides which layers it quantizes and its ``create_weights`` allocates every parameter and
scale; the kernel it picks for the GPU then repacks them (``process_weights_after_loading``). This module counts
those tensors per Linear (and per routed-expert stack), with the rules of each file named where they are used.
Nothing here is fitted.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from planner.errors import PlannerError

KNOWN_METHODS = ("fp8", "compressed-tensors", "modelopt", "awq", "gptq", "mxfp4")
# --quantization values vLLM accepts for a checkpoint of each method (override_quantization_method in auto_awq.py,
# auto_gptq.py; modelopt.py and mxfp4.py override whatever was asked; fp8 and compressed-tensors must match).
COMPATIBLE = {
    "fp8": ("fp8",),
    "compressed-tensors": ("compressed-tensors",),
    "awq": ("awq", "awq_marlin", "auto_awq", "marlin"),
    "gptq": ("gptq", "gptq_marlin", "auto_gptq", "marlin"),
    "modelopt": None,  # ModelOptFp8Config.override_quantization_method returns "modelopt" for any request
    "mxfp4": None,  # GptOssMxfp4Config: "gpt_oss_mxfp4" for any request on a gpt_oss model
}
CHECKPOINT_QUANTIZATIONS = tuple(sorted({q for v in COMPATIBLE.values() if v for q in v} | {"modelopt", "mxfp4",
                                                                                            "gpt_oss_mxfp4"}))
VLLM_NAME = {"awq": "auto_awq", "gptq": "auto_gptq", "mxfp4": "gpt_oss_mxfp4"}
ROW_PARALLEL = ("o_proj", "down_proj", "out_proj", "dense", "c_proj", "fc2", "w2")
FP8_BLOCK_DEFAULT = None


@dataclass(frozen=True)
class QuantScheme:
    """One checkpoint's quantization, as vLLM reads it from config.json.

    weight: "fp8", "int8", "int4", "uint4" (AWQ, with zero points) or "mxfp4"; granularity of the weight
    scales: "tensor", "channel", "block" (``block`` = (rows, cols)) or "group" (``group_size`` inputs);
    activations: "dynamic" / "static" FP8 or INT8 activation scales, or None (weight-only)."""

    method: str  # quant_method as config.json writes it
    weight: str
    granularity: str
    block: tuple[int, int] | None = None
    group_size: int | None = None
    zero_points: bool = False
    activations: str | None = None
    ignore: tuple[str, ...] = ()  # ignore / ignored_layers / modules_to_not_convert / exclude_modules
    experts_only: bool = False  # MXFP4: vLLM quantizes the routed experts only (Mxfp4Config.get_quant_method)
    kv_cache_fp8: bool = False  # kv_cache_scheme / kv_cache_quant_algo: an FP8 KV cache under kv_cache_dtype=auto
    lm_head_quantized: bool = False  # ModelOpt quantizes ParallelLMHead too unless it is excluded
    act_order: bool = False  # GPTQ desc_act: a g_idx permutation per Linear
    # GPTQ modules_in_block_to_quantize: only a Linear whose name holds one of these is quantized (vLLM's
    # is_layer_gptq_quantized). Empty: every Linear, as vLLM finds it in a real checkpoint's safetensors.
    only: tuple[str, ...] = ()

    @property
    def vllm_method(self) -> str:
        """The name vLLM runs it under (what it logs and what --quantization may say)."""
        return VLLM_NAME.get(self.method, self.method)

    @property
    def is_fp8(self) -> bool:
        return self.weight == "fp8"

    def scales_text(self) -> str:
        if self.granularity == "block":
            return f"{self.block[0]}x{self.block[1]} block scales"
        if self.granularity == "group":
            return f"group-{self.group_size} scales" + (", zero points" if self.zero_points else "")
        return f"{self.granularity} scales"

    def label(self) -> str:
        """e.g. 'compressed-tensors FP8 (channel scales, from config.json)'."""
        kind = {"fp8": "FP8", "int8": "INT8", "int4": "INT4", "uint4": "INT4", "mxfp4": "MXFP4"}[self.weight]
        what = f"{self.scales_text()}, " + ("experts only, " if self.experts_only else "")
        title = {"fp8": "", "mxfp4": "", "modelopt": "ModelOpt ", "awq": "AWQ ", "gptq": "GPTQ "}.get(self.method,
                                                                                                   f"{self.method} ")
        return f"{title}{kind} ({what}from config.json)"

    def quantizes(self, name: str) -> bool:
        """Whether vLLM builds this decoder Linear (HF name, layer index as '*') with the quantized method."""
        if self.experts_only:
            return False
        if self.only and not any(part in name for part in self.only):
            return False
        return not any(_matches(pattern, name) for pattern in self.ignore)


def _matches(pattern: str, name: str) -> bool:
    """is_layer_skipped / compressed-tensors should_ignore_layer: 're:' regex, else a module name or its suffix
    (fnmatch-style '*' for a layer index, as gpt-oss writes 'model.layers.*.self_attn')."""
    if pattern.startswith("re:"):
        return re.match(pattern[3:], name.replace("*", "0")) is not None
    glob = re.escape(pattern).replace(r"\*", r"[^.]+")
    concrete = name.replace("*", "0")
    return re.fullmatch(glob, concrete) is not None or re.search(rf"(^|\.){glob}(\.|$)", concrete) is not None


# ------------------------------------------------------------------------------------------- parsing
def parse_quantization_config(config: dict, model_type: str = "") -> QuantScheme | None:
    """The scheme a config.json's ``quantization_config`` names; None when it has none. Raises PlannerError
    naming the field for a malformed config, and naming quant_method for a method the planner does not size
    (it never sizes a quantized checkpoint as 16-bit)."""
    qc = config.get("quantization_config")
    if qc is None:
        return None
    if not isinstance(qc, dict):
        raise PlannerError("quantization_config", f"must be a JSON object, got {type(qc).__name__}")
    method = qc.get("quant_method")
    if not isinstance(method, str) or not method:
        raise PlannerError("quantization_config.quant_method", f"is missing or not a string ({method!r}); "
                                                               f"methods the planner sizes: {', '.join(KNOWN_METHODS)}")
    method = method.lower()
    if method not in KNOWN_METHODS:
        raise PlannerError("quantization_config.quant_method",
                           f"{method!r} is not a method the planner sizes, and it will not size a quantized checkpoint "
                           f"as 16-bit. Methods it sizes: {', '.join(KNOWN_METHODS)}")
    return {"fp8": _fp8, "compressed-tensors": _compressed_tensors, "modelopt": _modelopt, "awq": _awq,
            "gptq": _gptq, "mxfp4": _mxfp4}[method](qc, model_type)


def _names(qc: dict, *keys: str) -> tuple[str, ...]:
    for key in keys:
        value = qc.get(key)
        if value is None:
            continue
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise PlannerError(f"quantization_config.{key}", f"must be a list of module names, got {value!r}")
        if value:
            return tuple(value)
    return ()


def _int(qc: dict, key: str, allowed: tuple | None = None, prefix: str = "quantization_config") -> int:
    value = qc.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or (allowed and value not in allowed):
        want = f"one of {', '.join(map(str, allowed))}" if allowed else "a whole number"
        raise PlannerError(f"{prefix}.{key}", f"{value!r} must be {want}")
    return value


def _fp8(qc: dict, model_type: str) -> QuantScheme:
    """Fp8Config.from_config (fp8.py): activation_scheme is required; weight_block_size optional."""
    scheme = qc.get("activation_scheme")
    if scheme not in ("static", "dynamic"):
        raise PlannerError("quantization_config.activation_scheme", f"{scheme!r} must be 'static' or 'dynamic'")
    block = qc.get("weight_block_size")
    if block is not None:
        if (not isinstance(block, list) or len(block) != 2
                or not all(isinstance(b, int) and not isinstance(b, bool) and b > 0 for b in block)):
            raise PlannerError("quantization_config.weight_block_size", f"{block!r} must be two positive whole numbers")
        if scheme == "static":  # Fp8LinearMethod asserts dynamic activations with block scales
            raise PlannerError("quantization_config.activation_scheme",
                               "block-quantized FP8 (weight_block_size) needs activation_scheme 'dynamic' in vLLM")
    return QuantScheme("fp8", "fp8", "block" if block else "tensor", block=tuple(block) if block else None,
                       activations=scheme, ignore=_names(qc, "ignored_layers", "modules_to_not_convert"))


def _compressed_tensors(qc: dict, model_type: str) -> QuantScheme:
    """CompressedTensorsConfig._get_scheme_from_parts (compressed_tensors.py): the weights' and input
    activations' QuantizationArgs of the group that targets Linear."""
    groups = qc.get("config_groups")
    if not isinstance(groups, dict) or not groups:
        raise PlannerError("quantization_config.config_groups", "must be a non-empty object of quantization groups")
    linear = [(k, g) for k, g in groups.items() if isinstance(g, dict) and "Linear" in (g.get("targets") or [])]
    if len(linear) != 1 or len(groups) != 1:
        raise PlannerError("quantization_config.config_groups",
                           "the planner sizes one group that targets 'Linear'; this checkpoint has "
                           f"{len(groups)} group(s), {len(linear)} targeting Linear")
    key, group = linear[0]
    where = f"quantization_config.config_groups.{key}"
    w = group.get("weights")
    if not isinstance(w, dict):
        raise PlannerError(f"{where}.weights", "must be an object (num_bits, type, strategy)")
    bits = _int(w, "num_bits", (4, 8), prefix=f"{where}.weights")
    kind, strategy = w.get("type"), w.get("strategy")
    if kind not in ("int", "float"):
        raise PlannerError(f"{where}.weights.type", f"{kind!r} must be 'int' or 'float'")
    if strategy not in ("tensor", "channel", "group", "block"):
        raise PlannerError(f"{where}.weights.strategy", f"{strategy!r} must be tensor, channel, group or block")
    a = group.get("input_activations")
    if a is not None and not isinstance(a, dict):
        raise PlannerError(f"{where}.input_activations", "must be an object or null")
    activations = None if a is None else ("dynamic" if a.get("dynamic") else "static")
    block = group_size = None
    if strategy == "block":
        block = w.get("block_structure")
        if not isinstance(block, list) or len(block) != 2 or not all(isinstance(b, int) and b > 0 for b in block):
            raise PlannerError(f"{where}.weights.block_structure", f"{block!r} must be two positive whole numbers")
        block = tuple(block)
    if strategy == "group":
        group_size = _int(w, "group_size", prefix=f"{where}.weights")
    fmt = qc.get("format")
    if kind == "float" and bits == 8:
        weight = "fp8"
    elif kind == "int" and bits == 8 and a is not None:
        weight = "int8"
    elif kind == "int" and a is None and fmt == "pack-quantized" and strategy in ("group", "channel"):
        weight = "int4" if bits == 4 else "int8"
    else:
        raise PlannerError(f"{where}.weights", f"{bits}-bit {kind} weights ({strategy}, format {fmt!r}, "
                                               f"{'with' if a else 'without'} activation quantization) are a "
                                               "compressed-tensors scheme the planner does not size")
    kv = qc.get("kv_cache_scheme")
    if kv is not None and not isinstance(kv, dict):
        raise PlannerError("quantization_config.kv_cache_scheme", "must be an object or null")
    return QuantScheme("compressed-tensors", weight, strategy, block=block, group_size=group_size,
                       zero_points=weight in ("int4",) and w.get("symmetric") is False,
                       activations=activations, ignore=_names(qc, "ignore"),
                       kv_cache_fp8=bool(kv) and kv.get("num_bits") == 8 and kv.get("type") == "float")


def _modelopt(qc: dict, model_type: str) -> QuantScheme:
    """ModelOptFp8Config (modelopt.py): quant_algo FP8 (per-tensor, static activations).

    ModelOptQuantConfigBase.from_config reads the excluded modules from "quantization" -> "exclude_modules" (the
    hf_quant_config.json layout) but, in config.json's flat layout, from "ignore": a flat "exclude_modules" is not
    read, so lm_head (a ParallelLMHead, which ModelOpt does quantize) is FP8 there; measured on the H200, the
    published Llama-3.1-8B-Instruct-FP8 config.json loads its lm_head in float8. kv_cache_quant_algo FP8 makes
    kv_cache_dtype 'auto' an FP8 cache (resolve_kv_cache_dtype_string in utils/torch_utils.py)."""
    nested = isinstance(qc.get("quantization"), dict)
    inner = qc["quantization"] if nested else qc
    algo = str(inner.get("quant_algo") or "").upper()
    if algo != "FP8":
        raise PlannerError("quantization_config.quant_algo", f"{algo or None!r}: the planner sizes ModelOpt 'FP8' only "
                                                             "(NVFP4 and MXFP8 need Blackwell and are not sized)")
    kv = str(inner.get("kv_cache_quant_algo") or qc.get("kv_cache_quant_algo") or "").upper()
    scheme_kv = qc.get("kv_cache_scheme")
    kv_fp8 = kv == "FP8" or isinstance(scheme_kv, dict) and scheme_kv.get("type") == "float" and scheme_kv.get("num_bits") == 8
    ignore = _names(inner, "exclude_modules") if nested else _names(qc, "ignore")
    return QuantScheme("modelopt", "fp8", "tensor", activations="static", ignore=ignore, kv_cache_fp8=kv_fp8,
                       lm_head_quantized=not any(_matches(pattern, "lm_head") for pattern in ignore))


def _awq(qc: dict, model_type: str) -> QuantScheme:
    """AutoAWQConfig.from_config (auto_awq.py): bits / w_bit, group_size / q_group_size, zero_point."""
    bits_key = "bits" if "bits" in qc else "w_bit"
    bits = _int(qc, bits_key, (4, 8))
    group = _int(qc, "group_size" if "group_size" in qc else "q_group_size")
    if not isinstance(qc.get("zero_point"), bool):
        raise PlannerError("quantization_config.zero_point", f"{qc.get('zero_point')!r} must be true or false")
    return QuantScheme("awq", "uint4" if bits == 4 else "int8", "group" if group != -1 else "channel",
                       group_size=None if group == -1 else group, zero_points=qc["zero_point"],
                       ignore=_names(qc, "modules_to_not_convert"))


def _gptq(qc: dict, model_type: str) -> QuantScheme:
    """AutoGPTQConfig.from_config (auto_gptq.py): bits, group_size, desc_act, sym, modules_in_block_to_quantize."""
    bits = _int(qc, "bits", (4, 8))
    group = _int(qc, "group_size")
    return QuantScheme("gptq", "int4" if bits == 4 else "int8", "group" if group != -1 else "channel",
                       group_size=None if group == -1 else group, zero_points=qc.get("sym") is False,
                       act_order=bool(qc.get("desc_act")), ignore=_names(qc, "modules_to_not_convert"),
                       only=_block_modules(qc))


def _block_modules(qc: dict) -> tuple[str, ...]:
    """modules_in_block_to_quantize: a list of names or of lists of names (GPTQModel writes both); vLLM
    flattens the nested form (AutoGPTQConfig.maybe_update_config)."""
    value = qc.get("modules_in_block_to_quantize")
    if value is None:
        return ()
    flat = [v for item in value for v in (item if isinstance(item, list) else [item])] if isinstance(value, list) else None
    if flat is None or not all(isinstance(v, str) and v for v in flat):
        raise PlannerError("quantization_config.modules_in_block_to_quantize",
                           f"must be a list of module names (or of lists of them), got {value!r}")
    return tuple(flat)


def _mxfp4(qc: dict, model_type: str) -> QuantScheme:
    """GptOssMxfp4Config (mxfp4.py): the routed experts in MXFP4 (e2m1 values, one e8m0 scale per 32);
    every Linear stays 16-bit (Mxfp4Config.get_quant_method returns UnquantizedLinearMethod)."""
    if model_type and model_type != "gpt_oss":
        raise PlannerError("quantization_config.quant_method", f"'mxfp4' is sized for gpt-oss checkpoints only "
                                                               f"(vLLM's GptOssMxfp4Config); this is {model_type!r}")
    return QuantScheme("mxfp4", "mxfp4", "group", group_size=32, experts_only=True,
                       ignore=_names(qc, "modules_to_not_convert"))


# ------------------------------------------------------------------------------------------- engine argument
def check_requested(scheme: QuantScheme | None, requested: str | None) -> None:
    """vLLM's rule for --quantization beside a checkpoint's own (ModelConfig._verify_quantization), said before
    anything loads."""
    if scheme is None:
        if requested not in (None, "fp8"):
            raise PlannerError("quantization", f"{requested!r} needs a checkpoint quantized with it (config.json has "
                                               "no quantization_config); use None (16-bit) or 'fp8' (online FP8)")
        return
    allowed = COMPATIBLE[scheme.method]
    if requested is None or allowed is None or requested in allowed or requested == scheme.vllm_method:
        return
    raise PlannerError("quantization", f"vLLM refuses {requested!r}: the checkpoint's config.json names "
                                       f"quant_method={scheme.method!r} (\"Quantization method specified in the model "
                                       f"config ({scheme.method}) does not match the quantization method specified in "
                                       f"the `quantization` argument ({requested})\"). Leave quantization unset, or use "
                                       f"{' / '.join(repr(a) for a in allowed)}")


# ------------------------------------------------------------------------------------------- kernels per GPU
def kernel(scheme: QuantScheme, cc: tuple[int, int]) -> str:
    """The kernel vLLM 0.25.1 picks for this scheme on a GPU of compute capability ``cc``; raises PlannerError
    where vLLM refuses the checkpoint on that GPU."""
    if scheme.is_fp8:
        if cc >= (8, 9):  # the names vLLM logs ("Selected ... for Fp8LinearMethod"), measured on the H200
            if scheme.granularity == "block":
                return "DeepGemmFp8BlockScaledMMKernel" if cc >= (9, 0) else "CUTLASS / Triton block-FP8 GEMM"
            return "CutlassFP8ScaledMMLinearKernel"
        if scheme.method == "modelopt":  # ModelOptFp8Config.get_min_capability
            raise PlannerError("gpu", f"vLLM refuses this ModelOpt FP8 checkpoint below compute capability 8.9 "
                                      f"(\"Minimum capability: 89. Current capability: {cc[0]}{cc[1]}\")")
        return "FP8-Marlin (MarlinFP8ScaledMMLinearKernel: weight-only W8A16, no FP8 tensor cores)"
    if scheme.weight == "int8" and scheme.activations:
        return "CutlassInt8ScaledMMLinearKernel"
    if scheme.weight == "mxfp4":
        if (9, 0) <= cc < (11, 0):  # _triton_kernel_moe_supports_current_device
            return "Triton MXFP4 MoE backend (triton_kernels matmul_ogs)"
        if cc >= (8, 0):  # Mxfp4Config.get_min_capability = 80; MARLIN is the next backend that runs
            return "Marlin MXFP4 MoE backend (weight-only)"
        raise PlannerError("gpu", f"vLLM refuses MXFP4 below compute capability 8.0 (this GPU: {cc[0]}.{cc[1]})")
    # 4/8-bit weight-only: choose_mp_linear_kernel tries Machete (Hopper only) before Marlin
    if cc == (9, 0) and not scheme.act_order:
        return "MacheteLinearKernel"
    return "MarlinLinearKernel"


# ------------------------------------------------------------------------------------------- bytes
def linear_bytes(scheme: QuantScheme, *, out_features: int, in_features: int, dtype_bytes: int,
                 cc: tuple[int, int]) -> int:
    """Bytes one quantized Linear (on one rank: the partition's shape) keeps after process_weights_after_loading."""
    n, k = out_features, in_features
    kern = kernel(scheme, cc)
    if scheme.is_fp8 or scheme.weight == "int8" and scheme.activations:
        weight = n * k  # float8_e4m3fn / int8 (create_fp8_weight_parameter, CompressedTensorsW8A8Int8)
        if scheme.granularity == "block":  # BlockQuantScaleParameter, float32
            bn, bk = scheme.block
            scales = math.ceil(n / bn) * math.ceil(k / bk) * 4
        elif scheme.granularity == "channel":  # ChannelQuantScaleParameter (n, 1) float32
            scales = n * 4
        else:  # per-tensor: requantized to one float32 scale (process_fp8_weight_tensor_strategy)
            scales = 4
        if "Marlin" in kern and scheme.granularity in ("tensor", "channel"):
            scales = n * dtype_bytes  # prepare_fp8_layer_for_marlin: per-channel scales in the activation dtype
        elif "Marlin" in kern:
            scales = math.ceil(k / scheme.block[1]) * n * dtype_bytes  # block scales repeated into (k / 128, n) groups
        static = 4 if scheme.activations == "static" and "Marlin" not in kern else 0  # input_scale, max over shards
        return weight + scales + static
    bits = 4 if scheme.weight in ("int4", "uint4") else 8
    groups = math.ceil(k / scheme.group_size) if scheme.granularity == "group" else 1
    weight = n * k * bits // 8  # int32-packed (qweight / weight_packed)
    scales = groups * n * dtype_bytes  # GroupQuantScaleParameter / ChannelQuantScaleParameter in params_dtype
    if scheme.method == "awq":
        # qzeros (groups, n / pack) int32; Machete pre-applies the scales to them: (groups, n) in the activation
        # dtype (MacheteLinearKernel.process_weights_after_loading, transform_w_zp)
        zeros = groups * n * (dtype_bytes if kern.startswith("Machete") else bits / 8) if scheme.zero_points else 0
        return int(weight + scales + zeros)
    if scheme.method == "gptq":
        if kern.startswith("Marlin"):
            return weight + scales  # Marlin replaces g_idx and the symmetric qzeros by empty tensors
        zeros = groups * n * bits // 8  # qzeros kept (int32-packed) though a symmetric kernel does not read it
        return weight + scales + zeros + k * 4  # g_idx (int32, one per input)
    # compressed-tensors pack-quantized (CompressedTensorsWNA16): weight_packed, weight_scale, weight_shape
    zeros = groups * n * bits // 8 if scheme.zero_points else 0
    return weight + scales + zeros + 2 * 8


def expert_bytes(scheme: QuantScheme, *, experts: int, hidden: int, width: int, bias_elements: int,
                 dtype_bytes: int, cc: tuple[int, int]) -> int:
    """One layer's routed experts on one rank (``width``: the expert intermediate size on this rank):
    w13 (gate and up, 2 x width rows) and w2 (hidden rows), with their scales."""
    e, h, i = experts, hidden, width
    kern = kernel(scheme, cc)
    if scheme.weight == "mxfp4":
        if kern.startswith("Marlin"):  # mxfp4_round_up_hidden_size_and_intermediate_size: MARLIN
            h, i = _round_up(h, 256), _round_up(i, 128)
        else:  # TRITON: intermediate to 64
            i = _round_up(i, 64)
        weights = e * 2 * i * h // 2 + e * h * i // 2  # uint8, two e2m1 values per byte
        w13_scale_rows, w2_scale_rows = 2 * i, h
        if kern.startswith("Triton"):
            # HopperMXScaleLayout.swizzle_data pads the scale rows (the N dimension) to 2 x num_warps x 2 x 8 = 256
            w13_scale_rows, w2_scale_rows = _round_up(2 * i, 256), _round_up(h, 256)
        scales = e * w13_scale_rows * (h // 32) + e * w2_scale_rows * (i // 32)  # e8m0, one per 32 values
        # w13_bias / w2_bias: bfloat16 as created; the Triton backend converts them to float32
        # (convert_gpt_oss_weight_to_mxfp4_moe_kernel_format, TRITON_BACKENDS)
        bias = e * (2 * i + h) * (4 if kern.startswith("Triton") else 2) if bias_elements else 0
        return weights + scales + bias
    if scheme.is_fp8:
        weights = e * 3 * h * i
        if scheme.granularity == "block":
            bn, bk = scheme.block
            scales = e * (math.ceil(2 * i / bn) * math.ceil(h / bk) + math.ceil(h / bn) * math.ceil(i / bk)) * 4
        elif scheme.granularity == "channel":
            scales = e * (2 * i + h) * 4
        else:
            scales = e * 2 * 4 + (e * 2 * 4 if scheme.activations == "static" else 0)
        return weights + scales + bias_elements * dtype_bytes
    raise PlannerError("quantization_config", f"{scheme.label()} on routed experts is not sized by the planner")


def _round_up(x: int, m: int) -> int:
    return (x + m - 1) // m * m


def split_shape(name: str, in_features: int, out_features: int, tp: int, replicated: bool) -> tuple[int, int]:
    """(out, in) of one rank's partition: column-parallel layers split their outputs, row-parallel their inputs."""
    if replicated or tp == 1:
        return out_features, in_features
    if name.rsplit(".", 1)[-1] in ROW_PARALLEL:
        return out_features, in_features // tp
    return out_features // tp, in_features


# ------------------------------------------------------------------------------------------- the load, in order
MERGED = {"q_proj": "qkv_proj", "k_proj": "qkv_proj", "v_proj": "qkv_proj", "gate_proj": "gate_up_proj",
          "up_proj": "gate_up_proj"}  # vLLM's packed_modules_mapping: one tensor for the merged shards


def merged_linears(linears, tp: int, replicated_names=()) -> list[tuple[str, int, int, int, bool]]:
    """The census' HF Linears as vLLM builds them: (name, out on this rank, in on this rank, layers, quantized by
    name), q/k/v and gate/up merged into one tensor each, in build order."""
    out: dict[str, list] = {}
    for name, in_features, out_features, count in linears:
        head, _, leaf = name.rpartition(".")
        key = f"{head}.{MERGED.get(leaf, leaf)}"
        o, i = split_shape(name, in_features, out_features, tp, leaf in replicated_names)
        if key in out:
            out[key][1] += o
        else:
            out[key] = [key, o, i, count, name]
    return [tuple(v) for v in out.values()]


def linear_tensors(scheme: QuantScheme | None, n: int, k: int, dtype_bytes: int, cc) -> list[int]:
    """The tensors one (merged) Linear's create_weights allocates, in order, in bytes."""
    if scheme is None:
        return [n * k * dtype_bytes]
    if scheme.is_fp8 or scheme.weight == "int8" and scheme.activations:
        total = linear_bytes(scheme, out_features=n, in_features=k, dtype_bytes=dtype_bytes, cc=cc)
        return [n * k, total - n * k]  # the weight, then its scales
    groups = math.ceil(k / scheme.group_size) if scheme.granularity == "group" else 1
    packed = n * k // 2 if scheme.weight in ("int4", "uint4") else n * k
    if scheme.method == "awq":
        return [packed, groups * n // 2, groups * n * dtype_bytes]  # qweight, qzeros, scales
    if scheme.method == "gptq":
        return [packed, k * 4, groups * n // 2, groups * n * dtype_bytes]  # qweight, g_idx, qzeros, scales
    return [packed, groups * n * dtype_bytes, 16]  # weight_packed, weight_scale, weight_shape


def linear_repack(scheme: QuantScheme, n: int, k: int, dtype_bytes: int, cc, first: int) -> list[tuple[str, str, int]]:
    """process_weights_after_loading of one 4-bit Linear whose tensors were built as param:first, first+1, ...:
    allocator events (MacheteLinearKernel / MarlinLinearKernel, and AWQ's conversion to the GPTQ layout first)."""
    if scheme.is_fp8 or scheme.weight == "int8" and scheme.activations or scheme.weight == "mxfp4":
        return []
    w = n * k // 2 if scheme.weight in ("int4", "uint4") else n * k
    groups = math.ceil(k / scheme.group_size) if scheme.granularity == "group" else 1
    qweight = f"param:{first}"
    events: list[tuple[str, str, int]] = []
    if scheme.method == "awq":  # _convert_awq_to_standard_format: unpack to int32 per value, reorder, repack
        unpacked = w * 8
        events += [("alloc", "tmp:shift", unpacked), ("alloc", "tmp:mask", unpacked), ("free", "tmp:shift", 0),
                   ("alloc", "tmp:order", unpacked), ("free", "tmp:mask", 0), ("alloc", "tmp:shifted", unpacked),
                   ("alloc", "awq:qweight", w), ("free", "tmp:order", 0), ("free", "tmp:shifted", 0),
                   ("free", qweight, 0)]
        qweight = "awq:qweight"
    if kernel(scheme, cc).startswith("Machete"):
        # transform_w_q (kernels/linear/mixed_precision/machete.py): machete_prepack_B(x.data.t().contiguous().t())
        # copies the (k / 8, n) qweight to a column-major temporary and prepacks it into a new tensor of its size
        # (empty_like); the temporary dies when the call returns, the old qweight when x.data is replaced.
        # transform_w_s: the scales are already contiguous (no copy); g_idx and qzeros are left as built.
        events += [("alloc", "tmp:contiguous", w), ("alloc", "machete:qweight", w), ("free", "tmp:contiguous", 0),
                   ("free", qweight, 0)]
        if scheme.method == "awq" and scheme.zero_points:  # transform_w_zp: (groups, n) in the activation dtype
            events += [("alloc", "tmp:unpacked_zp", groups * n * 4), ("alloc", "tmp:zp16", groups * n * dtype_bytes),
                       ("alloc", "machete:zp", groups * n * dtype_bytes), ("free", f"param:{first + 1}", 0)]
    else:  # gptq_marlin_repack: a new tensor of the same size
        events += [("alloc", "marlin:qweight", w), ("free", qweight, 0)]
        if scheme.method == "gptq":  # g_idx and the symmetric qzeros become empty tensors
            events += [("free", f"param:{first + 1}", 0), ("free", f"param:{first + 2}", 0)]
    return events


def expert_tensors(scheme: QuantScheme, *, experts: int, hidden: int, width: int, has_bias: bool,
                   dtype_bytes: int, cc) -> list[int]:
    """What GptOssMxfp4MoEMethod / Fp8MoEMethod.create_weights allocate for one layer's experts, in order."""
    e, h, i = experts, hidden, width
    if scheme.weight == "mxfp4":
        if kernel(scheme, cc).startswith("Marlin"):
            h, i = _round_up(h, 256), _round_up(i, 128)
        else:
            i = _round_up(i, 64)
        out = [e * 2 * i * h // 2, e * 2 * i * h // 32, e * h * i // 2, e * h * i // 32]
        return out + ([e * 2 * i * dtype_bytes, e * h * dtype_bytes] if has_bias else [])
    total = expert_bytes(scheme, experts=e, hidden=h, width=i, bias_elements=0, dtype_bytes=dtype_bytes, cc=cc)
    return [e * 2 * i * h, e * h * i, total - 3 * e * h * i]


def expert_repack(scheme: QuantScheme, *, experts: int, hidden: int, width: int, has_bias: bool, cc,
                  first: int) -> list[tuple[str, str, int]]:
    """The Triton MXFP4 backend's swizzle of one layer (_swizzle_mxfp4): per weight a padded copy and a permuted
    copy before the packed result, the old weight and scale freed; the swizzled scales (rows padded to 256) and
    float32 biases replace theirs."""
    if scheme.weight != "mxfp4" or not kernel(scheme, cc).startswith("Triton"):
        return []
    e, h, i = experts, hidden, _round_up(width, 64)
    events: list[tuple[str, str, int]] = []
    for n, index, scale_rows, k in ((2 * i, first, _round_up(2 * i, 256), h), (h, first + 2, _round_up(h, 256), i)):
        w = e * n * k // 2
        events += [("alloc", f"tmp:pad{index}", w), ("alloc", f"tmp:perm{index}", w), ("free", f"tmp:pad{index}", 0),
                   ("alloc", f"swizzled:{index}", w), ("free", f"tmp:perm{index}", 0), ("free", f"param:{index}", 0),
                   ("alloc", f"swizzled_scale:{index}", e * scale_rows * (k // 32)), ("free", f"param:{index + 1}", 0)]
    if has_bias:
        events += [("alloc", "bias13", e * 2 * i * 4), ("free", f"param:{first + 4}", 0),
                   ("alloc", "bias2", e * h * 4), ("free", f"param:{first + 5}", 0)]
    return events
