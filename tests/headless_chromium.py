"""Headless Chromium for the browser tests, driven by Selenium.

Why Selenium with Debian's chromium-driver: Debian ships the browser and its driver at
the same version (`make test` installs both: scripts/system_packages.sh --browser), so
they always match, and nothing is downloaded at run time (Playwright wants its own
browser build, which cannot be fetched on our machines).
"""
import contextlib
import os
import shutil

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


@contextlib.contextmanager
def browser(width: int = 1200, height: int = 900):
    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        msg = "headless Chromium missing: apt-get install chromium chromium-driver"
        if os.environ.get("GRAFT_REQUIRE_DATA") == "1":
            pytest.fail(msg)
        pytest.skip(msg)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                f"--window-size={width},{height}"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    try:
        yield driver
    finally:
        driver.quit()


def console_errors(driver):
    return [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def screenshot(driver, name: str) -> None:
    """With GRAFT_SCREENSHOT_DIR set (how docs/ gets its pictures), saves the whole page."""
    out = os.environ.get("GRAFT_SCREENSHOT_DIR")
    if not out:
        return
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(driver.get_window_size()["width"], min(int(height) + 40, 8000))
    driver.save_screenshot(os.path.join(out, name))
