"""What the tiler may open: published collections, items and their asset files under the root.

Only files the publisher wrote are reachable. Ids must look like ids (no separator, no leading dot);
an asset's href is resolved against its item's folder and must stay inside the root, be a regular file
with the suffix its media type calls for. Absolute hrefs, URLs, ``/vsi...`` paths and symlinks leading
out of the root are dropped, so they can never reach GDAL or DuckDB. Nothing here opens a dataset.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar
from urllib.parse import urlsplit

import pystac
from cachetools import LRUCache
from pydantic import BaseModel, ConfigDict, Field

from catalog.items import FLATGEOBUF, GEOPARQUET

COG = str(pystac.MediaType.COG)
SUFFIXES: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {COG: (".tif", ".tiff"), GEOPARQUET: (".parquet",), FLATGEOBUF: (".fgb",)}
)
"""Media types of the assets the services read, and the file suffixes each must have."""
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,254}")
BBox = tuple[float, float, float, float]
T = TypeVar("T")


class NotFoundError(LookupError):
    """An unknown (or invalid) collection, item or asset: 404."""


def checked_id(value: str, kind: str) -> str:
    """``value`` if it can be a published id (a single path segment, no leading dot), else :class:`NotFoundError`."""
    if not _ID.fullmatch(value):
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
    files: Mapping[str, Path] = Field(exclude=True)
    """Asset key -> file inside the root, for COG, GeoParquet and FlatGeobuf assets that passed the checks."""
    info: CollectionInfo = Field(exclude=True)
    forward: tuple[tuple[str, str], ...] = Field(default=(), exclude=True)
    """Request parameters to repeat in the URLs made for this item (signed-URL parameters)."""

    def __str__(self) -> str:
        return f"{self.collection}/{self.id}"

    def files_of(self, media_type: str) -> dict[str, Path]:
        """The checked files of the assets of ``media_type``."""
        return {key: path for key, path in self.files.items() if self.stac.assets[key].media_type == media_type}

    @property
    def cogs(self) -> dict[str, Path]:
        return self.files_of(COG)

    def bands(self, asset: str) -> list[dict[str, Any]]:
        """The asset's ``bands`` (raster v2), empty when unknown."""
        bands = self.stac.assets[asset].extra_fields.get("bands") if asset in self.stac.assets else None
        return [b for b in bands if isinstance(b, dict)] if isinstance(bands, list) else []


class Publication:
    """The publication root, read on demand (JSON documents cached until their file changes)."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self._cache: LRUCache[str, tuple[tuple[int, ...], Any]] = LRUCache(maxsize=4096)
        self._lock = threading.Lock()

    def collection(self, collection_id: str) -> CollectionInfo:
        """The collection ``collection_id`` or :class:`NotFoundError`."""
        path = self.root / checked_id(collection_id, "collection") / "collection.json"
        return self._cached(path, (), lambda document: self._collection(collection_id, document))

    def item(self, collection_id: str, item_id: str) -> PublishedItem:
        """The item ``item_id`` of ``collection_id`` or :class:`NotFoundError`."""
        info = self.collection(collection_id)
        path = self.root / collection_id / checked_id(item_id, "item") / f"{item_id}.json"
        depends = (self.root / collection_id / "collection.json",)
        return self._cached(path, depends, lambda document: self._item(info, item_id, path.parent, document))

    def items(self, collection_id: str, item_ids: Iterable[str]) -> list[PublishedItem]:
        """The items of ``collection_id`` among ``item_ids`` whose files exist (an index may be ahead of them)."""
        found = []
        for item_id in item_ids:
            try:
                found.append(self.item(collection_id, item_id))
            except NotFoundError:
                continue
        return found

    def _cached(self, path: Path, depends: tuple[Path, ...], build: Callable[[Any], T]) -> T:
        try:
            stamp = tuple(n for p in (path, *depends) for n in (p.stat().st_mtime_ns, p.stat().st_size))
        except OSError:
            raise NotFoundError(f"no {path.relative_to(self.root).as_posix()}") from None
        key = str(path)
        with self._lock:
            hit = self._cache.get(key)
        if hit is not None and hit[0] == stamp:
            return hit[1]
        try:
            document = json.loads(path.read_bytes())
        except (OSError, ValueError) as err:
            raise NotFoundError(f"unreadable {path.relative_to(self.root).as_posix()}: {err}") from None
        value = build(document)
        with self._lock:
            self._cache[key] = (stamp, value)
        return value

    @staticmethod
    def _collection(collection_id: str, document: Any) -> CollectionInfo:
        if not isinstance(document, dict) or document.get("id") != collection_id:
            raise NotFoundError(f"no collection {collection_id!r}")
        return CollectionInfo(collection_id, MappingProxyType(document))

    def _item(self, info: CollectionInfo, item_id: str, folder: Path, document: Any) -> PublishedItem:
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

    def asset_file(self, folder: Path, asset: pystac.Asset) -> Path | None:
        """The file of ``asset`` (href relative to ``folder``) if it is a published data file, else ``None``."""
        suffixes = SUFFIXES.get(asset.media_type or "")
        href = asset.href or ""
        if not suffixes or not href or urlsplit(href).scheme or href.startswith(("/", "\\")) or "\\" in href:
            return None
        path = (folder / href).resolve()
        if not path.is_relative_to(self.root) or path.suffix.lower() not in suffixes or not path.is_file():
            return None
        return path
