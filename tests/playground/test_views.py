from planner import gpu_preset, model_spec, plan, side_by_side_split
from planner.nvml import GpuProcess, GpuReading
from playground import views


def test_gpu_readings_show_free_memory_processes_and_bandwidth():
    reading = GpuReading(index=0, name="NVIDIA H100 80GB HBM3", total_bytes=85_520_809_984, free_bytes=40 * 2**30,
                         used_bytes=39 * 2**30, reserved_bytes=503_316_480, processes=(GpuProcess(7, 38 * 2**30),),
                         compute_capability=(9, 0), bandwidth_gb_s=3352.32, driver_version="580.159.04", power_w=70.0)
    text = views.gpu_readings_text([reading])
    assert "40.00 of 79.65 GiB free" in text and "pid 7 38.0 GiB" in text and "3,352 GB/s" in text
    assert "presets" in views.gpu_readings_text([])


def test_plan_table_shows_the_verdict_tokens_and_advice():
    fitting = plan(model_spec("llama-2-7b"), gpu_preset("h100-sxm"), max_model_len=2048)
    ok = views.plan_table(fitting)
    assert ok.startswith("**Fits**") and f"{fitting.kv_tokens:,}" in ok
    bad = views.plan_table(plan(model_spec("llama-3.1-70b"), gpu_preset("h100-sxm"), max_model_len=8192))
    assert bad.startswith("**Does not fit**") and "tensor_parallel_size=2" in bad and "short by" in bad
    assert "None" not in bad and "-" + "0" not in bad.split("sizes from")[0].replace("--", "")
    split = views.split_text(side_by_side_split(model_spec("llama-2-7b"), gpu_preset("h100-sxm"), batch_size=16, context_len=1024))
    assert "16-bit engine at **0.5**" in split


def test_sweep_status_says_failed_and_cancelled_plainly():
    from playground.ui.bench_tab import sweep_status

    assert sweep_status("complete", 3) == "Complete: saved as run #3."
    assert sweep_status("cancelled", 4).startswith("Cancelled") and "#4" in sweep_status("cancelled", 4)
    failed = sweep_status("failed: RuntimeError: engine died", 5)
    assert failed.startswith("Failed (RuntimeError: engine died)") and "marked failed" in failed
    assert "Complete" not in failed and "Complete" not in sweep_status("cancelled", 4)


def test_speed_words_never_say_a_fraction_faster():
    from playground.charts import speed_words

    assert speed_words(1.52) == "1.52× faster"
    assert speed_words(0.4) == "2.50× slower"
    assert speed_words(1.0) == "1.00× faster"


def test_benchmark_charts_use_the_measured_concurrencies_as_categories():
    from playground.charts import speedup, throughput

    rows = [{"precision": p, "concurrency": c, "output_tok_s": v, "ttft_p50_s": 0.1, "tpot_p50_s": 0.01}
            for p, c, v in (("fp16", 1, 10.0), ("fp16", 64, 100.0), ("fp8", 1, 4.0), ("fp8", 64, 150.0))]
    for fig in (throughput(rows), speedup(rows)):
        assert fig.layout.xaxis.type == "category" and list(fig.layout.xaxis.categoryarray) == ["1", "64"]
    words = [d[0] for d in speedup(rows).data[0].customdata]
    assert words == ["2.50× slower", "1.50× faster"]
    assert "roofline" not in throughput(rows).layout.title.text  # no roofline without a GPU


def test_the_batch_chart_says_when_nothing_fits():
    from playground.charts import batch_vs_context

    empty = batch_vs_context({"fp16": [(512, 0), (1024, 0)], "fp8": [(512, 0)]})
    assert "Nothing fits" in empty.layout.title.text and tuple(empty.layout.yaxis.range) == (0, 1)
    some = batch_vs_context({"fp16": [(512, 0)], "fp8": [(512, 3)]})
    assert some.layout.title.text == "Largest batch vs context length"


def test_the_need_text_offers_the_pinned_serve_line_only_when_it_fits():
    from planner import gpu_preset, min_utilization_for
    from playground.views import need_text

    fits = min_utilization_for("llama-3.1-8b", gpu_preset("h100-sxm"), concurrency=8, context_len=4096)
    text = need_text(fits)
    assert fits.serve_command in text and fits.pinned_serve_command in text
    assert f"--kv-cache-memory-bytes {fits.kv_cache_memory_bytes}" in text
    refused = min_utilization_for("llama-3.1-70b", gpu_preset("rtx-4090"), concurrency=8, context_len=4096)
    assert not refused.fits and "--kv-cache-memory-bytes" not in need_text(refused)


def test_the_verdict_and_the_table_carry_the_same_kv_and_sequence_figures():
    p = plan(model_spec("llama-3-8b"), gpu_preset("h100-sxm"), max_model_len=8192)
    text = views.plan_table(p)
    verdict, table = text.split("\n\n", 1)
    low = p.kv_tokens - p.kv_tokens_spread
    assert f"{low:,}+ KV tokens" in verdict and f"{low:,}+" in table.split("KV tokens |")[1].split("\n")[0]
    seqs = f"{low / p.max_model_len:.1f}"
    assert f"{seqs} sequences" in verdict and f"({seqs}x the context" in table


def test_a_plan_that_does_not_fit_shows_one_shortfall_and_prints_the_suggested_line():
    from planner import compare_precisions

    rows = compare_precisions(model_spec("llama-3.1-70b"), gpu_preset("rtx-4090"), max_model_len=8192)
    p = rows[0].plan
    short = f"short by {p.shortfall_bytes / 2**30:.2f} GiB"
    assert short in views.precision_table(rows) and short in p.reason
    text = views.plan_table(p)
    assert p.advice and p.advice[0].config.command("serve") in text
    assert p.config.command("serve") not in text  # the failing line is not offered to run
    assert "meta-llama/Llama-3.1-70B" in text and "vllm serve llama-3.1-70b" not in text
    assert all(s.why and f"({s.why})" in text for s in p.advice)


def test_each_suggestion_carries_the_kv_figure_its_own_verdict_will_show():
    """Once applied, the plan's verdict says 'N+ KV tokens': the list of suggestions says the same N (a
    plan that does not fit has no KV tokens of its own to scale a ± from)."""
    p = plan(model_spec("qwen3-32b"), gpu_preset("rtx-4090"), max_model_len=4096)
    text = views.plan_table(p)
    assert p.kv_tokens == 0 and p.advice
    for s in p.advice:
        applied = plan(s.config, gpu_preset("rtx-4090"))
        figure = applied.reason.split(" KV tokens")[0]
        assert f"\n- {s.change}: {figure} KV tokens ({s.why})" in text, (figure, text)


def test_a_pasted_config_prints_a_placeholder_for_the_model_not_its_label():
    import json

    from planner.engine_config import MODEL_PLACEHOLDER
    from planner.models import catalog_config

    pasted = model_spec(json.dumps(catalog_config("llama-2-7b")), name="pasted config.json", allow_paths=False)
    text = views.plan_table(plan(pasted, gpu_preset("h100-sxm"), max_model_len=2048))
    assert f"vllm serve {MODEL_PLACEHOLDER} " in text and "pasted config.json" not in text.split("sizes from")[1]


def test_a_one_token_sweep_says_tpot_is_undefined_and_draws_no_tpot_line():
    from playground.charts import latency
    from playground.ui.bench_tab import table

    rows = [{"precision": p, "concurrency": 1, "output_tok_s": 5.0, "ttft_p50_s": 0.2, "ttft_p99_s": 0.3,
             "tpot_p50_s": None, "tpot_p99_s": None} for p in ("fp16", "fp8")]
    text = table(rows)
    assert "| undefined |" in text and "0.0 |" not in text and "one output token" in text
    fig = latency(rows)
    assert fig.data and not any("TPOT" in trace.name for trace in fig.data) and "TPOT undefined" in fig.layout.title.text.replace("<br>", " ")


def test_the_latency_chart_labels_its_log_axis_in_1_2_5_steps_around_every_point():
    """A narrow range (a CPU sweep's 400-700 ms) got plotly's label every hundred, drawn over each other at 390 px."""
    import math

    from playground.charts import latency

    rows = [{"precision": p, "concurrency": 1, "output_tok_s": 5.0, "ttft_p50_s": t, "ttft_p99_s": t * 1.2,
             "tpot_p50_s": t / 1.5, "tpot_p99_s": t / 1.4} for p, t in (("fp16", 0.5), ("fp8", 0.58))]
    axis = latency(rows).layout.yaxis
    assert list(axis.tickvals) == [200, 500, 1000] and list(axis.ticktext) == ["200", "500", "1,000"]
    values = [r[k] * 1000 for r in rows for k in r if k.startswith(("ttft", "tpot"))]
    assert 10 ** axis.range[0] < min(values) and max(values) < 10 ** axis.range[1]
    assert math.isclose(10 ** axis.range[0], 200 / 10 ** 0.05)


def _snapshot(label, tok_s, n=20):
    """A finished column that decoded n tokens at tok_s after a 0.1 s first token."""
    from playground.compare import ColumnSnapshot
    from playground.metrics import RequestTiming

    chunks = tuple(0.1 + i / tok_s for i in range(n))
    return ColumnSnapshot(label, ("text",), ((1,) * n,), (RequestTiming(0.0, chunks, n, 5),), True, "done")


def test_the_cpu_headline_leads_with_the_quality_diff_and_calls_its_speeds_cpu_speeds():
    from playground.quality import QualityDiff

    diffs = [QualityDiff(40, 0.95, 0.02, 0.0, 10), QualityDiff(40, 0.90, 0.04, 0.0, 3)]
    text = views.headline_for("cpu")([_snapshot("16-bit", 20.0), _snapshot("FP8", 19.0)], "fair", [diffs])
    first = text.splitlines()[0]
    assert "92.5%" in first and "KL 0.0300" in first  # the mean of the two prompts leads
    assert "On this CPU: FP8 19.0 vs 16-bit 20.0 tok/s" in text and text.count("CPU speeds, not FP8's") == 1
    assert "to itself" not in text.split("**FP8 on a GPU")[0]  # only the recorded GPU runs had a GPU
    assert "slower" not in text and "faster" not in text


def test_the_cpu_first_screen_shows_every_recorded_gpu_figure_with_its_source_and_command():
    records = views.recorded_gpu_figures()
    assert {r["gpu"] for r in records} >= {"NVIDIA H100 80GB HBM3", "NVIDIA H200"}
    text = views.headline_placeholder("cpu")
    assert "CPU speeds, not FP8's" in text
    for r in records:
        assert f"{r['fp8_over_bf16']:.2f}×" in text and r["source"] in text and r["command"] in text and r["date"] in text


def test_gpu_wording_only_where_there_is_a_gpu():
    gpu = views.headline_for("vllm")([_snapshot("BF16", 100.0), _snapshot("FP8", 150.0)], "fair")
    assert "FP8 is **1.50× faster** than BF16" in gpu and "GPU to itself" in gpu
    assert all("GPU" not in label for label, _ in views.mode_choices("cpu"))
    assert all("GPU" in label for label, _ in views.mode_choices("vllm"))
    assert "GPU" not in views.cpu_headline([_snapshot("16-bit", 20.0), _snapshot("FP8", 19.0)], (), records=[{
        "model": "m", "gpu": "G", "bf16_decode_tok_s": 1, "fp8_decode_tok_s": 1, "fp8_over_bf16": 1, "date": "d",
        "what": "w", "weights": "x", "source": "s", "command": "c"}]).split("**FP8 on a GPU")[0].replace(
        "this machine has no GPU", "")


class _ReadyEngine:
    """What engine_line reads of a runtime.SupervisedEngine: a started engine's info."""

    ready, restarts = True, 0

    def __init__(self, info):
        self.info = info


def _cpu_info(label: str, quantization: str | None, dtype: str = "float32 (the faster on this CPU)"):
    from playground.engines.base import EngineInfo

    return EngineInfo(backend="cpu", label=label, model="SmolLM2-135M-Instruct (CPU)", dtype=dtype,
                      quantization=quantization, kv_cache_dtype=dtype.split(" ")[0], max_model_len=2048)


def test_the_cpu_engine_line_names_the_compute_dtype_apart_from_the_weights():
    plain = views.engine_line(_ReadyEngine(_cpu_info("16-bit", None)))
    fp8 = views.engine_line(_ReadyEngine(_cpu_info("FP8", "fp8 emulated: E4M3 weights …", "bfloat16 (the faster on this CPU)")))
    summary = lambda line: line.split("<summary>")[1].split("</summary>")[0]  # noqa: E731
    assert summary(plain) == "<b>16-bit</b>: SmolLM2-135M-Instruct, 16-bit model computed in float32 on this CPU"
    assert summary(fp8) == ("<b>FP8</b>: SmolLM2-135M-Instruct, FP8 weights (E4M3, rounded once at load), "
                            "computed in bfloat16 on this CPU")
    assert "float32 weights" not in plain and "GPU" not in plain + fp8


def test_a_cpu_column_from_an_fp8_checkpoint_says_its_weights_came_from_the_checkpoint():
    info = _cpu_info("ckpt", "compressed-tensors FP8 from config.json: the checkpoint's E4M3 weights and scales")
    assert "FP8 weights (E4M3, from the checkpoint), computed in float32 on this CPU" in views.engine_line(_ReadyEngine(info))


def test_a_gpu_engine_line_says_its_weights_kv_cache_and_gpu():
    from playground.engines.base import EngineInfo

    info = EngineInfo(backend="vllm", label="FP8", model="meta-llama/Llama-3.1-8B", dtype="bfloat16", quantization="fp8",
                      kv_cache_dtype="fp8", max_model_len=4096, kv_tokens=100_000, gpu_name="NVIDIA H200")
    assert ("<b>FP8</b>: Llama-3.1-8B, FP8 weights, FP8 KV cache, on NVIDIA H200, room for 100,000 tokens of KV cache"
            in views.engine_line(_ReadyEngine(info)))


def _point(precision: str, concurrency: int, goodput: float | None, slo: str = "ttft:500 tpot:50") -> dict:
    return {"precision": precision, "concurrency": concurrency, "goodput_requests_per_s": goodput, "slo": slo}


def test_the_goodput_ratio_is_said_in_words_with_the_sweeps_slo_at_each_precisions_best():
    rows = [_point("fp16", 16, 21.33), _point("fp16", 64, 56.5), _point("fp8", 16, 32.0), _point("fp8", 64, 85.5)]
    assert views.goodput_text(rows, "fp16", "vllm") == (
        "At TTFT ≤ 500 ms and TPOT ≤ 50 ms, **FP8 serves 1.51×** the requests per second of 16-bit on this GPU "
        "(each at its best of the sweep: 85.50 req/s at concurrency 64, against 56.50 req/s at concurrency 64).")
    three = views.goodput_text([_point(p, 1, g, "ttft:200 tpot:20 e2el:2000") for p, g in
                                (("fp16", 2.0), ("fp8", 3.0), ("fp8-kv8", 4.0))], "fp16", "cpu")
    assert three.startswith("At TTFT ≤ 200 ms, TPOT ≤ 20 ms and end-to-end latency ≤ 2000 ms, **FP8 serves 1.50×**")
    assert "**FP8 with an FP8 KV cache serves 2.00×** the requests per second of 16-bit on this CPU" in three


def test_a_baseline_with_no_goodput_is_said_so_instead_of_a_ratio():
    text = views.goodput_text([_point("fp16", 1, 0.0), _point("fp8", 1, 0.0), _point("fp8", 4, 1.25)], "fp16", "cpu")
    assert text == ("At TTFT ≤ 500 ms and TPOT ≤ 50 ms, 16-bit served no request within the SLO at any concurrency "
                    "of this sweep on this CPU, so there is no ratio; FP8 served 1.25 req/s at concurrency 4.")
    assert "none either" in views.goodput_text([_point("fp16", 1, 0.0), _point("fp8", 1, 0.0)], "fp16", "cpu")


def test_no_goodput_sentence_for_one_precision_or_a_sweep_without_an_slo():
    assert views.goodput_text([_point("fp16", 1, 2.0), _point("fp16", 4, 3.0)], "fp16", "vllm") == ""
    assert views.goodput_text([_point("fp16", 1, None, ""), _point("fp8", 1, None, "")], "fp16", "vllm") == ""


def test_the_precision_table_names_the_context_and_the_batch_its_fit_answers_are_for():
    from planner import compare_precisions, gpu_preset

    rows = compare_precisions("llama-3-8b", gpu_preset("h100-sxm"), context_len=4096, batch_size=32)
    table = views.precision_table(rows)
    fp16 = rows[0]
    assert f"| largest batch | {fp16.largest_batch:,} sequences of 4,096 tokens |" in table
    assert f"{fp16.longest_context:,} tokens for 32 sequences" in table


def test_a_stopped_partial_run_on_the_cpu_keeps_the_recorded_gpu_figures_and_gives_no_ratio():
    from playground.compare import ColumnSnapshot
    from playground.metrics import RequestTiming

    running = ColumnSnapshot("FP8", ("te",), ((1, 2),), (RequestTiming(0.0, (0.1, 0.2), 2, 5),), False, "streaming")
    snapshots = [_snapshot("16-bit", 20.0), running]
    cpu = views.stopped_headline(snapshots, "fair", "cpu")
    assert "no speed ratio from a partial run" in cpu and views.gpu_figures_text(views.recorded_gpu_figures()) in cpu
    gpu = views.stopped_headline(snapshots, "fair", "vllm")
    assert "no speed ratio" in gpu and views.gpu_figures_text(views.recorded_gpu_figures()) not in gpu and "×" not in gpu


def test_the_tokens_over_time_title_fits_one_phone_line_and_names_the_timing():
    from playground.charts import TITLE_CHARS, timeline

    fair, race = timeline([], "fair").layout.title.text, timeline([], "race").layout.title.text
    assert "<br>" not in fair + race and max(len(fair), len(race)) <= TITLE_CHARS
    assert "each engine alone" in fair and "both engines at once" in race
