"""The STAC API application and the seam where search backends plug in.

A backend is a function ``Settings -> Backend``: the stac-fastapi core client, the extensions it
implements for each endpoint family, and whatever it keeps on ``app.state``. :data:`BACKENDS` maps
``Settings.backend`` to that function; :func:`create_stac_app` builds the same ``StacApi`` around
any of them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from types import MappingProxyType
from typing import Any, cast

from brotli_asgi import BrotliMiddleware
from fastapi import APIRouter, FastAPI
from pydantic import BaseModel
from stac_fastapi.api.app import StacApi
from stac_fastapi.api.models import (
    EmptyRequest,
    ItemCollectionUri,
    create_get_request_model,
    create_request_model,
)
from stac_fastapi.extensions import (
    CollectionSearchExtension,
    FieldsExtension,
    FreeTextExtension,
    ItemCollectionFilterExtension,
    OffsetPaginationExtension,
    SearchFilterExtension,
    TokenPaginationExtension,
)
from stac_fastapi.extensions.fields import FieldsConformanceClasses
from stac_fastapi.extensions.free_text import FreeTextConformanceClasses
from stac_fastapi.extensions.sort import (
    CollectionSearchSortExtension,
    ItemCollectionSortExtension,
    SearchSortExtension,
    SortConformanceClasses,
)
from stac_fastapi.types.config import ApiSettings
from stac_fastapi.types.core import AsyncBaseCoreClient, BaseCoreClient
from stac_fastapi.types.extension import ApiExtension
from stac_fastapi.types.search import APIRequest, BaseSearchPostRequest
from starlette.middleware import Middleware

from ncdc_stac.settings import Settings
from services.api.duckdb_client import DuckDBClient, DuckDBFiltersClient
from services.api.store import DuckDBStore
from services.api.text_filter import search_post_model

LANDING_ID = "ncdc-stac"
STAC_VERSION = "1.1.0"
SORT_V1_0 = ("https://api.stacspec.org/v1.0.0/item-search#sort", "https://api.stacspec.org/v1.0.0/ogcapi-features#sort")
"""Sort 1.0 conformance too: pystac-client only recognises ``v1.0.*`` classes."""
Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]
TITLE = "NCDC STAC API (国家冰川冻土沙漠科学数据中心 STAC 接口)"
DESCRIPTION = (
    "SpatioTemporal Asset Catalog of the National Cryosphere Desert Data Center: bilingual (English, 简体中文) "
    "collections and their items, searchable by place, time, CQL2 filters and free text."
)


@dataclass
class Backend:
    """What a search backend contributes to the STAC API."""

    client: BaseCoreClient | AsyncBaseCoreClient
    search_extensions: list[ApiExtension]
    """Extensions of ``/search`` (filter, sort, fields, pagination, ...)."""
    item_collection_extensions: list[ApiExtension]
    """Extensions of ``/collections/{id}/items``."""
    collection_search_extensions: list[ApiExtension]
    """Extensions of ``/collections`` (free text, sort, fields, pagination); empty: no collection search."""
    extra_extensions: list[ApiExtension] = field(default_factory=list)
    """Other extensions (e.g. transactions), registered as they are."""
    search_post_base: type[BaseModel] = BaseSearchPostRequest
    """Base model of the POST /search body (pgstac has its own)."""
    state: dict[str, Any] = field(default_factory=dict)
    """Set on the STAC app's ``state`` (e.g. the DuckDB store)."""
    lifespan: Lifespan | None = None
    """Startup/shutdown of the backend's resources, run inside the service's lifespan."""


def duckdb_backend(settings: Settings) -> Backend:
    """Embedded backend: DuckDB over the stac-geoparquet files of ``settings.root``."""
    store = DuckDBStore.from_settings(settings)
    filters = DuckDBFiltersClient()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store.connect()  # again, if a previous run of the app closed it
        try:
            yield
        finally:
            store.close()

    return Backend(
        client=DuckDBClient(landing_page_id=LANDING_ID),
        search_extensions=[
            SearchFilterExtension(client=filters),
            SearchSortExtension(conformance_classes=[SortConformanceClasses.ITEM_SEARCH_SORT, *SORT_V1_0[:1]]),
            FieldsExtension(),
            TokenPaginationExtension(),
        ],
        item_collection_extensions=[
            ItemCollectionFilterExtension(client=filters),
            ItemCollectionSortExtension(conformance_classes=[SortConformanceClasses.FEATURES_SORT, *SORT_V1_0[1:]]),
            FieldsExtension(conformance_classes=[FieldsConformanceClasses.ITEMS]),
            TokenPaginationExtension(),
        ],
        collection_search_extensions=[
            FreeTextExtension(conformance_classes=[FreeTextConformanceClasses.COLLECTIONS]),
            CollectionSearchSortExtension(),
            FieldsExtension(conformance_classes=[FieldsConformanceClasses.COLLECTIONS]),
            OffsetPaginationExtension(),
        ],
        state={"store": store},
        lifespan=lifespan,
    )


def pgstac_backend(settings: Settings) -> Backend:
    """PostgreSQL + pgstac at ``settings.dsn`` (``services.api.pgstac``, imported only when chosen)."""
    from services.api.pgstac import pgstac_backend as build

    return build(settings)


BACKENDS: Mapping[str, Callable[[Settings], Backend]] = MappingProxyType(
    {"duckdb": duckdb_backend, "pgstac": pgstac_backend}
)


def _version() -> str:
    try:
        return version("ncdc-stac")
    except PackageNotFoundError:
        return "0"


def create_stac_app(settings: Settings) -> FastAPI:
    """The stac-fastapi application for ``settings.backend`` (to be mounted, e.g. at ``/stac``)."""
    try:
        backend = BACKENDS[settings.backend](settings)
    except KeyError:
        raise ValueError(f"unknown backend {settings.backend!r}; choose one of {', '.join(BACKENDS)}") from None
    api_settings = ApiSettings(
        stac_fastapi_title=TITLE,
        stac_fastapi_description=DESCRIPTION,
        stac_fastapi_landing_id=LANDING_ID,
        stac_fastapi_version=_version(),
        enable_direct_response=True,
    )
    items_model: type[APIRequest] = ItemCollectionUri
    if backend.item_collection_extensions:
        items_model = cast(
            type[APIRequest],
            create_request_model(
                model_name="ItemCollectionUri",
                base_model=ItemCollectionUri,
                extensions=backend.item_collection_extensions,
                request_type="GET",
            ),
        )
    collections_model: type[APIRequest] = EmptyRequest
    extensions = [*backend.search_extensions, *backend.item_collection_extensions, *backend.extra_extensions]
    if backend.collection_search_extensions:
        collection_search = CollectionSearchExtension.from_extensions(backend.collection_search_extensions)
        collections_model = collection_search.GET
        extensions.append(collection_search)
    app = FastAPI(
        title=TITLE,
        description=DESCRIPTION,
        version=api_settings.stac_fastapi_version,
        openapi_url=api_settings.openapi_url,
        docs_url=api_settings.docs_url,
        redoc_url=None,
        lifespan=backend.lifespan,
    )
    for key, value in backend.state.items():
        setattr(app.state, key, value)
    api = StacApi(
        app=app,
        router=APIRouter(),
        settings=api_settings,
        client=backend.client,
        stac_version=STAC_VERSION,
        extensions=extensions,
        search_get_request_model=create_get_request_model(backend.search_extensions),
        search_post_request_model=search_post_model(backend.search_extensions, backend.search_post_base),
        items_get_request_model=items_model,
        collections_get_request_model=collections_model,
        middlewares=[Middleware(BrotliMiddleware)],  # CORS is the root app's (services.access.add_cors)
    )
    return api.app
