"""Model folders for load_format=dummy: from a catalog name, or from a folder holding a config.json (the shapes in
docs/results/speed-rows/shapes, which no published model has)."""

import json
from pathlib import Path

import pytest

from planner import PlannerError
from playground.model_dirs import write_model_dir

SHAPE = Path(__file__).resolve().parents[2] / "docs/results/speed-rows/shapes/llama-3.2-3b-96-wide-heads"


def test_a_folder_with_a_config_json_becomes_a_model_folder_of_that_shape(tmp_path):
    folder = write_model_dir(str(SHAPE), tmp_path / "shape")
    assert json.loads((folder / "config.json").read_text()) == json.loads((SHAPE / "config.json").read_text())
    assert (folder / "tokenizer.model").is_file() and (folder / "tokenizer_config.json").is_file()
    from benchmarks.speed_runs import row_model_spec  # the rows of its sweep are planned from the same config

    assert row_model_spec(SHAPE.name).head_dim == 96 == json.loads((folder / "config.json").read_text())["head_dim"]


def test_a_name_neither_in_the_catalog_nor_a_folder_says_what_it_accepts(tmp_path):
    with pytest.raises(PlannerError, match="neither in the catalog nor a folder with a config.json: llama-2-7b") as e:
        write_model_dir(str(tmp_path / "no-such-model"), tmp_path / "out")
    assert e.value.argument == "model"
    assert not (tmp_path / "out").exists()
