"""The frozen calibration is what benchmarks/fit_calibration.py fits from the fitted rows of tests/data."""

import dataclasses
import importlib.util
from pathlib import Path

from planner.memory import CALIBRATION

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "fit_calibration.py"


def load_fit_script():
    spec = importlib.util.spec_from_file_location("fit_calibration", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_refitting_from_tests_data_reproduces_the_frozen_coefficients():
    fit = load_fit_script()
    refit = fit.fit(fit.fitted_rows())
    for name in fit.FITTED:
        assert getattr(refit, name) == getattr(CALIBRATION, name), name


def test_held_out_rows_do_not_move_the_fit():
    fit = load_fit_script()
    rows = fit.fitted_rows()
    assert rows and not any(r.get("held_out") for r in rows)
    assert dataclasses.asdict(fit.fit(rows)) == dataclasses.asdict(fit.fit(list(rows)))
