"""Load a publication (collections + items) into PostgreSQL/pgstac with pypgstac's loader.

Published layout::

    ROOT/<collection-id>/collection.json
    ROOT/<collection-id>/items.parquet               stac-geoparquet, asset hrefs relative to ROOT
    ROOT/<collection-id>/<item-id>/<item-id>.json    static items, asset hrefs relative to the item file

Items come from ``items.parquet`` (streamed in record batches) or, without it, from the static item files.
A publication in object storage (``s3://bucket/prefix``) is loaded from its ``collection.json`` and
``items.parquet`` objects, copied to a temporary folder first.
Every href that pgstac stores is relative to ROOT (the API turns it into ``{base_url}/files/{href}``);
structural links (self, root, parent, ...) are dropped because the API generates its own.
Loading upserts (``Methods.upsert``): a re-run adds no duplicates and updates changed items and collections.

Every item property of a loaded collection is registered as one of its pgstac queryables, typed from the values
(``{"type": "number"}``, ``{"type": "string", "format": "date-time"}``, ...): the API advertises them, filters and
sorts with them (a number sorts as a number), and refuses a property that no searched collection has.
Properties no longer published are unregistered; queryables that pgstac or an operator registered for all
collections (``datetime``, ...) or for several collections are left as they are.
"""

from __future__ import annotations

import json
import posixpath
import re
import tempfile
from collections.abc import Collection, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import psycopg
from pypgstac.db import PgstacDB
from pypgstac.load import Loader, Methods
from pypgstac.migrate import Migrate
from pypgstac.version import __version__ as PYPGSTAC_VERSION  # noqa: N812

from ncdc_stac.stac_arrow import iter_items
from ncdc_stac.storage import Root, open_root

Source = Literal["auto", "parquet", "json"]
URI_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")
"""RFC 3986 scheme (what ``urlsplit`` takes for one), e.g. ``https:``, ``s3:``."""
STRUCTURAL_RELS = frozenset({"self", "root", "parent", "child", "item", "items", "collection"})
"""Link relations that the API infers; stored copies would point into the static tree."""
PARQUET_NAME = "items.parquet"
DEFAULT_BATCH_SIZE = 10_000
"""Items per parquet read and per loader chunk (pypgstac's own default chunk)."""
DATETIME_PROPERTIES = frozenset(
    {"datetime", "start_datetime", "end_datetime", "created", "updated", "published", "expires", "unpublished"}
)
"""STAC timestamp fields (common metadata, timestamps extension): strings typed as ``date-time`` queryables."""


class IngestError(ValueError):
    """Bad input or a refused load; the message names the file (or database) concerned."""


@dataclass(frozen=True)
class CollectionSummary:
    """What was loaded for one collection."""

    id: str
    items: int
    source: Path | None
    """``items.parquet``, the collection folder (static items) or None when it has no items."""
    pruned: int = 0


@dataclass(frozen=True)
class IngestSummary:
    """Result of :func:`ingest`."""

    collections: tuple[CollectionSummary, ...]
    pgstac_version: str

    @property
    def items(self) -> int:
        """Items read and upserted over all collections."""
        return sum(c.items for c in self.collections)


# --- hrefs -------------------------------------------------------------------------------------------------


def is_relative_href(href: str) -> bool:
    """True for a relative reference (no scheme, no leading slash): one that is a file of the publication."""
    return not href.startswith("/") and URI_SCHEME.match(href) is None


def root_relative(href: str, base: str) -> str | None:
    """``href`` written relative to ``base`` (a folder relative to ROOT, ``.`` for ROOT) made relative to ROOT;
    None when it points outside ROOT."""
    if not is_relative_href(href):
        return href
    joined = posixpath.normpath(href if base == "." else posixpath.join(base, href))
    return None if joined == ".." or joined.startswith("../") else joined


def _rebased(href: str, base: str, where: str, what: str, *names: object) -> str:
    """:func:`root_relative` or an error naming ``where`` and ``what`` (formatted with ``names`` only then)."""
    relative = root_relative(href, base)
    if relative is None:
        raise IngestError(f"{where}: {what.format(*names)}: href {href!r} points outside the publication root")
    return relative


def _rebase(obj: dict[str, Any], base: str, where: str) -> dict[str, Any]:
    """Asset and link hrefs of an item or collection made relative to ROOT; structural links dropped."""
    assets = obj.get("assets")
    if assets is not None:
        if not isinstance(assets, dict):
            raise IngestError(f"{where}: 'assets' must be an object")
        for key, asset in assets.items():
            if not isinstance(asset, dict) or not isinstance(asset.get("href"), str):
                raise IngestError(f"{where}: asset {key!r} has no href")
            asset["href"] = _rebased(asset["href"], base, where, "asset {!r}", key)
            for name, alternate in (asset.get("alternate") or {}).items():
                if isinstance(alternate, dict) and isinstance(alternate.get("href"), str):
                    alternate["href"] = _rebased(alternate["href"], base, where, "asset {!r} ({})", key, name)
    links = obj.get("links") or []
    if not isinstance(links, list):
        raise IngestError(f"{where}: 'links' must be a list")
    kept = []
    for link in links:
        if not isinstance(link, dict) or not isinstance(link.get("href"), str):
            raise IngestError(f"{where}: a link has no href")
        if link.get("rel") in STRUCTURAL_RELS:
            continue
        kept.append({**link, "href": _rebased(link["href"], base, where, "link {!r}", link.get("rel"))})
    obj["links"] = kept
    return obj


# --- reading -----------------------------------------------------------------------------------------------


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise IngestError(f"{path}: cannot read: {err.strerror or err}") from err
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise IngestError(f"{path}: not valid JSON: {err}") from err
    if not isinstance(data, dict):
        raise IngestError(f"{path}: expected a JSON object")
    return data


def find_collections(root: Path) -> list[Path]:
    """``ROOT/<collection-id>/collection.json`` files, sorted by collection id."""
    if not root.is_dir():
        raise IngestError(f"{root}: publication root is not a directory")
    return sorted(root.glob("*/collection.json"))


def read_collection(path: Path) -> dict[str, Any]:
    """A published collection, checked, with hrefs made relative to ROOT."""
    collection = _read_json(path)
    folder = path.parent.name
    if collection.get("type") != "Collection":
        raise IngestError(f"{path}: 'type' must be 'Collection', found {collection.get('type')!r}")
    if collection.get("id") != folder:
        raise IngestError(f"{path}: collection id {collection.get('id')!r} differs from its folder {folder!r}")
    extent = collection.get("extent")
    if not isinstance(extent, dict) or "spatial" not in extent or "temporal" not in extent:
        raise IngestError(f"{path}: 'extent' must have 'spatial' and 'temporal'")
    return _rebase(collection, folder, str(path))


def iter_parquet_items(
    path: Path, batch_size: int = DEFAULT_BATCH_SIZE, *, ewkb: bool = False
) -> Iterator[dict[str, Any]]:
    """Checked items of ``<collection-id>/items.parquet``, streamed one record batch at a time; hrefs kept.

    ``ewkb``: geometries as hex EWKB, what :class:`GeoParquetLoader` loads without a GeoJSON round trip.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
        for row, item in enumerate(iter_items(parquet.iter_batches(batch_size=batch_size), ewkb=ewkb)):
            item.setdefault("properties", {}).setdefault("datetime", None)
            item.setdefault("type", "Feature")
            where = f"{path} (row {row})"
            yield check_item(_rebase(item, ".", where), path.parent.name, where, ewkb=ewkb)
    except (OSError, pa.ArrowException) as err:
        raise IngestError(f"{path}: cannot read stac-geoparquet: {err}") from err


def iter_json_items(collection_dir: Path) -> Iterator[dict[str, Any]]:
    """Checked static items ``<collection-dir>/<item-id>/<item-id>.json``, hrefs made relative to ROOT."""
    for folder in sorted(p for p in collection_dir.iterdir() if p.is_dir()):
        path = folder / f"{folder.name}.json"
        if not path.is_file():
            continue
        item = _read_json(path)
        if item.get("id") != folder.name:
            raise IngestError(f"{path}: item id {item.get('id')!r} differs from its file name")
        yield check_item(
            _rebase(item, f"{collection_dir.name}/{folder.name}", str(path)), collection_dir.name, str(path)
        )


def check_item(item: dict[str, Any], collection_id: str, where: str, *, ewkb: bool = False) -> dict[str, Any]:
    """The checks pgstac's loader needs (its own errors do not say which item failed); ``ewkb``: the geometry
    is a hex EWKB string (:func:`iter_parquet_items`), else GeoJSON."""
    if item.get("type") != "Feature":
        raise IngestError(f"{where}: 'type' must be 'Feature', found {item.get('type')!r}")
    if not isinstance(item.get("id"), str) or not item["id"]:
        raise IngestError(f"{where}: item has no id")
    collection = item.setdefault("collection", collection_id)
    if collection != collection_id:
        raise IngestError(f"{where}: item {item['id']!r} names collection {collection!r}, expected {collection_id!r}")
    geometry = item.get("geometry")
    if not (isinstance(geometry, str) if ewkb else isinstance(geometry, dict) and "type" in geometry):
        raise IngestError(f"{where}: item {item['id']!r} has no geometry (pgstac needs one)")
    properties = item.get("properties")
    if not isinstance(properties, dict):
        raise IngestError(f"{where}: item {item['id']!r} has no properties")
    if properties.get("datetime") is None and not (properties.get("start_datetime") and properties.get("end_datetime")):
        raise IngestError(f"{where}: item {item['id']!r} needs 'datetime' or 'start_datetime' + 'end_datetime'")
    return item


# --- loading -----------------------------------------------------------------------------------------------


@contextmanager
def open_pgstac(dsn: str) -> Iterator[PgstacDB]:
    """A pypgstac database handle whose pool and connection are closed on exit."""
    db = PgstacDB(dsn=dsn)
    try:
        pool = db.get_pool()
        db.connect()
    except psycopg.Error as err:
        raise IngestError(f"cannot connect to the pgstac database: {err}") from err
    try:
        yield db
    finally:
        db.disconnect()
        pool.close()


def _ensure_schema(db: PgstacDB, migrate: bool) -> str:
    """The database's pgstac version, after migrating it if asked; refuses a version the loader cannot use."""
    if migrate:
        try:
            Migrate(db).run_migration()
        except Exception as err:  # pypgstac raises bare Exception as well as psycopg errors
            raise IngestError(f"pgstac migration failed: {err}") from err
    version = db.version
    if version is None:
        raise IngestError("the database has no pgstac schema: run `pypgstac migrate` or ingest with migrate=True")
    if version != "unreleased" and version.split(".")[:2] != PYPGSTAC_VERSION.split(".")[:2]:
        raise IngestError(
            f"the database has pgstac {version} but pypgstac is {PYPGSTAC_VERSION}: migrate the database first"
        )
    return version


def _items_source(collection_dir: Path, source: Source) -> Path | None:
    parquet = collection_dir / PARQUET_NAME
    if source == "parquet" or (source == "auto" and parquet.is_file()):
        if not parquet.is_file():
            raise IngestError(f"{parquet}: not found")
        return parquet
    has_static = any((p / f"{p.name}.json").is_file() for p in collection_dir.iterdir() if p.is_dir())
    return collection_dir if has_static else None


JSON_TYPES: dict[type, str] = {bool: "boolean", int: "integer", float: "number", str: "string", list: "array"}
"""JSON type of a parsed value's Python type (anything else: object)."""


class _Tally:
    """Collects item ids and property types as the loader pulls items; refuses duplicate ids (an upsert batch
    cannot hold two)."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.ids: set[str] = set()
        self.seen: set[tuple[str, type]] = set()
        """(property name, Python type of a value) pairs."""

    def __call__(self, items: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for item in items:
            if item["id"] in self.ids:
                raise IngestError(f"{self.where}: item id {item['id']!r} appears twice")
            self.ids.add(item["id"])
            properties = item["properties"]
            self.seen.update(zip(properties, map(type, properties.values()), strict=True))
            yield item

    def queryables(self) -> dict[str, dict[str, Any]]:
        """JSON Schema of each property seen: its type when the values agree (integers and numbers: number)."""
        types: dict[str, set[str]] = {}
        for name, kind in self.seen:
            if kind is not type(None):
                types.setdefault(name, set()).add(JSON_TYPES.get(kind, "object"))
        return {name: queryable_definition(name, kinds) for name, kinds in sorted(types.items())}


def queryable_definition(name: str, kinds: Collection[str]) -> dict[str, Any]:
    """The queryable schema of an item property whose values have the JSON types ``kinds``."""
    kinds = set(kinds)
    if kinds == {"string"} and name in DATETIME_PROPERTIES:
        return {"type": "string", "format": "date-time"}
    if kinds == {"integer"}:
        return {"type": "integer"}
    if kinds <= {"integer", "number"}:
        return {"type": "number"}
    return {"type": kinds.pop()} if len(kinds) == 1 else {}


class GeoParquetLoader(Loader):
    """pypgstac's loader that also takes items whose geometry is hex EWKB already.

    stac-geoparquet stores WKB: encoding it in bulk with shapely (GEOS) spares the per-item GeoJSON round trip
    and plpygis encoding of ``Loader.format_item``, which cost more than the rest of the load; the EWKB is the
    same (``tests/test_ingest.py``). Everything else (dehydration, partitions, upserts) is pypgstac's.
    """

    def format_item(self, _item: Path | str | dict[str, Any]) -> dict[str, Any]:
        """The database row of an item; an EWKB geometry string is stored as it is."""
        if isinstance(_item, dict) and isinstance(_item.get("geometry"), str):
            row: dict[str, Any] = super().format_item({**_item, "geometry": None})
            row["geometry"] = _item["geometry"]
            return row
        return super().format_item(_item)


@contextmanager
def _naming(where: str) -> Iterator[None]:
    """Name the input when a pypgstac load step refuses it."""
    try:
        yield
    except IngestError:
        raise
    except Exception as err:  # pypgstac raises bare Exception as well as psycopg errors
        raise IngestError(f"{where}: pgstac refused the data: {err}") from err


def register_queryables(db: PgstacDB, collection_id: str, definitions: dict[str, dict[str, Any]]) -> None:
    """Make ``definitions`` the queryables of one collection (only its own rows, those for just that collection).

    A name that pgstac has for all collections (``datetime``, ...) or for several is left alone.
    """
    conn = db.connect()
    rows = conn.execute(
        "SELECT name, definition, collection_ids = ARRAY[%s]::text[] FROM pgstac.queryables"
        " WHERE collection_ids IS NULL OR collection_ids && ARRAY[%s]::text[]",
        [collection_id, collection_id],
    ).fetchall()
    own = {name: definition for name, definition, is_own in rows if is_own}
    wanted = {name: d for name, d in definitions.items() if name not in {r[0] for r in rows if not r[2]}}
    stale = sorted(name for name, definition in own.items() if wanted.get(name) != definition)
    new = {name: d for name, d in wanted.items() if own.get(name) != d}
    if stale:
        conn.execute(
            "DELETE FROM pgstac.queryables WHERE collection_ids = ARRAY[%s]::text[] AND name = ANY(%s)",
            [collection_id, stale],
        )
    if new:
        conn.execute(
            "INSERT INTO pgstac.queryables (name, definition, collection_ids)"
            " SELECT key, value, ARRAY[%s]::text[] FROM jsonb_each(%s::text::jsonb)",
            [collection_id, json.dumps(new)],
        )


def _prune(db: PgstacDB, collection_id: str, keep: set[str]) -> int:
    """Delete the collection's items that are no longer published."""
    conn = db.connect()
    cursor = conn.execute(
        "DELETE FROM items WHERE collection = %s AND NOT (id = ANY(%s))", [collection_id, sorted(keep)]
    )
    return cursor.rowcount


@contextmanager
def _local(root: Root | Path | str) -> Iterator[Path]:
    """A local folder of the publication: itself, or the collections and stac-geoparquet of an object store."""
    source = open_root(root)
    if source.local is not None:
        yield source.local
        return
    with tempfile.TemporaryDirectory(prefix="ncdc-ingest-") as scratch:
        for cid in source.collection_folders():
            folder = Path(scratch) / cid
            folder.mkdir()
            for name in ("collection.json", PARQUET_NAME):
                if source.exists(f"{cid}/{name}"):
                    (folder / name).write_bytes(source.read(f"{cid}/{name}"))
        yield Path(scratch)


def ingest(
    root: Root | Path | str,
    dsn: str,
    *,
    collections: Collection[str] | None = None,
    source: Source = "auto",
    batch_size: int = DEFAULT_BATCH_SIZE,
    prune: bool = False,
    migrate: bool = False,
) -> IngestSummary:
    """Upsert the publication under ``root`` into the pgstac database at ``dsn``.

    ``collections`` limits the load to those ids; ``source`` picks ``items.parquet`` or the static item
    JSON (``auto``: parquet when present); ``prune`` deletes items of a loaded collection that are no longer
    published; ``migrate`` installs or upgrades the pgstac schema first. Raises :class:`IngestError`.
    """
    with _local(root) as folder:
        return _ingest(folder, dsn, collections, source, batch_size, prune, migrate)


def _ingest(
    root: Path,
    dsn: str,
    collections: Collection[str] | None,
    source: Source,
    batch_size: int,
    prune: bool,
    migrate: bool,
) -> IngestSummary:
    paths = find_collections(root)
    if collections is not None:
        unknown = sorted(set(collections) - {p.parent.name for p in paths})
        if unknown:
            raise IngestError(f"{root}: no published collection {', '.join(map(repr, unknown))}")
        paths = [p for p in paths if p.parent.name in collections]
    loaded = [(path, read_collection(path)) for path in paths]  # check every collection before writing

    summaries: list[CollectionSummary] = []
    with open_pgstac(dsn) as db:
        version = _ensure_schema(db, migrate)
        loader = GeoParquetLoader(db)
        for path, collection in loaded:
            cid = collection["id"]
            with _naming(str(path)):
                loader.load_collections(iter([collection]), Methods.upsert)
            items_from = _items_source(path.parent, source)
            if items_from is None:
                pruned = 0
                if prune:  # its items are gone, and with them its queryables
                    pruned = _prune(db, cid, set())
                    register_queryables(db, cid, {})
                summaries.append(CollectionSummary(cid, 0, None, pruned))
                continue
            items = (
                iter_parquet_items(items_from, batch_size, ewkb=True)
                if items_from.name == PARQUET_NAME and items_from.is_file()
                else iter_json_items(items_from)
            )
            tally = _Tally(str(items_from))
            with _naming(str(items_from)):
                loader.load_items(tally(items), insert_mode=Methods.upsert, chunksize=batch_size)
                register_queryables(db, cid, tally.queryables())
            pruned = _prune(db, cid, tally.ids) if prune else 0
            summaries.append(CollectionSummary(cid, len(tally.ids), items_from, pruned))
    return IngestSummary(tuple(summaries), version)
