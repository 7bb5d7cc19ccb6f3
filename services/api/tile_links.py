"""Web map links (web-map-links extension v1.2.0): where the raster service at ``/raster`` draws an item or collection.

Both STAC API backends call :func:`add_web_map_links`, so they answer alike. The links are made per request, on the
same base URL as every other link (``services.api.urls``: public URL or proxy headers), and only in API responses:
the static catalog has no server to point at.

* Item: per collection render whose assets are all COG assets of the item, ``xyz`` (PNG tiles), ``tilejson`` and
  ``wmts`` (layer ``{item}_WebMercatorQuad_{render}``, as titiler names it); per GeoParquet asset, ``xyz``
  (Mapbox vector tiles) and ``tilejson`` of its points.
* Collection: per render of its COG item assets, the mosaic of its items (newest on top): ``xyz``, ``tilejson``
  and ``wmts`` (the capabilities with the render's parameters, whose layer ``{collection}_WebMercatorQuad_default``
  draws them; the other layers are the time steps).

Raster links carry the render's parameters (``assets``, ``expression``, ``rescale``, ``colormap_name``, ...) and
name it in ``render`` (render extension), so a client needs no defaults of its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlencode

from starlette.requests import Request

from catalog.items import GEOPARQUET
from services.api.urls import service_base_url
from services.raster.publication import COG
from services.raster.renders import render_query, usable_renders

WEB_MAP_LINKS = "https://stac-extensions.github.io/web-map-links/v1.2.0/schema.json"
RASTER_PATH = "/raster"
"""Where ``services.app`` mounts the raster service."""
TILE_MATRIX_SET = "WebMercatorQuad"
PNG = "image/png"
MVT = "application/vnd.mapbox-vector-tile"
JSON = "application/json"
XYZ = "/tiles/" + TILE_MATRIX_SET + "/{z}/{x}/{y}"


def raster_base_url(request: Request) -> str:
    """Base URL of the raster service for ``request`` (no trailing slash), e.g. ``https://host/prefix/raster``."""
    return service_base_url(request) + RASTER_PATH


def _query(params: Mapping[str, Any]) -> str:
    encoded = urlencode(params, doseq=True)
    return f"?{encoded}" if encoded else ""


def _keys_of_type(assets: Any, media_type: str) -> list[str]:
    """Keys of the (item) assets of ``media_type``."""
    if not isinstance(assets, Mapping):
        return []
    return [key for key, asset in assets.items() if isinstance(asset, Mapping) and asset.get("type") == media_type]


def _render_links(
    prefix: str, renders: Mapping[str, Mapping[str, Any]], layer_id: str, mosaic: bool
) -> list[dict[str, Any]]:
    """``xyz``, ``tilejson`` and ``wmts`` of each render under ``prefix`` (an item's or a collection mosaic's).

    An item's WMTS has a layer per render (``{layer_id}_WebMercatorQuad_{render}``); a mosaic's is asked with the
    render's parameters and draws them in its layer ``{layer_id}_WebMercatorQuad_default``.
    """
    links: list[dict[str, Any]] = []
    for name, render in renders.items():
        query = _query(render_query(render))
        common = {"title": str(render.get("title") or name), "render": name}
        wmts_href = f"{prefix}/WMTSCapabilities.xml" + (query if mosaic else "")
        wmts_layer = f"{layer_id}_{TILE_MATRIX_SET}_{'default' if mosaic else name}"
        links += [
            {"rel": "xyz", "type": PNG, "href": f"{prefix}{XYZ}.png{query}", **common},
            {"rel": "tilejson", "type": JSON, "href": f"{prefix}/{TILE_MATRIX_SET}/tilejson.json{query}", **common},
            {"rel": "wmts", "type": PNG, "href": wmts_href, "wmts:layer": wmts_layer, **common},
        ]
    return links


def web_map_links(
    stac_object: Mapping[str, Any], raster_base_url: str, renders: Mapping[str, Any] | None = None
) -> list[dict[str, Any]]:
    """The web map links of an item or a collection (``[]`` when the raster service cannot draw it).

    ``renders``: the collection's ``renders`` (render extension); default: the object's own (a collection's).
    """
    renders = stac_object.get("renders") if renders is None else renders
    renders = renders if isinstance(renders, Mapping) else {}
    kind, object_id = stac_object.get("type"), stac_object.get("id")
    if not isinstance(object_id, str):
        return []
    if kind == "Collection":
        prefix = f"{raster_base_url}/collections/{quote(object_id, safe='')}"
        cogs = _keys_of_type(stac_object.get("item_assets"), COG)
        return _render_links(prefix, usable_renders(renders, cogs), object_id, mosaic=True)
    collection = stac_object.get("collection")
    if kind != "Feature" or not isinstance(collection, str):
        return []
    prefix = f"{raster_base_url}/collections/{quote(collection, safe='')}/items/{quote(object_id, safe='')}"
    assets = stac_object.get("assets")
    assets = assets if isinstance(assets, Mapping) else {}
    links = _render_links(prefix, usable_renders(renders, _keys_of_type(assets, COG)), object_id, mosaic=False)
    for key in _keys_of_type(assets, GEOPARQUET):
        render = next(iter(usable_renders(renders, [key])), None)
        title = assets[key].get("title") or (renders[render].get("title") if render else None) or key
        common = {"title": f"{title}: vector tiles", **({"render": render} if render else {})}
        query = _query({"asset": key})
        links += [
            {"rel": "xyz", "type": MVT, "href": f"{prefix}/vector/tiles/{{z}}/{{x}}/{{y}}.mvt{query}", **common},
            {"rel": "tilejson", "type": JSON, "href": f"{prefix}/vector/tilejson.json{query}", **common},
        ]
    return links


def add_web_map_links(stac_object: Any, raster_base_url: str, renders: Mapping[str, Any] | None = None) -> None:
    """Append :func:`web_map_links` to the ``links`` of ``stac_object`` and declare the extension, in place.

    Nothing happens to an object without ``links`` (e.g. left out by the fields extension) or without web map links.
    """
    if not isinstance(stac_object, dict) or not isinstance(stac_object.get("links"), list):
        return
    links = web_map_links(stac_object, raster_base_url, renders)
    if not links:
        return
    stac_object["links"].extend(links)
    extensions = stac_object.get("stac_extensions")
    extensions = list(extensions) if isinstance(extensions, list) else []
    if WEB_MAP_LINKS not in extensions:
        extensions.append(WEB_MAP_LINKS)
    stac_object["stac_extensions"] = extensions
