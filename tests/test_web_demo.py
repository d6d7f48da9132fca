"""scripts/web_demo.py in a real browser: headless Chromium (Debian's package; .ci/run installs it) loads the
page, a message is typed and sent, and the answer streams into the page; the DOM text is the engine's greedy
answer and a screenshot of the page is saved."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import pytest
from test_api import start_server, stop_server

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER),
    reason="chromium and chromedriver are not installed (.ci/run installs them)",
)


@pytest.fixture(scope="module")
def demo(tiny_llama: Path):
    process, url = start_server("scripts/web_demo.py", "--model_name_or_path", str(tiny_llama), "--template",
                                "belle", "--max_tokens", "12")  # fmt: skip
    yield url
    stop_server(process)


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--window-size=1000,700"):  # fmt: skip
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def test_a_message_gets_a_streamed_answer_in_the_page(demo: str, browser, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(demo)
    temperature = browser.find_element(By.ID, "temperature")
    temperature.clear()
    temperature.send_keys("0")
    browser.find_element(By.ID, "message").send_keys("why not?")
    browser.find_element(By.ID, "send").click()
    answer = WebDriverWait(browser, 120).until(
        lambda d: d.find_element(By.CSS_SELECTOR, ".turn.assistant[data-done='true']")
    )
    screenshot = tmp_path / "web_demo.png"
    browser.save_screenshot(str(screenshot))

    expected = httpx.post(f"{demo}/chat", json={"messages": [{"role": "user", "content": "why not?"}],
                                                "temperature": 0, "max_tokens": 12}, timeout=60).text  # fmt: skip
    assert expected.strip(), "the tiny model says something visible to this question"
    assert answer.text == expected.strip()  # the DOM drops the whitespace at the ends of a block
    assert int(answer.get_attribute("data-chunks")) > 1, "the answer arrived in pieces"
    assert [e.text for e in browser.find_elements(By.CSS_SELECTOR, ".turn.user")] == ["why not?"]
    assert screenshot.stat().st_size > 5000 and screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
