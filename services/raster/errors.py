"""Status codes and request guards of the raster service.

Nothing to draw is ``204 No Content`` (a tile or point outside the data, an all-nodata tile, no item in a
mosaic); a zoom or tile index outside the TileMatrixSet is ``404``; unknown ids are ``404``; a ``url``
parameter, or a value naming a VRT, a ``/vsi`` path or a URL, is ``400``; a dataset that is not a published
GeoTIFF is never opened (``403``). Other errors are left to the service's error handling (500).
"""

import re
from collections.abc import Awaitable, Callable, Mapping
from types import MappingProxyType
from typing import Annotated, Any

import numpy
from fastapi import HTTPException, Path, Request
from morecantile import TileMatrixSet
from morecantile.defaults import TileMatrixSets
from rio_tiler.errors import (
    AssetAsBandError,
    EmptyMosaicError,
    InvalidColorMapName,
    NoAssetFoundError,
    PointOutsideBounds,
    TileOutsideBounds,
)
from rio_tiler.models import ImageData
from titiler.core.errors import DEFAULT_STATUS_CODES
from titiler.core.utils import render_image

from services.raster.index import IndexUnavailableError
from services.raster.publication import NotFoundError
from services.raster.reader import UnsafeSourceError


class EmptyTileError(Exception):
    """No valid pixel to draw."""


STATUS_CODES: Mapping[type[Exception], int] = MappingProxyType(
    {
        **{error: code for error, code in DEFAULT_STATUS_CODES.items() if error is not Exception},
        TileOutsideBounds: 204,
        PointOutsideBounds: 204,
        NoAssetFoundError: 204,
        EmptyMosaicError: 204,
        EmptyTileError: 204,
        NotFoundError: 404,
        IndexUnavailableError: 503,
        UnsafeSourceError: 403,
        InvalidColorMapName: 400,
        AssetAsBandError: 400,
    }
)

FORBIDDEN_PARAMETERS = frozenset({"url"})
_UNSAFE_VALUE = re.compile(r"<\s*/?\s*vrt|/vsi[a-z0-9_]*/|^\s*[a-z][a-z0-9+.-]*://|^\s*file:", re.IGNORECASE)


async def refuse_unsafe_query(request: Request) -> None:
    """400 for a ``url`` parameter or a value naming a VRT, a ``/vsi`` path or a URL (app-wide dependency).

    Pure computation: ``async`` so that FastAPI calls it in the event loop, not through its thread pool."""
    for key, value in request.query_params.multi_items():
        if key.lower() in FORBIDDEN_PARAMETERS:
            raise HTTPException(400, f"the {key!r} parameter is not supported: datasets are addressed by their ids")
        if _UNSAFE_VALUE.search(value):
            raise HTTPException(400, f"parameter {key!r}: data sources cannot be given in requests")


def render_tile(image: ImageData, **kwargs: Any) -> tuple[bytes, str]:
    """titiler's ``render_image``; :class:`EmptyTileError` (204) when no pixel is valid."""
    if numpy.ma.getmaskarray(image.array).all():
        raise EmptyTileError("no valid pixel")
    return render_image(image, **kwargs)


def check_tile(tms: TileMatrixSet, z: int, x: int, y: int) -> None:
    """404 unless ``z/x/y`` is a tile of ``tms``."""
    if not tms.minzoom <= z <= tms.maxzoom:
        raise HTTPException(404, f"zoom {z} is outside {tms.id} ({tms.minzoom}-{tms.maxzoom})")
    matrix = tms.matrix(z)
    if not (0 <= x < matrix.matrixWidth and 0 <= y < matrix.matrixHeight):
        raise HTTPException(404, f"tile {z}/{x}/{y} is outside {tms.id}")


def tile_guard(supported: TileMatrixSets) -> Callable[..., Awaitable[None]]:
    """Route dependency of the tile endpoints: :func:`check_tile` for the path's TileMatrixSet (in the event loop)."""

    async def tile_in_matrix(
        tileMatrixSetId: Annotated[str, Path()],  # noqa: N803 (titiler's path parameter)
        z: Annotated[int, Path()],
        x: Annotated[int, Path()],
        y: Annotated[int, Path()],
    ) -> None:
        if tileMatrixSetId in supported.list():
            check_tile(supported.get(tileMatrixSetId), z, x, y)

    return tile_in_matrix
