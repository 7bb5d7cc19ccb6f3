"""CQL2 -> DuckDB SQL: only known columns in the SQL text, every literal a parameter."""

from __future__ import annotations

from typing import Any

import pytest

from services.api.cql2_sql import FilterError, Params, filter_to_sql, parse_filter

COLUMNS = {
    "id": "VARCHAR",
    "datetime": "TIMESTAMP WITH TIME ZONE",
    "gsd": "DOUBLE",
    "geometry": "GEOMETRY",
    "bbox": "STRUCT",
}


def _sql(text: str) -> tuple[str, list[Any]]:
    params = Params()
    return filter_to_sql(parse_filter(text), COLUMNS, params), params.values


def test_literals_are_parameters() -> None:
    sql, values = _sql("id = 'x''); DROP TABLE items; --' AND gsd > 3")
    assert sql == '(("id" = $1) AND ("gsd" > $2))'
    assert values == ["x'); DROP TABLE items; --", 3.0]


def test_temporal_and_spatial() -> None:
    sql, values = _sql(
        "T_INTERSECTS(datetime, INTERVAL('2020-01-01T00:00:00Z', '..')) AND S_INTERSECTS(geometry, BBOX(0, 1, 2, 3))"
    )
    assert "ST_Intersects" in sql and "bbox.xmin" in sql
    assert values[:2] == ["2020-01-01T00:00:00Z", "infinity"]


@pytest.mark.parametrize(
    "text",
    ["secret_column = 1", "read_text('/etc/passwd') = 'x'", "getenv('HOME') = 'x'", "INTERVAL('2020', '2021') = 1"],
)
def test_rejected(text: str) -> None:
    with pytest.raises(FilterError):
        _sql(text)


def test_absent_property_is_null() -> None:
    params = Params()
    assert filter_to_sql(parse_filter("other = 1"), COLUMNS, params, frozenset({"other"})) == "(NULL = $1)"


def test_parse_errors() -> None:
    for bad in ("gsd ==== 1", '{"op": 1}', ""):
        with pytest.raises(FilterError):
            parse_filter(bad)
    with pytest.raises(FilterError, match="filter-crs"):
        parse_filter("gsd = 1", crs="EPSG:3857")
