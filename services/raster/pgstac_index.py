""":class:`~services.raster.index.ItemIndex` over pgstac: mosaics, time series and time steps follow the database.

With ``NCDC_STAC_BACKEND=pgstac`` the items a mosaic draws are the ones pgstac's ``search()`` function finds
(what was ingested, or added through the transactions API), exactly as titiler-pgstac's mosaic backend asks
pgstac; the tiles themselves are still read from the published items and files (``Publication``), so only
published assets can ever be opened. Results are kept for ``ttl`` seconds (pgstac has no cheap change stamp).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

import psycopg
from cachetools import TTLCache
from psycopg_pool import ConnectionPool, PoolTimeout

from services.raster.index import IndexedItem, IndexUnavailableError, newest_first_key, union_bbox
from services.raster.publication import BBox, NotFoundError
from services.raster.timeline import Period, iso

T = TypeVar("T")
PAGE_SIZE = 10_000
FIELDS = {
    "include": ["id", "bbox", "properties.datetime", "properties.start_datetime", "properties.end_datetime", "assets"],
    "exclude": ["links"],
}


def _time(value: Any) -> datetime | None:
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")) if value else None


def _indexed(feature: dict[str, Any]) -> tuple[IndexedItem, frozenset[str]]:
    props = feature.get("properties") or {}
    start = _time(props.get("start_datetime") or props.get("datetime"))
    end = _time(props.get("end_datetime") or props.get("datetime"))
    box = feature.get("bbox") or [0.0, 0.0, 0.0, 0.0]
    bbox = (box[0], box[1], box[3], box[4]) if len(box) == 6 else (box[0], box[1], box[2], box[3])
    return IndexedItem(str(feature["id"]), start, end, bbox), frozenset(feature.get("assets") or {})


def _next_token(page: dict[str, Any]) -> str | None:
    """The ``token`` of the page's ``next`` link (pgstac pages by keyset tokens)."""
    for link in page.get("links") or []:
        if link.get("rel") == "next":
            return next(iter(parse_qs(urlsplit(str(link.get("href"))).query).get("token") or []), None)
    return None


class PgstacItemIndex:
    """Items of a collection as pgstac's ``search()`` returns them, filtered by assets, time and bbox."""

    def __init__(self, dsn: str, ttl: float = 30.0, max_connections: int = 4, page_size: int = PAGE_SIZE) -> None:
        self.page_size = page_size
        self.pool = ConnectionPool(
            dsn,
            min_size=0,
            max_size=max_connections,
            open=False,
            timeout=10,
            kwargs={"autocommit": True, "options": "-c search_path=pgstac,public -c statement_timeout=30000"},
        )
        self._cache: TTLCache[tuple[Any, ...], Any] = TTLCache(maxsize=1024, ttl=ttl)
        self._lock = threading.Lock()

    def __enter__(self) -> PgstacItemIndex:
        self.pool.open()
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.pool.close()

    def cached(self, collection_id: str, key: tuple[Any, ...], compute: Callable[[], T]) -> T:
        full_key = (collection_id, *key)
        with self._lock:
            if full_key in self._cache:
                return self._cache[full_key]
        value = compute()
        with self._lock:
            self._cache[full_key] = value
        return value

    def _search(self, collection_id: str, period: Period | None) -> list[tuple[IndexedItem, frozenset[str]]]:
        body: dict[str, Any] = {
            "collections": [collection_id],
            "limit": self.page_size,
            "fields": FIELDS,
            "sortby": [{"field": "datetime", "direction": "asc"}, {"field": "id", "direction": "asc"}],
            "conf": {"context": "off"},
        }
        if period is not None and (period.start or period.end):
            start = iso(period.start) if period.start else ".."
            end = iso(period.end) if period.end else ".."
            body["datetime"] = f"{start}/{end}"
        try:
            return self._pages(collection_id, body)
        except (psycopg.OperationalError, PoolTimeout) as err:
            raise IndexUnavailableError("the pgstac database cannot be reached") from err

    def _pages(self, collection_id: str, body: dict[str, Any]) -> list[tuple[IndexedItem, frozenset[str]]]:
        found: list[tuple[IndexedItem, frozenset[str]]] = []
        with self.pool.connection() as conn:
            if conn.execute("SELECT 1 FROM pgstac.collections WHERE id = %s", [collection_id]).fetchone() is None:
                raise NotFoundError(f"no collection {collection_id!r}")
            while True:
                row = conn.execute("SELECT pgstac.search(%s::jsonb)", [json.dumps(body)]).fetchone()
                page = row[0] if row else {}
                found.extend(_indexed(feature) for feature in page.get("features") or [])
                token = _next_token(page)
                if token is None:
                    return found
                body["token"] = token

    def _matching(self, collection_id: str, assets: Sequence[str], period: Period | None) -> list[IndexedItem]:
        def compute() -> list[IndexedItem]:
            return [item for item, keys in self._search(collection_id, period) if keys.issuperset(assets)]

        return self.cached(collection_id, ("items", tuple(assets), period), compute)

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
        def compute() -> dict[str, int]:
            rows = self._search(collection_id, None)
            return {asset: sum(asset in keys for _, keys in rows) for asset in assets}

        return dict(self.cached(collection_id, ("counts", tuple(assets)), compute))
