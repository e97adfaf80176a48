"""A person's path through the real page in headless Chromium (Debian's, driven by Playwright)."""

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
    page.screenshot(path=str(SHOTS / "planner.png"), full_page=True)


def sweep_tokens(concurrency: tuple[int, ...], repeats: int, output_len: int, precisions: int = 2) -> int:
    """Output tokens a sweep decodes (playground/bench/sweep.py): per level a warm-up wave of ``c``
    prompts, then ``repeats`` passes over max(c, 4) prompts."""
    return precisions * sum((c + repeats * max(c, 4)) * output_len for c in concurrency)


def test_the_benchmark_tab_runs_a_sweep_and_draws_its_charts(page, pace):
    page.get_by_role("tab", name="Benchmark").click()
    page.locator("#bench-concurrency textarea, #bench-concurrency input").first.fill("1,2")
    page.locator("#bench-repeats input").fill("1")
    page.locator("#bench").click()
    # the CPU tab's defaults: 32 prompt tokens, 16 output tokens; requests at one time share the CPU (no speed-up assumed)
    page.locator("#bench-status").get_by_text("Complete: saved as run #").wait_for(
        timeout=wait_ms(pace, sweep_tokens((1, 2), 1, 16), floor_s=60))
    page.wait_for_timeout(1000)
    # throughput, speed-up, latency; no memory chart without a GPU, no roofline column on a CPU
    assert page.locator(".js-plotly-plot:visible").count() == 3
    assert "roofline" not in page.locator("#bench-table").inner_text()
    ticks = page.eval_on_selector_all(".js-plotly-plot .xtick text", "els => els.filter(e => e.getClientRects().length).map(e => e.textContent)")
    assert ticks and set(ticks) <= {"1", "2"}, ticks  # the measured concurrencies only
    page.screenshot(path=str(SHOTS / "benchmark.png"), full_page=True)


def test_at_phone_width_no_tab_widens_the_page(cpu_app, browser):
    """At 390 px every tab fits the viewport (tables scroll inside their panel); screenshots for the README."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    phone = browser.new_page(viewport={"width": 390, "height": 844}, device_scale_factor=1)
    phone.goto(cpu_app)
    phone.locator("#run").wait_for(timeout=60_000)
    overflow = {}
    for tab, shot in (("Playground", "phone-playground.png"), ("Planner", "phone-planner.png"),
                      ("Benchmark", "phone-benchmark.png")):
        phone.get_by_role("tab", name=tab).click()
        phone.wait_for_timeout(1500)
        overflow[tab] = phone.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
        phone.screenshot(path=str(SHOTS / shot), full_page=False)
    phone.close()
    assert all(scroll <= inner for scroll, inner in overflow.values()), overflow


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
        assert "Stopped: idle." in page.locator(f"#metrics-{label}").inner_text()
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
    box = page.locator(f"#{elem_id} input")
    box.click()
    box.fill(value)
    page.get_by_role("option", name=value, exact=True).click()


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


def test_a_model_that_does_not_fit_shows_the_shortfall_and_every_suggestion_fits(cpu_app, browser):
    """Llama-3.1-70B on an RTX 4090: 'short by N GiB', no None/NaN/negative memory; each suggestion,
    applied with one click, re-plans to ✅ for its precision."""
    page = browser.new_page(viewport={"width": 1400, "height": 1300})
    plan_unfit(page, cpu_app)
    shown = page.locator("#plan-precisions").inner_text() + page.locator("#plan-table").inner_text()
    assert not re.search(r"\bNone\b|\bnan\b|NaN|-\d[\d.,]* ?GiB|−\d", shown), shown
    page.screenshot(path=str(SHOTS / "planner-overflow.png"), full_page=True)
    page.locator("#suggestions input").click()
    options = [o.get_attribute("aria-label") for o in page.get_by_role("option").all()]
    page.keyboard.press("Escape")
    assert options, "no suggestion offered for a model that does not fit"
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
            if "✅" in verdict_of(page, precision):
                break
            page.wait_for_timeout(500)
        assert "✅" in verdict_of(page, precision), (option, page.locator("#plan-precisions").inner_text())
    page.close()


def test_a_deep_link_opened_in_a_fresh_browser_brings_back_inputs_and_results(cpu_app, browser, pace):
    first = browser.new_context(permissions=["clipboard-read", "clipboard-write"], viewport={"width": 1400, "height": 1300})
    page = first.new_page()
    page.goto(cpu_app)
    page.locator("#prompts textarea").fill("Name a colour.")
    page.locator("#run").click()
    finished(page, pace)
    answer = page.locator("#out-FP8 textarea").input_value()
    page.get_by_role("button", name=re.compile("Share|Copy", re.I)).first.click()
    page.wait_for_timeout(1500)
    link = page.evaluate("navigator.clipboard.readText()")
    first.close()
    assert "deep_link=" in link, link
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
