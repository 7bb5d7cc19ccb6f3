"""Readers of published items: rio-tiler's STACReader over checked COG files, opened by GDAL's GTiff driver only.

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
from rio_tiler.io import BaseReader, Reader, STACReader
from rio_tiler.models import ImageData, Info, PointData
from rio_tiler.types import AssetInfo, AssetType
from rio_tiler.utils import cast_to_sequence

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
    """The GDAL options for one request (titiler's ``environment_dependency``)."""
    return dict(GDAL_ENV)


class UnsafeSourceError(ValueError):
    """A dataset the tiler must not open (not a local published GeoTIFF): 403."""


def checked_cog(source: Any) -> str:
    """``source`` if it is a local ``.tif`` file (no URL, no ``/vsi``) that starts like a TIFF, else 403."""
    text = str(source) if source is not None else ""
    path = PurePosixPath(text)
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


@attr.s
class PublishedCOGReader(Reader):
    """rio-tiler's Reader for a checked local COG, which GDAL may only open as a GeoTIFF."""

    def __attrs_post_init__(self) -> None:
        if self.dataset is None:
            self.dataset = self._ctx_stack.enter_context(rasterio.open(checked_cog(self.input), driver="GTiff"))
        super().__attrs_post_init__()  # type: ignore[no-untyped-call]


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
        self.item = self.published.stac
        super().__attrs_post_init__()  # type: ignore[no-untyped-call]

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
        info["url"] = str(self.published.cogs[info["name"]])  # never an alternate href
        info.pop("env", None)
        return info
