"""A person's path through the real page in headless Chromium (Debian's, driven by Playwright)."""

import json
import os
import re
import shutil
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
SHOTS = Path(os.environ.get("SCREENSHOT_DIR", Path(__file__).resolve().parent.parent / "docs" / "screenshots"))

pytestmark = pytest.mark.skipif(not shutil.which(CHROMIUM) and not Path(CHROMIUM).exists(),
                                reason="Debian's chromium is not installed (apt-get install chromium)")


COMMON_WORDS = {"the", "a", "an", "is", "of", "to", "and", "in", "it", "for", "on", "you", "your", "i", "that",
                "with", "be", "can", "are", "fp8", "gpu", "h100", "this", "as", "if", "or", "model", "yes", "no"}


def looks_like_english(text: str) -> bool:
    """Real words from the pretrained model, not the random model's fragments."""
    words = [w.strip(".,!?;:'\"()*-").lower() for w in text.split()]
    words = [w for w in words if w]
    return len(words) >= 5 and sum(w in COMMON_WORDS for w in words) >= 2


def test_the_english_check_tells_real_text_from_random_tokens():
    assert looks_like_english("Yes, FP8 is worth it on an H100 if your model fits.")
    assert not looks_like_english("ĠquestĠzy ĉ>< recon lahstreet otto pul")


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"])
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def pace(cpu_app):
    """Seconds per output token of the slower engine on this machine, now: a calibration request to each
    engine first, so that the waits below follow what the engines can do here (a slow or busy CPU waits
    longer; a page that never finishes still fails, only later)."""
    import time

    from gradio_client import Client

    client = Client(cpu_app, verbose=False)
    per_token = []
    for label in ("16-bit", "FP8"):
        t = time.perf_counter()
        out = client.predict("Say hello.", label, 0.0, 8, 0, True, api_name="/generate")
        per_token.append((time.perf_counter() - t) / max(out["output_tokens"], 1))  # TTFT included: errs long
    return max(per_token)


def wait_ms(pace: float, tokens: int, floor_s: float = 30.0, slack: float = 4.0) -> float:
    """A wait for ``tokens`` output tokens at the calibrated pace: ``slack`` times the expected time (the
    machine's load can change between the calibration and the test), at least ``floor_s``."""
    return 1000 * max(floor_s, slack * pace * tokens)


@pytest.fixture(scope="module")
def page(cpu_app, browser):
    page = browser.new_page(viewport={"width": 1400, "height": 1300})
    page.goto(cpu_app)
    yield page
    page.close()


def test_a_comparison_in_the_page_fills_both_columns_and_shows_metrics(page, pace):
    tokens = 24  # enough for English and a decode speed; the wait follows from the calibrated pace
    page.get_by_text("Sampling").click()
    page.locator("#max-tokens input").fill(str(tokens))
    page.locator("#prompts textarea").fill("Is FP8 worth it on my H100?")
    page.locator("#run").click()
    # fair mode: one engine after the other, then the quality diff re-reads both answers (about one more pass)
    whole_run = wait_ms(pace, 3 * tokens)
    for label in ("16-bit", "FP8"):
        metrics = page.locator(f"#metrics-{label}")
        metrics.get_by_text("tokens/s", exact=False).or_(metrics.get_by_text("tok/s", exact=False)).first.wait_for(timeout=whole_run)
    page.get_by_text("streaming…").first.wait_for(state="detached", timeout=whole_run)
    page.locator("#max-tokens input").fill("64")
    page.get_by_text("Sampling").click()  # closed again, as the next test finds the page
    for label in ("16-bit", "FP8"):
        answer = page.locator(f"#out-{label} textarea").input_value()
        assert looks_like_english(answer), f"{label} column does not read as English: {answer!r}"
        text = page.locator(f"#metrics-{label}").inner_text()
        assert "tokens" in text and "TTFT" in text and "decode" in text and "tok/s" in text
    page.locator("#quality").get_by_text("token agreement").wait_for(timeout=whole_run)  # the headline, not its placeholder
    page.locator("#speed-chart").scroll_into_view_if_needed()
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "playground-cpu.png"), full_page=True)


def test_the_planner_tab_plans_a_model_in_the_page(page):
    page.get_by_role("tab", name="Planner").click()
    page.locator("#plan").click()
    table = page.locator("#plan-table")
    # one table per precision (16-bit, FP8, FP8 + FP8 KV), each with its own KV-tokens row
    table.get_by_role("cell", name="KV tokens").first.wait_for(timeout=60_000)
    assert table.get_by_role("cell", name="KV tokens").count() == 3
    assert "Fits" in table.inner_text()
    # the predicted-speed chart draws with its batch axis in whole batches (1, 10, 100, ...), not plotly's 2 and 5
    chart = page.locator("#plan-speed-chart")
    chart.locator(".scatterlayer .point").first.wait_for(timeout=60_000)
    labels = chart.locator(".xaxislayer-above .xtick text").evaluate_all("ts => ts.map(t => t.textContent)")
    assert labels[:3] == ["1", "10", "100"] and "2" not in labels, labels
    page.screenshot(path=str(SHOTS / "planner.png"), full_page=True)


def sweep_tokens(concurrency: tuple[int, ...], repeats: int, output_len: int, precisions: int = 2) -> int:
    """Output tokens a sweep decodes (playground/bench/sweep.py): per level a warm-up wave of ``c``
    prompts, then ``repeats`` passes over max(c, 4) prompts."""
    return precisions * sum((c + repeats * max(c, 4)) * output_len for c in concurrency)


def test_the_benchmark_tab_runs_a_sweep_and_draws_its_charts(page, pace):
    page.get_by_role("tab", name="Benchmark").click()
    # on the CPU the tab says what its FP8 speeds are before anyone reads them as FP8's
    assert "CPU speeds, not FP8's" in page.locator("#bench-cpu-note").inner_text()
    page.locator("#bench-concurrency textarea, #bench-concurrency input").first.fill("1,2")
    page.locator("#bench-repeats input").fill("1")
    record_progress(page, "#bench-status")
    page.locator("#bench").click()
    # the CPU tab's defaults: 32 prompt tokens, 16 output tokens; requests at one time share the CPU (no speed-up assumed)
    page.locator("#bench-status").get_by_text("Complete: saved as run #").wait_for(
        timeout=wait_ms(pace, sweep_tokens((1, 2), 1, 16), floor_s=60))
    page.wait_for_timeout(1000)
    shown = page.evaluate("window.progressSeen")
    for precision in ("fp16", "fp8"):  # each step named while it runs, the 16-bit engine's as well as FP8's
        for c in (1, 2):
            for step in ("untimed warm-up", "timed repeat 1 of 1"):
                assert any(f"{precision} at concurrency {c}: {step}" in t for t in shown), (precision, c, step, shown)
    # throughput, speed-up, latency; no memory chart without a GPU, no roofline column on a CPU
    assert page.locator(".js-plotly-plot:visible").count() == 3
    assert "roofline" not in page.locator("#bench-table").inner_text()
    ticks = page.eval_on_selector_all(".js-plotly-plot .xtick text", "els => els.filter(e => e.getClientRects().length).map(e => e.textContent)")
    assert ticks and set(ticks) <= {"1", "2"}, ticks  # the measured concurrencies only
    page.screenshot(path=str(SHOTS / "benchmark.png"), full_page=True)


def record_progress(page, selector: str) -> None:
    """Keep every text the block at ``selector`` shows from now on (Gradio's progress line lives in it), in
    window.progressSeen: a step that lasts less than a poll still leaves its name."""
    page.evaluate("""(selector) => {
        const block = document.querySelector(selector).closest('.block') || document.querySelector(selector);
        window.progressSeen = [];
        const note = () => { const t = block.innerText.trim(); if (t && window.progressSeen.at(-1) !== t) window.progressSeen.push(t); };
        new MutationObserver(note).observe(block, {subtree: true, childList: true, characterData: true});
    }""", selector)


def test_at_phone_width_no_tab_widens_the_page(cpu_app, browser):
    """At 390 px every tab fits the viewport (tables scroll inside their panel); screenshots for the README."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    phone = browser.new_page(viewport={"width": 390, "height": 844}, device_scale_factor=1)
    phone.goto(cpu_app)
    phone.locator("#run").wait_for(timeout=60_000)
    phone.locator("#engine-status summary").nth(1).wait_for(timeout=300_000)  # both engines' lines, not 'waiting to start'
    overflow = {}
    for tab, shot in (("Playground", "phone-playground.png"), ("Planner", "phone-planner.png"),
                      ("Benchmark", "phone-benchmark.png")):
        phone.get_by_role("tab", name=tab).click()
        phone.wait_for_timeout(1500)
        overflow[tab] = phone.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
        if tab == "Playground":  # the GPU figures' table keeps its words whole (it scrolls in its panel instead)
            lines = phone.evaluate("""() => [...document.querySelectorAll('#headline th')].map(th => {
                const range = document.createRange();
                range.selectNodeContents(th);
                return [th.textContent.trim(), range.getClientRects().length]; })""")
        phone.screenshot(path=str(SHOTS / shot), full_page=False)
    phone.close()
    assert all(scroll <= inner for scroll, inner in overflow.values()), overflow
    assert lines and all(0 < n <= len(text.split()) for text, n in lines), lines  # at most a line per word


def finished(page, pace: float, tokens: int = 64) -> None:
    """Wait for a comparison's last update: the quality diff comes only with the final result (temperature 0).
    Both engines one after the other, then the diff's second pass: about three answers' time."""
    page.locator("#quality").get_by_text("token agreement").wait_for(timeout=wait_ms(pace, 3 * tokens, floor_s=60))
    page.wait_for_timeout(300)


def test_stop_returns_both_columns_to_idle_within_two_seconds(page, pace):
    page.get_by_role("tab", name="Playground").click()
    page.get_by_text("Sampling").click()
    page.locator("#max-tokens input").fill("400")
    page.locator("#prompts textarea").fill("Write a long story about a GPU that learned FP8.")
    page.locator("#run").click()
    page.get_by_text("streaming…").first.wait_for(timeout=wait_ms(pace, 4))
    page.locator("#stop").click()
    page.wait_for_timeout(2000)
    for label in ("16-bit", "FP8"):
        assert page.locator(f"#metrics-{label}").inner_text().startswith("Stopped")
    assert page.get_by_text("streaming…").count() == 0
    page.locator("#max-tokens input").fill("64")


def test_an_error_keeps_the_previous_results_and_shows_beside_run(cpu_app, browser, pace):
    page = browser.new_page(viewport={"width": 1400, "height": 1300})
    page.goto(cpu_app)
    page.locator("#prompts textarea").fill("What is FP8?")
    page.locator("#run").click()
    finished(page, pace)
    before = {label: page.locator(f"#out-{label} textarea").input_value() for label in ("16-bit", "FP8")}
    assert all(before.values())
    page.locator("#prompts textarea").fill("   ")
    page.locator("#run").click()
    page.locator("#run-error").get_by_text("prompt").wait_for(timeout=30_000)
    assert "is empty" in page.locator("#run-error").inner_text()
    assert {label: page.locator(f"#out-{label} textarea").input_value() for label in ("16-bit", "FP8")} == before
    assert "⚠️" not in page.locator("#metrics-16-bit").inner_text() + page.locator("#metrics-FP8").inner_text()
    page.close()


def pick(page, elem_id: str, value: str) -> None:
    """Choose a value in a Gradio dropdown the way a person does: open it, type, click the option."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    box = page.locator(f"#{elem_id} input")
    box.click()
    box.fill(value)
    page.get_by_role("option", name=value, exact=True).click()
    # the list closes on the click; a slow page can leave it open, and its selected option carries Gradio's tick (✓),
    # which the emoji check would read as the page's own text
    options = page.locator("[data-testid=dropdown-option]").first
    try:
        options.wait_for(state="hidden", timeout=5_000)
    except PlaywrightTimeout:
        box.press("Escape")
        options.wait_for(state="hidden", timeout=30_000)


def test_the_planner_shows_a_plan_at_load_without_a_click(cpu_app, browser):
    fresh = browser.new_page(viewport={"width": 1400, "height": 1300})
    fresh.goto(cpu_app)
    fresh.get_by_role("tab", name="Planner").click()
    fresh.locator("#plan-table").get_by_role("cell", name="KV tokens").first.wait_for(timeout=60_000)
    text = fresh.locator("#plan-precisions").inner_text()
    fresh.close()
    assert "fp16" in text and "fp8" in text and "fp8-kv8" in text and "fits" in text


def plan_unfit(page, cpu_app) -> None:
    page.goto(cpu_app)
    page.get_by_role("tab", name="Planner").click()
    page.locator("#plan-table").get_by_role("cell", name="KV tokens").first.wait_for(timeout=60_000)  # the plan at load
    pick(page, "plan-model", "llama-3.1-70b")
    pick(page, "plan-gpu", "rtx-4090")
    page.locator("#plan").click()
    page.locator("#plan-precisions").get_by_text("short by").first.wait_for(timeout=60_000)


def verdict_of(page, precision: str) -> str:
    """The precision's verdict cell ("" while the table is being redrawn)."""
    lines = page.locator("#plan-precisions").inner_text().splitlines()
    # Gradio may put its progress timer ("0.0s") above the table while an event runs
    header = next(([c.strip() for c in line.split("\t")] for line in lines if "\tfp16\t" in line), [])
    verdicts = next(([c.strip() for c in line.split("\t")] for line in lines if line.startswith("verdict")), [])
    return verdicts[header.index(precision)] if precision in header and len(verdicts) == len(header) else ""


def precision_blocks(detail: str) -> dict[str, str]:
    """The plan's detail text (#plan-table) cut into its precisions' parts ("fp16 · weights: …" onwards)."""
    parts = re.split(r"(?m)^(fp16|fp8|fp8-kv8) · weights:", detail)
    return dict(zip(parts[1::2], parts[2::2]))


def serve_lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip().startswith("vllm serve ")]


def check_unfit_plan(page, options: list[str], model_word: str) -> None:
    """What a plan that does not fit says, per precision: one shortfall figure in the verdict above and the
    heading and table below; the printed line is the first suggestion's (its settings, the model's runnable
    name); every suggestion says why its numbers are what they are."""
    blocks = precision_blocks(page.locator("#plan-table").inner_text())
    assert set(blocks) == {"fp16", "fp8", "fp8-kv8"}, list(blocks)
    for precision, block in blocks.items():
        verdict = re.findall(r"short by ([\d.,]+) GiB", verdict_of(page, precision))
        below = re.findall(r"short by ([\d.,]+) GiB", block)
        assert len(verdict) == 1 and len(below) >= 2 and set(below) == set(verdict), (precision, verdict, block)
        suggested = re.findall(r"(?m)^(.+?): [\d,]+\+ KV tokens(?: \((.+)\))?$", block)
        assert suggested and all(why.strip() for _, why in suggested), (precision, block)
        for option in (o for o in options if o.rsplit("→", 1)[1].strip() == precision):
            assert option.split(" ", 1)[1].rsplit(" →", 1)[0] in [change for change, _ in suggested], (option, block)
        first = re.search(r"Run the first configuration that fits \((.+)\):", block)
        lines = serve_lines(block)
        assert first and first.group(1) == suggested[0][0] and len(lines) == 1, (precision, block)
        assert lines[0].startswith(f"vllm serve {model_word} "), lines
        for key, value in re.findall(r"(\w+)=([\w.]+)", first.group(1)):  # the suggested settings, not the failing ones
            assert f"--{key.replace('_', '-')} {value} " in lines[0] + " ", (first.group(1), lines[0])


def test_a_model_that_does_not_fit_shows_the_shortfall_and_every_suggestion_fits(cpu_app, browser):
    """Llama-3.1-70B on an RTX 4090: 'short by N GiB', one figure from the verdict to the table, no
    None/NaN/negative memory; the printed line is the suggested one, with the model's Hugging Face id (a
    placeholder for a pasted config); each suggestion says why, and, applied with one click, re-plans to
    'fits' for its precision."""
    from planner.engine_config import MODEL_PLACEHOLDER
    from planner.models import catalog_config, catalog_hf_ids

    page = browser.new_page(viewport={"width": 1400, "height": 1300})
    plan_unfit(page, cpu_app)
    shown = page.locator("#plan-precisions").inner_text() + page.locator("#plan-table").inner_text()
    assert not re.search(r"\bNone\b|\bnan\b|NaN|-\d[\d.,]* ?GiB|−\d", shown), shown
    page.screenshot(path=str(SHOTS / "planner-overflow.png"), full_page=True)
    page.locator("#suggestions input").click()
    options = [o.get_attribute("aria-label") for o in page.get_by_role("option").all()]
    page.keyboard.press("Escape")
    assert options, "no suggestion offered for a model that does not fit"
    check_unfit_plan(page, options, catalog_hf_ids()["llama-3.1-70b"])
    for i, option in enumerate(options):
        if i:
            plan_unfit(page, cpu_app)
        precision = option.rsplit("→", 1)[1].strip()
        assert "short by" in verdict_of(page, precision)
        page.locator("#suggestions input").click()
        page.locator("#suggestions input").fill(option.split(" ", 1)[0])  # "3." leaves the one option
        page.keyboard.press("ArrowDown")
        page.keyboard.press("Enter")
        for _ in range(60):  # the form is filled, then the plan re-runs
            if verdict_of(page, precision) == "fits":
                break
            page.wait_for_timeout(500)
        assert verdict_of(page, precision) == "fits", (option, page.locator("#plan-precisions").inner_text())
    # the same model pasted as a config.json: the printed line names no file that does not exist
    plan_unfit(page, cpu_app)
    page.locator("#pasted-config textarea").fill(json.dumps(catalog_config("llama-3.1-70b")))
    page.locator("#plan").click()
    wait_until(page, lambda: MODEL_PLACEHOLDER in page.locator("#plan-table").inner_text(), 60,
               "the pasted config's plan with the placeholder in its printed line")
    page.wait_for_timeout(500)  # the table and the verdicts come in one update; read them settled
    check_unfit_plan(page, options, MODEL_PLACEHOLDER)
    page.close()


def test_a_deep_link_opened_in_a_fresh_browser_brings_back_inputs_and_results(cpu_app, browser, pace):
    first = browser.new_context(permissions=["clipboard-read", "clipboard-write"], viewport={"width": 1400, "height": 1300})
    page = first.new_page()
    page.goto(cpu_app)
    page.locator("#prompts textarea").fill("Name a colour.")
    page.locator("#run").click()
    finished(page, pace)
    answer = page.locator("#out-FP8 textarea").input_value()
    link = copy_deep_link(page)
    first.close()
    second = browser.new_context(viewport={"width": 1400, "height": 1300})
    fresh = second.new_page()
    fresh.goto(link)
    fresh.wait_for_timeout(4000)
    restored = fresh.locator("#out-FP8 textarea").input_value()
    prompt = fresh.locator("#prompts textarea").input_value()
    second.close()
    assert prompt == "Name a colour." and restored == answer and answer


def test_a_cancelled_sweep_says_cancelled_not_complete(cpu_app, browser, pace):
    page = browser.new_page(viewport={"width": 1400, "height": 1300})
    page.goto(cpu_app)
    page.get_by_role("tab", name="Benchmark").click()
    page.locator("#bench-concurrency textarea, #bench-concurrency input").first.fill("1,2,4")
    page.locator("#bench-repeats input").fill("3")
    page.locator("#bench").click()
    page.wait_for_timeout(3000)
    page.get_by_role("button", name="Cancel", exact=True).click()
    status = page.locator("#bench-status")
    # the point under way ends first (cancel is seen between repeats): at most the largest level's warm-up and a pass
    status.get_by_text("marked cancelled").wait_for(timeout=wait_ms(pace, sweep_tokens((4,), 1, 16, precisions=1), floor_s=60))  # not the progress line "cancelled during …"
    text = status.inner_text()
    assert "marked cancelled" in text and "saved as run #" in text and "Complete" not in text
    run_id = text.split("run #")[1].split(" ")[0].rstrip(".")
    page.get_by_text("History").click()  # the history lists the new run without a reload
    page.locator("#history-run input").click()
    options = [o.get_attribute("aria-label") or o.inner_text() for o in page.get_by_role("option").all()]
    page.close()
    assert any(o.startswith(f"#{run_id} ") and "(cancelled)" in o for o in options), options


# ---- what a newcomer trips over: numbers that disagree, a chart that waits, Stop that erases, emoji, phone widths

import time  # noqa: E402

EMOJI = re.compile("[\U0001F000-\U0001FAFF\u2600-\u27BF\u2300-\u23FF\u2B00-\u2BFF\uFE0F]")


# a measured ratio in the headline, in the GPU wording ("1.52× faster") or the CPU one ("... tok/s at decode (0.95×)")
RATIO = r"faster|slower|tok/s at decode \("


def wait_until(page, check, timeout_s: float, what: str):
    """Poll the page until ``check()`` is truthy and return it; fail naming what never happened. The
    timeout is a bound for a page that never gets there, not a pace: each check returns as soon as it holds."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        page.wait_for_timeout(250)
    raise AssertionError(f"not within {timeout_s:.0f} s: {what}")


def columns_now(page) -> dict:
    """Headline, both columns' metrics and the chart's points, read in one go (one update of the page)."""
    return page.evaluate("""() => ({
        headline: document.querySelector('#headline').innerText,
        fp16: document.querySelector('#metrics-16-bit').innerText,
        fp8: document.querySelector('#metrics-FP8').innerText,
        note: document.querySelector('#run-error').innerText,
        points: document.querySelectorAll('#speed-chart .scatterlayer .point').length,
        traces: Object.fromEntries(((document.querySelector('#speed-chart .js-plotly-plot') || {}).data || [])
                                   .map(t => [t.name, (t.x || []).length])) })""")


def copy_deep_link(page) -> str:
    """Click the page's share button and return the link it copies. The clipboard is the browser's, shared by its
    contexts: emptied first, so a link an earlier test copied is not read as this page's."""
    page.evaluate("navigator.clipboard.writeText('')")
    page.get_by_role("button", name=re.compile("Share|Copy", re.I)).first.click()
    return wait_until(page, lambda: (lambda t: t if "deep_link=" in t else None)(page.evaluate("navigator.clipboard.readText()")),
                      30, "the deep link in the clipboard")


def chart_figure(page, selector: str) -> dict:
    """What plotly drew in the chart at ``selector``: its title and each trace's name and points."""
    return page.evaluate("""(selector) => {
        const plot = document.querySelector(selector + ' .js-plotly-plot');
        return plot && {title: plot.layout.title && plot.layout.title.text,
                        traces: plot.data.map(t => ({name: t.name, x: [...(t.x || [])], y: [...(t.y || [])]}))};
    }""", selector)


def tokens_in(metrics: str) -> int:
    found = re.search(r"(\d+) tokens", metrics)
    return int(found.group(1)) if found else 0


def start_long_run(page, max_tokens: int = 200) -> None:
    page.get_by_text("Sampling").click()
    page.locator("#max-tokens input").fill(str(max_tokens))
    page.locator("#prompts textarea").fill("Write a long story about a GPU that learned FP8.")
    page.locator("#run").click()


def test_the_chart_draws_while_streaming_the_ratio_waits_and_stop_keeps_the_finished_column(cpu_app, browser, pace):
    """Fair mode: the 16-bit column answers first, then FP8. While FP8 streams the chart already has points;
    no ratio is shown before each engine has 16 tokens after its first, then it is marked provisional;
    Stop ends FP8 and leaves 16-bit's finished answer and metrics, and no partial ratio as the headline."""
    from playground.views import MIN_DECODE_TOKENS

    page = browser.new_page(viewport={"width": 1400, "height": 1300})
    page.goto(cpu_app, wait_until="load")
    start_long_run(page, max_tokens=400)  # FP8's tail outlasts the page's lag behind the stream on a busy machine
    seen = []

    def fp8_streaming():
        now = columns_now(page)
        seen.append(now)
        return now if "streaming" in now["fp8"] and tokens_in(now["fp8"]) > 0 else None

    # the 16-bit answer of up to 400 tokens, then FP8's first token (engines load first on a fresh app)
    first = wait_until(page, fp8_streaming, wait_ms(pace, 400 + 1) / 1000, "the FP8 column streaming after the 16-bit one")
    assert "streaming" not in first["fp16"] and "end-to-end" in first["fp16"], first

    def fp8_drawn():  # the streaming column's own line, not only the finished 16-bit one
        now = columns_now(page)
        seen.append(now)
        assert "streaming" in now["fp8"], f"FP8 finished before 'Tokens over time' drew its line: {now}"
        return now if now["traces"].get("FP8", 0) > 0 else None

    # the page is updated twice a second with the chart beside the metrics: a few tokens' time at most
    drawn = wait_until(page, fp8_drawn, wait_ms(pace, 8) / 1000, "FP8's own points in 'Tokens over time' while it streams")
    assert drawn["traces"].get("16-bit", 0) > 0, drawn
    early = [s for s in seen if min(tokens_in(s["fp16"]), tokens_in(s["fp8"])) - 1 < MIN_DECODE_TOKENS]
    assert early and not any(re.search(RATIO, s["headline"]) for s in early), early

    def provisional():
        now = columns_now(page)
        return now if "provisional" in now["headline"] else None

    ratio = wait_until(page, provisional, wait_ms(pace, MIN_DECODE_TOKENS + 2) / 1000,
                       f"a provisional ratio once FP8 has {MIN_DECODE_TOKENS} decode tokens")
    assert tokens_in(ratio["fp8"]) - 1 >= MIN_DECODE_TOKENS and "streaming" in ratio["fp8"], ratio
    finished_16bit = ratio["fp16"]
    page.locator("#stop").click()
    last = []

    def stopped():
        last[:] = [columns_now(page)]
        return last[0] if "Stopped" in last[0]["fp8"] else None

    try:  # no engine work: Stop answers at once
        wait_until(page, stopped, 30, "the FP8 column stopped")
    except AssertionError as e:
        raise AssertionError(f"{e}; the page then: {last[0]}") from None
    page.wait_for_timeout(500)  # a last streamed update cannot come after Stop's; read once more to be sure
    after = columns_now(page)
    page.close()
    assert after["fp16"] == finished_16bit and "Stopped" not in after["fp16"], after
    assert "Stopped" in after["fp8"] and "partial" in after["fp8"], after
    assert not re.search(RATIO, after["headline"]) and "no speed ratio" in after["headline"], after
    assert after["traces"].get("16-bit", 0) > 0 and after["traces"].get("FP8", 0) > 0, after  # both lines kept


def test_a_deep_link_restores_the_speed_chart_and_the_quality_table(cpu_app, browser, pace):
    first = browser.new_context(permissions=["clipboard-read", "clipboard-write"], viewport={"width": 1400, "height": 1300})
    page = first.new_page()
    page.goto(cpu_app, wait_until="load")
    page.locator("#prompts textarea").fill("Name a colour.")
    page.locator("#run").click()
    finished(page, pace)
    points = page.locator("#speed-chart .scatterlayer .point").count()
    figure = chart_figure(page, "#speed-chart")
    quality = page.locator("#quality").inner_text()
    shown = {selector: page.locator(selector).inner_text() for selector in ("#headline", "#metrics-16-bit", "#metrics-FP8")}
    link = copy_deep_link(page)
    first.close()
    second = browser.new_context(viewport={"width": 1400, "height": 1300})
    fresh = second.new_page()
    fresh.goto(link, wait_until="load")
    fresh.locator("#quality").get_by_text("token agreement").wait_for(timeout=60_000)
    restored = fresh.locator("#quality").inner_text()
    fresh.locator("#speed-chart .scatterlayer .point").first.wait_for(timeout=30_000)
    restored_points = fresh.locator("#speed-chart .scatterlayer .point").count()
    restored_figure = chart_figure(fresh, "#speed-chart")
    restored_shown = {selector: fresh.locator(selector).inner_text() for selector in shown}
    rows = fresh.locator("#quality tbody tr").all_inner_texts()
    second.close()
    # the link's own chart, point for point (each column's tokens at their times), not a fresh or empty one
    assert points > 0 and restored_points == points
    assert restored_figure == figure and {t["name"] for t in figure["traces"]} == {"16-bit", "FP8"}, (figure, restored_figure)
    assert restored == quality and "token agreement" in restored and rows and rows[0].startswith("FP8"), rows
    assert restored_shown == shown and "tok/s" in shown["#metrics-FP8"], (shown, restored_shown)


def test_the_planner_verdict_and_tables_carry_the_same_kv_figure(cpu_app, browser):
    page = browser.new_page(viewport={"width": 1400, "height": 1300})
    page.goto(cpu_app, wait_until="load")
    page.get_by_role("tab", name="Planner").click()
    table = page.locator("#plan-table")
    table.get_by_role("cell", name="KV tokens").first.wait_for(timeout=120_000)
    text, precisions = table.inner_text(), page.locator("#plan-precisions").inner_text()
    page.close()
    verdicts = re.findall(r"Fits: ([\d,]+)\+ KV tokens, ([\d.]+) sequences", text)
    rows = re.findall(r"KV tokens\s+([\d,]+)\+", text)
    sequences = re.findall(r"\(([\d.]+)x the context", text)
    assert len(verdicts) == 3 and [v[0] for v in verdicts] == rows, (verdicts, rows)
    assert [v[1] for v in verdicts] == sequences, (verdicts, sequences)
    side_by_side = re.findall(r"([\d,]+)\+ \(planned", precisions.split("KV tokens", 1)[1].split("\n")[0])
    assert side_by_side == rows, (side_by_side, rows)


def test_no_emoji_in_any_tab_after_a_plan_that_does_not_fit_a_run_and_a_sweep(cpu_app, browser, pace):
    """A stock Chromium has no emoji font: every verdict and status is text. Also the one-output-token
    sweep: TPOT is undefined (said, not '0.0 ms'), no TPOT line in the legend, progress shown once."""
    page = browser.new_page(viewport={"width": 1400, "height": 1300})
    plan_unfit(page, cpu_app)
    texts = [page.locator("body").inner_text()]
    page.get_by_role("tab", name="Playground").click()
    page.locator("#prompts textarea").fill("What is FP8?")
    page.locator("#run").click()
    finished(page, pace)
    texts.append(page.locator("body").inner_text())
    page.get_by_role("tab", name="Benchmark").click()
    page.locator("#bench-concurrency textarea, #bench-concurrency input").first.fill("1")
    page.locator("#bench-repeats input").fill("1")
    output_len = page.get_by_label("Output tokens (output_len)")
    output_len.fill("1")
    page.locator("#bench").click()
    status = page.locator("#bench-status")
    progress_panels = wait_until(page, lambda: page.evaluate(
        """() => [...document.querySelectorAll('.progress-text, .eta-bar')].filter(e => e.offsetParent)
                   .map(e => e.closest('.block') && e.closest('.block').id).filter(x => x !== null)"""), 60,
        "the sweep's progress on the page")
    # per precision a warm-up and 4 timed requests of 32 prompt tokens and 1 output token: ten short answers
    status.get_by_text("Complete: saved as run #").wait_for(timeout=wait_ms(pace, 10 * 8, floor_s=120))
    page.wait_for_timeout(1000)
    texts.append(page.locator("body").inner_text())
    bench_table = page.locator("#bench-table").inner_text()
    legend = page.eval_on_selector_all(".js-plotly-plot .legendtext", "els => els.map(e => e.textContent)")
    page.close()
    found = {m for t in texts for m in EMOJI.findall(t)}
    assert not found, found
    assert set(progress_panels) <= {"bench-status"}, progress_panels  # once, by the status, not per chart
    assert "undefined" in bench_table and not re.search(r"\|\s*0\.0\s*\|", bench_table.replace("\t", "|")), bench_table
    assert legend and not any("TPOT" in name for name in legend), legend


CLIPPED_JS = """(root) => {
  // Text a reader cannot read whole, in the tab that holds root: a text node running past its field (a
  // Gradio .block) or past an ancestor that hides overflow (text in a scrolling box is reachable); a chart
  // text outside its chart, two chart texts drawn over each other, or a title under plotly's tool bar or Gradio's label.
  const problems = [];
  const scope = document.querySelector(root).closest('[role=tabpanel]');
  const walker = document.createTreeWalker(scope, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const text = node.textContent.trim();
    if (text.length < 2 || node.parentElement.closest('svg, .js-plotly-plot') || !node.parentElement.offsetParent) continue;
    const range = document.createRange();
    range.selectNodeContents(node);
    for (const r of range.getClientRects()) {
      if (!r.width) continue;
      for (let el = node.parentElement; el && el !== scope; el = el.parentElement) {
        const s = getComputedStyle(el);
        if (s.overflowX === 'auto' || s.overflowX === 'scroll') break;
        const box = el.getBoundingClientRect();
        if ((r.right > box.right + 1 || r.left < box.left - 1) &&
            (s.overflowX === 'hidden' || s.overflowX === 'clip' || el.classList.contains('block'))) {
          problems.push(`cut: ${text.slice(0, 60)}`);
          break;
        }
        if (el.classList.contains('block')) break;
      }
    }
  }
  const meets = (a, b) => Math.min(a.right, b.right) - Math.max(a.left, b.left) > 2 &&
                          Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top) > 2;
  for (const plot of scope.querySelectorAll('.js-plotly-plot')) {
    if (!plot.offsetParent) continue;
    const box = plot.getBoundingClientRect();
    const texts = [...plot.querySelectorAll('svg text')].map(t => [t, t.getBoundingClientRect()])
      .filter(([t, r]) => r.width > 0 && t.textContent.trim());
    for (const [t, r] of texts)
      if (r.left < box.left - 1 || r.right > box.right + 1 || r.top < box.top - 1 || r.bottom > box.bottom + 1)
        problems.push(`chart text outside its chart: ${t.textContent.slice(0, 60)}`);
    for (let i = 0; i < texts.length; i++) for (let j = i + 1; j < texts.length; j++)
      if (meets(texts[i][1], texts[j][1]) && !texts[i][0].contains(texts[j][0]) && !texts[j][0].contains(texts[i][0]))
        problems.push(`chart texts overlap: ${texts[i][0].textContent.slice(0, 40)} / ${texts[j][0].textContent.slice(0, 40)}`);
    const bar = plot.querySelector('.modebar'), title = plot.querySelector('.gtitle');
    if (bar && title && meets(bar.getBoundingClientRect(), title.getBoundingClientRect()))
      problems.push(`chart title under the tool bar: ${title.textContent.slice(0, 40)}`);
    const label = plot.closest('.block')?.querySelector('[data-testid="block-label"]');
    if (label && label.offsetParent && title && meets(label.getBoundingClientRect(), title.getBoundingClientRect()))
      problems.push(`chart title under its field label: ${title.textContent.slice(0, 40)}`);
  }
  return [...new Set(problems)];
}"""


def test_at_phone_width_no_text_is_clipped_in_the_planners_charts_and_labels(cpu_app, browser):
    """390 px: every label, hint and chart text of the planner readable whole, for a plan that fits (at
    load) and one that does not (the longest titles)."""
    phone = browser.new_page(viewport={"width": 390, "height": 844}, device_scale_factor=1)
    phone.goto(cpu_app, wait_until="load")
    phone.get_by_role("tab", name="Planner").click()
    phone.locator("#plan-table").get_by_role("cell", name="KV tokens").first.wait_for(timeout=120_000)
    phone.locator("#plan-curve .scatterlayer .point").first.wait_for(timeout=60_000)
    fits = phone.evaluate(CLIPPED_JS, "#plan-table")
    pick(phone, "plan-model", "llama-3.1-70b")
    pick(phone, "plan-gpu", "rtx-4090")
    phone.locator("#plan").click()
    phone.locator("#plan-precisions").get_by_text("short by").first.wait_for(timeout=60_000)
    phone.locator("#plan-memory").get_by_text("short by").first.wait_for(timeout=60_000)
    unfit = phone.evaluate(CLIPPED_JS, "#plan-table")
    legend = phone.eval_on_selector_all("#plan-memory .legendtext", "els => els.map(e => e.textContent)")
    phone.close()
    assert not fits and not unfit, (fits, unfit)
    graphs = [name for name in legend if "CUDA" in name]
    assert len(graphs) == 2 and any("inside the request" in g for g in graphs) and \
        any("outside the request" in g for g in graphs), legend


def test_the_engine_line_is_said_in_words_with_the_details_one_click_away(cpu_app, browser):
    page = browser.new_page(viewport={"width": 1400, "height": 1300})
    page.goto(cpu_app, wait_until="load")
    status = page.locator("#engine-status")
    status.locator("summary").nth(1).wait_for(timeout=300_000)  # both engines ready
    summaries = status.locator("summary").all_inner_texts()
    hidden = status.get_by_text("kv_cache_dtype").first.is_visible()
    status.locator("summary").nth(1).click()
    shown = status.locator("details").nth(1).get_by_text("kv_cache_dtype").is_visible()
    page.close()
    assert [s.split(":")[0] for s in summaries] == ["16-bit", "FP8"], summaries
    assert all(s.count("CPU") == 1 and "dtype" not in s and "quantization" not in s for s in summaries), summaries
    assert "FP8 weights" in summaries[1] and not hidden and shown


def test_three_columns_in_the_page_each_answer_and_are_scored_against_the_first(cpu_app_columns, browser):
    """`--engine` x3 on the CPU: three columns side by side, the headline per column, the quality table
    with one row per column after the first. The wait is derived from the same comparison timed
    through the API first (this machine's speed), so a page that never finishes still fails."""
    import time

    from gradio_client import Client

    url, labels = cpu_app_columns
    prompt = "What is the capital of France?"
    started = time.perf_counter()
    Client(url, verbose=False).predict(prompt, 0.0, 1.0, 0, 16, 0, 1.0, 0.0, 0.0, "", api_name="/compare")
    bound_ms = int(1000 * (3 * (time.perf_counter() - started) + 30))
    page = browser.new_page(viewport={"width": 1600, "height": 1400})
    page.goto(url)
    page.locator("#prompts textarea").fill(prompt)
    page.get_by_text("Sampling").click()
    page.locator("#max-tokens input").fill("16")
    page.locator("#run").click()
    page.locator("#quality").get_by_text("token agreement").wait_for(timeout=bound_ms)
    for label in labels:
        element = re.sub(r"[^A-Za-z0-9_-]+", "-", label)
        answer = page.locator(f"#out-{element} textarea").input_value()
        assert looks_like_english(answer), f"{label} column does not read as English: {answer!r}"
        assert "tok/s" in page.locator(f"#metrics-{element}").inner_text()
    headline = page.locator("#headline").inner_text()
    assert all(f"{label} kept" in headline for label in labels[1:])  # the CPU headline: each column's agreement
    rows = page.locator("#quality tbody tr")
    assert [rows.nth(i).locator("td").first.inner_text() for i in range(rows.count())] == labels[1:]
    page.locator("#speed-chart").scroll_into_view_if_needed()
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "playground-three-columns.png"), full_page=True)
    page.close()


def test_at_phone_width_no_text_is_clipped_in_the_playgrounds_and_benchmarks_charts_and_labels(cpu_app, browser, pace):
    """390 px, after a comparison and a sweep have drawn their charts: every chart title, axis title, legend
    and field label of the Playground and Benchmark tabs readable whole."""
    phone = browser.new_page(viewport={"width": 390, "height": 844}, device_scale_factor=1)
    phone.goto(cpu_app, wait_until="load")
    phone.get_by_text("Sampling").click()
    phone.locator("#max-tokens input").fill("16")
    phone.locator("#prompts textarea").fill("What is FP8?")
    phone.locator("#run").click()
    finished(phone, pace, tokens=16)
    phone.locator("#speed-chart .scatterlayer .point").first.wait_for(timeout=30_000)
    playground = phone.evaluate(CLIPPED_JS, "#speed-chart")
    phone.get_by_role("tab", name="Benchmark").click()
    phone.locator("#bench-concurrency textarea, #bench-concurrency input").first.fill("1")
    phone.locator("#bench-repeats input").fill("1")
    phone.get_by_label("Output tokens (output_len)").fill("8")
    phone.locator("#bench").click()
    phone.locator("#bench-status").get_by_text("Complete: saved as run #").wait_for(
        timeout=wait_ms(pace, sweep_tokens((1,), 1, 8), floor_s=120))
    phone.locator(".js-plotly-plot:visible .scatterlayer .point").first.wait_for(timeout=30_000)
    phone.wait_for_timeout(1000)  # the three charts are drawn one after another
    benchmark = phone.evaluate(CLIPPED_JS, "#bench-status")
    titles = phone.eval_on_selector_all(".js-plotly-plot .gtitle", "els => els.filter(e => e.getClientRects().length).map(e => e.textContent)")
    phone.close()
    assert len(titles) == 3, titles  # throughput, speed-up, latency: all drawn, so all checked
    assert not playground and not benchmark, (playground, benchmark)
