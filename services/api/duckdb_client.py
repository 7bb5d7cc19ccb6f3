"""stac-fastapi clients of the embedded backend: DuckDB over the stac-geoparquet of the publication."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from functools import partial
from typing import Any, cast
from urllib.parse import quote, urlencode

import attr
from fastapi import Request
from stac_fastapi.extensions.filter.client import BaseFiltersClient
from stac_fastapi.pgstac.utils import clean_exclude_set, filter_fields
from stac_fastapi.types import stac
from stac_fastapi.types.core import BaseCoreClient
from stac_fastapi.types.errors import InvalidQueryParameter, NotFoundError
from stac_fastapi.types.rfc3339 import str_to_interval

from ncdc_stac.stac_arrow import drop_nulls, iter_items
from services.api.cql2_sql import FilterError, parse_filter
from services.api.responses import GeoJSONBody
from services.api.search import Search, SearchError, SearchParams, parse_bbox, parse_sortby
from services.api.store import CollectionEntry, DuckDBStore
from services.api.tile_links import add_web_map_links, raster_base_url
from services.api.urls import FILES_PATH as _FILES
from services.api.urls import absolute_assets, api_base_url, file_href, service_base_url

INFERRED_RELS = frozenset({"self", "root", "parent", "child", "item", "items", "collection", "next", "prev"})
IMPLICIT_FIELDS = ("type", "stac_version", "id", "collection", "links")
GEOJSON = "application/geo+json"
JSON = "application/json"
STAC_VERSION = "1.1.0"


def store_of(request: Request) -> DuckDBStore:
    """The DuckDB store of the application serving ``request``."""
    return cast(DuckDBStore, request.app.state.store)


def files_base(request: Request) -> str:
    """Base URL of the published files."""
    return service_base_url(request) + _FILES


def _fields(include: Iterable[str] = (), exclude: Iterable[str] = ()) -> tuple[frozenset[str], frozenset[str]]:
    """Normalised include/exclude sets; ``id``, ``collection`` and ``links`` stay unless excluded."""
    inc, exc = {f.strip() for f in include if f.strip()}, {f.strip() for f in exclude if f.strip()}
    if inc:
        inc |= {f for f in IMPLICIT_FIELDS if f not in exc}
    return frozenset(inc), frozenset(clean_exclude_set(exc, inc))


def _get_fields(fields: Sequence[str] | None) -> tuple[frozenset[str], frozenset[str]]:
    include = [f.lstrip("+") for f in fields or [] if not f.startswith("-")]
    exclude = [f[1:] for f in fields or [] if f.startswith("-")]
    return _fields(include, exclude)


def _interval(value: str | None) -> tuple[datetime | None, datetime | None] | None:
    parsed = str_to_interval(value)  # raises HTTPException(400) with a message
    if parsed is None:
        return None
    if isinstance(parsed, tuple):
        return parsed[0], parsed[1]
    return parsed, parsed


def _bad_request(err: Exception) -> InvalidQueryParameter:
    return InvalidQueryParameter(str(err))


def _url_with(request: Request, **params: Any) -> str:
    """The request URL (public form) with some query parameters replaced (``None`` removes one)."""
    query = [(k, v) for k, v in request.query_params.multi_items() if k not in params]
    query += [(k, str(v)) for k, v in params.items() if v is not None]
    path = request.url.path[len(request.scope.get("root_path", "")) :]
    url = api_base_url(request) + quote(path, safe="/:@!$&'()*+,;=-._~")
    return url + ("?" + urlencode(query) if query else "")


@attr.s
class DuckDBClient(BaseCoreClient):
    """STAC API core endpoints answered from the publication's DuckDB store."""

    # -- rendering ------------------------------------------------------------------------------

    def _collection(self, entry: CollectionEntry, request: Request) -> dict[str, Any]:
        base, files = api_base_url(request), files_base(request)
        document = copy.deepcopy(dict(entry.document))
        url = f"{base}/collections/{quote(entry.id, safe='')}"
        links = [
            {**link, "href": file_href(str(link.get("href", "")), files, entry.folder)}
            for link in document.get("links", [])
            if isinstance(link, dict) and link.get("rel") not in INFERRED_RELS
        ]
        links += [
            {"rel": "self", "type": JSON, "href": url},
            {"rel": "parent", "type": JSON, "href": f"{base}/"},
            {"rel": "root", "type": JSON, "href": f"{base}/"},
        ]
        if entry.view:
            links += [
                {"rel": "items", "type": GEOJSON, "href": f"{url}/items"},
                {
                    "rel": "http://www.opengis.net/def/rel/ogc/1.0/queryables",
                    "type": "application/schema+json",
                    "href": f"{url}/queryables",
                },
            ]
        document["links"] = links
        if isinstance(document.get("assets"), dict):
            absolute_assets(document["assets"], files, entry.folder)
        add_web_map_links(document, raster_base_url(request))
        return cast(dict[str, Any], drop_nulls(document))

    @staticmethod
    def _item(
        item: dict[str, Any], base: str, files: str, own: frozenset[str] | None, folder: str = ""
    ) -> dict[str, Any]:
        """An item (nulls dropped already) with the API's links and absolute hrefs; relative hrefs start at the
        root (items.parquet) or at ``folder`` (a static item document)."""
        properties = item.get("properties") or {}
        item["properties"] = {k: v for k, v in properties.items() if own is None or k in own}
        item["properties"].setdefault("datetime", None)
        if isinstance(item.get("assets"), dict):
            absolute_assets(item["assets"], files, folder)
        collection, item_id = str(item.get("collection", "")), str(item.get("id", ""))
        url = f"{base}/collections/{quote(collection, safe='')}"
        links = [
            {**link, "href": file_href(str(link.get("href", "")), files, folder)}
            for link in item.get("links") or []
            if isinstance(link, dict) and link.get("rel") not in INFERRED_RELS
        ]
        item["links"] = [
            {"rel": "self", "type": GEOJSON, "href": f"{url}/items/{quote(item_id, safe='')}"},
            {"rel": "parent", "type": JSON, "href": url},
            {"rel": "collection", "type": JSON, "href": url},
            {"rel": "root", "type": JSON, "href": f"{base}/"},
            *links,
        ]
        item.setdefault("type", "Feature")
        item["stac_version"] = item.get("stac_version") or STAC_VERSION
        return item

    def _features(
        self,
        items: Iterable[dict[str, Any]],
        request: Request,
        include: frozenset[str] = frozenset(),
        exclude: frozenset[str] = frozenset(),
        *,
        columns: Mapping[str, frozenset[str]] | None = None,
        folder: str = "",
    ) -> list[Any]:
        """API items of stored ones: properties limited to their collection's ``columns`` (a search over several
        collections' columns), links, absolute hrefs (relative ones start at ``folder``), fields, web-map links."""
        features = []
        collections, raster = store_of(request).collections, raster_base_url(request)
        base, files = api_base_url(request), files_base(request)
        for item in items:
            own = columns.get(str(item.get("collection"))) if columns is not None else None
            feature = filter_fields(self._item(item, base, files, own, folder), set(include), set(exclude))
            entry = collections.get(str(item.get("collection")))
            add_web_map_links(feature, raster, entry.document.get("renders") if entry else None)
            features.append(feature)
        return features

    # -- search ---------------------------------------------------------------------------------

    def _search(
        self, params: SearchParams, request: Request, post_body: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Run a search; ``post_body`` (POST /search) makes the next link a POST with the token in its body."""
        store = store_of(request)
        wanted = params.collections
        entries = (
            list(store.collections.values())
            if wanted is None
            else [store.collections[c] for c in dict.fromkeys(wanted) if c in store.collections]
        )
        try:
            with store.cursor() as cursor:
                page = Search(entries, params).run(cursor)
        except (SearchError, FilterError) as err:
            raise _bad_request(err) from None
        items = iter_items(page.table) if page.table.num_rows else ()
        features = self._features(items, request, params.include, params.exclude, columns=page.columns)
        search_url = api_base_url(request) + "/search"
        links: list[dict[str, Any]] = [
            {"rel": "self", "type": GEOJSON, "href": _url_with(request)}
            if post_body is None
            else {"rel": "self", "type": GEOJSON, "href": search_url, "method": "POST", "body": post_body},
            {"rel": "root", "type": JSON, "href": api_base_url(request) + "/"},
        ]
        if page.next_token and post_body is None:
            links.append({"rel": "next", "type": GEOJSON, "href": _url_with(request, token=page.next_token)})
        elif page.next_token and post_body is not None:
            body = {**post_body, "token": page.next_token}
            links.append({"rel": "next", "type": GEOJSON, "href": search_url, "method": "POST", "body": body})
        result: dict[str, Any] = {"type": "FeatureCollection", "features": features, "links": links}
        if page.matched is not None:
            result["numberMatched"] = page.matched
        result["numberReturned"] = len(features)
        return result

    def _params(
        self,
        *,
        collections: Sequence[str] | None = None,
        ids: Sequence[str] | None = None,
        bbox: Sequence[float] | None = None,
        intersects: Any = None,
        datetime: str | None = None,
        limit: int | None = 10,
        token: str | None = None,
        filter_expr: str | dict[str, Any] | None = None,
        filter_lang: str | None = None,
        filter_crs: str | None = None,
        sortby: Iterable[str | tuple[str, bool]] | None = None,
        fields: tuple[frozenset[str], frozenset[str]] = (frozenset(), frozenset()),
    ) -> SearchParams:
        try:
            geometry = None
            if intersects is not None:
                geometry = json.loads(intersects) if isinstance(intersects, str) else intersects
                if not isinstance(geometry, dict) or "type" not in geometry:
                    raise SearchError("intersects must be a GeoJSON geometry")
            if bbox is not None and geometry is not None:
                raise SearchError("bbox and intersects are mutually exclusive")
            return SearchParams(
                collections=list(collections) if collections is not None else None,
                ids=list(ids) if ids is not None else None,
                bbox=parse_bbox(bbox) if bbox is not None else None,
                intersects=geometry,
                interval=_interval(datetime),
                filter=parse_filter(filter_expr, filter_lang, filter_crs) if filter_expr not in (None, "") else None,
                sortby=parse_sortby(sortby or []),
                include=fields[0],
                exclude=fields[1],
                limit=int(limit or 10),
                token=token or None,
            )
        except json.JSONDecodeError as err:
            raise InvalidQueryParameter(f"intersects is not valid JSON: {err}") from None
        except (SearchError, FilterError) as err:
            raise _bad_request(err) from None

    def get_search(  # type: ignore[override]
        self,
        *,
        request: Request,
        collections: list[str] | None = None,
        ids: list[str] | None = None,
        bbox: list[float] | None = None,
        intersects: str | None = None,
        datetime: str | None = None,
        limit: int | None = 10,
        token: str | None = None,
        filter_expr: str | None = None,
        filter_lang: str | None = None,
        filter_crs: str | None = None,
        sortby: list[str] | None = None,
        fields: list[str] | None = None,
        **kwargs: Any,
    ) -> stac.ItemCollection:
        """Cross-collection search (GET /search)."""
        params = self._params(
            collections=collections,
            ids=ids,
            bbox=bbox,
            intersects=intersects,
            datetime=datetime,
            limit=limit,
            token=token,
            filter_expr=filter_expr,
            filter_lang=filter_lang,
            filter_crs=filter_crs,
            sortby=sortby,
            fields=_get_fields(fields),
        )
        return cast(stac.ItemCollection, GeoJSONBody(self._search(params, request)))

    def post_search(self, search_request: Any, request: Request, **kwargs: Any) -> stac.ItemCollection:  # type: ignore[override]
        """Cross-collection search (POST /search)."""
        fields = getattr(search_request, "fields", None)
        sortby = getattr(search_request, "sortby", None) or []
        intersects = search_request.intersects
        params = self._params(
            collections=search_request.collections,
            ids=search_request.ids,
            bbox=search_request.bbox,
            intersects=json.loads(intersects.model_dump_json(exclude_none=True)) if intersects else None,
            datetime=search_request.datetime,
            limit=search_request.limit,
            token=getattr(search_request, "token", None),
            filter_expr=getattr(search_request, "filter_expr", None),
            filter_lang=getattr(search_request, "filter_lang", None),
            filter_crs=getattr(search_request, "filter_crs", None),
            sortby=[(s.field, s.direction == "desc") for s in sortby],
            fields=_fields(fields.include or (), fields.exclude or ()) if fields else (frozenset(), frozenset()),
        )
        body = search_request.model_dump(mode="json", by_alias=True, exclude_none=True, exclude_unset=True)
        return cast(stac.ItemCollection, GeoJSONBody(self._search(params, request, post_body=body)))

    def item_collection(  # type: ignore[override]
        self,
        *,
        collection_id: str,
        request: Request,
        bbox: list[float] | None = None,
        datetime: str | None = None,
        limit: int | None = 10,
        token: str | None = None,
        filter_expr: str | None = None,
        filter_lang: str | None = None,
        filter_crs: str | None = None,
        sortby: list[str] | None = None,
        fields: list[str] | None = None,
        **kwargs: Any,
    ) -> stac.ItemCollection:
        """Items of one collection (GET /collections/{collection_id}/items)."""
        entry = self._entry(request, collection_id)
        params = self._params(
            collections=[entry.id],
            bbox=bbox,
            datetime=datetime,
            limit=limit,
            token=token,
            filter_expr=filter_expr,
            filter_lang=filter_lang,
            filter_crs=filter_crs,
            sortby=sortby,
            fields=_get_fields(fields),
        )
        result = self._search(params, request)
        url = f"{api_base_url(request)}/collections/{quote(entry.id, safe='')}"
        result["links"] += [
            {"rel": "collection", "type": JSON, "href": url},
            {"rel": "parent", "type": JSON, "href": url},
        ]
        return cast(stac.ItemCollection, GeoJSONBody(result))

    def get_item(self, item_id: str, collection_id: str, request: Request, **kwargs: Any) -> stac.Item:  # type: ignore[override]
        """One item (GET /collections/{collection_id}/items/{item_id}): its static document, or its items.parquet
        row where the publication has none."""
        entry, store = self._entry(request, collection_id), store_of(request)
        if entry.view is None:
            raise NotFoundError(f"item {item_id!r} not found in collection {collection_id!r}")
        document = store.item_document(entry, item_id)
        if document is not None:
            features = self._features([drop_nulls(document)], request, folder=f"{entry.folder}/{item_id}")
        else:
            with store.cursor() as cursor:
                table = cursor.execute(f"SELECT * FROM {entry.view} WHERE id = ? LIMIT 1", [item_id]).to_arrow_table()
            features = self._features(iter_items(table), request, columns={entry.id: frozenset(entry.columns)})
        if not features:
            raise NotFoundError(f"item {item_id!r} not found in collection {collection_id!r}")
        return cast(stac.Item, GeoJSONBody(features[0]))

    # -- collections ----------------------------------------------------------------------------

    def _entry(self, request: Request, collection_id: str) -> CollectionEntry:
        entry = store_of(request).collections.get(collection_id)
        if entry is None:
            raise NotFoundError(f"collection {collection_id!r} not found")
        return entry

    def get_collection(self, collection_id: str, request: Request, **kwargs: Any) -> stac.Collection:  # type: ignore[override]
        """One collection (GET /collections/{collection_id})."""
        return cast(stac.Collection, self._collection(self._entry(request, collection_id), request))

    def all_collections(  # type: ignore[override]
        self,
        *,
        request: Request,
        bbox: list[float] | None = None,
        datetime: str | None = None,
        limit: int | None = 10,
        offset: int | None = None,
        q: list[str] | None = None,
        fields: list[str] | None = None,
        sortby: list[str] | None = None,
        **kwargs: Any,
    ) -> stac.Collections:
        """Collections, with collection search (GET /collections?q=&bbox=&datetime=&sortby=&fields=)."""
        try:
            box = parse_bbox(bbox) if bbox is not None else None
        except SearchError as err:
            raise _bad_request(err) from None
        interval = _interval(datetime)
        if offset is not None and offset < 0:
            raise InvalidQueryParameter("offset must not be negative")
        entries = [
            e
            for e in store_of(request).collections.values()
            if matches_text(e, q) and _overlaps_box(e, box) and _overlaps_interval(e, interval)
        ]
        for field, descending in reversed(parse_sortby(sortby or [])):
            entries.sort(key=partial(_sort_key, field=field), reverse=descending)
        start, size = offset or 0, int(limit or 10)
        include, exclude = _get_fields(fields)
        page = [
            filter_fields(self._collection(e, request), set(include), set(exclude))
            for e in entries[start : start + size]
        ]
        links = [
            {"rel": "self", "type": JSON, "href": _url_with(request)},
            {"rel": "root", "type": JSON, "href": api_base_url(request) + "/"},
            {"rel": "parent", "type": JSON, "href": api_base_url(request) + "/"},
        ]
        if start + size < len(entries):
            links.append({"rel": "next", "type": JSON, "href": _url_with(request, offset=start + size)})
        if start > 0:
            links.append({"rel": "prev", "type": JSON, "href": _url_with(request, offset=max(start - size, 0) or None)})
        return cast(
            stac.Collections,
            {"collections": page, "links": links, "numberMatched": len(entries), "numberReturned": len(page)},
        )

    def landing_page(self, **kwargs: Any) -> stac.LandingPage:
        """Landing page, with a ``child`` link per collection."""
        request: Request = kwargs["request"]
        page = super().landing_page(**kwargs)
        base = api_base_url(request)
        page["links"] += [
            {
                "rel": "child",
                "type": JSON,
                "title": str(e.document.get("title", e.id)),
                "href": f"{base}/collections/{quote(e.id, safe='')}",
            }
            for e in store_of(request).collections.values()
        ]
        return page


def matches_text(entry: CollectionEntry, terms: Sequence[str] | None) -> bool:
    """Free text: any term matches; a term matches when each of its words is a substring (case-folded).

    Substring matching (no tokenising) is what makes Chinese work: ``冰川`` is found in ``冰川运动速度``.
    """
    if not terms:
        return True
    for term in terms:
        words = term.casefold().split()
        if words and all(word in entry.text for word in words):
            return True
    return False


def _overlaps_box(entry: CollectionEntry, box: tuple[float, float, float, float] | None) -> bool:
    extent = entry.bbox
    if box is None or extent is None or len(extent) not in (4, 6):
        return True
    west, south, east, north = (extent[0], extent[1], extent[3], extent[4]) if len(extent) == 6 else extent
    q_west, q_south, q_east, q_north = box
    if q_south > north or q_north < south:
        return False
    if q_west > q_east or west > east:  # antimeridian: compare loosely
        return True
    return not (q_west > east or q_east < west)


def _overlaps_interval(entry: CollectionEntry, interval: tuple[datetime | None, datetime | None] | None) -> bool:
    if interval is None:
        return True
    start, end = entry.interval
    q_start, q_end = interval
    return not (
        (q_end is not None and start is not None and start > q_end)
        or (q_start is not None and end is not None and end < q_start)
    )


def _sort_key(entry: CollectionEntry, field: str) -> tuple[bool, str]:
    value: Any = entry.document
    for part in field.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return (
        value is None,
        json.dumps(value, ensure_ascii=False, sort_keys=True) if not isinstance(value, str) else value,
    )


@attr.s
class DuckDBFiltersClient(BaseFiltersClient):
    """Queryables from the Parquet schemas (all collections, or one)."""

    def get_queryables(self, collection_id: str | None = None, **kwargs: Any) -> dict[str, Any]:
        """JSON Schema of the properties a CQL2 filter may use."""
        request: Request = kwargs["request"]
        store = store_of(request)
        base = api_base_url(request)
        if collection_id is None:
            entries = list(store.collections.values())
            url = f"{base}/queryables"
        else:
            entry = store.collections.get(collection_id)
            if entry is None:
                raise NotFoundError(f"collection {collection_id!r} not found")
            entries = [entry]
            url = f"{base}/collections/{quote(collection_id, safe='')}/queryables"
        properties: dict[str, Any] = {}
        for entry in entries:
            for name, kind in entry.columns.items():
                if name not in ("links", "assets", "bbox", "type", "stac_version", "stac_extensions"):
                    properties.setdefault(name, json_schema(name, kind))
        return {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": url,
            "type": "object",
            "title": "Queryables" + (f" of {collection_id}" if collection_id else ""),
            "properties": dict(sorted(properties.items())),
            "additionalProperties": False,
        }


_INTEGERS = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT")
_JSON_TYPES: tuple[tuple[Callable[[str], bool], dict[str, Any]], ...] = (
    (lambda k: k.startswith(("STRUCT", "MAP")), {"type": "object"}),
    (lambda k: k.startswith("TIMESTAMP"), {"type": "string", "format": "date-time"}),
    (lambda k: k == "DATE", {"type": "string", "format": "date"}),
    (lambda k: k == "BOOLEAN", {"type": "boolean"}),
    (lambda k: k in _INTEGERS, {"type": "integer"}),
    (lambda k: k in ("FLOAT", "DOUBLE", "REAL") or k.startswith("DECIMAL"), {"type": "number"}),
)


def json_schema(name: str, duckdb_type: str) -> dict[str, Any]:
    """JSON Schema of one column, from its DuckDB type."""
    kind = duckdb_type.upper()
    if name == "geometry" or kind.startswith("GEOMETRY"):
        return {"$ref": "https://geojson.org/schema/Geometry.json", "title": "Geometry"}
    if kind.endswith("[]"):
        return {"type": "array", "items": json_schema("", kind[:-2])}
    return next((dict(schema) for test, schema in _JSON_TYPES if test(kind)), {"type": "string"})
