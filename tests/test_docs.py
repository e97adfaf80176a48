"""Every file path the README, docs and code comments name exists in the repository."""

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PATH = re.compile(r"(?<![\w/.-])((?:docs|benchmarks|tests|planner|playground|assets)/[\w./-]*\w)")


def named_paths() -> dict[str, set[str]]:
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    found: dict[str, set[str]] = {}
    for name in files:
        if not name.endswith((".md", ".py", ".sh", ".json", ".txt")) or name.startswith("docs/results/"):
            continue
        for match in PATH.findall((ROOT / name).read_text(errors="replace")):
            found.setdefault(match.rstrip("."), set()).add(name)
    return found


def test_every_named_path_exists():
    missing = {path: sorted(where) for path, where in named_paths().items() if not (ROOT / path).exists()}
    assert not missing, missing


def test_the_check_finds_the_paths_it_should():
    paths = named_paths()
    assert "tests/data/vllm_kv_measurements.json" in paths and "benchmarks/fit_calibration.py" in paths
