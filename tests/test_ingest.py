"""Ingest into a real pgstac (throwaway PostgreSQL cluster) and serve it through stac-fastapi-pgstac."""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
import psycopg
import pystac
import pytest
from fastapi import APIRouter, FastAPI
from pydantic import SecretStr
from pypgstac.load import Loader
from stac_geoparquet.arrow import parse_stac_items_to_arrow, to_parquet

from catalog.collection import create_collection
from catalog.record import load_record
from ncdc_stac.settings import Settings
from publish.ingest import GeoParquetLoader, IngestError, ingest, iter_parquet_items, open_pgstac, read_collection
from services.api.pgstac import HrefRewriter, asyncpg_dsn, pgstac_parts
from services.api.urls import MountedApp, PublicUrlMiddleware
from tests.conftest import RECORDS
from tests.pgstac_cluster import clone_database

ITEMS_PER_COLLECTION = 3


@pytest.fixture
def cluster_dsn(pgstac_template: str) -> str:
    """The session's migrated pgstac database (``tests.conftest``); tests work on clones of it."""
    return pgstac_template


@pytest.fixture
def dsn(cluster_dsn: str) -> str:
    """A fresh pgstac database (template copy of the migrated one)."""
    return clone_database(cluster_dsn, f"t_{uuid4().hex[:12]}")


# --- a small publication -----------------------------------------------------------------------------------


def _item(collection_id: str, n: int) -> dict[str, Any]:
    """A static item as published: hrefs relative to ``ROOT/<cid>/<iid>/<iid>.json``."""
    iid = f"{collection_id[:20]}-{n:03d}"
    west, south = 75.0 + n, 35.0
    item = pystac.Item(
        id=iid,
        geometry={
            "type": "Polygon",
            "coordinates": [
                [[west, south], [west + 1, south], [west + 1, south + 1], [west, south + 1], [west, south]]
            ],
        },
        bbox=[west, south, west + 1, south + 1],
        datetime=None if n == 0 else datetime(2020, n, 1, tzinfo=UTC),
        start_datetime=datetime(2019, 1, 1, tzinfo=UTC) if n == 0 else None,
        end_datetime=datetime(2019, 12, 31, tzinfo=UTC) if n == 0 else None,
        properties={"ncdc:band": f"b{n}"} if n % 2 else {"gsd": 30.0},
        collection=collection_id,
    )
    item.add_asset("data", pystac.Asset(href="./data.tif", media_type=pystac.MediaType.COG, roles=["data"]))
    item.add_asset("thumbnail", pystac.Asset(href="thumb.png", media_type=pystac.MediaType.PNG, roles=["thumbnail"]))
    data = item.to_dict(include_self_link=False, transform_hrefs=False)
    data["links"] = [
        {"rel": "root", "href": "../../catalog.json", "type": "application/json"},
        {"rel": "parent", "href": "../collection.json", "type": "application/json"},
        {"rel": "collection", "href": "../collection.json", "type": "application/json"},
        {"rel": "describedby", "href": "./metadata.xml", "type": "application/xml"},
        {"rel": "license", "href": "https://creativecommons.org/licenses/by/4.0/"},
    ]
    return data


def _as_root_relative(item: dict[str, Any]) -> dict[str, Any]:
    """The same item as stored in items.parquet: hrefs relative to ROOT, no structural links."""
    out = copy.deepcopy(item)
    prefix = f"{item['collection']}/{item['id']}/"
    for asset in out["assets"].values():
        asset["href"] = prefix + asset["href"].removeprefix("./")
    out["links"] = [
        {**link, "href": prefix + link["href"].removeprefix("./")} if link["rel"] == "describedby" else link
        for link in out["links"]
        if link["rel"] not in {"root", "parent", "collection"}
    ]
    return out


def write_items(root: Path, collection_id: str, items: list[dict[str, Any]]) -> None:
    """Write static item JSON and items.parquet for a collection."""
    for item in items:
        folder = root / collection_id / item["id"]
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{item['id']}.json").write_text(json.dumps(item), encoding="utf-8")
    to_parquet(parse_stac_items_to_arrow([_as_root_relative(i) for i in items]), root / collection_id / "items.parquet")


def write_publication(root: Path, records: int = 2) -> dict[str, list[dict[str, Any]]]:
    """Collections from our converter plus synthetic items; returns the static items by collection id."""
    published: dict[str, list[dict[str, Any]]] = {}
    children = []
    for record in RECORDS[:records]:
        collection = create_collection(load_record(record))
        collection.set_self_href(None)
        (root / collection.id).mkdir(parents=True, exist_ok=True)
        (root / collection.id / "collection.json").write_text(
            json.dumps(collection.to_dict(include_self_link=False), ensure_ascii=False), encoding="utf-8"
        )
        items = [_item(collection.id, n) for n in range(ITEMS_PER_COLLECTION)]
        write_items(root, collection.id, items)
        published[collection.id] = items
        children.append({"rel": "child", "href": f"./{collection.id}/collection.json"})
    catalog = {"type": "Catalog", "id": "ncdc", "stac_version": "1.1.0", "description": "test", "links": children}
    (root / "catalog.json").write_text(json.dumps(catalog), encoding="utf-8")
    return published


@pytest.fixture
def publication(tmp_path: Path) -> tuple[Path, dict[str, list[dict[str, Any]]]]:
    root = tmp_path / "public"
    return root, write_publication(root)


# --- pgstac queries ----------------------------------------------------------------------------------------


def connect(dsn: str) -> psycopg.Connection[tuple[Any, ...]]:
    """A connection with pgstac's search path (its functions call each other unqualified)."""
    return psycopg.connect(dsn, options="-c search_path=pgstac,public")


def count(dsn: str, table: str) -> int:
    with connect(dsn) as conn:
        row = conn.execute(psycopg.sql.SQL("SELECT count(*) FROM pgstac.{}").format(psycopg.sql.Identifier(table)))
        return int(row.fetchone()[0])  # type: ignore[index]


def search(dsn: str, body: dict[str, Any]) -> dict[str, Any]:
    """pgstac's own ``search()`` SQL function (hydrated items)."""
    with connect(dsn) as conn:
        row = conn.execute("SELECT pgstac.search(%s::text::jsonb)", [json.dumps(body)]).fetchone()
    assert row is not None
    result: dict[str, Any] = row[0]
    return result


def stored_collection(dsn: str, collection_id: str) -> dict[str, Any]:
    with connect(dsn) as conn:
        row = conn.execute("SELECT pgstac.get_collection(%s)", [collection_id]).fetchone()
    assert row is not None
    result: dict[str, Any] = row[0]
    return result


# --- tests -------------------------------------------------------------------------------------------------


def test_ingest_is_idempotent_and_updates_changed_items(
    dsn: str, publication: tuple[Path, dict[str, list[dict[str, Any]]]]
) -> None:
    root, published = publication
    first = ingest(root, dsn)
    assert first.pgstac_version == "0.10.0"
    assert [c.id for c in first.collections] == sorted(published)
    assert first.items == count(dsn, "items") == 2 * ITEMS_PER_COLLECTION
    assert all(c.source is not None and c.source.name == "items.parquet" for c in first.collections)

    again = ingest(root, dsn)
    assert again.items == first.items
    assert count(dsn, "items") == 2 * ITEMS_PER_COLLECTION, "a re-run adds no duplicates"
    assert count(dsn, "collections") == 2

    cid = sorted(published)[0]
    items = published[cid]
    items[1]["properties"]["ncdc:band"] = "edited"
    items[1]["assets"]["data"]["title"] = "edited title"
    write_items(root, cid, items)
    ingest(root, dsn)
    assert count(dsn, "items") == 2 * ITEMS_PER_COLLECTION
    (found,) = search(dsn, {"ids": [items[1]["id"]]})["features"]
    assert found["properties"]["ncdc:band"] == "edited"
    assert found["assets"]["data"]["title"] == "edited title"


def test_hrefs_are_relative_to_root(dsn: str, publication: tuple[Path, dict[str, list[dict[str, Any]]]]) -> None:
    root, published = publication
    ingest(root, dsn)
    cid = sorted(published)[0]
    features = search(dsn, {"collections": [cid], "limit": 100})["features"]
    assert len(features) == ITEMS_PER_COLLECTION
    for feature in features:
        prefix = f"{cid}/{feature['id']}/"
        assert feature["assets"]["data"]["href"] == prefix + "data.tif"
        assert feature["assets"]["thumbnail"]["href"] == prefix + "thumb.png"
        rels = {link["rel"]: link["href"] for link in feature.get("links", [])}
        assert rels.get("describedby") == prefix + "metadata.xml"
        assert not {"root", "parent", "collection", "self"} & rels.keys(), "structural links are the API's job"
    start = next(f for f in features if f["id"].endswith("-000"))
    assert start["properties"]["start_datetime"].startswith("2019-01-01")
    thumbnail = stored_collection(dsn, cid)["assets"]["thumbnail"]["href"]
    assert thumbnail.startswith(f"{cid}/") and "/" not in thumbnail.removeprefix(f"{cid}/")


def test_static_json_and_parquet_agree(
    cluster_dsn: str, publication: tuple[Path, dict[str, list[dict[str, Any]]]]
) -> None:
    root, _ = publication
    by_source = {}
    for source in ("json", "parquet"):
        target = clone_database(cluster_dsn, f"t_{source}_{uuid4().hex[:8]}")
        summary = ingest(root, target, source=source)
        assert summary.items == 2 * ITEMS_PER_COLLECTION
        features = search(target, {"limit": 100, "sortby": [{"field": "id", "direction": "asc"}]})["features"]
        by_source[source] = {f["id"]: (f["assets"], f["properties"].get("ncdc:band")) for f in features}
    assert by_source["json"] == by_source["parquet"]


def test_geoparquet_loader_rows_equal_pypgstac_rows(
    dsn: str, publication: tuple[Path, dict[str, list[dict[str, Any]]]]
) -> None:
    """Items read with EWKB geometries make the same database rows as pypgstac's own GeoJSON path."""
    root, published = publication
    ingest(root, dsn)  # the collections, whose base items dehydrate the rows
    with open_pgstac(dsn) as db:
        theirs, ours = Loader(db), GeoParquetLoader(db)
        for cid in published:
            parquet = root / cid / "items.parquet"
            geojson = list(iter_parquet_items(parquet))
            ewkb = list(iter_parquet_items(parquet, ewkb=True))
            assert [i["id"] for i in geojson] == [i["id"] for i in ewkb]
            assert all(isinstance(i["geometry"], str) for i in ewkb)
            for plain, encoded in zip(geojson, ewkb, strict=True):
                expected, actual = theirs.format_item(plain), ours.format_item(encoded)
                assert actual["geometry"].upper() == expected["geometry"].upper()
                assert {**actual, "geometry": None} == {**expected, "geometry": None}
                assert ours.format_item(plain) == expected  # GeoJSON items still take pypgstac's path


def test_prune_removes_unpublished_items(dsn: str, publication: tuple[Path, dict[str, list[dict[str, Any]]]]) -> None:
    root, published = publication
    ingest(root, dsn)
    cid = sorted(published)[0]
    write_items(root, cid, published[cid][:1])  # items.parquet now holds one item
    kept = ingest(root, dsn, collections=[cid])
    assert count(dsn, "items") == 2 * ITEMS_PER_COLLECTION, "without prune nothing is deleted"
    pruned = ingest(root, dsn, collections=[cid], prune=True)
    assert kept.collections[0].pruned == 0 and pruned.collections[0].pruned == ITEMS_PER_COLLECTION - 1
    assert count(dsn, "items") == ITEMS_PER_COLLECTION + 1


def own_queryables(dsn: str, collection_id: str) -> dict[str, tuple[int, Any]]:
    """Queryables registered for just one collection: name -> (row id, definition)."""
    with connect(dsn) as conn:
        rows = conn.execute(
            "SELECT name, id, definition FROM pgstac.queryables WHERE collection_ids = ARRAY[%s]::text[]",
            [collection_id],
        ).fetchall()
    return {name: (row_id, definition) for name, row_id, definition in rows}


def test_ingest_registers_item_properties_as_queryables(
    dsn: str, publication: tuple[Path, dict[str, list[dict[str, Any]]]]
) -> None:
    root, published = publication
    ingest(root, dsn)
    first, second = sorted(published)
    registered = own_queryables(dsn, first)
    assert {name: definition for name, (_, definition) in registered.items()} == {
        "gsd": {"type": "number"},
        "ncdc:band": {"type": "string"},
        "start_datetime": {"type": "string", "format": "date-time"},
        "end_datetime": {"type": "string", "format": "date-time"},
    }, "datetime is pgstac's own queryable (for every collection): not registered again"
    ingest(root, dsn)
    assert own_queryables(dsn, first) == registered, "an unchanged publication leaves the rows as they are"

    items = published[first]
    del items[1]["properties"]["ncdc:band"]
    items[2]["properties"]["gsd"] = 30  # integers and numbers: still a number
    items[2]["properties"]["ncdc:flag"] = True
    write_items(root, first, items)
    ingest(root, dsn)
    after = own_queryables(dsn, first)
    assert "ncdc:band" not in after, "a property no longer published is unregistered"
    assert after["gsd"] == registered["gsd"]
    assert after["ncdc:flag"][1] == {"type": "boolean"}
    assert "ncdc:band" in own_queryables(dsn, second), "other collections keep theirs"
    with connect(dsn) as conn:
        row = conn.execute("SELECT get_queryables(%s::text)", [first]).fetchone()
    assert row is not None
    assert {"id", "geometry", "datetime", "gsd", "ncdc:flag"} <= set(row[0]["properties"])


def test_bad_inputs_name_the_file(dsn: str, publication: tuple[Path, dict[str, list[dict[str, Any]]]]) -> None:
    root, published = publication
    cid = sorted(published)[0]
    collection_json = root / cid / "collection.json"
    good = collection_json.read_text(encoding="utf-8")

    collection_json.write_text("{not json", encoding="utf-8")
    with pytest.raises(IngestError, match=rf"{collection_json}: not valid JSON"):
        ingest(root, dsn)
    assert count(dsn, "collections") == 0, "every collection is checked before anything is written"

    collection_json.write_text(json.dumps(json.loads(good) | {"id": "other"}), encoding="utf-8")
    with pytest.raises(IngestError, match="differs from its folder"):
        ingest(root, dsn)
    collection_json.write_text(good, encoding="utf-8")

    broken = copy.deepcopy(published[cid][2])
    del broken["properties"]["datetime"]
    write_items(root, cid, [*published[cid][:2], broken])
    with pytest.raises(IngestError, match=rf"items\.parquet.*{broken['id']}.*needs 'datetime'"):
        ingest(root, dsn)
    item_json = root / cid / broken["id"] / f"{broken['id']}.json"
    with pytest.raises(IngestError, match=rf"{item_json}.*needs 'datetime'"):
        ingest(root, dsn, source="json")

    with pytest.raises(IngestError, match="no published collection 'missing'"):
        ingest(root, dsn, collections=["missing"])
    escaping = json.loads(good)
    escaping["assets"]["thumbnail"]["href"] = "../../etc/passwd"
    collection_json.write_text(json.dumps(escaping), encoding="utf-8")
    with pytest.raises(IngestError, match="outside the publication root"):
        read_collection(collection_json)


def test_ingest_refuses_a_database_without_pgstac(cluster_dsn: str, tmp_path: Path) -> None:
    root = tmp_path / "public"
    write_publication(root, records=1)
    name = f"empty_{uuid4().hex[:12]}"
    with psycopg.connect(psycopg.conninfo.make_conninfo(cluster_dsn, dbname="postgres"), autocommit=True) as conn:
        conn.execute(psycopg.sql.SQL("CREATE DATABASE {}").format(psycopg.sql.Identifier(name)))
    empty = psycopg.conninfo.make_conninfo(cluster_dsn, dbname=name)
    with pytest.raises(IngestError, match="no pgstac schema"):
        ingest(root, empty)
    assert ingest(root, empty, migrate=True).items == ITEMS_PER_COLLECTION


# --- through stac-fastapi-pgstac ---------------------------------------------------------------------------


def _app(settings: Settings, mode: str) -> FastAPI:
    """The STAC API at /stac over pgstac: the service itself, a mounted sub-app, or routes under a prefix."""
    if mode == "service":
        from services.app import create_app

        try:
            return create_app(settings)
        except NotImplementedError as err:  # services/api/backends.py must map "pgstac" to pgstac_backend
            pytest.skip(f"the service does not use the pgstac backend yet: {err}")
    parts = pgstac_parts(settings)
    if mode == "prefix":

        @asynccontextmanager
        async def own_lifespan(app: FastAPI) -> AsyncIterator[None]:
            async with parts.lifespan(app):
                yield

        app = FastAPI(lifespan=own_lifespan)
        parts.stac_api(app, APIRouter(prefix="/stac"))
    else:
        stac = parts.stac_api()

        @asynccontextmanager
        async def lifespan(app: FastAPI) -> AsyncIterator[None]:
            async with parts.lifespan(stac.app):
                yield

        app = FastAPI(lifespan=lifespan)
        app.mount("/stac", MountedApp(stac.app))
    app.add_middleware(PublicUrlMiddleware, public_url=settings.public_url)
    return app


async def _fetch(app: FastAPI, *requests: tuple[str, str, dict[str, Any] | None]) -> list[dict[str, Any]]:
    """Responses (JSON) to ``(method, path, body)`` requests, with the app's lifespan running."""
    async with app.router.lifespan_context(app):  # httpx.ASGITransport does not run the lifespan
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            responses = [await client.request(method, path, json=body) for method, path, body in requests]
    for response in responses:
        assert response.status_code == 200, response.text
    return [response.json() for response in responses]


@pytest.mark.parametrize("mode", ["service", "mount", "prefix"])
def test_search_through_stac_fastapi_pgstac(
    dsn: str, publication: tuple[Path, dict[str, list[dict[str, Any]]]], mode: str
) -> None:
    root, published = publication
    ingest(root, dsn)
    cid = sorted(published)[0]
    settings = Settings(root=root, backend="pgstac", dsn=SecretStr(dsn))
    item_id = published[cid][1]["id"]
    search_page, item_page, collection, item, landing, posted = asyncio.run(
        _fetch(
            _app(settings, mode),
            ("GET", f"/stac/search?collections={cid}&limit=10", None),
            ("GET", f"/stac/collections/{cid}/items", None),
            ("GET", f"/stac/collections/{cid}", None),
            ("GET", f"/stac/collections/{cid}/items/{item_id}", None),
            ("GET", "/stac/", None),
            ("POST", "/stac/search", {"collections": [cid], "datetime": "2020-01-15T00:00:00Z/.."}),
        )
    )
    assert landing["title"].startswith("NCDC STAC API")
    assert {link["rel"]: link["href"] for link in landing["links"]}["self"] == "http://testserver/stac/"
    assert len(search_page["features"]) == len(item_page["features"]) == ITEMS_PER_COLLECTION
    assert [f["id"] for f in posted["features"]] == [published[cid][2]["id"]]
    for feature in [*search_page["features"], *item_page["features"], *posted["features"], item]:
        base = f"http://testserver/files/{cid}/{feature['id']}/"
        assert feature["assets"]["data"]["href"] == base + "data.tif"
        links = {link["rel"]: link["href"] for link in feature["links"]}
        assert links["describedby"] == base + "metadata.xml"
        assert links["license"] == "https://creativecommons.org/licenses/by/4.0/"
        assert links["self"] == f"http://testserver/stac/collections/{cid}/items/{feature['id']}"
    assert collection["assets"]["thumbnail"]["href"].startswith(f"http://testserver/files/{cid}/")

    public = settings.model_copy(update={"public_url": "https://data.example.org/ncdc/"})
    (found,) = asyncio.run(_fetch(_app(public, mode), ("GET", f"/stac/collections/{cid}/items/{item_id}", None)))
    assert found["assets"]["data"]["href"] == f"https://data.example.org/ncdc/files/{cid}/{item_id}/data.tif"


def test_href_rewriter_and_dsn_conversion() -> None:
    rewriter = HrefRewriter(files_base="http://h/files", api_base="http://h/stac/")
    obj: dict[str, Any] = {
        "assets": {"a": {"href": "c/i/a.tif"}, "b": {"href": "https://x.org/b.tif"}},
        "links": [
            {"rel": "self", "href": "http://h/stac/collections/c"},
            {"rel": "describedby", "href": "http://h/stac/c/i/m.xml"},
            {"rel": "license", "href": "https://x.org/l"},
        ],
    }
    rewriter.stac_object(obj)
    assert [a["href"] for a in obj["assets"].values()] == ["http://h/files/c/i/a.tif", "https://x.org/b.tif"]
    assert [link["href"] for link in obj["links"]] == [
        "http://h/stac/collections/c",
        "http://h/files/c/i/m.xml",
        "https://x.org/l",
    ]
    assert asyncpg_dsn("postgresql://u@h:5/d") == "postgresql://u@h:5/d"
    assert asyncpg_dsn("host=127.0.0.1 port=5433 user=postgres dbname=pgstac") == (
        "postgresql://postgres@127.0.0.1:5433/pgstac"
    )
    assert asyncpg_dsn("host=/run/pg user=u password=p@ss dbname=d") == "postgresql://u:p%40ss@/d?host=%2Frun%2Fpg"
