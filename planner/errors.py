"""The one error type the planner raises: it names the argument, its value and what is allowed."""

from __future__ import annotations


class PlannerError(ValueError):
    """A request the planner cannot answer, phrased so a person can fix it.

    ``argument`` is the keyword (or CLI flag) at fault, so UIs can point at the field.
    """

    def __init__(self, argument: str, message: str):
        super().__init__(f"{argument}: {message}")
        self.argument = argument


def check_range(argument: str, value, low, high, *, low_inclusive=True, high_inclusive=True):
    """Raise PlannerError unless low <(=) value <(=) high; return the value otherwise."""
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        raise PlannerError(argument, f"expected a number, got {value!r}")
    above = value >= low if low_inclusive else value > low
    below = value <= high if high_inclusive else value < high
    if not (above and below):
        left = "[" if low_inclusive else "("
        right = "]" if high_inclusive else ")"
        raise PlannerError(argument, f"{value!r} is outside the allowed range {left}{low}, {high}{right}")
    return value
