"""Web map links (xyz, tilejson, wmts) of items and collections, on both backends, followed through the service.

The published samples (real COGs and GeoParquet) are served by the whole service (``services.app.create_app``):
every link is validated against the web-map-links v1.2.0 schema (``tests/schemas``, missing from the kit)
and followed through the same ASGI app, which must answer with a decodable tile, a TileJSON or a WMTS naming
the layer. Tiles of restricted collections are asked with an admin API key.
"""

from __future__ import annotations

import hashlib
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit
from uuid import uuid4

import morecantile
import numpy as np
import pytest
from rio_tiler.colormap import cmap
from starlette.testclient import TestClient
from titiler.core.resources.enums import ImageType
from titiler.core.utils import render_image

from ncdc_stac.settings import Settings
from services.api.tile_links import WEB_MAP_LINKS
from services.app import create_app
from tests.publication import Publication
from tests.raster.helpers import cog, data_tile, decode_image, decode_mvt, decode_npy, source_tile, valid
from tests.stac_schemas import OfflineValidator

SCHEMAS = Path(__file__).parent / "schemas"
API_KEY = "tile-links-test-key"
WEB_MAP_RELS = ("xyz", "tilejson", "wmts")
WMTS = {"w": "http://www.opengis.net/wmts/1.0", "ows": "http://www.opengis.net/ows/1.1"}
MERCATOR = morecantile.tms.get("WebMercatorQuad")
HMA_ITEM = "baltoro-2013-07"
PS_ITEM = "ps-track-107-descending"


@pytest.fixture(scope="module")
def cids(samples: Publication) -> dict[str, str]:
    names = {"gangrigab": "gangrigab-velocity", "hma": "hma-glacier-velocity", "cpec": "cpec-deformation"}
    return {short: samples.collection_ids[name] for short, name in names.items()}


@pytest.fixture(scope="module")
def service(samples: Publication, backend: str, request: pytest.FixtureRequest) -> Iterator[TestClient]:
    """The whole service over the samples on ``backend``, with an admin API key on every request."""
    keys = {hashlib.sha256(API_KEY.encode()).hexdigest(): {"subject": "tile-links-test", "roles": ["admin"]}}
    options: dict[str, Any] = {"root": samples.root, "api_keys": keys}
    if backend == "pgstac":
        from publish.ingest import ingest
        from tests.pgstac_cluster import clone_database

        dsn = clone_database(str(request.getfixturevalue("pgstac_template")), f"tiles_{uuid4().hex[:12]}")
        ingest(samples.root, dsn)
        options |= {"backend": "pgstac", "dsn": dsn}
    with TestClient(create_app(Settings(**options)), headers={"X-API-Key": API_KEY}) as client:
        yield client


@pytest.fixture(scope="module")
def validator(stac_validator: OfflineValidator) -> OfflineValidator:
    """The kit's validator, which includes ``tests/schemas`` (web-map-links)."""
    return stac_validator


def web_map_links(document: dict[str, Any], rel: str | None = None) -> list[dict[str, Any]]:
    return [link for link in document["links"] if link["rel"] in WEB_MAP_RELS and rel in (None, link["rel"])]


def only(document: dict[str, Any], rel: str, **fields: Any) -> dict[str, Any]:
    found = [link for link in web_map_links(document, rel) if all(link.get(k) == v for k, v in fields.items())]
    assert len(found) == 1, (rel, fields, document["links"])
    return found[0]


def tile_url(template: str, tile: morecantile.Tile) -> str:
    return template.replace("{z}", str(tile.z)).replace("{x}", str(tile.x)).replace("{y}", str(tile.y))


def data_url(xyz: str) -> str:
    """The data (``.npy``) tile of a PNG tile URL: the same layer (assets, expression, ...), no rescale or colormap."""
    parts = urlsplit(xyz.replace(".png?", ".npy?"))
    kept = [(k, v) for k, v in parse_qsl(parts.query) if k in ("assets", "expression", "nodata", "datetime")]
    return urlunsplit(parts._replace(query=urlencode(kept)))


def get(client: TestClient, url: str, content_type: str) -> Any:
    answer = client.get(url)
    assert answer.status_code == 200, (url, answer.text[:300])
    assert answer.headers["content-type"].startswith(content_type), url
    return answer


def test_schema_checks_web_map_links(validator: OfflineValidator) -> None:
    """The added schema is applied: a WMTS link without its layer is refused."""
    item = {
        "type": "Feature",
        "stac_version": "1.1.0",
        "stac_extensions": [WEB_MAP_LINKS],
        "id": "x",
        "geometry": None,
        "properties": {"datetime": "2023-01-01T00:00:00Z"},
        "assets": {},
        "links": [{"rel": "wmts", "href": "https://example.org/wmts"}],
    }
    assert any("wmts:layer" in error for error in validator.errors(item))


def test_items_and_collections_carry_valid_links(
    service: TestClient, cids: dict[str, str], validator: OfflineValidator
) -> None:
    hma = f"/stac/collections/{cids['hma']}"
    documents = [
        service.get(f"{hma}/items/{HMA_ITEM}").json(),
        service.get(hma).json(),
        service.get(f"/stac/collections/{cids['cpec']}/items/{PS_ITEM}").json(),
        service.get(f"/stac/collections/{cids['gangrigab']}").json(),
    ]
    for document in documents:
        assert WEB_MAP_LINKS in document["stac_extensions"], document["id"]
        assert validator.errors(document) == [], document["id"]
    item, collection, points, _ = documents
    assert {link["rel"] for link in web_map_links(item)} == set(WEB_MAP_RELS)
    assert {link["rel"] for link in web_map_links(collection)} == set(WEB_MAP_RELS)
    assert {(link["rel"], link["type"]) for link in web_map_links(points)} == {
        ("xyz", "application/vnd.mapbox-vector-tile"),
        ("tilejson", "application/json"),
    }
    assert only(item, "xyz")["render"] == "velocity" and "expression=b3" in only(item, "xyz")["href"]
    cpec = service.get(f"/stac/collections/{cids['cpec']}").json()  # points only: no mosaic to link
    assert web_map_links(cpec) == [] and WEB_MAP_LINKS not in cpec.get("stac_extensions", [])


def test_search_and_item_lists_carry_the_links(service: TestClient, cids: dict[str, str]) -> None:
    searched = service.post("/stac/search", json={"collections": [cids["cpec"]], "limit": 10}).json()["features"]
    listed = service.get(f"/stac/collections/{cids['hma']}/items", params={"limit": 3}).json()["features"]
    collections = service.get("/stac/collections", params={"limit": 10}).json()["collections"]
    assert searched and all(len(web_map_links(feature, "xyz")) == 1 for feature in searched)
    assert listed and all(only(feature, "wmts")["wmts:layer"].startswith(feature["id"]) for feature in listed)
    assert {c["id"] for c in collections if web_map_links(c)} == {c["id"] for c in collections} - {cids["cpec"]}


def test_item_links_draw_the_render(service: TestClient, samples: Publication, cids: dict[str, str]) -> None:
    """xyz, TileJSON and WMTS of the HMA item draw the speed band (band 3) with the render's colormap."""
    item = service.get(f"/stac/collections/{cids['hma']}/items/{HMA_ITEM}").json()
    path = cog(samples.root, cids["hma"], HMA_ITEM, "velocity")
    tile = data_tile(path)
    speed = source_tile(path, tile, indexes=3, nodata=-9999.0)  # band 3 as rio-tiler reads it alone
    vx = source_tile(path, tile, indexes=1, nodata=-9999.0)
    ok = valid(speed)
    xyz = tile_url(only(item, "xyz")["href"], tile)
    values, _ = decode_npy(get(service, data_url(xyz), "application/x-binary").content)
    np.testing.assert_array_equal(values[0][ok], speed.data[0][ok])
    assert not np.array_equal(values[0][ok], vx.data[0][ok])  # not vx, the first band
    expected, _ = render_image(speed, colormap=cmap.get("plasma"), rescale=[(0.0, 1.0)], output_format=ImageType.png)
    picture = decode_image(get(service, xyz, "image/png").content)
    np.testing.assert_array_equal(picture, decode_image(expected))

    tilejson = get(service, only(item, "tilejson")["href"], "application/json").json()
    assert tilejson["tilejson"] == "3.0.0" and tilejson["minzoom"] <= tile.z <= tilejson["maxzoom"]
    assert decode_image(get(service, tile_url(tilejson["tiles"][0], tile), "image/png").content).shape[0] == 4

    wmts = only(item, "wmts")
    capabilities = ET.fromstring(get(service, wmts["href"], "application/xml").content)
    layers = {
        layer.findtext("ows:Identifier", namespaces=WMTS): layer for layer in capabilities.iterfind(".//w:Layer", WMTS)
    }
    assert wmts["wmts:layer"] in layers
    template = layers[wmts["wmts:layer"]].find("w:ResourceURL", WMTS).get("template")  # type: ignore[union-attr]
    drawn = str(template).replace("{TileMatrix}", str(tile.z)).replace("{TileCol}", str(tile.x))
    np.testing.assert_array_equal(
        decode_image(get(service, drawn.replace("{TileRow}", str(tile.y)), "image/png").content), picture
    )


def test_collection_links_draw_the_mosaic(service: TestClient, samples: Publication, cids: dict[str, str]) -> None:
    collection = service.get(f"/stac/collections/{cids['gangrigab']}").json()
    tilejson = get(service, only(collection, "tilejson")["href"], "application/json").json()
    assert tilejson["tilejson"] == "3.0.0" and tilejson["bounds"]
    path = cog(samples.root, cids["gangrigab"], "2023-12", "velocity")  # the newest month is on top
    tile = data_tile(path)
    xyz = tile_url(only(collection, "xyz")["href"], tile)
    values, _ = decode_npy(get(service, data_url(xyz), "application/x-binary").content)
    source = source_tile(path, tile)
    ok = valid(source)
    np.testing.assert_array_equal(values[0][ok], source.data[0][ok])
    wmts = only(collection, "wmts")
    capabilities = ET.fromstring(get(service, wmts["href"], "application/xml").content)
    names = {element.text for element in capabilities.iterfind(".//w:Layer/ows:Identifier", WMTS)}
    assert wmts["wmts:layer"] in names and f"{cids['gangrigab']}_WebMercatorQuad_2023-12" in names


def test_points_link_their_vector_tiles(service: TestClient, cids: dict[str, str]) -> None:
    item = service.get(f"/stac/collections/{cids['cpec']}/items/{PS_ITEM}").json()
    tilejson = get(service, only(item, "tilejson")["href"], "application/json").json()
    assert tilejson["vector_layers"][0]["id"] == "points"
    assert tilejson["value_column"] == "VEL" and tilejson["render"]["colormap_name"] == "rdbu"  # the recipe's render
    lon, lat, zoom = tilejson["center"]
    tile = MERCATOR.tile(lon, lat, zoom)
    layers = decode_mvt(
        get(service, tile_url(only(item, "xyz")["href"], tile), "application/vnd.mapbox-vector-tile").content
    )
    assert layers["points"]["features"] and "VEL" in layers["points"]["features"][0]["properties"]


def test_links_follow_the_public_url(service: TestClient, cids: dict[str, str]) -> None:
    headers = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "maps.example.org", "X-Forwarded-Prefix": "/ncdc"}
    collection = service.get(f"/stac/collections/{cids['hma']}", headers=headers).json()
    hrefs = [link["href"] for link in web_map_links(collection)]
    assert hrefs and all(
        href.startswith(f"https://maps.example.org/ncdc/raster/collections/{cids['hma']}/") for href in hrefs
    )
