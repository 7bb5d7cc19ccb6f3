"""What the tiler may open: published collections, items and their asset files under the root.

Only files the publisher wrote are reachable. Ids must look like ids (no separator, no leading dot);
an asset's href is resolved against its item's folder and must stay inside the root, be a regular file
(object) with the suffix its media type calls for. Absolute hrefs, URLs, ``/vsi...`` paths and symlinks
leading out of the root are dropped, so they can never reach GDAL or DuckDB. Nothing here opens a
dataset. The root is a folder or an ``s3://`` prefix (:mod:`ncdc_stac.storage`); the checked files are
:class:`~ncdc_stac.storage.StoredFile` values naming each file for GDAL and DuckDB.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePosixPath
from types import MappingProxyType
from typing import Any, TypeVar
from urllib.parse import urlsplit

import pystac
from cachetools import LRUCache
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from catalog.items import FLATGEOBUF, GEOPARQUET
from ncdc_stac.storage import Root, StoredFile, is_name, normalized_key, open_root

COG = str(pystac.MediaType.COG)
SUFFIXES: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {COG: (".tif", ".tiff"), GEOPARQUET: (".parquet",), FLATGEOBUF: (".fgb",)}
)
"""Media types of the assets the services read, and the file suffixes each must have."""
BBox = tuple[float, float, float, float]
T = TypeVar("T")


class NotFoundError(LookupError):
    """An unknown (or invalid) collection, item or asset: 404."""


def checked_id(value: str, kind: str) -> str:
    """``value`` if it can be a published id (a single path segment, no leading dot), else :class:`NotFoundError`."""
    if not is_name(value):
        raise NotFoundError(f"no {kind} {value!r}")
    return value


@dataclass(frozen=True)
class CollectionInfo:
    """A published collection.json."""

    id: str
    document: Mapping[str, Any]

    @property
    def title(self) -> str:
        return str(self.document.get("title") or self.id)

    @property
    def renders(self) -> Mapping[str, Mapping[str, Any]]:
        """Render extension: name -> render (assets, rescale, colormap_name, nodata, ...)."""
        renders = self.document.get("renders")
        return renders if isinstance(renders, dict) else {}

    @property
    def item_assets(self) -> Mapping[str, Mapping[str, Any]]:
        assets = self.document.get("item_assets")
        return assets if isinstance(assets, dict) else {}

    def asset_keys(self, media_type: str) -> list[str]:
        """Keys of the item assets of ``media_type``."""
        return [key for key, asset in self.item_assets.items() if asset.get("type") == media_type]

    @property
    def bbox(self) -> BBox | None:
        try:
            west, south, east, north = (float(v) for v in self.document["extent"]["spatial"]["bbox"][0])
        except (KeyError, IndexError, TypeError, ValueError):
            return None
        return west, south, east, north


class PublishedItem(BaseModel):
    """A published item, with the checked files of its assets (the reader's input).

    Serialises (e.g. in the mosaic's ``/assets`` answers) to id, collection, bbox and time only.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, frozen=True)

    id: str
    collection: str
    bbox: BBox
    start: datetime | None
    end: datetime | None
    stac: pystac.Item = Field(exclude=True)
    files: Mapping[str, StoredFile] = Field(exclude=True)
    """Asset key -> file inside the root, for COG, GeoParquet and FlatGeobuf assets that passed the checks."""
    info: CollectionInfo = Field(exclude=True)
    forward: tuple[tuple[str, str], ...] = Field(default=(), exclude=True)
    """Request parameters to repeat in the URLs made for this item (signed-URL parameters)."""
    _zoom_ranges: dict[str, tuple[int, int]] = PrivateAttr(default_factory=dict)
    """TileMatrixSet id -> (min, max) zoom of the item's grid, once computed (shared by ``model_copy`` copies)."""

    def __str__(self) -> str:
        return f"{self.collection}/{self.id}"

    def known_zoom_range(self, tms_id: str) -> tuple[int, int] | None:
        """The zoom range of the item's grid in the TileMatrixSet ``tms_id``, if computed before."""
        return self._zoom_ranges.get(tms_id)

    def remember_zoom_range(self, tms_id: str, zooms: tuple[int, int]) -> None:
        """Keep the zoom range computed for ``tms_id`` (for as long as this item document is cached)."""
        self._zoom_ranges[tms_id] = zooms

    def files_of(self, media_type: str) -> dict[str, StoredFile]:
        """The checked files of the assets of ``media_type``."""
        return {key: path for key, path in self.files.items() if self.stac.assets[key].media_type == media_type}

    @property
    def cogs(self) -> dict[str, StoredFile]:
        return self.files_of(COG)

    def bands(self, asset: str) -> list[dict[str, Any]]:
        """The asset's ``bands`` (raster v2), empty when unknown."""
        bands = self.stac.assets[asset].extra_fields.get("bands") if asset in self.stac.assets else None
        return [b for b in bands if isinstance(b, dict)] if isinstance(bands, list) else []


class Publication:
    """The publication root, read on demand (JSON documents cached until their file changes)."""

    def __init__(self, root: Root | Path | str) -> None:
        self.root = open_root(root)
        self._cache: LRUCache[str, tuple[tuple[Hashable, ...], Any]] = LRUCache(maxsize=4096)
        self._lock = threading.Lock()

    def collection(self, collection_id: str) -> CollectionInfo:
        """The collection ``collection_id`` or :class:`NotFoundError`."""
        key = f"{checked_id(collection_id, 'collection')}/collection.json"
        return self._cached(key, (), lambda document: self._collection(collection_id, document))

    def item(self, collection_id: str, item_id: str) -> PublishedItem:
        """The item ``item_id`` of ``collection_id`` or :class:`NotFoundError`."""
        info = self.collection(collection_id)
        folder = f"{collection_id}/{checked_id(item_id, 'item')}"
        depends = (f"{collection_id}/collection.json",)
        return self._cached(
            f"{folder}/{item_id}.json", depends, lambda document: self._item(info, item_id, folder, document)
        )

    def items(self, collection_id: str, item_ids: Iterable[str]) -> list[PublishedItem]:
        """The items of ``collection_id`` among ``item_ids`` whose files exist (an index may be ahead of them)."""
        found = []
        for item_id in item_ids:
            try:
                found.append(self.item(collection_id, item_id))
            except NotFoundError:
                continue
        return found

    def _cached(self, key: str, depends: tuple[str, ...], build: Callable[[Any], T]) -> T:
        stamp = tuple(self.root.stamp(k) for k in (key, *depends))
        if None in stamp:
            raise NotFoundError(f"no {key}")
        with self._lock:
            hit = self._cache.get(key)
        if hit is not None and hit[0] == stamp:
            return hit[1]
        try:
            document = json.loads(self.root.read(key))
        except (OSError, ValueError) as err:
            raise NotFoundError(f"unreadable {key}: {err}") from None
        value = build(document)
        with self._lock:
            self._cache[key] = (stamp, value)
        return value

    @staticmethod
    def _collection(collection_id: str, document: Any) -> CollectionInfo:
        if not isinstance(document, dict) or document.get("id") != collection_id:
            raise NotFoundError(f"no collection {collection_id!r}")
        return CollectionInfo(collection_id, MappingProxyType(document))

    def _item(self, info: CollectionInfo, item_id: str, folder: str, document: Any) -> PublishedItem:
        if not isinstance(document, dict) or document.get("id") != item_id or document.get("collection") != info.id:
            raise NotFoundError(f"no item {item_id!r} in {info.id!r}")
        stac = pystac.Item.from_dict(document, preserve_dict=True, migrate=False)
        files = {key: path for key, asset in stac.assets.items() if (path := self.asset_file(folder, asset))}
        start = stac.common_metadata.start_datetime or stac.datetime
        end = stac.common_metadata.end_datetime or stac.datetime
        west, south, east, north = (float(v) for v in (stac.bbox or (-180.0, -90.0, 180.0, 90.0))[:4])
        return PublishedItem(
            id=item_id,
            collection=info.id,
            bbox=(west, south, east, north),
            start=start,
            end=end,
            stac=stac,
            files=MappingProxyType(files),
            info=info,
        )

    def asset_file(self, folder: str, asset: pystac.Asset) -> StoredFile | None:
        """The file of ``asset`` (href relative to the ``folder`` key) if it is a published data file, else ``None``."""
        suffixes = SUFFIXES.get(asset.media_type or "")
        href = asset.href or ""
        if not suffixes or not href or urlsplit(href).scheme or href.startswith(("/", "\\")) or "\\" in href:
            return None
        key = normalized_key(folder, href)
        if key is None or PurePosixPath(key).suffix.lower() not in suffixes or not self.root.is_file(key):
            return None
        return StoredFile(key, self.root)
