"""Reading records: times, validation, and clear errors for bad input."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from catalog.record import RecordError, load_record, parse_record
from tests.conftest import REPO

GANGRIGAB = REPO / "records" / "gangrigab-velocity.json"


def raw_record() -> dict[str, Any]:
    return json.loads(GANGRIGAB.read_text(encoding="utf-8"))


def test_times_are_china_standard_time_written_in_utc() -> None:
    record = load_record(GANGRIGAB)
    assert record.ds_acq_start_time == datetime(2022, 12, 31, 16, tzinfo=UTC)
    # a midnight end time is a date: the whole of 2023-12-31 (CST) is inside
    assert record.ds_acq_end_time == datetime(2023, 12, 31, 15, 59, 59, tzinfo=UTC)


def test_open_end_time_is_allowed() -> None:
    raw = raw_record()
    raw["ds_acq_end_time"] = None
    assert parse_record(raw).ds_acq_end_time is None


@pytest.mark.parametrize(
    ("change", "field", "fragment"),
    [
        ({"ds_acq_lat_north": 123}, "ds_acq_lat_north", "less than or equal to 90"),
        ({"ds_acq_lon_east": -200}, "ds_acq_lon_east", "greater than or equal to -180"),
        ({"ds_acq_start_time": "2023-13-01 00:00:00"}, "ds_acq_start_time", "month must be in 1..12"),
        ({"ds_acq_end_time": "2020-01-01 00:00:00"}, "ds_acq_*", "before"),
        ({"ds_acq_lat_south": 40.0}, "ds_acq_*", "north of"),
        ({"ds_share_type": "public"}, "ds_share_type", "open-access"),
        ({"id": None}, "id", "string"),
    ],
)
def test_bad_values_name_the_field(change: dict[str, Any], field: str, fragment: str) -> None:
    raw = raw_record() | change
    with pytest.raises(RecordError) as caught:
        parse_record(raw, "bad.json")
    assert caught.value.field == field
    assert fragment in caught.value.message
    assert str(caught.value).startswith(f"bad.json: {field}: ")


def test_every_problem_is_named() -> None:
    """A record with several bad fields names them all, so one run shows what to fix."""
    raw = raw_record() | {"ds_acq_lat_north": "north", "ds_share_type": 5, "ds_acq_lon_east": -200}
    with pytest.raises(RecordError) as caught:
        parse_record(raw, "bad.json")
    text = str(caught.value)
    assert text.startswith(f"bad.json: {caught.value.field}: ")
    for field, got in (("ds_acq_lat_north", "'north'"), ("ds_share_type", "5"), ("ds_acq_lon_east", "-200")):
        assert f"{field}: " in text and f"(got {got})" in text, (field, text)


def test_missing_id_names_the_field() -> None:
    raw = raw_record()
    del raw["id"]
    with pytest.raises(RecordError) as caught:
        parse_record(raw, "r.json")
    assert caught.value.field == "id"
    assert "required" in caught.value.message.lower()


@pytest.mark.parametrize(
    ("content", "fragment"),
    [("this is not json", "not valid JSON"), ('{"id": "x", "title_cn": ', "not valid JSON"), ("[1, 2]", "JSON object")],
)
def test_unreadable_files_name_the_file(tmp_path: Path, content: str, fragment: str) -> None:
    path = tmp_path / "broken.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(RecordError) as caught:
        load_record(path)
    assert str(path) in str(caught.value)
    assert fragment in caught.value.message
