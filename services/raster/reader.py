"""Readers of published items: rio-tiler's STACReader over checked COG files, opened by GDAL's GTiff driver only.

A COG in object storage is opened as ``/vsis3/...`` of the publication root only, inside a
``rasterio.Env`` holding the root's endpoint and credentials (never from the process environment or the
STAC document).

``GDAL_SKIP=VRT`` is deliberately not part of the environment: GDAL applies it when drivers are first
registered, process-wide, so per request it either does nothing or removes the VRT driver for good, and
rasterio's ``calculate_default_transform`` (used by every reprojected tile) then fails. VRT (and any other
format) is refused instead by opening files with ``driver="GTiff"`` (GDAL's allowed-drivers list).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

import attr
import rasterio
from rasterio.session import Session
from rio_tiler.io import BaseReader, Reader, STACReader
from rio_tiler.models import ImageData, Info, PointData
from rio_tiler.types import AssetInfo, AssetType
from rio_tiler.utils import cast_to_sequence

from ncdc_stac.storage import Root, StoredFile
from services.raster.publication import COG, SUFFIXES, PublishedItem

COG_SUFFIXES = SUFFIXES[COG]
TIFF_MAGIC = frozenset({b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"})
"""First bytes of TIFF and BigTIFF files."""
GDAL_ENV: Mapping[str, str] = MappingProxyType(
    {
        "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
        "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": ".tif,.tiff",
        "GDAL_PAM_ENABLED": "NO",
        "VSI_CACHE": "TRUE",
        "VSI_CACHE_SIZE": str(32 * 1024 * 1024),
        "GDAL_INGESTED_BYTES_AT_OPEN": "32768",
        "GDAL_HTTP_MERGE_CONSECUTIVE_RANGES": "YES",
        "GDAL_HTTP_MULTIPLEX": "YES",
    }
)
"""GDAL options of every request (no sidecar probing, no ``.aux.xml`` written into the publication)."""


def gdal_env() -> dict[str, str]:
    """The GDAL options for one request."""
    return dict(GDAL_ENV)


async def request_gdal_env() -> dict[str, str]:
    """:func:`gdal_env` as titiler's ``environment_dependency`` (a coroutine: no thread pool round trip)."""
    return gdal_env()


class UnsafeSourceError(ValueError):
    """A dataset the tiler must not open (not a local published GeoTIFF): 403."""


def checked_cog(source: Any, storage: Root | None = None) -> str:
    """``source`` if it is a local ``.tif`` file (no URL, no ``/vsi``) that starts like a TIFF, or a ``.tif``
    object of the ``storage`` root in object storage, else 403."""
    text = str(source) if source is not None else ""
    path = PurePosixPath(text)
    if storage is not None and storage.local is None:
        inside = text.startswith(storage.gdal_path("")) and ".." not in path.parts
        if not inside or path.suffix.lower() not in COG_SUFFIXES:
            raise UnsafeSourceError(f"refusing to open {text[:80]!r}")
        return text
    if (
        not path.is_absolute()
        or urlsplit(text).scheme
        or text.startswith("/vsi")
        or ".." in path.parts
        or path.suffix.lower() not in COG_SUFFIXES
    ):
        raise UnsafeSourceError(f"refusing to open {text[:80]!r}")
    try:
        with Path(text).open("rb") as handle:
            magic = handle.read(4)
    except OSError as err:
        raise UnsafeSourceError(f"cannot read {path.name}: {err.strerror}") from None
    if magic not in TIFF_MAGIC:
        raise UnsafeSourceError(f"{path.name} is not a TIFF file")
    return text


class StaticCredentials(Session):
    """A rasterio session holding GDAL's ``AWS_*`` credential options as given (rasterio's ``AWSSession`` needs
    boto3, and ``rasterio.Env`` refuses credentials passed as plain options)."""

    def __init__(self, options: Mapping[str, str]) -> None:
        self._options = dict(options)

    @classmethod
    def hascreds(cls, config: Mapping[str, Any]) -> bool:
        return "AWS_ACCESS_KEY_ID" in config and "AWS_SECRET_ACCESS_KEY" in config

    @property
    def credentials(self) -> dict[str, str]:
        return dict(self._options)

    def get_credential_options(self) -> dict[str, str]:
        return dict(self._options)


def storage_env(storage: Root) -> rasterio.Env:
    """The ``rasterio.Env`` of a root in object storage: endpoint options, credentials in a session."""
    session = StaticCredentials(storage.gdal_credentials) if storage.gdal_credentials else None
    return rasterio.Env(session=session, **storage.gdal_options)


@attr.s
class PublishedCOGReader(Reader):
    """rio-tiler's Reader for a checked COG of the publication, which GDAL may only open as a GeoTIFF.

    ``storage``: the publication root (needed for object storage: its GDAL options apply while the reader is open).
    """

    storage: Root | None = attr.ib(default=None)

    def __attrs_post_init__(self) -> None:
        if self.dataset is None:
            source = checked_cog(self.input, self.storage)
            if self.storage is not None and self.storage.gdal_options:
                self._ctx_stack.enter_context(storage_env(self.storage))
            self.dataset = self._ctx_stack.enter_context(rasterio.open(source, driver="GTiff"))
        super().__attrs_post_init__()  # type: ignore[no-untyped-call]

    @classmethod
    def of(cls, file: StoredFile, **options: Any) -> PublishedCOGReader:
        """The reader of a checked published file."""
        return cls(file.gdal, storage=file.storage, **options)


def _serial(options: dict[str, Any]) -> dict[str, Any]:
    """``threads=1`` (no pool to start and join per request) when at most one asset is read."""
    return {"threads": 1, **options} if len(cast_to_sequence(options.get("assets")) or ()) <= 1 else options


@attr.s
class PublishedItemReader(STACReader):
    """rio-tiler's STACReader over a :class:`PublishedItem`: its checked COG assets, via :class:`PublishedCOGReader`."""

    reader: type[BaseReader] = attr.ib(default=PublishedCOGReader)

    @property
    def published(self) -> PublishedItem:
        if not isinstance(self.input, PublishedItem):
            raise UnsafeSourceError("the item reader reads published items only")
        return self.input

    def __attrs_post_init__(self) -> None:
        """rio-tiler's STACReader over the item, with the zoom range of its grid computed once per item and
        TileMatrixSet (STACReader reprojects the grid for it whenever a reader is made: every tile request)."""
        self.item = self.published.stac
        tms_id = self.tms.id if self.minzoom is None and self.maxzoom is None else None
        known = self.published.known_zoom_range(tms_id) if tms_id else None
        if known is not None:
            self.minzoom, self.maxzoom = known
        super().__attrs_post_init__()  # type: ignore[no-untyped-call]
        if tms_id and known is None and self.minzoom is not None and self.maxzoom is not None:
            self.published.remember_zoom_range(tms_id, (self.minzoom, self.maxzoom))

    def get_asset_list(self) -> list[str]:
        """The COG assets that passed the publication checks."""
        return list(self.published.cogs)

    def tile(self, *args: Any, **kwargs: Any) -> ImageData:
        """rio-tiler's tile; one asset is read without a thread pool."""
        return super().tile(*args, **_serial(kwargs))

    def point(self, *args: Any, **kwargs: Any) -> PointData:
        """rio-tiler's point; one asset is read without a thread pool."""
        return super().point(*args, **_serial(kwargs))

    def preview(self, *args: Any, **kwargs: Any) -> ImageData:
        """rio-tiler's preview; one asset is read without a thread pool."""
        return super().preview(*args, **_serial(kwargs))

    def info(self, assets: Sequence[AssetType] | AssetType | None = None, **kwargs: Any) -> dict[str, Info]:
        """Info of ``assets`` (default: every COG asset, which rio-tiler would warn about)."""
        return super().info(assets or self.assets, **kwargs)

    def _get_asset_info(self, asset: AssetType) -> AssetInfo:
        info = super()._get_asset_info(asset)
        file = self.published.cogs[info["name"]]
        info["url"] = file.gdal  # never an alternate href
        info["reader_options"] = {"storage": file.storage}
        info.pop("env", None)
        return info
