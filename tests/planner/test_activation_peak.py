"""The profile run's torch peak ("torch peak memory increase") on vLLM's V1 model runner: the forward pass or
the dummy sampler run after it, whichever is larger, against what vLLM logged."""

import json
from pathlib import Path

import pytest

from planner import gpu_preset, model_spec, plan
from planner.gpus import GIB
from planner.measured import plan_measured_row
from planner.memory import moe_workspace_bytes, runs_on_v1_model_runner, v1_dummy_sampler_bytes

ROWS = json.loads((Path(__file__).resolve().parents[1] / "data/vllm_kv_measurements.json").read_text())["rows"]
V1_ROWS = [r for r in ROWS if r.get("vllm_torch_peak_increase_gib") is not None
           and runs_on_v1_model_runner(model_spec(r["model"]))]
H200 = gpu_preset("h200")


@pytest.mark.parametrize("row", V1_ROWS, ids=lambda r: f"{r['model']}-{r['quantization']}-tp{r.get('tensor_parallel_size', 1)}"
                                                      f"-seqs{r.get('max_num_seqs') or 'default'}")
def test_v1_runner_peak_is_within_a_fifth_of_a_gib_of_what_vllm_logged(row):
    peak_gib = plan_measured_row(row).activation_peak_bytes / GIB
    assert abs(peak_gib - row["vllm_torch_peak_increase_gib"]) <= 0.2


def test_gpt_oss_peak_follows_max_num_seqs_as_logged_at_1024_and_256_sequences():
    # vLLM logged 2.90 GiB at 1,024 sequences (the dummy sampler run) and 1.07 at 256 (the forward pass)
    at = {seqs: plan("gpt-oss-20b", H200, dtype="auto", max_model_len=8192, enforce_eager=True,
                     max_num_seqs=seqs).activation_peak_bytes / GIB for seqs in (1024, 256)}
    assert abs(at[1024] - 2.90) <= 0.1
    assert abs(at[256] - 1.07) <= 0.2


def test_the_sampler_run_costs_fourteen_bytes_a_logit_in_16_bit_and_twelve_in_float32():
    # logits in the model dtype, their float32 copy (none when already float32), float32 probs and noise
    spec = model_spec("gpt-oss-20b")
    for act_bytes, per_logit in ((2, 14), (4, 12)):
        grow = (v1_dummy_sampler_bytes(spec, act_bytes=act_bytes, max_num_batched_tokens=16384, max_num_seqs=1024)
                - v1_dummy_sampler_bytes(spec, act_bytes=act_bytes, max_num_batched_tokens=16384, max_num_seqs=512))
        assert grow == 512 * spec.vocab_size * per_logit


def test_the_moe_workspace_outlives_the_forward_for_triton_experts_but_not_for_gpt_oss_mxfp4():
    # TritonExperts' WorkspaceManager buffer: (M, topk, max(N/2, K)) + (M, topk, max(N, K)) in 16-bit;
    # Qwen3-30B-A3B's K (2,048) is the larger side at TP 1 and 2, so the buffer is the same 1 GiB on each GPU
    qwen = model_spec("qwen3-30b-a3b")
    for tp in (1, 2):
        assert moe_workspace_bytes(qwen, act_bytes=2, max_num_batched_tokens=16384, tp=tp) == 16384 * 8 * 2048 * 2 * 2
    # the monolithic MXFP4 Triton experts allocate per call: nothing is held beside the sampler run
    assert moe_workspace_bytes(model_spec("gpt-oss-120b"), act_bytes=2, max_num_batched_tokens=16384) == 0
