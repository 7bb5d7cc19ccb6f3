"""Rasters -> Cloud Optimized GeoTIFF with rio-cogeo, validated, pixels unchanged."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
from rio_cogeo.cogeo import cog_translate, cog_validate
from rio_cogeo.profiles import cog_profiles
from rio_tiler.colormap import cmap
from rio_tiler.io import Reader

from publish.recipe import RenderDefaults
from publish.storage import temporary_sibling

BLOCK_SIZE = 512


class RasterError(ValueError):
    """A raster that cannot be read or converted; names the file."""


def cog_profile(dtype: str) -> dict[str, object]:
    """DEFLATE with the predictor that suits the data type, 512 x 512 internal tiles."""
    profile = dict(cog_profiles.get("deflate"))  # type: ignore[no-untyped-call]
    floating = np.issubdtype(np.dtype(dtype), np.floating)
    profile.update(blockxsize=BLOCK_SIZE, blockysize=BLOCK_SIZE, predictor=3 if floating else 2)
    return profile


def to_cog(source: Path, target: Path, band: int | None = None) -> None:
    """Convert ``source`` (one band of it, if given) into a valid COG at ``target``, atomically."""
    try:
        with rasterio.open(source) as src:
            indexes = [band] if band else None
            dtype = src.dtypes[(band or 1) - 1]
            floating = np.issubdtype(np.dtype(dtype), np.floating)
            with temporary_sibling(target) as tmp:
                cog_translate(
                    src,
                    str(tmp),
                    cog_profile(dtype),
                    indexes=indexes,
                    nodata=src.nodata,
                    overview_resampling="average" if floating else "nearest",
                    forward_band_tags=True,
                    forward_ns_tags=True,
                    in_memory=False,
                    quiet=True,
                    use_cog_driver=False,
                )
                valid, errors, _ = cog_validate(str(tmp), quiet=True)
                if not valid:
                    raise RasterError(f"{source}: the COG written does not validate: {'; '.join(errors)}")
    except rasterio.errors.RasterioError as err:
        raise RasterError(f"{source}: cannot read raster: {err}") from None


def thumbnail(cog: Path, target: Path, render: RenderDefaults, size: int = 256) -> None:
    """A PNG preview of the COG with the asset's default colormap and value range."""
    with Reader(str(cog)) as reader:
        image = reader.preview(indexes=render.bands or [1], max_size=size)
    low, high = render.rescale or _range(image.array)
    image.rescale(in_range=((low, high),))
    with temporary_sibling(target) as tmp:
        colormap = cmap.get(render.colormap)
        tmp.write_bytes(image.render(img_format="PNG", colormap=colormap))


def _range(array: np.ma.MaskedArray) -> tuple[float, float]:
    data = array.compressed()
    if data.size == 0:
        return 0.0, 1.0
    low, high = np.percentile(data, [2, 98])
    return float(low), float(high if high > low else low + 1)
