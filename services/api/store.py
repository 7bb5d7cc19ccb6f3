"""The publication as the DuckDB backend sees it: collection documents and stac-geoparquet views.

One in-process DuckDB database per application, with the spatial extension loaded from the
``duckdb_extension_spatial`` wheel (nothing is downloaded). Each collection with an
``items.parquet`` gets a view; requests use their own cursor (:meth:`DuckDBStore.cursor`). Over an
``s3://`` root (:mod:`ncdc_stac.storage`) the views read the files with the httpfs extension (from the
``duckdb_extension_httpfs`` wheel) and a secret holding the root's endpoint and credentials.

One item by id is read from the static item document publish writes beside items.parquet
(:meth:`DuckDBStore.item_document`): one small file, where the parquet row costs decoding its whole row group.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import duckdb
import orjson

from ncdc_stac.storage import Root, is_name, open_root
from services.api.cql2_sql import quote_ident

if TYPE_CHECKING:
    from ncdc_stac.settings import Settings

log = logging.getLogger(__name__)

RESIDENT_SCHEMA = "resident"
"""Name prefix of the tables holding resident collections' items."""
ROW = quote_ident("ncdc_stac:row")
"""Column of a collection's rows view (:attr:`CollectionEntry.rows`): an item's position in its items.parquet."""
LATE_MATERIALIZATION_ROWS = 10_001
"""Pages (``LIMIT``) up to this many rows are sorted on their keys alone and read in full afterwards (DuckDB's
late materialization; its default, 50, misses a 50-item page and its look-ahead row)."""
ZH = "zh-Hans"
I18N_FIELD = "ncdc:i18n"


def extension_path(name: str) -> Path:
    """The DuckDB extension ``name`` shipped in the ``duckdb-extension-<name>`` wheel for this DuckDB."""
    from importlib import import_module

    module = import_module(f"duckdb_extension_{name}")
    package = Path(module.__file__ or "").parent / "extensions"
    path = package / f"v{duckdb.__version__}" / f"{name}.duckdb_extension"
    if not path.is_file():
        found = sorted(package.glob(f"*/{name}.duckdb_extension"))
        if not found:
            raise FileNotFoundError(f"no {name}.duckdb_extension under {package}")
        path = found[-1]
    return path


def spatial_extension_path() -> Path:
    """The spatial extension shipped in the ``duckdb-extension-spatial`` wheel for this DuckDB."""
    return extension_path("spatial")


def _text(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []


def search_text(document: Mapping[str, Any]) -> str:
    """Case-folded text that free-text search matches: id, titles, descriptions, keywords (en + zh)."""
    zh = document.get(I18N_FIELD, {}).get(ZH, {}) if isinstance(document.get(I18N_FIELD), dict) else {}
    parts = [
        *_text(document.get("id")),
        *_text(document.get("title")),
        *_text(document.get("description")),
        *_text(document.get("keywords")),
        *_text(zh.get("title")),
        *_text(zh.get("description")),
        *_text(zh.get("keywords")),
    ]
    return "\n".join(parts).casefold()


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


@dataclass(frozen=True)
class CollectionEntry:
    """One published collection."""

    id: str
    folder: str
    """Name of its folder under the publication root (relative hrefs in the document start there)."""
    document: Mapping[str, Any]
    """The collection.json as published (hrefs relative to its folder)."""
    view: str | None
    """Quoted name of the DuckDB view over its items.parquet, ``None`` if it has no items."""
    rows: str | None
    """Quoted name of the same items with their :data:`ROW` column, to read items back by position."""
    columns: Mapping[str, str]
    """Column name -> DuckDB type of the items.parquet."""
    count: int
    text: str
    """Case-folded searchable text (see :func:`search_text`)."""
    resident: bool = False
    """Whether the items are held decoded in DuckDB's memory (:meth:`DuckDBStore.reload`), not read from files."""
    complete: frozenset[str] = frozenset()
    """Facts about every item that let searches use plain, prunable columns: ``datetime`` (no item lacks it),
    ``ranges`` (every item has start/end_datetime, and its datetime, if any, lies between them)."""

    @property
    def bbox(self) -> list[float] | None:
        """The overall spatial extent (first bbox) of the collection."""
        try:
            box = self.document["extent"]["spatial"]["bbox"][0]
            return [float(v) for v in box]
        except (KeyError, IndexError, TypeError, ValueError):
            return None

    @property
    def interval(self) -> tuple[datetime | None, datetime | None]:
        """The overall temporal extent (first interval); ``None`` for an open end."""
        try:
            start, end = self.document["extent"]["temporal"]["interval"][0]
        except (KeyError, IndexError, TypeError, ValueError):
            return None, None
        return _parse_time(start), _parse_time(end)


class DuckDBStore:
    """The DuckDB connection and the collections of one publication root."""

    def __init__(self, root: Root | Path | str, memory_limit: int | None = None, resident_items: int = 0) -> None:
        self.root = open_root(root)
        self.memory_limit = memory_limit
        """Bytes of DuckDB's buffer pool (``memory_limit``); none: DuckDB's default, 80% of RAM."""
        self.resident_items = resident_items
        """Items of the smallest collections held decoded in DuckDB's memory (see :meth:`reload`)."""
        self.collections: Mapping[str, CollectionEntry] = MappingProxyType({})
        self._connection: duckdb.DuckDBPyConnection | None = None
        self._lock = threading.Lock()

    @classmethod
    def open(cls, root: Root | Path | str, memory_limit: int | None = None, resident_items: int = 0) -> DuckDBStore:
        """Connect an in-memory database, load spatial and read the publication."""
        store = cls(root, memory_limit, resident_items)
        store.connect()
        return store

    @classmethod
    def from_settings(cls, settings: Settings) -> DuckDBStore:
        """:meth:`open` the publication of ``settings`` within its DuckDB bounds."""
        return cls.open(settings.publication_root(), int(settings.duckdb_memory_limit), settings.duckdb_resident_items)

    def connect(self) -> None:
        """Open the database (again, after :meth:`close`) and read the publication."""
        with self._lock:
            if self._connection is not None:
                return
            config: dict[str, str | bool | int | float | list[str]] = {}
            if self.memory_limit is not None:
                config["memory_limit"] = f"{int(self.memory_limit)}B"
            connection = duckdb.connect(":memory:", config=config)
            try:
                connection.execute(f"LOAD '{spatial_extension_path().as_posix()}'")
                for setting in (
                    "SET GLOBAL TimeZone = 'UTC'",
                    "SET GLOBAL parquet_metadata_cache = true",
                    f"SET GLOBAL late_materialization_max_rows = {LATE_MATERIALIZATION_ROWS}",
                    "SET GLOBAL autoinstall_known_extensions = false",
                    "SET GLOBAL autoload_known_extensions = false",
                ):
                    connection.execute(setting)
                secret = self.root.duckdb_secret()
                if secret is not None:
                    connection.execute(f"LOAD '{extension_path('httpfs').as_posix()}'")
                    connection.execute(secret)
            except Exception:
                connection.close()
                raise
            self._connection = connection
        self.reload()

    @property
    def connected(self) -> bool:
        """Whether the database is open."""
        return self._connection is not None

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """A cursor of its own for one request (DuckDB connections are not shared across threads)."""
        connection = self._connection
        if connection is None:
            raise RuntimeError("the DuckDB store is closed")
        return connection.cursor()

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None

    def item_document(self, entry: CollectionEntry, item_id: str) -> dict[str, Any] | None:
        """The static item ``<folder>/<item_id>/<item_id>.json`` of a collection with items.parquet (hrefs relative
        to that item folder), ``None`` when the publication has no such document for this item."""
        if entry.view is None or not is_name(item_id):
            return None
        try:
            document = orjson.loads(self.root.read(f"{entry.folder}/{item_id}/{item_id}.json"))
        except (OSError, ValueError):
            return None
        if not isinstance(document, dict) or document.get("id") != item_id or document.get("collection") != entry.id:
            return None
        return document

    def reload(self) -> None:
        """(Re)read collection.json files and (re)create the item views; swaps the collections atomically.

        A view reads its items.parquet at each query, decoding whole column chunks even for one row. The smallest
        collections, up to :attr:`resident_items` items in all, are decoded once into tables of DuckDB's own
        (in its buffer pool) and their views read those instead: the same rows, several times faster.
        """
        with self._lock:
            entries: dict[str, CollectionEntry] = {}
            cursor = self.cursor()
            for folder in self.root.collection_folders():
                try:
                    entry = self._load(cursor, folder)
                except (OSError, ValueError, duckdb.Error) as err:
                    log.error("skipping %s/collection.json: %s", folder, err)
                    continue
                if entry.id in entries:
                    log.error("skipping %s/collection.json: duplicate collection id %r", folder, entry.id)
                    continue
                entries[entry.id] = entry
            self._make_resident(cursor, entries)
            self.collections = MappingProxyType(entries)
            log.info("publication %s: %d collections", self.root, len(entries))

    def _make_resident(self, cursor: duckdb.DuckDBPyConnection, entries: dict[str, CollectionEntry]) -> None:
        """Point the views of the smallest collections at resident tables; drop the tables no view uses."""
        budget, kept = self.resident_items, set()
        for entry in sorted((e for e in entries.values() if e.view), key=lambda e: (e.count, e.id)):
            if entry.count > budget:
                break
            table = quote_ident(f"{RESIDENT_SCHEMA}/{entry.folder}")
            try:
                cursor.execute(f"CREATE OR REPLACE TABLE {table} AS SELECT * FROM {entry.rows}")
                cursor.execute(f"CREATE OR REPLACE VIEW {entry.view} AS SELECT * EXCLUDE ({ROW}) FROM {table}")
                cursor.execute(f"CREATE OR REPLACE VIEW {entry.rows} AS SELECT * FROM {table}")
            except duckdb.Error as err:  # e.g. out of memory: the view keeps reading the file
                log.warning("collection %s is read from its files: %s", entry.id, err)
                continue
            budget -= entry.count
            kept.add(f"{RESIDENT_SCHEMA}/{entry.folder}")
            entries[entry.id] = replace(entry, resident=True)
        for (name,) in cursor.execute("SELECT table_name FROM duckdb_tables()").fetchall():
            if name.startswith(f"{RESIDENT_SCHEMA}/") and name not in kept:
                cursor.execute(f"DROP TABLE {quote_ident(name)}")

    def _load(self, cursor: duckdb.DuckDBPyConnection, folder: str) -> CollectionEntry:
        document = json.loads(self.root.read(f"{folder}/collection.json").decode("utf-8"))
        if not isinstance(document, dict) or not isinstance(document.get("id"), str):
            raise ValueError("not a STAC Collection (no id)")
        parquet = f"{folder}/items.parquet"
        view, rows, columns, count, complete = None, None, {}, 0, frozenset[str]()
        if self.root.is_file(parquet):
            view, rows = quote_ident(f"items/{folder}"), quote_ident(f"rows/{folder}")
            literal = "'" + self.root.duckdb_path(parquet).replace("'", "''") + "'"
            cursor.execute(f"CREATE OR REPLACE VIEW {view} AS SELECT * FROM read_parquet({literal})")
            cursor.execute(
                f"CREATE OR REPLACE VIEW {rows} AS SELECT * RENAME (file_row_number AS {ROW}) "
                f"FROM read_parquet({literal}, file_row_number = true)"
            )
            columns = {str(row[0]): str(row[1]) for row in cursor.execute(f"DESCRIBE {view}").fetchall()}
            count, complete = _census(cursor, view, columns)
        return CollectionEntry(
            id=document["id"],
            folder=folder,
            document=document,
            view=view,
            rows=rows,
            columns=MappingProxyType(columns),
            count=count,
            text=search_text(document),
            complete=complete,
        )


def _census(cursor: duckdb.DuckDBPyConnection, view: str, columns: Mapping[str, str]) -> tuple[int, frozenset[str]]:
    """Item count and the :attr:`CollectionEntry.complete` facts of a view, in one scan of its time columns."""
    checks = {}
    if "datetime" in columns:
        checks["datetime"] = '"datetime" IS NULL'
    if {"datetime", "start_datetime", "end_datetime"} <= set(columns):
        checks["ranges"] = (
            '"start_datetime" IS NULL OR "end_datetime" IS NULL OR "datetime" < "start_datetime"'
            ' OR "datetime" > "end_datetime"'
        )
    counts = ", ".join(f"count(*) FILTER (WHERE {condition})" for condition in checks.values())
    row = cursor.execute(f"SELECT count(*){', ' + counts if counts else ''} FROM {view}").fetchone()
    if row is None:
        return 0, frozenset()
    return int(row[0]), frozenset(fact for fact, misses in zip(checks, row[1:], strict=True) if misses == 0)
