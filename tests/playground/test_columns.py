"""The comparison's columns: --engine LABEL=FOLDER[,settings], what a folder may say, the planner's split of one GPU."""

import json

import pytest

from planner import EngineConfig, gpu_preset, model_spec, resident_split, side_by_side_split
from playground import views
from playground.columns import ColumnSpec, check_column, parse_columns
from playground.engines.base import RequestError

H200 = gpu_preset("h200")


def test_a_column_is_a_label_a_folder_and_its_engine_settings():
    c = ColumnSpec.parse("FP8 + FP8 KV=/models/llama, quantization=fp8, kv-cache-dtype=fp8")
    assert (c.label, c.folder, c.quantization, c.kv_cache_dtype) == ("FP8 + FP8 KV", "/models/llama", "fp8", "fp8")
    plain = ColumnSpec.parse("BF16=/models/llama")
    assert (plain.quantization, plain.kv_cache_dtype) == (None, "auto")
    assert ColumnSpec.parse("x=/m,kv_cache_dtype=fp8_e5m2").kv_cache_dtype == "fp8_e5m2"  # vLLM's spelling too


@pytest.mark.parametrize("text, words", [
    ("/models/llama", "expected LABEL=VALUE"),
    ("FP8=/m,quant=fp8", "'quant=fp8' is not a column setting"),
    ("FP8=/m,quantization=int4", "quantization='int4' is not one of None, fp8"),
    ("FP8=/m,kv-cache-dtype=int8", "kv-cache-dtype='int8' is not one of auto, fp8"),
])
def test_a_malformed_column_names_the_flag_and_what_is_allowed(text, words):
    with pytest.raises(RequestError, match="engine") as e:
        ColumnSpec.parse(text)
    assert words in str(e.value)


@pytest.mark.parametrize("n", [1, 5])
def test_the_comparison_takes_two_to_four_columns(n):
    with pytest.raises(RequestError) as e:
        parse_columns([f"c{i}=/m" for i in range(n)])
    assert "engine" in str(e.value) and "2 to 4" in str(e.value)


def test_column_labels_must_differ():
    with pytest.raises(RequestError, match="labels must differ"):
        parse_columns(["FP8=/a", "fp8=/b"])


def folder_with(tmp_path, name, config):
    folder = tmp_path / name
    folder.mkdir()
    if config is not None:
        (folder / "config.json").write_text(json.dumps(config))
    return str(folder)


def test_a_folder_without_config_json_is_that_columns_error(tmp_path):
    empty = folder_with(tmp_path, "empty", None)
    with pytest.raises(RequestError, match="has no config.json"):
        check_column(ColumnSpec("A", empty))
    with pytest.raises(RequestError, match="is not a folder"):
        check_column(ColumnSpec("A", str(tmp_path / "missing")))


def test_online_fp8_on_a_checkpoint_that_names_another_method_is_refused_as_vllm_refuses_it(tmp_path):
    ct = folder_with(tmp_path, "ct", {"model_type": "llama", "quantization_config": {"quant_method": "compressed-tensors"}})
    assert check_column(ColumnSpec("ckpt", ct)) == "compressed-tensors"  # vLLM reads the method from config.json
    with pytest.raises(RequestError, match="quantization=fp8 conflicts with .*compressed-tensors"):
        check_column(ColumnSpec("ckpt", ct, "fp8"))
    plain = folder_with(tmp_path, "plain", {"model_type": "llama"})
    assert check_column(ColumnSpec("FP8", plain, "fp8")) is None  # online FP8 of a 16-bit folder


def three_columns(name="llama-3.1-8b"):
    spec = model_spec(name)
    base = EngineConfig(model=spec.name, dtype="bfloat16")
    return [("BF16", spec, base), ("FP8", spec, EngineConfig(model=spec.name, dtype="bfloat16", quantization="fp8")),
            ("FP8 + FP8 KV", spec, EngineConfig(model=spec.name, dtype="bfloat16", quantization="fp8", kv_cache_dtype="fp8"))]


def test_three_columns_share_one_gpu_each_with_the_kv_it_needs():
    split = resident_split(three_columns(), H200, batch_size=16, context_len=1024)
    assert split.fits and split.labels == ("BF16", "FP8", "FP8 + FP8 KV")
    assert all(p.fits and p.num_gpu_blocks >= p.blocks_for(16, 1024) for p in split.plans)
    # FP8 weights take half the memory: its share is smaller, and the shares leave room for every context
    assert split.utilizations[1] < split.utilizations[0] and sum(split.utilizations) < 1
    assert "BF16 at" in split.reason and "FP8 + FP8 KV at" in split.reason
    assert "3 engines on one GPU" in views.resident_split_text(split)


def test_a_pre_quantized_column_gets_the_share_its_own_scheme_needs():
    # the published FP8-dynamic checkpoint beside its 16-bit original: sized by its config.json (8.5 GiB of
    # weights, not 15), so its share is the online FP8 twin's, not the 16-bit one's
    spec, ckpt = model_spec("llama-3.1-8b"), model_spec("llama-3.1-8b-instruct-fp8-dynamic")
    columns = three_columns()[:2] + [("FP8 checkpoint", ckpt, EngineConfig(model=ckpt.name, dtype="bfloat16"))]
    split = resident_split(columns, H200, batch_size=16, context_len=1024)
    assert split.fits and split.labels[2] == "FP8 checkpoint"
    bf16, online, checkpoint = split.plans
    assert checkpoint.weights_bytes < 0.6 * bf16.weights_bytes
    assert abs(checkpoint.weights_bytes - online.weights_bytes) < 0.05 * online.weights_bytes
    assert split.utilizations[2] < split.utilizations[0]
    assert "compressed-tensors" in checkpoint.weights_scheme


def test_more_columns_than_fit_get_the_planners_message_naming_each_need():
    big = three_columns("llama-3.1-70b")
    split = resident_split(big, H200, batch_size=16, context_len=1024)
    assert not split.fits
    assert "cannot hold 16 x 1024 tokens" in split.reason and "use fewer columns" in split.reason


def test_two_columns_split_as_the_side_by_side_split_always_did():
    spec = model_spec("llama-2-7b")
    pair = side_by_side_split(spec, gpu_preset("h100-sxm"), batch_size=16, context_len=1024)
    general = resident_split([("16-bit", spec, EngineConfig(model=spec.name)),
                              ("FP8", spec, EngineConfig(model=spec.name, quantization="fp8"))],
                             gpu_preset("h100-sxm"), batch_size=16, context_len=1024)
    assert (pair.baseline_utilization, pair.fp8_utilization) == general.utilizations
    assert pair.reason.startswith("both fit: 16-bit at")


def test_the_bench_cli_sweeps_vllm_columns_by_label_each_with_its_own_folder_and_settings(tmp_path):
    from playground.bench.__main__ import _vllm_config, build_parser

    base = folder_with(tmp_path, "llama", {"model_type": "llama"})
    ckpt = folder_with(tmp_path, "ckpt", {"model_type": "llama", "quantization_config": {"quant_method": "fp8"}})
    args = build_parser().parse_args(["--backend", "vllm", "--load-format", "dummy", "--max-model-len", "1024",
                                      "--engine", f"BF16={base}", "--engine", f"FP8={base},quantization=fp8",
                                      "--engine", f"FP8 checkpoint={ckpt},kv-cache-dtype=fp8"])
    config, names = _vllm_config(args)
    assert names == ("BF16", "FP8", "FP8 checkpoint")
    engines = [config.for_precision(n) for n in names]
    assert [(e.model, e.quantization, e.kv_cache_dtype) for e in engines] == [
        (base, None, "auto"), (base, "fp8", "auto"), (ckpt, None, "fp8")]
    assert all(e.load_format == "dummy" and e.max_model_len == 1024 for e in engines)


def test_the_bench_cli_refuses_a_bad_column_before_any_engine_starts(tmp_path, capsys):
    from playground.bench.__main__ import main

    base = folder_with(tmp_path, "llama", {"model_type": "llama"})
    assert main(["--backend", "vllm", "--engine", f"A={base}", "--engine", f"B={tmp_path / 'missing'}"]) == 2
    assert "missing" in capsys.readouterr().err
    assert main(["--backend", "vllm", "--engine", f"A={base}"]) == 2  # one column is not a comparison
    assert "2 to 4" in capsys.readouterr().err
    assert main(["--backend", "vllm", "--model", base, "--engine", f"A={base}", "--engine", f"B={base}"]) == 2
    assert "drop --model" in capsys.readouterr().err
