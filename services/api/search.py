"""Item search over the stac-geoparquet views: one SQL query per page, filters pushed into DuckDB.

Searching several collections is a ``UNION ALL BY NAME`` of one branch per collection, each with
the filter translated against that collection's own columns (a property it lacks is ``NULL``).
Pages are keyset-paginated: the token holds the sort values of the last item returned, with
``collection, id`` as the final tie-breakers, so following ``next`` links never repeats or loops.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import duckdb
import pyarrow as pa

from services.api.cql2_sql import (
    FilterError,
    Params,
    bbox_sql,
    column_name,
    filter_to_sql,
    item_interval,
    literal_bounds,
    quote_ident,
)
from services.api.store import ROW, CollectionEntry

BBox = tuple[float, float, float, float]
TOP_LEVEL = frozenset({"id", "collection", "geometry", "bbox", "type", "stac_version", "stac_extensions"})
ALWAYS_SELECTED = ("type", "stac_version", "stac_extensions", "id", "collection", "geometry", "bbox", "links")
NOT_SORTABLE = ("STRUCT", "MAP", "[", "GEOMETRY", "BLOB", "UNION")
TIE_BREAKERS = (("collection", False), ("id", False))
BRANCH = quote_ident("ncdc_stac:branch")
"""Column numbering the collection (search branch) of a match."""
MATCHED = "ncdc_stac:matched"
"""Result column holding numberMatched."""
ONE_QUERY_ITEMS = 200_000
"""Spatial searches of at least this many items get their first page and count in one query
(:meth:`Search._first_page_and_count`); below, two plain queries are as fast or faster (in-process, 10k items:
~15% slower in one query, 100k: the same, 1M: ~20% faster)."""
USER_ERRORS = (
    duckdb.BinderException,
    duckdb.ConversionException,
    duckdb.InvalidInputException,
    duckdb.OutOfRangeException,
)
"""DuckDB errors that a request's values (not the server) cause: reported as 400."""


class SearchError(ValueError):
    """A search request that cannot be answered as asked (reported as 400)."""


@dataclass(frozen=True)
class SearchParams:
    """A validated item search, whichever endpoint it came from."""

    collections: Sequence[str] | None = None
    ids: Sequence[str] | None = None
    bbox: BBox | None = None
    intersects: Mapping[str, Any] | None = None
    interval: tuple[datetime | None, datetime | None] | None = None
    filter: Any = None
    """Parsed CQL2-JSON tree."""
    sortby: Sequence[tuple[str, bool]] = ()
    """(column, descending) pairs."""
    include: frozenset[str] = frozenset()
    exclude: frozenset[str] = frozenset()
    limit: int = 10
    token: str | None = None

    @property
    def filtered(self) -> bool:
        """Whether anything but the collections restricts the result."""
        return any(v is not None for v in (self.ids, self.bbox, self.intersects, self.interval, self.filter))


@dataclass
class Page:
    """One page of search results, as Arrow in the stac-geoparquet layout."""

    table: pa.Table
    next_token: str | None
    matched: int | None
    columns: Mapping[str, frozenset[str]] = field(default_factory=dict)
    """Collection id -> its columns, to drop the other collections' null properties."""


def parse_bbox(values: Sequence[float]) -> BBox:
    """Validate a 2D or 3D bbox and return (west, south, east, north)."""
    if len(values) not in (4, 6):
        raise SearchError(f"bbox must have 4 or 6 numbers, got {len(values)}")
    box = [float(v) for v in values]
    west, south, east, north = (box[0], box[1], box[3], box[4]) if len(box) == 6 else box
    if not (-180 <= west <= 180 and -180 <= east <= 180 and -90 <= south <= 90 and -90 <= north <= 90):
        raise SearchError("bbox must lie within -180,-90,180,90 (longitude, latitude in degrees)")
    if south > north:
        raise SearchError("bbox south (2nd number) must not be greater than north (4th number)")
    return west, south, east, north


def parse_sortby(fields: Iterable[str | tuple[str, bool]]) -> list[tuple[str, bool]]:
    """``-properties.datetime`` / ``("datetime", True)`` -> [(column, descending)]."""
    result: list[tuple[str, bool]] = []
    for spec in fields:
        if isinstance(spec, tuple):
            name, descending = spec
        else:
            text = spec.strip()
            descending = text.startswith("-")
            name = text.lstrip("+-").strip()
        if not name:
            raise SearchError("empty sortby field")
        result.append((column_name(name), descending))
    return result


def encode_token(values: Sequence[Any], sort: Sequence[tuple[str, bool]], matched: int | None) -> str:
    """Opaque next-page token: last sort values, the sort it belongs to and numberMatched."""
    payload = {"v": [_jsonable(v) for v in values], "s": [[c, d] for c, d in sort], "n": matched}
    raw = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(token: str, sort: Sequence[tuple[str, bool]]) -> tuple[list[Any], int | None]:
    """Values and numberMatched of a token made by :func:`encode_token` for the same sort."""
    token = token.removeprefix("next:")
    try:
        payload = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        values, signature, matched = payload["v"], payload["s"], payload.get("n")
    except (binascii.Error, ValueError, KeyError, TypeError):
        raise SearchError("invalid pagination token; use the href of a 'next' link as it is") from None
    if [tuple(s) for s in signature] != [tuple(s) for s in sort] or len(values) != len(sort):
        raise SearchError("pagination token does not belong to this sortby; restart from the first page")
    return values, matched if isinstance(matched, int) else None


def _jsonable(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


@dataclass
class _Branch:
    """The SQL of one collection's part of a search."""

    entry: CollectionEntry
    where: list[str] = field(default_factory=list)

    def column(self, name: str) -> str:
        return quote_ident(name) if name in self.entry.columns else "NULL"

    def sort_expr(self, name: str) -> str:
        """Sort key SQL: an item without ``datetime`` sorts by its ``start_datetime`` (as in pgstac)."""
        if (
            name == "datetime"
            and "datetime" not in self.entry.complete
            and {"datetime", "start_datetime"} <= set(self.entry.columns)
        ):
            return 'COALESCE("datetime", "start_datetime")'
        return self.column(name)

    def sql(self, select: str, *, rows: bool = False) -> str:
        """``SELECT select`` of the matching items; ``rows``: from the view that has their :data:`ROW`."""
        where = " AND ".join(self.where) or "TRUE"
        return f"SELECT {select} FROM {self.entry.rows if rows else self.entry.view} WHERE {where}"


class Search:
    """Plans and runs one item search against the collections it targets."""

    def __init__(self, entries: Sequence[CollectionEntry], params: SearchParams) -> None:
        self.entries = [e for e in entries if e.view]
        self.params = params
        self.columns: dict[str, str] = {}
        for entry in self.entries:
            for name, kind in entry.columns.items():
                self.columns.setdefault(name, kind)
        self.sort = self._sort_keys()
        self.values = Params()

    def _sort_keys(self) -> list[tuple[str, bool]]:
        keys = list(self.params.sortby) or ([("datetime", True)] if "datetime" in self.columns else [])
        for name, _ in keys:
            kind = self.columns.get(name)
            if kind is None and self.entries:
                sortable = sorted(c for c, t in self.columns.items() if not any(n in t for n in NOT_SORTABLE))
                raise SearchError(f"cannot sort by unknown property {name!r}; sortable: {', '.join(sortable)}")
            if kind and any(n in kind for n in NOT_SORTABLE):
                raise SearchError(f"cannot sort by {name!r} of type {kind}")
        names = {name for name, _ in keys}
        return keys + [key for key in TIE_BREAKERS if key[0] not in names]

    def _sort_type(self, name: str) -> str:
        """DuckDB type of a sort key: its column's, or DOUBLE / VARCHAR when collections differ."""
        kinds = {e.columns[name] for e in self.entries if name in e.columns}
        if name == "datetime" or len(kinds) == 1:
            return kinds.pop() if kinds else "VARCHAR"
        numeric = ("INT", "DOUBLE", "FLOAT", "REAL", "DECIMAL")
        return "DOUBLE" if all(any(n in k for n in numeric) for k in kinds) else "VARCHAR"

    def _selected(self, entry: CollectionEntry) -> list[str]:
        """Columns to read: only what the fields include/exclude keep, plus what the API needs."""
        include = {column_name(f) for f in self.params.include}
        exclude = {column_name(f) for f in self.params.exclude}
        needed = {*ALWAYS_SELECTED, "datetime", *(c for c, _ in self.sort)}
        every_property = not include or "properties" in include
        wanted = []
        for name in entry.columns:
            if name in needed:
                wanted.append(name)
            elif name in exclude:
                continue
            elif name == "assets" or name in TOP_LEVEL:
                if not include or name in include:
                    wanted.append(name)
            elif every_property or name in include:
                wanted.append(name)
        return wanted

    def _common(self) -> list[str]:
        """Conditions on the columns every stac-geoparquet has: ids, bbox, intersects."""
        p, add, where = self.params, self.values.add, []
        if p.ids is not None:
            where.append(f"id IN ({', '.join(add(i) for i in p.ids)})" if p.ids else "FALSE")
        if p.bbox is not None:
            west, south, east, north = p.bbox
            boxes = [p.bbox] if west <= east else [(west, south, 180.0, north), (-180.0, south, east, north)]
            envelopes = [(bbox_sql(box, self.values), ", ".join(map(add, box))) for box in boxes]
            parts = [f"({pre} AND ST_Intersects(geometry, ST_MakeEnvelope({env})))" for pre, env in envelopes]
            where.append("(" + " OR ".join(parts) + ")")
        if p.intersects is not None:
            prefilter = bbox_sql(literal_bounds(dict(p.intersects)), self.values)
            where.append(
                f"({prefilter} AND ST_Intersects(geometry, ST_GeomFromGeoJSON({add(json.dumps(p.intersects))})))"
            )
        return where

    def _interval(self, entry: CollectionEntry, refs: tuple[str | None, str | None]) -> str:
        """Items whose datetime, or start/end_datetime range, meets the requested interval."""
        if "datetime" not in entry.columns:
            return "FALSE"
        start, end = refs
        if "ranges" in entry.complete:  # the same items, in terms DuckDB prunes row groups with
            ranged = [f'"start_datetime" <= {end}' if end else "", f'"end_datetime" >= {start}' if start else ""]
            return "(" + (" AND ".join(c for c in ranged if c) or "TRUE") + ")"
        instant = [f'"datetime" >= {start}' if start else "", f'"datetime" <= {end}' if end else ""]
        sql = "(" + " AND ".join(c for c in instant if c) + ")"
        if "start_datetime" in entry.columns and "end_datetime" in entry.columns:
            first, last = item_interval(entry.columns)
            ranged = [f"{first} <= {end}" if end else "", f"{last} >= {start}" if start else ""]
            sql = f"({sql} OR ({' AND '.join(c for c in ranged if c)}))"
        return sql

    def _branches(self) -> list[_Branch]:
        p = self.params
        common = self._common()
        refs: tuple[str | None, str | None] = (None, None)
        if p.interval is not None:
            refs = tuple(self.values.add(t) if t is not None else None for t in p.interval)  # type: ignore[assignment]
        branches = []
        for entry in self.entries:
            branch = _Branch(entry, list(common))
            if p.interval is not None:
                branch.where.append(self._interval(entry, refs))
            if p.filter is not None:
                absent = frozenset(self.columns) - frozenset(entry.columns)
                branch.where.append(filter_to_sql(p.filter, entry.columns, self.values, absent))
            branches.append(branch)
        return branches

    def _after(self, branch: _Branch, refs: Sequence[str | None]) -> None:
        """Keyset condition: rows strictly after the token's values in the sort order (NULLS LAST)."""
        terms: list[str] = []
        equal: list[str] = []
        for (name, descending), ref in zip(self.sort, refs, strict=True):
            column = branch.sort_expr(name)
            if ref is None:
                equal.append(f"{column} IS NULL")
                continue
            kind = self._sort_type(name)
            if kind != branch.entry.columns.get(name, kind):  # collections disagree: compare in a common type
                column = f"CAST({column} AS {kind})"
            value = f"CAST({ref} AS {kind})"
            comparison = "<" if descending else ">"
            terms.append("(" + " AND ".join([*equal, f"({column} {comparison} {value} OR {column} IS NULL)"]) + ")")
            equal.append(f"{column} = {value}")
        branch.where.append("(" + (" OR ".join(terms) or "FALSE") + ")")
        first, first_ref = self.sort[0], refs[0]
        if first[0] == "datetime" and "datetime" in branch.entry.complete and first_ref is not None:
            # implied by the keyset condition (no null sorts last here); a plain bound prunes row groups
            bound = "<=" if first[1] else ">="
            branch.where.append(f'"datetime" {bound} CAST({first_ref} AS {self._sort_type("datetime")})')

    def _order_by(self) -> str:
        keys = enumerate(self.sort)
        return ", ".join(f"{quote_ident(_sort_alias(i))} {'DESC' if d else 'ASC'} NULLS LAST" for i, (_, d) in keys)

    def _keys(self, branch: _Branch) -> list[str]:
        """The sort keys of a branch's items under their aliases."""
        return [f"{branch.sort_expr(name)} AS {quote_ident(_sort_alias(i))}" for i, (name, _) in enumerate(self.sort)]

    def _select(self, branch: _Branch, columns: Iterable[str]) -> str:
        """SQL of a branch returning ``columns`` and the sort keys under their aliases."""
        return branch.sql(", ".join([*map(quote_ident, columns), *self._keys(branch)]))

    def _first_page_and_count(self, branches: Sequence[_Branch]) -> str:
        """SQL of a first page with numberMatched in its :data:`MATCHED` column: the matches' positions and sort
        keys are found once, counted, and the page's items read back by position (:data:`ROW`).

        For spatial searches: the geometry test, their costly part, runs once instead of in both the page and
        the count query. (For other filters, keeping all the matches costs more than evaluating them twice.)"""
        matches = " UNION ALL BY NAME ".join(
            b.sql(", ".join([f"{n} AS {BRANCH}", ROW, *self._keys(b)]), rows=True) for n, b in enumerate(branches)
        )
        read_back = " UNION ALL BY NAME ".join(
            f"SELECT {', '.join([*map(quote_ident, self._selected(b.entry)), *self._keys(b)])} FROM {b.entry.rows} "
            f"WHERE {ROW} IN (SELECT {ROW} FROM page WHERE {BRANCH} = {n})"
            for n, b in enumerate(branches)
        )
        order = self._order_by()
        return (
            f"WITH matches AS MATERIALIZED ({matches}), "
            f"page AS (SELECT * FROM matches ORDER BY {order} LIMIT {int(self.params.limit) + 1}) "
            f"SELECT *, (SELECT count(*) FROM matches) AS {quote_ident(MATCHED)} FROM ({read_back}) ORDER BY {order}"
        )

    def run(self, cursor: duckdb.DuckDBPyConnection) -> Page:
        """Execute the page query and, on a first page that is not the last, the count (on a first and last page,
        the rows returned are all the matches); the first page and count of a large spatial search are one query."""
        p = self.params
        after, matched = decode_token(p.token, self.sort) if p.token else (None, None)
        if not self.entries:
            return Page(table=pa.table({}), next_token=None, matched=0)
        try:
            branches = self._branches()
        except FilterError as err:
            raise SearchError(str(err)) from None
        if after is not None:
            refs = [self.values.add(v) if v is not None else None for v in after]
            for branch in branches:
                self._after(branch, refs)
        spatial = p.bbox is not None or p.intersects is not None
        if p.token is None and spatial and sum(e.count for e in self.entries) >= ONE_QUERY_ITEMS:
            table = self._execute(cursor, self._first_page_and_count(branches), self.values.values)
            matched = table.column(MATCHED)[0].as_py() if table.num_rows else 0
            table = table.drop_columns([MATCHED])
        else:
            union = " UNION ALL BY NAME ".join(self._select(b, self._selected(b.entry)) for b in branches)
            sql = f"SELECT * FROM ({union}) ORDER BY {self._order_by()} LIMIT {int(p.limit) + 1}"
            table = self._execute(cursor, sql, self.values.values)
            if p.token is None:
                matched = self._count(cursor, branches) if table.num_rows > p.limit else table.num_rows
        next_token = None
        if table.num_rows > p.limit:
            table = table.slice(0, p.limit)
            last = [table.column(_sort_alias(i))[p.limit - 1].as_py() for i in range(len(self.sort))]
            next_token = encode_token(last, self.sort, matched)
        table = table.drop_columns([_sort_alias(i) for i in range(len(self.sort))])
        columns = {e.id: frozenset(e.columns) for e in self.entries}
        return Page(table=table, next_token=next_token, matched=matched, columns=columns)

    @staticmethod
    def _execute(cursor: duckdb.DuckDBPyConnection, sql: str, values: Sequence[Any]) -> pa.Table:
        try:
            return cursor.execute(sql, values).to_arrow_table()
        except USER_ERRORS as err:
            raise SearchError(f"the search cannot be evaluated: {_first_line(err)}") from None

    def _count(self, cursor: duckdb.DuckDBPyConnection, branches: Sequence[_Branch]) -> int:
        if not self.params.filtered:
            return sum(b.entry.count for b in branches)
        union = " UNION ALL ".join(b.sql("count(*) AS n") for b in branches)
        try:
            row = cursor.execute(f"SELECT sum(n) FROM ({union})", self.values.values).fetchone()
        except USER_ERRORS as err:
            raise SearchError(f"the search cannot be evaluated: {_first_line(err)}") from None
        return int(row[0] or 0) if row else 0


def _sort_alias(number: int) -> str:
    """Name of the result column holding the ``number``-th sort key."""
    return f"ncdc_stac:sort{number}"


def _first_line(err: Exception) -> str:
    return str(err).strip().splitlines()[0]
