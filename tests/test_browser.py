"""A person's path through the real page in headless Chromium (Debian's, driven by Playwright)."""

import os
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
def page(cpu_app, browser):
    page = browser.new_page(viewport={"width": 1400, "height": 1300})
    page.goto(cpu_app)
    yield page
    page.close()


def test_a_comparison_in_the_page_fills_both_columns_and_shows_metrics(page):
    page.locator("#prompts textarea").fill("Is FP8 worth it on my H100?")
    page.locator("#run").click()
    for label in ("16-bit", "FP8"):
        metrics = page.locator(f"#metrics-{label}")
        metrics.get_by_text("tokens/s", exact=False).or_(metrics.get_by_text("tok/s", exact=False)).first.wait_for(timeout=60_000)
    page.get_by_text("streaming…").first.wait_for(state="detached", timeout=60_000)
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


def test_the_benchmark_tab_runs_a_sweep_and_draws_its_charts(page):
    page.get_by_role("tab", name="Benchmark").click()
    page.locator("#bench-concurrency textarea, #bench-concurrency input").first.fill("1,2")
    page.locator("#bench-repeats input").fill("1")
    page.locator("#bench").click()
    page.locator("#bench-status").get_by_text("Saved as run #").wait_for(timeout=120_000)
    assert page.locator(".js-plotly-plot").count() >= 4
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
