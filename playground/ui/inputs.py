"""Parse what a form or an API call sent into library values; errors name the field."""

from __future__ import annotations

import gradio as gr

from planner.errors import PlannerError
from playground.engines.base import RequestError, SamplingSettings


def number(name: str, value, kind):
    if value is None or value == "":
        raise RequestError(name, "is empty")
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise RequestError(name, f"{value!r} is not a number") from None


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
