import json

import pytest

from planner import PlannerError, catalog_names, model_spec


def test_catalog_holds_the_popular_models_with_their_sources():
    names = catalog_names()
    for wanted in ["llama-2-7b", "llama-2-13b", "llama-2-70b", "llama-3.1-8b", "llama-3.1-70b", "mistral-7b",
                   "mixtral-8x7b", "qwen2.5-7b", "qwen2.5-14b", "qwen2.5-32b", "qwen2.5-72b", "phi-3-mini", "gemma-2-9b"]:
        assert wanted in names
        assert model_spec(wanted).source.startswith("https://huggingface.co/")


def test_catalog_holds_the_published_pre_quantized_checkpoints_with_their_ids():
    from planner.models import catalog_hf_ids

    ids = catalog_hf_ids()
    for name, method in [("llama-3.1-8b-instruct-fp8-dynamic", "compressed-tensors"), ("qwen3-8b-fp8", "fp8"),
                         ("qwen3-32b-fp8", "fp8"), ("gpt-oss-20b", "mxfp4"), ("gpt-oss-120b", "mxfp4"),
                         ("deepseek-v3", "fp8")]:
        spec = model_spec(name)
        assert spec.quant is not None and spec.quant.method == method, name
        assert spec.source.startswith("https://huggingface.co/") and "/" in ids[name], name


@pytest.mark.parametrize("name, params", [
    ("llama-2-7b", 6_738_415_616),  # the published 6.74 B
    ("llama-3-8b", 8_030_261_248),  # the published 8.03 B
    ("qwen2.5-7b", 7_615_616_512),  # the published 7.62 B (attention biases included)
])
def test_parameter_counts_match_the_published_sizes(name, params):
    assert model_spec(name).total_params == params


def test_mixture_of_experts_counts_all_experts_but_activates_two():
    mixtral = model_spec("mixtral-8x7b")
    assert 46.6e9 < mixtral.total_params < 46.8e9
    assert 12.8e9 < mixtral.active_params_per_token < 13.0e9


def test_grouped_query_attention_and_tied_embeddings_are_read_from_config():
    llama3 = model_spec("llama-3-8b")
    assert (llama3.num_heads, llama3.num_kv_heads, llama3.head_dim) == (32, 8, 128)
    gemma = model_spec("gemma-2-9b")
    assert gemma.tie_word_embeddings and gemma.lm_head_params == 0 and gemma.head_dim == 256


def test_a_config_dict_and_a_config_json_path_give_the_same_spec(tmp_path):
    from planner.assets import load_json

    config = load_json("models.json")["models"]["mistral-7b"]["config"]
    (tmp_path / "config.json").write_text(json.dumps(config))
    from_dict = model_spec(config, name="m")
    from_dir = model_spec(tmp_path)
    from_file = model_spec(tmp_path / "config.json")
    assert from_dict.total_params == from_dir.total_params == from_file.total_params == model_spec("mistral-7b").total_params


def test_unknown_model_name_suggests_close_catalog_names():
    with pytest.raises(PlannerError) as e:
        model_spec("llama-2-7")
    assert e.value.argument == "model"
    assert "llama-2-7b" in str(e.value)


def test_malformed_config_json_names_the_file(tmp_path):
    bad = tmp_path / "config.json"
    bad.write_text("{not json")
    with pytest.raises(PlannerError, match="not valid JSON"):
        model_spec(bad)


def test_config_without_model_type_or_with_bad_sizes_is_refused():
    with pytest.raises(PlannerError, match="model_type"):
        model_spec({"hidden_size": 4096})
    with pytest.raises(PlannerError, match="hidden.size"):
        model_spec({"model_type": "llama", "hidden_size": -1, "num_attention_heads": 32, "intermediate_size": 1,
                    "num_hidden_layers": 1, "vocab_size": 10, "max_position_embeddings": 10})
