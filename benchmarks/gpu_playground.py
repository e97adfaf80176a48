"""The playground's GPU measurements (drives vLLM through the engine adapter; no web server).

    python benchmarks/gpu_playground.py fair --model DIR --out FILE.json        # fair vs solo vs race (docs/results/fair-timing.md)
    python benchmarks/gpu_playground.py text --model DIR --out FILE.json        # the seed prompts, real weights (docs/results/fp8-answers.md)
    python benchmarks/gpu_playground.py columns --engine BF16=DIR --engine FP8=DIR,quantization=fp8 \
        --engine "FP8 checkpoint"=FP8DIR [--text] [--load-format dummy] --out FILE.json

fair: both engines resident on one GPU (the app's split); for each engine alone, then the fair
comparison (one after the other) and the race (both at once), batch 1, 256 tokens, 3 runs each;
prints the FP8/16-bit decode ratios. text: the seed prompts at temperature 0 with the chat
template, both engines, and the quality diff. columns: 2 to 4 columns resident on one GPU (the
planner's split, refused before any engine starts when they do not fit), the fair decode speed of
each (3 runs, median) and its ratio to the first; with --text, the seed prompts answered by every
column and each column's quality diff against the first.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from dataclasses import asdict, replace
from pathlib import Path

from planner import model_spec, read_gpus, side_by_side_split
from playground.compare import compare, score_quality
from playground.engines.base import SamplingSettings
from playground.engines.vllm_engine import VllmEngine

EXAMPLES = json.loads((Path(__file__).resolve().parent.parent / "assets/prompts.json").read_text())["prompts"]


async def engines_for(model: str, load_format: str, gpu_index: int) -> list[VllmEngine]:
    gpu = read_gpus(gpu_index)[0].to_spec()
    split = side_by_side_split(model_spec(model), gpu, batch_size=16, context_len=1024, dtype="bfloat16")
    base = replace(split.baseline.config, model=model, load_format=load_format, gpu_ids=(gpu_index,))
    fp8 = replace(split.fp8.config, model=model, load_format=load_format, gpu_ids=(gpu_index,))
    out = []
    for config, label in ((base, "BF16"), (fp8, "FP8")):
        t = time.perf_counter()
        engine = VllmEngine(config, label)
        await engine.start()
        print(f"{label} started in {time.perf_counter() - t:.0f} s: {engine.info.kv_tokens:,} KV tokens, "
              f"`{config.command('serve')}`", flush=True)
        out.append(engine)
    return out


async def final_of(engines, prompts, sampling, mode, chat=False):
    final = None
    async for final in compare(engines, prompts, sampling, mode=mode, chat=chat):
        pass
    return final


async def fair(args) -> dict:
    engines = await engines_for(args.model, args.load_format, args.gpu)
    sampling = SamplingSettings(temperature=0.0, max_tokens=256, ignore_eos=True)
    prompt = [EXAMPLES[0]]
    await final_of(engines, prompt, sampling, "race")  # warm-up
    result = {"engines": [asdict(e.info) for e in engines], "runs": {}}
    for name, make in (("solo", None), ("fair", "fair"), ("race", "race")):
        speeds = {e.info.label: [] for e in engines}
        for _ in range(3):
            if make is None:
                for e in engines:
                    snap = (await final_of([e], prompt, sampling, "race"))[0]
                    speeds[e.info.label].append(snap.decode_tok_s)
            else:
                for snap in await final_of(engines, prompt, sampling, make):
                    speeds[snap.label].append(snap.decode_tok_s)
        med = {k: statistics.median(v) for k, v in speeds.items()}
        result["runs"][name] = {"decode_tok_s": speeds, "median": med, "ratio": med["FP8"] / med["BF16"]}
        print(f"{name:5}: BF16 {med['BF16']:.1f} tok/s, FP8 {med['FP8']:.1f} tok/s, FP8/BF16 {med['FP8'] / med['BF16']:.3f}",
              flush=True)
    solo, fair_ratio = result["runs"]["solo"]["ratio"], result["runs"]["fair"]["ratio"]
    result["fair_vs_solo_percent"] = 100 * (fair_ratio - solo) / solo
    print(f"fair ratio vs solo ratio: {result['fair_vs_solo_percent']:+.2f}%", flush=True)
    # 16 users at once, fair mode: every request completes, in order
    t = time.perf_counter()
    from playground.compare import EnginePhases

    phases = EnginePhases(2)
    async def one(i):
        final = None
        async for final in compare(engines, [f"{EXAMPLES[i % 3]} ({i})"], SamplingSettings(temperature=0.8, max_tokens=128, seed=i),
                                   mode="fair", phases=phases):
            pass
        return final
    finals = await asyncio.gather(*(one(i) for i in range(16)))
    result["fair_16_users"] = {"wall_s": time.perf_counter() - t, "completed": sum(all(c.finished and not c.error for c in f) for f in finals),
                               "output_tokens": sum(c.output_tokens for f in finals for c in f)}
    print("fair mode, 16 users:", result["fair_16_users"], flush=True)
    return result


async def text(args) -> dict:
    engines = await engines_for(args.model, args.load_format, args.gpu)
    sampling = SamplingSettings(temperature=0.0, max_tokens=96)
    final = await final_of(engines, EXAMPLES, sampling, "fair", chat=True)
    quality = (await score_quality(engines, EXAMPLES, final, chat=True))[0]
    out = {"engines": [asdict(e.info) for e in engines], "prompts": EXAMPLES,
           "answers": {c.label: list(c.texts) for c in final},
           "decode_tok_s": {c.label: c.decode_tok_s for c in final},
           "quality": [asdict(q) if q else None for q in quality]}
    for i, p in enumerate(EXAMPLES):
        print(f"--- {p}\nBF16: {final[0].texts[i]!r}\nFP8 : {final[1].texts[i]!r}\n{quality[i].summary() if quality[i] else ''}",
              flush=True)
    return out


async def columns(args) -> dict:
    from planner import EngineConfig, resident_split
    from playground import views
    from playground.columns import check_column, parse_columns
    from playground.quality import combine

    specs = parse_columns(args.engine)
    gpu = read_gpus(args.gpu)[0].to_spec()
    for c in specs:
        check_column(c)
    configs = [EngineConfig(model=c.folder, quantization=c.quantization, kv_cache_dtype=c.kv_cache_dtype,
                            dtype="bfloat16", load_format=args.load_format) for c in specs]
    split = resident_split([(c.label, model_spec(cfg.model), cfg) for c, cfg in zip(specs, configs)], gpu,
                           batch_size=16, context_len=1024)
    print(views.resident_split_text(split), flush=True)
    result: dict = {"split": {"fits": split.fits, "reason": split.reason, "utilizations": dict(zip(split.labels, split.utilizations)),
                              "planned_kv_tokens": {label: p.kv_tokens for label, p in zip(split.labels, split.plans)}}}
    if not split.fits:  # the planner's answer, before any engine starts
        return result
    engines = []
    for c, p in zip(specs, split.plans):
        config = replace(p.config, model=c.folder, load_format=args.load_format, gpu_ids=(args.gpu,))
        t = time.perf_counter()
        engine = VllmEngine(config, c.label)
        await engine.start()
        print(f"{c.label} started in {time.perf_counter() - t:.0f} s: {engine.info.kv_tokens:,} KV tokens, "
              f"quantization {engine.info.quantization}, `{config.command('serve')}`", flush=True)
        engines.append(engine)
    result["engines"] = [asdict(e.info) for e in engines]
    sampling = SamplingSettings(temperature=0.0, max_tokens=256, ignore_eos=True)
    await final_of(engines, [EXAMPLES[0]], SamplingSettings(temperature=0.0, max_tokens=32), "race")  # warm-up
    speeds = {e.info.label: [] for e in engines}
    last = None
    for _ in range(3):
        last = await final_of(engines, [EXAMPLES[0]], sampling, "fair")
        for snap in last:
            speeds[snap.label].append(snap.decode_tok_s)
    med = {k: statistics.median(v) for k, v in speeds.items()}
    first = specs[0].label
    result["fair_decode_tok_s"] = {"runs": speeds, "median": med, "ratio_to_first": {k: v / med[first] for k, v in med.items()}}
    for k, v in med.items():
        print(f"{k:>16}: {v:.1f} tok/s decode (fair, batch 1, 256 tokens, median of 3), {v / med[first]:.2f}x {first}",
              flush=True)
    quality = ()
    if args.text:
        final = await final_of(engines, EXAMPLES, SamplingSettings(temperature=0.0, max_tokens=96), "fair", chat=True)
        quality = await score_quality(engines, EXAMPLES, final, chat=True)
        result["prompts"] = EXAMPLES
        result["answers"] = {c.label: list(c.texts) for c in final}
        result["quality"] = {}
        for snap, diffs in zip(final[1:], quality):
            overall = combine(diffs)
            result["quality"][snap.label] = {"per_prompt": [asdict(d) | {"token_kls": None} if d else None for d in diffs],
                                             "all": asdict(overall) | {"token_kls": None} if overall else None}
            print(f"{snap.label} vs {first}: {overall.summary() if overall else 'not scored'}", flush=True)
        for i, prompt in enumerate(EXAMPLES):
            print(f"--- {prompt}", flush=True)
            for snap in final:
                print(f"{snap.label}: {snap.texts[i]!r}", flush=True)
    result["headline"] = median_headline(med, first, quality)
    print(result["headline"], flush=True)
    return result


def median_headline(med: dict[str, float], first: str, quality=()) -> str:
    """The page's headline in words, from the medians of the three fair runs (one run's ratio is noise on a
    small model), with each column's token agreement against the first where it was scored."""
    lines = []
    for j, (label, speed) in enumerate((k, v) for k, v in med.items() if k != first):
        ratio = speed / med[first]
        word = f"{ratio:.2f}× faster" if ratio >= 1 else f"{1 / ratio:.2f}× slower"
        scored = combine(quality[j]) if j < len(quality) else None
        agreement = f", {100 * scored.token_agreement:.0f}% token agreement" if scored else ""
        lines.append(f"### {label} is {word} than {first} at decode{agreement} (median of 3 fair runs: "
                     f"{speed:.1f} vs {med[first]:.1f} tok/s)")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=["fair", "text", "columns"])
    p.add_argument("--model", default="", help="fair, text: the model folder (both engines)")
    p.add_argument("--engine", action="append", default=[], metavar="LABEL=FOLDER[,quantization=fp8][,kv-cache-dtype=fp8]",
                   help="columns: one column per flag, 2 to 4")
    p.add_argument("--text", action="store_true", help="columns: also the seed prompts and the quality diffs (real weights)")
    p.add_argument("--load-format", default="auto")
    p.add_argument("--gpu", type=int, default=0)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    if args.what != "columns" and not args.model:
        p.error(f"{args.what} needs --model")
    result = asyncio.run({"fair": fair, "text": text, "columns": columns}[args.what](args))
    Path(args.out).write_text(json.dumps(result, indent=2, default=str))
    import os
    os._exit(0)  # vLLM's engine-core processes are shut down with the interpreter


if __name__ == "__main__":
    main()
