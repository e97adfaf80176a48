"""The project's measured speeds as rows: every run the speed prediction is fitted on or checked against.

The paths are here and only here (docs/results is being reorganised by question: when a file moves, change
its line below). Each source says whether it is fitted or held out; held-out rows are never read by the fit.

    python benchmarks/speed_runs.py        # one JSON row per measured point

A row's decode speed is 1 / TPOT p50 (TPOT = (end-to-end - TTFT) / (output tokens - 1), as vllm bench serve
defines it), so it is one decode step whatever prefix caching did to the prompt; the Playground's fair batch-1
runs give decode tok/s directly. A sweep's row also keeps its ITL p50, the steady decode step: at batch >= 8 a
request's TPOT also holds the prefills of the requests sent with it.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from statistics import median

ROOT = Path(__file__).resolve().parent.parent
# shapes no published model has, each a config.json in a folder of its name: a measured row's model when a question
# needs one (another model of a head width only Phi-3 has); gpu.sh builds the model folder from it
SHAPES = ROOT / "docs/results/speed-rows/shapes"


@dataclass(frozen=True)
class Source:
    path: str  # relative to the project root; a glob for runs recorded later
    kind: str  # "sweep" (playground.bench JSON export), "fair" (Playground batch-1 JSON), "table" (bench's printed table)
    gpu: str  # the GPU preset it ran on
    model: str  # the catalog shape ("" = read it from the run's engine arguments)
    held_out: bool
    engine: dict = field(default_factory=dict)  # engine arguments the file does not record
    note: str = ""
    # the timed repeat's prompts were already in vLLM's prefix cache (the bench repeats the same seeded prompts;
    # the median of 3 is a cached repeat), so its TTFT is the fixed cost and one recomputed block, not a prefill
    prompts_cached: bool = False
    group: str = ""  # runs of one question recorded apart (the 70B's 16-bit and FP8 engines): paired for the ratio
    # an engine too small for its GPU (planner.speed.host_bound): its steps are vLLM's own work, so a fitted source
    # of this kind fits that line (host_step_s, host_sequence_s) and nothing else
    host_bound: bool = False


def _h200_sweep(path: str, held_out: bool, host_bound: bool = False, group: str = "") -> Source:
    """One of the gpu.sh sweeps in docs/results/speed-rows/<folder>/ (one H200, dummy weights; those in moe/ under
    vLLM's uniform routing simulator), grouped by its folder unless ``group`` names the runs it pairs with."""
    folder = path.split("/")[0]
    return Source(f"docs/results/speed-rows/{path}", "sweep", "h200", "", held_out,
                  note="MoE, uniform routing" if folder == "moe" else "", group=group or folder, host_bound=host_bound)


SOURCES = (
    # H100 sweeps, 512 in / 256 out, 1/8/64/256, three precisions (docs/results/throughput.md): the fit
    Source("docs/results/throughput/h100-2026-11-24-llama-2-7b.json", "sweep", "h100-sxm", "llama-2-7b", False, prompts_cached=True),
    Source("docs/results/throughput/h100-2026-11-24-llama-3-8b.json", "sweep", "h100-sxm", "llama-3-8b", False, prompts_cached=True),
    # fair batch-1 decode, 256 tokens (docs/results/fair-timing.md, docs/results/playground-on-gpu.md): the fit
    Source("docs/results/fair-timing/h100-2026-11-25.json", "fair", "h100-sxm", "llama-2-7b", False),
    Source("docs/results/playground-on-gpu/h100-2026-11-26/batch1_speed.json", "fair", "h100-sxm", "llama-2-7b", False,
           {"dtype": "float16", "max_model_len": 2048}),
    # H200, each precision its own GPU, one repeat (uncached prompts): the fit's only full prefills
    Source("docs/results/multi-gpu/h200-2026-11-26-benchmark-one-precision-per-gpu.json", "sweep", "h200", "llama-2-7b", False,
           {"dtype": "bfloat16", "gpu_memory_utilization": 0.9}, "each precision its own GPU"),
    # held out: never fitted (docs/results/multi-gpu.md)
    Source("docs/results/multi-gpu/h200-2026-11-26-benchmark-shared-gpu.json", "sweep", "h200", "llama-2-7b", True,
           {"dtype": "float16", "gpu_memory_utilization": 0.48, "max_model_len": 2048, "max_num_batched_tokens": 16384},
           "two engines share the GPU, each timed alone"),
    Source("docs/results/playground-on-gpu/h200-2026-11-26/batch1_speed.json", "fair", "h200", "llama-2-7b", True,
           {"dtype": "float16", "max_model_len": 2048}),
    # the 70B: another shape, TP=2 in 16-bit (docs/results/multi-gpu.md)
    Source("docs/results/multi-gpu/h200-2026-11-26-70b-fp16-tp2.txt", "table", "h200", "llama-2-70b", True,
           {"tensor_parallel_size": 2, "max_model_len": 4096, "max_num_batched_tokens": 2048, "max_num_seqs": 128,
            "input_len": 512, "output_len": 128}, group="70b"),
    Source("docs/results/multi-gpu/h200-2026-11-26-70b-fp8-tp1.txt", "table", "h200", "llama-2-70b", True,
           {"gpu_memory_utilization": 0.95, "max_model_len": 4096, "max_num_batched_tokens": 2048, "max_num_seqs": 128,
            "input_len": 512, "output_len": 128}, group="70b"),
    # `bash benchmarks/gpu.sh speed-rows` on an H200, recorded after the fit was frozen
    Source("docs/results/speed-rows/*.json", "sweep", "h200", "", True, group="speed-rows"),
    # dense models of other depths, one H200, dummy weights (docs/speed.md, "the fixed cost is per layer"):
    # Qwen2.5-14B's 48 layers beside the Llamas' 32 fit the cost per layer; Qwen2.5-32B's 64 are held out
    _h200_sweep("depth/h200-2026-12-02-qwen2.5-14b.json", False),
    _h200_sweep("depth/h200-2026-12-02-qwen2.5-32b.json", True),
    # recorded after that fit was frozen (40b4af2): Gemma-2-9B's 42 layers, held out
    _h200_sweep("depth/h200-2026-12-02-gemma-2-9b.json", True),
    # recorded after the MLA fit was frozen (e819046), all held out: Qwen2.5-32B's batch 8 and 64 again (its first
    # run's batch-64 ratio missed: is the TPOT median's split repeatable?), and two dense shapes not measured before:
    # Phi-3-mini (multi-head attention: 32 KV heads, so KV reads weigh most) and Mistral-Nemo-12B (40 layers)
    _h200_sweep("depth/h200-2026-12-02-qwen2.5-32b-again.json", True),
    # Phi-3-mini fitted since (after its run was held out against the frozen fit): its 96-wide heads' KV factor
    _h200_sweep("dense/h200-2026-12-02-phi-3-mini.json", False),
    _h200_sweep("dense/h200-2026-12-02-mistral-nemo-12b.json", True),
    # recorded after the 96-wide heads' KV factor was frozen (98ea955), held out: a Llama-3.2-3B shape with 96-wide
    # heads (32 query, 8 KV: no published model has it, shapes/), 2048-token prompts so the KV reads weigh; and
    # SmolLM2-1.7B, 64-wide heads (multi-head: 32 KV heads), a width the fit never saw
    _h200_sweep("dense/h200-2026-12-03-llama-3.2-3b-96-wide-heads.json", True),
    _h200_sweep("dense/h200-2026-12-03-smollm2-1.7b.json", True),
    # recorded later the same day, the fit unchanged, held out: Llama-3.2-1B (16 layers, 8 KV heads of 64 dims) and
    # SmolLM2-1.7B's FP8 engine again at 1 to 16 (its first batch-8 point ran slower than its 16-bit one).
    # Llama-3.2-1B missed by up to 79%, its steps vLLM's own work, not the GPU's: fitted since, the only rows of the
    # host line (planner.speed.HOST_BOUND_NOTE), and SmolLM2-1.7B's FP8 engine held out against it
    _h200_sweep("dense/h200-2026-12-03-llama-3.2-1b.json", False, host_bound=True),
    _h200_sweep("dense/h200-2026-12-03-smollm2-1.7b-fp8-again.json", True),
    # recorded after the host line was frozen (322f47c), held out: Qwen2.5-0.5B (24 layers of 896, 14 heads of 64: its
    # GPU-side steps 1.2-1.7 ms, all under the line), Qwen2.5-1.5B (28 layers, 128-wide heads: around the line), and
    # Llama-3.2-1B again, its rows fitted once, at 1 to 64 (how far one run of such an engine is from the next)
    _h200_sweep("dense/h200-2026-12-03-qwen2.5-0.5b.json", True),
    _h200_sweep("dense/h200-2026-12-03-qwen2.5-1.5b.json", True),
    _h200_sweep("dense/h200-2026-12-03-llama-3.2-1b-again.json", True),
    # recorded after 132ccb7 (the wave schedule, the steady step as the batched measure, pooled points) was frozen,
    # held out: Qwen2.5-0.5B and -1.5B again, five repeats a point, each repeat its own prompts
    _h200_sweep("dense/h200-2026-12-03-qwen2.5-0.5b-five-repeats.json", True),
    _h200_sweep("dense/h200-2026-12-03-qwen2.5-1.5b-five-repeats.json", True),
    # pre-quantized checkpoints of Llama-3.1-8B-Instruct's shape running their own schemes, recorded after bc54a70 (the
    # fit unchanged), held out: W4A16 (vLLM picks Machete on Hopper), FP8 block-scaled (DeepGEMM) and INT8 W8A8
    # (CUTLASS). W8A8 met the bar at the FP8 line's factors, block FP8 but at batch 1 (23% slow); W4A16 missed by up to
    # 54%. W4A16 and block FP8 are fitted since, each the only rows of its kernel's GEMM factor
    # (planner.speed.gemm_kernel_factors)
    _h200_sweep("checkpoints/h200-2026-12-03-llama-3.1-8b-instruct-w4a16.json", False),
    _h200_sweep("checkpoints/h200-2026-12-03-llama-3.1-8b-instruct-fp8-block.json", False),
    _h200_sweep("checkpoints/h200-2026-12-03-llama-3.1-8b-instruct-w8a8.json", True),
    # recorded after DeepGEMM's factor was frozen (132ccb7), held out: Qwen3-8B-FP8, a published block-FP8 checkpoint
    # of another shape (36 layers, 151k vocabulary); its 16-bit original did not run (the lease's time ran out)
    _h200_sweep("checkpoints/h200-2026-12-03-qwen3-8b-fp8.json", True, group="qwen3-8b"),
    # recorded later that day on another lease (f5d2562, the fit unchanged), held out: its 16-bit original, for the
    # checkpoint's FP8 / 16-bit ratio (each a run of one precision: paired by their group)
    _h200_sweep("checkpoints/h200-2026-12-03-qwen3-8b.json", True, group="qwen3-8b"),
    # recorded after the host line's calibration landed (f5d2562, the fit unchanged), held out: three engines too small
    # for the GPU on one lease's host, Qwen2.5-0.5B as `calibrate --repeats 3` swept it, then Llama-3.2-1B and
    # Qwen2.5-1.5B (benchmarks/host_calibration.py predicts them on the line the first calibrated); and Qwen2.5-0.5B
    # on another lease, five repeats, each with the host's one-core pace before it (c500f72)
    _h200_sweep("dense/h200-2026-12-03-qwen2.5-0.5b-one-host.json", True),
    _h200_sweep("dense/h200-2026-12-03-llama-3.2-1b-one-host.json", True),
    _h200_sweep("dense/h200-2026-12-03-qwen2.5-1.5b-one-host.json", True),
    _h200_sweep("dense/h200-2026-12-03-qwen2.5-0.5b-host-pace.json", True),
    # recorded after 80f9a49 (the fit unchanged), held out: Qwen3-0.6B (28 layers of 1024, 128-wide heads), the sweep
    # `calibrate --repeats 3` ran on another lease's host (`gpu.sh host-line qwen3-0.6b`; the lease ended before the
    # engines planned to follow it, Qwen3-1.7B and Llama-3.2-3B, could run)
    _h200_sweep("dense/h200-2026-12-04-qwen3-0.6b-calibrate.json", True),
    # MoE, one H200, dummy weights under vLLM's uniform routing simulator (docs/speed.md): Qwen3-30B-A3B fits the MoE
    # terms; Mixtral-8x7B (8 large experts, top 2) and Qwen1.5-MoE-A2.7B (60 small ones, top 4, a shared expert) are
    # held out. The earlier Qwen3-30B-A3B run under the dummy weights' own router (moe/*-dummy-router.json) is kept
    # as a record only: those weights route unlike trained ones.
    _h200_sweep("moe/h200-2026-12-02-qwen3-30b-a3b-uniform-routing.json", False),
    _h200_sweep("moe/h200-2026-12-02-mixtral-8x7b.json", True),
    _h200_sweep("moe/h200-2026-12-02-qwen1.5-moe-a2.7b.json", True),
    # recorded after the per-layer costs' form was chosen, before it was fitted: OLMoE-1B-7B (16 layers, 64 experts,
    # top 8)
    _h200_sweep("moe/h200-2026-12-02-olmoe-1b-7b.json", True),
    # recorded after that fit was frozen (40b4af2) and held out against it: DeepSeek-V2-Lite (MLA, 26 MoE layers of
    # 64 experts, top 6, 2 shared) was 18% fast at batch 1. Fitted since: the only MLA rows, they give the cost an MLA
    # layer adds (docs/speed.md, "latent attention"); the MoE terms still come from Qwen3-30B-A3B alone
    _h200_sweep("moe/h200-2026-12-02-deepseek-v2-lite.json", False),
    # recorded after that MLA fit was frozen (e819046), held out: GLM-4.7-Flash (MLA with a query LoRA, 47 layers, 46
    # MoE layers of 64 experts, top 4, one shared)
    _h200_sweep("moe/h200-2026-12-02-glm-4.7-flash.json", True),
)


@dataclass(frozen=True)
class SpeedRow:
    source: str
    model: str
    gpu: str
    precision: str  # fp16 / fp8 / fp8-kv8 as the bench names them
    concurrency: int
    input_len: int
    output_len: int
    decode_tok_s: float  # per request: 1 / TPOT p50
    output_tok_s: float | None  # all requests together, prefill included
    ttft_s: float | None
    prompts_cached: bool
    engine: dict  # the engine arguments to plan it with (quantization, kv_cache_dtype, dtype, ...)
    held_out: bool
    note: str = ""
    group: str = ""
    itl_p50_s: float | None = None  # a sweep's median inter-token latency: the steady decode step, prefills aside
    host_bound: bool = False  # Source.host_bound
    ttft_p99_s: float | None = None  # a sweep's: about when the wave's last prompt finished its prefill
    # each timed wave's (TPOT p50, ITL p50 where its stream carried a token a chunk): one for a one-repeat point
    waves: tuple[tuple[float, float | None], ...] = ()

    @property
    def steady_step_s(self) -> float | None:
        """The decode step with no prefill in it, where measured: a batched sweep's ITL p50. A batch-1 point's
        TPOT is that step already (no other prompt shares its steps)."""
        return self.itl_p50_s if self.concurrency > 1 else None


PRECISION_ARGS = {"fp16": {"quantization": None, "kv_cache_dtype": "auto"},
                  "fp8": {"quantization": "fp8", "kv_cache_dtype": "auto"},
                  "fp8-kv8": {"quantization": "fp8", "kv_cache_dtype": "fp8"}}
TABLE_LINE = re.compile(r"^(fp16|fp8|fp8-kv8)\s+(\d+)\s+([\d.]+)\s+[\d.]+\s+[\d.]+\s+([\d.]+)\s+([\d.]+)\s")


def _model_from_path(path: str) -> str:
    from planner.models import catalog_names

    name = Path(path).name.lower()
    return name if name in catalog_names() or (SHAPES / name / "config.json").is_file() else path


def row_model_spec(model: str):
    """A row's model: a catalog name, or one of SHAPES."""
    from planner.models import model_spec

    shape = SHAPES / model / "config.json"
    return model_spec(shape if shape.is_file() else model)


def _is_checkpoint(model: str) -> bool:
    from planner.errors import PlannerError

    try:
        return getattr(row_model_spec(model), "quant", None) is not None
    except PlannerError:
        return False


def _sweep(src: Source, path: Path) -> list[SpeedRow]:
    from planner.calibrate import per_token_itl

    data = json.loads(path.read_text())
    env = (data.get("run") or {}).get("environment") or data.get("environment") or {}
    recorded = dict(env.get("engine_args") or {})
    model = src.model or _model_from_path(recorded.get("model", ""))
    base = {k: recorded[k] for k in ("dtype", "gpu_memory_utilization", "max_model_len", "tensor_parallel_size",
                                      "max_num_seqs", "max_num_batched_tokens", "kv_cache_dtype", "quantization")
            if recorded.get(k) is not None}
    rows = []
    for p in data["points"]:
        if not p.get("tpot_p50_s"):
            continue
        prompts = p["num_prompts"]
        engine = {"dtype": "bfloat16", **base, **src.engine, **PRECISION_ARGS.get(p["precision"], {})}
        precision = p["precision"]
        if precision == "fp16" and _is_checkpoint(model):
            precision = "checkpoint"  # no --quantization: vLLM ran the checkpoint's own scheme
        rows.append(SpeedRow(_relative(path), model, src.gpu, precision, p["concurrency"], p["prompt_tokens"] // prompts,
                             p["output_tokens"] // prompts, 1 / p["tpot_p50_s"], p["output_tok_s"], p["ttft_p50_s"],
                             src.prompts_cached, engine, src.held_out, src.note, src.group or path.name,
                             per_token_itl(p), src.host_bound, p.get("ttft_p99_s"), _waves(p)))
    return rows


def _waves(point: dict) -> tuple[tuple[float, float | None], ...]:
    """Every timed wave of a point: its repeats where the export kept each one's TPOT and ITL, else the point."""
    from planner.calibrate import per_token_itl

    tpots, itls = point.get("repeat_tpot_p50_s") or [], point.get("repeat_itl_p50_s") or []
    if len(tpots) > 1 and len(itls) == len(tpots):
        return tuple((t, per_token_itl({"tpot_p50_s": t, "itl_p50_s": i})) for t, i in zip(tpots, itls))
    return ((point["tpot_p50_s"], per_token_itl(point)),)


def _fair(src: Source, path: Path) -> list[SpeedRow]:
    data = json.loads(path.read_text())
    engines = {e["label"]: e for e in data.get("engines", [])}
    medians = data.get("median_decode_tok_s") or data["runs"]["fair"]["median"]
    rows = []
    for label, tok_s in medians.items():
        e = engines.get(label, {})
        precision = "fp8" if "8" in label else "fp16"
        engine = {"dtype": e.get("dtype", "bfloat16"), "max_model_len": e.get("max_model_len", 2048),
                  "gpu_memory_utilization": e.get("gpu_memory_utilization", 0.45), **src.engine, **PRECISION_ARGS[precision]}
        rows.append(SpeedRow(_relative(path), src.model, src.gpu, precision, 1, 0, 256, tok_s, None, None, False, engine,
                             src.held_out, "fair batch-1 decode (one engine timed at a time)", src.group or path.name))
    return rows


def _table(src: Source, path: Path) -> list[SpeedRow]:
    rows, in_bench = [], False
    engine = dict(src.engine)
    lengths = engine.pop("input_len"), engine.pop("output_len")
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("=="):
            in_bench = line.startswith("== bench")
        m = TABLE_LINE.match(line) if in_bench else None
        if m:
            precision, conc, out_tok_s, ttft_ms, tpot_ms = m.groups()
            rows.append(SpeedRow(_relative(path), src.model, src.gpu, precision, int(conc), *lengths, 1000 / float(tpot_ms),
                                 float(out_tok_s), float(ttft_ms) / 1000, src.prompts_cached,
                                 {"dtype": "bfloat16", **engine, **PRECISION_ARGS[precision]}, src.held_out, src.note,
                                 src.group or path.name))
    return rows


def _relative(path: Path) -> str:
    """The file a row came from, from the project root where it lies there."""
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


READERS = {"sweep": _sweep, "fair": _fair, "table": _table}


def load_rows(sources=SOURCES, root: Path = ROOT) -> list[SpeedRow]:
    rows = []
    for src in sources:
        for path in sorted(root.glob(src.path)):
            rows += READERS[src.kind](src, path)
    return rows


def pooled(rows: list[SpeedRow]) -> list[SpeedRow]:
    """One row per measured point: the rows of one engine, batch and lengths from several runs (or one run's
    repeats) as one, its TPOT, ITL, output tok/s and TTFTs the medians over every wave of them. A row of one wave
    stays as it is. An engine too small for its GPU took 1.91 ms a step at batch 8 in one run and 2.77 ms in the
    next (Llama-3.2-1B, 16-bit): a point is what its waves do, not what one of them did."""
    groups: dict[tuple, list[SpeedRow]] = {}
    for r in rows:
        key = (r.model, r.gpu, r.precision, r.concurrency, r.input_len, r.output_len, json.dumps(r.engine, sort_keys=True),
               r.prompts_cached, r.held_out, r.host_bound)
        groups.setdefault(key, []).append(r)
    out = []
    for group in groups.values():
        waves = [w for r in group for w in (r.waves or ((1 / r.decode_tok_s, r.itl_p50_s),))]
        if len(waves) == 1:
            out.append(group[0])
            continue
        itls = [i for _, i in waves]
        first = group[0]
        out.append(replace(
            first, source=" + ".join(r.source for r in group), decode_tok_s=1 / median(t for t, _ in waves),
            itl_p50_s=median(itls) if None not in itls else None,
            output_tok_s=_median_of([r.output_tok_s for r in group]), ttft_s=_median_of([r.ttft_s for r in group]),
            ttft_p99_s=_median_of([r.ttft_p99_s for r in group]), waves=tuple(waves),
            note=f"the median of {len(waves)} waves in {len(group)} run{'s' if len(group) > 1 else ''}"))
    return out


def _median_of(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return median(known) if known else None


def fitted_rows() -> list[SpeedRow]:
    return [r for r in load_rows() if not r.held_out]


def held_out_rows() -> list[SpeedRow]:
    return [r for r in load_rows() if r.held_out]


if __name__ == "__main__":
    for row in load_rows(sources=SOURCES if len(sys.argv) < 2 else [s for s in SOURCES if s.path in sys.argv[1:]]):
        print(json.dumps(asdict(row)))
