"""CQL2 (text or JSON, parsed by the ``cql2`` package) -> a parameterised DuckDB ``WHERE`` clause.

``cql2.Expr.to_sql()`` emits PostgreSQL and passes unknown functions through, so the translation is
done here from the CQL2-JSON tree: properties must be columns of the searched tables, every literal
is a bound parameter and only the operators below exist. Nothing from the request reaches the SQL
text except through :func:`quote_ident` of a known column name.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import cql2
import shapely.geometry

TIMESTAMP = "TIMESTAMP WITH TIME ZONE"
CRS84 = frozenset(
    {
        "http://www.opengis.net/def/crs/OGC/1.3/CRS84",
        "https://www.opengis.net/def/crs/OGC/1.3/CRS84",
        "urn:ogc:def:crs:OGC:1.3:CRS84",
        "EPSG:4326",
        "http://www.opengis.net/def/crs/EPSG/0/4326",
    }
)
_COMPARISON = {"=": "=", "<>": "<>", "!=": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
_ARITHMETIC = {"+": "+", "-": "-", "*": "*", "/": "/", "%": "%", "div": "//"}
_SPATIAL = {
    "s_intersects": "ST_Intersects",
    "s_equals": "ST_Equals",
    "s_disjoint": "ST_Disjoint",
    "s_touches": "ST_Touches",
    "s_within": "ST_Within",
    "s_overlaps": "ST_Overlaps",
    "s_crosses": "ST_Crosses",
    "s_contains": "ST_Contains",
}
# Allen's interval relations on (start, end) pairs, as in the CQL2 standard's temporal functions.
_TEMPORAL: dict[str, Callable[[str, str, str, str], str]] = {
    "t_after": lambda a0, a1, b0, b1: f"{a0} > {b1}",
    "t_before": lambda a0, a1, b0, b1: f"{a1} < {b0}",
    "t_contains": lambda a0, a1, b0, b1: f"({a0} < {b0} AND {a1} > {b1})",
    "t_disjoint": lambda a0, a1, b0, b1: f"({a1} < {b0} OR {a0} > {b1})",
    "t_during": lambda a0, a1, b0, b1: f"({a0} > {b0} AND {a1} < {b1})",
    "t_equals": lambda a0, a1, b0, b1: f"({a0} = {b0} AND {a1} = {b1})",
    "t_finishedby": lambda a0, a1, b0, b1: f"({a0} < {b0} AND {a1} = {b1})",
    "t_finishes": lambda a0, a1, b0, b1: f"({a0} > {b0} AND {a1} = {b1})",
    "t_intersects": lambda a0, a1, b0, b1: f"({a0} <= {b1} AND {a1} >= {b0})",
    "t_meets": lambda a0, a1, b0, b1: f"{a1} = {b0}",
    "t_metby": lambda a0, a1, b0, b1: f"{a0} = {b1}",
    "t_overlappedby": lambda a0, a1, b0, b1: f"({a0} > {b0} AND {a0} < {b1} AND {a1} > {b1})",
    "t_overlaps": lambda a0, a1, b0, b1: f"({a0} < {b0} AND {a1} > {b0} AND {a1} < {b1})",
    "t_startedby": lambda a0, a1, b0, b1: f"({a0} = {b0} AND {a1} > {b1})",
    "t_starts": lambda a0, a1, b0, b1: f"({a0} = {b0} AND {a1} < {b1})",
}
_ARRAY = {
    "a_equals": "(list_has_all({a}, {b}) AND list_has_all({b}, {a}))",
    "a_contains": "list_has_all({a}, {b})",
    "a_containedby": "list_has_all({b}, {a})",
    "a_overlaps": "list_has_any({a}, {b})",
}


class FilterError(ValueError):
    """A filter that cannot be parsed or refers to something that does not exist."""


class Params:
    """Values of a query's numbered parameters (``$1``, ``$2``, ...), so SQL text order does not matter."""

    def __init__(self) -> None:
        self.values: list[Any] = []

    def add(self, value: Any, cast: str | None = None) -> str:
        """Reference to a new parameter holding ``value``, optionally cast to a DuckDB type."""
        self.values.append(value)
        ref = f"${len(self.values)}"
        return f"CAST({ref} AS {cast})" if cast else ref


def quote_ident(name: str) -> str:
    """A DuckDB identifier in double quotes."""
    return '"' + name.replace('"', '""') + '"'


def column_name(prop: str) -> str:
    """Item property path -> stac-geoparquet column name (``properties.x`` -> ``x``)."""
    return prop.removeprefix("properties.")


def parse_filter(value: str | dict[str, Any], lang: str | None = None, crs: str | None = None) -> Any:
    """Parse cql2-text or cql2-json into the CQL2-JSON tree, or raise :class:`FilterError`."""
    if crs and crs not in CRS84:
        raise FilterError(f"filter-crs {crs!r} is not supported; use http://www.opengis.net/def/crs/OGC/1.3/CRS84")
    try:
        if isinstance(value, dict):
            expr = cql2.Expr(value)
        elif lang == "cql2-json" or value.lstrip().startswith("{"):
            expr = cql2.parse_json(value)
        else:
            expr = cql2.parse_text(value)
        expr.validate()
        return expr.to_json()
    except Exception as err:  # cql2 raises ParseError, ValidationError or a bare Exception
        raise FilterError(f"invalid CQL2 filter: {err}") from None


@dataclass
class SqlBuilder:
    """Translate one CQL2-JSON tree against the columns (name -> DuckDB type) of the searched table."""

    columns: Mapping[str, str]
    params: Params
    absent: frozenset[str] = frozenset()
    """Properties other searched collections have: ``NULL`` here rather than an error."""

    def translate(self, node: Any) -> str:
        """The boolean SQL expression for a CQL2 predicate."""
        return self._expr(node)

    def _param(self, value: Any, cast: str | None = None) -> str:
        return self.params.add(value, cast)

    def _property(self, name: str) -> str:
        column = column_name(name)
        if column == "datetime" and "start_datetime" in self.columns:
            # an item with a period (null datetime) compares by its start, as pgstac's datetime column
            return 'COALESCE("datetime", "start_datetime")' if "datetime" in self.columns else '"start_datetime"'
        if column in self.absent:
            return "NULL"
        if column not in self.columns:
            known = ", ".join(sorted(c for c in {*self.columns, *self.absent} if c not in ("links", "assets", "bbox")))
            raise FilterError(f"unknown property {name!r}; queryable properties are: {known}")
        return quote_ident(column)

    def _expr(self, node: Any) -> str:  # noqa: PLR0911, PLR0912
        if isinstance(node, bool):
            return "TRUE" if node else "FALSE"
        if isinstance(node, (int, float, str)):
            return self._param(node)
        if isinstance(node, list):
            return "[" + ", ".join(self._expr(v) for v in node) + "]"
        if not isinstance(node, dict):
            raise FilterError(f"unsupported CQL2 value: {node!r}")
        if "property" in node:
            return self._property(str(node["property"]))
        if "timestamp" in node:
            return self._param(str(node["timestamp"]), TIMESTAMP)
        if "date" in node:
            return self._param(str(node["date"]), "DATE")
        if "interval" in node:
            raise FilterError("an interval can only be used in a temporal function (t_*)")
        if "bbox" in node or "type" in node:
            return self._geometry(node)
        op = str(node.get("op", "")).lower()
        args: list[Any] = list(node.get("args", []))
        if op in ("and", "or"):
            return "(" + f" {op.upper()} ".join(self._expr(a) for a in args) + ")"
        if op == "not":
            return f"(NOT {self._expr(args[0])})"
        if op in _COMPARISON:
            return f"({self._expr(args[0])} {_COMPARISON[op]} {self._expr(args[1])})"
        if op == "isnull":
            return f"({self._expr(args[0])} IS NULL)"
        if op == "like":
            return f"({self._expr(args[0])} LIKE {self._expr(args[1])} ESCAPE '\\')"
        if op == "between":
            return f"({self._expr(args[0])} BETWEEN {self._expr(args[1])} AND {self._expr(args[2])})"
        if op == "in":
            values = args[1] if isinstance(args[1], list) else [args[1]]
            return f"({self._expr(args[0])} IN ({', '.join(self._expr(v) for v in values)}))"
        if op == "casei":
            return f"lower({self._expr(args[0])})"
        if op == "accenti":
            return f"strip_accents({self._expr(args[0])})"
        if op in _ARITHMETIC:
            return f"({self._expr(args[0])} {_ARITHMETIC[op]} {self._expr(args[1])})"
        if op == "^":
            return f"power({self._expr(args[0])}, {self._expr(args[1])})"
        if op in _SPATIAL:
            return self._spatial(op, args)
        if op in _TEMPORAL:
            a0, a1 = self._instants(args[0])
            b0, b1 = self._instants(args[1])
            return _TEMPORAL[op](a0, a1, b0, b1)
        if op in _ARRAY:
            return _ARRAY[op].format(a=self._expr(args[0]), b=self._expr(args[1]))
        raise FilterError(f"unsupported CQL2 operator or function: {node.get('op')!r}")

    def _geometry(self, node: dict[str, Any]) -> str:
        if "bbox" in node:
            box = [float(v) for v in node["bbox"]]
            west, south, east, north = (box[0], box[1], box[3], box[4]) if len(box) == 6 else box
            return (
                f"ST_MakeEnvelope({self._param(west)}, {self._param(south)}, {self._param(east)}, {self._param(north)})"
            )
        return f"ST_GeomFromGeoJSON({self._param(json.dumps(node))})"

    def _spatial(self, op: str, args: list[Any]) -> str:
        sql = f"{_SPATIAL[op]}({self._expr(args[0])}, {self._expr(args[1])})"
        if op == "s_disjoint":
            return sql
        # Every relation but disjoint implies intersecting bounding boxes: a cheap pre-filter on the
        # stac-geoparquet bbox columns that DuckDB can push into the Parquet scan.
        for prop, literal in ((args[0], args[1]), (args[1], args[0])):
            if _is_geometry_property(prop) and isinstance(literal, dict) and "bbox" in self.columns:
                return f"({bbox_sql(literal_bounds(literal), self.params)} AND {sql})"
        return sql

    def _instants(self, node: Any) -> tuple[str, str]:
        """(start, end) SQL of a temporal operand; ``datetime`` of an item spans its start/end."""
        if isinstance(node, dict) and "interval" in node:
            start, end = (str(v) for v in node["interval"])
            return (
                self._param("-infinity" if start == ".." else start, TIMESTAMP),
                self._param("infinity" if end == ".." else end, TIMESTAMP),
            )
        if isinstance(node, dict) and column_name(str(node.get("property", ""))) == "datetime":
            return item_interval(self.columns)
        value = self._expr(node)
        return value, value


def _is_geometry_property(node: Any) -> bool:
    return isinstance(node, dict) and column_name(str(node.get("property", ""))) == "geometry"


def literal_bounds(node: dict[str, Any]) -> tuple[float, float, float, float]:
    """(west, south, east, north) of a GeoJSON or ``{"bbox": ...}`` literal."""
    try:
        if "bbox" in node:
            box = [float(v) for v in node["bbox"]]
            return (box[0], box[1], box[3], box[4]) if len(box) == 6 else (box[0], box[1], box[2], box[3])
        west, south, east, north = shapely.geometry.shape(node).bounds
    except Exception as err:
        raise FilterError(f"invalid geometry: {err}") from None
    return (float(west), float(south), float(east), float(north))


def bbox_sql(bounds: tuple[float, float, float, float], params: Params) -> str:
    """Items whose stac-geoparquet ``bbox`` struct intersects ``bounds``."""
    west, south, east, north = (params.add(float(v)) for v in bounds)
    return f"(bbox.xmin <= {east} AND bbox.xmax >= {west} AND bbox.ymin <= {north} AND bbox.ymax >= {south})"


def item_interval(columns: Mapping[str, str]) -> tuple[str, str]:
    """SQL for the (start, end) instants of an item: start/end_datetime when present, else datetime."""
    if "start_datetime" in columns and "end_datetime" in columns:
        return ('COALESCE("start_datetime", "datetime")', 'COALESCE("end_datetime", "datetime")')
    return '"datetime"', '"datetime"'


def filter_to_sql(tree: Any, columns: Mapping[str, str], params: Params, absent: frozenset[str] = frozenset()) -> str:
    """WHERE clause of a parsed CQL2-JSON tree; its values are added to ``params``."""
    try:
        return SqlBuilder(columns, params, absent).translate(tree)
    except FilterError:
        raise
    except (IndexError, KeyError, TypeError, ValueError) as err:
        raise FilterError(f"invalid CQL2 filter: {err}") from None
