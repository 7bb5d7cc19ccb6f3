"""Screenshots of the viewer's main views over a publication: ``python -m services.viewer.screenshots``.

Serves the publication root (default ``NCDC_STAC_ROOT``, ``public``) on a free loopback port, drives
headless Chromium through the views and writes PNGs to ``docs/screenshots/`` (or ``--out``). Needs the
``playwright`` package (test extra), Debian's ``chromium`` and MapLibre installed in ``web/`` (``npm ci``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ncdc_stac.settings import Settings
from services.viewer.harness import (
    BROWSER_HEADERS,
    authorized_settings,
    center_on,
    chromium_path,
    click_map_center,
    full_app,
    launch_chromium,
    open_viewer,
    serve,
    strongest_point,
    valid_pixel,
    wait_map_idle,
)

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

LAPTOP = {"width": 1366, "height": 820}
PHONE = {"width": 390, "height": 844}


@dataclass(frozen=True)
class Publication:
    """The collections of a publication root the views show, found by what they hold."""

    root: Path

    def collection(self, prefix: str) -> str:
        for folder in sorted(self.root.iterdir()):
            if folder.name.startswith(prefix) and (folder / "collection.json").is_file():
                return folder.name
        raise LookupError(f"no collection {prefix}* under {self.root}")

    def first_file(self, collection: str, name: str) -> Path:
        found = sorted((self.root / collection).glob(f"*/{name}"))
        if not found:
            raise LookupError(f"no {name} in {collection}")
        return found[0]


View = Callable[["Page", str, Publication], None]


def overview(page: Page, base: str, publication: Publication) -> None:
    open_viewer(page, f"{base}/?lang=en")


def monthly_mosaic(page: Page, base: str, publication: Publication) -> None:
    cid = publication.collection("monthly-glacier-surface-velocity")
    open_viewer(page, f"{base}/?lang=en&collection={cid}&time=2023-07")
    page.wait_for_selector("#time-panel:not([hidden])")
    wait_map_idle(page)


def raster_time_series(page: Page, base: str, publication: Publication) -> None:
    cid = publication.collection("monthly-glacier-surface-velocity")
    open_viewer(page, f"{base}/?lang=en&collection={cid}&time=2023-07")
    page.wait_for_selector("#time-panel:not([hidden])")
    lon, lat = valid_pixel(publication.first_file(cid, "velocity.tif"))
    center_on(page, lon, lat, 13)
    click_map_center(page)
    page.wait_for_selector("#inspector[data-state=raster] svg.chart-svg")


def ps_points(page: Page, base: str, publication: Publication) -> None:
    cid = publication.collection("surface-deformation")
    open_viewer(page, f"{base}/?lang=en&collection={cid}")
    page.wait_for_selector("#layer-panel[data-state=ready]")
    wait_map_idle(page)
    lon, lat = strongest_point(publication.first_file(cid, "points.parquet"))
    center_on(page, lon, lat, 11)
    click_map_center(page)
    page.wait_for_selector("#inspector[data-state=point] svg.chart-svg")


def search_chinese(page: Page, base: str, publication: Publication) -> None:
    cid = publication.collection("monthly-velocity-large-glaciers")
    open_viewer(page, f"{base}/?lang=zh-Hans&collection={cid}")
    page.wait_for_selector("#time-panel:not([hidden])")
    page.click("#search-button")
    page.wait_for_selector("#results li img")
    page.locator("#search-section").scroll_into_view_if_needed()
    page.wait_for_load_state("networkidle")


def phone(page: Page, base: str, publication: Publication) -> None:
    cid = publication.collection("surface-subsidence")
    open_viewer(page, f"{base}/?lang=zh-Hans&collection={cid}")
    page.wait_for_selector("#legend .ramp")
    page.select_option("#layer-select", index=1)
    page.wait_for_selector("#time-panel:not([hidden])")
    page.wait_for_selector("#layer-panel[data-state=ready]")
    wait_map_idle(page)
    page.click("#inspect-center")
    page.wait_for_selector("#inspector[data-state=raster]")


VIEWS: dict[str, tuple[View, dict[str, int], bool]] = {
    "overview": (overview, LAPTOP, False),
    "monthly-mosaic": (monthly_mosaic, LAPTOP, False),
    "raster-time-series": (raster_time_series, LAPTOP, False),
    "ps-points": (ps_points, LAPTOP, False),
    "search-zh": (search_chinese, LAPTOP, False),
    "phone-zh": (phone, PHONE, True),
}
"""name -> (how to get there, window size, whole page)."""


def take_screenshots(
    root: Path, out: Path, names: Sequence[str] | None = None, browser: Browser | None = None
) -> list[Path]:
    """Serve ``root``, visit the views and write ``<out>/<view>.png``; returns the files written.

    ``browser``: a Chromium to use (default: one launched for the occasion).
    """
    with ExitStack() as stack:
        base = stack.enter_context(serve(full_app(authorized_settings(root))))
        browser = browser or stack.enter_context(launch_chromium())
        return _shoot(browser, base, Publication(root), out, names or list(VIEWS))


def _shoot(browser: Browser, base: str, publication: Publication, out: Path, names: Sequence[str]) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name in names:
        view, viewport, full_page = VIEWS[name]
        context = browser.new_context(
            viewport=viewport,  # type: ignore[arg-type]
            locale="en-US",
            device_scale_factor=1,
            extra_http_headers=BROWSER_HEADERS,
        )
        try:
            page = context.new_page()
            view(page, base, publication)
            target = out / f"{name}.png"
            page.screenshot(path=str(target), full_page=full_page)
            written.append(target)
        finally:
            context.close()
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.viewer.screenshots", description=__doc__)
    parser.add_argument("--root", type=Path, default=None, help="publication root (default: NCDC_STAC_ROOT or public)")
    parser.add_argument("--out", type=Path, default=Path("docs/screenshots"), help="output folder")
    parser.add_argument("views", nargs="*", metavar="VIEW", help=f"views to shoot (default: all): {', '.join(VIEWS)}")
    args = parser.parse_args(argv)
    unknown = [name for name in args.views if name not in VIEWS]
    if unknown:
        parser.error(f"unknown view(s) {', '.join(unknown)}; choose from {', '.join(VIEWS)}")
    root = Path(args.root or Settings().root).resolve()
    if not (root / "catalog.json").is_file():
        print(f"no publication at {root}: run `make publish` first", file=sys.stderr)
        return 2
    if chromium_path() is None:
        print("Chromium not found: apt-get install chromium", file=sys.stderr)
        return 2
    for path in take_screenshots(root, args.out, args.views or None):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
