"""Script payloads in a record come out inert: in the published Collection, in the API, and in the viewer.

A copy of the gangrigab record carries ``<script>`` elements, ``onerror=`` attributes and ``javascript:`` links
in its titles, abstracts and lineage, in Chinese and in English, both as markup and as escaped text; it is
published (``publish_collection``) and served by the whole service. Titles are plain text (STAC) and stay as
typed; the record's HTML becomes Markdown in which no ``<`` is left unescaped (``catalog.text``); the viewer
renders both without parsing them as HTML, so no script runs (``window.__xss`` stays unset, no dialog opens)
and no element gets an event attribute.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from starlette.testclient import TestClient

from catalog.collection import I18N_FIELD
from ncdc_stac.settings import Settings
from publish.pipeline import publish_collection
from services.app import create_app
from services.viewer import MAPLIBRE_DIR
from services.viewer.harness import (
    chromium_path,
    full_app,
    launch_chromium,
    open_viewer,
    playwright_available,
    serve,
)
from tests.conftest import REPO, require
from tests.publication import Publication

if TYPE_CHECKING:
    from playwright.sync_api import Dialog

DATASET = "gangrigab-velocity"
SCRIPT = "<script>window.__xss = 'script'; alert(1)</script>"
IMAGE = "<img src=x onerror=\"window.__xss = 'onerror'; alert(1)\">"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt; &lt;img src=x onerror=alert(1)&gt;"
LINK = '<a href="javascript:window.__xss=1">link</a>'
TITLE_ZH = f"岗日嘎布 {SCRIPT} {IMAGE}"
TITLE_EN = f"Gangrigab {IMAGE} {SCRIPT}"
MARKDOWN_FIELDS = ("description", "processing:lineage", "ncdc:quality")
UNESCAPED_MARKUP = re.compile(r"(?<!\\)<")


def abstract(language: str) -> str:
    return f"<p>{language} abstract {SCRIPT} {IMAGE} {LINK}</p><p>{ESCAPED}</p>"


def hostile_record(source: Path) -> dict[str, Any]:
    record: dict[str, Any] = json.loads(source.read_text(encoding="utf-8"))
    record |= {
        "title_cn": TITLE_ZH,
        "title_en": TITLE_EN,
        "ds_abstract": abstract("中文"),
        "ds_process_way": abstract("处理"),
        "ds_quality": abstract("质量"),
    }
    english = dict(record.get("i18n", {}).get("en", {}))
    english |= {
        "title": TITLE_EN,
        "ds_abstract": abstract("English"),
        "ds_process_way": abstract("processing"),
        "ds_quality": abstract("quality"),
    }
    record["i18n"] = {**record.get("i18n", {}), "en": english}
    return record


@dataclass(frozen=True)
class Published:
    root: Path
    collection_id: str


@pytest.fixture(scope="module")
def published(publication: Publication, tmp_path_factory: pytest.TempPathFactory) -> Published:
    base = tmp_path_factory.mktemp("xss")
    records = base / "records"
    records.mkdir()
    record = records / f"{DATASET}.json"
    record.write_text(json.dumps(hostile_record(REPO / "records" / f"{DATASET}.json"), ensure_ascii=False))
    shutil.copy(REPO / "records" / f"{DATASET}.recipe.toml", records)
    data = publication.samples / DATASET
    assert data.is_dir(), data
    summary = publish_collection(record, data, base / "public", workers=2)
    return Published(base / "public", summary.collection_id)


def texts(document: dict[str, Any]) -> list[tuple[str, str]]:
    """``(field, text)`` of the text fields of a Collection, its Chinese translation included."""
    found = [(key, document[key]) for key in ("title", *MARKDOWN_FIELDS) if isinstance(document.get(key), str)]
    for language, fields in (document.get(I18N_FIELD) or {}).items():
        found += [(f"{language}:{k}", v) for k, v in fields.items() if isinstance(v, str)]
    return found


def assert_inert(document: dict[str, Any]) -> None:
    fields = dict(texts(document))
    assert "title" in fields and "description" in fields, sorted(fields)
    for field, text in fields.items():
        if field.rsplit(":", 1)[-1] == "title" or field.endswith(":ncdc:place"):
            continue  # plain text
        assert not UNESCAPED_MARKUP.search(text), f"{field}: {text!r}"
        assert "javascript:" not in text.replace("\\", ""), f"{field}: {text!r}"
    markdown = " ".join(v for k, v in fields.items() if k.endswith("description"))
    assert "\\<script\\>alert(1)" in markdown  # escaped source text stays text, visibly
    assert "window.__xss" not in markdown  # script bodies and event handlers are removed


def test_published_collection_is_inert(published: Published) -> None:
    document = json.loads((published.root / published.collection_id / "collection.json").read_text())
    assert_inert(document)
    assert document["title"].endswith(TITLE_EN)  # titles are text and stay as typed


def test_api_answers_are_inert(published: Published) -> None:
    with TestClient(create_app(Settings(root=published.root))) as client:
        collection = client.get(f"/stac/collections/{published.collection_id}")
        listed = client.get("/stac/collections", params={"q": "Gangrigab"})
        static = client.get(f"/files/{published.collection_id}/collection.json")
    for response in (collection, listed, static):
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].split(";")[0] == "application/json"
        assert response.headers["x-content-type-options"] == "nosniff"
        assert "default-src" not in response.headers["content-security-policy"]  # API CSP, never the page's
    assert_inert(collection.json())
    assert_inert(static.json())
    (found,) = [c for c in listed.json()["collections"] if c["id"] == published.collection_id]
    assert_inert(found)


@pytest.fixture(scope="module")
def viewer_url(published: Published) -> Iterator[str]:
    require((MAPLIBRE_DIR / "maplibre-gl.mjs").is_file(), "MapLibre GL JS is not installed: run `npm ci` in web/")
    with serve(full_app(Settings(root=published.root))) as url:
        yield url


PROBE = """() => ({
  xss: window.__xss ?? null,
  eventAttributes: [...document.querySelectorAll("*")]
    .flatMap((e) => [...e.attributes].map((a) => a.name))
    .filter((name) => name.startsWith("on")),
  scripts: [...document.scripts].map((s) => s.src || "inline"),
  images: [...document.querySelectorAll("img")].map((i) => i.getAttribute("src")),
  javascriptLinks: [...document.querySelectorAll("a")].filter((a) => a.href.startsWith("javascript:")).length,
  title: document.querySelector("#collection-title")?.textContent ?? null,
  description: document.querySelector("#collection-description")?.textContent ?? null,
  listed: [...document.querySelectorAll(".collection-title")].map((e) => e.textContent),
})"""


@pytest.mark.parametrize(("language", "title"), [("en", TITLE_EN), ("zh-Hans", TITLE_ZH)])
def test_viewer_renders_record_text_inert(viewer_url: str, published: Published, language: str, title: str) -> None:
    path = chromium_path()
    require(path is not None, "Debian's chromium is not installed (apt-get install chromium)")
    require(playwright_available(), "the playwright package is not installed (test extra)")
    dialogs: list[str] = []
    errors: list[str] = []
    with launch_chromium(path) as browser:
        context = browser.new_context(locale="en-US" if language == "en" else "zh-CN")
        page = context.new_page()

        def on_dialog(dialog: Dialog) -> None:
            dialogs.append(dialog.message)
            dialog.dismiss()

        page.on("dialog", on_dialog)
        page.on("pageerror", lambda error: errors.append(str(error)))
        open_viewer(page, f"{viewer_url}/?lang={language}&collection={published.collection_id}")
        page.wait_for_selector("#collection-description", state="attached", timeout=30_000)
        found = page.evaluate(PROBE)
        context.close()
    assert found["xss"] is None and dialogs == [] and errors == []
    assert found["eventAttributes"] == [] and found["javascriptLinks"] == 0
    assert all(src.startswith(viewer_url) for src in found["scripts"]), found["scripts"]
    assert "x" not in found["images"]
    assert found["title"] is not None and found["title"].endswith(title)  # shown as typed: text, not markup
    assert any(listed.endswith(title) for listed in found["listed"]), found["listed"]
    assert "<script>alert(1)</script>" in found["description"]  # the escaped text of the record, as text
    assert "window.__xss" not in found["description"]
