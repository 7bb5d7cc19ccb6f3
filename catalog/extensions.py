"""Typed helpers for STAC extensions that pystac does not ship (or ships at an older version).

They follow pystac's own pattern (``XExtension.ext(obj, add_if_missing=True).field = value``):
values are pydantic models or plain scalars, serialised without empty fields.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal, TypeVar

import pystac
from pydantic import BaseModel, ConfigDict, Field
from pystac.extensions.base import ExtensionManagementMixin, PropertiesExtension

M = TypeVar("M", bound=BaseModel)
StacObject = pystac.Item | pystac.Collection | pystac.Asset | pystac.Provider


class Model(BaseModel):
    """Extension values: serialised without None fields."""

    model_config = ConfigDict(extra="forbid")

    def dump(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)


class _Extension(PropertiesExtension, ExtensionManagementMixin[pystac.Item | pystac.Collection]):
    """Base: properties of an Item, or fields of a Collection, an Asset or a Provider."""

    SCHEMA: ClassVar[str]

    def __init__(self, obj: StacObject) -> None:
        self.obj = obj
        self.properties = obj.properties if isinstance(obj, pystac.Item) else obj.extra_fields

    @classmethod
    def get_schema_uri(cls) -> str:
        return cls.SCHEMA

    @classmethod
    def ext(cls, obj: pystac.Item | pystac.Collection | pystac.Asset, add_if_missing: bool = False) -> Any:
        if isinstance(obj, pystac.Asset):
            cls.ensure_owner_has_extension(obj, add_if_missing)
        else:
            cls.ensure_has_extension(obj, add_if_missing)
        return cls(obj)

    @classmethod
    def of_provider(cls, collection: pystac.Collection, provider: pystac.Provider) -> Any:
        """Extension fields on one of a collection's providers (declared on the collection)."""
        cls.ensure_has_extension(collection, add_if_missing=True)
        return cls(provider)

    @classmethod
    def summarize(cls, collection: pystac.Collection, **values: list[Any]) -> None:
        """Add summaries of this extension's fields to a collection (and declare the schema)."""
        cls.ensure_has_extension(collection, add_if_missing=True)
        for name, value in values.items():
            collection.summaries.add(f"{cls.prefix()}{name}", value)

    @classmethod
    def prefix(cls) -> str:
        return ""

    def _get_models(self, name: str, model: type[M]) -> list[M]:
        return [model.model_validate(v) for v in self._get_property(name, list) or []]

    def _set_models(self, name: str, values: list[M] | None) -> None:
        self._set_property(name, [v.model_dump(mode="json", exclude_none=True) for v in values] if values else None)


class ContactInfo(Model):
    value: str
    roles: list[str] | None = None


class Contact(Model):
    name: str | None = None
    organization: str | None = None
    position: str | None = None
    emails: list[ContactInfo] | None = None
    phones: list[ContactInfo] | None = None
    roles: list[str] | None = None
    contactInstructions: list[str] | None = None  # noqa: N815 (the extension's own field name)


class ContactsExtension(_Extension):
    """Contacts extension v1.0.0: people and organisations to contact about the data."""

    SCHEMA = "https://stac-extensions.github.io/contacts/v1.0.0/schema.json"

    @property
    def contacts(self) -> list[Contact]:
        return self._get_models("contacts", Contact)

    @contacts.setter
    def contacts(self, values: list[Contact]) -> None:
        self._set_models("contacts", values)


class Language(Model):
    code: str
    name: str | None = None
    alternate: str | None = None
    dir: Literal["ltr", "rtl"] | None = None


class LanguageExtension(_Extension):
    """Language extension v1.0.0: the document's language and the other languages it carries."""

    SCHEMA = "https://stac-extensions.github.io/language/v1.0.0/schema.json"

    @property
    def language(self) -> Language | None:
        value = self._get_property("language", dict)
        return Language.model_validate(value) if value else None

    @language.setter
    def language(self, value: Language) -> None:
        self._set_property("language", value.dump())

    @property
    def languages(self) -> list[Language]:
        return self._get_models("languages", Language)

    @languages.setter
    def languages(self, values: list[Language]) -> None:
        self._set_models("languages", values)


class Concept(Model):
    id: str
    title: str | None = None
    description: str | None = None
    url: str | None = None


class Theme(Model):
    scheme: str
    concepts: list[Concept]


class ThemesExtension(_Extension):
    """Themes extension v1.0.0: concepts of a controlled vocabulary (here: subject codes)."""

    SCHEMA = "https://stac-extensions.github.io/themes/v1.0.0/schema.json"

    @property
    def themes(self) -> list[Theme]:
        return self._get_models("themes", Theme)

    @themes.setter
    def themes(self, values: list[Theme]) -> None:
        self._set_models("themes", values)


class ProcessingExtension(_Extension):
    """Processing extension v1.2.0: lineage, level and software of the processing."""

    SCHEMA = "https://stac-extensions.github.io/processing/v1.2.0/schema.json"

    @classmethod
    def prefix(cls) -> str:
        return "processing:"

    @property
    def lineage(self) -> str | None:
        return self._get_property("processing:lineage", str)

    @lineage.setter
    def lineage(self, value: str | None) -> None:
        self._set_property("processing:lineage", value)

    @property
    def level(self) -> str | None:
        return self._get_property("processing:level", str)

    @level.setter
    def level(self, value: str | None) -> None:
        self._set_property("processing:level", value)

    @property
    def software(self) -> dict[str, str] | None:
        return self._get_property("processing:software", dict)

    @software.setter
    def software(self, value: dict[str, str] | None) -> None:
        self._set_property("processing:software", value)


class AuthScheme(Model):
    type: str
    description: str | None = None
    scheme: str | None = None
    name: str | None = None
    in_: str | None = None
    flows: dict[str, Any] | None = None

    def dump(self) -> dict[str, Any]:
        data = super().dump()
        if "in_" in data:
            data["in"] = data.pop("in_")
        return data


class AuthenticationExtension(_Extension):
    """Authentication extension v1.1.0: how to authenticate for restricted assets and links."""

    SCHEMA = "https://stac-extensions.github.io/authentication/v1.1.0/schema.json"

    @property
    def schemes(self) -> dict[str, AuthScheme]:
        raw = self._get_property("auth:schemes", dict) or {}
        return {k: AuthScheme.model_validate({**v, "in_": v.get("in")}) for k, v in raw.items()}

    @schemes.setter
    def schemes(self, values: dict[str, AuthScheme]) -> None:
        self._set_property("auth:schemes", {k: v.dump() for k, v in values.items()} or None)

    @property
    def refs(self) -> list[str]:
        return self._get_property("auth:refs", list) or []

    @refs.setter
    def refs(self, values: list[str]) -> None:
        self._set_property("auth:refs", values or None)


class SarExtension(_Extension):
    """SAR extension v1.3.2 (pystac ships v1.0.0); used through summaries and item properties."""

    SCHEMA = "https://stac-extensions.github.io/sar/v1.3.2/schema.json"

    @classmethod
    def prefix(cls) -> str:
        return "sar:"


class SatExtension(_Extension):
    """Satellite extension v1.2.0 (pystac ships v1.0.0): orbit state and relative orbit."""

    SCHEMA = "https://stac-extensions.github.io/sat/v1.2.0/schema.json"

    @classmethod
    def prefix(cls) -> str:
        return "sat:"

    @property
    def orbit_state(self) -> str | None:
        return self._get_property("sat:orbit_state", str)

    @orbit_state.setter
    def orbit_state(self, value: Literal["ascending", "descending"] | None) -> None:
        self._set_property("sat:orbit_state", value)

    @property
    def relative_orbit(self) -> int | None:
        return self._get_property("sat:relative_orbit", int)

    @relative_orbit.setter
    def relative_orbit(self, value: int | None) -> None:
        self._set_property("sat:relative_orbit", value)


class OrderExtension(_Extension):
    """Order extension v1.1.0: data that must be requested (the record's apply-access)."""

    SCHEMA = "https://stac-extensions.github.io/order/v1.1.0/schema.json"

    @property
    def status(self) -> str | None:
        return self._get_property("order:status", str)

    @status.setter
    def status(self, value: str | None) -> None:
        self._set_property("order:status", value)


class Statistics(Model):
    minimum: float | None = None
    maximum: float | None = None
    mean: float | None = None
    stddev: float | None = None
    valid_percent: float | None = None


class Band(Model):
    """A STAC 1.1 band (core ``bands``) with raster v2 fields."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str | None = None
    description: str | None = None
    data_type: str | None = None
    nodata: float | str | None = None
    unit: str | None = None
    statistics: Statistics | None = None
    spatial_resolution: float | None = Field(default=None, alias="raster:spatial_resolution")
    scale: float | None = Field(default=None, alias="raster:scale")
    offset: float | None = Field(default=None, alias="raster:offset")

    def dump(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True, by_alias=True)


class RasterExtension(_Extension):
    """Raster extension v2.0.0 on STAC 1.1 ``bands`` (pystac ships raster v1.1)."""

    SCHEMA = "https://stac-extensions.github.io/raster/v2.0.0/schema.json"

    @property
    def bands(self) -> list[Band]:
        return [Band.model_validate(b) for b in self._get_property("bands", list) or []]

    @bands.setter
    def bands(self, values: list[Band]) -> None:
        self._set_property("bands", [b.dump() for b in values] or None)
