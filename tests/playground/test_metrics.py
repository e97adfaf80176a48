import pytest

from playground.metrics import RequestTiming, first_divergence, summarize


def test_ttft_tpot_itl_follow_vllm_bench_definitions():
    t = RequestTiming(start_s=10.0, chunk_times_s=(10.5, 10.6, 10.8, 11.0), output_tokens=5, prompt_tokens=7)
    assert t.ttft_s == pytest.approx(0.5)
    assert t.e2e_s == pytest.approx(1.0)
    assert t.tpot_s == pytest.approx((1.0 - 0.5) / 4)  # first token excluded
    assert t.itls_s == pytest.approx((0.1, 0.2, 0.2))
    assert t.decode_tok_s == pytest.approx(8.0)


def test_summary_aggregates_over_the_wall_time_of_the_run():
    a = RequestTiming(0.0, (1.0, 2.0), output_tokens=2, prompt_tokens=10)
    b = RequestTiming(0.5, (1.5, 4.0), output_tokens=3, prompt_tokens=10)
    m = summarize([a, b])
    assert m.duration_s == 4.0 and m.output_tokens == 5
    assert m.output_tok_s == pytest.approx(5 / 4.0) and m.total_tok_s == pytest.approx(25 / 4.0)
    assert m.requests_per_s == pytest.approx(0.5)
    assert m.ttft_p50_s == pytest.approx(1.0)


def test_the_mean_tpot_moves_little_where_the_median_jumps():
    """Half a wave decodes through a later prefill step and half not: the median sits on the split and jumps when
    one request crosses it; the mean (vllm bench serve's Mean TPOT) moves by that request's share."""
    def wave(stalled: int) -> list[RequestTiming]:
        return [RequestTiming(0.0, tuple(0.1 + k * (0.03 if i < stalled else 0.01) for k in range(11)), 11)
                for i in range(8)]

    even, crossed = summarize(wave(4)), summarize(wave(5))
    assert even.tpot_mean_s == pytest.approx(0.02) and crossed.tpot_mean_s == pytest.approx(0.0225)
    assert even.tpot_p50_s == pytest.approx(0.02) and crossed.tpot_p50_s == pytest.approx(0.03)


def test_summary_refuses_runs_without_a_single_token():
    with pytest.raises(ValueError, match="no request produced a token"):
        summarize([RequestTiming(0.0, (), 0)])


def test_first_divergence():
    assert first_divergence("abcdef", "abcxef") == 3
    assert first_divergence([1, 2, 3], [1, 2, 3, 4]) is None


def test_goodput_counts_requests_within_every_bound_as_vllm_bench_serve_does():
    from playground.metrics import parse_slo

    slo = parse_slo("ttft:500 tpot:50")
    fast = RequestTiming(0.0, (0.4, 0.44, 0.48), output_tokens=3)  # TTFT 400 ms, TPOT 40 ms
    at_bound = RequestTiming(0.0, (0.5, 0.54), output_tokens=2)  # TTFT exactly on its bound: good (<=)
    slow_start = RequestTiming(0.0, (0.6, 0.61), output_tokens=2)  # TTFT 600 ms
    one_token = RequestTiming(0.0, (0.3,), output_tokens=1)  # TPOT counts 0
    slow_decode = RequestTiming(0.0, (0.1, 0.2, 2.0), output_tokens=3)  # TPOT 950 ms; the run lasts 2 s
    m = summarize([fast, at_bound, slow_start, one_token, slow_decode], slo)
    assert m.good_requests == 3 and m.goodput_requests_per_s == pytest.approx(3 / 2.0) and m.slo == "ttft:500 tpot:50"
    assert summarize([fast]).goodput_requests_per_s is None  # no SLO, no goodput


@pytest.mark.parametrize("text, words", [("ttft=500", "KEY:MILLISECONDS"), ("itl:5", "one of ttft, tpot, e2el"),
                                         ("tpot:-1", "non-negative")])
def test_a_bad_slo_is_named(text, words):
    from playground.metrics import parse_slo

    with pytest.raises(ValueError, match=words):
        parse_slo(text)
