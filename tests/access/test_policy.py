"""The pure access policy: rules from Collection documents (including real records) and decisions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from catalog.collection import create_collection
from catalog.record import load_record
from services.access.policy import FOREVER, AccessRule, Principal, ShareType, decide, rule_from_collection

RECORDS = Path(__file__).resolve().parents[2] / "records"
NOW = datetime(2025, 6, 1, tzinfo=UTC)
ALICE = Principal(subject="alice", email="alice@example.org")
GRANTED = Principal(subject="bob", email="bob@example.org", grants=frozenset({"c"}))
MANAGER = Principal(subject="carol", email="carol@example.org")
ADMIN = Principal(subject="root", admin=True)


def rule(share_type: ShareType, embargo: datetime | None = None) -> AccessRule:
    return AccessRule("c", share_type, embargo, managers=frozenset({"carol@example.org"}))


@pytest.mark.parametrize(
    ("share_type", "embargo", "expected"),
    [
        (ShareType.OPEN, None, (200, 200, 200, 200, 200)),
        (ShareType.LOGIN, None, (401, 200, 200, 200, 200)),
        (ShareType.APPLY, None, (401, 403, 200, 200, 200)),
        (ShareType.OPEN, NOW + timedelta(days=1), (401, 403, 403, 200, 200)),
        (ShareType.APPLY, NOW + timedelta(days=1), (401, 403, 403, 200, 200)),
        (ShareType.APPLY, NOW - timedelta(seconds=1), (401, 403, 200, 200, 200)),
        (ShareType.OPEN, NOW, (200, 200, 200, 200, 200)),
        (ShareType.LOGIN, FOREVER, (401, 403, 403, 200, 200)),
    ],
)
def test_decisions(share_type: ShareType, embargo: datetime | None, expected: tuple[int, ...]) -> None:
    decisions = [decide(rule(share_type, embargo), p, NOW) for p in (None, ALICE, GRANTED, MANAGER, ADMIN)]
    assert tuple(d.status for d in decisions) == expected
    assert all(d.allowed == (d.status == 200) for d in decisions)


def test_embargo_reason_names_its_end() -> None:
    decision = decide(rule(ShareType.OPEN, datetime(2027, 8, 19, 16, tzinfo=UTC)), ALICE, NOW)
    assert decision.status == 403 and "2027-08-19T16:00:00Z" in decision.reason


def test_rule_from_document() -> None:
    document = {
        "id": "c",
        "ncdc:share_type": "login-access",
        "ncdc:protected_to": "2027-08-19T16:00:00Z",
        "contacts": [
            {"roles": ["custodian", "author"], "emails": [{"value": " Carol@Example.org "}]},
            {"roles": ["author"], "emails": [{"value": "dave@example.org"}]},
            {"roles": ["custodian"], "emails": [{"value": "no e-mail"}]},
        ],
        "assets": {
            "thumbnail": {"href": "./2023-01/thumbnail.jpg", "roles": ["thumbnail"]},
            "data": {"href": "./all.zip", "roles": ["data"]},
            "outside": {"href": "../other/thumbnail.png", "roles": ["thumbnail"]},
        },
    }
    got = rule_from_collection(document)
    assert got == AccessRule(
        "c",
        ShareType.LOGIN,
        datetime(2027, 8, 19, 16, tzinfo=UTC),
        frozenset({"carol@example.org"}),
        frozenset({"2023-01/thumbnail.jpg"}),
    )


@pytest.mark.parametrize(
    ("fields", "share_type", "embargo"),
    [
        ({}, ShareType.OPEN, None),
        ({"ncdc:share_type": "something-new"}, ShareType.APPLY, None),
        ({"ncdc:protected": True}, ShareType.OPEN, FOREVER),
        ({"ncdc:protected": True, "ncdc:protected_to": "2001-01-01T00:00:00Z"}, ShareType.OPEN, None),
        ({"ncdc:protected_to": "not a date"}, ShareType.OPEN, FOREVER),
        ({"ncdc:protected_to": "2030-01-01 08:00:00"}, ShareType.OPEN, datetime(2030, 1, 1, 8, tzinfo=UTC)),
    ],
)
def test_rule_defaults_deny_when_unsure(fields: dict[str, object], share_type: ShareType, embargo: object) -> None:
    got = rule_from_collection({"id": "c", **fields})
    assert got.share_type is share_type
    if embargo is None and "ncdc:protected_to" in fields:
        assert got.embargo_until is not None and not got.embargoed(NOW)
    else:
        assert got.embargo_until == embargo


def test_rules_of_the_real_records() -> None:
    rules = {}
    for path in sorted(RECORDS.glob("*.json")):
        collection = create_collection(load_record(path)).to_dict(include_self_link=False)
        rules[path.stem] = rule_from_collection(collection)
    assert rules["gangrigab-velocity"].share_type is ShareType.OPEN
    subsidence = rules["muli-subsidence"]
    assert subsidence.share_type is ShareType.APPLY
    assert subsidence.embargo_until == datetime(2027, 8, 19, 16, tzinfo=UTC), "2027-08-20 00:00 China Standard Time"
    assert subsidence.managers, "the custodians of the record"
    manager = Principal(subject="m", email=next(iter(subsidence.managers)))
    assert decide(subsidence, manager, NOW).allowed
    granted = Principal(subject="g", grants=frozenset({subsidence.collection_id}))
    assert decide(subsidence, granted, NOW).status == 403
    assert decide(subsidence, granted, datetime(2027, 8, 19, 16, 0, 1, tzinfo=UTC)).allowed
