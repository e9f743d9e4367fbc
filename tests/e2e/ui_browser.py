"""The web page in a real browser, for the end-to-end tests: Debian's Chromium driven by
Playwright, logging in through the form, reading what the page shows, and a screenshot
of the page when a test fails.

Chromium is ``/usr/bin/chromium`` (``make test`` installs Debian's ``chromium``;
``TRAINQ_TEST_CHROMIUM`` names another binary): Playwright's own browser download is
not needed. ``TRAINQ_UI_SCREENSHOTS=docs/screenshots`` makes the tests take the
README's screenshots (the list, a job page with its curve, the compare view) into that
folder (relative to the repository); without it they take none.
"""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    ViewportSize,
    sync_playwright,
)
from playwright.sync_api import Error as PlaywrightError

from tests.harness import REPO, wait_until

CHROMIUM = Path(os.environ.get("TRAINQ_TEST_CHROMIUM", "/usr/bin/chromium"))
SCREENSHOTS_ENV = "TRAINQ_UI_SCREENSHOTS"
VIEWPORT: ViewportSize = {"width": 1400, "height": 1000}
# How long the page may take to show what a test waits for (polls are 2 s apart).
SHOWN_S = 20.0


@contextmanager
def chromium() -> Iterator[Browser]:
    """A headless Chromium, closed afterwards."""
    if not CHROMIUM.exists():
        raise FileNotFoundError(f"{CHROMIUM} is missing: `make test` installs Debian's chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox"], headless=True
        )
        try:
            yield browser
        finally:
            browser.close()


class Browsing:
    """One test's browser context on the API server: ``with browsing as page:`` gives a
    fresh page; when the block fails, or a script of the page threw, the page's
    screenshot is saved as ``failure_shot`` (the test's own name) and named in the error."""

    def __init__(self, browser: Browser, base_url: str, failure_shot: Path) -> None:
        self.base_url = base_url
        self.failure_shot = failure_shot
        self.context: BrowserContext = browser.new_context(base_url=base_url, viewport=VIEWPORT)
        self.page: Page = self.context.new_page()
        self.script_errors: list[str] = []
        self.page.on("pageerror", lambda error: self.script_errors.append(str(error)))
        self.page.on("console", self._refused)

    def _refused(self, message: ConsoleMessage) -> None:
        """A Content-Security-Policy refusal (an inline script or style) is an error."""
        if message.type == "error" and "Content Security Policy" in message.text:
            self.script_errors.append(message.text)

    def __enter__(self) -> Page:
        return self.page

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if error is None:
            if not self.script_errors:
                return
            error = AssertionError("the page's scripts threw: " + "; ".join(self.script_errors))
            self._screenshot(error)
            raise error
        self._screenshot(error)
        if self.script_errors:
            error.add_note("the page's scripts threw: " + "; ".join(self.script_errors))

    def _screenshot(self, error: BaseException) -> None:
        try:
            self.failure_shot.parent.mkdir(parents=True, exist_ok=True)
            self.page.screenshot(path=str(self.failure_shot), full_page=True)
            error.add_note(f"screenshot of the page when it failed: {self.failure_shot}")
        except PlaywrightError as exc:
            error.add_note(f"no screenshot of the page ({exc})")

    def close(self) -> None:
        self.context.close()


def log_in(page: Page, token: str, path: str = "/ui/") -> None:
    """Open ``path``, which sends a browser without a session to the login form; log in
    there with ``token`` and come back to ``path``."""
    page.goto(path)
    page.wait_for_url(re.compile(r"/ui/login\?next="))
    page.fill("#token", token)
    page.click("#login-submit")
    page.wait_for_url(re.compile(re.escape(path.split("?")[0]) + r"(\?.*)?$"))


def attribute(page: Page, selector: str, name: str) -> str:
    """An attribute of the first element ``selector`` finds ("" when it has none)."""
    return page.locator(selector).first.get_attribute(name) or ""


def number(page: Page, selector: str, name: str) -> float:
    """A numeric attribute (``data-points``, ``value``): 0 when absent."""
    text = attribute(page, selector, name)
    return float(text) if text else 0.0


def shown(condition: Callable[[], object], what: str, timeout_s: float = SHOWN_S) -> None:
    """Wait until the page shows ``condition`` (polled); TimeoutError naming ``what``."""
    wait_until(condition, timeout_s, what, interval_s=0.2)


def page_state(page: Page) -> dict[str, Any]:
    """What the job page shows now: status, progress bar, chart points, console lines."""
    state: dict[str, Any] = page.evaluate(
        """() => {
          const bar = document.getElementById("job-progress");
          const chart = document.getElementById("chart-loss");
          return {
            status: document.getElementById("job-status").textContent,
            progress: Number(bar.value),
            points: chart ? Number(chart.dataset.points) : 0,
            lines: Number(document.getElementById("console").dataset.lines),
          };
        }"""
    )
    return state


def steps(states: list[dict[str, Any]], field: str) -> int:
    """How often ``field`` grew from one state to the next."""
    return sum(1 for before, after in itertools.pairwise(states) if after[field] > before[field])


def readme_screenshot(page: Page, name: str) -> Path | None:
    """With ``TRAINQ_UI_SCREENSHOTS`` set, the page's screenshot as ``<that folder>/name``;
    None otherwise."""
    folder = os.environ.get(SCREENSHOTS_ENV)
    if not folder:
        return None
    target = Path(folder)
    if not target.is_absolute():
        target = REPO / target
    target.mkdir(parents=True, exist_ok=True)
    path = target / name
    page.screenshot(path=str(path), full_page=True)
    return path
