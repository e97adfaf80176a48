"""CPU decode speed of the embedded engines: 16-bit, the FP8 twin, and the older FP8 twin that
dequantized every weight at every use. Prints tok/s per engine and FP8 / 16-bit.

    python benchmarks/cpu_speed.py                       # 32 tokens, 7 rounds, the default prompt
    python benchmarks/cpu_speed.py --tokens 64 --rounds 5 --json cpu_speed.json
    PLAYGROUND_CPU_DTYPE=float32 python benchmarks/cpu_speed.py   # a compute dtype instead of the measured one

Each round runs every engine once, one after the other (the app's fair mode; the order alternates
between rounds), greedy, ignoring the end-of-sequence token so that every engine decodes the same
number of tokens (the older twin fewer: --older-tokens, it is ten times slower). decode tok/s is
the app's: output tokens after the first over the time from the first to the last
(playground/metrics.py). Each engine's figure is its median over the rounds, and FP8 / 16-bit the
median of the rounds' ratios: on a machine shared with other work a round's two engines see the
same load, the rounds do not. Beside it, output tokens per CPU-second of this process (prompt
included): what each token costs in compute, which other processes' load does not change. Then the quality diff of each FP8 twin
against 16-bit on the example prompts (assets/prompts.json, chat template, temperature 0), as the
Playground computes it: FP8's rounding must still move the numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from torch import nn  # noqa: E402

from playground.compare import compare, score_quality  # noqa: E402
from playground.engines.base import GenerationRequest, SamplingSettings  # noqa: E402
from playground.engines.cpu_engine import CpuEngine, compute_dtype  # noqa: E402
from playground.engines.fp8 import quantize_per_tensor  # noqa: E402

ISA_ENV = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS")


class DequantizePerUseLinear(nn.Module):
    """The older FP8 twin's Linear: float8_e4m3fn weight, dequantized to the compute dtype at every call."""

    def __init__(self, linear: nn.Linear, dtype: torch.dtype):
        super().__init__()
        q, scale = quantize_per_tensor(linear.weight)
        self.register_buffer("weight_fp8", q)
        self.register_buffer("weight_scale", scale)
        self.bias, self.dtype = linear.bias, dtype

    def forward(self, x):
        return nn.functional.linear(x, (self.weight_fp8.float() * self.weight_scale).to(self.dtype), self.bias)


def dequantize_per_use(module: nn.Module, dtype: torch.dtype) -> None:
    for name, child in list(module.named_children()):
        if name == "lm_head":
            continue
        if isinstance(child, nn.Linear):
            setattr(module, name, DequantizePerUseLinear(child, dtype))
        else:
            dequantize_per_use(child, dtype)


async def decode_tok_s(engine: CpuEngine, prompt: str, tokens: int) -> tuple[float, float]:
    """(decode tok/s by the wall clock, as the app shows it; output tokens per CPU-second of this process)."""
    request = GenerationRequest("bench", SamplingSettings(temperature=0.0, max_tokens=tokens, ignore_eos=True),
                                prompt=prompt, chat=True)
    cpu = time.process_time()
    times = [chunk.t_s async for chunk in engine.stream(request)]
    return (len(times) - 1) / (times[-1] - times[0]), len(times) / (time.process_time() - cpu)


async def main_async(args) -> dict:
    t = time.perf_counter()
    dtype = compute_dtype()
    chosen_after_s = time.perf_counter() - t
    base, fp8, older = CpuEngine("16-bit", fp8=False), CpuEngine("FP8", fp8=True), CpuEngine("FP8 (older)", fp8=False)
    for engine in (base, fp8, older):
        await engine.start()
    older._model = __import__("copy").deepcopy(older._model)
    dequantize_per_use(older._model, dtype)
    engines = {"16-bit": base, "FP8": fp8, "FP8, dequantized per use (older)": older}
    await decode_tok_s(base, args.prompt, 4)  # first call: kernels chosen, caches warm
    speeds: dict[str, list[float]] = {name: [] for name in engines}
    per_cpu_s: dict[str, list[float]] = {name: [] for name in engines}
    tokens = {name: args.older_tokens if "older" in name else args.tokens for name in engines}
    for r in range(args.rounds):
        order = list(engines) if r % 2 == 0 else [*reversed(list(engines)[:2]), *list(engines)[2:]]
        for name in order:
            wall, cpu = await decode_tok_s(engines[name], args.prompt, tokens[name])
            speeds[name].append(wall)
            per_cpu_s[name].append(cpu)
        print(f"round {r + 1}: " + " · ".join(f"{n} {v[-1]:.1f}" for n, v in speeds.items()), flush=True)
    median = {name: statistics.median(v) for name, v in speeds.items()}
    ratio = {name: statistics.median(x / y for x, y in zip(v, speeds["16-bit"])) for name, v in speeds.items()}
    cpu_ratio = {name: statistics.median(x / y for x, y in zip(v, per_cpu_s["16-bit"])) for name, v in per_cpu_s.items()}
    result = {
        "compute_dtype": str(dtype).removeprefix("torch."), "dtype_chosen_in_s": round(chosen_after_s, 2),
        "torch_threads": torch.get_num_threads(), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        # set to emulate a CPU without AVX-512 on one that has it (docs/results/cpu-speed.md)
        "isa_env": {k: os.environ[k] for k in ISA_ENV if k in os.environ}, "tokens": args.tokens, "older_tokens": args.older_tokens,
        "rounds": args.rounds, "decode_tok_s": median, "runs": speeds, "over_16bit": ratio,
        "tok_per_cpu_s": {name: statistics.median(v) for name, v in per_cpu_s.items()}, "cpu_runs": per_cpu_s,
        "cpu_over_16bit": cpu_ratio, "load_average": os.getloadavg(),
        "fp8_over_16bit": ratio["FP8"], "older_fp8_over_16bit": ratio["FP8, dequantized per use (older)"],
    }
    prompts = json.loads((ROOT / "assets" / "prompts.json").read_text())["prompts"]
    sampling = SamplingSettings(temperature=0.0, max_tokens=args.tokens)
    result["quality"] = {}
    for name in ("FP8", "FP8, dequantized per use (older)") if args.quality else ():
        pair = [base, engines[name]]
        final = [s async for s in compare(pair, prompts, sampling, mode="fair", chat=True)][-1]
        diffs = (await score_quality(pair, prompts, final, chat=True))[0]  # the second column against the first
        result["quality"][name] = [{"token_agreement": d.token_agreement, "mean_kl": d.mean_kl} for d in diffs]
    for engine in engines.values():
        await engine.stop()
    return result


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tokens", type=int, default=32)
    p.add_argument("--older-tokens", type=int, default=8)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--prompt", default=json.loads((ROOT / "assets" / "prompts.json").read_text())["prompts"][0])
    p.add_argument("--json", default=None)
    p.add_argument("--no-quality", dest="quality", action="store_false", help="speeds only")
    args = p.parse_args(argv)
    r = asyncio.run(main_async(args))
    print(f"\ncompute dtype {r['compute_dtype']} (chosen in {r['dtype_chosen_in_s']} s), {r['torch_threads']} threads, "
          f"torch's CPU capability {r['cpu_capability']} {' '.join(f'{k}={v}' for k, v in r['isa_env'].items())}, "
          f"{r['tokens']} tokens, median of {r['rounds']}")
    print(f"load average during the run (1, 5, 15 min): {', '.join(f'{x:.1f}' for x in r['load_average'])} "
          f"on {os.cpu_count()} CPUs")
    print("| engine | decode tok/s (median) | / 16-bit (median of rounds) | tokens per CPU-second | / 16-bit |\n"
          "|---|---|---|---|---|")
    for name, v in r["decode_tok_s"].items():
        print(f"| {name} | {v:.1f} | {r['over_16bit'][name]:.2f} | {r['tok_per_cpu_s'][name]:.1f} "
              f"| {r['cpu_over_16bit'][name]:.2f} |")
    if args.json:
        Path(args.json).write_text(json.dumps(r, indent=2))
    if not r["quality"]:
        return 0
    print("\n| FP8 twin vs 16-bit | " + " | ".join(f"prompt {i + 1}" for i in range(len(r["quality"]["FP8"])))
          + " |\n|---|" + "---|" * len(r["quality"]["FP8"]))
    for name, diffs in r["quality"].items():
        print(f"| {name} | " + " | ".join(f"{100 * d['token_agreement']:.1f}%, KL {d['mean_kl']:.4f}" for d in diffs) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
