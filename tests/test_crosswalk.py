"""docs/crosswalk.md accounts for every key of every record and every field of the model."""

from __future__ import annotations

import json
import re
from pathlib import Path

from catalog.record import DROPPED_KEYS, EnglishTexts, Record
from tests.conftest import REPO, SCHEMA_KIT

SEEDS = sorted((SCHEMA_KIT.parent / "seeds").glob("*")) if SCHEMA_KIT.parent.is_dir() else []


def documented_keys() -> set[str]:
    text = (REPO / "docs" / "crosswalk.md").read_text(encoding="utf-8")
    return set(re.findall(r"^\| `([\w.]+)` \|", text, flags=re.MULTILINE))


def record_keys(path: Path) -> set[str]:
    raw = json.loads(path.read_text(encoding="utf-8"))
    keys = set(raw)
    for language, texts in (raw.get("i18n") or {}).items():
        keys |= {f"i18n.{language}.{key}" for key in texts}
    return keys


def test_every_record_key_is_in_the_crosswalk(record_path: Path) -> None:
    missing = record_keys(record_path) - documented_keys()
    assert not missing, f"{record_path.name}: keys not in docs/crosswalk.md: {sorted(missing)}"


def test_every_seed_key_is_in_the_crosswalk() -> None:
    for path in SEEDS:
        missing = record_keys(path) - documented_keys()
        assert not missing, f"{path.name}: keys not in docs/crosswalk.md: {sorted(missing)}"


def test_model_and_crosswalk_agree() -> None:
    model_keys = set(Record.model_fields) | {f"i18n.en.{k}" for k in EnglishTexts.model_fields} | DROPPED_KEYS
    documented = documented_keys()
    assert model_keys - documented == set(), "fields the model reads but the crosswalk does not document"
    assert documented - model_keys == set(), "keys the crosswalk documents but the model neither reads nor drops"


def test_an_unknown_key_fails_the_crosswalk_check(tmp_path: Path) -> None:
    record = json.loads((REPO / "records" / "gangrigab-velocity.json").read_text(encoding="utf-8"))
    record["ds_new_field"] = "x"
    path = tmp_path / "new.json"
    path.write_text(json.dumps(record), encoding="utf-8")
    assert record_keys(path) - documented_keys() == {"ds_new_field"}
