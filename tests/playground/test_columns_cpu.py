"""Several columns on the CPU through the Playground service: a folder, its online FP8 twin, the same
folder again, a broken folder; and llm-compressor's FP8-dynamic checkpoint beside the embedded model
and its twin where llm-compressor is installed."""

import asyncio
import importlib.util
import json

import pytest

import app
from playground.engines.base import RequestError, SamplingSettings
from playground.runtime import EngineRuntime
from playground.service import ComparisonResult, Playground

GREEDY = SamplingSettings(temperature=0.0, max_tokens=12)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    from playground.engines.smollm2 import write_hf_folder

    return str(write_hf_folder(tmp_path_factory.mktemp("models") / "smollm2-135m"))


def playground_of(tmp_path, *columns) -> Playground:
    args = app.build_parser().parse_args([x for c in columns for x in ("--engine", c)])
    engines, _ = app.build_engines(args)
    playground = Playground(engines, EngineRuntime(), tmp_path, "cpu", columns=True)  # as app.main builds it
    playground.start_in_background().join()
    return playground


def compare(playground, prompt="What is the capital of France?") -> ComparisonResult:
    async def go():
        async for item in playground.compare(prompt, GREEDY):
            if isinstance(item, ComparisonResult):
                return item

    return asyncio.run(go())


@pytest.fixture(scope="module")
def four_columns(folder, tmp_path_factory):
    broken = tmp_path_factory.mktemp("no-config")
    return playground_of(tmp_path_factory.mktemp("data"), f"16-bit={folder}", f"FP8={folder},quantization=fp8",
                         f"16-bit again={folder}", f"Broken={broken}")


def test_three_columns_and_a_broken_one_each_answer_or_say_why(four_columns):
    result = compare(four_columns)
    labels = [s.label for s in result.snapshots]
    assert labels == ["16-bit", "FP8", "16-bit again", "Broken"]
    for s in result.snapshots[:3]:
        assert s.error is None and s.texts[0] and s.decode_tok_s > 0
    assert "has no config.json" in result.snapshots[3].error  # that column's error; the others went on
    fp8, same, missing = result.quality_by_column
    assert fp8[0].mean_kl > 1e-4  # online FP8 moves the distribution
    # the same folder again: the first column's answer, token for token
    assert same[0].mean_kl == pytest.approx(0, abs=1e-6) and same[0].token_agreement == 1.0
    assert result.snapshots[2].texts == result.snapshots[0].texts
    assert missing == (None,)


def test_the_benchmark_sweeps_the_columns_by_label(four_columns):
    from playground.bench.sweep import SweepSpec

    labels = ("16-bit", "FP8", "16-bit again")
    assert four_columns.available_precisions()[:3] == list(labels)
    spec = SweepSpec(concurrency=(1,), input_len=8, output_len=4, num_prompts=1, repeats=1, precisions=labels)
    _, points, status = asyncio.run(four_columns.benchmark(spec, lambda *a: None))
    assert status == "complete" and [p.precision for p in points] == list(labels)
    assert all(p.metrics.output_tok_s > 0 for p in points)


def test_online_fp8_of_a_checkpoint_that_is_already_quantized_is_that_columns_error(tmp_path):
    from playground.engines.cpu_engine import CpuEngine

    quantized = tmp_path / "ct"
    quantized.mkdir()  # refused from config.json alone, before any weights are read
    (quantized / "config.json").write_text(json.dumps({"model_type": "llama",
                                                       "quantization_config": {"quant_method": "compressed-tensors"}}))
    with pytest.raises(RequestError, match="quantization=fp8 conflicts with .*compressed-tensors"):
        asyncio.run(CpuEngine("FP8 of FP8", fp8=True, folder=str(quantized)).start())
    with pytest.raises(RequestError, match="kv-cache-dtype=fp8 needs the vLLM backend"):
        asyncio.run(CpuEngine("FP8 KV", fp8=False, kv_cache_dtype="fp8").start())


@pytest.mark.skipif(importlib.util.find_spec("llmcompressor") is None,
                    reason="llm-compressor is an optional install (playground/fp8_checkpoint.py says how)")
def test_llm_compressors_fp8_dynamic_checkpoint_is_a_column_beside_online_fp8(tmp_path):
    from playground.model_dirs import write_model_dir

    checkpoint = write_model_dir("smollm2-135m-fp8-dynamic", tmp_path / "fp8-dynamic")
    quant = json.loads((checkpoint / "config.json").read_text())["quantization_config"]
    assert quant["quant_method"] == "compressed-tensors" and quant["ignore"] == ["lm_head"]
    weights = quant["config_groups"]["group_0"]["weights"]
    assert (weights["type"], weights["num_bits"], weights["strategy"]) == ("float", 8, "channel")
    playground = playground_of(tmp_path, "16-bit=smollm2-135m", "FP8=smollm2-135m,quantization=fp8",
                               f"FP8 checkpoint={checkpoint}")
    result = compare(playground)
    assert "compressed-tensors" in playground.engines[2].info.quantization
    per_tensor, per_channel = (diffs[0] for diffs in result.quality_by_column)
    assert result.snapshots[2].error is None and result.snapshots[2].texts[0]
    assert per_channel.mean_kl > 0 and per_channel.positions == per_tensor.positions
