"""``python -m services.viewer.screenshots`` writes the views it names."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from services.viewer import screenshots
from services.viewer.harness import colourful_pixels
from tests.publication import Publication
from tests.viewer.conftest import require_maplibre

if TYPE_CHECKING:
    from playwright.sync_api import Browser


def test_screenshots_of_two_views(publication: Publication, browser: Browser, tmp_path: Path) -> None:
    require_maplibre()
    written = screenshots.take_screenshots(publication.root, tmp_path, ["overview", "phone-zh"], browser=browser)
    assert written == [tmp_path / "overview.png", tmp_path / "phone-zh.png"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["overview.png", "phone-zh.png"]
    for path in tmp_path.iterdir():
        assert colourful_pixels(path.read_bytes()) > 1_000, f"{path.name} shows the map and the page"


def test_screenshots_need_a_publication(tmp_path: Path) -> None:
    assert screenshots.main(["--root", str(tmp_path), "--out", str(tmp_path / "shots")]) == 2
    assert not (tmp_path / "shots").exists()


def test_screenshots_know_their_views(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exit_info:
        screenshots.main(["--root", str(tmp_path), "nonsense"])
    assert exit_info.value.code == 2
