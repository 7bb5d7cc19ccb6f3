"""The viewer's sources: no markup from strings, nothing loaded from elsewhere, both languages complete."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from services.viewer import STATIC_DIR
from services.viewer.app import WEB_DIR

SOURCES = sorted([*STATIC_DIR.rglob("*.js"), *STATIC_DIR.rglob("*.css"), *STATIC_DIR.rglob("*.html")])
SCRIPTS = [path for path in SOURCES if path.suffix == ".js"]
FORBIDDEN = re.compile(
    r"\.innerHTML\b|\.outerHTML\b|insertAdjacentHTML|document\.write|\beval\(|new Function\(|setTimeout\(\s*[\"'`]"
)
URL = re.compile(r"\bhttps?://[^\s\"'`)<>]+")
ALLOWED_URLS = ("http://www.w3.org/2000/svg",)


@pytest.mark.parametrize("path", SCRIPTS, ids=[p.name for p in SCRIPTS])
def test_no_string_becomes_markup_or_code(path: Path) -> None:
    found = [line for line in path.read_text(encoding="utf-8").splitlines() if FORBIDDEN.search(line)]
    assert found == [], f"{path.name} turns strings into markup or code: {found}"


@pytest.mark.parametrize("path", SOURCES, ids=[p.name for p in SOURCES])
def test_nothing_is_loaded_from_another_host(path: Path) -> None:
    urls = [url for url in URL.findall(path.read_text(encoding="utf-8")) if not url.startswith(ALLOWED_URLS)]
    assert urls == [], f"{path.name} names other hosts: {urls}"


def test_every_label_exists_in_both_languages() -> None:
    text = (STATIC_DIR / "js" / "i18n.js").read_text(encoding="utf-8")
    english, chinese = text.split('"zh-Hans": {', 1)
    english = english.split("en: {", 1)[1]
    key = re.compile(r'^\s+"([\w.\-]+)":', re.MULTILINE)
    assert set(key.findall(english)) == set(key.findall(chinese))
    assert len(key.findall(english)) > 50


def test_every_label_used_is_defined() -> None:
    text = (STATIC_DIR / "js" / "i18n.js").read_text(encoding="utf-8")
    defined = set(re.findall(r'^\s+"([\w.\-]+)":', text, re.MULTILINE))
    used = set()
    for path in SOURCES:
        source = path.read_text(encoding="utf-8")
        used |= set(re.findall(r'\bt\("([\w.\-]+)"', source))
        used |= set(re.findall(r'data-i18n(?:-label)?="([\w.\-]+)"', source))
    assert used - defined == set()


def test_maplibre_is_pinned_by_the_lock_file() -> None:
    package = json.loads((WEB_DIR / "package.json").read_text())
    lock = json.loads((WEB_DIR / "package-lock.json").read_text())
    wanted = package["dependencies"]["maplibre-gl"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", wanted), "an exact version"
    assert int(wanted.split(".")[0]) >= 5
    locked = lock["packages"]["node_modules/maplibre-gl"]
    assert locked["version"] == wanted
    assert locked["integrity"].startswith("sha512-"), "npm ci checks what it downloads"
    assert all(entry.get("integrity") for name, entry in lock["packages"].items() if name), "every package pinned"
