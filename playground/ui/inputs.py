"""Parse what a form or an API call sent into library values; errors name the field."""

from __future__ import annotations

import math

import gradio as gr

from planner.errors import PlannerError
from playground.engines.base import RequestError, SamplingSettings


def number(name: str, value, kind):
    """``value`` as ``kind`` (int or float). A JSON caller may send 64.0 for an integer, never 2.5,
    infinity (json reads 1e400 as inf) or true."""
    if value is None or value == "":
        raise RequestError(name, "is empty")
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise RequestError(name, f"{value!r} is not a number")
    try:
        parsed = float(value)
    except ValueError:
        raise RequestError(name, f"{value!r} is not a number") from None
    if not math.isfinite(parsed):
        raise RequestError(name, f"{value!r} is not a finite number")
    if abs(parsed) >= 2**63:  # beyond every range the engines take; an int that big would fill the message
        raise RequestError(name, f"{parsed:g} is too large (allowed: below 2**63)")
    if kind is int:
        if isinstance(value, int):
            return value
        if not parsed.is_integer():
            raise RequestError(name, f"{value!r} is not an integer")
        return int(value) if isinstance(value, str) and value.strip().lstrip("+-").isdigit() else int(parsed)
    return parsed


def text(name: str, value) -> str:
    """A required string argument: missing and non-strings are refused by name."""
    if value is None:
        raise RequestError(name, "required")
    if not isinstance(value, str):
        raise RequestError(name, f"must be a string, not {type(value).__name__}")
    return value


def sampling_from(temperature, top_p, top_k, max_tokens, seed, repetition_penalty, presence_penalty,
                  frequency_penalty, stop) -> SamplingSettings:
    return SamplingSettings(
        temperature=number("temperature", temperature, float), top_p=number("top_p", top_p, float),
        top_k=number("top_k", top_k, int), max_tokens=number("max_tokens", max_tokens, int),
        seed=None if seed in (None, "", -1) else number("seed", seed, int),
        repetition_penalty=number("repetition_penalty", repetition_penalty, float),
        presence_penalty=number("presence_penalty", presence_penalty, float),
        frequency_penalty=number("frequency_penalty", frequency_penalty, float),
        stop=tuple(s for s in str(stop or "").split("|") if s),
    ).validate()


def as_gradio_error(e: Exception) -> gr.Error:
    """A library error as the message the page (or the API caller) shows."""
    return gr.Error(str(e))


USER_ERRORS = (RequestError, PlannerError, ValueError)
