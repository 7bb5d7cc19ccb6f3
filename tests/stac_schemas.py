"""Offline STAC validation: JSON schemas from ../shared/stac-schemas, resolved by a referencing registry."""

from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path
from typing import Any

from jsonschema import Draft7Validator
from jsonschema.exceptions import ValidationError
from referencing import Registry, Resource
from referencing.exceptions import NoSuchResource

CORE = {
    "Feature": "https://schemas.stacspec.org/v{v}/item-spec/json-schema/item.json",
    "Collection": "https://schemas.stacspec.org/v{v}/collection-spec/json-schema/collection.json",
    "Catalog": "https://schemas.stacspec.org/v{v}/catalog-spec/json-schema/catalog.json",
}


class OfflineValidator:
    """Validates STAC documents against the schemas of the kits (folders laid out ``<host>/<URL path>``); refuses
    any URL not in them."""

    def __init__(self, *kits: Path) -> None:
        self.kits = kits

    @cached_property
    def registry(self) -> Registry:
        resources: list[tuple[str, Resource[Any]]] = []
        for kit, path in ((folder, path) for folder in self.kits for path in folder.rglob("*")):
            if not path.is_file() or path.suffix in (".md", ".txt"):
                continue
            relative = path.relative_to(kit).as_posix()
            scheme = "http" if relative.startswith("json-schema.org") else "https"
            contents = json.loads(path.read_text(encoding="utf-8"))
            resource = Resource.from_contents(contents, default_specification=_draft7())
            url = f"{scheme}://{relative}"
            resources.append((url, resource))
            if url.startswith("http://json-schema.org/draft-07/schema"):
                resources.append(("http://json-schema.org/draft-07/schema#", resource))
            own_id = str(contents.get("$id", "")).rstrip("#")
            if own_id and own_id != url:
                resources.append((own_id, resource))
        return Registry(retrieve=_refuse).with_resources(resources)  # type: ignore[call-arg]

    def schema_urls(self, document: dict[str, Any]) -> list[str]:
        core = CORE[document["type"]].format(v=document["stac_version"])
        return [core, *document.get("stac_extensions", [])]

    def errors(self, document: dict[str, Any]) -> list[str]:
        """Every schema violation, as 'schema-url: path: message'."""
        problems = []
        for url in self.schema_urls(document):
            schema = self.registry.contents(url)
            validator = Draft7Validator(schema, registry=self.registry)
            for error in validator.iter_errors(document):
                deepest = max(_leaves(error), key=lambda e: len(e.absolute_path))
                path = "/".join(str(p) for p in deepest.absolute_path)
                problems.append(f"{url}: {path}: {deepest.message[:300]}")
        return problems


def _leaves(error: ValidationError) -> list[ValidationError]:
    """The innermost errors under oneOf/anyOf branches: the ones that say what is wrong."""
    if not error.context:
        return [error]
    return [leaf for sub in error.context for leaf in _leaves(sub)]


def _refuse(uri: str) -> Resource[Any]:
    raise NoSuchResource(ref=uri)  # type: ignore[call-arg]


def _draft7() -> Any:
    from referencing.jsonschema import DRAFT7

    return DRAFT7
