"""Debian's Chromium driven by Playwright, for the browser tests: never a browser download,
and a clear failure (never a skip) when either is missing."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

CHROMIUM = Path("/usr/bin/chromium")


@contextmanager
def launch_chromium() -> Iterator[Browser]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as error:
        pytest.fail(
            f"Playwright is required for the browser tests ({error}): "
            "run `.venv/bin/pip install -e '.[test]'` or scripts/test",
            pytrace=False,
        )
    if not CHROMIUM.is_file() or shutil.which(str(CHROMIUM)) is None:
        pytest.fail(
            f"Chromium is required at {CHROMIUM} for the browser tests: "
            "run `apt-get install chromium` or scripts/test",
            pytrace=False,
        )
    with sync_playwright() as playwright:
        # --no-sandbox: CI runs as root, where Chromium refuses to start with its sandbox.
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"]
        )
        try:
            yield chromium
        finally:
            chromium.close()


def open_connect_link(page: Page, url: str) -> None:
    """Open a connect link and press "Continue" on its confirmation page, waiting for
    wherever that leads (the provider's redirects included)."""
    page.goto(url)
    page.wait_for_selector("#confirm")
    with page.expect_navigation():
        page.click("#continue")
