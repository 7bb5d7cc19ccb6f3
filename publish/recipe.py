"""Recipes: the declarative file -> Item mapping of a collection (a TOML file beside the record).

A recipe is a list of rules. Each rule picks files by glob pattern, names the items it makes,
says where their dates come from (the file name, the band names of a time-series file, or the
collection's own interval) and describes the asset (key, title, unit, roles, render defaults).
Without a recipe file the defaults publish any GDAL raster as COG and any OGR vector as GeoParquet.
"""

from __future__ import annotations

import calendar
import re
import tomllib
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

RASTER_SUFFIXES = (".tif", ".tiff", ".img", ".dat", ".jp2", ".nc", ".vrt")
VECTOR_SUFFIXES = (".shp", ".kml", ".kmz", ".gpkg", ".geojson", ".json", ".fgb", ".gml", ".csv")


class RecipeError(ValueError):
    """A recipe, or a file that does not fit it; names the file."""

    def __init__(self, source: str, message: str) -> None:
        self.source = source
        super().__init__(f"{source}: {message}")


class RenderDefaults(BaseModel):
    """Default visualisation of an asset (render extension)."""

    model_config = ConfigDict(extra="forbid")

    colormap: str = "viridis"
    rescale: tuple[float, float] | None = None
    bands: list[int] | None = None
    """1-based band indexes to render (default: the first band)."""
    value_column: str | None = None
    """Vector assets: the attribute that colours the points."""


class Rule(BaseModel):
    """One kind of data file of a collection."""

    model_config = ConfigDict(extra="forbid")

    pattern: str
    """Glob relative to the data folder, e.g. ``*.tif`` or ``T107_DESC/*.shp``."""
    kind: Literal["raster", "vector"] | None = None
    regex: str | None = None
    """Named groups taken from the file's path relative to the data folder (``year``, ``month``, ...)."""
    item_id: str = "{stem}"
    """Item id template: ``{stem}``, regex groups, and ``{band}`` (the band's date) for band items."""
    datetime: Literal["name", "bands", "collection"] = "collection"
    period: Literal["day", "month", "year"] = "day"
    asset: str = "data"
    title: str | None = None
    description: str | None = None
    unit: str | None = None
    roles: list[str] = Field(default_factory=lambda: ["data"])
    band_names: list[str] | None = None
    properties: dict[str, Any] = Field(default_factory=dict)
    """Extra item properties, e.g. ``sat:relative_orbit``."""
    columns: dict[str, str] = Field(default_factory=dict)
    """Vector column descriptions: regex of the column name -> template using its named groups."""
    render: RenderDefaults = Field(default_factory=RenderDefaults)

    @field_validator("regex")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            re.compile(value)
        return value

    def matches(self, relative: str) -> bool:
        return Path(relative).match(self.pattern)

    def groups(self, relative: str) -> dict[str, str]:
        """Named groups of ``regex`` in the relative path; RecipeError when the name does not fit."""
        if self.regex is None:
            return {}
        match = re.search(self.regex, relative)
        if not match:
            raise RecipeError(relative, f"file name does not match the recipe's regex {self.regex!r}")
        return {k: v for k, v in match.groupdict().items() if v is not None}

    def item_id_for(self, relative: str, band: str | None = None) -> str:
        path = Path(relative)
        values = {"stem": path.stem, "parent": path.parent.name, "band": band or "", **self.groups(relative)}
        try:
            item_id = self.item_id.format(**values)
        except KeyError as err:
            raise RecipeError(relative, f"item_id template needs {err}, which the regex does not provide") from None
        return re.sub(r"[^a-z0-9_.-]+", "-", item_id.lower()).strip("-")


class Recipe(BaseModel):
    """All rules of a collection."""

    model_config = ConfigDict(extra="forbid")

    collection_id: str | None = None
    utc_offset_hours: float = 8.0
    """Dates in file and band names are local times of the producer: China Standard Time by default."""
    rules: list[Rule] = Field(default_factory=list)

    @property
    def zone(self) -> timezone:
        return timezone(timedelta(hours=self.utc_offset_hours))

    def rule_for(self, relative: str) -> Rule | None:
        return next((rule for rule in self.rules if rule.matches(relative)), None)


DEFAULT_RULES = [
    *(Rule(pattern=f"**/*{suffix}", kind="raster") for suffix in RASTER_SUFFIXES if suffix != ".vrt"),
    *(Rule(pattern=f"**/*{suffix}", kind="vector") for suffix in VECTOR_SUFFIXES),
]


def load_recipe(path: Path | None) -> Recipe:
    """Read a recipe TOML file (``[[rules]]`` tables); without one, the default rules."""
    if path is None or not path.exists():
        return Recipe(rules=DEFAULT_RULES)
    try:
        return Recipe.model_validate(tomllib.loads(path.read_text(encoding="utf-8")))
    except (tomllib.TOMLDecodeError, ValidationError, re.error) as err:
        raise RecipeError(str(path), f"invalid recipe: {err}") from None


def recipe_path_for(record: Path) -> Path:
    """The recipe that sits beside a record: ``name.json`` -> ``name.recipe.toml``."""
    return record.with_name(f"{record.stem}.recipe.toml")


def period_bounds(groups: dict[str, str], period: str, zone: timezone, source: str) -> tuple[datetime, datetime]:
    """Start and end (UTC) of the day / month / year that a file name names."""
    try:
        year = int(groups["year"])
        month = int(groups.get("month", 1))
        day = int(groups.get("day", 1))
        start = datetime(year, month, day, tzinfo=zone)
    except (KeyError, ValueError) as err:
        raise RecipeError(source, f"cannot read a date from the file name: {err}") from None
    if period == "year":
        end = start.replace(year=year + 1, month=1, day=1)
    elif period == "month":
        end = start.replace(day=calendar.monthrange(year, month)[1]) + timedelta(days=1)
    else:
        end = start + timedelta(days=1)
    utc = UTC
    return start.astimezone(utc), (end - timedelta(seconds=1)).astimezone(utc)


def band_date(name: str, zone: timezone, source: str) -> datetime:
    """The date a time-series band is named by ('2018-01-12', '20180112')."""
    match = re.search(r"(\d{4})-?(\d{2})-?(\d{2})", name or "")
    if not match:
        raise RecipeError(source, f"band name {name!r} carries no date (expected YYYY-MM-DD)")
    try:
        year, month, day = map(int, match.groups())
        return datetime(year, month, day, tzinfo=zone).astimezone(UTC)
    except ValueError as err:
        raise RecipeError(source, f"band name {name!r}: {err}") from None
