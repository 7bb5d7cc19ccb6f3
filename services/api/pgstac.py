"""The pgstac backend: stac-fastapi-pgstac configured from our ``Settings``, asset hrefs served from /files.

pgstac stores every publication href relative to ROOT (``publish/ingest.py``). Responses turn them into
``{service}/files/{relative}`` (``services.api.urls``: ``{service}`` is the public URL or the request's service
root). The hook is a subclass of stac-fastapi-pgstac's ``CoreCrudClient``: items are rewritten after
``_search_base`` (which serves /search, /collections/{id}/items and /collections/{id}/items/{id}),
collections after ``get_collection`` and ``all_collections``. Relative link hrefs, which stac-fastapi resolves
against the API's base URL, are moved to /files as well.

Two ways in:

* :func:`pgstac_backend` - a ``services.api.backends.Backend`` for ``BACKENDS["pgstac"]``;
* :func:`pgstac_parts` - the same pieces plus ``stac_api()`` for a standalone ``StacApi`` (mount its ``app``
  with ``services.api.urls.MountedApp``; Starlette does not run a mounted app's lifespan, so enter
  ``parts.lifespan(stac_app)`` in the parent's).

stac-fastapi-pgstac reads its settings from unprefixed environment variables (``ENABLED_EXTENSIONS``,
``PGHOST``, ``ROOT_PATH``, ...); here only prefixed ones count: ``NCDC_STAC_PGSTAC_*`` for the API (e.g.
``NCDC_STAC_PGSTAC_ENABLED_EXTENSIONS=query,sort``), ``NCDC_STAC_PG_*`` for the pool sizes, and the database
is ``NCDC_STAC_DSN`` alone.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode, urlsplit

import attr
from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from psycopg.conninfo import conninfo_to_dict
from pydantic import Field
from pydantic_settings import SettingsConfigDict
from stac_fastapi.api.app import StacApi
from stac_fastapi.api.models import (
    EmptyRequest,
    ItemCollectionUri,
    create_get_request_model,
    create_post_request_model,
    create_request_model,
)
from stac_fastapi.pgstac.config import PostgresSettings
from stac_fastapi.pgstac.config import Settings as PgstacApiSettingsBase
from stac_fastapi.pgstac.core import CoreCrudClient, health_check
from stac_fastapi.pgstac.db import close_db_connection, connect_to_db
from stac_fastapi.pgstac.models.extensions import Extensions
from stac_fastapi.pgstac.models.links import INFERRED_LINK_RELS
from stac_fastapi.pgstac.types.search import PgstacSearch
from stac_fastapi.types.extension import ApiExtension
from stac_fastapi.types.requests import get_base_url
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware

from ncdc_stac.settings import Settings
from services.api.urls import FILES_PATH, absolute_assets, file_href, service_base_url

if TYPE_CHECKING:
    from services.api.backends import Backend

TITLE = "NCDC STAC API (国家冰川冻土沙漠科学数据中心 STAC 接口)"
DESCRIPTION = (
    "SpatioTemporal Asset Catalog of the National Cryosphere Desert Data Center: bilingual (English, 简体中文) "
    "collections and their items, served from PostgreSQL + pgstac."
)
LANDING_ID = "ncdc-stac"


def _package_version() -> str:
    try:
        return version("ncdc-stac")
    except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "0"


class PgstacApiSettings(PgstacApiSettingsBase):
    """stac-fastapi-pgstac's API settings, read from ``NCDC_STAC_PGSTAC_*`` instead of unprefixed variables."""

    model_config = SettingsConfigDict(env_prefix="NCDC_STAC_PGSTAC_", env_file=".env", extra="ignore")

    stac_fastapi_title: str = TITLE
    stac_fastapi_description: str = DESCRIPTION
    stac_fastapi_version: str = Field(default_factory=_package_version)
    stac_fastapi_landing_id: str = LANDING_ID


class DsnPostgresSettings(PostgresSettings):
    """``PostgresSettings`` whose pools connect to one DSN (asyncpg URL) rather than ``PG*`` variables."""

    model_config = SettingsConfigDict(env_prefix="NCDC_STAC_PG_", env_file=".env", extra="ignore")

    dsn: str

    @property
    def connection_string(self) -> str:
        """The DSN given, for asyncpg."""
        return self.dsn


def asyncpg_dsn(dsn: str) -> str:
    """A libpq DSN (URL or ``key=value`` string) as a ``postgresql://`` URL that asyncpg accepts."""
    if urlsplit(dsn).scheme in {"postgres", "postgresql"}:
        return dsn
    params = conninfo_to_dict(dsn)
    user = quote(str(params.pop("user", "")), safe="")
    password = params.pop("password", None)
    auth = f"{user}:{quote(str(password), safe='')}@" if password is not None else (f"{user}@" if user else "")
    host = str(params.pop("host", ""))
    port = params.pop("port", None)
    netloc = ""
    if host.startswith("/"):  # unix socket directory: asyncpg takes it as a query parameter
        params["host"] = host
        if port is not None:
            params["port"] = port
    else:
        netloc = host + (f":{port}" if port is not None else "")
    database = quote(str(params.pop("dbname", "")), safe="")
    query = urlencode({k: str(v) for k, v in params.items()})
    return f"postgresql://{auth}{netloc}/{database}" + (f"?{query}" if query else "")


def postgres_settings(settings: Settings) -> DsnPostgresSettings:
    """Pool settings for ``settings.dsn``; the ``pg*`` fields are informative only."""
    if settings.dsn is None:
        raise ValueError("the pgstac backend needs a database: set NCDC_STAC_DSN")
    raw = settings.dsn.get_secret_value()
    params = conninfo_to_dict(raw)
    return DsnPostgresSettings(
        dsn=asyncpg_dsn(raw),
        pguser=str(params.get("user", "")),
        pgpassword=str(params.get("password", "")),
        pghost=str(params.get("host", "")),
        pgport=int(params.get("port") or 5432),
        pgdatabase=str(params.get("dbname", "")),
    )


# --- hrefs -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HrefRewriter:
    """Turns stored (ROOT-relative) hrefs into URLs under ``files_base`` for one request."""

    files_base: str
    """``{service}/files`` (no trailing slash)."""
    api_base: str
    """The STAC API's base URL (trailing slash), against which stac-fastapi resolved relative link hrefs."""

    def link_href(self, href: str) -> str:
        """A link href; a relative one that stac-fastapi already resolved against the API base goes to /files."""
        if href.startswith(self.api_base):
            return file_href(href[len(self.api_base) :], self.files_base)
        return file_href(href, self.files_base)

    def stac_object(self, obj: Any) -> None:
        """Rewrite an item's or collection's asset hrefs and non-inferred link hrefs, in place."""
        if not isinstance(obj, dict):
            return
        if isinstance(obj.get("assets"), dict):
            absolute_assets(obj["assets"], self.files_base)
        for link in obj.get("links") or []:
            if (
                isinstance(link, dict)
                and link.get("rel") not in INFERRED_LINK_RELS
                and isinstance(link.get("href"), str)
            ):
                link["href"] = self.link_href(link["href"])


def request_rewriter(request: Request) -> HrefRewriter:
    """The href rewriter for a request to the STAC API."""
    return HrefRewriter(files_base=service_base_url(request) + FILES_PATH, api_base=get_base_url(request))


@attr.s
class NcdcCoreCrudClient(CoreCrudClient):
    """stac-fastapi-pgstac's client, serving publication hrefs as URLs under ``{service}/files/``."""

    async def _search_base(self, search_request: PgstacSearch, request: Request) -> Any:
        """Items of /search and /collections/{id}/items[/{id}], hrefs rewritten."""
        item_collection = await super()._search_base(search_request, request=request)
        rewriter = request_rewriter(request)
        for feature in item_collection.get("features", []):
            rewriter.stac_object(feature)
        return item_collection

    async def get_collection(self, collection_id: str, request: Request, **kwargs: Any) -> Any:
        """One collection, hrefs rewritten."""
        collection = await super().get_collection(collection_id, request=request, **kwargs)
        request_rewriter(request).stac_object(collection)
        return collection

    async def all_collections(self, request: Request, **kwargs: Any) -> Any:
        """All collections (or a collection search), hrefs rewritten."""
        result = await super().all_collections(request, **kwargs)
        rewriter = request_rewriter(request)
        if isinstance(result, Response):  # the fields extension skips validation with a ready response
            body = json.loads(bytes(result.body))
            for collection in body.get("collections", []):
                rewriter.stac_object(collection)
            return JSONResponse(body, status_code=result.status_code)
        for collection in result.get("collections", []):
            rewriter.stac_object(collection)
        return result


# --- composition -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PgstacParts:
    """Everything a ``StacApi`` over pgstac needs, composed like ``stac_fastapi.pgstac.app.instantiate_api``."""

    api_settings: PgstacApiSettings
    postgres: DsnPostgresSettings
    client: NcdcCoreCrudClient
    search_extensions: list[ApiExtension]
    item_collection_extensions: list[ApiExtension]
    collection_search_extensions: list[ApiExtension]
    other_extensions: list[ApiExtension]
    """Transactions and catalogs, when enabled by ``NCDC_STAC_PGSTAC_*``."""
    write_pool: bool = False
    """Whether the transactions extension needs a write pool."""

    def lifespan(self, app: FastAPI) -> AbstractAsyncContextManager[None]:
        """Open the asyncpg pool(s) on ``app.state`` (the app serving the STAC routes), close them at the end.

        stac-fastapi-pgstac's client reads its options (``use_api_hydrate``, ...) from ``app.state.settings``;
        when the app was built with plain ``ApiSettings`` they are upgraded to :class:`PgstacApiSettings`.
        """

        @asynccontextmanager
        async def pools() -> AsyncIterator[None]:
            current = getattr(app.state, "settings", None)
            if not isinstance(current, PgstacApiSettingsBase):
                given = current.model_dump() if current is not None else {}
                app.state.settings = self.api_settings.model_copy(
                    update={k: v for k, v in given.items() if k in PgstacApiSettings.model_fields}
                )
            await connect_to_db(app, postgres_settings=self.postgres, add_write_connection_pool=self.write_pool)
            try:
                yield
            finally:
                await close_db_connection(app)

        return pools()

    def backend(self) -> Backend:
        """The pieces as a ``services.api.backends.Backend``."""
        from services.api.backends import Backend

        return Backend(
            client=self.client,
            search_extensions=self.search_extensions,
            item_collection_extensions=self.item_collection_extensions,
            collection_search_extensions=self.collection_search_extensions,
            search_post_base=PgstacSearch,
            lifespan=self.lifespan,
        )

    def stac_api(self, app: FastAPI | None = None, router: APIRouter | None = None) -> StacApi:
        """A ``StacApi`` on ``app`` (default: a new FastAPI whose lifespan opens the pools)."""
        api = self.api_settings
        if app is None:
            app = FastAPI(
                openapi_url=api.openapi_url,
                docs_url=api.docs_url,
                redoc_url=None,
                title=api.stac_fastapi_title,
                version=api.stac_fastapi_version,
                description=api.stac_fastapi_description,
                lifespan=self.lifespan,
            )
        search_post = create_post_request_model(self.search_extensions, base_model=PgstacSearch)
        items_get: type[Any] = ItemCollectionUri
        if self.item_collection_extensions:
            items_get = create_request_model(
                model_name="ItemCollectionUri",
                base_model=ItemCollectionUri,
                extensions=self.item_collection_extensions,
                request_type="GET",
            )
        extensions = [*self.search_extensions, *self.item_collection_extensions, *self.other_extensions]
        collections_get: type[Any] = EmptyRequest
        if self.collection_search_extensions:
            from stac_fastapi.extensions import CollectionSearchExtension

            collection_search = CollectionSearchExtension.from_extensions(self.collection_search_extensions)
            collections_get = collection_search.GET
            extensions.append(collection_search)
        return StacApi(
            app=app,
            router=router or APIRouter(prefix=api.prefix_path),
            settings=api,
            extensions=extensions,
            client=self.client,
            response_class=JSONResponse,
            items_get_request_model=items_get,
            search_get_request_model=create_get_request_model(self.search_extensions),
            search_post_request_model=search_post,
            collections_get_request_model=collections_get,
            middlewares=[
                Middleware(
                    CORSMiddleware,
                    allow_origins=api.cors_origins,
                    allow_origin_regex=api.cors_origin_regex,
                    allow_methods=api.cors_methods,
                    allow_credentials=api.cors_credentials,
                    allow_headers=api.cors_headers,
                    max_age=600,
                )
            ],
            health_check=health_check,
            add_metrics=api.enable_metrics,
        )


def pgstac_parts(settings: Settings) -> PgstacParts:
    """Compose stac-fastapi-pgstac for ``settings`` (``settings.dsn`` is the database)."""
    api = PgstacApiSettings()
    extensions = Extensions(settings=api)
    return PgstacParts(
        api_settings=api,
        postgres=postgres_settings(settings),
        client=NcdcCoreCrudClient(  # type: ignore[call-arg]  # attrs fields of the untyped base class
            pgstac_search_model=create_post_request_model(extensions.search, base_model=PgstacSearch),
            landing_page_id=api.stac_fastapi_landing_id,
        ),
        search_extensions=extensions.search,
        item_collection_extensions=extensions.item_collection,
        collection_search_extensions=(
            extensions.get_enabled_extensions("collection_search")
            if api.enabled_extensions is None or "collection_search" in api.enabled_extensions
            else []
        ),
        other_extensions=[*extensions.transaction, *extensions.catalog, *extensions.extra],
        write_pool=bool(extensions.transaction),
    )


def pgstac_backend(settings: Settings) -> Backend:
    """``BACKENDS["pgstac"]``: PostgreSQL + pgstac at ``settings.dsn`` (fill with ``ncdc-stac ingest``)."""
    return pgstac_parts(settings).backend()
