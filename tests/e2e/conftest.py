"""The web page's browser fixtures, for the modules that drive it in Chromium
(test_ui.py, test_ui_list.py): each of those modules defines its own ``site`` (an API
server and a user of it, with ``url``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser

from tests.e2e.ui_browser import Browsing, chromium


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


@pytest.fixture
def browsing(
    browser: Browser, site: Any, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Browsing]:
    """A fresh browser context; ``with browsing as page:`` screenshots a failure."""
    made = Browsing(browser, site.url, tmp_path / f"{request.node.name}.png")
    yield made
    made.close()
