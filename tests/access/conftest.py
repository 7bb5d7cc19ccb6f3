"""A small publication with every kind of access, and an app composing the access building blocks over it.

Collections (all with a COG item, its thumbnail, items.parquet and collection.json):

- ``open-data``: open-access;
- ``login-data``: login-access;
- ``apply-data``: apply-access, granted to ``granted@example.org``;
- ``embargo-future``: apply-access under embargo until 2099, granted to ``granted@example.org`` too, managed
  by ``manager@example.org``;
- ``embargo-past``: open-access whose embargo ended in 2001.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pytest
import rasterio
from affine import Affine
from fastapi import Depends, FastAPI, HTTPException, Request, Response
from fastapi.responses import HTMLResponse
from stac_fastapi.api.middleware import ProxyHeaderMiddleware
from starlette.staticfiles import StaticFiles
from starlette.testclient import TestClient

from services.access import (
    AccessControl,
    AccessSettings,
    ApiKey,
    BodySizeLimitMiddleware,
    ErrorShieldMiddleware,
    FilesGuard,
    Principal,
    SecurityHeadersMiddleware,
    StacLimitsMiddleware,
    add_cors,
    auth_router,
    hash_api_key,
    require_admin,
    require_collection_access,
    sign_response_assets,
    signed_collection_query,
)
from services.api.urls import FILES_PATH, MountedApp, PublicUrlMiddleware, absolute_assets, service_base_url
from tests.access.identity import LocalIssuer

OPEN, LOGIN, APPLY, EMBARGO, PAST = "open-data", "login-data", "apply-data", "embargo-future", "embargo-past"
COLLECTIONS = {
    OPEN: {"ncdc:share_type": "open-access", "ncdc:protected": False},
    LOGIN: {"ncdc:share_type": "login-access", "ncdc:protected": False},
    APPLY: {"ncdc:share_type": "apply-access", "ncdc:protected": False},
    EMBARGO: {"ncdc:share_type": "apply-access", "ncdc:protected": False, "ncdc:protected_to": "2099-08-20T00:00:00Z"},
    PAST: {"ncdc:share_type": "open-access", "ncdc:protected": False, "ncdc:protected_to": "2001-01-01T00:00:00Z"},
}
ITEM = "2023-01"
MANAGER = "manager@example.org"
GRANTED = "granted@example.org"
ADMIN_KEY = "admin-key-for-the-tests-0123456789"
SCRIPT_KEY = "script-key-for-the-tests-0123456789"
SIGNING_KEY = "signing-key-for-the-tests-0123456789abcdef"


def data_path(collection: str) -> str:
    return f"/files/{collection}/{ITEM}/data.tif"


def tile_path(collection: str) -> str:
    return f"/raster/collections/{collection}/tiles/WebMercatorQuad/0/0/0.png"


def _collection(collection_id: str, access: dict[str, Any]) -> dict[str, Any]:
    manager = MANAGER if collection_id == EMBARGO else "someone.else@example.org"
    return {
        "type": "Collection",
        "stac_version": "1.1.0",
        "id": collection_id,
        "description": f"{collection_id} for the access tests",
        "license": "CC-BY-4.0",
        "extent": {
            "spatial": {"bbox": [[90.0, 29.0, 91.0, 30.0]]},
            "temporal": {"interval": [["2023-01-01T00:00:00Z", None]]},
        },
        "links": [],
        "contacts": [
            {"name": "Manager", "roles": ["custodian"], "emails": [{"value": manager}]},
            {"name": "Author", "roles": ["author"], "emails": [{"value": "author@example.org"}]},
        ],
        "assets": {"thumbnail": {"href": f"./{ITEM}/thumbnail.png", "roles": ["thumbnail"], "type": "image/png"}},
        **access,
    }


def _item(collection_id: str) -> dict[str, Any]:
    return {
        "type": "Feature",
        "stac_version": "1.1.0",
        "id": ITEM,
        "collection": collection_id,
        "geometry": None,
        "properties": {"datetime": "2023-01-15T00:00:00Z"},
        "links": [],
        "assets": {
            "data": {"href": "./data.tif", "roles": ["data"], "type": "image/tiff; application=geotiff"},
            "thumbnail": {"href": "./thumbnail.png", "roles": ["thumbnail"], "type": "image/png"},
        },
    }


def write_cog(path: Path, seed: int) -> None:
    values = (np.arange(512 * 512, dtype=np.uint16).reshape(512, 512) + seed).astype(np.uint16)
    profile = {
        "driver": "GTiff",
        "width": 512,
        "height": 512,
        "count": 1,
        "dtype": "uint16",
        "crs": "EPSG:32646",
        "transform": Affine(30, 0, 500_000, 0, -30, 3_300_000),
        "tiled": True,
        "blockxsize": 256,
        "blockysize": 256,
        "compress": "deflate",
    }
    with rasterio.open(path, "w", **profile) as dataset:
        dataset.write(values, 1)
        dataset.build_overviews([2, 4])


PNG = b"\x89PNG\r\n\x1a\n" + bytes(32)
"""Stand-in bytes of a thumbnail or a tile (only served, never decoded)."""


def write_publication(root: Path) -> None:
    (root / "catalog.json").write_text(json.dumps({"type": "Catalog", "id": "ncdc", "links": []}))
    for seed, (collection_id, access) in enumerate(COLLECTIONS.items()):
        folder = root / collection_id / ITEM
        folder.mkdir(parents=True)
        (root / collection_id / "collection.json").write_text(json.dumps(_collection(collection_id, access)))
        (root / collection_id / "items.parquet").write_bytes(b"PAR1 stand-in PAR1")
        (root / collection_id / ".publish-state.json").write_text(json.dumps({ITEM: "fingerprint"}))
        (folder / f"{ITEM}.json").write_text(json.dumps(_item(collection_id)))
        (folder / "thumbnail.png").write_bytes(PNG)
        write_cog(folder / "data.tif", seed)
    (root / "README.txt").write_text("not served")


@dataclass(frozen=True)
class World:
    """The test publication, the identity provider, the settings and the app over them."""

    root: Path
    issuer: LocalIssuer
    settings: AccessSettings
    app: FastAPI
    access: AccessControl


def build_settings(root: Path, issuer: LocalIssuer, **overrides: Any) -> AccessSettings:
    values: dict[str, Any] = {
        "root": root,
        "auth_jwks": issuer.jwks,
        "auth_issuer": issuer.issuer,
        "auth_audience": issuer.audience,
        "api_keys": {
            hash_api_key(ADMIN_KEY): ApiKey(subject="ingest-bot", roles=["admin"]),
            hash_api_key(SCRIPT_KEY): ApiKey(subject="script", grants=[APPLY]),
        },
        "grants": {GRANTED: [APPLY, EMBARGO]},
        "signing_key": SIGNING_KEY,
        "signed_url_ttl": 600,
        "max_limit": 100,
        "cql2_max_length": 500,
        "cql2_max_depth": 6,
        "max_body_bytes": 4096,
        **overrides,
    }
    return AccessSettings(**values)


def build_app(settings: AccessSettings) -> tuple[FastAPI, AccessControl]:
    """What ``services/app.py`` will compose: files guard, a raster sub-app, auth, admin, STAC limits, hardening."""
    access = AccessControl(settings)
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

    raster = FastAPI(openapi_url=None)

    @raster.get(
        "/collections/{collection_id}/tiles/{tms}/{z}/{x}/{y}.png", dependencies=[Depends(require_collection_access)]
    )
    def tile(collection_id: str, tms: str, z: int, x: int, y: int) -> Response:
        return Response(PNG, media_type="image/png")

    @raster.get("/collections/{collection_id}/tilejson.json")
    async def tilejson(request: Request, collection_id: str) -> dict[str, Any]:
        query = await signed_collection_query(request, collection_id)
        here = str(request.url.replace(query="")).removesuffix("/tilejson.json")
        template = f"{here}/tiles/WebMercatorQuad/{{z}}/{{x}}/{{y}}.png"
        return {"tilejson": "3.0.0", "tiles": [f"{template}?{query}" if query else template]}

    @raster.get("/collections/{collection_id}/info")
    def info(collection_id: str) -> dict[str, str]:
        return {"collection": collection_id}

    stac = FastAPI(openapi_url=None)

    @stac.get("/search")
    def search_get(request: Request) -> dict[str, Any]:
        return {"limit": request.query_params.get("limit"), "filter": request.query_params.get("filter")}

    @stac.post("/search")
    async def search_post(request: Request) -> dict[str, Any]:
        body = await request.json()
        return {"limit": body.get("limit"), "filter": body.get("filter")}

    @stac.get("/collections/{collection_id}/items/{item_id}")
    async def item(request: Request, collection_id: str, item_id: str) -> dict[str, Any]:
        document = json.loads((Path(settings.root) / collection_id / item_id / f"{item_id}.json").read_text())
        absolute_assets(document["assets"], f"{service_base_url(request)}{FILES_PATH}", f"{collection_id}/{item_id}")
        await sign_response_assets(request, [document])
        return dict(document)

    @stac.post("/collections", dependencies=[Depends(require_admin)])
    def create_collection() -> dict[str, str]:
        return {"created": "yes"}

    @app.get("/", response_class=HTMLResponse)
    def viewer() -> str:
        return "<!doctype html><title>viewer</title><script src='/static/viewer.js'></script>"

    @app.post("/admin/ingest")
    def ingest(principal: Annotated[Principal, Depends(require_admin)]) -> dict[str, str]:
        return {"by": principal.subject}

    @app.post("/upload")
    async def upload(request: Request) -> dict[str, int]:
        return {"size": len(await request.body())}

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError(f"cannot open {settings.root}/apply-data/2023-01/data.tif")

    @app.get("/fail")
    def fail() -> None:
        raise HTTPException(404, f"no such file: {settings.root}/x/y.tif or /usr/lib/python3/z.py")

    app.mount("/stac", MountedApp(StacLimitsMiddleware.from_settings(stac, settings)), name="stac")
    app.mount("/raster", raster, name="raster")
    app.mount("/files", FilesGuard(StaticFiles(directory=settings.root, check_dir=False)), name="files")
    app.include_router(auth_router(), prefix="/auth")
    access.install(app)
    app.add_middleware(ErrorShieldMiddleware, roots=[settings.root])
    app.add_middleware(SecurityHeadersMiddleware, csp=settings.content_security_policy)
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes)
    add_cors(app, settings)
    app.add_middleware(PublicUrlMiddleware, public_url=settings.public_url)
    app.add_middleware(ProxyHeaderMiddleware)
    return app, access


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    root = tmp_path_factory.mktemp("access-public")
    write_publication(root)
    issuer = LocalIssuer()
    settings = build_settings(root, issuer)
    app, access = build_app(settings)
    return World(root, issuer, settings, app, access)


@pytest.fixture(scope="session")
def client(world: World) -> Iterator[TestClient]:
    with TestClient(world.app, raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture(scope="session")
def issuer(world: World) -> LocalIssuer:
    return world.issuer


Callers = dict[str, dict[str, str]]


@pytest.fixture(scope="session")
def callers(issuer: LocalIssuer) -> Callers:
    """Request headers of each kind of caller (tokens valid for an hour: the whole session)."""
    return {
        "anonymous": {},
        "user": issuer.bearer("user-1", email="user@example.org", lifetime=3600),
        "granted": issuer.bearer("user-2", email=GRANTED, lifetime=3600),
        "manager": issuer.bearer("user-3", email=MANAGER, lifetime=3600),
        "admin": issuer.bearer("admin-1", email="admin@example.org", roles=["admin"], lifetime=3600),
        "script": {"X-API-Key": SCRIPT_KEY},
        "admin-key": {"X-API-Key": ADMIN_KEY},
    }
