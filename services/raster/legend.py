"""``/collections/{id}/legend``: what a viewer needs to draw a colour bar for a raster asset.

The colormap and value range are the request's, else the collection's render, else the band statistics;
the unit, band and nodata come from the asset's bands (raster v2) in the items.
"""

from collections.abc import Sequence
from typing import Annotated, Any, Literal, cast

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi import Path as PathParam
from rio_tiler.colormap import cmap as default_cmap

from services.raster.index import ItemIndex
from services.raster.mosaic import main_asset
from services.raster.publication import COG, NotFoundError, Publication
from services.raster.renders import pick_render, render_band

DEFAULT_COLORMAP = "viridis"
ColorMapName = Literal[tuple(default_cmap.list())]  # type: ignore[valid-type]


def _hex(rgba: Sequence[int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgba[:3])


def colormap_stops(name: str, low: float, high: float, count: int) -> list[dict[str, Any]]:
    """``count`` evenly spaced values from ``low`` to ``high`` and their colours in colormap ``name``."""
    colors = cast(dict[int, Sequence[int]], default_cmap.get(name))
    stops = []
    for i in range(count):
        fraction = i / (count - 1)
        rgba = [int(v) for v in colors[round(fraction * 255)]]
        stops.append({"value": low + fraction * (high - low), "color": _hex(rgba), "rgba": rgba})
    return stops


def _range(rescale: str | None, render: dict[str, Any] | None, band: dict[str, Any]) -> tuple[float, float]:
    if rescale:
        try:
            low, high = (float(v) for v in rescale.split(","))
        except ValueError:
            raise HTTPException(400, f"invalid rescale {rescale!r}: expected min,max") from None
        return low, high
    if render and render.get("rescale"):
        low, high = render["rescale"][0]
        return float(low), float(high)
    stats = band.get("statistics") or {}
    if "minimum" in stats and "maximum" in stats:
        return float(stats["minimum"]), float(stats["maximum"])
    raise NotFoundError("no value range: give rescale=min,max")


def legend_router(publication: Publication, index: ItemIndex) -> APIRouter:
    """``GET /collections/{collection_id}/legend``."""
    router = APIRouter(tags=["Legends"])

    @router.get("/collections/{collection_id}/legend", name="legend")
    def legend(
        request: Request,
        collection_id: Annotated[str, PathParam(description="Collection id")],
        asset: Annotated[str | None, Query(description="COG asset (default: the one most items have)")] = None,
        colormap_name: Annotated[
            ColorMapName | None,  # type: ignore[valid-type]
            Query(description="Colormap (default: the render's)"),
        ] = None,
        rescale: Annotated[str | None, Query(description="min,max (default: the render's)")] = None,
        stops: Annotated[int, Query(ge=2, le=256, description="Number of colour stops")] = 11,
    ) -> dict[str, Any]:
        """Colormap stops, value range, unit and band of a collection's raster asset."""
        info = publication.collection(collection_id)
        asset = asset or main_asset(index, info)
        if asset is None or asset not in info.asset_keys(COG):
            raise NotFoundError(f"no raster asset {asset!r} in collection {collection_id!r}")
        render = pick_render(info.renders, [asset], [asset], asset)
        hits = index.search(collection_id, [asset], limit=1)
        sample = publication.items(collection_id, [hit.id for hit in hits])
        bands = sample[0].bands(asset) if sample else []
        number = render_band(render)
        band = bands[number - 1] if 0 < number <= len(bands) else {}
        low, high = _range(rescale, render, band)
        name = str(colormap_name or (render or {}).get("colormap_name") or DEFAULT_COLORMAP)
        image = str(request.url_for("colormap_metadata", colorMapId=name))
        return {
            "collection": collection_id,
            "asset": asset,
            "title": (render or {}).get("title") or info.item_assets.get(asset, {}).get("title"),
            "band": number,
            "band_name": band.get("name"),
            "unit": band.get("unit"),
            "nodata": band.get("nodata"),
            "colormap_name": name,
            "rescale": [low, high],
            "stops": colormap_stops(name, low, high, stops),
            "links": [{"href": f"{image}?f=png&orientation=horizontal", "rel": "legend", "type": "image/png"}],
        }

    return router
