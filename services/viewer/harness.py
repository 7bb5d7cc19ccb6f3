"""Running the viewer for end-to-end tests and screenshots: the whole service, a live server, headless Chromium.

Chromium is Debian's ``chromium`` driven by Playwright; no browser is downloaded (no ``playwright
install``). Name resolution of every host but 127.0.0.1 fails and background networking is off, so a page
can reach nothing but the local server.
"""

from __future__ import annotations

import io
import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from fastapi import FastAPI
from starlette.routing import Mount

from ncdc_stac.settings import Settings

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
CHROMIUM_ARGS = (
    "--headless=new",
    "--no-sandbox",
    "--use-angle=swiftshader",
    "--enable-unsafe-swiftshader",
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-domain-reliability",
    "--disable-sync",
    "--disable-client-side-phishing-detection",
    "--disable-features=Translate,OptimizationHints,MediaRouter,InterestFeedContentSuggestions,AutofillServerCommunication",
    "--metrics-recording-only",
    "--no-default-browser-check",
    "--no-first-run",
    "--no-pings",
    "--safebrowsing-disable-auto-update",
    "--password-store=basic",
    "--use-mock-keychain",
)
RASTER_PATH = "/raster"


def chromium_path() -> Path | None:
    """The system Chromium (``NCDC_STAC_CHROMIUM`` overrides), or ``None``."""
    override = os.environ.get("NCDC_STAC_CHROMIUM")
    candidates = [override] if override else [*CHROMIUM_CANDIDATES, shutil.which("chromium") or ""]
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return Path(candidate)
    return None


def playwright_available() -> bool:
    """Whether the ``playwright`` package is installed (a test dependency)."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return False
    return True


@contextmanager
def launch_chromium(executable: Path | None = None) -> Iterator[Browser]:
    """A headless Chromium (closed when the block ends)."""
    from playwright.sync_api import sync_playwright

    path = executable or chromium_path()
    if path is None:
        raise RuntimeError("Chromium not found: apt-get install chromium (or set NCDC_STAC_CHROMIUM)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(path), args=list(CHROMIUM_ARGS), headless=True)
        try:
            yield browser
        finally:
            browser.close()


def _mounted(app: FastAPI, path: str) -> bool:
    return any(getattr(route, "path", None) == path for route in app.routes)


BROWSER_KEY = "viewer-browser-key-for-tests-and-screenshots"
"""API key the harness's browser sends (``X-API-Key``), so restricted sample collections are drawn too."""


def authorized_settings(root: Path) -> Settings:
    """Settings over ``root`` where :data:`BROWSER_KEY` is an admin key (tests and screenshots only)."""
    from ncdc_stac.settings import ApiKey
    from services.access import hash_api_key

    return Settings(root=root, api_keys={hash_api_key(BROWSER_KEY): ApiKey(subject="viewer-harness", roles=["admin"])})


BROWSER_HEADERS = {"X-API-Key": BROWSER_KEY}


def full_app(settings: Settings) -> FastAPI:
    """``create_app(settings)`` with the tile service at ``/raster`` and the viewer at ``/``, when it lacks them."""
    from services.api.urls import MountedApp
    from services.app import create_app
    from services.viewer import create_viewer_router

    app = create_app(settings)
    if not any(isinstance(route, Mount) and route.path == RASTER_PATH for route in app.routes):
        from services.raster import create_raster_app

        raster = create_raster_app(settings, getattr(app.state.stac.state, "store", None))
        app.mount(RASTER_PATH, MountedApp(raster), name="raster")
    if not _mounted(app, "/"):
        app.include_router(create_viewer_router(settings))
    return app


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serve(app: FastAPI, port: int | None = None) -> Iterator[str]:
    """Serve ``app`` on http://127.0.0.1:<port> in a thread until the block ends; yields the base URL."""
    import uvicorn

    port = port or free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def changed_pixels(before: bytes, after: bytes, threshold: int = 40) -> int:
    """How many pixels of two same-sized PNG screenshots differ by more than ``threshold`` in some channel."""
    from PIL import Image, ImageChops

    first = Image.open(io.BytesIO(before)).convert("RGB")
    second = Image.open(io.BytesIO(after)).convert("RGB")
    if first.size != second.size:
        raise ValueError(f"screenshots differ in size: {first.size} != {second.size}")
    difference = ImageChops.difference(first, second)
    channels = difference.split()
    strongest = ImageChops.lighter(ImageChops.lighter(channels[0], channels[1]), channels[2])
    histogram = strongest.histogram()
    return sum(histogram[threshold + 1 :])


def colourful_pixels(png: bytes, spread: int = 60) -> int:
    """Pixels whose channels spread over more than ``spread`` (saturated colours, not the grey background)."""
    from PIL import Image, ImageChops

    image = Image.open(io.BytesIO(png)).convert("RGB")
    red, green, blue = image.split()
    high = ImageChops.lighter(ImageChops.lighter(red, green), blue)
    low = ImageChops.darker(ImageChops.darker(red, green), blue)
    histogram = ImageChops.subtract(high, low).histogram()
    return sum(histogram[spread + 1 :])


# -------------------------------------------------------------------------------------------------------------
# Driving the page (Playwright ``Page``): the page's own hooks are ``window.ncdcViewer`` and ``body[data-ready]``.

WAIT_IDLE = """(timeout) => new Promise((resolve) => {
  const map = window.ncdcViewer && window.ncdcViewer.map;
  if (!map) { resolve("no map"); return; }
  const timer = setTimeout(() => resolve("timeout"), timeout);
  map.once("idle", () => { clearTimeout(timer); resolve("idle"); });
  map.triggerRepaint();
})"""


def open_viewer(page: Page, url: str) -> None:
    """Load the viewer at ``url`` and wait for its collections and the first idle map."""
    page.goto(url)
    page.wait_for_selector("body[data-ready=true]", state="attached", timeout=60_000)
    wait_map_idle(page)


def wait_map_idle(page: Page, timeout_ms: int = 45_000) -> None:
    """Wait until the map has drawn everything it is loading (tiles included)."""
    result = page.evaluate(WAIT_IDLE, timeout_ms)
    if result != "idle":
        raise TimeoutError(f"the map did not become idle: {result}")


def center_on(page: Page, lon: float, lat: float, zoom: float) -> None:
    """Move the map to ``lon``/``lat`` at ``zoom`` and wait for its tiles."""
    page.evaluate("([lon, lat, zoom]) => window.ncdcViewer.map.jumpTo({center: [lon, lat], zoom})", [lon, lat, zoom])
    wait_map_idle(page)


def click_map_center(page: Page) -> None:
    """Click the middle of the map."""
    box = page.locator("#map").bounding_box()
    if box is None:
        raise RuntimeError("the map is not displayed")
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)


def map_screenshot(page: Page) -> bytes:
    """PNG of the map alone: the panels drawn over it are hidden for the shot."""
    overlays = ".map-tools, .inspector, .maplibregl-control-container, .graticule-labels"
    toggle = (
        "([selector, value]) => document.querySelectorAll(selector).forEach((e) => { e.style.visibility = value; })"
    )
    page.evaluate(toggle, [overlays, "hidden"])
    try:
        return page.locator("#map").screenshot()
    finally:
        page.evaluate(toggle, [overlays, ""])


# -------------------------------------------------------------------------------------------------------------
# Places with data in a publication (to click on)


def valid_pixel(cog: Path) -> tuple[float, float]:
    """Lon/lat of the valid pixel nearest to the middle of a COG."""
    import numpy as np
    import rasterio
    from rasterio.warp import transform

    with rasterio.open(cog) as src:
        band = src.read(1, masked=True)
        rows, cols = np.nonzero(~np.ma.getmaskarray(band))
        if not len(rows):
            raise ValueError(f"{cog}: no valid pixel")
        middle_row, middle_col = band.shape[0] / 2, band.shape[1] / 2
        nearest = int(np.argmin((rows - middle_row) ** 2 + (cols - middle_col) ** 2))
        x, y = src.xy(int(rows[nearest]), int(cols[nearest]))
        lons, lats = transform(src.crs, "EPSG:4326", [x], [y])
    return float(lons[0]), float(lats[0])


def strongest_point(parquet: Path, column: str = "VEL") -> tuple[float, float]:
    """Lon/lat of the point with the largest ``|column|`` in a GeoParquet file."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq
    import shapely

    table = pq.read_table(parquet, columns=["geometry", column])
    index = int(pc.index(pc.abs(table[column]), pc.max(pc.abs(table[column]))).as_py())
    point = shapely.from_wkb(table["geometry"][index].as_py())
    return float(point.x), float(point.y)
