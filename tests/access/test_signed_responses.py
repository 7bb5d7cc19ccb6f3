"""Signed asset hrefs in STAC API answers: an authorized caller streams restricted data with no header.

The whole service (``create_app``) over the sample publication, on a live uvicorn server, for each backend
(DuckDB, and pgstac where PostgreSQL + PostGIS are installed). The samples cover every access rule:
gangrigab open-access, hma apply-access, cpec login-access, muli apply-access under embargo until 2027.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx
import numpy as np
import pytest
import rasterio

from ncdc_stac.settings import ApiKey, Settings
from services.access import hash_api_key
from services.access.signing import UrlSigner
from services.app import create_app
from tests.access.identity import LocalIssuer
from tests.live import serve
from tests.publication import Publication

BACKENDS = os.environ.get("NCDC_STAC_TEST_BACKENDS", "duckdb,pgstac").split(",")
OPEN, APPLY, LOGIN, EMBARGO = "gangrigab-velocity", "hma-glacier-velocity", "cpec-deformation", "muli-subsidence"
SIGNING_KEY = "signed-responses-signing-key-0123456789"
GRANTED_KEY = "granted-key-for-signed-responses-0123"
USER_KEY = "user-key-for-signed-responses-012345"
ADMIN_KEY = "admin-key-for-signed-responses-01234"
GRANTED_EMAIL = "granted@example.org"


@dataclass(frozen=True)
class Service:
    url: str
    root: Path
    ids: dict[str, str]
    callers: dict[str, dict[str, str]]

    def items(self, dataset: str, caller: str, **params: Any) -> httpx.Response:
        response = httpx.get(
            f"{self.url}/stac/collections/{self.ids[dataset]}/items",
            params={"limit": 3, **params},
            headers=self.callers[caller],
        )
        assert response.status_code == 200, response.text
        return response


def data_hrefs(document: dict[str, Any]) -> list[str]:
    features = document.get("features", [document])
    return [a["href"] for f in features for a in f["assets"].values() if "data" in (a.get("roles") or [])]


def other_hrefs(document: dict[str, Any]) -> list[str]:
    features = document.get("features", [document])
    return [a["href"] for f in features for a in f["assets"].values() if "data" not in (a.get("roles") or [])]


def signed(href: str) -> bool:
    return {"exp", "sig"} <= dict(parse_qsl(urlsplit(href).query)).keys()


@pytest.fixture(scope="module", params=BACKENDS)
def service(request: pytest.FixtureRequest, publication: Publication) -> Iterator[Service]:
    issuer = LocalIssuer()
    ids = publication.collection_ids
    values: dict[str, Any] = {
        "root": publication.root,
        "signing_key": SIGNING_KEY,
        "signed_url_ttl": 600,
        "auth_jwks": issuer.jwks,
        "auth_issuer": issuer.issuer,
        "auth_audience": issuer.audience,
        "api_keys": {
            hash_api_key(GRANTED_KEY): ApiKey(subject="granted-script", grants=[ids[APPLY]]),
            hash_api_key(USER_KEY): ApiKey(subject="user-script"),
            hash_api_key(ADMIN_KEY): ApiKey(subject="admin-script", roles=["admin"]),
        },
        "grants": {GRANTED_EMAIL: [ids[APPLY]]},
    }
    if request.param == "pgstac":
        from publish.ingest import ingest

        dsn = str(request.getfixturevalue("pgstac_dsn"))
        ingest(publication.root, dsn)
        values |= {"backend": "pgstac", "dsn": dsn}
    callers = {
        "anonymous": {},
        "granted": {"X-API-Key": GRANTED_KEY},
        "granted-bearer": issuer.bearer("user-2", email=GRANTED_EMAIL, lifetime=3600),
        "user": {"X-API-Key": USER_KEY},
        "admin": {"Authorization": f"Bearer {ADMIN_KEY}"},
        "invalid": {"X-API-Key": "no-such-key-0123456789"},
    }
    with serve(create_app(Settings(**values))) as url:
        yield Service(url, publication.root, ids, callers)


@pytest.fixture(scope="module")
def pgstac_dsn(pgstac_template: str) -> str:
    from tests.pgstac_cluster import clone_database

    return clone_database(pgstac_template, f"signed_{os.getpid()}_{time.time_ns() % 10**9}")


def test_anonymous_callers_get_plain_hrefs_that_answer_401(service: Service) -> None:
    response = service.items(APPLY, "anonymous")
    hrefs = data_hrefs(response.json())
    assert hrefs and not any(signed(h) for h in hrefs)
    assert "private" not in response.headers.get("cache-control", "")
    assert httpx.get(hrefs[0]).status_code == 401


@pytest.mark.parametrize("caller", ["granted", "granted-bearer"])
def test_granted_callers_get_signed_data_hrefs_that_stream_with_no_header(service: Service, caller: str) -> None:
    response = service.items(APPLY, caller)
    assert response.headers["cache-control"] == "private, no-store"
    document = response.json()
    hrefs = data_hrefs(document)
    assert len(hrefs) == 3 and all(signed(h) for h in hrefs)
    assert not any(signed(h) for h in other_hrefs(document))  # thumbnails are metadata: public, unsigned
    path = urlsplit(hrefs[0]).path
    local = (service.root / path.removeprefix("/files/")).read_bytes()
    whole = httpx.get(hrefs[0])
    assert whole.status_code == 200 and whole.content == local
    part = httpx.get(hrefs[0], headers={"Range": "bytes=100-1123"})
    assert part.status_code == 206 and part.content == local[100:1124]


def test_one_item_and_searches_are_signed(service: Service) -> None:
    headers = service.callers["granted"]
    collection = service.ids[APPLY]
    first = service.items(APPLY, "granted").json()["features"][0]
    item = httpx.get(f"{service.url}/stac/collections/{collection}/items/{first['id']}", headers=headers)
    posted = httpx.post(f"{service.url}/stac/search", json={"collections": [collection], "limit": 4}, headers=headers)
    got = httpx.get(f"{service.url}/stac/search", params={"collections": collection, "limit": 2}, headers=headers)
    for response, count in ((item, 1), (posted, 4), (got, 2)):
        assert response.status_code == 200, response.text
        hrefs = data_hrefs(response.json())
        assert len(hrefs) == count and all(signed(h) for h in hrefs), hrefs
        assert httpx.head(hrefs[0]).status_code == 200


@pytest.mark.parametrize(
    ("dataset", "caller", "expected"),
    [
        (OPEN, "granted", False),  # open data need no signature
        (APPLY, "user", False),  # not granted: plain href
        (APPLY, "invalid", False),  # invalid credentials: metadata still served, nothing signed
        (LOGIN, "user", True),
        (EMBARGO, "granted", False),  # under embargo: managers and admins only
        (EMBARGO, "admin", True),
    ],
)
def test_only_data_the_caller_may_read_is_signed(service: Service, dataset: str, caller: str, expected: bool) -> None:
    document = service.items(dataset, caller).json()
    hrefs = data_hrefs(document)
    assert hrefs and all(signed(h) == expected for h in hrefs), hrefs
    status = httpx.get(hrefs[0], headers={"Range": "bytes=0-15"}).status_code  # no header: the href alone
    assert status == (206 if expected or dataset == OPEN else 401)


def test_expired_or_tampered_signed_hrefs_are_refused(service: Service) -> None:
    href = data_hrefs(service.items(APPLY, "granted").json())[0]
    split = urlsplit(href)
    params = dict(parse_qsl(split.query))
    base = f"{split.scheme}://{split.netloc}{split.path}"
    tampered = {**params, "sig": params["sig"][:-2] + ("AA" if not params["sig"].endswith("AA") else "BB")}
    extended = {**params, "exp": str(int(params["exp"]) + 3600)}
    other_subject = {**params, "sub": "someone-else"}
    expired = UrlSigner(SIGNING_KEY.encode(), 600).sign("path", split.path, params.get("sub"), now=time.time() - 3600)
    other_file = f"{split.scheme}://{split.netloc}{split.path.rsplit('/', 2)[0]}/other/velocity.tif"
    for target in (tampered, extended, other_subject, expired):
        assert httpx.get(f"{base}?{urlencode(target)}").status_code == 403, target
    assert httpx.get(f"{other_file}?{urlencode(params)}").status_code in (403, 404)
    assert httpx.get(href).status_code == 200


READER = """
import json, sys
import numpy as np
import rasterio

env = {"GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR", "GDAL_HTTP_MAX_RETRY": "0", "VSI_CACHE": "FALSE"}
try:
    with rasterio.Env(**env), rasterio.open("/vsicurl/" + sys.argv[1]) as remote:
        print(json.dumps({"shape": remote.shape, "sum": float(np.nansum(remote.read(1)))}))
except rasterio.errors.RasterioIOError as error:
    print(json.dumps({"error": str(error)}))
"""


def gdal_read(url: str) -> dict[str, Any]:
    """Shape and band-1 sum of a remote raster read by GDAL (``/vsicurl/``) in a child process."""
    result = subprocess.run(
        [sys.executable, "-c", READER, url], capture_output=True, text=True, timeout=120, check=True
    )
    return dict(json.loads(result.stdout))


def test_gdal_streams_a_signed_href_from_the_api(service: Service) -> None:
    href = data_hrefs(service.items(APPLY, "granted", limit=1).json())[0]
    with rasterio.open(service.root / urlsplit(href).path.removeprefix("/files/")) as local:
        expected = {"shape": list(local.shape), "sum": float(np.nansum(local.read(1)))}
    assert gdal_read(href) == expected
    assert "error" in gdal_read(href.split("?")[0])
