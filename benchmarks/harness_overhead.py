"""Does the benchmark harness cost throughput? The same point measured two ways, on one GPU:

1. through the harness: playground's VllmEngine (AsyncLLM, streamed DELTA outputs, per-token timing);
2. with plain ``LLM.generate`` on the same engine arguments and the same token prompts.

Prints both output tok/s (median of --repeats) and the difference; the goal is <= 3%.

    python benchmarks/harness_overhead.py --model /tmp/models/llama-2-7b
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import time


def engine_args(model: str, max_model_len: int, quantization: str | None = None) -> dict:
    return dict(model=model, load_format="dummy", dtype="bfloat16", max_model_len=max_model_len,
                gpu_memory_utilization=0.9, max_num_seqs=1024, max_num_batched_tokens=16384, seed=0,
                quantization=quantization)


async def through_harness(args, prompts) -> list[float]:
    from playground.bench.sweep import run_point
    from planner.engine_config import EngineConfig
    from playground.engines.vllm_engine import VllmEngine
    from playground.metrics import summarize

    engine = VllmEngine(EngineConfig(**engine_args(args.model, args.max_model_len, args.quantization)),
                        args.quantization or "fp16")
    await engine.start()
    try:
        await run_point(engine, prompts, args.output_len, len(prompts), "warmup")
        speeds = []
        for r in range(args.repeats):
            timings = await run_point(engine, prompts, args.output_len, len(prompts), f"h{r}")
            speeds.append(summarize(timings).output_tok_s)
        return speeds
    finally:
        await engine.stop()


def plain_generate(args, prompts) -> list[float]:
    from vllm import LLM, SamplingParams
    from vllm.inputs import TokensPrompt

    llm = LLM(**engine_args(args.model, args.max_model_len, args.quantization))
    params = SamplingParams(temperature=1.0, max_tokens=args.output_len, ignore_eos=True)
    batch = [TokensPrompt(prompt_token_ids=list(p)) for p in prompts]
    llm.generate(batch, params, use_tqdm=False)  # warm-up
    speeds = []
    for _ in range(args.repeats):
        started = time.perf_counter()
        outs = llm.generate(batch, params, use_tqdm=False)
        elapsed = time.perf_counter() - started
        speeds.append(sum(len(o.outputs[0].token_ids) for o in outs) / elapsed)
    return speeds


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True)
    p.add_argument("--num-prompts", type=int, default=64)
    p.add_argument("--input-len", type=int, default=512)
    p.add_argument("--output-len", type=int, default=256)
    p.add_argument("--max-model-len", type=int, default=1024)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--quantization", default=None, help="fp8: vLLM's online FP8 (default: 16-bit)")
    args = p.parse_args()

    from playground.bench.sweep import random_prompts

    prompts = random_prompts(args.num_prompts, args.input_len, 32000, seed=7)
    harness = asyncio.run(through_harness(args, prompts))
    gc.collect()
    time.sleep(5)  # the engine-core process gives the GPU back
    plain = plain_generate(args, prompts)
    h, g = statistics.median(harness), statistics.median(plain)
    diff = (h - g) / g * 100
    print(json.dumps({"point": f"{args.num_prompts} prompts at once, {args.input_len} in / {args.output_len} out, bf16"
                               + (f", {args.quantization}" if args.quantization else ""),
                      "harness_output_tok_s": harness, "llm_generate_output_tok_s": plain,
                      "harness_median": h, "llm_generate_median": g, "difference_percent": diff,
                      "within_3_percent": abs(diff) <= 3.0}, indent=2))


if __name__ == "__main__":
    main()
