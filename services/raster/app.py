"""The raster service (mounted at ``/raster``): titiler factories composed over the publication.

URL layout (relative to the mount point)::

    /collections/{cid}/items/{iid}/tiles/{tms}/{z}/{x}/{y}[.{fmt}]   item tiles (MultiBaseTilerFactory)
    /collections/{cid}/items/{iid}/{tms}/tilejson.json               TileJSON; also /WMTSCapabilities.xml,
        /preview[.{fmt}], /point/{lon},{lat}, /statistics, /info, /assets, /renders[/{render_id}]
    /collections/{cid}/items/{iid}/vector/tiles/{z}/{x}/{y}.mvt      PS points (MVT); also /vector/tilejson.json,
        /vector/point?lon=&lat=&radius_m=
    /collections/{cid}/tiles/{tms}/{z}/{x}/{y}[.{fmt}]?datetime=     collection mosaic (MosaicTilerFactory)
    /collections/{cid}/{tms}/tilejson.json, /WMTSCapabilities.xml, /point/{lon},{lat}, /info, /timesteps
    /collections/{cid}/timeseries?lon=&lat=[&asset=&band=&format=csv]
    /collections/{cid}/legend[?asset=&colormap_name=&rescale=]
    /tileMatrixSets, /colorMaps                                      TMSFactory, ColorMapFactory

``assets=``, ``colormap_name=``, ``rescale=``, ``nodata=``, ``expression=`` default to the collection's render.
"""

from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping, Sequence
from contextlib import AbstractContextManager, asynccontextmanager, nullcontext
from types import MappingProxyType
from typing import Annotated, Any

import attr
from fastapi import Depends, FastAPI, Request
from fastapi import Path as PathParam
from morecantile import TileMatrixSet
from morecantile import tms as default_tms
from morecantile.defaults import TileMatrixSets
from titiler.core.algorithm import algorithms
from titiler.core.dependencies import DefaultDependency, TileParams
from titiler.core.errors import add_exception_handlers
from titiler.core.factory import ColorMapFactory, MultiBaseTilerFactory, TMSFactory
from titiler.core.resources.enums import OptionalHeader
from titiler.extensions.wmts import wmtsExtension
from titiler.mosaic.extensions.wmts import wmtsExtension as mosaicWmtsExtension
from titiler.mosaic.factory import MosaicTilerFactory, PixelSelectionParams

from ncdc_stac.settings import Settings
from services.api.store import DuckDBStore
from services.raster.errors import STATUS_CODES, refuse_unsafe_query, render_tile, tile_guard
from services.raster.index import DuckDBItemIndex, ItemIndex
from services.raster.legend import legend_router
from services.raster.mosaic import (
    CollectionMosaicBackend,
    TimeStepsExtension,
    mosaic_dependency,
    mosaic_render_source,
    step_layers,
)
from services.raster.pgstac_index import PgstacItemIndex
from services.raster.publication import Publication, PublishedItem
from services.raster.reader import PublishedItemReader, request_gdal_env
from services.raster.renders import (
    QUERY_DEPENDENCIES,
    OptionalAssetsParams,
    RenderDefaults,
    RendersExtension,
    as_dependency,
    awaited,
    default_dependencies,
    forwarded,
    inline,
    is_visual,
    render_defaults,
    render_query,
    requested_assets,
    usable_renders,
)
from services.raster.timeseries import timeseries_router
from services.raster.vector import vector_router

TITLE = "NCDC raster and vector tiles (国家冰川冻土沙漠科学数据中心 瓦片服务)"
ITEM_PREFIX = "/collections/{collection_id}/items/{item_id}"
COLLECTION_PREFIX = "/collections/{collection_id}"


@attr.s(frozen=True)
class SharedTileMatrixSets(TileMatrixSets):
    """morecantile's ``TileMatrixSets`` handing out its loaded TileMatrixSets themselves.

    ``TileMatrixSets.get`` deep-copies the whole model on every call (milliseconds for WebMercatorQuad's 25
    matrices), which titiler's factories do on every tile request. Nothing in the service modifies a
    TileMatrixSet, and rio-tiler shares one between threads itself (its default ``WEB_MERCATOR_TMS``).
    """

    def get(self, identifier: str) -> TileMatrixSet:
        """The registered TileMatrixSet ``identifier`` (loaded on first use), not a copy."""
        loaded = self.tilematrixsets.get(identifier)
        return loaded if isinstance(loaded, TileMatrixSet) else super().get(identifier)


SUPPORTED_TMS = SharedTileMatrixSets({name: default_tms.get(name) for name in ("WebMercatorQuad", "WorldCRS84Quad")})
TILE_ROUTES = [{"path": "/tiles/{tileMatrixSetId}/{z}/{x}/{y}.{format}", "method": "GET"}]
"""Matches both tile routes (``{y}`` also matches ``{y}.{format}``)."""


def pgstac_index(settings: Settings, store: DuckDBStore) -> ItemIndex:
    """The items pgstac's ``search()`` finds (as titiler-pgstac's mosaic backend asks them)."""
    if settings.dsn is None:
        raise ValueError("NCDC_STAC_DSN is required by the pgstac backend")
    return PgstacItemIndex(settings.dsn.get_secret_value())


INDEXES: Mapping[str, Callable[[Settings, DuckDBStore], ItemIndex]] = MappingProxyType(
    {"duckdb": lambda settings, store: DuckDBItemIndex(store), "pgstac": pgstac_index}
)
"""Item index of mosaics, time series and time steps per ``Settings.backend``."""


PURE_DEPENDENCIES: Mapping[str, Any] = MappingProxyType(
    {
        "reader_dependency": as_dependency(inline(DefaultDependency)),
        "tile_dependency": as_dependency(inline(TileParams)),
        "process_dependency": awaited(inline(algorithms.dependency)),
    }
)
"""titiler's own parameter dependencies of both tile factories, called in the event loop (see ``inline``)."""


def item_dependency(publication: Publication, forward: Collection[str] = ()) -> Callable[..., PublishedItem]:
    """Path dependency of the item factory: ``{collection_id}/items/{item_id}`` -> the published item (or 404).

    ``forward``: names of request parameters repeated in the URLs made for the item (signed URLs).
    """

    def published_item(
        request: Request,
        collection_id: Annotated[str, PathParam(description="Collection id")],
        item_id: Annotated[str, PathParam(description="Item id")],
    ) -> PublishedItem:
        item = publication.item(collection_id, item_id)
        kept = forwarded(request, forward)
        return item.model_copy(update={"forward": kept}) if kept else item

    return published_item


def item_render_source(path: Callable[..., PublishedItem]) -> Callable[..., Awaitable[RenderDefaults]]:
    """Render defaults of an item request: its collection's render for the requested (or only) COG asset (pure
    computation on the resolved item: in the event loop)."""

    async def item_render(item: Annotated[PublishedItem, Depends(path)], request: Request) -> RenderDefaults:
        cogs = list(item.cogs)
        return render_defaults(
            item.info.renders,
            cogs,
            requested_assets(request),
            next(iter(cogs), None),
            lambda asset: len(item.bands(asset)),
            is_visual(request),
        )

    return item_render


def item_renders(src: Any) -> dict[str, dict[str, Any]]:
    """The collection renders an item can draw (all their assets are among its COGs)."""
    item = src.published if isinstance(src, PublishedItemReader) else src
    return usable_renders(item.info.renders, list(item.cogs))


def item_forward(src: Any) -> tuple[tuple[str, str], ...]:
    """The signed-URL parameters of the item's request."""
    item = src.published if isinstance(src, PublishedItemReader) else src
    return tuple(item.forward)


def item_layers(reader: Any) -> dict[str, dict[str, Any]]:
    """TileJSON ``raster_layers`` and WMTS layers of an item: one per usable render (signature kept)."""
    forward = dict(item_forward(reader))
    return {name: {**render_query(render), **forward} for name, render in item_renders(reader).items()}


def item_factory(publication: Publication, forward: Collection[str] = ()) -> MultiBaseTilerFactory:
    """Tiles, TileJSON, WMTS, preview, point, statistics, info and renders of one item's COG assets."""
    path = item_dependency(publication, forward)
    defaults = default_dependencies(item_render_source(path))
    return MultiBaseTilerFactory(
        reader=PublishedItemReader,
        path_dependency=path,
        assets_dependency=as_dependency(inline(OptionalAssetsParams)),
        layer_dependency=as_dependency(defaults.layer),
        dataset_dependency=as_dependency(defaults.dataset),
        colormap_dependency=awaited(defaults.colormap),
        render_dependency=as_dependency(defaults.rendering),
        environment_dependency=awaited(request_gdal_env),
        **PURE_DEPENDENCIES,
        supported_tms=SUPPORTED_TMS,
        render_func=render_tile,
        get_renders=item_layers,
        router_prefix=ITEM_PREFIX,
        add_viewer=False,
        add_part=False,
        extensions=[
            wmtsExtension(tile_dependencies=QUERY_DEPENDENCIES, layer_identifier_provider=lambda item: item.id),
            RendersExtension(renders_of=item_renders, forward_of=item_forward),
        ],
        route_dependencies=[(TILE_ROUTES, [Depends(tile_guard(SUPPORTED_TMS))])],  # type: ignore[list-item]
    )


def mosaic_factory(publication: Publication, index: ItemIndex, forward: Collection[str] = ()) -> MosaicTilerFactory:
    """Tiles, TileJSON, WMTS (a layer per time step), point and info of a collection mosaic by ``datetime``."""
    path = mosaic_dependency(publication, index, forward)
    defaults = default_dependencies(mosaic_render_source(path))
    return MosaicTilerFactory(
        backend=CollectionMosaicBackend,
        dataset_reader=PublishedItemReader,
        path_dependency=path,
        layer_dependency=as_dependency(defaults.layer),
        dataset_dependency=as_dependency(defaults.dataset),
        colormap_dependency=awaited(defaults.colormap),
        render_dependency=as_dependency(defaults.rendering),
        assets_accessor_dependency=as_dependency(defaults.search),
        environment_dependency=awaited(request_gdal_env),
        backend_dependency=as_dependency(inline(DefaultDependency)),
        pixel_selection_dependency=awaited(inline(PixelSelectionParams)),
        **PURE_DEPENDENCIES,
        supported_tms=SUPPORTED_TMS,
        render_func=render_tile,
        get_renders=step_layers,  # type: ignore[arg-type]
        router_prefix=COLLECTION_PREFIX,
        add_viewer=False,
        optional_headers=[OptionalHeader.x_assets],
        extensions=[
            mosaicWmtsExtension(tile_dependencies=QUERY_DEPENDENCIES, layer_identifier_provider=str),
            TimeStepsExtension(),
        ],
        route_dependencies=[(TILE_ROUTES, [Depends(tile_guard(SUPPORTED_TMS))])],  # type: ignore[list-item]
    )


def create_raster_app(
    settings: Settings,
    store: DuckDBStore | None = None,
    collection_dependencies: Sequence[Any] = (),
    forward_parameters: Collection[str] = (),
) -> FastAPI:
    """The raster service over ``settings.root``.

    ``store``: the STAC API's DuckDB store, shared when given (else one of its own).
    ``collection_dependencies``: ``Depends(...)`` added to every route with a ``{collection_id}`` (all but the
    TileMatrixSet and colormap lists), e.g. ``services.access.require_collection_access``.
    ``forward_parameters``: request parameters repeated in the layer and tile URLs the service makes (WMTS
    layers, render and time-step links, vector TileJSON), e.g. ``services.access.signing.SIGNED_PARAMETERS``.
    """
    owned = store is None
    store = store if store is not None else DuckDBStore.from_settings(settings)
    publication = Publication(store.root)
    index = INDEXES[settings.backend](settings, store)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if owned:
            store.connect()  # again, after a previous run of the app closed it
        try:
            with index if isinstance(index, AbstractContextManager) else nullcontext():
                yield
        finally:
            if owned:
                store.close()

    app = FastAPI(title=TITLE, lifespan=lifespan, dependencies=[Depends(refuse_unsafe_query)])
    app.state.publication = publication
    app.state.index = index
    add_exception_handlers(app, dict(STATUS_CODES))
    guarded = list(collection_dependencies)
    vector = vector_router(publication, store.cursor, forward_parameters)
    app.include_router(vector, dependencies=guarded)  # before the item factory's /{tileMatrixSetId}/tilejson.json
    items = item_factory(publication, forward_parameters).router
    app.include_router(items, prefix=ITEM_PREFIX, tags=["Item tiles"], dependencies=guarded)
    app.include_router(timeseries_router(publication, index), dependencies=guarded)
    app.include_router(legend_router(publication, index), dependencies=guarded)
    mosaic = mosaic_factory(publication, index, forward_parameters).router
    app.include_router(mosaic, prefix=COLLECTION_PREFIX, tags=["Collection mosaics"], dependencies=guarded)
    app.include_router(TMSFactory(supported_tms=SUPPORTED_TMS).router, tags=["Tiling schemes"])
    app.include_router(ColorMapFactory().router, tags=["Colormaps"])
    return app
