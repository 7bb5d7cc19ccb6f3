"""``datetime=`` periods (calendar dates in China Standard Time) and time-step labels."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.raster.timeline import Period, parse_datetime, period_label


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, micro: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, micro, tzinfo=UTC)


def test_calendar_periods_are_china_standard_time() -> None:
    month = parse_datetime("2023-07")
    assert month.start == utc(2023, 6, 30, 16)
    assert month.end is not None and month.end == utc(2023, 7, 31, 15, 59, 59, 999999)
    assert parse_datetime("2023-12").end == utc(2023, 12, 31, 15, 59, 59, 999999)
    assert parse_datetime("2018-01-12") == Period(utc(2018, 1, 11, 16), utc(2018, 1, 12, 15, 59, 59, 999999))
    assert parse_datetime("2023").start == utc(2022, 12, 31, 16)


def test_instants_and_intervals() -> None:
    assert parse_datetime("2023-07-01T00:00:00Z") == Period(utc(2023, 7, 1), utc(2023, 7, 1))
    assert parse_datetime("2023-07-01T08:00:00+08:00").start == utc(2023, 7, 1)
    assert parse_datetime("2023-01/2023-03") == Period(utc(2022, 12, 31, 16), utc(2023, 3, 31, 15, 59, 59, 999999))
    assert parse_datetime("../2023-01-01T00:00:00Z") == Period(None, utc(2023, 1, 1))
    assert parse_datetime("2023-01-01T00:00:00Z/..") == Period(utc(2023, 1, 1), None)
    for bad in ("July", "2023-13", "2023-02-30", "2024/2023"):
        with pytest.raises(ValueError):
            parse_datetime(bad)


def test_labels_select_exactly_their_items() -> None:
    month = (utc(2023, 6, 30, 16), utc(2023, 7, 31, 15, 59, 59))  # an item published from 202307.tif
    assert period_label(*month) == "2023-07"
    day = utc(2018, 1, 11, 16)  # a Muli acquisition, 2018-01-12 in China
    assert period_label(day, day) == "2018-01-12"
    assert (
        period_label(utc(2013, 12, 31, 16), utc(2018, 12, 31, 15, 59, 59))
        == "2013-12-31T16:00:00Z/2018-12-31T15:59:59Z"
    )
    assert period_label(utc(2020, 5, 5, 3), utc(2020, 5, 5, 3)) == "2020-05-05T03:00:00Z"
    for start, end in (month, (day, day)):
        period = parse_datetime(period_label(start, end))
        assert period.start is not None and period.end is not None
        assert period.start <= start and end <= period.end
