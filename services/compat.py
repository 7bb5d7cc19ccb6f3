"""Item collections for GDAL's STACIT driver before GDAL 3.10 (QGIS 3.22, Debian 12, Ubuntu 22.04).

Those versions find an item's CRS only in ``proj:epsg`` (projection v1), while our items carry
projection v2 (``proj:code``, which forbids ``proj:epsg``), and they do not resolve relative hrefs.
``GET /gdal/stacit/{collection_id}?bbox=&datetime=`` answers the collection's items as the STAC API
gives them (absolute hrefs, same filters) with projection v2 rewritten as v1.1. Usage in QGIS / GDAL::

    gdalinfo 'STACIT:"http://host/gdal/stacit/<collection>?datetime=2023-07":asset=velocity'
"""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import APIRouter, HTTPException, Query, Request

PROJECTION_V2 = "https://stac-extensions.github.io/projection/v2.0.0/schema.json"
PROJECTION_V1 = "https://stac-extensions.github.io/projection/v1.1.0/schema.json"
MAX_PAGES = 100


def projection_v1(item: dict[str, Any]) -> dict[str, Any]:
    """The item with ``proj:code: EPSG:n`` as ``proj:epsg: n`` under projection v1.1 (other CRSs: WKT2 only)."""
    extensions = item.get("stac_extensions", [])
    if PROJECTION_V2 not in extensions:
        return item
    properties = dict(item["properties"])
    code = properties.pop("proj:code", None)
    if isinstance(code, str) and code.upper().startswith("EPSG:"):
        properties["proj:epsg"] = int(code.split(":", 1)[1])
    return {
        **item,
        "stac_extensions": [PROJECTION_V1 if url == PROJECTION_V2 else url for url in extensions],
        "properties": properties,
    }


def create_stacit_router(stac_path: str) -> APIRouter:
    """Routes that re-serve the STAC API's item lists for GDAL's STACIT driver."""
    router = APIRouter(tags=["GDAL compatibility"])

    @router.get("/stacit/{collection_id}", summary="Items of a collection for GDAL < 3.10's STACIT driver")
    async def stacit(
        request: Request,
        collection_id: str,
        bbox: str | None = Query(None, description="west,south,east,north"),
        datetime: str | None = Query(None, description="RFC 3339 instant or interval"),
    ) -> dict[str, Any]:
        params = {k: v for k, v in {"bbox": bbox, "datetime": datetime, "limit": "1000"}.items() if v}
        base = str(request.base_url).rstrip("/")
        features: list[dict[str, Any]] = []
        transport = httpx.ASGITransport(app=request.app)
        async with httpx.AsyncClient(transport=transport, base_url=base, headers=_forwarded(request)) as client:
            url: str | None = f"{base}{stac_path}/collections/{collection_id}/items"
            for _ in range(MAX_PAGES):
                if url is None:
                    break
                response = await client.get(url, params=params)
                if response.status_code != 200:
                    raise HTTPException(response.status_code, response.json().get("description", response.text))
                page = response.json()
                features += [projection_v1(item) for item in page.get("features", [])]
                url = next((link["href"] for link in page.get("links", []) if link.get("rel") == "next"), None)
                params = {}
        return {"type": "FeatureCollection", "features": features}

    return router


def _forwarded(request: Request) -> dict[str, str]:
    """Headers that tell the STAC API the public URL of the original request, and who asks (signed hrefs)."""
    names = (
        "host",
        "x-forwarded-proto",
        "x-forwarded-host",
        "x-forwarded-prefix",
        "forwarded",
        "authorization",
        "x-api-key",
    )
    return {name: request.headers[name] for name in names if name in request.headers}
