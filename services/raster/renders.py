"""Render defaults: the collection's ``renders`` (render extension) apply when a request does not say otherwise.

Each titiler parameter family gets a dependency that first reads the usual query parameters and only
fills in what is missing from the render chosen for the request (the one of the requested assets, else of
the main asset): ``assets``/``expression``, ``nodata``, ``colormap_name`` and ``rescale``. Colormap and
rescale defaults are for pictures; data formats (``.npy``, ``.tif``, ``.pngraw``) get the values as stored.

The dependency functions keep every parameter optional, so titiler's ``check_query_params`` (WMTS layers,
render links) can call them with query parameters only.
"""

import inspect
import json
import re
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Annotated, Any, NamedTuple, TypeVar, cast
from urllib.parse import urlencode

from attrs import define
from fastapi import Depends, HTTPException, Path, Query, Request
from pydantic import AfterValidator
from rio_tiler.colormap import cmap as default_cmap
from rio_tiler.errors import InvalidColorMapName
from rio_tiler.types import AssetType, ColorMapType
from titiler.core.dependencies import (
    AssetsExprParams,
    AssetsParams,
    ColorMapParams,
    DatasetParams,
    DefaultDependency,
    ImageRenderingParams,
    _parse_asset,
)
from titiler.core.factory import FactoryExtension, TilerFactory
from titiler.core.utils import check_query_params
from titiler.extensions.render import RenderItemList, RenderItemWithLinks, _adapt_render_for_v2

RAW_FORMATS = frozenset({"npy", "tif", "pngraw"})
"""Output formats that carry data values: no colormap or rescale by default."""
_BAND = re.compile(r"b([1-9]\d*)")
T = TypeVar("T")
QUERY_KEYS = ("assets", "expression", "rescale", "nodata", "colormap_name", "colormap", "color_formula", "resampling")


def _optional_assets(values: list[str] | None) -> list[AssetType] | None:
    return _parse_asset(values) if values else None


OptionalAssets = Annotated[
    list[str] | None,
    AfterValidator(_optional_assets),
    Query(title="Asset names", description="Asset names, e.g. `velocity` or `velocity|bidx=3`."),
]


@dataclass
class LayerParams(AssetsExprParams):
    """titiler's assets/expression parameters, with ``assets`` optional (default: the render's)."""

    assets: OptionalAssets = None  # type: ignore[assignment]


@dataclass
class OptionalAssetsParams(AssetsParams):
    """titiler's assets parameter of ``/info`` and ``/asset_statistics``, optional (default: every COG asset)."""

    assets: OptionalAssets = None  # type: ignore[assignment]

    def __post_init__(self) -> None:
        self.assets = self.assets or [":all:"]  # titiler's "every asset"


@dataclass
class SearchOptions(DefaultDependency):
    """What a collection mosaic searches for: items having these assets."""

    assets: list[str] | None = None


QUERY_DEPENDENCIES: list[Callable[..., Any]] = [LayerParams, DatasetParams, ColorMapParams, ImageRenderingParams]
"""Query-only validation of a tile URL's parameters (WMTS layers, render links). titiler's ``check_query_params``
calls these synchronously: they stay the plain classes, not their :func:`inline` coroutines."""


@dataclass(frozen=True)
class RenderDefaults:
    """What applies to one request when its parameters leave it open."""

    assets: tuple[str, ...] = ()
    expression: str | None = None
    rescale: tuple[str, ...] = ()
    """``min,max`` strings, like the ``rescale`` query parameter."""
    colormap_name: str | None = None
    nodata: float | None = None
    visual: bool = True
    """The output is a picture (not ``.npy``/``.tif``): colormap and rescale defaults apply."""


def asset_names(assets: Sequence[AssetType | str]) -> list[str]:
    """``velocity`` for ``velocity``, ``velocity|bidx=3`` or ``{"name": "velocity", ...}``."""
    return [a.split("|", 1)[0] if isinstance(a, str) else str(a["name"]) for a in assets]


def adapted(render: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a render in titiler v2 form (``asset_bidx``/``asset_expression`` folded into ``assets``)."""
    copy = json.loads(json.dumps(render))
    _adapt_render_for_v2(copy)
    return cast(dict[str, Any], copy)


def usable_renders(renders: Mapping[str, Mapping[str, Any]], available: Collection[str]) -> dict[str, dict[str, Any]]:
    """The renders whose assets are all among ``available``, in titiler v2 form."""
    found = {name: adapted(render) for name, render in renders.items() if isinstance(render, Mapping)}
    return {
        name: render
        for name, render in found.items()
        if (names := asset_names(render.get("assets") or [])) and set(names) <= set(available)
    }


def pick_render(
    renders: Mapping[str, Mapping[str, Any]], available: Collection[str], requested: Sequence[str], main: str | None
) -> dict[str, Any] | None:
    """The render of the requested assets, else of the main asset, else the first usable one."""
    usable = list(usable_renders(renders, available).values())
    if requested:
        return next((r for r in usable if set(asset_names(r["assets"])) == set(requested)), None)
    preferred = [r for r in usable if main in asset_names(r["assets"])]
    return next(iter(preferred or usable), None)


def render_defaults(
    renders: Mapping[str, Mapping[str, Any]],
    available: Sequence[str],
    requested: Sequence[str],
    main: str | None,
    band_count: Callable[[str], int],
    visual: bool,
) -> RenderDefaults:
    """The defaults of a request for ``requested`` assets among ``available``."""
    render = pick_render(renders, available, requested, main)
    if render is None:
        fallback = main if main in available else next(iter(available), None)
        return RenderDefaults(assets=(fallback,) if fallback and not requested else (), visual=visual)
    assets = tuple(str(a) for a in render["assets"])
    expression = render.get("expression")
    if expression is None and len(assets) == 1 and "|" not in assets[0] and band_count(assets[0]) > 1:
        expression = "b1"  # a colormap needs one band; the render should name it (e.g. "expression": "b3")
    return RenderDefaults(
        assets=assets,
        expression=expression,
        rescale=tuple(",".join(str(v) for v in pair) for pair in render.get("rescale") or []),
        colormap_name=render.get("colormap_name"),
        nodata=render.get("nodata"),
        visual=visual,
    )


def render_band(render: Mapping[str, Any] | None) -> int:
    """The 1-based band a single-band render draws (``expression`` ``bN``), else 1."""
    match = _BAND.fullmatch(str((render or {}).get("expression") or "b1").strip())
    return int(match.group(1)) if match else 1


def render_query(render: Mapping[str, Any]) -> dict[str, Any]:
    """The tile-URL query parameters of a render."""
    query: dict[str, Any] = {}
    for key in QUERY_KEYS:
        value = render.get(key)
        if value is None:
            continue
        if key == "rescale":
            value = [",".join(str(v) for v in pair) for pair in value]
        elif key == "colormap":
            value = json.dumps(value)
        query[key] = value
    return query


def forwarded(request: Request, names: Collection[str]) -> tuple[tuple[str, str], ...]:
    """The request's parameters named ``names`` (e.g. a signed URL's), to repeat in the URLs made for it."""
    return tuple((k, v) for k, v in request.query_params.multi_items() if k in names)


def requested_assets(request: Request) -> list[str]:
    """The asset names of the request's ``assets`` parameters."""
    return asset_names(request.query_params.getlist("assets"))


def is_visual(request: Request) -> bool:
    """Whether the request's output is a picture (path ``{format}`` not a data format)."""
    return request.path_params.get("format") not in RAW_FORMATS


class DefaultDependencies(NamedTuple):
    """titiler dependencies that fall back to a render (see :func:`default_dependencies`).

    They only combine values, so they are coroutines: FastAPI calls them in the event loop instead of handing
    each to its thread pool (a round trip per dependency and request).
    """

    layer: Callable[..., Awaitable[LayerParams]]
    dataset: Callable[..., Awaitable[DatasetParams]]
    colormap: Callable[..., Awaitable[ColorMapType | None]]
    rendering: Callable[..., Awaitable[ImageRenderingParams]]
    search: Callable[..., Awaitable[SearchOptions]]


def awaited(function: Callable[..., Awaitable[T]]) -> Callable[..., T]:
    """A coroutine dependency, typed as the plain callable titiler's factories declare (FastAPI awaits it)."""
    return cast(Callable[..., T], function)


def as_dependency(function: Callable[..., Awaitable[DefaultDependency]]) -> type[DefaultDependency]:
    """A function returning the parameters, where titiler's factories type a parameters class (both are called)."""
    return cast(type[DefaultDependency], function)


def inline(dependency: Callable[..., T]) -> Callable[..., Awaitable[T]]:
    """A pure dependency (a titiler parameters class, a query parser) as a coroutine with the same parameters:
    FastAPI calls it in the event loop, where it would hand a plain callable to its thread pool (one round trip
    per dependency and request: about 0.4 ms each, ten per tile)."""

    async def call(**values: Any) -> T:
        return dependency(**values)

    call.__signature__ = inspect.signature(dependency, eval_str=True)  # type: ignore[attr-defined]
    call.__name__ = call.__qualname__ = getattr(dependency, "__name__", "dependency")
    call.__doc__ = dependency.__doc__
    return call


INLINE_LAYER = inline(LayerParams)
INLINE_DATASET = inline(DatasetParams)
INLINE_COLORMAP = inline(ColorMapParams)
INLINE_RENDERING = inline(ImageRenderingParams)


def band_selection(assets: list[AssetType], expression: str | None) -> tuple[list[AssetType], str | None]:
    """The assets and expression to read: a single-band expression (``bN``) of one asset becomes that band's
    selection (``asset|bidx=N``), so rio-tiler reads and warps that band only (with its own mask), not every band of
    the asset to keep one. Defaults and explicit ``assets=velocity&expression=b3`` (the URLs of WMTS layers and
    time steps) read alike."""
    band = _BAND.fullmatch((expression or "").strip())
    if band is not None and len(assets) == 1 and isinstance(assets[0], str) and "|" not in assets[0]:
        return _parse_asset([f"{assets[0]}|bidx={band.group(1)}"]), None
    return assets, expression


def default_dependencies(source: Callable[..., RenderDefaults | Awaitable[RenderDefaults]]) -> DefaultDependencies:
    """Layer, dataset, colormap, rendering and search dependencies falling back to ``source``'s defaults."""

    async def layer(
        params: Annotated[LayerParams | None, Depends(INLINE_LAYER)] = None,
        render: Annotated[RenderDefaults | None, Depends(source)] = None,
    ) -> LayerParams:
        params = params or LayerParams()
        explicit: list[AssetType] = list(params.assets or [])
        if render is None or not render.assets:
            assets, expression = explicit, params.expression
        elif not explicit and params.expression is None:
            assets, expression = _parse_asset(list(render.assets)), render.expression
        else:
            options = any(not isinstance(a, str) for a in explicit)
            assets = explicit or _parse_asset(list(render.assets))
            expression = params.expression or (None if options else render.expression)
        if not assets:
            return params
        assets, expression = band_selection(assets, expression)
        return replace(params, assets=cast(list[str], assets), expression=expression)

    async def dataset(
        params: Annotated[DatasetParams | None, Depends(INLINE_DATASET)] = None,
        render: Annotated[RenderDefaults | None, Depends(source)] = None,
    ) -> DatasetParams:
        params = params or DatasetParams()
        if render is None or render.nodata is None or params.nodata is not None:
            return params
        return replace(params, nodata=render.nodata)

    async def colormap(
        explicit: Annotated[ColorMapType | None, Depends(INLINE_COLORMAP)] = None,
        render: Annotated[RenderDefaults | None, Depends(source)] = None,
    ) -> ColorMapType | None:
        if explicit is not None or render is None or not render.visual or not render.colormap_name:
            return explicit
        try:
            return default_cmap.get(render.colormap_name)
        except InvalidColorMapName:
            return None

    async def rendering(
        params: Annotated[ImageRenderingParams | None, Depends(INLINE_RENDERING)] = None,
        render: Annotated[RenderDefaults | None, Depends(source)] = None,
    ) -> ImageRenderingParams:
        params = params or ImageRenderingParams()
        if render is None or params.rescale or not render.visual or not render.rescale:
            return params
        return replace(params, rescale=list(render.rescale))

    async def search(layer_params: Annotated[LayerParams | None, Depends(layer)] = None) -> SearchOptions:
        assets = layer_params.assets if layer_params else None
        return SearchOptions(assets=asset_names(assets) if assets else None)

    return DefaultDependencies(layer, dataset, colormap, rendering, search)


@define
class RendersExtension(FactoryExtension):
    """``/renders`` and ``/renders/{render_id}``: an item's renders with their TileJSON and WMTS links.

    titiler's ``stacRenderExtension`` links with ``?url=``, which this service does not take.
    """

    renders_of: Callable[[Any], Mapping[str, Mapping[str, Any]]]
    """The usable renders of the factory's path-dependency value."""
    forward_of: Callable[[Any], Sequence[tuple[str, str]]] = lambda src: ()
    """Query parameters to repeat in the links (signed-URL parameters)."""

    def register(self, factory: TilerFactory) -> None:  # type: ignore[override]
        """Register the endpoints on the factory's router."""

        def describe(request: Request, render_id: str, render: dict[str, Any], src: Any) -> dict[str, Any]:
            query = render_query(render)
            forward = urlencode(list(self.forward_of(src)))
            qs = "&".join(part for part in (urlencode(query, doseq=True), forward) if part)
            links = [
                {
                    "href": factory.url_for(request, "render", render_id=render_id)
                    + (f"?{forward}" if forward else ""),
                    "rel": "self",
                    "type": "application/json",
                },
                {
                    "href": factory.url_for(request, "tilejson", tileMatrixSetId="{tileMatrixSetId}") + f"?{qs}",
                    "rel": "tilesets-map",
                    "type": "application/json",
                    "title": f"TileJSON for {render_id}",
                    "templated": True,
                },
                {
                    "href": factory.url_for(request, "wmts") + f"?{qs}",
                    "rel": "tilesets-map",
                    "type": "application/xml",
                    "title": f"WMTS for {render_id}",
                },
            ]
            return {"valid": check_query_params(QUERY_DEPENDENCIES, query), "params": render, "links": links}

        @factory.router.get("/renders", response_model=RenderItemList, response_model_exclude_none=True, name="renders")
        def renders(request: Request, src: Annotated[Any, Depends(factory.path_dependency)]) -> dict[str, Any]:
            """The item's renders (from its collection) with links to draw them."""
            found = self.renders_of(src)
            self_link = {"href": str(request.url), "rel": "self", "type": "application/json"}
            described = {k: describe(request, k, dict(v), src) for k, v in found.items()}
            return {"renders": described, "links": [self_link]}

        @factory.router.get(
            "/renders/{render_id}", response_model=RenderItemWithLinks, response_model_exclude_none=True, name="render"
        )
        def render(
            request: Request,
            render_id: Annotated[str, Path()],
            src: Annotated[Any, Depends(factory.path_dependency)],
        ) -> dict[str, Any]:
            """One of the item's renders."""
            found = self.renders_of(src)
            if render_id not in found:
                raise HTTPException(status_code=404, detail=f"no render {render_id!r}")
            return describe(request, render_id, dict(found[render_id]), src)
