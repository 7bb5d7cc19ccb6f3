"""Time filters (``datetime=``) and time-step labels of collection mosaics.

Calendar dates (``2023``, ``2023-07``, ``2023-07-15``) are periods in China Standard Time, like the
records and the publisher, which reads dates in file and band names as CST: ``2023-07`` is exactly the
item published from ``202307.tif``. Full RFC 3339 times and ``start/end`` intervals (``..`` open) are exact.
Labels are the inverse: a step is named by the calendar period it covers, else by its interval.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

LOCAL_TIME = timezone(timedelta(hours=8), "CST")
_CALENDAR = re.compile(r"(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?")
_OPEN = ("", "..")
_TOLERANCE = timedelta(seconds=1)
"""Items end at the last whole second of their period."""


@dataclass(frozen=True)
class Period:
    """A closed UTC interval; ``None`` is an open end."""

    start: datetime | None
    end: datetime | None


def _calendar(text: str) -> Period | None:
    match = _CALENDAR.fullmatch(text)
    if not match:
        return None
    year, month, day = (int(g) if g else None for g in match.groups())
    assert year is not None
    first = datetime(year, month or 1, day or 1, tzinfo=LOCAL_TIME)
    if day is not None:
        following = first + timedelta(days=1)
    elif month is not None:
        following = first.replace(year=year + month // 12, month=month % 12 + 1)
    else:
        following = first.replace(year=year + 1)
    return Period(first.astimezone(UTC), (following - timedelta(microseconds=1)).astimezone(UTC))


def _moment(text: str) -> Period:
    period = _calendar(text)
    if period is not None:
        return period
    moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    moment = (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)
    return Period(moment, moment)


def parse_datetime(value: str) -> Period:
    """The period of a ``datetime=`` value; ``ValueError`` if it is not one."""
    text = value.strip()
    if "/" not in text:
        return _moment(text)
    first, _, last = (part.strip() for part in text.partition("/"))
    start = None if first in _OPEN else _moment(first).start
    end = None if last in _OPEN else _moment(last).end
    if start is not None and end is not None and start > end:
        raise ValueError(f"{value!r}: the interval ends before it starts")
    return Period(start, end)


def iso(moment: datetime) -> str:
    """``2023-06-30T16:00:00Z``."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def period_label(start: datetime, end: datetime) -> str:
    """The shortest ``datetime=`` value that selects exactly ``[start, end]``."""
    local = start.astimezone(LOCAL_TIME)
    if start == end:
        midnight = (local.hour, local.minute, local.second, local.microsecond) == (0, 0, 0, 0)
        return local.date().isoformat() if midnight else iso(start)
    for text in (f"{local:%Y}", f"{local:%Y-%m}", f"{local:%Y-%m-%d}"):
        period = _calendar(text)
        if period and period.start == start and period.end and abs(period.end - end) < _TOLERANCE:
            return text
    return f"{iso(start)}/{iso(end)}"
