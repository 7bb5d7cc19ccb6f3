"""Data-quality checks on a record: reported as warnings, never silently fixed."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import pycountry
from pydantic import BaseModel

from catalog.record import Record


class QualityWarning(BaseModel):
    """One finding, machine-readable: the record field and what looks wrong."""

    field: str
    message: str


Check = Callable[[Record], Iterator[QualityWarning]]
_NONE_WORDS = {"无", "none", "null", "n/a", "-", "未知", "unknown"}
_TOLERANCE_DEG = 0.02


def _words(text: str) -> list[str]:
    return re.findall(r"[A-Za-z]{4,}", text)


def _is_near_miss(word: str, other: str) -> bool:
    """True for a transposition of two adjacent letters or one letter dropped/added."""
    a, b = word.lower(), other.lower()
    if a == b:
        return False
    if len(a) == len(b):
        diff = [i for i in range(len(a)) if a[i] != b[i]]
        return len(diff) == 2 and diff[1] == diff[0] + 1 and a[diff[0]] == b[diff[1]] and a[diff[1]] == b[diff[0]]
    short, long_ = sorted((a, b), key=len)
    return (
        len(long_) - len(short) == 1
        and len(short) >= 5
        and any(long_[:i] + long_[i + 1 :] == short for i in range(len(long_)))
    )


def check_english_place(record: Record) -> Iterator[QualityWarning]:
    """The English place name should not name countries the dataset never mentions, nor misspell its title."""
    place = record.english.ds_acq_place
    context = f"{record.title_en} {record.english.title} {record.english.ds_abstract}"
    for country in pycountry.countries:
        name = getattr(country, "common_name", None) or country.name
        if re.search(rf"\b{re.escape(name)}\b", place) and not re.search(rf"\b{re.escape(name)}\b", context):
            yield QualityWarning(
                field="i18n.en.ds_acq_place",
                message=f"names {name!r}, which neither the English title nor the abstract mentions: "
                f"{place!r} (Chinese: {record.ds_acq_place!r})",
            )
    title_words = set(_words(record.title_en or record.english.title))
    for word in _words(place):
        for other in title_words:
            if _is_near_miss(word, other):
                yield QualityWarning(
                    field="i18n.en.ds_acq_place", message=f"possible typo {word!r} (the title says {other!r})"
                )


_DMS = r"(\d{1,3})\s*°\s*(?:(\d{1,2})\s*[′'’]\s*)?(?:(\d{1,2}(?:\.\d+)?)\s*[″\"”]\s*)?"
_DMS_SPAN = _DMS.replace("(\\d", "(?:\\d")


def _degrees(match: tuple[str, ...]) -> float:
    d, m, s = (float(x) if x else 0.0 for x in match)
    return d + m / 60 + s / 3600


def _stated_ranges(text: str) -> dict[str, list[float]]:
    """Latitudes and longitudes written in the text ('北纬29°00′至29°30′', "96 ° 20'E")."""
    found: dict[str, list[float]] = {"lat": [], "lon": []}
    for prefix, first, second in re.findall(rf"(北纬|南纬|东经|西经)\s*({_DMS_SPAN}).{{0,3}}?至\s*({_DMS_SPAN})", text):
        axis = "lat" if prefix in ("北纬", "南纬") else "lon"
        sign = -1.0 if prefix in ("南纬", "西经") else 1.0
        for part in (first, second):
            found[axis].append(sign * _degrees(re.match(_DMS, part).groups()))  # type: ignore[union-attr]
    for *dms, hemisphere in re.findall(rf"{_DMS}\s*([NSEW])\b", text):
        axis = "lat" if hemisphere in "NS" else "lon"
        found[axis].append((-1.0 if hemisphere in "SW" else 1.0) * _degrees(tuple(dms)))
    return found


def check_bbox_against_text(record: Record) -> Iterator[QualityWarning]:
    """The bounding box should agree with coordinates the abstract or place description states."""
    text = " ".join([record.ds_abstract, record.ds_acq_place, record.english.ds_abstract, record.english.ds_acq_place])
    stated = _stated_ranges(text)
    bounds = {
        "lat": (record.ds_acq_lat_south, record.ds_acq_lat_north, "ds_acq_lat_south", "ds_acq_lat_north"),
        "lon": (record.ds_acq_lon_west, record.ds_acq_lon_east, "ds_acq_lon_west", "ds_acq_lon_east"),
    }
    for axis, values in stated.items():
        if len(values) < 2:
            continue
        low, high, low_field, high_field = bounds[axis]
        for field, have, want in ((low_field, low, min(values)), (high_field, high, max(values))):
            if abs(have - want) > _TOLERANCE_DEG:
                yield QualityWarning(
                    field=field,
                    message=f"is {have:.4f} but the text states {want:.4f} ({_dms(want)}) for this bound",
                )


def _dms(value: float) -> str:
    degrees = int(abs(value))
    minutes = round((abs(value) - degrees) * 60)
    return f"{degrees}°{minutes:02d}′"


def check_coordinate_system(record: Record) -> Iterator[QualityWarning]:
    """A spatial dataset should name its coordinate system."""
    if record.ds_coordinate.strip().lower() in _NONE_WORDS:
        yield QualityWarning(
            field="ds_coordinate",
            message=f"says {record.ds_coordinate!r} (none) although the dataset has a bounding box",
        )


def check_counts(record: Record) -> Iterator[QualityWarning]:
    """File count and total size should agree."""
    if record.ds_files_count == 0 and (record.ds_total_size or 0) > 0:
        yield QualityWarning(
            field="ds_files_count", message=f"is 0 while ds_total_size is {record.ds_total_size} bytes"
        )


def check_translations(record: Record) -> Iterator[QualityWarning]:
    """Fields translated elsewhere should not be left untranslated."""
    if not record.has_english:
        return
    for name in ("ds_abstract", "ds_time_res", "ds_space_res", "ds_acq_place", "ds_process_way", "ds_source"):
        if getattr(record, name) and not getattr(record.english, name):
            yield QualityWarning(
                field=f"i18n.en.{name}", message=f"is empty while {name} is {getattr(record, name)!r:.60}"
            )


def check_time_tags(record: Record) -> Iterator[QualityWarning]:
    """Year tags should lie inside the temporal extent (in China Standard Time years)."""
    start = record.ds_acq_start_time
    end = record.ds_acq_end_time
    first = (start.year if start else None) or 0
    for year in record.ds_time_tags:
        if year < first - 1 or (end is not None and year > end.year + 1):
            yield QualityWarning(field="ds_time_tags", message=f"year {year} lies outside the acquisition period")


def check_unknown_keys(record: Record) -> Iterator[QualityWarning]:
    """Keys the crosswalk does not know are reported, so that nothing is dropped unnoticed."""
    for key in record.extra_keys:
        yield QualityWarning(field=key, message="unknown key: not in the crosswalk (docs/crosswalk.md), not converted")


CHECKS: tuple[Check, ...] = (
    check_english_place,
    check_bbox_against_text,
    check_coordinate_system,
    check_counts,
    check_translations,
    check_time_tags,
    check_unknown_keys,
)


def quality_warnings(record: Record) -> list[QualityWarning]:
    """Run every check on a record."""
    return [warning for check in CHECKS for warning in check(record)]
