"""CORS, body size limit, security headers, STAC limit / CQL2 caps and error bodies without internals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from services.access import AccessSettings, cors_options
from services.access.hardening import DEFAULT_CSP, json_depth, scrub, text_depth
from tests.access.conftest import OPEN, World, data_path


def test_cors_is_open_for_reading_without_credentials(client: TestClient) -> None:
    preflight = client.options(
        data_path(OPEN),
        headers={
            "Origin": "https://maps.example.org",
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "Range, Authorization",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "*"
    assert "access-control-allow-credentials" not in preflight.headers
    allowed = preflight.headers["access-control-allow-headers"].lower()
    assert "range" in allowed and "authorization" in allowed
    response = client.get(data_path(OPEN), headers={"Origin": "https://maps.example.org", "Range": "bytes=0-9"})
    assert response.headers["access-control-allow-origin"] == "*"
    assert "content-range" in response.headers["access-control-expose-headers"].lower()
    refused = client.options(
        data_path(OPEN), headers={"Origin": "https://x.example.org", "Access-Control-Request-Method": "DELETE"}
    )
    assert refused.status_code == 400


def test_cors_credentials_need_explicit_origins(tmp_path: Path) -> None:
    explicit = AccessSettings(root=tmp_path, cors_origins=["https://viewer.example.org"], cors_allow_credentials=True)
    assert cors_options(explicit)["allow_credentials"] is True
    permissive = AccessSettings(root=tmp_path)
    permissive.cors_allow_credentials = True  # settings are not validated on assignment
    with pytest.raises(ValueError, match="explicit origins"):
        cors_options(permissive)


def test_security_headers(client: TestClient) -> None:
    page = client.get("/")
    assert page.headers["content-security-policy"] == DEFAULT_CSP
    assert "unsafe-inline" not in DEFAULT_CSP and "frame-ancestors 'none'" in DEFAULT_CSP
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["referrer-policy"] == "strict-origin-when-cross-origin"
    assert page.headers["x-frame-options"] == "DENY"
    data = client.get(f"/files/{OPEN}/collection.json")
    assert data.headers["x-content-type-options"] == "nosniff"
    assert data.headers["content-security-policy"] == "frame-ancestors 'none'"
    assert "strict-transport-security" not in data.headers


def test_body_size_limit(client: TestClient) -> None:
    big = json.dumps({"collections": ["x" * 5000]})
    response = client.post("/admin/ingest", content=big, headers={"Content-Type": "application/json"})
    assert response.status_code == 413 and response.json()["code"] == "PayloadTooLarge"

    def chunks() -> object:
        yield b"x" * 3000
        yield b"x" * 3000

    streamed = client.post("/upload", content=chunks())  # type: ignore[arg-type]
    assert streamed.status_code == 413
    assert client.post("/upload", content=b"x" * 4000).json() == {"size": 4000}


def test_limit_is_capped(client: TestClient) -> None:
    assert client.get("/stac/search", params={"limit": "5000"}).json()["limit"] == "100"
    assert client.get("/stac/search", params={"limit": "7"}).json()["limit"] == "7"
    assert client.post("/stac/search", json={"limit": 5000}).json()["limit"] == 100
    assert client.post("/stac/search", json={"limit": 20}).json()["limit"] == 20


def test_cql2_limits(client: TestClient) -> None:
    shallow = "eo:cloud_cover < 10 AND (platform = 'x' OR platform = '(((((((')"
    assert client.get("/stac/search", params={"filter": shallow}).status_code == 200
    deep_text = "(" * 10 + "a = 1" + ")" * 10
    response = client.get("/stac/search", params={"filter": deep_text})
    assert response.status_code == 400 and "nested" in response.json()["description"]
    long_text = " OR ".join(f"id = 'item-{i}'" for i in range(100))
    assert client.get("/stac/search", params={"filter": long_text}).status_code == 400
    node: object = {"op": "=", "args": [{"property": "a"}, 1]}
    for _ in range(5):
        node = {"op": "not", "args": [node]}
    response = client.post("/stac/search", json={"filter": node, "filter-lang": "cql2-json"})
    assert response.status_code == 400
    assert client.get("/stac/search", params={"filter": json.dumps(node)}).status_code == 400
    fine = {"op": "=", "args": [{"property": "a"}, 1]}
    assert client.post("/stac/search", json={"filter": fine}).status_code == 200


def test_depth_helpers() -> None:
    assert json_depth(1) == 0 and json_depth({"a": [1, {"b": []}]}) == 4
    assert text_depth("a = '((('") == 0 and text_depth("(a = 1) AND ((b = 2))") == 2


def test_unhandled_errors_are_generic_json(client: TestClient, world: World) -> None:
    response = client.get("/boom")
    assert response.status_code == 500
    assert response.json() == {"code": "InternalServerError", "description": "internal error"}
    assert str(world.root) not in response.text and "Traceback" not in response.text


def test_error_bodies_lose_filesystem_paths(client: TestClient, world: World) -> None:
    response = client.get("/fail")
    assert response.status_code == 404
    description = response.json()["detail"]
    assert str(world.root) not in description and "/usr/lib" not in description
    assert description == "no such file: <path> or <path>"
    assert int(response.headers["content-length"]) == len(response.content)


def test_scrub() -> None:
    assert scrub("open /work/main/public/x.tif failed", ["/work/main/public"]) == "open <path> failed"
    assert scrub("see http://127.0.0.1:8000/tmp/a and /stac/collections/x", []) == (
        "see http://127.0.0.1:8000/tmp/a and /stac/collections/x"
    )
    assert scrub("/home/user/.venv/lib/python3.11/site-packages/x.py: boom") == "<path>: boom"
    assert scrub('Traceback (most recent call last):\n  File "x.py"') == "internal error"
