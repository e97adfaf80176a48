"""Did FP8 change the answer? Measures computed from the engines' own next-token distributions.

The 16-bit engine's greedy output is the reference. Both engines score it teacher-forced (each
position sees the reference's previous tokens, so one early flip does not count as everything):

- token agreement: the share of positions where the candidate's most likely token is the reference's token;
- mean KL(reference || candidate) per token, over each position's top-k tokens with the rest of the
  vocabulary pooled into one bucket (pooling can only lower a KL, so this is a lower bound of the full KL);
- mean top-1 logprob gap: the reference's logprob of its chosen token minus the candidate's logprob of it;
- as llama.cpp's `--kl-divergence` reports them: the KL's 99th percentile, the mean change in the
  reference token's probability (Δp, candidate minus reference) and how often both rank the same token first.

With several columns every one is scored against the first.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from playground.metrics import first_divergence

TOP_K = 20


@dataclass(frozen=True)
class QualityDiff:
    positions: int
    token_agreement: float  # 0..1
    mean_kl: float  # nats per token
    mean_top1_logprob_gap: float  # nats
    first_difference_char: int | None  # where the two greedy texts first differ (None: identical)
    kl_p99: float = 0.0  # the 99th percentile of the per-token KL (llama.cpp's "99.0%   KLD")
    mean_delta_p: float = 0.0  # mean change in the reference token's probability, 0..1 (llama.cpp's "Mean    Δp")
    same_top: float = 0.0  # share of positions whose most likely token is the same in both (llama.cpp's "Same top p")
    token_kls: tuple[float, ...] = field(default=(), repr=False)  # per position, for percentiles over prompts

    def summary(self) -> str:
        where = "identical text" if self.first_difference_char is None else f"text first differs at character {self.first_difference_char}"
        return (f"token agreement {100 * self.token_agreement:.1f}% · same top {100 * self.same_top:.1f}% · "
                f"KL {self.mean_kl:.4f} nats/token (p99 {self.kl_p99:.4f}) · mean Δp {100 * self.mean_delta_p:+.2f}% · "
                f"top-1 logprob gap {self.mean_top1_logprob_gap:+.4f} · {where}")


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default), q in [0, 100]."""
    ordered = sorted(values)
    if not ordered:
        return 0.0
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def combine(diffs: Sequence[QualityDiff | None]) -> QualityDiff | None:
    """One prompt-weighted-by-position diff over several prompts (None when none was scored); the
    p99 over every position of every prompt, as llama.cpp pools a whole text."""
    scored = [d for d in diffs if d is not None]
    if not scored:
        return None
    n = sum(d.positions for d in scored)

    def mean(name: str) -> float:
        return sum(getattr(d, name) * d.positions for d in scored) / n

    kls = tuple(k for d in scored for k in d.token_kls)
    first = next((d.first_difference_char for d in scored if d.first_difference_char is not None), None)
    return QualityDiff(n, mean("token_agreement"), mean("mean_kl"), mean("mean_top1_logprob_gap"), first,
                       percentile(kls, 99), mean("mean_delta_p"), mean("same_top"), kls)


def _bucketed_kl(p_row: dict[int, float], q_row: dict[int, float]) -> float:
    keys = set(p_row) | set(q_row)
    p = {k: math.exp(p_row[k]) if k in p_row else 0.0 for k in keys}
    q = {k: math.exp(q_row[k]) if k in q_row else 0.0 for k in keys}
    p_rest, q_rest = max(0.0, 1 - sum(p.values())), max(0.0, 1 - sum(q.values()))
    kl = 0.0
    for pk, qk in [*((p[k], q[k]) for k in keys), (p_rest, q_rest)]:
        if pk > 0:
            kl += pk * (math.log(pk) - math.log(max(qk, 1e-12)))
    return max(kl, 0.0)


def quality_diff(reference_tokens: Sequence[int], reference_rows: Sequence[dict[int, float]],
                 candidate_rows: Sequence[dict[int, float]], reference_text: str = "",
                 candidate_text: str = "") -> QualityDiff:
    """Compare two teacher-forced scorings of ``reference_tokens`` (rows: {token_id: logprob} per position)."""
    n = min(len(reference_tokens), len(reference_rows), len(candidate_rows))
    if n == 0:
        raise ValueError("nothing to compare: the reference output is empty")
    agree = gap = delta_p = same = 0.0
    kls = []
    for token, p_row, q_row in zip(reference_tokens[:n], reference_rows[:n], candidate_rows[:n]):
        agree += max(q_row, key=q_row.get) == token
        same += max(q_row, key=q_row.get) == max(p_row, key=p_row.get)
        kls.append(_bucketed_kl(p_row, q_row))
        p_lp, q_lp = p_row.get(token, min(p_row.values())), q_row.get(token, min(q_row.values()))
        gap += p_lp - q_lp
        delta_p += math.exp(q_lp) - math.exp(p_lp)
    return QualityDiff(n, agree / n, sum(kls) / n, gap / n, first_divergence(reference_text, candidate_text),
                       percentile(kls, 99), delta_p / n, same / n, tuple(kls))
