"""The speed prediction against every measured run (benchmarks/speed_runs.py), as markdown: the rows the
coefficients were fitted to, and the held-out rows (never fitted) apart, with the bar on the held-out ones; MoE
rows in a table of their own: one MoE model is fitted (and one with latent attention, for the cost of an MLA layer),
the others' largest error is the ± an MoE plan prints.

    python benchmarks/speed_accuracy.py

The bar: predicted decode tok/s within 15% of the measured at batch 1 and within 20% at batch >= 8, and
the FP8 / 16-bit decode ratio within 10%. TTFT is shown beside, without a bar. A row whose concurrency
exceeds what its KV cache holds (vLLM queues the rest) is predicted at the concurrency that runs.

A batched sweep's decode speed is 1 / its ITL p50, the steady step the planner prints (its decode tok/s at
that batch); elsewhere (batch 1, runs that kept no ITL) 1 / TPOT p50, against the wave's prediction. A batched
TPOT p50 also holds the prefill steps after the median request's own, and at 64 prompts of 512 tokens (two
prefill steps of 16,384) it sits on the split between the requests that decode through the second step and those
that start after it: one request crossing it moved Qwen2.5-32B's 16-bit TPOT p50 from 28.1 to 33.4 ms between
two runs whose ITL p50 was 22.18 and 22.07 ms (docs/speed.md, Dense miss 2). So the TPOT p50 of every held-out
batched sweep is printed against the wave's prediction, without a bar; a last table, without a bar either, puts
each dense sweep's TTFT p99 at batch 64 (about when the wave's last prompt finished its prefill) beside the
prefill of every prompt the prediction adds up.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.fit_speed import (  # noqa: E402
    is_moe, measured_decode_tok_s, predicted_decode_tok_s, predicted_ttft_s, row_plan, row_wave,
)
from benchmarks.speed_runs import SpeedRow, load_rows, pooled  # noqa: E402

BAR_BATCH1, BAR_BATCHED, BAR_RATIO = 0.15, 0.20, 0.10


def names(source: str) -> str:
    """A row's source files by name: one, or the runs a pooled row's waves come from."""
    return " + ".join(Path(part).name for part in source.split(" + "))


def bar_for(row: SpeedRow) -> float:
    return BAR_BATCH1 if row.concurrency == 1 else BAR_BATCHED


def decode_table(rows: list[SpeedRow]) -> tuple[str, int]:
    lines = ["| model | GPU | TP | precision | batch | in / out | measured decode tok/s | measured as | waves | predicted | "
             "error | bar | TTFT measured / predicted ms | source |", "|" + "---|" * 14]
    failures = 0
    for r in rows:
        predicted, measured = predicted_decode_tok_s(r), measured_decode_tok_s(r)
        error = predicted / measured - 1
        ok = abs(error) <= bar_for(r)
        failures += not ok
        ttft = "–"
        if r.ttft_s and r.concurrency == 1:
            ttft = f"{r.ttft_s * 1000:.1f} / {predicted_ttft_s(r) * 1000:.1f}" + (" (cached prompt)" if r.prompts_cached else "")
        lines.append(f"| {r.model} | {r.gpu} | {r.engine.get('tensor_parallel_size', 1)} | {r.precision} | {r.concurrency} | "
                     f"{r.input_len or '–'} / {r.output_len} | {measured:,.1f} | {'ITL p50' if r.steady_step_s else 'TPOT p50'} | {len(r.waves) or 1} | "
                     f"{predicted:,.1f} | {100 * error:+.1f}% | "
                     f"{'pass' if ok else '**FAIL**'} (±{100 * bar_for(r):.0f}%) | {ttft} | {names(r.source)} |")
    return "\n".join(lines), failures


def ratio_pairs(rows: list[SpeedRow]) -> list[tuple[SpeedRow, SpeedRow]]:
    """(16-bit, FP8) rows of the same run and concurrency; runs of one precision each (the 70B: 16-bit on two GPUs,
    FP8 on one; an FP8 checkpoint beside its 16-bit model) pair within their group, GPU and lengths."""
    by_source, single = defaultdict(dict), defaultdict(dict)
    for r in rows:
        by_source[(r.source, r.model, r.concurrency)][r.precision] = r
    for key, found in list(by_source.items()):
        if len(found) == 1:  # a run of one precision: paired within its group
            (r,) = found.values()
            single[(r.group, r.gpu, r.concurrency, r.input_len, r.output_len)][r.precision] = r
            del by_source[key]
    pairs = []
    for found in (*by_source.values(), *single.values()):
        pairs += [(found["fp16"], found[p]) for p in ("fp8", "checkpoint") if "fp16" in found and p in found]
    return pairs


def ratio_table(rows: list[SpeedRow]) -> tuple[str, int]:
    lines = ["| model | GPU | TP 16-bit / FP8 | batch | measured FP8 / 16-bit | predicted | error | bar | source |",
             "|" + "---|" * 9]
    failures = 0
    for base, fp8 in ratio_pairs(rows):
        measured = measured_decode_tok_s(fp8) / measured_decode_tok_s(base)
        predicted = predicted_decode_tok_s(fp8) / predicted_decode_tok_s(base)
        error = predicted / measured - 1
        ok = abs(error) <= BAR_RATIO
        failures += not ok
        tps = f"{base.engine.get('tensor_parallel_size', 1)} / {fp8.engine.get('tensor_parallel_size', 1)}"
        source = names(base.source) if base.source == fp8.source else f"{names(base.source)}, {names(fp8.source)}"
        lines.append(f"| {base.model} | {base.gpu} | {tps} | {base.concurrency} | {measured:.3f} | {predicted:.3f} | "
                     f"{100 * error:+.1f}% | {'pass' if ok else '**FAIL**'} | {source} |")
    return "\n".join(lines), failures


def waves_table(rows: list[SpeedRow]) -> str:
    """A pooled point's waves, as its decode speed is measured (1 / ITL p50 when batched, else 1 / TPOT p50), in
    the order run: how far one wave of an engine is from the next, and the median the bar takes."""
    lines = ["| model | precision | batch | measured as | each wave's decode tok/s | median | largest / smallest | "
             "source |", "|" + "---|" * 8]
    for r in rows:
        steady = r.steady_step_s is not None
        speeds = [1 / (i if steady else t) for t, i in r.waves]
        lines.append(f"| {r.model} | {r.precision} | {r.concurrency} | {'ITL p50' if steady else 'TPOT p50'} | "
                     f"{', '.join(f'{v:,.0f}' for v in speeds)} | {measured_decode_tok_s(r):,.1f} | "
                     f"{max(speeds) / min(speeds):.2f} | {names(r.source)} |")
    return "\n".join(lines)


def wave_table(rows: list[SpeedRow]) -> str:
    """Each batched sweep's TPOT p50 against the wave's (planner.speed.wave): the steady step plus the prefill
    steps after the median request's own."""
    lines = ["| model | precision | batch | TPOT p50 ms | predicted ms | error | ITL p50 ms | source |", "|" + "---|" * 8]
    for r in rows:
        tpot = row_wave(r).tpot_s
        lines.append(f"| {r.model} | {r.precision} | {r.concurrency} | {1000 / r.decode_tok_s:.2f} | {1000 * tpot:.2f} | "
                     f"{100 * (r.decode_tok_s * tpot - 1):+.1f}% | {1000 * r.itl_p50_s:.2f} | {names(r.source)} |")
    return "\n".join(lines)


def wave_prefill_table(rows: list[SpeedRow]) -> str:
    """Each batch-64 dense sweep's TTFT p99 over the prefill of all its prompts as the prediction adds it up."""
    from planner.gpus import gpu_preset
    from planner.speed import prefill_s

    lines = ["| model | precision | fitted | prompts x tokens | predicted prefill of all, ms | TTFT p99 ms | "
             "measured / predicted | source |", "|" + "---|" * 8]
    for r in rows:
        spec, p = row_plan(r)
        total = r.concurrency * prefill_s(spec, p.config, gpu_preset(r.gpu), prompt_len=r.input_len)
        p99 = r.ttft_p99_s
        if p99:
            lines.append(f"| {r.model} | {r.precision} | {'no' if r.held_out else 'yes'} | {r.concurrency} x "
                         f"{r.input_len} | {1000 * total:,.0f} | {1000 * p99:,.0f} | {p99 / total:.2f} | "
                         f"{names(r.source)} |")
    return "\n".join(lines)


def main() -> int:
    rows = load_rows()
    fitted = [r for r in rows if not r.held_out]
    held = pooled([r for r in rows if r.held_out and not is_moe(r)])
    moe = pooled([r for r in rows if r.held_out and is_moe(r)])
    print(f"## Fitted rows ({len(fitted)}): what benchmarks/fit_speed.py fits the coefficients to\n")
    print(decode_table(fitted)[0] + "\n\n" + ratio_table(fitted)[0] + "\n")
    failed = False
    for title, group in ((f"Held-out points, dense models ({len(held)}): never used to fit", held),
                         (f"Held-out points, MoE ({len(moe)}): never used to fit; the MoE terms are fitted to "
                          "Qwen3-30B-A3B alone, the MLA layer's cost to DeepSeek-V2-Lite", moe)):
        if not group:
            continue
        print(f"## {title}\n")
        table, decode_failures = decode_table(group)
        ratios, ratio_failures = ratio_table(group)
        print(table + "\n\n" + ratios + "\n")
        pairs = len(ratio_pairs(group))
        print(f"Bar ({'MoE' if group is moe else 'dense'}, held out): decode tok/s within {BAR_BATCH1:.0%} at batch 1 "
              f"and {BAR_BATCHED:.0%} at batch >= 8, FP8 / 16-bit ratio within {BAR_RATIO:.0%}: "
              f"{len(group) - decode_failures} of {len(group)} decode points and {pairs - ratio_failures} of {pairs} "
              f"ratios pass.\n")
        failed |= bool(decode_failures or ratio_failures)
    repeated = [r for r in (*held, *moe) if len(r.waves) > 1]
    print(f"## Held-out points measured in more than one wave ({len(repeated)}): each wave's decode tok/s\n\n"
          f"{waves_table(repeated)}\n")
    batched = [r for r in rows if r.held_out and r.itl_p50_s and r.concurrency >= 8]
    print(f"## The wave's TPOT p50, held-out sweeps at batch >= 8 ({len(batched)}; no bar)\n\n{wave_table(batched)}\n")
    waves = [r for r in rows if r.concurrency == 64 and r.gpu == "h200" and r.itl_p50_s and not r.prompts_cached
             and not is_moe(r)]
    print(f"## The wave's prefill against TTFT p99, dense sweeps at batch 64 ({len(waves)}; no bar)\n\n"
          f"{wave_prefill_table(waves)}\n")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
