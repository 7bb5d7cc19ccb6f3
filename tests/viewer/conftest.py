"""Fixtures of the viewer tests: the whole service over the sample publication, live, and headless Chromium.

Chromium is Debian's ``chromium`` (``apt-get install chromium``) driven by the ``playwright`` package;
without either (or without MapLibre installed by ``npm ci`` in ``web/``) the browser tests are skipped with
the reason, and fail under CI=true.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pytest

from services.viewer import MAPLIBRE_DIR
from services.viewer.harness import (
    BROWSER_HEADERS,
    authorized_settings,
    chromium_path,
    full_app,
    launch_chromium,
    open_viewer,
    playwright_available,
)
from tests.conftest import require
from tests.live import serve
from tests.publication import Publication

if TYPE_CHECKING:
    from playwright.sync_api import Browser, ConsoleMessage, Page, Request, Response

LAPTOP = {"width": 1366, "height": 820}
PHONE = {"width": 390, "height": 844}
ALLOWED_SCHEMES = frozenset({"data", "blob"})


def require_maplibre() -> None:
    require(
        (MAPLIBRE_DIR / "maplibre-gl.mjs").is_file(),
        f"MapLibre GL JS is not installed: run `npm ci` in {MAPLIBRE_DIR.parents[2]}",
    )


@pytest.fixture(scope="session")
def chromium() -> Path:
    path = chromium_path()
    require(path is not None, "Debian's chromium is not installed (apt-get install chromium)")
    require(playwright_available(), "the playwright package is not installed (test extra)")
    assert path is not None
    return path


@pytest.fixture(scope="session")
def viewer_url(publication: Publication) -> Iterator[str]:
    """The whole service (STAC API, files, tiles, viewer) over the sample publication, live."""
    require_maplibre()
    with serve(full_app(authorized_settings(publication.root))) as url:
        yield url


@pytest.fixture(scope="session")
def browser(chromium: Path) -> Iterator[Browser]:
    with launch_chromium(chromium) as launched:
        yield launched


@dataclass
class ViewerPage:
    """A page of the viewer with everything it requested and logged."""

    page: Page
    base: str
    requests: list[str] = field(default_factory=list)
    console: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def open(self, query: str = "") -> None:
        open_viewer(self.page, f"{self.base}/{query}")

    def on_request(self, request: Request) -> None:
        self.requests.append(request.url)

    def on_response(self, response: Response) -> None:
        if response.status >= 500:
            self.failures.append(f"{response.status} {response.url}")

    def on_console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.console.append(f"{message.text} ({message.location.get('url', '')})")

    def foreign_requests(self) -> list[str]:
        """Requests to anything but the server (``data:`` and ``blob:`` URLs aside)."""
        server = urlsplit(self.base).netloc
        foreign = []
        for url in self.requests:
            parts = urlsplit(url)
            if parts.scheme in ALLOWED_SCHEMES:
                continue
            if parts.scheme not in ("http", "https") or parts.netloc != server:
                foreign.append(url)
        return foreign

    def requested(self, fragment: str) -> list[str]:
        return [url for url in self.requests if fragment in url]

    def assert_clean(self) -> None:
        """No console error (CSP violations included), no request off the server, no server error."""
        assert self.console == [], f"console errors: {json.dumps(self.console, indent=1)}"
        assert self.foreign_requests() == [], f"requests off the server: {self.foreign_requests()}"
        assert self.failures == [], f"server errors: {self.failures}"


def new_viewer_page(
    browser: Browser, base: str, viewport: dict[str, int], locale: str = "en-US"
) -> tuple[Any, ViewerPage]:
    context = browser.new_context(
        viewport=viewport,  # type: ignore[arg-type]
        locale=locale,
        device_scale_factor=1,
        extra_http_headers=BROWSER_HEADERS,
    )
    page = context.new_page()
    viewer = ViewerPage(page, base)
    page.on("request", viewer.on_request)
    page.on("response", viewer.on_response)
    page.on("console", viewer.on_console)
    page.on("pageerror", lambda error: viewer.console.append(f"uncaught: {error}"))
    return context, viewer


@pytest.fixture
def viewer(browser: Browser, viewer_url: str) -> Iterator[ViewerPage]:
    """A laptop-sized page of the viewer (English browser)."""
    context, page = new_viewer_page(browser, viewer_url, LAPTOP)
    try:
        yield page
    finally:
        context.close()


@pytest.fixture
def phone(browser: Browser, viewer_url: str) -> Iterator[ViewerPage]:
    """A phone-sized page of the viewer (Chinese browser)."""
    context, page = new_viewer_page(browser, viewer_url, PHONE, locale="zh-CN")
    try:
        yield page
    finally:
        context.close()


def collection_document(publication: Publication, dataset: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((publication.collection_dir(dataset) / "collection.json").read_text())
    return document
