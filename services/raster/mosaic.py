"""Collection mosaics by time: a rio-tiler mosaic backend over the item index (as titiler-pgstac's PGSTACBackend).

``/collections/{id}/tiles/...?datetime=2023-07`` mosaics the items of the collection that have the
requested assets, intersect the tile and the period, newest first. The WMTS lists one layer per time step
(the distinct periods of the items: months, days, ...), named ``<collection>_<TileMatrixSet>_<step>``.
"""

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Annotated, Any
from urllib.parse import urlencode

import attr
from attrs import define
from fastapi import Depends, HTTPException, Path, Query, Request
from morecantile import Tile, TileMatrixSet
from rasterio.crs import CRS
from rasterio.warp import transform, transform_bounds
from rio_tiler.constants import MAX_THREADS, WGS84_CRS
from rio_tiler.models import ImageData
from rio_tiler.mosaic.backend import BaseBackend, MosaicInfo
from rio_tiler.utils import CRS_to_uri
from titiler.core.factory import FactoryExtension
from titiler.mosaic.factory import MosaicTilerFactory

from services.raster.index import ItemIndex
from services.raster.publication import COG, BBox, CollectionInfo, Publication, PublishedItem
from services.raster.reader import PublishedItemReader
from services.raster.renders import (
    RenderDefaults,
    forwarded,
    is_visual,
    pick_render,
    render_defaults,
    render_query,
    requested_assets,
)
from services.raster.timeline import Period, iso, parse_datetime, period_label

MAX_ITEMS = 100
"""Items read at most for one tile or point of a mosaic."""
WORLD: BBox = (-180.0, -90.0, 180.0, 90.0)


@dataclass(frozen=True)
class TimeStep:
    """A period in which a collection has items, and the ``datetime=`` value that selects it."""

    label: str
    start: str
    end: str


def main_asset(index: ItemIndex, info: CollectionInfo) -> str | None:
    """The collection's COG asset that most items have (the default of mosaics and time series)."""
    counts = index.asset_counts(info.id, info.asset_keys(COG))
    return max(counts, key=lambda key: counts[key]) if any(counts.values()) else None


class CollectionMosaic:
    """A collection and an optional period: the mosaic backend's input for one request."""

    def __init__(
        self,
        info: CollectionInfo,
        period: Period | None,
        publication: Publication,
        index: ItemIndex,
        forward: Sequence[tuple[str, str]] = (),
    ) -> None:
        self.info = info
        self.period = period
        self.publication = publication
        self.index = index
        self.forward = tuple(forward)
        """Request parameters to repeat in the URLs made for this mosaic (signed-URL parameters)."""

    def __str__(self) -> str:
        return self.info.id

    @cached_property
    def main_asset(self) -> str | None:
        """The COG asset most items have."""
        return main_asset(self.index, self.info)

    def items(self, assets: Sequence[str] | None, bbox: BBox | None, limit: int = MAX_ITEMS) -> list[PublishedItem]:
        """The published items having ``assets`` (default: the main asset) in ``bbox`` and the period, newest first."""
        wanted = list(assets or ([self.main_asset] if self.main_asset else []))
        found = self.index.search(self.info.id, wanted, self.period, bbox, newest_first=True, limit=limit)
        return self.publication.items(self.info.id, [hit.id for hit in found])

    @cached_property
    def sample(self) -> PublishedItem | None:
        """An item with the main asset (its grid gives the zoom levels, its bands the band count)."""
        hits = self.index.search(self.info.id, [self.main_asset], limit=1) if self.main_asset else []
        return next(iter(self.publication.items(self.info.id, [hit.id for hit in hits])), None)

    @cached_property
    def bounds(self) -> BBox:
        """Union of the bboxes of the items of the period."""
        assets = [self.main_asset] if self.main_asset else []
        return self.index.extent(self.info.id, assets, self.period) or self.info.bbox or WORLD

    def zooms(self, tms: TileMatrixSet) -> tuple[int, int]:
        """Min and max zoom of the sample item's grid in ``tms``."""

        def compute() -> tuple[int, int]:
            if self.sample is None:
                return tms.minzoom, tms.maxzoom
            with PublishedItemReader(self.sample, tms=tms) as reader:  # type: ignore[arg-type]
                return reader.minzoom, reader.maxzoom

        return self.index.cached(self.info.id, ("zooms", tms.id), compute)

    def band_count(self, asset: str) -> int:
        return len(self.sample.bands(asset)) if self.sample is not None else 1

    def steps(self) -> list[TimeStep]:
        """The time steps of the main asset, oldest first."""
        if self.main_asset is None:
            return []
        steps: dict[str, TimeStep] = {}
        for start, end in self.index.periods(self.info.id, [self.main_asset]):
            label = period_label(start, end)
            steps.setdefault(label, TimeStep(label, iso(start), iso(end)))
        return list(steps.values())

    def layer_query(self) -> dict[str, Any]:
        """Tile-URL parameters of the collection's default render (and the request's signature)."""
        render = pick_render(self.info.renders, self.info.asset_keys(COG), [], self.main_asset)
        default = {"assets": [self.main_asset]} if self.main_asset else {}
        return {**(render_query(render) if render is not None else default), **dict(self.forward)}


def _geographic(xmin: float, ymin: float, xmax: float, ymax: float, crs: CRS | None) -> BBox:
    if crs is None or crs == WGS84_CRS:
        return xmin, ymin, xmax, ymax
    west, south, east, north = transform_bounds(crs, WGS84_CRS, xmin, ymin, xmax, ymax)
    return west, south, east, north


@attr.s
class CollectionMosaicBackend(BaseBackend):
    """rio-tiler mosaic backend over a :class:`CollectionMosaic`; its assets are published items."""

    def __attrs_post_init__(self) -> None:
        self.bounds = self.mosaic.bounds
        self.crs = WGS84_CRS
        self.minzoom, self.maxzoom = self.mosaic.zooms(self.tms)

    @property
    def mosaic(self) -> CollectionMosaic:
        if not isinstance(self.input, CollectionMosaic):
            raise TypeError("the collection backend mosaics collections only")
        return self.input

    def asset_name(self, asset: Any) -> str:
        return str(asset)

    def tile(  # type: ignore[override]
        self, x: int, y: int, z: int, search_options: dict[str, Any] | None = None, **kwargs: Any
    ) -> tuple[ImageData, list[str]]:
        """rio-tiler's mosaic tile, with no more threads than items (none for one item)."""
        count = len(self.assets_for_tile(x, y, z, **(search_options or {})))
        kwargs["threads"] = max(1, min(int(kwargs.get("threads", MAX_THREADS)), count))
        return super().tile(x, y, z, search_options=search_options, **kwargs)

    def assets_for_tile(self, x: int, y: int, z: int, **kwargs: Any) -> list[PublishedItem]:
        bbox = self.tms.bounds(Tile(x, y, z))
        return self.mosaic.items(kwargs.get("assets"), (bbox.left, bbox.bottom, bbox.right, bbox.top))

    def assets_for_point(
        self, lng: float, lat: float, coord_crs: CRS | None = None, **kwargs: Any
    ) -> list[PublishedItem]:
        if coord_crs is not None and coord_crs != WGS84_CRS:
            xs, ys = transform(coord_crs, WGS84_CRS, [lng], [lat])
            lng, lat = xs[0], ys[0]
        return self.mosaic.items(kwargs.get("assets"), (lng, lat, lng, lat))

    def assets_for_bbox(
        self, xmin: float, ymin: float, xmax: float, ymax: float, coord_crs: CRS | None = None, **kwargs: Any
    ) -> list[PublishedItem]:
        return self.mosaic.items(kwargs.get("assets"), _geographic(xmin, ymin, xmax, ymax, coord_crs))

    def info(self) -> MosaicInfo:  # type: ignore[override]
        """Bounds, CRS, the collection, the period and the main asset."""
        period = self.mosaic.period
        return MosaicInfo.model_validate(
            {
                "bounds": self.bounds,
                "crs": CRS_to_uri(self.crs) or self.crs.to_wkt(),
                "collection": self.mosaic.info.id,
                "datetime": None if period is None else [iso(t) if t else ".." for t in (period.start, period.end)],
                "main_asset": self.mosaic.main_asset,
            }
        )


def step_layers(backend: CollectionMosaicBackend) -> dict[str, dict[str, Any]]:
    """One WMTS layer (and TileJSON ``raster_layers`` entry) per time step, drawn with the collection's render."""
    mosaic = backend.mosaic
    query = mosaic.layer_query()
    return {step.label: {"datetime": step.label, **query} for step in mosaic.steps()}


def mosaic_dependency(
    publication: Publication, index: ItemIndex, forward: Collection[str] = ()
) -> Callable[..., CollectionMosaic]:
    """The mosaic factory's path dependency: ``/collections/{collection_id}`` and ``datetime=``.

    ``forward``: names of request parameters repeated in the URLs made for the mosaic (signed URLs).
    """

    def collection_mosaic(
        request: Request,
        collection_id: Annotated[str, Path(description="Collection id")],
        when: Annotated[
            str | None,
            Query(
                alias="datetime",
                description="Items of this period: `2023-07`, `2023-07-15`, an RFC 3339 time or `start/end` "
                "(`..` open). Calendar dates are China Standard Time.",
            ),
        ] = None,
    ) -> CollectionMosaic:
        info = publication.collection(collection_id)
        try:
            period = parse_datetime(when) if when else None
        except ValueError as err:
            raise HTTPException(status_code=400, detail=f"invalid datetime {when!r}: {err}") from None
        return CollectionMosaic(info, period, publication, index, forwarded(request, forward))

    return collection_mosaic


def mosaic_render_source(path: Callable[..., CollectionMosaic]) -> Callable[..., RenderDefaults]:
    """Render defaults of a mosaic request: the collection's render of the requested (or main) asset."""

    def mosaic_render(mosaic: Annotated[CollectionMosaic, Depends(path)], request: Request) -> RenderDefaults:
        return render_defaults(
            mosaic.info.renders,
            mosaic.info.asset_keys(COG),
            requested_assets(request),
            mosaic.main_asset,
            mosaic.band_count,
            is_visual(request),
        )

    return mosaic_render


@define
class TimeStepsExtension(FactoryExtension):
    """``/timesteps``: the collection's time steps, each with the TileJSON of its mosaic."""

    def register(self, factory: MosaicTilerFactory) -> None:  # type: ignore[override]
        """Register the endpoint on the factory's router."""

        @factory.router.get("/timesteps", name="timesteps")
        def timesteps(request: Request, mosaic: Annotated[Any, Depends(factory.path_dependency)]) -> dict[str, Any]:
            """The periods of the main asset's items, oldest first."""
            tilejson = factory.url_for(request, "tilejson", tileMatrixSetId="{tileMatrixSetId}")
            query = mosaic.layer_query()
            steps = [
                {
                    "datetime": step.label,
                    "start": step.start,
                    "end": step.end,
                    "tilejson": f"{tilejson}?{urlencode({'datetime': step.label, **query}, doseq=True)}",
                }
                for step in mosaic.steps()
            ]
            return {"collection": mosaic.info.id, "asset": mosaic.main_asset, "timesteps": steps}
