"""The crosswalk of each seed record, schema validity (offline), and safety of the texts."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pystac
import pytest

from catalog.collection import create_collection
from catalog.record import load_record, parse_record
from catalog.text import html_to_markdown, parse_gsd, parse_time_resolution
from tests.conftest import REPO
from tests.stac_schemas import OfflineValidator

EXPECTED: dict[str, dict[str, Any]] = {
    "cpec-deformation": {
        "id": "surface-deformation-china-pakistan-economic-corridor-2014-2018",
        "bbox": [74.76944444444445, 37.44305555555555, 75.815, 38.70333333333333],
        "interval": ["2013-12-31T16:00:00Z", "2018-12-31T15:59:59Z"],
        "gsd": [20.0],
        "proj": ["EPSG:4326"],
        "share": "login-access",
        "platform": ["sentinel-1a"],
        "warning_fields": {"i18n.en.ds_acq_place"},
        "step": "P1D",
    },
    "muli-subsidence": {
        "id": "surface-subsidence-no-4-pit-muli-coalfield-qinghai-province-2018-2023",
        "bbox": [99.12277777777777, 38.12777777777778, 99.15416666666667, 38.14361111111111],
        "interval": ["2018-01-11T16:00:00Z", "2023-04-04T15:59:59Z"],
        "gsd": None,
        "proj": None,
        "share": "apply-access",
        "platform": ["sentinel-1a"],
        "warning_fields": {"ds_coordinate", "ds_files_count", "i18n.en.ds_time_res"},
        "step": "P1D",
    },
    "gangrigab-velocity": {
        "id": "monthly-glacier-surface-velocity-gangrigab-area-2023",
        "bbox": [96.5, 29.0, 97.0, 29.5],
        "interval": ["2022-12-31T16:00:00Z", "2023-12-31T15:59:59Z"],
        "gsd": [30.0],
        "proj": ["EPSG:32647"],
        "share": "open-access",
        "platform": ["uav"],
        "warning_fields": {"ds_acq_lon_west"},
        "step": "P1M",
    },
    "hma-glacier-velocity": {
        "id": "monthly-velocity-large-glaciers-high-mountain-asia-2013-2024",
        "bbox": [73.51, 29.01, 96.99, 42.269999999999996],
        "interval": ["2013-03-31T16:00:00Z", "2024-12-31T15:59:59Z"],
        "gsd": [120.0],
        "proj": ["EPSG:4326"],
        "share": "apply-access",
        "platform": ["landsat-8"],
        "warning_fields": {"i18n.en.ds_acq_place"},
        "step": "P1M",
    },
}


def collection_dict(path: Path) -> dict[str, Any]:
    return create_collection(load_record(path)).to_dict(include_self_link=False)


def test_seed_crosswalk_values(record_path: Path) -> None:
    want = EXPECTED[record_path.stem]
    got = collection_dict(record_path)
    assert got["id"] == want["id"]
    assert got["extent"]["spatial"]["bbox"] == [want["bbox"]]
    assert got["extent"]["temporal"]["interval"] == [want["interval"]]
    assert got["license"] == "CC-BY-4.0"
    assert {"rel": "license", "href": "https://creativecommons.org/licenses/by/4.0/"}.items() <= next(
        link for link in got["links"] if link["rel"] == "license"
    ).items()
    assert got["summaries"].get("gsd") == want["gsd"]
    assert got["summaries"].get("proj:code") == want["proj"]
    assert got["summaries"]["platform"] == want["platform"]
    assert got["ncdc:share_type"] == want["share"]
    assert got["ncdc:temporal_resolution"] == want["step"]
    assert {w["field"] for w in got["ncdc:quality_warnings"]} == want["warning_fields"]
    assert got["language"]["code"] == "en"
    assert [lang["code"] for lang in got["languages"]] == ["en", "zh-Hans"]
    assert got["ncdc:i18n"]["zh-Hans"]["title"] == load_record(record_path).title_cn
    assert "sci:doi" not in got, "an empty DOI is omitted"


def test_seed_validates_offline(record_path: Path, stac_validator: OfflineValidator) -> None:
    document = collection_dict(record_path)
    assert stac_validator.errors(document) == []
    assert set(stac_validator.schema_urls(document)[1:]) >= {
        "https://stac-extensions.github.io/contacts/v1.0.0/schema.json",
        "https://stac-extensions.github.io/language/v1.0.0/schema.json",
        "https://stac-extensions.github.io/scientific/v1.0.0/schema.json",
        "https://stac-extensions.github.io/processing/v1.2.0/schema.json",
        "https://stac-extensions.github.io/themes/v1.0.0/schema.json",
    }


def test_validator_catches_a_broken_collection(stac_validator: OfflineValidator) -> None:
    document = collection_dict(REPO / "records" / "gangrigab-velocity.json")
    document["contacts"][0]["phones"] = [{"value": "0931-4967592"}]
    document["extent"]["spatial"]["bbox"] = [[96.5, 29.0]]
    errors = stac_validator.errors(document)
    assert any("contacts" in e and "phones" in e for e in errors)
    assert any("collection.json" in e and "bbox" in e for e in errors)


def test_cpec_contacts_and_orbits() -> None:
    got = collection_dict(REPO / "records" / "cpec-deformation.json")
    contacts = {c["name"]: c for c in got["contacts"]}
    assert contacts["李红星"]["roles"] == ["pointOfContact"]
    assert contacts["李红星"]["phones"] == [{"value": "+869314967592"}]
    assert contacts["白艳萍"]["roles"] == ["custodian", "author"]
    assert contacts["马金辉"]["roles"] == ["author", "metadataAuthor"]
    assert "emails" not in contacts["李萌"], "empty e-mails are omitted"
    assert got["summaries"]["sat:relative_orbit"] == [107, 27]
    assert got["summaries"]["sat:orbit_state"] == ["descending", "ascending"]
    assert got["summaries"]["sar:frequency_band"] == ["C"]
    assert "CSTR: 11738.11.ncdc.nieer.2020.1658" in got["sci:citation"]
    assert any(link["rel"] == "cite-as" and link["href"].endswith("2020.1658") for link in got["links"])


def test_restricted_sets_carry_access_terms() -> None:
    muli = collection_dict(REPO / "records" / "muli-subsidence.json")
    assert muli["ncdc:protected_to"] == "2027-08-19T16:00:00Z"
    assert muli["auth:schemes"]["ncdc"]["scheme"] == "bearer"
    assert muli["order:status"] == "orderable"
    open_set = collection_dict(REPO / "records" / "gangrigab-velocity.json")
    assert "auth:schemes" not in open_set and "order:status" not in open_set


def test_html_becomes_inert_commonmark() -> None:
    html = (
        '<p>&emsp;&emsp;冰川 <b>fast</b></p><script>alert(1)</script><img src=x onerror="alert(2)">'
        '<a href="javascript:alert(3)">js</a> &lt;script&gt;alert(4)&lt;/script&gt;'
        '<p onclick="x()">ok <a href="https://www.ncdc.ac.cn">NCDC</a></p>'
    )
    text = html_to_markdown(html)
    assert text.startswith("冰川 **fast**")
    assert "alert(1)" not in text and "onerror" not in text and "javascript:" not in text
    assert re.search(r"(?<!\\)<", text) is None, "literal markup is escaped, not raw HTML"
    assert "\\<script\\>alert(4)" in text
    assert "[NCDC](https://www.ncdc.ac.cn)" in text


def test_xss_in_a_record_does_not_reach_the_collection() -> None:
    raw = json.loads((REPO / "records" / "gangrigab-velocity.json").read_text(encoding="utf-8"))
    raw["i18n"]["en"]["ds_abstract"] = '<p>Glacier<script>steal()</script><img src=x onerror="steal()"></p>'
    raw["title_en"] = "<b onmouseover=steal()>Glacier</b>"
    serialized = json.dumps(create_collection(parse_record(raw)).to_dict())
    assert "steal()</script" not in serialized and "onerror" not in serialized and "<img" not in serialized


def test_chinese_only_record_converts(stac_validator: OfflineValidator) -> None:
    raw = json.loads((REPO / "records" / "muli-subsidence.json").read_text(encoding="utf-8"))
    raw["title_en"] = ""
    raw["i18n"] = {}
    collection = create_collection(parse_record(raw))
    document = collection.to_dict(include_self_link=False)
    assert collection.id == "ncdc-05e0ee43"
    assert document["title"] == raw["title_cn"]
    assert document["description"].startswith("时序地表沉降数据")
    assert document["language"]["code"] == "zh-Hans" and "languages" not in document
    assert stac_validator.errors(document) == []


def test_antimeridian_bbox_is_kept(stac_validator: OfflineValidator) -> None:
    raw = json.loads((REPO / "records" / "gangrigab-velocity.json").read_text(encoding="utf-8"))
    raw |= {"ds_acq_lon_west": 170.0, "ds_acq_lon_east": -170.0}
    document = create_collection(parse_record(raw)).to_dict(include_self_link=False)
    assert document["extent"]["spatial"]["bbox"] == [[170.0, 29.0, -170.0, 29.5]]
    assert stac_validator.errors(document) == []


def test_collection_roundtrips_through_pystac() -> None:
    collection = create_collection(load_record(REPO / "records" / "hma-glacier-velocity.json"))
    again = pystac.Collection.from_dict(collection.to_dict())
    assert again.to_dict() == collection.to_dict()


@pytest.mark.parametrize(
    ("text", "metres"), [("20", 20.0), ("30米", 30.0), ("120m", 120.0), ("1 km", 1000.0), ("", None)]
)
def test_gsd_strings(text: str, metres: float | None) -> None:
    assert parse_gsd(text) == metres


@pytest.mark.parametrize(
    ("text", "duration"),
    [("日", "P1D"), ("month", "P1M"), ("1月", "P1M"), ("年", "P1Y"), ("16 days", "P16D"), ("?", None)],
)
def test_time_resolution_strings(text: str, duration: str | None) -> None:
    assert parse_time_resolution(text) == duration
