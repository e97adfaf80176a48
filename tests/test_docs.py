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


def _raw_figure(data, path: str) -> float:
    """A figure in a raw result file: 'a.b.c', or 'points[key=value,...].field' for a list of rows."""
    for part in path.split("."):
        if "[" in part:
            name, selector = part[:-1].split("[")
            wanted = dict(kv.split("=") for kv in selector.split(","))
            data = next(row for row in data[name] if all(str(row[k]) == v for k, v in wanted.items()))
        else:
            data = data[part]
    return float(data)


def test_every_recorded_gpu_figure_is_the_one_its_raw_file_holds():
    """docs/results/fair-timing.json (the CPU headline's GPU figures): each figure, rounded as shown,
    is in the raw JSON it names, and the page it cites exists and names the run (its command or ratio)."""
    import json

    records = json.loads((ROOT / "docs/results/fair-timing.json").read_text())["records"]
    assert len(records) >= 3
    for r in records:
        raw = json.loads((ROOT / r["raw"]).read_text())
        bf16, fp8 = _raw_figure(raw, r["raw_bf16"]), _raw_figure(raw, r["raw_fp8"])
        assert (round(bf16, 1), round(fp8, 1), round(fp8 / bf16, 3)) == (
            r["bf16_decode_tok_s"], r["fp8_decode_tok_s"], r["fp8_over_bf16"]), r
        page = (ROOT / r["source"]).read_text()
        assert r["command"] in page or f"{r['fp8_over_bf16']:.2f}" in page, r  # the page names the run
