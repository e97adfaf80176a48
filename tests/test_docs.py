"""Every file path the README, docs and code comments name exists in the repository, and every figure the README
quotes from docs/results is on the page it links."""

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "docs" / "results"
PATH = re.compile(r"(?<![\w/.-])((?:docs|benchmarks|tests|planner|playground|assets)/[\w./-]*\w)")
RESULTS_PAGE = re.compile(r"(?<![\w/.-])(docs/results/[\w.-]+\.md)(#[\w-]+)?")
LINK = re.compile(r"\]\(([^)\s#]+)(#[^)\s]+)?\)")
# a figure: a number not glued to a word (H100, FP8, 70B are names), a version (0.25.1) excluded below
FIGURE = re.compile(r"(?<![\w.,/=-])[−+-]?(\d[\d,]*(?:\.\d+)*)%?(?![\w])")


def named_paths() -> dict[str, set[str]]:
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    found: dict[str, set[str]] = {}
    for name in files:
        if not name.endswith((".md", ".py", ".sh", ".json", ".txt")) or name.startswith("docs/results/"):
            continue
        for match in PATH.findall((ROOT / name).read_text(errors="replace")):
            # tests/data records how each row was measured at the time: the scripts it names may since have been
            # folded into benchmarks/gpu.sh (git history keeps them); the docs it points a reader to must exist
            if name.startswith("tests/data/") and not match.startswith("docs/"):
                continue
            found.setdefault(match.rstrip("."), set()).add(name)
    return found


def test_every_named_path_exists():
    missing = {path: sorted(where) for path, where in named_paths().items() if not (ROOT / path).exists()}
    assert not missing, missing


def test_the_check_finds_the_paths_it_should():
    paths = named_paths()
    assert "tests/data/vllm_kv_measurements.json" in paths and "benchmarks/fit_calibration.py" in paths


def blocks(text: str) -> list[str]:
    """Paragraphs and list items: the unit a figure and its link share."""
    out, current = [], []
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith(("- ", "* ")):
            if current:
                out.append("\n".join(current))
            current = [line] if line.strip() else []
        else:
            current.append(line)
    if current:
        out.append("\n".join(current))
    return out


def figures(text: str) -> set[str]:
    """The numbers in a text, without sign or %; versions and single digits (TP=2, 3 prompts) left out."""
    found = set()
    for match in FIGURE.finditer(text):
        number = match.group(1).rstrip(".,")
        if number.count(".") > 1 or len(number.replace(",", "").replace(".", "")) < 2:
            continue
        found.add(number)
    return found


SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z\[(`])")


def claims(text: str) -> list[tuple[str, list[str]]]:
    """(sentence, the results pages it answers to): the pages a sentence links, and those linked earlier in its
    paragraph ("Measured on one H100 (page): ... . At 256 users: ..." quotes that page throughout)."""
    out = []
    for block in blocks(text):
        pages: set[str] = set()
        for sentence in SENTENCE.split(block):
            pages |= {m.group(1) for m in RESULTS_PAGE.finditer(sentence)}
            if pages:
                out.append((sentence, sorted(pages)))
    return out


def unsupported_figures(readme: str, root: Path = ROOT) -> dict[str, list[str]]:
    """Per README sentence that answers to a results page: the figures none of those pages holds."""
    missing = {}
    for sentence, pages in claims(readme):
        held = set().union(*(figures((root / page).read_text()) for page in pages if (root / page).exists()))
        lacking = sorted(figures(RESULTS_PAGE.sub("", sentence)) - held)
        if lacking:
            missing[" ".join(sentence.split())[:100]] = lacking
    return missing


def test_every_readme_link_to_results_resolves():
    readme = (ROOT / "README.md").read_text()
    targets = {m.group(1) for m in RESULTS_PAGE.finditer(readme)} | \
              {m.group(1) for m in LINK.finditer(readme) if m.group(1).startswith("docs/results")}
    assert targets, "the README links no results page"
    assert not [t for t in sorted(targets) if not (ROOT / t).exists()]


def test_every_figure_the_readme_quotes_appears_in_the_page_it_links():
    assert unsupported_figures((ROOT / "README.md").read_text()) == {}


def test_the_figure_check_reports_a_figure_the_linked_page_lacks(tmp_path):
    page = "docs" + "/results/speed.md"  # spelled apart: the path check above reads this file too
    (tmp_path / page).parent.mkdir(parents=True)
    (tmp_path / page).write_text("| fp8 | 1.589 | 4,096 tokens in 1.42 s | 256 users: 0.82 |\n")
    readme = (f"- FP8 is 1.589× as fast, 4,096 tokens in 1.42 s on vLLM 0.25.1 ([{page}]({page})).\n"
              f"- FP8 is 1.61× as fast ([{page}]({page})).\n"
              f"- The scale is amax / 448. Measured ({page}): 1.589. At 256 users: 0.82 and 0.79.\n"
              "- Not linked: 9.99.\n")
    assert unsupported_figures(readme, tmp_path) == {
        f"- FP8 is 1.61× as fast ([{page}]({page})).": ["1.61"],
        "At 256 users: 0.82 and 0.79.": ["0.79"]}


def test_the_results_index_lists_every_page_and_each_page_says_how_to_measure_it_again():
    index = (RESULTS / "README.md").read_text()
    pages = sorted(p.name for p in RESULTS.glob("*.md") if p.name != "README.md")
    assert len(pages) >= 6
    unlisted = [p for p in pages if f"({p})" not in index]
    assert unlisted == [], "add a row for each to docs/results/README.md"
    # each page names the command that regenerates it: a gpu.sh task, or a script that runs without a GPU
    silent = [p for p in pages if not re.search(r"\*\*Regenerate:?\*\*:?.*`(bash \S+/gpu\.sh|python)",
                                                (RESULTS / p).read_text())]
    assert silent == [], "each needs a line '**Regenerate:** `bash benchmarks/gpu.sh TASK`' (or `python ...`)"


def test_every_link_from_a_results_page_into_its_folder_resolves():
    broken = []
    for page in RESULTS.glob("*.md"):
        for m in LINK.finditer(page.read_text()):
            target = m.group(1)
            if "://" not in target and target.startswith(page.stem + "/") and not (RESULTS / target).exists():
                broken.append(f"{page.name}: {target}")
    assert broken == []


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_every_anchor_the_docs_link_names_a_heading_of_its_page():
    broken = []
    for page in [*RESULTS.glob("*.md"), ROOT / "docs" / "planner.md", ROOT / "README.md"]:
        for m in LINK.finditer(page.read_text()):
            target, anchor = m.group(1), m.group(2)
            if not anchor or "://" in target or not target.endswith(".md"):
                continue
            text = (page.parent / target).read_text()
            headings = {slug(h) for h in re.findall(r"^#+ (.+)$", text, flags=re.M)}
            if anchor[1:] not in headings:
                broken.append(f"{page.name}: {target}{anchor}")
    assert broken == []


def test_every_gpu_task_the_docs_name_is_a_task_of_the_driver():
    driver = (ROOT / "benchmarks" / "gpu.sh").read_text()
    tasks = set(re.findall(r"^  ([\w-]+)\)", driver, flags=re.M))
    assert {"install", "planner-rows", "fair"} <= tasks
    pages = [*RESULTS.glob("*.md"), ROOT / "README.md", ROOT / "benchmarks" / "README.md", ROOT / "docs" / "planner.md"]
    named = {(p.name, t) for p in pages for t in re.findall(r"bash \S+/gpu\.sh ([\w-]+)", p.read_text())}
    assert sorted((page, t) for page, t in named if t not in tasks) == []
    # the driver's own list of tasks at its top
    listed = set(re.findall(r"^#   ([a-z][\w-]+) ", driver, flags=re.M))
    assert sorted(tasks - listed) == []


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
