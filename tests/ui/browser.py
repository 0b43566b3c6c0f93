"""Headless Chromium from Debian, driven by Selenium with Debian's chromedriver.

Selenium Manager and Playwright download browsers from the internet; these tests use only
the system's ``chromium`` and ``chromedriver`` (the Makefile installs them when absent).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM = ("chromium", "chromium-browser")
WAIT_S = 30.0


def chromium_paths() -> tuple[str, str]:
    """The browser and driver binaries, or a one-line reason they are missing."""
    browser = next((p for p in map(shutil.which, CHROMIUM) if p), None)
    driver = shutil.which("chromedriver")
    if browser is None or driver is None:
        raise RuntimeError(
            "browser tests need Debian's chromium and chromium-driver "
            "(`make test` installs them; or apt-get install chromium chromium-driver)"
        )
    return browser, driver


@contextmanager
def chromium(width: int = 1360, height: int = 900) -> Iterator[webdriver.Chrome]:
    browser, driver = chromium_paths()
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-extensions",
        f"--window-size={width},{height}",
    ):
        options.add_argument(flag)
    chrome = webdriver.Chrome(service=Service(executable_path=driver), options=options)
    try:
        yield chrome
    finally:
        chrome.quit()


def wait_for(chrome: webdriver.Chrome, check: Callable[[Any], Any], timeout: float = WAIT_S) -> Any:
    return WebDriverWait(chrome, timeout, poll_frequency=0.1).until(check)


def text_of(chrome: webdriver.Chrome, css: str) -> str:
    return str(chrome.find_element(By.CSS_SELECTOR, css).text)


def save_page(chrome: webdriver.Chrome, folder: Path, name: str) -> Path:
    """A full-width screenshot of the page as ``folder/ui-<name>.png``."""
    height = chrome.execute_script("return document.body.scrollHeight")
    chrome.set_window_size(1360, min(max(int(height) + 40, 700), 2400))
    path = folder / f"ui-{name}.png"
    chrome.save_screenshot(str(path))
    return path
