"""Signed URLs: issued to authorized callers, bound to one path (or one collection's tiles), short-lived."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
from starlette.testclient import TestClient

from services.access.signing import InvalidSignatureError, UrlSigner
from tests.access.conftest import APPLY, EMBARGO, ITEM, LOGIN, OPEN, Callers, World, data_path, tile_path

BASE = "http://testserver"


def signed_href(client: TestClient, headers: dict[str, str], href: str) -> str:
    response = client.get("/auth/sign", params={"href": href}, headers=headers)
    assert response.status_code == 200, response.text
    return str(response.json()["href"])


def relative(url: str) -> str:
    split = urlsplit(url)
    return f"{split.path}?{split.query}" if split.query else split.path


def with_params(url: str, **changes: str) -> str:
    split = urlsplit(url)
    params = dict(parse_qsl(split.query))
    params.update(changes)
    return f"{split.path}?{urlencode(params)}"


@pytest.mark.parametrize(("collection", "caller"), [(LOGIN, "user"), (APPLY, "granted"), (EMBARGO, "manager")])
def test_signed_url_streams_ranges_anonymously(
    client: TestClient, callers: Callers, collection: str, caller: str
) -> None:
    url = signed_href(client, callers[caller], data_path(collection))
    assert url.startswith(f"{BASE}{data_path(collection)}?exp=") and "&sig=" in url
    for first in (0, 1000, 5000):
        response = client.get(relative(url), headers={"Range": f"bytes={first}-{first + 511}"})
        assert response.status_code == 206 and len(response.content) == 512
        assert response.headers["cache-control"] == "private, no-store"
    assert client.head(relative(url)).status_code == 200


def test_absolute_href_and_sign_response(client: TestClient, callers: Callers) -> None:
    response = client.get("/auth/sign", params={"href": f"{BASE}{data_path(APPLY)}"}, headers=callers["granted"])
    body = response.json()
    assert body["href"].startswith(f"{BASE}{data_path(APPLY)}?") and body["expires"].endswith("Z")
    assert int(dict(parse_qsl(urlsplit(body["href"]).query))["exp"]) - time.time() <= 600 + 5


def test_tampered_expired_or_moved_signatures_are_forbidden(client: TestClient, callers: Callers, world: World) -> None:
    url = signed_href(client, callers["granted"], data_path(APPLY))
    params = dict(parse_qsl(urlsplit(url).query))
    sig = params["sig"]
    forged = "A" if sig[0] != "A" else "B"
    cases = {
        "tampered signature": with_params(url, sig=forged + sig[1:]),
        "extended expiry": with_params(url, exp=str(int(params["exp"]) + 3600)),
        "other subject": with_params(url, sub="someone-else"),
        "no signature": with_params(url, sig=""),
        "malformed expiry": with_params(url, exp="12e9"),
        "other file": f"/files/{APPLY}/{ITEM}/other.tif?{urlsplit(url).query}",
        "other collection": f"{data_path(LOGIN)}?{urlsplit(url).query}",
    }
    for name, target in cases.items():
        response = client.get(target, headers={"Range": "bytes=0-9"})
        assert response.status_code == 403, name
        assert response.json()["code"] == "Forbidden"
    expired = world.access.signer.sign("path", data_path(APPLY), "user-2", now=time.time() - 3600)
    response = client.get(f"{data_path(APPLY)}?{urlencode(expired)}")
    assert response.status_code == 403 and "expired" in response.json()["description"]


def test_a_signature_is_refused_even_with_valid_credentials(client: TestClient, callers: Callers) -> None:
    url = signed_href(client, callers["granted"], data_path(APPLY))
    response = client.get(with_params(url, sig="x" * 43), headers=callers["granted"])
    assert response.status_code == 403


def test_signing_needs_access(client: TestClient, callers: Callers) -> None:
    assert client.get("/auth/sign", params={"href": data_path(APPLY)}).status_code == 401
    assert client.get("/auth/sign", params={"href": data_path(APPLY)}, headers=callers["user"]).status_code == 403
    assert client.get("/auth/sign", params={"href": data_path(EMBARGO)}, headers=callers["granted"]).status_code == 403
    assert client.get("/auth/sign", params={"href": "/stac/collections"}, headers=callers["user"]).status_code == 400
    foreign = {"href": f"https://elsewhere.example.org{data_path(APPLY)}"}
    assert client.get("/auth/sign", params=foreign, headers=callers["granted"]).status_code == 400
    both = {"href": data_path(APPLY), "collection": APPLY}
    assert client.get("/auth/sign", params=both, headers=callers["granted"]).status_code == 400


def test_metadata_and_open_data_are_not_signed(client: TestClient, callers: Callers) -> None:
    for href in (data_path(OPEN), f"/files/{APPLY}/collection.json", f"/files/{EMBARGO}/{ITEM}/thumbnail.png"):
        body = client.get("/auth/sign", params={"href": href}, headers=callers["user"]).json()
        assert body == {"href": f"{BASE}{href}", "expires": None}


def test_collection_signature_for_tiles(client: TestClient, callers: Callers) -> None:
    response = client.get("/auth/sign", params={"collection": APPLY}, headers=callers["granted"])
    query = response.json()["query"]
    assert client.get(f"{tile_path(APPLY)}?{query}").status_code == 200
    assert client.get(f"{tile_path(LOGIN)}?{query}").status_code == 403, "bound to its collection"
    assert client.get(f"{data_path(APPLY)}?{query}").status_code == 403, "not a file signature"
    path_query = urlsplit(signed_href(client, callers["granted"], data_path(APPLY))).query
    assert client.get(f"{tile_path(APPLY)}?{path_query}").status_code == 403, "a file signature is not for tiles"
    assert client.get("/auth/sign", params={"collection": APPLY}, headers=callers["user"]).status_code == 403


def test_sign_assets_of_an_item(world: World) -> None:
    access = world.access
    granted = access.authenticator.from_api_key("script-key-for-the-tests-0123456789")
    item: dict[str, Any] = {
        "assets": {
            "data": {"href": f"{BASE}{data_path(APPLY)}", "alternate": {"s3": {"href": "s3://bucket/data.tif"}}},
            "thumbnail": {"href": f"{BASE}/files/{APPLY}/{ITEM}/thumbnail.png"},
            "open": {"href": f"{BASE}{data_path(OPEN)}"},
            "foreign": {"href": f"https://elsewhere.example.org{data_path(APPLY)}"},
        }
    }
    assert access.sign_assets(item, granted, BASE) == 1
    assets = item["assets"]
    assert assets["data"]["href"].startswith(f"{BASE}{data_path(APPLY)}?exp=")
    assert assets["thumbnail"]["href"] == f"{BASE}/files/{APPLY}/{ITEM}/thumbnail.png"
    assert assets["open"]["href"] == f"{BASE}{data_path(OPEN)}"
    assert assets["data"]["alternate"]["s3"]["href"] == "s3://bucket/data.tif"
    assert access.sign_assets(item, None, BASE) == 0, "nothing for a caller without access"


def test_signer_unit() -> None:
    signer = UrlSigner(b"k" * 32, ttl=60)
    params = signer.sign("path", "/files/a/b.tif", "alice", now=1_000)
    assert params["exp"] == "1060" and params["sub"] == "alice"
    assert signer.verify("path", "/files/a/b.tif", params, now=1_059).subject == "alice"
    with pytest.raises(InvalidSignatureError):
        signer.verify("path", "/files/a/b.tif", params, now=1_061)
    with pytest.raises(InvalidSignatureError):
        signer.verify("collection", "/files/a/b.tif", params, now=1_000)
    with pytest.raises(InvalidSignatureError):
        UrlSigner(b"j" * 32).verify("path", "/files/a/b.tif", params, now=1_000)
    assert signer.sign("path", "/x", ttl=10_000, now=0)["exp"] == "60", "never longer than the configured ttl"


def test_stac_items_carry_signed_hrefs_for_authorized_callers(client: TestClient, callers: Callers) -> None:
    path = f"/stac/collections/{APPLY}/items/{ITEM}"
    anonymous = client.get(path)
    assert anonymous.status_code == 200, "metadata is public"
    assert anonymous.json()["assets"]["data"]["href"] == f"{BASE}{data_path(APPLY)}"
    assert "private" not in anonymous.headers.get("cache-control", "")
    assert client.get(path, headers=callers["user"]).json()["assets"]["data"]["href"] == f"{BASE}{data_path(APPLY)}"
    expired = {"Authorization": "Bearer eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"}
    assert client.get(path, headers=expired).status_code == 200, "bad credentials do not hide metadata"
    granted = client.get(path, headers=callers["granted"])
    assets = granted.json()["assets"]
    assert assets["data"]["href"].startswith(f"{BASE}{data_path(APPLY)}?exp=")
    assert assets["thumbnail"]["href"] == f"{BASE}/files/{APPLY}/{ITEM}/thumbnail.png"
    assert granted.headers["cache-control"] == "private, no-store"
    assert client.get(relative(assets["data"]["href"]), headers={"Range": "bytes=0-9"}).status_code == 206


def test_signed_urls_behind_a_proxy_prefix(client: TestClient, callers: Callers) -> None:
    proxy = {"X-Forwarded-Prefix": "/ncdc", "X-Forwarded-Proto": "https", "X-Forwarded-Host": "data.example.org"}
    for href in (data_path(APPLY), f"https://data.example.org/ncdc{data_path(APPLY)}"):
        response = client.get("/auth/sign", params={"href": href}, headers={**callers["granted"], **proxy})
        url = response.json()["href"]
        assert url.startswith(f"https://data.example.org/ncdc{data_path(APPLY)}?exp=")
        split = urlsplit(url)
        assert split.path.startswith("/ncdc/")
        # the proxy strips its prefix before passing the request on
        unprefixed = f"{split.path.removeprefix('/ncdc')}?{split.query}"
        assert client.get(unprefixed, headers={**proxy, "Range": "bytes=0-9"}).status_code == 206


def test_tilejson_templates_carry_a_collection_signature(client: TestClient, callers: Callers) -> None:
    def template(collection: str, caller: str) -> str:
        response = client.get(f"/raster/collections/{collection}/tilejson.json", headers=callers[caller])
        assert response.status_code == 200
        return str(response.json()["tiles"][0])

    assert "sig=" not in template(OPEN, "granted"), "open data need no signature"
    assert "sig=" not in template(APPLY, "anonymous") and "sig=" not in template(APPLY, "user")
    signed = template(APPLY, "granted")
    assert "sig=" in signed
    tile = relative(signed.replace("{z}/{x}/{y}", "3/5/2"))
    assert client.get(tile).status_code == 200
