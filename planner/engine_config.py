"""One engine configuration: what decides what vLLM does and how much memory it takes.

Everything that starts, plans or prints an engine reads an ``EngineConfig``: ``planner.plan``,
the inverse planner, the roofline, the vLLM and CPU engines, the benchmark, and ``command()``,
the one renderer of every ``vllm serve`` / ``vllm bench`` line the product prints. Field names are
vLLM's engine-argument names; ``validate()`` holds every rule about combinations, once.

    cfg = EngineConfig(model="llama-3-8b", quantization="fp8", kv_cache_dtype="fp8", dtype="bfloat16")
    cfg.command("serve")          # 'vllm serve llama-3-8b --dtype bfloat16 --quantization fp8 ...'
    EngineConfig.parse_command(cfg.command("serve")) == cfg
"""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path
from dataclasses import dataclass, fields, replace

from planner.errors import PlannerError, check_range
from planner.quantization import CHECKPOINT_QUANTIZATIONS

DTYPES = ("auto", "float16", "bfloat16", "float32")
DTYPE_ALIASES = {"half": "float16", "float": "float32"}
# None: the checkpoint's own (16-bit, or what its quantization_config names); 'fp8': online FP8 on a 16-bit
# checkpoint; the others name a pre-quantized checkpoint's method as vLLM accepts it (planner/quantization.py)
QUANTIZATIONS = (None, "fp8", *(q for q in CHECKPOINT_QUANTIZATIONS if q != "fp8"))
KV_CACHE_DTYPES = ("auto", "float16", "bfloat16", "fp8", "fp8_e4m3", "fp8_e5m2")
LOAD_FORMATS = ("auto", "dummy", "safetensors", "pt")
FP8_DTYPE_MESSAGE = (
    "vLLM has no dtype='fp8' (it rejects it). FP8 weights are quantization='fp8' "
    "(online dynamic W8A8, per-tensor weight scales = amax / 448); an FP8 KV cache is kv_cache_dtype='fp8'."
)
HOPPER_FP8_KV_MESSAGE = ("kv_cache_dtype='fp8' with dtype='float16' fails on Hopper in vLLM 0.25 (FlashAttention-3 "
                         "needs bfloat16 activations): use dtype='bfloat16'")


@dataclass(frozen=True)
class EngineConfig:
    """vLLM engine arguments, with vLLM's names. ``None`` means vLLM's own default."""

    model: str
    quantization: str | None = None
    kv_cache_dtype: str = "auto"
    dtype: str = "auto"
    gpu_memory_utilization: float = 0.9
    max_model_len: int | None = None
    tensor_parallel_size: int = 1
    max_num_seqs: int | None = None
    max_num_batched_tokens: int | None = None
    enforce_eager: bool = False
    load_format: str = "auto"
    seed: int = 0
    # a multimodal model's language model alone: vLLM builds no vision tower and profiles no encoder cache
    language_model_only: bool = False
    # vLLM's KV cache size per GPU in bytes, pinned: vLLM then ignores gpu_memory_utilization for the KV
    # cache and skips measuring it (vllm/config/cache.py, v1/worker/gpu_worker.py).
    kv_cache_memory_bytes: int | None = None
    # Which GPU(s) the engine runs on: rendered as CUDA_VISIBLE_DEVICES. None: the process's default.
    gpu_ids: tuple[int, ...] | None = None

    def __post_init__(self):
        # Normalise spellings so that equal engines compare equal whatever the input said.
        quant = None if self.quantization in (None, "", "none", "None") else str(self.quantization).lower()
        object.__setattr__(self, "quantization", quant)
        dtype = str(self.dtype).lower()
        object.__setattr__(self, "dtype", DTYPE_ALIASES.get(dtype, dtype))
        if self.gpu_ids is not None:
            object.__setattr__(self, "gpu_ids", tuple(int(g) for g in self.gpu_ids))
        self.validate()

    # ------------------------------------------------------------------ validation (the only place)
    def validate(self) -> EngineConfig:
        if not isinstance(self.model, str) or not self.model.strip():
            raise PlannerError("model", "is empty: give a catalog name, a config.json or a model folder")
        if "fp8" in self.dtype:
            raise PlannerError("dtype", f"{self.dtype!r}: {FP8_DTYPE_MESSAGE}")
        if self.dtype not in DTYPES:
            raise PlannerError("dtype", f"{self.dtype!r} is not one of {', '.join(DTYPES)}")
        if self.quantization not in QUANTIZATIONS:
            raise PlannerError("quantization", f"{self.quantization!r} is not modelled; use None (the checkpoint's own: "
                                               "16-bit, or what its quantization_config names), 'fp8' (online FP8), or "
                                               f"a checkpoint's method: {', '.join(QUANTIZATIONS[2:])}")
        if self.kv_cache_dtype not in KV_CACHE_DTYPES:
            raise PlannerError("kv_cache_dtype", f"{self.kv_cache_dtype!r} is not one of {', '.join(KV_CACHE_DTYPES)}")
        if self.load_format not in LOAD_FORMATS:
            raise PlannerError("load_format", f"{self.load_format!r} is not one of {', '.join(LOAD_FORMATS)}")
        check_range("gpu_memory_utilization", self.gpu_memory_utilization, 0, 1, low_inclusive=False)
        _whole("tensor_parallel_size", self.tensor_parallel_size, 1, 64)
        if self.max_model_len is not None:
            _whole("max_model_len", self.max_model_len, 1, 1 << 24)
        if self.max_num_seqs is not None:
            _whole("max_num_seqs", self.max_num_seqs, 1, 1 << 20)
        if self.max_num_batched_tokens is not None:
            _whole("max_num_batched_tokens", self.max_num_batched_tokens, 1, 1 << 24)
        if self.kv_cache_memory_bytes is not None:
            _whole("kv_cache_memory_bytes", self.kv_cache_memory_bytes, 1, 1 << 50)
        for name in ("enforce_eager", "language_model_only"):
            if not isinstance(getattr(self, name), bool):
                raise PlannerError(name, f"{getattr(self, name)!r} must be true or false")
        _whole("seed", self.seed, 0, 2**63 - 1)
        if self.gpu_ids is not None and len(self.gpu_ids) not in (0, self.tensor_parallel_size):
            raise PlannerError("gpu_ids", f"{len(self.gpu_ids)} GPUs given for tensor_parallel_size="
                                          f"{self.tensor_parallel_size}; give one GPU per rank")
        return self

    @property
    def fp8_kv(self) -> bool:
        return self.kv_cache_dtype.startswith("fp8")

    def for_gpu(self, *, is_hopper: bool) -> tuple[EngineConfig, tuple[str, ...]]:
        """The configuration vLLM 0.25 will accept on this GPU, and what was changed to get there.

        The one rule about FP8 KV on Hopper: with dtype 'auto' the activations become bfloat16 (said
        in a note); an explicit float16 is refused with the reason."""
        if self.fp8_kv and is_hopper:
            if self.dtype == "float16":
                raise PlannerError("dtype", HOPPER_FP8_KV_MESSAGE)
            if self.dtype == "auto":
                return replace(self, dtype="bfloat16"), (
                    "FP8 KV cache on Hopper needs bfloat16 activations (FlashAttention-3): dtype set to bfloat16",)
        return self, ()

    def for_model(self, spec) -> tuple[EngineConfig, tuple[str, ...]]:
        """The configuration for this model as the planner sizes it (``spec``: its planner.ModelSpec): a
        multimodal model runs its language model alone (the planner sizes no vision tower, and the app sends
        text only), said in a note."""
        if spec.is_multimodal and not self.language_model_only:
            return replace(self, language_model_only=True), (MULTIMODAL_NOTE,)
        return self, ()

    @property
    def precision_label(self) -> str:
        """fp16 / fp8 / fp8-kv8: the benchmark's and the planner's name for the precision."""
        if self.quantization == "fp8":
            return "fp8-kv8" if self.fp8_kv else "fp8"
        if self.quantization:  # a pre-quantized checkpoint's method, named explicitly
            return f"{self.quantization}-kv8" if self.fp8_kv else self.quantization
        return "fp16-kv8" if self.fp8_kv else "fp16"

    # ------------------------------------------------------------------ consumers
    def engine_kwargs(self) -> dict:
        """Keyword arguments for vllm.EngineArgs / AsyncEngineArgs (vLLM's defaults left out)."""
        out = {"model": self.model, "dtype": self.dtype, "quantization": self.quantization,
               "kv_cache_dtype": self.kv_cache_dtype, "gpu_memory_utilization": self.gpu_memory_utilization,
               "tensor_parallel_size": self.tensor_parallel_size, "enforce_eager": self.enforce_eager,
               "load_format": self.load_format, "seed": self.seed}
        for name in ("max_model_len", "max_num_seqs", "max_num_batched_tokens", "kv_cache_memory_bytes"):
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        if self.language_model_only:
            out["language_model_only"] = True
        return out

    def cli_args(self) -> list[str]:
        """The engine flags, as `vllm serve` and `vllm bench` spell them (defaults left out)."""
        args: list[str] = []
        defaults = {f.name: f.default for f in fields(EngineConfig)}
        for f in fields(EngineConfig):
            if f.name in ("model", "gpu_ids"):
                continue
            value = getattr(self, f.name)
            if value == defaults[f.name] and f.name != "gpu_memory_utilization":
                continue
            flag = "--" + f.name.replace("_", "-")
            if isinstance(value, bool):
                args.append(flag)
            elif value is not None:
                args += [flag, str(value)]
        return args

    def command(self, program: str = "serve", extra: list[str] | tuple[str, ...] = ()) -> str:
        """The one renderer of a command line for this engine.

        program: 'serve' (vllm serve MODEL ...), 'bench-throughput' (vllm bench throughput --model MODEL ...),
        'bench-serve' (vllm bench serve ... against a server), 'planner' (python -m planner ...)."""
        env = f"CUDA_VISIBLE_DEVICES={','.join(map(str, self.gpu_ids))} " if self.gpu_ids else ""
        if program == "planner":  # the planner reads catalog names and config paths itself
            return shlex.join(["python", "-m", "planner", "--model", self.model, *self.cli_args(), *extra])
        model = runnable_model(self.model)
        # a placeholder stays unquoted: it is there to be replaced, not run
        model_word = model if model == MODEL_PLACEHOLDER else shlex.quote(model)
        if program == "serve":
            head = f"vllm serve {model_word}"
        elif program == "bench-throughput":
            head = f"vllm bench throughput --model {model_word}"
        else:
            raise PlannerError("program", f"{program!r} is not one of serve, bench-throughput, planner")
        rest = shlex.join([*self.cli_args(), *extra])
        return env + head + (f" {rest}" if rest else "")

    # ------------------------------------------------------------------ the way back
    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser, *, model_positional: bool = False) -> None:
        """The engine flags on an argparse parser (the app, the planner CLI, the bench CLI and the parser
        that reads a printed command back all use this)."""
        if model_positional:
            parser.add_argument("model")
        parser.add_argument("--quantization", default=None, help="fp8: online dynamic FP8 weights (W8A8). Default: 16-bit")
        parser.add_argument("--kv-cache-dtype", default="auto", choices=KV_CACHE_DTYPES,
                            help="fp8: store the KV cache in FP8 (half the bytes per token)")
        parser.add_argument("--dtype", default="auto", help="activation dtype: auto, float16 or bfloat16 (there is no fp8 dtype)")
        parser.add_argument("--gpu-memory-utilization", type=float, default=0.9,
                            help="the share of the GPU's memory vLLM may use (weights + activations + KV cache)")
        parser.add_argument("--max-model-len", type=int, default=None, help="longest prompt + output, in tokens")
        parser.add_argument("--tensor-parallel-size", type=int, default=1, help="GPUs the model is split across")
        parser.add_argument("--max-num-seqs", type=int, default=None, help="most sequences scheduled at once")
        parser.add_argument("--max-num-batched-tokens", type=int, default=None, help="most tokens in one engine step")
        parser.add_argument("--enforce-eager", action="store_true", help="no CUDA graphs: less memory, slower decode")
        parser.add_argument("--kv-cache-memory-bytes", type=int, default=None,
                            help="pin the KV cache per GPU to this many bytes (vLLM then ignores "
                                 "--gpu-memory-utilization for it)")
        parser.add_argument("--load-format", default="auto", choices=LOAD_FORMATS,
                            help="dummy: random weights of the real shape (speed and memory are real, text is not)")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--language-model-only", action="store_true",
                            help="a multimodal model's language model alone (no vision tower, no encoder cache)")

    @classmethod
    def from_args(cls, args: argparse.Namespace, **overrides) -> EngineConfig:
        values = {f.name: getattr(args, f.name) for f in fields(cls) if hasattr(args, f.name)}
        values.update(overrides)
        return cls(**values)

    @classmethod
    def parse_command(cls, line: str) -> EngineConfig:
        """Read a `vllm serve` / `vllm bench throughput` line this class printed back into a config."""
        words = shlex.split(line)
        gpu_ids = None
        while words and "=" in words[0] and words[0].split("=")[0].isupper():
            key, _, value = words.pop(0).partition("=")
            if key == "CUDA_VISIBLE_DEVICES":
                gpu_ids = tuple(int(x) for x in value.split(",") if x)
        if words[:2] == ["vllm", "serve"]:
            rest, positional = words[2:], True
        elif words[:3] == ["vllm", "bench", "throughput"]:
            rest, positional = words[3:], False
        else:
            raise PlannerError("command", f"{line!r} is not a `vllm serve` or `vllm bench throughput` line")
        parser = argparse.ArgumentParser(add_help=False)
        if not positional:
            parser.add_argument("--model", required=True)
        cls.add_arguments(parser, model_positional=positional)
        args, _unknown = parser.parse_known_args(rest)
        return cls.from_args(args, gpu_ids=gpu_ids, model=catalog_name_of(args.model))


MULTIMODAL_NOTE = ("multimodal model: planned as vLLM runs it with --language-model-only (the language model alone; "
                   "the planner does not size a vision tower or its encoder cache), so the printed command carries it")
MODEL_PLACEHOLDER = "<your-model-folder-or-hub-id>"


def runnable_model(model: str) -> str:
    """What `vllm serve` can load for this model: a catalog entry's Hugging Face id, a folder or hub id as
    given, or a placeholder for a model known only by its pasted config.json (no name vLLM could load)."""
    from planner.models import catalog_hf_ids

    ids = catalog_hf_ids()
    if model in ids:
        return ids[model]
    if "/" in model or model.startswith(("~", ".")) or Path(model).expanduser().exists():
        return model  # a hub id (org/name) or a folder
    return MODEL_PLACEHOLDER


def catalog_name_of(model: str) -> str:
    """The catalog name a printed line's Hugging Face id stands for (the planner sizes it from the catalog)."""
    from planner.models import catalog_hf_ids

    return next((name for name, hf_id in catalog_hf_ids().items() if hf_id == model), model)


def _whole(name: str, value, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise PlannerError(name, f"{value!r} must be a whole number")
    return check_range(name, value, low, high)
