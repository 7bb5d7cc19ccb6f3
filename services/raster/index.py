"""Which items of a collection a mosaic, a time series or a time-step list needs: the search seam.

:class:`ItemIndex` is what the raster services ask; :class:`DuckDBItemIndex` answers from the DuckDB
views over ``<root>/<collection>/items.parquet`` (the embedded backend), and
:class:`services.raster.pgstac_index.PgstacItemIndex` from pgstac's ``search()`` (``NCDC_STAC_BACKEND=pgstac``).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

import duckdb
from cachetools import LRUCache

from services.api.cql2_sql import quote_ident
from services.api.store import CollectionEntry, DuckDBStore
from services.raster.publication import BBox, NotFoundError
from services.raster.timeline import Period

T = TypeVar("T")


@dataclass(frozen=True)
class IndexedItem:
    """An item found by the index: its id, time (start = end for an instant) and bbox."""

    id: str
    start: datetime | None
    end: datetime | None
    bbox: BBox

    def intersects(self, bbox: BBox) -> bool:
        return (
            self.bbox[0] <= bbox[2] and self.bbox[2] >= bbox[0] and self.bbox[1] <= bbox[3] and self.bbox[3] >= bbox[1]
        )


class IndexUnavailableError(RuntimeError):
    """The index cannot be asked now (its database is down): 503."""


class ItemIndex(Protocol):
    """Search over the items of the published collections."""

    def search(
        self,
        collection_id: str,
        assets: Sequence[str],
        period: Period | None = None,
        bbox: BBox | None = None,
        newest_first: bool = True,
        limit: int | None = None,
    ) -> list[IndexedItem]:
        """Items having all ``assets``, intersecting ``period`` and ``bbox``, ordered by start time, then id."""
        ...

    def periods(self, collection_id: str, assets: Sequence[str]) -> list[tuple[datetime, datetime]]:
        """The distinct (start, end) of the items having ``assets``, oldest first."""
        ...

    def extent(self, collection_id: str, assets: Sequence[str], period: Period | None = None) -> BBox | None:
        """Union of the bboxes of the matching items."""
        ...

    def asset_counts(self, collection_id: str, assets: Sequence[str]) -> dict[str, int]:
        """How many items have each of ``assets``."""
        ...

    def cached(self, collection_id: str, key: tuple[Any, ...], compute: Callable[[], T]) -> T:
        """``compute()``, remembered until the collection's items change."""
        ...


def _utc(epoch_ms: Any) -> datetime | None:
    return datetime.fromtimestamp(epoch_ms / 1000, UTC) if epoch_ms is not None else None


def newest_first_key(item: IndexedItem) -> tuple[float, str]:
    """Sort key: newest start first, items without a time last, then by id."""
    return (-item.start.timestamp() if item.start else math.inf), item.id


def union_bbox(boxes: Iterable[BBox]) -> BBox | None:
    """The bbox of all ``boxes`` (``None`` for none)."""
    listed = list(boxes)
    if not listed:
        return None
    return min(b[0] for b in listed), min(b[1] for b in listed), max(b[2] for b in listed), max(b[3] for b in listed)


class DuckDBItemIndex:
    """:class:`ItemIndex` over the store's stac-geoparquet views.

    The items of a (collection, assets, period) are queried once and kept, with their bboxes, until
    ``items.parquet`` changes; tiles and points filter them by bbox in memory.
    """

    def __init__(self, store: DuckDBStore) -> None:
        self.store = store
        self._cache: LRUCache[tuple[Any, ...], tuple[Hashable | None, Any]] = LRUCache(maxsize=1024)
        self._lock = threading.Lock()

    def _entry(self, collection_id: str, assets: Sequence[str] = ()) -> CollectionEntry:
        entry = self.store.collections.get(collection_id)
        if entry is None or entry.view is None:
            raise NotFoundError(f"no items in collection {collection_id!r}")
        known = entry.document.get("item_assets") or {}
        for asset in assets:
            if asset not in known:
                raise NotFoundError(f"no asset {asset!r} in collection {collection_id!r}")
        return entry

    def cached(self, collection_id: str, key: tuple[Any, ...], compute: Callable[[], T]) -> T:
        entry = self._entry(collection_id)
        stamp = self.store.root.stamp(f"{entry.folder}/items.parquet")
        full_key = (collection_id, *key)
        with self._lock:
            hit = self._cache.get(full_key)
        if hit is not None and hit[0] == stamp:
            return hit[1]
        value = compute()
        with self._lock:
            self._cache[full_key] = (stamp, value)
        return value

    @staticmethod
    def _times(entry: CollectionEntry) -> tuple[str, str]:
        def first(*names: str) -> str:
            present = [quote_ident(n) for n in names if n in entry.columns]
            return f"coalesce({', '.join(present)})" if present else "CAST(NULL AS TIMESTAMPTZ)"

        return first("start_datetime", "datetime"), first("end_datetime", "datetime")

    def _rows(self, sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
        cursor = self.store.cursor()
        try:
            return cursor.execute(sql, params).fetchall()
        except duckdb.Error as err:
            raise NotFoundError(f"the collection's items cannot be searched: {err}") from err
        finally:
            cursor.close()

    def _query(self, entry: CollectionEntry, assets: Sequence[str], period: Period | None) -> list[IndexedItem]:
        start, end = self._times(entry)
        clauses = [f"assets.{quote_ident(asset)} IS NOT NULL" for asset in assets] or ["true"]
        params: list[Any] = []
        if period is not None and period.end is not None:
            clauses.append(f"{start} <= CAST(? AS TIMESTAMPTZ)")
            params.append(period.end.isoformat())
        if period is not None and period.start is not None:
            clauses.append(f"{end} >= CAST(? AS TIMESTAMPTZ)")
            params.append(period.start.isoformat())
        sql = (
            f"SELECT id, epoch_ms({start}), epoch_ms({end}), bbox.xmin, bbox.ymin, bbox.xmax, bbox.ymax "
            f"FROM {entry.view} WHERE {' AND '.join(clauses)} ORDER BY {start} NULLS LAST, id"
        )
        return [
            IndexedItem(str(row[0]), _utc(row[1]), _utc(row[2]), (row[3], row[4], row[5], row[6]))
            for row in self._rows(sql, params)
        ]

    def _matching(self, collection_id: str, assets: Sequence[str], period: Period | None) -> list[IndexedItem]:
        entry = self._entry(collection_id, assets)
        return self.cached(collection_id, ("items", tuple(assets), period), lambda: self._query(entry, assets, period))

    def search(
        self,
        collection_id: str,
        assets: Sequence[str],
        period: Period | None = None,
        bbox: BBox | None = None,
        newest_first: bool = True,
        limit: int | None = None,
    ) -> list[IndexedItem]:
        found = self._matching(collection_id, assets, period)
        if bbox is not None:
            found = [item for item in found if item.intersects(bbox)]
        if newest_first:
            found = sorted(found, key=newest_first_key)
        return found[:limit] if limit is not None else list(found)

    def periods(self, collection_id: str, assets: Sequence[str]) -> list[tuple[datetime, datetime]]:
        found = self._matching(collection_id, assets, None)
        return sorted({(item.start, item.end) for item in found if item.start is not None and item.end is not None})

    def extent(self, collection_id: str, assets: Sequence[str], period: Period | None = None) -> BBox | None:
        return union_bbox(item.bbox for item in self._matching(collection_id, assets, period))

    def asset_counts(self, collection_id: str, assets: Sequence[str]) -> dict[str, int]:
        entry = self._entry(collection_id, assets)

        def compute() -> dict[str, int]:
            if not assets:
                return {}
            counts = ", ".join(f"count(assets.{quote_ident(asset)})" for asset in assets)
            row = self._rows(f"SELECT {counts} FROM {entry.view}", [])[0]
            return {asset: int(n) for asset, n in zip(assets, row, strict=True)}

        return dict(self.cached(collection_id, ("counts", tuple(assets)), compute))
