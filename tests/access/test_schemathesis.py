"""Property-based tests of the service's OpenAPI documents with schemathesis: no 5xx, answers as documented.

Both documents are driven through the real ASGI app (``create_app`` over the sample publication, DuckDB
backend, access control on, every request in-process):

- ``/stac``: stac-fastapi's OpenAPI (served at ``/stac/api``; the service's own app has no OpenAPI);
- ``/raster``: titiler's OpenAPI (``/raster/openapi.json``).

Each operation runs twice: once with every parameter generated (unknown collections and items, odd values:
400 / 404 / 422), and once with the path ids of a published collection and item whose data the caller (an
admin API key) may read, so the generated queries reach the readers and renderers. Cases are bounded
(:data:`MAX_EXAMPLES` per operation and run, derandomized, no deadline) to keep the module to a couple of
minutes on two cores.

Checks: ``not_a_server_error`` (no 5xx), ``response_schema_conformance`` (a documented status answers with a
body valid against its documented schema), ``content_type_conformance`` and ``negative_data_rejection``
(requests that break the schema are refused with 4xx). Deliberate exclusions:

- ``status_code_conformance``: stac-fastapi and titiler answer 400 / 401 / 403 / 404 (access control, unknown
  ids, bad CQL2 or bbox) without listing them in their OpenAPI; those statuses are right, just undocumented;
- ``positive_data_acceptance``: parameters documented as free-form strings (``bbox``, ``datetime``,
  ``filter``, ``intersects``) have a grammar the OpenAPI does not state, so schema-valid values are refused
  with 400, as they must be;
- the body schema of answers to requests with ``fields`` (fields extension): trimming ``geometry``,
  ``assets`` or ``links`` is what the client asked for, while the documented Item schema requires them;
- the body schema of ``GET /raster/colorMaps/{colorMapId}``: titiler documents it with the tuple form
  ``items: [...]``, which is not a valid OpenAPI 3.1 / JSON Schema 2020-12 schema (only ``prefixItems`` is);
  its answers are still checked for 5xx;
- ``/_mgmt/*``: health probes of stac-fastapi, not part of the published interface.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from schemathesis import CheckContext, CheckFunction, Response
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
)
from starlette.testclient import TestClient

from ncdc_stac.settings import ApiKey, Settings
from services.access import hash_api_key
from services.app import create_app
from tests.publication import Publication

MAX_EXAMPLES = 12
ADMIN_KEY = "schemathesis-admin-key-0123456789"
HEADERS = {"X-API-Key": ADMIN_KEY}
EXCLUDED_PATHS = ("/_mgmt/",)
INVALID_RESPONSE_SCHEMAS = frozenset({"/colorMaps/{colorMapId}"})
"""Operations whose documented response schema is not valid OpenAPI 3.1 (titiler: ``items`` given as a list)."""
OPEN_DATASET = "gangrigab-velocity"
BOUNDED = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
"""Per operation and run: the same cases every time, as many as the machine can afford."""


def documented_schema(ctx: CheckContext, response: Response, case: schemathesis.Case[Any]) -> bool | None:
    """``response_schema_conformance``, except for answers trimmed by the fields extension on request."""
    body = case.body if isinstance(case.body, dict) else {}
    if "fields" in (case.query or {}) or "fields" in body or case.operation.path in INVALID_RESPONSE_SCHEMAS:
        return None
    return response_schema_conformance(ctx, response, case)


CHECKS: list[CheckFunction] = [
    not_a_server_error,
    documented_schema,
    content_type_conformance,
    negative_data_rejection,
]


def service_settings(root: Any) -> Settings:
    return Settings(
        root=root,
        api_keys={hash_api_key(ADMIN_KEY): ApiKey(subject="schemathesis", roles=["admin"])},
        signing_key="schemathesis-signing-key-0123456789abcdef",  # type: ignore[arg-type]
    )


def openapi_documents(service: FastAPI) -> dict[str, dict[str, Any]]:
    """The OpenAPI documents as the service serves them, by mount path."""
    with TestClient(service) as client:
        stac = client.get("/stac/api")
        raster = client.get("/raster/openapi.json")
    assert stac.status_code == 200, stac.text
    assert raster.status_code == 200, raster.text
    return {"/stac": stac.json(), "/raster": raster.json()}


def published_ids(root: Any, collection_id: str) -> dict[str, str]:
    """Path parameters naming a published collection and its first item."""
    folder = root / collection_id
    item = next(p.name for p in sorted(folder.iterdir()) if (p / f"{p.name}.json").is_file())
    return {"collection_id": collection_id, "item_id": item}


@dataclass
class Outcome:
    """What a run of one OpenAPI document did: operations tried, cases sent, one report per failing operation."""

    operations: int = 0
    cases: int = 0
    failures: list[str] = field(default_factory=list)


def run_schema(
    service: FastAPI, document: dict[str, Any], mount: str, parameters: dict[str, str] | None = None
) -> Outcome:
    """Every operation of ``document`` (served under ``mount``) with bounded generated cases; failures collected."""
    schema = schemathesis.openapi.from_dict({**document, "servers": [{"url": mount}]})
    schema.app = service
    if parameters:
        schema.config.update(parameters=parameters)
    outcome = Outcome()
    for result in schema.get_all_operations():
        if not isinstance(result, Ok):
            outcome.failures.append(f"invalid operation in the OpenAPI document: {result.err()}")
            continue
        operation = result.ok()
        if operation.path.startswith(EXCLUDED_PATHS):
            continue
        outcome.operations += 1

        @BOUNDED
        @given(case=operation.as_strategy())
        def exercise(case: schemathesis.Case[Any]) -> None:
            outcome.cases += 1
            case.call_and_validate(headers=HEADERS, checks=CHECKS)

        try:
            exercise()
        except (Exception, BaseExceptionGroup) as error:  # per failing operation, with schemathesis's report
            outcome.failures.append(f"{operation.label}: {error}")
    return outcome


@pytest.fixture(scope="module")
def service(publication: Publication) -> FastAPI:
    return create_app(service_settings(publication.root))


@pytest.fixture(scope="module")
def documents(service: FastAPI) -> dict[str, dict[str, Any]]:
    return openapi_documents(service)


@pytest.mark.parametrize("mount", ["/stac", "/raster"])
@pytest.mark.parametrize("ids", ["generated", "published"])
def test_openapi(
    service: FastAPI, documents: dict[str, dict[str, Any]], publication: Publication, mount: str, ids: str
) -> None:
    parameters = (
        published_ids(publication.root, publication.collection_ids[OPEN_DATASET]) if ids == "published" else None
    )
    outcome = run_schema(service, documents[mount], mount, parameters)
    assert outcome.operations > 0 and outcome.cases >= outcome.operations
    assert outcome.failures == [], "\n\n".join(outcome.failures)


@pytest.mark.parametrize(
    "path",
    [
        "/raster/colorMaps/viridis?f=png&width=-1",  # was a 500 (rasterio: negative dimensions)
        "/raster/colorMaps/viridis?f=png&width=200000&height=200000",  # was allocating until killed
        "/raster/collections/{collection_id}/items/{item_id}/preview/100000x100000.png",
        "/raster/collections/{collection_id}/items/{item_id}/preview.png?max_size=1000000",
        "/raster/collections/{collection_id}/tiles/WebMercatorQuad/0/0/0?tilesize=65536",
    ],
)
def test_image_sizes_are_bounded(service: FastAPI, publication: Publication, path: str) -> None:
    """Found by the runs above: titiler renders any size it is asked for."""
    url = path.format(**published_ids(publication.root, publication.collection_ids[OPEN_DATASET]))
    with TestClient(service) as client:
        refused = client.get(url, headers=HEADERS)
        fine = client.get("/raster/colorMaps/viridis?f=png&width=256&height=20")
    assert refused.status_code == 400, refused.text
    assert refused.json()["code"] == "BadRequest"
    assert fine.status_code == 200 and fine.headers["content-type"] == "image/png"
