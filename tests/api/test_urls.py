"""Links and asset hrefs are absolute and right behind proxies, path prefixes and a public URL."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.testclient import TestClient

from ncdc_stac.settings import Settings
from services.api.urls import file_href
from services.app import create_app


def _hrefs(client: TestClient, collection: str, **kwargs: Any) -> dict[str, str]:
    path = kwargs.pop("path", "/stac")
    response = client.get(f"{path}/collections/{collection}/items", params={"limit": 1}, **kwargs)
    assert response.status_code == 200, response.text
    body = response.json()
    item = body["features"][0]
    links = {link["rel"]: link["href"] for link in item["links"]}
    page = {link["rel"]: link["href"] for link in body["links"]}
    return {
        "asset": item["assets"]["data"]["href"],
        "source": item["assets"]["source"]["href"],
        "self": links["self"],
        "root": links["root"],
        "next": page["next"],
    }


def test_hrefs_direct(client: TestClient, ids: dict[str, str]) -> None:
    hrefs = _hrefs(client, ids["gangrigab"])
    assert hrefs["asset"] == f"http://testserver/files/{ids['gangrigab']}/202312/202312.tif"
    assert hrefs["source"] == "https://example.org/source/202312.zip"  # absolute: unchanged
    assert hrefs["self"] == f"http://testserver/stac/collections/{ids['gangrigab']}/items/202312"
    assert hrefs["next"].startswith(f"http://testserver/stac/collections/{ids['gangrigab']}/items?limit=1&token=")


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "data.example.org"},
        {"Forwarded": "for=10.0.0.1;proto=https;host=data.example.org"},
    ],
)
def test_hrefs_behind_proxy(client: TestClient, ids: dict[str, str], headers: dict[str, str]) -> None:
    hrefs = _hrefs(client, ids["gangrigab"], headers=headers)
    assert hrefs["asset"] == f"https://data.example.org/files/{ids['gangrigab']}/202312/202312.tif"
    assert hrefs["root"] == "https://data.example.org/stac/"
    assert hrefs["next"].startswith("https://data.example.org/stac/collections/")


def test_hrefs_with_root_path(settings: Settings, ids: dict[str, str]) -> None:
    headers = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "data.example.org:8443"}
    with TestClient(create_app(settings), root_path="/ncdc") as client:
        for path in ("/ncdc/stac", "/stac"):  # path with or without the root path, as servers differ
            hrefs = _hrefs(client, ids["muli"], headers=headers, path=path)
            assert hrefs["asset"] == f"https://data.example.org:8443/ncdc/files/{ids['muli']}/point-24/point-24.tif"
            assert hrefs["self"] == f"https://data.example.org:8443/ncdc/stac/collections/{ids['muli']}/items/point-24"
        landing = client.get("/ncdc/stac/").json()
        service_desc = next(link["href"] for link in landing["links"] if link["rel"] == "service-desc")
        assert service_desc == "http://testserver/ncdc/stac/api"
        assert client.get("/ncdc/stac/api").status_code == 200


def test_hrefs_with_forwarded_prefix(client: TestClient, ids: dict[str, str]) -> None:
    headers = {"X-Forwarded-Host": "proxy.example.org", "X-Forwarded-Prefix": "/data/"}
    hrefs = _hrefs(client, ids["hma"], headers=headers)
    assert hrefs["asset"] == f"http://proxy.example.org/data/files/{ids['hma']}/glacier-029/glacier-029.tif"
    assert hrefs["root"] == "http://proxy.example.org/data/stac/"


def test_public_url(settings: Settings, ids: dict[str, str]) -> None:
    public = settings.model_copy(update={"public_url": "https://stac.ncdc.ac.cn/service/"})
    with TestClient(create_app(public)) as client:
        hrefs = _hrefs(client, ids["gangrigab"], headers={"X-Forwarded-Host": "ignored.example.org"})
        assert hrefs["asset"] == f"https://stac.ncdc.ac.cn/service/files/{ids['gangrigab']}/202312/202312.tif"
        assert hrefs["self"].startswith("https://stac.ncdc.ac.cn/service/stac/collections/")
        collection = client.get(f"/stac/collections/{ids['gangrigab']}").json()
        assert collection["assets"]["thumbnail"]["href"].startswith(
            f"https://stac.ncdc.ac.cn/service/files/{ids['gangrigab']}/"
        )


def test_files_are_served(client: TestClient, ids: dict[str, str]) -> None:
    asset = _hrefs(client, ids["gangrigab"], path="/stac")["asset"].replace("202312", "202301")
    response = client.get(asset.removeprefix("http://testserver"), headers={"Range": "bytes=0-3"})
    assert response.status_code == 206
    assert response.content == b"II*\x00"
    assert client.get("/files/catalog.json").is_success
    assert client.get("/files/%2e%2e/%2e%2e/etc/passwd").status_code == 404


@pytest.mark.parametrize(
    ("href", "folder", "expected"),
    [
        ("a/b.tif", "", "F/a/b.tif"),
        ("./b.tif", "c/i", "F/c/i/b.tif"),
        ("../c.json", "c/i", "F/c/c.json"),
        ("/a/b.tif", "c", "F/c/a/b.tif"),
        ("a b/冰川.tif", "", "F/a%20b/%E5%86%B0%E5%B7%9D.tif"),
        ("a%20b.tif", "", "F/a%20b.tif"),
        ("a#b?c.tif", "", "F/a%23b%3Fc.tif"),
        ("x:y.tif", "", "x:y.tif"),  # a scheme: absolute, as urlsplit reads it
        ("a/x:y.tif", "", "F/a/x:y.tif"),
        ("https://example.org/a.tif", "c", "https://example.org/a.tif"),
        ("s3://bucket/a.tif", "", "s3://bucket/a.tif"),
        ("//host/a.tif", "", "//host/a.tif"),
        ("", "c", ""),
        (".", "", "."),
        ("..", "", ".."),
        ("../../a.tif", "c", "../../a.tif"),
        ("a/../../b.tif", "", "a/../../b.tif"),
    ],
)
def test_file_href(href: str, folder: str, expected: str) -> None:
    """Relative hrefs under the files URL (percent-encoded where needed); absolute ones and those that climb out of
    the publication unchanged."""
    assert file_href(href, "F", folder) == expected
