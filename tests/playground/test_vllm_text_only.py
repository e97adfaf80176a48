"""The app's vLLM engine starts a multimodal model as the planner sizes it: its language model alone."""

from planner import EngineConfig
from playground.engines.vllm_engine import text_only


def test_a_multimodal_model_starts_without_its_vision_tower_and_says_so():
    config, notes = text_only(EngineConfig(model="gemma-3-27b", max_model_len=8192))
    assert config.language_model_only and config.engine_kwargs()["language_model_only"] is True
    assert len(notes) == 1 and "--language-model-only" in notes[0]


def test_a_text_model_or_one_the_planner_cannot_read_starts_as_given(tmp_path):
    for model in ("llama-3-8b", str(tmp_path / "no-such-folder")):
        given = EngineConfig(model=model)
        assert text_only(given) == (given, ())
