"""End-to-end: the viewer in headless Chromium against the live service over the four sample datasets.

Every test ends with :meth:`ViewerPage.assert_clean`: no console error (Content-Security-Policy violations
included), no request to any host but the server, no 5xx answer.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

import numpy as np
import pyarrow.parquet as pq
import rasterio
from rasterio.warp import transform

from services.viewer.harness import (
    center_on,
    changed_pixels,
    click_map_center,
    colourful_pixels,
    map_screenshot,
    open_viewer,
    strongest_point,
    valid_pixel,
    wait_map_idle,
)
from tests.publication import Publication
from tests.viewer.conftest import ViewerPage, collection_document

GANGRIGAB = "gangrigab-velocity"
HMA = "hma-glacier-velocity"
CPEC = "cpec-deformation"
MULI = "muli-subsidence"
BACKGROUND = (0xE8, 0xED, 0xF1)


def eventually(check: Callable[[], bool], timeout: float = 15.0) -> bool:
    """Whether ``check()`` becomes true within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def value_at(cog: str, lon: float, lat: float) -> float | None:
    with rasterio.open(cog) as src:
        xs, ys = transform("EPSG:4326", src.crs, [lon], [lat])
        row, col = src.index(xs[0], ys[0])
        value = src.read(1, masked=True)[row, col]
    return None if np.ma.is_masked(value) else float(value)


def set_opacity_and_shoot(viewer: ViewerPage, key: str) -> bytes:
    """Set the opacity slider with the keyboard (Home: 0, End: 100) and take a shot of the map."""
    viewer.page.focus("#opacity")
    viewer.page.keyboard.press(key)
    wait_map_idle(viewer.page)
    return map_screenshot(viewer.page)


def drawn_pixels(viewer: ViewerPage) -> int:
    """Pixels the data layers draw: the map at full opacity against the map with the layers transparent."""
    hidden = set_opacity_and_shoot(viewer, "Home")
    shown = set_opacity_and_shoot(viewer, "End")
    return changed_pixels(hidden, shown)


def test_overview_lists_the_collections(viewer: ViewerPage, publication: Publication) -> None:
    viewer.open("?lang=en")
    buttons = viewer.page.locator("#collection-list button.collection")
    assert buttons.count() == 4
    for dataset in (GANGRIGAB, HMA, CPEC, MULI):
        document = collection_document(publication, dataset)
        button = viewer.page.locator(f'#collection-list button[data-collection="{document["id"]}"]')
        assert button.locator(".collection-title").inner_text() == document["title"]
        assert button.locator(".badge").get_attribute("data-share") == document["ncdc:share_type"]
    gangrigab = viewer.page.locator(f'button[data-collection="{publication.collection_ids[GANGRIGAB]}"]')
    assert gangrigab.locator(".period").inner_text() == "2023-01-01 – 2023-12-31"
    assert gangrigab.locator(".badge").inner_text() == "Open access"
    assert viewer.page.locator("text=Access on application").count() == 2
    assert viewer.page.locator("text=Sign-in access").count() == 1
    # The map shows the extents of the collections over a background and a graticule.
    shot = map_screenshot(viewer.page)
    assert colourful_pixels(shot) > 500, "collection extents drawn"
    assert viewer.requested("/stac/collections")
    viewer.assert_clean()


def test_monthly_collection_time_slider(viewer: ViewerPage, publication: Publication) -> None:
    cid = publication.collection_ids[GANGRIGAB]
    viewer.open("?lang=en")
    viewer.page.click(f'#collection-list button[data-collection="{cid}"]')
    viewer.page.wait_for_selector("#time-panel:not([hidden])")
    assert viewer.page.locator("#collection-title").inner_text() == collection_document(publication, GANGRIGAB)["title"]
    slider = viewer.page.locator("#time-slider")
    assert slider.get_attribute("max") == "11"
    assert viewer.page.locator("#time-label").inner_text() == "Dec 2023"
    assert slider.get_attribute("aria-valuetext") == "Dec 2023"
    legend = viewer.page.locator("#legend")
    assert "Glacier surface velocity" in legend.inner_text() and "m/d" in legend.inner_text()
    assert legend.locator(".ramp").count() == 1
    wait_map_idle(viewer.page)
    assert viewer.requested(f"/raster/collections/{cid}/tiles/WebMercatorQuad/")
    assert viewer.requested("datetime=2023-12")
    assert drawn_pixels(viewer) > 5_000, "mosaic tiles drawn"
    december = map_screenshot(viewer.page)

    # One month back with the keyboard: new tiles for 2023-11, and the map changes.
    with viewer.page.expect_request(lambda request: "/tiles/" in request.url and "datetime=2023-11" in request.url):
        slider.focus()
        viewer.page.keyboard.press("ArrowLeft")
    assert viewer.page.locator("#time-label").inner_text() == "Nov 2023"
    wait_map_idle(viewer.page)
    assert changed_pixels(december, map_screenshot(viewer.page)) > 1_000, "another month, other velocities"
    assert "time=2023-11" in viewer.page.url

    # Buttons: previous, next, play and pause.
    viewer.page.click("#time-prev")
    assert viewer.page.locator("#time-label").inner_text() == "Oct 2023"
    viewer.page.click("#time-next")
    viewer.page.click("#time-next")
    assert viewer.page.locator("#time-label").inner_text() == "Dec 2023"
    viewer.page.click("#time-play")
    assert viewer.page.locator("#time-play").get_attribute("aria-pressed") == "true"
    viewer.page.wait_for_selector("#time-label:text('Jan 2023')", timeout=10_000)  # wraps around
    viewer.page.click("#time-play")
    assert viewer.page.locator("#time-play").get_attribute("aria-pressed") == "false"
    wait_map_idle(viewer.page)
    viewer.assert_clean()


def test_click_on_the_raster_shows_the_value_and_its_time_series(viewer: ViewerPage, publication: Publication) -> None:
    cid = publication.collection_ids[GANGRIGAB]
    cog = publication.collection_dir(GANGRIGAB) / "2023-07" / "velocity.tif"
    lon, lat = valid_pixel(cog)
    viewer.open(f"?lang=en&collection={cid}&time=2023-07")
    viewer.page.wait_for_selector("#time-panel:not([hidden])")
    assert viewer.page.locator("#time-label").inner_text() == "Jul 2023"
    center_on(viewer.page, lon, lat, 14)
    click_map_center(viewer.page)
    inspector = viewer.page.locator("#inspector[data-state=raster]")
    inspector.wait_for()
    clicked = viewer.page.evaluate("() => window.ncdcViewer.state.inspection")
    expected = value_at(str(cog), clicked["lon"], clicked["lat"])
    assert expected is not None
    value = inspector.locator("#inspector-value")
    assert "Jul 2023" in value.inner_text() and "m/d" in value.inner_text()
    assert abs(float(value.locator("strong").inner_text()) - expected) <= abs(expected) * 1e-3 + 1e-6
    assert inspector.locator("svg.chart-svg polyline.series").count() >= 1
    assert inspector.locator("svg.chart-svg circle.current").count() == 1
    assert inspector.locator(".chart-table tbody tr").count() == 12
    assert viewer.requested("/timeseries?")

    # Keyboard: Escape closes, "Inspect the map centre" reads the same place again.
    viewer.page.keyboard.press("Escape")
    assert viewer.page.locator("#inspector").is_hidden()
    viewer.page.focus("#inspect-center")
    viewer.page.keyboard.press("Enter")
    viewer.page.locator("#inspector[data-state=raster] svg.chart-svg").wait_for()
    viewer.assert_clean()


def test_ps_points_are_drawn_and_read(viewer: ViewerPage, publication: Publication) -> None:
    cid = publication.collection_ids[CPEC]
    parquet = sorted(publication.collection_dir(CPEC).glob("*/points.parquet"))[0]
    lon, lat = strongest_point(parquet)
    table = pq.read_table(parquet, columns=["CODE", "VEL", "LON", "LAT"]).to_pylist()
    point = min(table, key=lambda row: (row["LON"] - lon) ** 2 + (row["LAT"] - lat) ** 2)
    viewer.open(f"?lang=en&collection={cid}")
    viewer.page.wait_for_selector("#layer-panel[data-state=ready]")
    legend = viewer.page.locator("#legend").inner_text()
    assert "mean LOS velocity" in legend and "mm/yr" in legend
    assert "VEL" in viewer.page.locator("#layer-view").inner_text()
    center_on(viewer.page, lon, lat, 12)
    assert viewer.requested("/vector/tiles/") and all(
        u.split("?")[0].endswith(".mvt") for u in viewer.requested("/vector/tiles/")
    )
    assert drawn_pixels(viewer) > 300, "points drawn"
    click_map_center(viewer.page)
    inspector = viewer.page.locator("#inspector[data-state=point]")
    inspector.wait_for()
    attributes = inspector.locator("table.attributes").inner_text()
    assert point["CODE"] in attributes
    assert float(inspector.locator("#inspector-value strong").inner_text()) == point["VEL"]
    assert inspector.locator("svg.chart-svg polyline.series").count() >= 1
    assert point["CODE"] in inspector.locator("figcaption").inner_text()
    assert viewer.requested("/vector/point?")
    viewer.assert_clean()


def test_search_the_map_extent_and_show_an_item(viewer: ViewerPage, publication: Publication) -> None:
    cid = publication.collection_ids[HMA]
    viewer.open(f"?lang=en&collection={cid}")
    viewer.page.wait_for_selector("#time-panel:not([hidden])")
    viewer.page.fill("#search-from", "2024-01-01")
    viewer.page.fill("#search-to", "2024-03-31")
    viewer.page.click("#search-button")
    results = viewer.page.locator("#results button.result")
    results.first.wait_for()
    ids = sorted(results.evaluate_all("(buttons) => buttons.map((b) => b.dataset.item)"))
    assert ids == sorted(f"{glacier}-2024-0{month}" for glacier in ("baltoro", "siachen") for month in (1, 2, 3))
    thumbnails = results.locator("img").evaluate_all(
        "(images) => images.map((i) => [i.src, i.complete && i.naturalWidth])"
    )
    assert len(thumbnails) == 6
    for src, _ in thumbnails:
        assert src.startswith(f"{viewer.base}/files/{cid}/") and src.endswith("/thumbnail.png")
    assert "6 of 6" in viewer.page.locator("#search-summary").inner_text()

    item = results.first.get_attribute("data-item")
    results.first.click()
    viewer.page.wait_for_selector("#back-to-mosaic")
    viewer.page.wait_for_selector("#layer-panel[data-state=ready]")
    assert item and item in viewer.page.locator("#layer-view").inner_text()
    assert viewer.page.locator("#time-panel").is_hidden()
    wait_map_idle(viewer.page)
    assert viewer.requested(f"/items/{item}/tiles/")
    assert drawn_pixels(viewer) > 5_000, "item tiles drawn"
    first_thumbnail = results.first.locator("img")
    first_thumbnail.scroll_into_view_if_needed()
    assert eventually(lambda: first_thumbnail.evaluate("(i) => i.complete && i.naturalWidth > 0")), "thumbnail shown"
    viewer.page.click("#back-to-mosaic")
    viewer.page.wait_for_selector("#time-panel:not([hidden])")
    viewer.page.wait_for_selector("#layer-panel[data-state=ready]")
    wait_map_idle(viewer.page)
    viewer.assert_clean()


def test_language_switch(viewer: ViewerPage, publication: Publication) -> None:
    document = collection_document(publication, GANGRIGAB)
    chinese = document["ncdc:i18n"]["zh-Hans"]
    viewer.open(f"?lang=en&collection={document['id']}")
    viewer.page.wait_for_selector("#time-panel:not([hidden])")
    assert viewer.page.locator("html").get_attribute("lang") == "en"
    viewer.page.click("button[data-lang=zh-Hans]")
    assert viewer.page.locator("html").get_attribute("lang") == "zh-Hans"
    assert viewer.page.locator("button[data-lang=zh-Hans]").get_attribute("aria-pressed") == "true"
    assert viewer.page.locator("#collection-title").inner_text() == chinese["title"]
    first_paragraph = chinese["description"].split("\n")[0]
    assert viewer.page.locator("#collection-description p").first.inner_text() == first_paragraph
    assert viewer.page.locator("#collection-panel .badge.share").inner_text() == "开放获取"
    assert viewer.page.locator("#search-heading").inner_text() == "检索地图范围"
    assert re.fullmatch(r"\d{4}年\d{1,2}月", viewer.page.locator("#time-label").inner_text())
    assert viewer.page.locator("#legend .legend-title").inner_text().startswith("冰川表面运动速度")
    assert viewer.page.locator("#time-play").get_attribute("aria-label") == "播放"
    assert viewer.page.title().startswith("数据浏览")
    assert "lang=zh-Hans" in viewer.page.url
    # Kept on reload (the URL says it), and back to English.
    open_viewer(viewer.page, viewer.page.url)
    viewer.page.wait_for_selector("#time-panel:not([hidden])")
    assert viewer.page.locator("#collection-title").inner_text() == chinese["title"]
    viewer.page.click("button[data-lang=en]")
    assert viewer.page.locator("#collection-title").inner_text() == document["title"]
    assert viewer.page.locator("#collection-panel .badge.share").inner_text() == "Open access"
    viewer.assert_clean()


def test_record_text_never_becomes_markup(viewer: ViewerPage) -> None:
    viewer.open()
    rendered = viewer.page.evaluate(
        """async () => {
          const { renderMarkdown } = await import(new URL("static/viewer/js/markdown.js", document.baseURI));
          const text = '## Title\\n\\n<img src=x onerror="window.pwned=1"> **bold** _em_ `code`\\n' +
            '[bad](javascript:alert(1)) [data](data:text/html,x) [ok](https://example.org/a)\\n\\n' +
            '- one\\n- two <script>window.pwned=2</script>\\n';
          const box = document.createElement("div");
          box.append(renderMarkdown(text, { baseLevel: 3 }));
          return {
            elements: [...box.querySelectorAll("*")].map((e) => e.tagName.toLowerCase()),
            hrefs: [...box.querySelectorAll("a")].map((a) => a.href),
            text: box.textContent,
            pwned: window.pwned ?? null,
          };
        }"""
    )
    assert set(rendered["elements"]) == {"h4", "p", "strong", "em", "code", "a", "ul", "li"}  # "##" one below h3
    assert rendered["hrefs"] == ["https://example.org/a"]
    assert '<img src=x onerror="window.pwned=1">' in rendered["text"]
    assert "<script>" in rendered["text"]
    assert rendered["pwned"] is None
    viewer.assert_clean()


def test_keyboard_and_labels(viewer: ViewerPage, publication: Publication) -> None:
    viewer.open("?lang=en")
    # Every control has an accessible name.
    unnamed = viewer.page.evaluate(
        """() => [...document.querySelectorAll("button, input, select, a[href]")]
          .filter((e) => e.offsetParent !== null)
          .filter((e) => !(e.getAttribute("aria-label") || e.textContent.trim() || e.labels?.length || e.title))
          .map((e) => e.outerHTML.slice(0, 80))"""
    )
    assert unnamed == []
    # Tab from the top reaches the language switch, then the collections; Enter opens one.
    viewer.page.keyboard.press("Tab")
    assert viewer.page.evaluate("() => document.activeElement.className") == "skip-link"
    viewer.page.keyboard.press("Tab")
    assert viewer.page.evaluate("() => document.activeElement.dataset.lang") == "en"
    for _ in range(2):
        viewer.page.keyboard.press("Tab")
    focused = viewer.page.evaluate("() => document.activeElement.dataset.collection")
    assert focused == viewer.page.locator("#collection-list button").first.get_attribute("data-collection")
    viewer.page.keyboard.press("Enter")
    viewer.page.wait_for_selector("#collection-panel:not([hidden])")
    assert viewer.page.evaluate("() => document.activeElement.id") == "collection-title"
    viewer.page.locator("#layer-panel").wait_for()
    wait_map_idle(viewer.page)
    viewer.page.focus("#collection-panel button.back")
    viewer.page.keyboard.press("Enter")
    viewer.page.wait_for_selector("#collections-section:not([hidden])")
    viewer.assert_clean()


def test_phone_sized_window(phone: ViewerPage, publication: Publication) -> None:
    cid = publication.collection_ids[MULI]
    phone.open(f"?collection={cid}")
    page = phone.page
    assert page.locator("html").get_attribute("lang") == "zh-Hans", "a Chinese browser gets Chinese"
    page.wait_for_selector("#legend .ramp")
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 390, "no sideways scrolling"
    map_box = page.locator("#map").bounding_box()
    sidebar_box = page.locator("#sidebar").bounding_box()
    assert map_box and sidebar_box
    assert map_box["width"] >= 385 and map_box["height"] >= 300
    assert sidebar_box["y"] >= map_box["y"] + map_box["height"] - 1, "the panels come below the map"
    # Two renders: mean velocity (no time) and the displacement series (160 dates).
    options = page.locator("#layer-select option").all_inner_texts()
    assert options == ["平均形变速率", "累积形变量"]
    assert page.locator("#time-panel").is_hidden()
    page.select_option("#layer-select", index=1)
    page.wait_for_selector("#time-panel:not([hidden])")
    assert page.locator("#time-slider").get_attribute("max") == "159"
    assert page.locator("#time-label").inner_text() == "2023年4月4日"
    wait_map_idle(page)
    assert drawn_pixels(phone) > 2_000
    page.click("#inspect-center")
    page.locator("#inspector[data-state=raster]").wait_for()
    assert "mm" in page.locator("#inspector-value").inner_text()
    phone.assert_clean()


def test_click_on_an_extent_opens_the_smallest_collection_there(viewer: ViewerPage, publication: Publication) -> None:
    viewer.open("?lang=en")
    gangrigab = collection_document(publication, GANGRIGAB)
    west, south, east, north = gangrigab["extent"]["spatial"]["bbox"][0]
    # Inside the HMA extent too: the smaller Gangrigab extent wins.
    center_on(viewer.page, (west + east) / 2, (south + north) / 2, 7)
    click_map_center(viewer.page)
    viewer.page.wait_for_selector("#collection-panel:not([hidden])")
    assert viewer.page.locator("#collection-title").inner_text() == gangrigab["title"]
    viewer.page.wait_for_selector("#time-panel:not([hidden])")
    wait_map_idle(viewer.page)
    viewer.assert_clean()
