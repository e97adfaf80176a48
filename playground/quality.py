"""Did FP8 change the answer? Measures computed from the engines' own next-token distributions.

The 16-bit engine's greedy output is the reference. Both engines score it teacher-forced (each
position sees the reference's previous tokens, so one early flip does not count as everything):

- token agreement: the share of positions where the candidate's most likely token is the reference's token;
- mean KL(reference || candidate) per token, over each position's top-k tokens with the rest of the
  vocabulary pooled into one bucket (pooling can only lower a KL, so this is a lower bound of the full KL);
- mean top-1 logprob gap: the reference's logprob of its chosen token minus the candidate's logprob of it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from playground.metrics import first_divergence

TOP_K = 20


@dataclass(frozen=True)
class QualityDiff:
    positions: int
    token_agreement: float  # 0..1
    mean_kl: float  # nats per token
    mean_top1_logprob_gap: float  # nats
    first_difference_char: int | None  # where the two greedy texts first differ (None: identical)

    def summary(self) -> str:
        where = "identical text" if self.first_difference_char is None else f"text first differs at character {self.first_difference_char}"
        return (f"token agreement {100 * self.token_agreement:.1f}% · KL {self.mean_kl:.4f} nats/token · "
                f"top-1 logprob gap {self.mean_top1_logprob_gap:+.4f} · {where}")


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
    agree = kl = gap = 0.0
    for token, p_row, q_row in zip(reference_tokens[:n], reference_rows[:n], candidate_rows[:n]):
        agree += max(q_row, key=q_row.get) == token
        kl += _bucketed_kl(p_row, q_row)
        gap += p_row.get(token, min(p_row.values())) - q_row.get(token, min(q_row.values()))
    return QualityDiff(n, agree / n, kl / n, gap / n, first_divergence(reference_text, candidate_text))
