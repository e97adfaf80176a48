import math

import pytest

from planner import PlannerError, gpu_preset, largest_model, max_batch_size, max_context_len, model_spec, plan, side_by_side_split

H100 = gpu_preset("h100-sxm")


def test_largest_batch_is_whole_kv_blocks_per_sequence():
    spec = model_spec("llama-3-8b")
    p = plan(spec, H100, max_model_len=4096)
    low = p.kv_tokens - p.kv_tokens_spread  # conservative: the low end of the plan's ±
    assert max_batch_size(spec, H100, context_len=4096, max_model_len=4096) == min(p.max_num_seqs, low // 4096)
    assert max_batch_size(spec, H100, context_len=1000, max_model_len=4096) == min(p.max_num_seqs, low // (math.ceil(1000 / 16) * 16))


def test_largest_batch_is_capped_by_max_num_seqs():
    assert max_batch_size(model_spec("llama-3-8b"), H100, context_len=16, max_model_len=4096, max_num_seqs=64) == 64


def test_longest_context_divides_the_cache_between_sequences():
    spec = model_spec("llama-3.1-8b")
    one = max_context_len(spec, H100, batch_size=1)
    four = max_context_len(spec, H100, batch_size=4)
    assert one == 131072  # the model's limit: the cache holds more than that
    p = plan(spec, H100, max_model_len=131072)
    assert four == ((p.kv_tokens - p.kv_tokens_spread) // 4) // 16 * 16
    assert four < one


def test_largest_model_lists_what_fits_biggest_first():
    plans = largest_model(H100, quantization="fp8", max_model_len=4096)
    names = [p.model for p in plans]
    assert all(p.fits for p in plans)
    assert "qwen2.5-72b" not in names and "llama-2-70b" in names
    sizes = [model_spec(n).total_params for n in names]
    assert sizes == sorted(sizes, reverse=True)
    small = [p.model for p in largest_model(gpu_preset("rtx-4090"), max_model_len=4096)]
    assert "llama-2-13b" not in small and "phi-3-mini" in small


def test_side_by_side_split_gives_each_engine_the_kv_it_needs_and_leaves_room_for_both():
    spec = model_spec("llama-2-7b")
    split = side_by_side_split(spec, H100, batch_size=16, context_len=1024)
    assert split.fits
    assert split.baseline.num_gpu_blocks >= 16 * 64 and split.fp8.num_gpu_blocks >= 16 * 64
    outside = 2 * (0.55 * 2**30 + 32 * 0.03 * 2**30)
    assert (split.baseline_utilization + split.fp8_utilization) * H100.cuda_total_bytes + outside <= H100.cuda_total_bytes


def test_side_by_side_split_that_cannot_fit_says_so():
    split = side_by_side_split(model_spec("llama-2-7b"), H100, batch_size=256, context_len=4096)
    assert not split.fits and "cannot hold" in split.reason


def test_fit_questions_validate_their_own_arguments():
    with pytest.raises(PlannerError) as e:
        max_batch_size(model_spec("llama-2-7b"), H100, context_len=10**6)
    assert e.value.argument == "context_len"
    with pytest.raises(PlannerError) as e:
        max_context_len(model_spec("llama-2-7b"), H100, batch_size=0)
    assert e.value.argument == "batch_size"
