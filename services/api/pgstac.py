"""The pgstac backend: stac-fastapi-pgstac configured from our ``Settings``, behaving like the DuckDB backend.

pgstac stores every publication href relative to ROOT (``publish/ingest.py``). Responses turn them into
``{service}/files/{relative}`` (``services.api.urls``: ``{service}`` is the public URL or the request's service
root). The hooks are in a subclass of stac-fastapi-pgstac's ``CoreCrudClient``: items are rewritten after
``_search_base`` (which serves /search, /collections/{id}/items and /collections/{id}/items/{id}),
collections after ``get_collection`` and ``all_collections``. Relative link hrefs, which stac-fastapi resolves
against the API's base URL, are moved to /files as well.

The same subclass makes the API answer as the DuckDB backend does (one test suite runs against both):

* ``numberMatched``: pgstac's ``context`` is switched on for the API's connections (``NCDC_STAC_PGSTAC_CONTEXT``);
* queryables: the item properties that ``ingest`` registers per collection, plus ``collection``; they are the
  only terms a filter or ``sortby`` may use (``additionalProperties: false``), checked here before pgstac sees
  the request, with literals checked against the property's type;
* bad requests (CQL2, bbox, intersects, offset, pagination tokens, values PostgreSQL refuses) are 400 with a
  message, never 500; unknown ids are 404 "... not found";
* pagination tokens carry a signature of the ``sortby`` they belong to;
* collection free text (``q``) is a case-insensitive substring match of every word of a term on id, title,
  description and keywords in English and Chinese (``services.api.store.search_text``), which pgstac's
  English full-text search cannot do for Chinese;
* the landing page links every collection (``child``); collections without items have no ``items`` link.

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

import hashlib
import json
import logging
import re
from collections.abc import AsyncIterator, Collection, Iterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Annotated, Any, Literal
from urllib.parse import parse_qsl, quote, unquote_plus, urlencode, urlsplit, urlunsplit

import asyncpg
import attr
from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from psycopg.conninfo import conninfo_to_dict
from pydantic import BeforeValidator, Field
from pydantic_settings import NoDecode, SettingsConfigDict
from stac_fastapi.api.app import StacApi
from stac_fastapi.api.models import (
    EmptyRequest,
    ItemCollectionUri,
    create_get_request_model,
    create_request_model,
)
from stac_fastapi.extensions import ItemCollectionFilterExtension, SearchFilterExtension
from stac_fastapi.extensions.sort import ItemCollectionSortExtension, SearchSortExtension, SortConformanceClasses
from stac_fastapi.pgstac.config import PostgresSettings, ServerSettings, str_to_list
from stac_fastapi.pgstac.config import Settings as PgstacApiSettingsBase
from stac_fastapi.pgstac.core import CoreCrudClient, health_check
from stac_fastapi.pgstac.db import close_db_connection, connect_to_db
from stac_fastapi.pgstac.extensions.filter import FiltersClient
from stac_fastapi.pgstac.models.extensions import Extensions
from stac_fastapi.pgstac.models.links import INFERRED_LINK_RELS
from stac_fastapi.pgstac.types.search import PgstacSearch
from stac_fastapi.types.errors import InvalidQueryParameter, NotFoundError
from stac_fastapi.types.extension import ApiExtension
from stac_fastapi.types.requests import get_base_url
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware

from ncdc_stac.settings import Settings
from services.api.backends import SORT_V1_0
from services.api.cql2_sql import FilterError, column_name, parse_filter
from services.api.responses import GeoJSONBody
from services.api.search import SearchError, parse_bbox
from services.api.store import I18N_FIELD, search_text
from services.api.text_filter import search_post_model
from services.api.tile_links import add_web_map_links, raster_base_url
from services.api.transactions import admin_only
from services.api.urls import FILES_PATH, absolute_assets, api_base_url, file_href, service_base_url

if TYPE_CHECKING:
    from services.api.backends import Backend

TITLE = "NCDC STAC API (国家冰川冻土沙漠科学数据中心 STAC 接口)"
DESCRIPTION = (
    "SpatioTemporal Asset Catalog of the National Cryosphere Desert Data Center: bilingual (English, 简体中文) "
    "collections and their items, served from PostgreSQL + pgstac."
)
LANDING_ID = "ncdc-stac"
JSON = "application/json"
QUERYABLES_REL = "http://www.opengis.net/def/rel/ogc/1.0/queryables"
API_RELS = frozenset({*INFERRED_LINK_RELS, QUERYABLES_REL})
"""Link relations that the API makes (the others are stored, with hrefs relative to ROOT)."""
GEOJSON = "application/geo+json"
log = logging.getLogger(__name__)


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
    enabled_extensions: Annotated[Sequence[str], BeforeValidator(str_to_list), NoDecode] | None = (
        "sort",
        "fields",
        "filter",
        "pagination",
        "free_text",
        "collection_search",
    )
    """Not ``query``: superseded by CQL2 ``filter``, and not offered by the embedded backend either."""
    context: Literal["on", "auto", "off"] = "on"
    """pgstac's search context (``numberMatched``): ``on`` counts every search, ``auto`` estimates large ones."""


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


def postgres_settings(settings: Settings, server: Mapping[str, str] | None = None) -> DsnPostgresSettings:
    """Pool settings for ``settings.dsn``; the ``pg*`` fields are informative only.

    ``server`` adds run-time parameters of the connections (e.g. ``{"pgstac.context": "on"}``).
    """
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
        server_settings=ServerSettings(**dict(server or {})),
    )


# --- requests: checks that pgstac does not make -------------------------------------------------------------

COLUMN_KINDS = {
    "id": "string",
    "collection": "string",
    "geometry": "geometry",
    "datetime": "timestamp",
    "start_datetime": "timestamp",
    "end_datetime": "timestamp",
}
"""Kinds of the item fields that pgstac keeps in columns (their queryables may declare no ``type``)."""
COLLECTION_QUERYABLE = {"type": "string", "title": "Collection", "description": "Collection identifier"}
UNSORTABLE = frozenset({"geometry", "array", "object"})
INCOMPATIBLE = frozenset(
    {
        *(("string", k) for k in ("number", "boolean")),
        *(("number", k) for k in ("boolean", "timestamp")),
        *(("timestamp", k) for k in ("number", "boolean")),
        *(("boolean", k) for k in ("number", "timestamp")),
        *((p, k) for p in ("geometry", "array", "object") for k in ("string", "number", "boolean", "timestamp")),
    }
)
"""(property kind, literal kind) pairs that cannot be compared: a type error, as in DuckDB (numeric strings are
left to PostgreSQL, which refuses what is not a number)."""
COMPARISONS = frozenset({"=", "<>", "!=", "<", "<=", ">", ">=", "between", "in", "like"})
SPATIAL = frozenset(
    {"s_intersects", "s_equals", "s_disjoint", "s_touches", "s_within", "s_overlaps", "s_crosses", "s_contains"}
)
SPATIAL_CONVERSE = {"s_within": "s_contains", "s_contains": "s_within"}
TEMPORAL = frozenset(
    {
        "t_after",
        "t_before",
        "t_contains",
        "t_disjoint",
        "t_during",
        "t_equals",
        "t_finishedby",
        "t_finishes",
        "t_intersects",
        "t_meets",
        "t_metby",
        "t_overlappedby",
        "t_overlaps",
        "t_startedby",
        "t_starts",
    }
)
ARRAY_OPS = {"a_equals": "a_equals", "a_contains": "a_contains", "a_containedby": "a_contained_by"}
ARRAY_OPS |= {"a_contained_by": "a_contained_by", "a_overlaps": "a_overlaps"}
ITEM_INTERVAL = {"interval": [{"property": "start_datetime"}, {"property": "end_datetime"}]}
"""An item's time in pgstac: its datetime, or start to end (pgstac keeps a datetime as start = end)."""
OTHER_OPS = frozenset({"and", "or", "not", "isnull", "casei", "accenti", "upper", "lower", "+", "-", "*", "/"})
"""With the comparison, spatial, temporal and array operators: what pgstac's ``cql2_query`` translates."""


def property_kind(name: str, schema: Any) -> str | None:
    """string | number | boolean | timestamp | geometry | array | object of a queryable (``None``: not declared)."""
    if name in COLUMN_KINDS:
        return COLUMN_KINDS[name]
    if not isinstance(schema, Mapping):
        return None
    kind, fmt = schema.get("type"), schema.get("format")
    if kind in ("number", "integer"):
        return "number"
    if kind == "string":
        return "timestamp" if fmt in ("date-time", "date") else "string"
    return kind if kind in ("boolean", "array", "object") else None


def literal_kind(value: Any) -> str | None:
    """The kind of a CQL2 literal, as :func:`property_kind` names them."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, Mapping) and ("timestamp" in value or "date" in value):
        return "timestamp"
    return None


def _is_property(node: Any) -> bool:
    return isinstance(node, Mapping) and "property" in node


NEVER = {"op": "isnull", "args": [{"property": "id"}]}
"""A predicate that no item satisfies (every item has an id)."""


def predicate(node: Any) -> Any:
    """A CQL2 boolean literal as a predicate that pgstac can translate (it cannot use ``true`` as one)."""
    if isinstance(node, bool):
        return {"op": "not", "args": [NEVER]} if node else NEVER
    return node


@dataclass(frozen=True)
class FilterCheck:
    """Checks a CQL2-JSON tree against the queryables and returns it in the form pgstac translates.

    Raises :class:`~services.api.cql2_sql.FilterError` for an unknown property, an operator pgstac does not
    have, a literal of the wrong type or a spatial operator not applied to the item geometry. The result has
    lower-case operator names, ``{"bbox": [...]}`` literals as plain arrays and the geometry property first
    in spatial operators: how pgstac reads them.
    """

    queryables: Mapping[str, Any]

    def tree(self, node: Any) -> Any:
        """The checked, normalised copy of ``node``."""
        if isinstance(node, list):
            return [self.tree(value) for value in node]
        if not isinstance(node, Mapping) or "op" not in node:
            return self.operand(node)
        given = str(node["op"])
        op = given.lower()
        args = [self.tree(arg) for arg in node.get("args") or []]
        if op in SPATIAL or op == "intersects":
            return self.spatial("s_intersects" if op == "intersects" else op, args)
        op = ARRAY_OPS.get(op, op)
        if op not in COMPARISONS | TEMPORAL | OTHER_OPS and op not in ARRAY_OPS.values():
            raise FilterError(f"unsupported CQL2 operator or function: {given!r}")
        if op in COMPARISONS:
            self.compare(args)
        if op in ("and", "or", "not"):
            args = [predicate(arg) for arg in args]
        if op in ARRAY_OPS.values():
            for arg in args:
                if _is_property(arg) and self.kind(arg) not in (None, "array"):
                    raise FilterError(
                        f"the search cannot be evaluated: {op} needs an array, {arg['property']!r} is not"
                    )
        if op in TEMPORAL:  # an item's datetime spans its start and end, as in the DuckDB backend
            args = [ITEM_INTERVAL if _is_property(a) and column_name(a["property"]) == "datetime" else a for a in args]
        return {"op": op, "args": args}

    def operand(self, node: Any) -> Any:
        """A property (checked) or a literal: number, string, timestamp, date, interval, bbox, GeoJSON."""
        if not isinstance(node, Mapping):
            return node
        if "property" in node:
            self.name(str(node["property"]))
        if "interval" in node:  # its ends may be properties
            return {**node, "interval": self.tree(node["interval"])}
        return dict(node)

    def name(self, prop: str) -> str:
        """The queryable a property reference names."""
        name = column_name(prop)
        if name not in self.queryables:
            known = ", ".join(sorted(self.queryables))
            raise FilterError(f"unknown property {prop!r}; queryable properties are: {known}")
        return name

    def kind(self, node: Any) -> str | None:
        name = column_name(str(node["property"]))
        return property_kind(name, self.queryables.get(name))

    def compare(self, args: Sequence[Any]) -> None:
        properties = [arg for arg in args if _is_property(arg)]
        if len(properties) != 1:
            return
        kind = self.kind(properties[0])
        literals = [
            value for arg in args if not _is_property(arg) for value in (arg if isinstance(arg, list) else [arg])
        ]
        for literal in literals:
            if (kind, literal_kind(literal)) in INCOMPATIBLE:
                raise FilterError(
                    f"the search cannot be evaluated: {properties[0]['property']!r} is a {kind} property, "
                    f"it cannot be compared with {json.dumps(literal, ensure_ascii=False)}"
                )

    def spatial(self, op: str, args: list[Any]) -> dict[str, Any]:
        if len(args) != 2:
            raise FilterError(f"invalid CQL2 filter: {op} takes two arguments")
        first, second = args
        if _is_property(second) and not _is_property(first):
            first, second, op = second, first, SPATIAL_CONVERSE.get(op, op)
        if not _is_property(first) or self.kind(first) != "geometry" or _is_property(second):
            raise FilterError(f"the search cannot be evaluated: {op} compares the item geometry with a geometry")
        if isinstance(second, Mapping) and "bbox" in second:
            second = list(second["bbox"])
        elif not (isinstance(second, Mapping) and "type" in second and "coordinates" in second):
            raise FilterError(f"the search cannot be evaluated: {op} needs a geometry or a bbox, not {second!r}")
        return {"op": op, "args": [first, second]}


def check_sortby(sortby: Sequence[Any] | None, queryables: Mapping[str, Any]) -> None:
    """Refuse a ``sortby`` on a property that is not a queryable, or not sortable (geometry, arrays, objects)."""
    for spec in sortby or []:
        name = column_name(str(spec.field))
        kind = property_kind(name, queryables.get(name))
        if name not in queryables:
            sortable = sorted(n for n, s in queryables.items() if property_kind(n, s) not in UNSORTABLE)
            raise FilterError(f"cannot sort by unknown property {spec.field!r}; sortable: {', '.join(sortable)}")
        if kind in UNSORTABLE:
            raise FilterError(f"cannot sort by {name!r} of type {kind}")


# --- pagination tokens: pgstac's item key plus the signature of the sort --------------------------------------

TOKEN = re.compile(r"^(?P<direction>next|prev):(?P<key>[0-9a-f]+:[0-9a-f]+)\.(?P<signature>[0-9a-f]{12})$", re.I)
BAD_TOKEN = "invalid pagination token; use the href of a 'next' link as it is"
OTHER_SORT = "pagination token does not belong to this sortby; restart from the first page"


def sort_signature(sortby: Sequence[Any] | None) -> str:
    """Short digest of a ``sortby`` (``properties.`` prefixes ignored); the default sort has its own."""
    keys = [[column_name(str(s.field)), str(getattr(s.direction, "value", s.direction))] for s in sortby or []]
    return hashlib.sha256(json.dumps(keys).encode()).hexdigest()[:12]


def pgstac_token(token: str, signature: str) -> str:
    """The pgstac token (``next:<collection>:<id>`` in hex) inside one of ours, checked against the sort."""
    match = TOKEN.match(token.strip())
    if match is None:
        raise InvalidQueryParameter(BAD_TOKEN)
    if match["signature"].lower() != signature:
        raise InvalidQueryParameter(OTHER_SORT)
    return f"{match['direction'].lower()}:{match['key']}"


def _signed(token: str, signature: str) -> str:
    return f"{token}.{signature}"


def sign_paging_links(links: list[dict[str, Any]], signature: str) -> None:
    """Append the sort signature to the tokens of pgstac's ``next`` / ``prev`` links, in place."""
    for link in links:
        if link.get("rel") not in ("next", "prev", "previous"):
            continue
        body = link.get("body")
        if isinstance(body, dict) and isinstance(body.get("token"), str):
            body["token"] = _signed(body["token"], signature)
            continue
        parts = urlsplit(str(link.get("href", "")))
        query = [(k, _signed(v, signature) if k == "token" else v) for k, v in parse_qsl(parts.query, True)]
        link["href"] = urlunsplit(parts._replace(query=urlencode(query)))


# --- database errors ---------------------------------------------------------------------------------------


@contextmanager
def user_errors() -> Iterator[None]:
    """Errors that the request's values cause in pgstac (its RAISEd messages, data exceptions) as 400."""
    try:
        yield
    except FilterError as err:
        raise InvalidQueryParameter(str(err)) from None
    except (
        asyncpg.exceptions.RaiseError,  # pgstac's own checks
        asyncpg.exceptions.DataError,  # values: out of range, not a number, ...
        asyncpg.exceptions.DatatypeMismatchError,  # types that the request combines
        asyncpg.exceptions.UndefinedFunctionError,  # operators or functions missing for such types
    ) as err:
        log.info("pgstac refused a request: %s", err)
        raise InvalidQueryParameter(f"the search cannot be evaluated: {err}") from None


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
            if isinstance(link, dict) and link.get("rel") not in API_RELS and isinstance(link.get("href"), str):
                link["href"] = self.link_href(link["href"])


def request_rewriter(request: Request) -> HrefRewriter:
    """The href rewriter for a request to the STAC API."""
    return HrefRewriter(files_base=service_base_url(request) + FILES_PATH, api_base=get_base_url(request))


# --- the clients -------------------------------------------------------------------------------------------

COLLECTION_NOT_FOUND = "collection {!r} not found"
RESTRICTION = "ncdc_restriction"
"""Keyword through which ``all_collections`` hands the free-text restriction to ``_clean_search_args``."""
IMPLICIT_FIELDS = ("type", "stac_version", "id", "collection", "links")
"""Kept when ``fields`` includes only some fields (unless excluded), as the DuckDB backend does."""


async def fetch_queryables(request: Request, collections: Sequence[str] | None) -> dict[str, Any] | None:
    """Queryable name -> JSON schema for items of ``collections`` (all: ``None``); ``None`` if none exists."""
    async with request.app.state.get_connection(request, "r") as conn:
        document = await conn.fetchval("SELECT get_queryables($1::text[])", list(collections) if collections else None)
    if document is None:
        return None
    properties = dict(document.get("properties") or {})
    properties.setdefault("collection", COLLECTION_QUERYABLE)
    return properties


async def collections_with_items(request: Request, ids: Sequence[str]) -> set[str]:
    """Those of ``ids`` that have at least one item.

    One query per id: with the collection as a query parameter PostgreSQL prunes the other item partitions
    (pgstac partitions by collection); joined with a list of ids it scanned every item (70 ms at 100k items).
    """
    sql = "SELECT EXISTS (SELECT 1 FROM items WHERE collection = $1)"
    async with request.app.state.get_connection(request, "r") as conn:
        return {cid for cid in dict.fromkeys(ids) if await conn.fetchval(sql, cid)}


async def collection_renders(request: Request, ids: Collection[str]) -> dict[str, Any]:
    """Collection id -> its ``renders`` (render extension), for the web map links of its items."""
    if not ids:
        return {}
    sql = "SELECT id, content->'renders' FROM collections WHERE id = ANY($1::text[])"
    async with request.app.state.get_connection(request, "r") as conn:
        return {row[0]: row[1] for row in await conn.fetch(sql, list(ids))}


def text_matches(text: str, terms: Sequence[str]) -> bool:
    """Free text as the DuckDB backend matches it: any term; a term when each of its words is a substring."""
    return any(words and all(word in text for word in words) for words in (t.casefold().split() for t in terms))


@attr.s
class NcdcFiltersClient(FiltersClient):
    """Queryables as JSON Schema 2020-12, with ``collection``; only they may be used (no additional properties)."""

    async def get_queryables(self, request: Request, collection_id: str | None = None, **kwargs: Any) -> dict[str, Any]:
        """The queryables of one collection or, without ``collection_id``, of all."""
        with user_errors():
            properties = await fetch_queryables(request, [collection_id] if collection_id is not None else None)
        if properties is None and collection_id is not None:
            raise NotFoundError(COLLECTION_NOT_FOUND.format(collection_id))
        base = api_base_url(request)
        url = (
            f"{base}/collections/{quote(collection_id, safe='')}/queryables" if collection_id else f"{base}/queryables"
        )
        return {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": url,
            "type": "object",
            "title": "Queryables" + (f" of {collection_id}" if collection_id else ""),
            "properties": dict(sorted((properties or {}).items())),
            "additionalProperties": False,
        }


@attr.s
class NcdcCoreCrudClient(CoreCrudClient):
    """stac-fastapi-pgstac's client, answering as the DuckDB backend does (see the module documentation)."""

    # -- item search --------------------------------------------------------------------------------------

    def _clean_search_args(
        self,
        base_args: dict[str, Any],
        intersects: str | None = None,
        datetime: str | None = None,
        fields: list[str] | None = None,
        sortby: str | None = None,
        filter_query: str | None = None,
        filter_lang: str | None = None,
        q: str | list[str] | None = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """GET parameters checked (bbox, intersects, CQL2 and its CRS), then cleaned by pgstac.

        The CQL2 is parsed (and validated, which is slow) here only: pgstac gets the tree, with the collection
        restriction of a free-text search (``RESTRICTION``) and-ed to it.
        """
        restriction = kwargs.pop(RESTRICTION, None)
        tree = None
        try:
            if base_args.get("bbox") is not None:
                parse_bbox(base_args["bbox"])
            if intersects:
                geometry = json.loads(intersects)
                if not isinstance(geometry, dict) or "type" not in geometry:
                    raise SearchError("intersects must be a GeoJSON geometry")
            if filter_query:
                tree = predicate(parse_filter(filter_query, filter_lang, kwargs.get("filter_crs")))
        except json.JSONDecodeError as err:
            raise InvalidQueryParameter(f"intersects is not valid JSON: {err}") from None
        except (SearchError, FilterError) as err:
            raise InvalidQueryParameter(str(err)) from None
        kwargs.pop("filter_crs", None)
        clean = super()._clean_search_args(
            base_args, intersects=intersects, datetime=datetime, fields=fields, sortby=sortby, q=q, **kwargs
        )
        if restriction is not None:
            tree = restriction if tree is None else {"op": "and", "args": [tree, restriction]}
        if tree is not None:
            clean["filter"], clean["filter_lang"] = tree, "cql2-json"
        return clean

    async def post_search(self, search_request: PgstacSearch, request: Request, **kwargs: Any) -> Any:
        """POST /search, its CQL2 and CRS checked first."""
        filter_expr = getattr(search_request, "filter_expr", None)
        if filter_expr is not None:
            try:
                tree = parse_filter(filter_expr, "cql2-json", getattr(search_request, "filter_crs", None))
            except FilterError as err:
                raise InvalidQueryParameter(str(err)) from None
            search_request.filter_expr = tree
            search_request.filter_crs = None
        return _geojson(await super().post_search(search_request, request, **kwargs))

    async def _search_base(self, search_request: PgstacSearch, request: Request) -> Any:
        """Every item search: checked against the queryables, tokens signed, items completed and hrefs rewritten."""
        search_request.conf = None  # pgstac options are the API's (context, hydration), not the client's
        sortby = getattr(search_request, "sortby", None)
        filter_expr = getattr(search_request, "filter_expr", None)
        signature = sort_signature(sortby)
        with user_errors():
            if filter_expr is not None or sortby:
                queryables = await fetch_queryables(request, search_request.collections)
                if queryables is not None:  # else no collection is searched: nothing to check against
                    if filter_expr is not None:
                        search_request.filter_expr = predicate(FilterCheck(queryables).tree(filter_expr))
                    check_sortby(sortby, queryables)
            token = getattr(search_request, "token", None)
            if token:
                search_request.token = pgstac_token(token, signature)
            fields = getattr(search_request, "fields", None)
            if fields is not None and fields.include:
                fields.include = {*fields.include, *(f for f in IMPLICIT_FIELDS if f not in (fields.exclude or ()))}
            item_collection = await super()._search_base(search_request, request=request)
        sign_paging_links(item_collection.get("links", []), signature)
        rewriter = request_rewriter(request)
        keep_datetime = _keeps_datetime(fields)
        features = item_collection.get("features", [])
        renders = await collection_renders(request, {str(f.get("collection")) for f in features})
        raster = raster_base_url(request)
        for feature in features:
            rewriter.stac_object(feature)
            add_web_map_links(feature, raster, renders.get(str(feature.get("collection"))))
            if keep_datetime and isinstance(feature.get("properties"), dict):
                feature["properties"].setdefault("datetime", None)  # pgstac leaves out a null datetime
        return item_collection

    async def get_search(self, request: Request, **kwargs: Any) -> Any:
        """GET /search."""
        _check_query(kwargs.get("query"))
        return _geojson(await super().get_search(request, **kwargs))

    async def item_collection(self, collection_id: str, request: Request, **kwargs: Any) -> Any:
        """GET /collections/{collection_id}/items."""
        _check_query(kwargs.get("query"))
        return _geojson(await super().item_collection(collection_id, request, **kwargs))

    async def get_item(self, item_id: str, collection_id: str, request: Request, **kwargs: Any) -> Any:
        """One item; 404 names what is not found."""
        try:
            return _geojson(await super().get_item(item_id, collection_id, request=request, **kwargs))
        except NotFoundError as err:
            if str(err).startswith(COLLECTION_NOT_FOUND.format(collection_id)):
                raise
            raise NotFoundError(f"item {item_id!r} not found in collection {collection_id!r}") from None

    # -- collections --------------------------------------------------------------------------------------

    async def _present(self, request: Request, collections: list[dict[str, Any]]) -> None:
        """Hrefs rewritten; a collection without items loses its ``items`` and queryables links."""
        rewriter = request_rewriter(request)
        with_items = await collections_with_items(request, [str(c.get("id")) for c in collections])
        for collection in collections:
            rewriter.stac_object(collection)
            if collection.get("id") not in with_items and isinstance(collection.get("links"), list):
                collection["links"] = [
                    link for link in collection["links"] if link.get("rel") not in ("items", QUERYABLES_REL)
                ]
            add_web_map_links(collection, raster_base_url(request))

    async def get_collection(self, collection_id: str, request: Request, **kwargs: Any) -> Any:
        """One collection."""
        try:
            collection = await super().get_collection(collection_id, request=request, **kwargs)
        except NotFoundError:
            raise NotFoundError(COLLECTION_NOT_FOUND.format(collection_id)) from None
        await self._present(request, [collection])
        return collection

    async def all_collections(self, request: Request, **kwargs: Any) -> Any:
        """All collections, or a collection search; ``q`` matched as by the DuckDB backend."""
        offset = kwargs.get("offset")
        if offset is not None and offset < 0:
            raise InvalidQueryParameter("offset must not be negative")
        _check_query(kwargs.get("query"))
        terms = kwargs.pop("q", None)
        if terms:
            await self._restrict_to_text(request, [terms] if isinstance(terms, str) else list(terms), kwargs)
        with user_errors():
            result = await super().all_collections(request, **kwargs)
        body = json.loads(bytes(result.body)) if isinstance(result, Response) else result
        await self._present(request, body.get("collections", []))
        # the fields extension skips validation with a ready response
        return JSONResponse(body, status_code=result.status_code) if isinstance(result, Response) else body

    async def _restrict_to_text(self, request: Request, terms: list[str], kwargs: dict[str, Any]) -> None:
        """Turn free text into ``id IN (matching collections)``, for ``_clean_search_args`` (which and-s it with
        the request's own filter)."""
        if kwargs.get("query"):
            raise InvalidQueryParameter("q cannot be combined with query; use filter")
        sql = (
            "SELECT jsonb_build_object('id', id, 'title', content->'title', 'description', content->'description',"
            " 'keywords', content->'keywords', $1::text, content->$1) FROM collections"
            " WHERE content->>'type' = 'Collection'"
        )
        async with request.app.state.get_connection(request, "r") as conn:
            documents = [row[0] for row in await conn.fetch(sql, I18N_FIELD)]
        ids = sorted(str(d["id"]) for d in documents if text_matches(search_text(d), terms))
        restriction: dict[str, Any] = {"op": "in", "args": [{"property": "id"}, ids]} if ids else NEVER
        kwargs[RESTRICTION] = restriction

    async def landing_page(self, **kwargs: Any) -> Any:
        """Landing page, with a ``child`` link per collection."""
        request: Request = kwargs["request"]
        page = await super().landing_page(**kwargs)
        sql = "SELECT id, content->>'title' FROM collections WHERE content->>'type' = 'Collection' ORDER BY id"
        async with request.app.state.get_connection(request, "r") as conn:
            rows = await conn.fetch(sql)
        base = api_base_url(request)
        page["links"] += [
            {"rel": "child", "type": JSON, "title": title or cid, "href": f"{base}/collections/{quote(cid, safe='')}"}
            for cid, title in rows
        ]
        return page


def _check_query(query: str | None) -> None:
    """The query extension's GET parameter must be a JSON object (stac-fastapi-pgstac fails with a 500 else)."""
    if not query:
        return
    try:
        value = json.loads(unquote_plus(query))
    except json.JSONDecodeError as err:
        raise InvalidQueryParameter(f"query is not valid JSON: {err}") from None
    if not isinstance(value, dict):
        raise InvalidQueryParameter("query must be a JSON object")


def _geojson(result: Any) -> Response:
    """An item or item collection as a GeoJSON response (the ready one that stac-fastapi-pgstac makes with
    ``fields`` typed as GeoJSON)."""
    if isinstance(result, Response):
        result.headers["content-type"] = GEOJSON
        return result
    return GeoJSONBody(result)


def _keeps_datetime(fields: Any) -> bool:
    """Whether the ``fields`` of a search keep ``properties.datetime`` (so that a null one is shown)."""
    include = set(getattr(fields, "include", None) or ())
    exclude = set(getattr(fields, "exclude", None) or ())
    if "properties.datetime" in include:
        return True
    if include:
        return "properties" in include and "properties.datetime" not in exclude
    return not ({"properties", "properties.datetime"} & exclude)


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
            extra_extensions=self.other_extensions,  # transactions (admins only), when enabled
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
        search_post = search_post_model(self.search_extensions, PgstacSearch)
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
    filters = NcdcFiltersClient()
    extensions = Extensions(
        search_map={
            "filter": SearchFilterExtension(client=filters),
            "sort": SearchSortExtension(conformance_classes=[SortConformanceClasses.ITEM_SEARCH_SORT, SORT_V1_0[0]]),
        },
        item_collection_map={
            "filter": ItemCollectionFilterExtension(client=filters),
            "sort": ItemCollectionSortExtension(
                conformance_classes=[SortConformanceClasses.FEATURES_SORT, SORT_V1_0[1]]
            ),
        },
        settings=api,
    )
    return PgstacParts(
        api_settings=api,
        postgres=postgres_settings(settings, {"pgstac.context": api.context}),
        client=NcdcCoreCrudClient(  # type: ignore[call-arg]  # attrs fields of the untyped base class
            pgstac_search_model=search_post_model(extensions.search, PgstacSearch),
            landing_page_id=api.stac_fastapi_landing_id,
        ),
        search_extensions=extensions.search,
        item_collection_extensions=extensions.item_collection,
        collection_search_extensions=(
            extensions.get_enabled_extensions("collection_search")
            if api.enabled_extensions is None or "collection_search" in api.enabled_extensions
            else []
        ),
        other_extensions=admin_only([*extensions.transaction, *extensions.catalog, *extensions.extra]),
        write_pool=bool(extensions.transaction),
    )


def pgstac_backend(settings: Settings) -> Backend:
    """``BACKENDS["pgstac"]``: PostgreSQL + pgstac at ``settings.dsn`` (fill with ``ncdc-stac ingest``)."""
    return pgstac_parts(settings).backend()
