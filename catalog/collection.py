"""Crosswalk: one metadata record -> one STAC Collection (docs/crosswalk.md is its table)."""

from __future__ import annotations

import mimetypes
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pyproj
import pystac
from pystac.extensions.scientific import ScientificExtension
from pystac.extensions.version import VersionExtension

from catalog.extensions import (
    AuthenticationExtension,
    AuthScheme,
    Concept,
    Contact,
    ContactInfo,
    ContactsExtension,
    Language,
    LanguageExtension,
    OrderExtension,
    ProcessingExtension,
    SarExtension,
    SatExtension,
    Theme,
    ThemesExtension,
)
from catalog.quality import quality_warnings
from catalog.record import CHINA_STANDARD_TIME, Record
from catalog.text import e164_phone, html_to_markdown, parse_gsd, parse_time_resolution, slugify

DATA_CENTER = pystac.Provider(
    name="National Cryosphere Desert Data Center (国家冰川冻土沙漠科学数据中心)",
    roles=[pystac.ProviderRole.HOST],
    url="https://www.ncdc.ac.cn",
)
LANDING_PAGE = "https://www.ncdc.ac.cn/portal/metadata/{id}"
CSTR_RESOLVER = "https://cstr.cn/{cstr}"
SUBJECT_SCHEME = "GB/T 13745-2009 学科分类与代码 (Classification and codes of disciplines)"
ZH = Language(code="zh-Hans", name="简体中文", alternate="Chinese (Simplified)")
EN = Language(code="en", name="English", alternate="英语")
I18N_FIELD = "ncdc:i18n"
"""Translations of text fields: ``{"zh-Hans": {"title": ..., "description": ...}}``."""
RESTRICTED_AUTH = {
    "ncdc": AuthScheme(
        type="http",
        scheme="bearer",
        description="Bearer token of the data center (login-access: any signed-in user; "
        "apply-access: users granted this dataset).",
    )
}
LICENSES = {
    "CC-BY-4.0": ("https://creativecommons.org/licenses/by/4.0/", r"cc[\s\-_]*by[\s\-_]*4\.0|licenses/by/4\.0"),
    "CC-BY-SA-4.0": (
        "https://creativecommons.org/licenses/by-sa/4.0/",
        r"cc[\s\-_]*by[\s\-_]*sa[\s\-_]*4\.0|licenses/by-sa/4\.0",
    ),
    "CC-BY-NC-4.0": (
        "https://creativecommons.org/licenses/by-nc/4.0/",
        r"cc[\s\-_]*by[\s\-_]*nc[\s\-_]*4\.0|licenses/by-nc/4\.0",
    ),
    "CC0-1.0": ("https://creativecommons.org/publicdomain/zero/1.0/", r"cc0|publicdomain/zero/1\.0"),
}


@dataclass(frozen=True)
class Mission:
    """A source platform recognised in a record's texts, with the extension summaries it implies."""

    pattern: str
    platform: str | None
    constellation: str | None
    instruments: tuple[str, ...]
    sar: dict[str, list[Any]] | None = None


_C_BAND: dict[str, list[Any]] = {"frequency_band": ["C"], "center_frequency": [5.405]}
MISSIONS = (
    Mission(r"sentinel[\s\-_]*1\s*a\b|哨兵一号\s*a", "sentinel-1a", "sentinel-1", ("c-sar",), _C_BAND),
    Mission(r"sentinel[\s\-_]*1\s*b\b", "sentinel-1b", "sentinel-1", ("c-sar",), _C_BAND),
    Mission(r"sentinel[\s\-_]*1(?![\d\s]*[ab]\b)|哨兵一号", None, "sentinel-1", ("c-sar",), _C_BAND),
    Mission(r"sentinel[\s\-_]*2", None, "sentinel-2", ("msi",)),
    Mission(r"landsat[\s\-_]*8", "landsat-8", "landsat", ("oli",)),
    Mission(r"landsat", None, "landsat", ()),
    Mission(r"\bOLI\b|陆地成像仪", None, None, ("oli",)),
    Mission(r"无人机|\buav\b|\bdrones?\b", "uav", None, ("camera",)),
)


def collection_id(record: Record) -> str:
    """Stable readable id: a slug of the English title, else of the record UUID."""
    return slugify(record.title_en or record.english.title) or f"ncdc-{record.id.split('-')[0]}"


def create_collection(record: Record, collection_id_override: str | None = None) -> pystac.Collection:
    """Map a record to a STAC Collection (pure: no I/O)."""
    english = record.has_english
    title = (record.title_en or record.english.title) if english else record.title_cn
    abstract = html_to_markdown(record.english.ds_abstract if english else record.ds_abstract)
    collection = pystac.Collection(
        id=collection_id_override or collection_id(record),
        title=title,
        description=abstract or title,
        extent=_extent(record),
        license=_license(record)[0],
        keywords=_keywords(record),
        providers=[DATA_CENTER, *_producers(record)],
        extra_fields={"ncdc:record_id": record.id},
    )
    _add_links(collection, record)
    _add_language(collection, record)
    _add_contacts(collection, record)
    _add_science(collection, record)
    _add_processing(collection, record)
    _add_themes(collection, record)
    _add_missions(collection, record)
    _add_resolution_and_projection(collection, record)
    _add_access(collection, record)
    _add_timestamps(collection, record)
    _add_thumbnail(collection, record)
    _add_record_fields(collection, record)
    warnings = [w.model_dump() for w in quality_warnings(record)]
    if warnings:
        collection.extra_fields["ncdc:quality_warnings"] = warnings
    return collection


def _extent(record: Record) -> pystac.Extent:
    west, south, east, north = record.bbox
    return pystac.Extent(
        spatial=pystac.SpatialExtent([[west, south, east, north]]),
        temporal=pystac.TemporalExtent([[record.ds_acq_start_time, record.ds_acq_end_time]]),
    )


def _license(record: Record) -> tuple[str, str | None]:
    """SPDX id and URL from either the URL or the text form of the licence."""
    text = record.license_type or record.license
    for spdx, (url, pattern) in LICENSES.items():
        if re.search(pattern, text, flags=re.IGNORECASE):
            return spdx, url
    return ("other", text if text.startswith("http") else None)


def _unique(values: list[str]) -> list[str]:
    return list(dict.fromkeys(v.strip() for v in values if v and v.strip()))


def _keywords(record: Record) -> list[str]:
    category = [record.category] if record.category not in ("", "其他") else []
    return _unique(
        [*record.ds_topic_tags, *record.ds_subject_tags, *record.ds_class_tags, *record.ds_locus_tags, *category]
    )


def _producers(record: Record) -> list[pystac.Provider]:
    institutions = _unique([p.work_for for p in record.ds_contributors])
    return [pystac.Provider(name=name, roles=[pystac.ProviderRole.PRODUCER]) for name in institutions]


def _add_links(collection: pystac.Collection, record: Record) -> None:
    spdx, url = _license(record)
    if url:
        collection.add_link(pystac.Link("license", url, media_type="text/html", title=spdx))
    collection.add_link(
        pystac.Link(
            "about",
            LANDING_PAGE.format(id=record.id),
            media_type="text/html",
            title="Dataset page at the data center (数据中心的数据集页面)",
        )
    )
    if record.cstr:
        collection.add_link(
            pystac.Link(
                "cite-as", CSTR_RESOLVER.format(cstr=record.cstr), media_type="text/html", title=f"CSTR {record.cstr}"
            )
        )


def _add_language(collection: pystac.Collection, record: Record) -> None:
    language = LanguageExtension.ext(collection, add_if_missing=True)
    if not record.has_english:
        language.language = ZH
        return
    language.language = EN
    language.languages = [EN, ZH]
    zh = {
        "title": record.title_cn,
        "description": html_to_markdown(record.ds_abstract),
        "processing:lineage": _lineage(record.ds_source, record.ds_process_way),
        "ncdc:quality": html_to_markdown(record.ds_quality),
        "ncdc:place": record.ds_acq_place,
    }
    collection.extra_fields[I18N_FIELD] = {ZH.code: {k: v for k, v in zh.items() if v}}


def _add_contacts(collection: pystac.Collection, record: Record) -> None:
    """Service contact, managers, contributors and metadata authors; one contact per person."""
    merged: dict[tuple[str, str], Contact] = {}

    def add(name: str, organization: str, email: str, role: str, phone: str = "") -> None:
        contact = merged.setdefault((name, organization), Contact(name=name or None, organization=organization or None))
        contact.roles = _unique([*(contact.roles or []), role])
        if "@" in email and email not in [e.value for e in contact.emails or []]:
            contact.emails = [*(contact.emails or []), ContactInfo(value=email)]
        if phone:
            number = e164_phone(phone)
            if number:
                contact.phones = [ContactInfo(value=number)]
            else:
                contact.contactInstructions = [f"Phone: {phone}"]

    if record.ds_serv_man or record.ds_serv_mail:
        organization = "" if record.ds_serv_man else DATA_CENTER.name
        add(record.ds_serv_man, organization, record.ds_serv_mail, "pointOfContact", record.ds_serv_phone)
    for people, role in (
        (record.ds_managers, "custodian"),
        (record.ds_contributors, "author"),
        (record.ds_meta_authors, "metadataAuthor"),
    ):
        for person in people:
            add(person.true_name, person.work_for, person.email, role)
    if merged:
        ContactsExtension.ext(collection, add_if_missing=True).contacts = list(merged.values())


def _citation(record: Record) -> str:
    if record.ds_ref_way:
        return html_to_markdown(record.ds_ref_way)
    authors = ", ".join(_unique([p.true_name for p in record.ds_contributors]))
    published = record.publish_time or record.created
    year = published.astimezone(CHINA_STANDARD_TIME).year if published else ""
    title = record.title_en or record.english.title or record.title_cn
    identifier = f" https://doi.org/{record.doi_value}" if record.doi_value else ""
    if not identifier and record.cstr:
        identifier = f" CSTR: {record.cstr}, {CSTR_RESOLVER.format(cstr=record.cstr)}"
    return f"{authors}. ({year}). {title}. National Cryosphere Desert Data Center.{identifier}".strip()


def _add_science(collection: pystac.Collection, record: Record) -> None:
    science = ScientificExtension.ext(collection, add_if_missing=True)
    science.citation = _citation(record)
    if record.doi_value:
        science.doi = record.doi_value
    if record.paper_ref_way:
        collection.extra_fields["ncdc:paper_citation"] = html_to_markdown(record.paper_ref_way)
    if record.ds_ref_instruction:
        collection.extra_fields["ncdc:citation_instruction"] = html_to_markdown(record.ds_ref_instruction)


def _lineage(source_html: str, process_html: str) -> str:
    parts = [("Sources", html_to_markdown(source_html)), ("Processing", html_to_markdown(process_html))]
    return "\n\n".join(f"## {heading}\n\n{text}" for heading, text in parts if text)


def _add_processing(collection: pystac.Collection, record: Record) -> None:
    english = record.english if record.has_english else record
    lineage = _lineage(english.ds_source, english.ds_process_way)
    producer = next((p for p in collection.providers or [] if pystac.ProviderRole.PRODUCER in (p.roles or [])), None)
    if lineage and producer:
        ProcessingExtension.of_provider(collection, producer).lineage = lineage
    quality = html_to_markdown(english.ds_quality)
    if quality:
        collection.extra_fields["ncdc:quality"] = quality


def _add_themes(collection: pystac.Collection, record: Record) -> None:
    if not record.subject_codes:
        return
    titles = record.ds_subject_tags if len(record.ds_subject_tags) == len(record.subject_codes) else []
    concepts = [Concept(id=code, title=titles[i] if titles else None) for i, code in enumerate(record.subject_codes)]
    ThemesExtension.ext(collection, add_if_missing=True).themes = [Theme(scheme=SUBJECT_SCHEME, concepts=concepts)]


def _mission_text(record: Record) -> str:
    english = record.english
    return " ".join(
        [
            record.ds_abstract,
            record.ds_source,
            record.ds_process_way,
            english.ds_abstract,
            english.ds_source,
            english.ds_process_way,
            *record.ds_topic_tags,
        ]
    )


def _add_missions(collection: pystac.Collection, record: Record) -> None:
    """Platforms, instruments and SAR / orbit summaries from what the record's texts say."""
    text = _mission_text(record)
    found = [m for m in MISSIONS if re.search(m.pattern, text, flags=re.IGNORECASE)]
    with_platform = {m.constellation for m in found if m.platform}
    found = [m for m in found if m.platform or not m.constellation or m.constellation not in with_platform]
    if not found:
        return
    summaries = collection.summaries
    for field, values in (
        ("platform", _unique([m.platform or "" for m in found])),
        ("constellation", _unique([m.constellation or "" for m in found])),
        ("instruments", _unique([i for m in found for i in m.instruments])),
    ):
        if values:
            summaries.add(field, values)
    sar = next((m.sar for m in found if m.sar), None)
    if sar:
        modes = ["IW"] if re.search(r"\bIW\b", text) else []
        SarExtension.summarize(collection, **sar, **({"instrument_mode": modes} if modes else {}))
    orbits = re.findall(r"(\d+)\s*[(（]\s*(descending|ascending)", text, flags=re.IGNORECASE)
    if orbits:
        numbers = _unique([number for number, _ in orbits])
        states = _unique([state.lower() for _, state in orbits])
        SatExtension.summarize(collection, relative_orbit=[int(n) for n in numbers], orbit_state=states)


def _crs_code(record: Record) -> str | None:
    for text in (record.ds_projection, record.ds_coordinate):
        try:
            epsg = pyproj.CRS.from_user_input(text).to_epsg() if text else None
        except pyproj.exceptions.CRSError:
            epsg = None
        if epsg:
            return f"EPSG:{epsg}"
    return None


def _add_resolution_and_projection(collection: pystac.Collection, record: Record) -> None:
    gsd = parse_gsd(record.ds_space_res) or parse_gsd(record.english.ds_space_res)
    if gsd:
        collection.summaries.add("gsd", [gsd])
    code = _crs_code(record)
    if code:
        collection.summaries.add("proj:code", [code])
        collection.stac_extensions.append("https://stac-extensions.github.io/projection/v2.0.0/schema.json")
    step = parse_time_resolution(record.ds_time_res) or parse_time_resolution(record.english.ds_time_res)
    if step:
        collection.extra_fields["ncdc:temporal_resolution"] = step


def _iso(moment: datetime | None) -> str | None:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ") if moment else None


def _add_access(collection: pystac.Collection, record: Record) -> None:
    """Share type and embargo, machine-readable for the access control of the services."""
    collection.extra_fields["ncdc:share_type"] = record.ds_share_type
    collection.extra_fields["ncdc:protected"] = record.protected
    if record.protected_to:
        collection.extra_fields["ncdc:protected_to"] = _iso(record.protected_to)
    if record.ds_share_type != "open-access" or record.protected or record.protected_to:
        AuthenticationExtension.ext(collection, add_if_missing=True).schemes = RESTRICTED_AUTH
    if record.ds_share_type == "apply-access":
        OrderExtension.ext(collection, add_if_missing=True).status = "orderable"


def _add_timestamps(collection: pystac.Collection, record: Record) -> None:
    for field, moment in (
        ("created", record.created),
        ("updated", record.updated),
        ("published", record.publish_time),
        ("ncdc:last_updated", record.last_updated),
    ):
        if moment:
            collection.extra_fields[field] = _iso(moment)
    if record.publish_time:
        collection.stac_extensions.append("https://stac-extensions.github.io/timestamps/v1.1.0/schema.json")
    if record.version is not None:
        VersionExtension.ext(collection, add_if_missing=True).version = str(record.version)


def _add_thumbnail(collection: pystac.Collection, record: Record) -> None:
    if not record.ds_thumbnail:
        return
    media_type, _ = mimetypes.guess_type(record.ds_thumbnail)
    collection.add_asset(
        "thumbnail",
        pystac.Asset(
            href=record.ds_thumbnail,
            media_type=media_type,
            title="Thumbnail named by the record (缩略图)",
            roles=["thumbnail"],
        ),
    )


def _add_record_fields(collection: pystac.Collection, record: Record) -> None:
    """Record fields without a STAC home, kept under the ``ncdc:`` prefix."""
    english = record.english
    fields: dict[str, Any] = {
        "ncdc:cstr": record.cstr,
        "ncdc:place": english.ds_acq_place if record.has_english else record.ds_acq_place,
        "ncdc:format": english.ds_format or record.ds_format,
        "ncdc:coordinate_system": record.ds_coordinate,
        "ncdc:projection": record.ds_projection,
        "ncdc:total_size": record.ds_total_size,
        "ncdc:files_count": record.ds_files_count,
        "ncdc:category": record.category,
        "ncdc:quality_level": record.quality_level,
        "ncdc:data_level": record.data_level,
        "ncdc:organization_id": record.organization_id,
        "ncdc:submit_center": record.submit_center_id,
        "ncdc:station": record.ds_from_station,
        "ncdc:thumbnail_source": record.ds_thumb_from,
    }
    if record.ds_acq_alt_low is not None or record.ds_acq_alt_high is not None:
        fields["ncdc:elevation"] = {"minimum": record.ds_acq_alt_low, "maximum": record.ds_acq_alt_high}
    collection.extra_fields.update({k: v for k, v in fields.items() if v not in (None, "")})
    if record.has_english and record.ds_format and record.ds_format != fields["ncdc:format"]:
        collection.extra_fields.setdefault(I18N_FIELD, {}).setdefault(ZH.code, {})["ncdc:format"] = record.ds_format
