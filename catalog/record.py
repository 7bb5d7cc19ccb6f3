"""Typed model of one metadata record, as the data center's metadata API exports it.

Field names are the record's own keys, so the crosswalk (docs/crosswalk.md) reads one to one.
Times in records carry no zone: they are China Standard Time (UTC+8) and are returned as aware
UTC datetimes.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

CHINA_STANDARD_TIME = timezone(timedelta(hours=8), "CST")
DROPPED_KEYS = frozenset(
    {
        "ds_topic",
        "doi_reg_from",
        "cstr_reg_from",
        "doi_not_reg_reason",
        "cstr_not_reg_reason",
        "is_paper_in_submitting",
        "recommendation_value",
        "belong_to_nieer",
    }
)
"""Keys knowingly not converted (docs/crosswalk.md says why)."""
SHARE_TYPES = ("open-access", "login-access", "apply-access")


class RecordError(ValueError):
    """A record that cannot be converted: names the file and the offending field."""

    def __init__(self, source: str, field: str, message: str) -> None:
        self.source, self.field, self.message = source, field, message
        super().__init__(f"{source}: {field}: {message}")


def _cst_to_utc(value: Any) -> Any:
    """Parse 'YYYY-MM-DD HH:MM:SS' (China Standard Time) into an aware UTC datetime."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = datetime.fromisoformat(str(value).strip())
        except ValueError as err:
            raise ValueError(f"not a valid date-time: {value!r} ({err})") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=CHINA_STANDARD_TIME)
    return moment.astimezone(UTC)


def _strip(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


def _cst_end_to_utc(value: Any) -> Any:
    """An end time at midnight is a date: it covers that whole day."""
    moment = _cst_to_utc(value)
    if isinstance(moment, datetime) and moment.astimezone(CHINA_STANDARD_TIME).time() == datetime.min.time():
        return moment + timedelta(days=1, seconds=-1)
    return moment


CstTime = Annotated[datetime | None, BeforeValidator(_cst_to_utc)]
CstEndTime = Annotated[datetime | None, BeforeValidator(_cst_end_to_utc)]
Text = Annotated[str, BeforeValidator(lambda v: "" if v is None else _strip(v))]


class Person(BaseModel):
    """A contributor, manager or metadata author."""

    model_config = ConfigDict(extra="allow")

    true_name: Text
    email: Text = ""
    work_for: Text = ""
    country: Text = ""


class EnglishTexts(BaseModel):
    """The record's English forms (``i18n.en``); empty strings where not translated."""

    model_config = ConfigDict(extra="allow")

    title: Text = ""
    ds_abstract: Text = ""
    ds_source: Text = ""
    ds_process_way: Text = ""
    ds_quality: Text = ""
    ds_acq_place: Text = ""
    ds_format: Text = ""
    ds_space_res: Text = ""
    ds_time_res: Text = ""
    ds_projection: Text = ""
    ds_ref_way: Text = ""
    ds_ref_instruction: Text = ""


class I18n(BaseModel):
    model_config = ConfigDict(extra="allow")

    en: EnglishTexts = Field(default_factory=EnglishTexts)


class Record(BaseModel):
    """One dataset's metadata record."""

    model_config = ConfigDict(extra="allow", str_strip_whitespace=True)

    id: str = Field(min_length=1)
    version: int | None = None
    created: CstTime = None
    updated: CstTime = None
    publish_time: CstTime = None
    last_updated: CstTime = None

    title_cn: Text
    title_en: Text = ""
    ds_abstract: Text = ""
    ds_source: Text = ""
    ds_process_way: Text = ""
    ds_quality: Text = ""
    i18n: I18n = Field(default_factory=I18n)
    lang: Text = "zh"

    ds_acq_start_time: CstTime
    ds_acq_end_time: CstEndTime = None
    ds_acq_place: Text = ""
    ds_acq_lon_west: float = Field(ge=-180, le=180)
    ds_acq_lon_east: float = Field(ge=-180, le=180)
    ds_acq_lat_south: float = Field(ge=-90, le=90)
    ds_acq_lat_north: float = Field(ge=-90, le=90)
    ds_acq_alt_low: float | None = None
    ds_acq_alt_high: float | None = None

    ds_share_type: Literal["open-access", "login-access", "apply-access"]
    protected: bool = False
    protected_to: CstTime = None

    ds_total_size: int | None = Field(default=None, ge=0)
    ds_files_count: int | None = Field(default=None, ge=0)
    ds_format: Text = ""
    ds_space_res: Text = ""
    ds_time_res: Text = ""
    ds_coordinate: Text = ""
    ds_projection: Text = ""
    ds_thumbnail: Text = ""
    ds_thumb_from: int | None = None

    ds_ref_way: Text = ""
    paper_ref_way: Text = ""
    ds_ref_instruction: Text = ""
    doi_value: Text = ""
    cstr: Text = ""
    license_type: Text = ""
    license: Text = ""

    ds_serv_man: Text = ""
    ds_serv_phone: Text = ""
    ds_serv_mail: Text = ""
    ds_contributors: list[Person] = Field(default_factory=list)
    ds_meta_authors: list[Person] = Field(default_factory=list)
    ds_managers: list[Person] = Field(default_factory=list)
    organization_id: Text = ""
    submit_center_id: Text = ""
    ds_from_station: Text = ""

    subject_codes: list[str] = Field(default_factory=list)
    ds_topic_tags: list[str] = Field(default_factory=list)
    ds_subject_tags: list[str] = Field(default_factory=list)
    ds_class_tags: list[str] = Field(default_factory=list)
    ds_locus_tags: list[str] = Field(default_factory=list)
    ds_time_tags: list[int] = Field(default_factory=list)
    category: Text = ""
    quality_level: int | None = None
    data_level: int | None = None

    @field_validator(
        "subject_codes", "ds_topic_tags", "ds_subject_tags", "ds_class_tags", "ds_locus_tags", mode="before"
    )
    @classmethod
    def _clean_tags(cls, value: Any) -> Any:
        if value is None:
            return []
        return [str(tag).strip() for tag in value if str(tag).strip()] if isinstance(value, list) else value

    @model_validator(mode="after")
    def _check_extent(self) -> Record:
        if self.ds_acq_lat_south > self.ds_acq_lat_north:
            raise ValueError(
                f"ds_acq_lat_south ({self.ds_acq_lat_south}) is north of ds_acq_lat_north ({self.ds_acq_lat_north})"
            )
        if self.ds_acq_end_time and self.ds_acq_start_time and self.ds_acq_end_time < self.ds_acq_start_time:
            raise ValueError("ds_acq_end_time is before ds_acq_start_time")
        return self

    @property
    def english(self) -> EnglishTexts:
        return self.i18n.en

    @property
    def has_english(self) -> bool:
        return bool(self.title_en or self.english.title)

    @property
    def bbox(self) -> list[float]:
        """West, south, east, north; west > east means the box crosses the antimeridian."""
        return [self.ds_acq_lon_west, self.ds_acq_lat_south, self.ds_acq_lon_east, self.ds_acq_lat_north]

    @property
    def extra_keys(self) -> list[str]:
        """Keys of the record this model does not know (reported, not silently dropped)."""
        keys = [key for key in self.model_extra or {} if key not in DROPPED_KEYS]
        keys += [f"i18n.en.{key}" for key in self.english.model_extra or {}]
        return keys


def _field_path(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc) or "(record)"


def load_record(path: Path) -> Record:
    """Read and validate a record file; any problem raises RecordError naming file and field."""
    source = str(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError) as err:
        raise RecordError(source, "(file)", f"cannot read: {err}") from None
    except json.JSONDecodeError as err:
        raise RecordError(
            source, "(json)", f"not valid JSON (line {err.lineno}, column {err.colno}: {err.msg})"
        ) from None
    return parse_record(raw, source)


def parse_record(raw: Any, source: str = "<record>") -> Record:
    """Validate an already decoded record."""
    if not isinstance(raw, dict):
        raise RecordError(source, "(record)", f"expected a JSON object, got {type(raw).__name__}")
    try:
        return Record.model_validate(raw)
    except ValidationError as err:
        problems = [_problem(error) for error in err.errors()]
        field, message = problems[0]
        others = "".join(f"; {other}: {text}" for other, text in problems[1:])
        raise RecordError(source, field, message + others) from None


def _problem(error: Any) -> tuple[str, str]:
    """(field, message) of one pydantic validation error of a record."""
    field = _field_path(error["loc"])
    if field == "(record)" and "ds_acq" in error["msg"]:
        field = "ds_acq_*"
    value = f" (got {error['input']!r})" if error["type"] != "missing" and not isinstance(error["input"], dict) else ""
    return field, f"{error['msg']}{value}"
