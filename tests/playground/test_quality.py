"""The quality diff: pure arithmetic on hand-made rows, then real logits from SmolLM2 and its FP8 twin."""

import asyncio
import math

import pytest

from playground.compare import ColumnSnapshot, compare, divergence_note, score_quality
from playground.engines.base import SamplingSettings
from playground.engines.cpu_engine import CpuEngine
from playground.quality import combine, percentile, quality_diff


def rows(*dists):
    return [{t: math.log(p) for t, p in d.items()} for d in dists]


def test_identical_scorings_give_zero_kl_and_full_agreement():
    ref = rows({1: 0.7, 2: 0.2}, {3: 0.9, 4: 0.05})
    diff = quality_diff([1, 3], ref, ref, "same", "same")
    assert (diff.token_agreement, diff.mean_kl, diff.mean_top1_logprob_gap, diff.first_difference_char) == (1.0, 0.0, 0.0, None)


def test_a_flipped_top_token_lowers_agreement_and_the_kl_matches_hand_arithmetic():
    ref = rows({1: 0.7, 2: 0.2}, {3: 0.9, 4: 0.05})
    cand = rows({1: 0.2, 2: 0.7}, {3: 0.9, 4: 0.05})
    diff = quality_diff([1, 3], ref, cand, "abc", "abd")
    # position 1: KL over {1, 2, rest 0.1}; position 2 identical
    kl_1 = 0.7 * math.log(0.7 / 0.2) + 0.2 * math.log(0.2 / 0.7) + 0.1 * math.log(0.1 / 0.1)
    assert diff.token_agreement == 0.5
    assert diff.mean_kl == pytest.approx(kl_1 / 2)
    assert diff.mean_top1_logprob_gap == pytest.approx((math.log(0.7) - math.log(0.2)) / 2)
    assert diff.first_difference_char == 2


def test_llama_cpp_style_measures_match_hand_arithmetic():
    ref = rows({1: 0.7, 2: 0.2}, {3: 0.9, 4: 0.05})
    cand = rows({1: 0.2, 2: 0.7}, {3: 0.8, 4: 0.15})
    diff = quality_diff([1, 3], ref, cand)
    kl_1 = 0.7 * math.log(0.7 / 0.2) + 0.2 * math.log(0.2 / 0.7)
    kl_2 = 0.9 * math.log(0.9 / 0.8) + 0.05 * math.log(0.05 / 0.15) + 0.05 * math.log(0.05 / 0.05)
    assert diff.token_kls == pytest.approx((kl_1, kl_2))
    # p99 of two values, interpolated as numpy does: the lower one plus 0.99 of the gap
    assert diff.kl_p99 == pytest.approx(min(kl_1, kl_2) + 0.99 * abs(kl_1 - kl_2))
    # Δp: the candidate's probability of the reference's token minus the reference's, averaged
    assert diff.mean_delta_p == pytest.approx(((0.2 - 0.7) + (0.8 - 0.9)) / 2)
    assert diff.same_top == 0.5  # position 1 ranks token 2 first, position 2 agrees on token 3


def test_several_prompts_combine_weighted_by_positions_and_pool_the_percentile():
    ref = rows({1: 0.7, 2: 0.2}, {3: 0.9, 4: 0.05})
    a = quality_diff([1, 3], ref, rows({1: 0.2, 2: 0.7}, {3: 0.9, 4: 0.05}))
    b = quality_diff([1], ref[:1], ref[:1])
    both = combine([a, None, b])
    assert both.positions == 3
    assert both.token_agreement == pytest.approx((0.5 * 2 + 1.0) / 3)
    assert both.mean_kl == pytest.approx(sum(a.token_kls) / 3)
    assert both.kl_p99 == pytest.approx(percentile([*a.token_kls, 0.0], 99))
    assert combine([None]) is None


def snapshot(*texts):
    return ColumnSnapshot(label="x", texts=texts, token_ids=((),) * len(texts), timings=(), finished=True)


def test_divergence_note_says_identical_when_the_engines_agree():
    assert divergence_note(snapshot("Paris is the capital."), snapshot("Paris is the capital.")) == "prompt 1: identical"


def test_divergence_note_names_the_first_differing_character_when_they_do_not():
    note = divergence_note(snapshot("same", "Paris is the capital."), snapshot("same", "Paris was the capital."))
    lines = note.splitlines()
    assert lines[0] == "prompt 1: identical"
    assert lines[1].startswith("prompt 2: first differs at character 6")


@pytest.fixture(scope="module")
def smollm2_engines():
    engines = {"16-bit": CpuEngine("16-bit", fp8=False), "16-bit again": CpuEngine("16-bit again", fp8=False),
               "FP8": CpuEngine("FP8", fp8=True), "FP8 again": CpuEngine("FP8 again", fp8=True)}

    async def start():
        for e in engines.values():
            await e.start()

    asyncio.run(start())
    return engines


def diffs_of(engines, prompts, max_tokens=24, chat=False):
    async def go():
        final = [s async for s in compare(engines, prompts, SamplingSettings(temperature=0, max_tokens=max_tokens),
                                          mode="fair", chat=chat)][-1]
        return await score_quality(engines, prompts, final, chat=chat)

    return asyncio.run(go())


def diff_of(engines, prompt="The capital of France is"):
    return diffs_of(engines, [prompt])[0][0]  # the second column, the first prompt


def test_identical_real_engines_give_kl_0_and_100_percent_agreement(smollm2_engines):
    diff = diff_of([smollm2_engines["16-bit"], smollm2_engines["16-bit again"]])
    assert diff.positions > 0
    assert diff.token_agreement == 1.0 and diff.mean_kl == pytest.approx(0, abs=1e-6)
    assert diff.first_difference_char is None


def test_fp8_weights_change_the_real_logits(smollm2_engines):
    diff = diff_of([smollm2_engines["16-bit"], smollm2_engines["FP8"]])
    assert diff.positions > 0
    assert diff.mean_kl > 1e-4  # FP8 rounding moves the distribution; equal engines would give 0
    assert diff.mean_top1_logprob_gap != 0


def test_every_column_is_scored_against_the_first(smollm2_engines):
    engines = [smollm2_engines["16-bit"], smollm2_engines["FP8"], smollm2_engines["16-bit again"]]
    prompt = "The capital of France is"

    async def go():
        final = [s async for s in compare(engines, [prompt], SamplingSettings(temperature=0, max_tokens=16), mode="fair")][-1]
        return await score_quality(engines, [prompt], final)

    (fp8,), (same,) = asyncio.run(go())
    assert fp8.mean_kl > 1e-4 and fp8.kl_p99 >= fp8.mean_kl
    assert same.mean_kl == pytest.approx(0, abs=1e-6) and same.same_top == 1.0 and same.mean_delta_p == pytest.approx(0, abs=1e-6)


def test_identical_fp8_twins_give_kl_0(smollm2_engines):
    """Two FP8 twins score alike: KL 0, no logprob gap. (Their agreement with the greedy answer may be
    below 100%: the answer was decoded token by token, the scoring is one prefill, and rounding
    activations onto E4M3 turns the two paths' tiny matmul differences into different grid points,
    as batch shapes do on a GPU.)"""
    diff = diff_of([smollm2_engines["FP8"], smollm2_engines["FP8 again"]])
    assert diff.positions > 0
    assert diff.mean_kl == pytest.approx(0, abs=1e-6) and diff.mean_top1_logprob_gap == 0
    assert diff.first_difference_char is None


def test_fp8_changes_a_top_token_on_the_example_prompts(smollm2_engines):
    """On the page's own examples (chat template) FP8's rounding flips some greedy choices: the diff
    the Playground shows is not 100% on a CPU either."""
    import json
    from pathlib import Path

    prompts = json.loads((Path(__file__).resolve().parents[2] / "assets" / "prompts.json").read_text())["prompts"]
    diffs = diffs_of([smollm2_engines["16-bit"], smollm2_engines["FP8"]], prompts, max_tokens=48, chat=True)[0]
    assert all(d.mean_kl > 1e-4 for d in diffs)
    assert min(d.token_agreement for d in diffs) < 1.0
