import asyncio

import pytest
import torch

from playground.engines.base import GenerationRequest, RequestError, SamplingSettings
from playground.engines.cpu_engine import CpuEngine
from playground.engines.fp8 import Fp8Linear


@pytest.fixture(scope="module")
def engines():
    base, fp8 = CpuEngine("16-bit", fp8=False), CpuEngine("FP8", fp8=True)
    asyncio.run(base.start())
    asyncio.run(fp8.start())
    return base, fp8


def generate(engine, prompt="Why is FP8 fast?", **sampling):
    async def go():
        return [c async for c in engine.stream(GenerationRequest("t", SamplingSettings(**sampling), prompt=prompt))]

    return asyncio.run(go())


def test_fp8_twin_stores_float8_weights_with_amax_over_448_scales_per_merged_layer(engines):
    base, fp8 = engines
    base_linears = {n: m for n, m in base._model.named_modules() if isinstance(m, torch.nn.Linear) and "lm_head" not in n}
    fp8_linears = {n: m for n, m in fp8._model.named_modules() if isinstance(m, Fp8Linear)}
    assert set(base_linears) == set(fp8_linears) and len(fp8_linears) == 30 * 7  # SmolLM2-135M: 30 layers x (q, k, v, o, gate, up, down)
    merged = {"q_proj": ("q_proj", "k_proj", "v_proj"), "k_proj": ("q_proj", "k_proj", "v_proj"),
              "v_proj": ("q_proj", "k_proj", "v_proj"), "gate_proj": ("gate_proj", "up_proj"),
              "up_proj": ("gate_proj", "up_proj")}
    for name, layer in fp8_linears.items():
        assert layer.weight_fp8.dtype == torch.float8_e4m3fn
        parent, child = name.rsplit(".", 1)
        group = merged.get(child, (child,))  # vLLM's qkv_proj and gate_up_proj have one scale each
        expected = max(base_linears[f"{parent}.{c}"].weight.float().abs().max().item() for c in group) / 448
        assert layer.weight_scale.item() == pytest.approx(expected, rel=1e-6)
        assert layer.weight_grid.dtype == base._model.dtype  # no dequantization at use
    assert isinstance(fp8._model.lm_head, torch.nn.Linear)


def test_the_engine_line_names_the_compute_dtype_and_what_fp8_emulates(engines):
    base, fp8 = engines
    dtype = str(base._model.dtype).removeprefix("torch.")
    assert dtype in ("bfloat16", "float32") and fp8._model.dtype == base._model.dtype
    line = fp8.info.status_line()
    assert f"dtype {dtype}" in line and "per-tensor" in line and "per-token" in line and "E4M3" in line
    assert "GPU" not in line


def test_generation_is_real_and_reproducible_with_a_seed(engines):
    base, _ = engines
    first = generate(base, temperature=0.8, max_tokens=12, seed=7)
    second = generate(base, temperature=0.8, max_tokens=12, seed=7)
    other = generate(base, temperature=0.8, max_tokens=12, seed=8)
    text = lambda chunks: "".join(c.text for c in chunks)  # noqa: E731
    assert text(first) == text(second) and text(first) != text(other)
    assert [c.num_output_tokens for c in first] == list(range(1, 13))
    assert first[-1].finished and first[-1].finish_reason == "length"
    assert all(b.t_s > a.t_s for a, b in zip(first, first[1:]))  # timed as they were produced


def test_greedy_fp8_and_16_bit_outputs_start_alike_but_are_different_numerics(engines):
    base, fp8 = engines
    a = "".join(c.text for c in generate(base, temperature=0.0, max_tokens=24))
    b = "".join(c.text for c in generate(fp8, temperature=0.0, max_tokens=24))
    assert a and b and a != b


def test_stop_string_ends_the_answer_before_it(engines):
    base, _ = engines
    full = "".join(c.text for c in generate(base, temperature=0.0, max_tokens=20))
    stop = full[5:8]
    chunks = generate(base, temperature=0.0, max_tokens=20, stop=(stop,))
    text = "".join(c.text for c in chunks)
    assert stop not in text and full.startswith(text) and chunks[-1].finish_reason == "stop"


@pytest.mark.parametrize("sampling, prompt, argument", [
    ({"temperature": -1.0}, "hi", "temperature"),
    ({"top_p": 0.0}, "hi", "top_p"),
    ({"max_tokens": 0}, "hi", "max_tokens"),
    ({"max_tokens": 5000}, "hi", "max_tokens"),
    ({}, "", "prompt"),
    ({}, "x" * 1_000_000, "prompt"),
    ({"max_tokens": 100}, "word " * 2100, "prompt"),
])
def test_bad_requests_name_the_field(engines, sampling, prompt, argument):
    base, _ = engines
    with pytest.raises(RequestError) as e:
        generate(base, prompt=prompt, **sampling)
    assert e.value.argument == argument


def test_abort_stops_a_running_request(engines):
    base, _ = engines

    async def go():
        got = []
        async for chunk in base.stream(GenerationRequest("abort-me", SamplingSettings(max_tokens=500), prompt="go")):
            got.append(chunk)
            if len(got) == 3:
                await base.abort("abort-me")
                break
        return got

    assert len(asyncio.run(go())) == 3
    assert "abort-me" not in base._running


def test_the_compute_dtype_can_be_forced_and_a_bad_value_is_named(monkeypatch):
    from playground.engines import cpu_engine

    monkeypatch.setattr(cpu_engine, "_DTYPE", {})
    monkeypatch.setenv(cpu_engine.DTYPE_ENV, "float32")
    assert cpu_engine.compute_dtype() == torch.float32
    monkeypatch.setattr(cpu_engine, "_DTYPE", {})
    monkeypatch.setenv(cpu_engine.DTYPE_ENV, "fp8")
    with pytest.raises(RequestError, match="PLAYGROUND_CPU_DTYPE: 'fp8' is not bfloat16 or float32"):
        cpu_engine.compute_dtype()


def test_the_start_up_measurement_times_both_dtypes_on_decode_shaped_work():
    from playground.engines.cpu_engine import measure_compute_dtypes

    times = measure_compute_dtypes(repeats=2)
    assert set(times) == {torch.bfloat16, torch.float32} and all(0 < t < 5 for t in times.values())
