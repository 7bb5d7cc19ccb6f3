"""Probes, request ids, JSON logs, Prometheus metrics and graceful shutdown, through the real service."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from ncdc_stac.settings import ApiKey, Settings
from services.access import hash_api_key
from services.app import create_app
from tests.live import free_port, serve

ADMIN_KEY = "ops-admin-key-0123456789"
SERVE_STARTUP = 180.0
"""Seconds ``ncdc-stac serve`` may take to answer (imports on a busy machine)."""


@pytest.fixture(scope="module")
def client(ops_root: Path) -> Iterator[TestClient]:
    settings = Settings(
        root=ops_root,
        metrics_access="admin",
        api_keys={hash_api_key(ADMIN_KEY): ApiKey(subject="prometheus", roles=["admin"])},
    )
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def collection_ids(client: TestClient) -> list[str]:
    return [c["id"] for c in client.get("/stac/collections").json()["collections"]]


def metric_samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    return [
        (sample.labels, sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    ]


# --- probes ------------------------------------------------------------------------------------------------


def test_healthz_and_readyz(client: TestClient) -> None:
    health = client.get("/healthz")
    assert health.status_code == 200
    assert health.json() == {"status": "ok"}
    assert health.headers["cache-control"] == "no-store"
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "checks": {"database": "ok", "storage": "ok"}}


def test_readyz_503_when_the_storage_is_unreadable(ops_root: Path, tmp_path: Path) -> None:
    root = tmp_path / "public"
    shutil.copytree(ops_root, root)
    with TestClient(create_app(Settings(root=root))) as client:
        assert client.get("/readyz").status_code == 200
        (root / "catalog.json").unlink()
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert ready.headers["retry-after"]
        assert ready.json() == {
            "status": "unavailable",
            "checks": {"database": "ok", "storage": "unavailable (FileNotFoundError)"},
        }
        assert client.get("/healthz").status_code == 200


# --- request ids -------------------------------------------------------------------------------------------


def test_request_id_from_the_proxy_is_echoed(client: TestClient) -> None:
    response = client.get("/stac/", headers={"X-Request-ID": "req-7f3a.42:edge"})
    assert response.status_code == 200
    assert response.headers["x-request-id"] == "req-7f3a.42:edge"


@pytest.mark.parametrize("given", [None, "two words", "x" * 129, "<script>"])
def test_request_id_is_generated_when_missing_or_not_a_short_token(client: TestClient, given: str | None) -> None:
    headers = {"X-Request-ID": given} if given is not None else {}
    request_id = client.get("/healthz", headers=headers).headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", request_id)
    assert client.get("/healthz", headers=headers).headers["x-request-id"] != request_id


# --- metrics -----------------------------------------------------------------------------------------------


def test_metrics_count_requests_by_route_template(client: TestClient) -> None:
    ids = collection_ids(client)
    for collection_id in ids[:2]:
        assert client.get(f"/stac/collections/{collection_id}/items", params={"limit": 1}).status_code == 200
    for tms in ("WebMercatorQuad", "WorldCRS84Quad"):
        assert client.get(f"/raster/tileMatrixSets/{tms}").status_code == 200
    client.get("/no/such/path")
    client.get("/healthz")

    text = client.get("/metrics", headers={"X-API-Key": ADMIN_KEY}).text
    counts = {
        (labels["handler"], labels["status"]): value for labels, value in metric_samples(text, "http_requests_total")
    }
    assert counts[("/stac/collections/{collection_id}/items", "200")] == 2
    assert counts[("/raster/tileMatrixSets/{tileMatrixSetId}", "200")] == 2
    assert counts[("none", "404")] >= 1
    handlers = {handler for handler, _ in counts}
    assert not {h for h in handlers for raw in [*ids, "WebMercatorQuad", "/no/such"] if raw in h}, handlers
    assert not handlers & {"/healthz", "/readyz", "/metrics"}
    latency = metric_samples(text, "http_request_duration_seconds_count")
    assert any(labels["handler"] == "/stac/collections/{collection_id}/items" for labels, _ in latency)
    assert metric_samples(text, "process_resident_memory_bytes")


def test_metrics_need_loopback_or_an_admin(client: TestClient) -> None:
    assert client.get("/metrics").status_code == 403  # the test client's address is not loopback
    assert client.get("/metrics", headers={"X-API-Key": "not-a-key"}).status_code == 401
    assert client.get("/metrics", headers={"X-API-Key": ADMIN_KEY}).status_code == 200


def test_metrics_from_loopback_over_http(ops_root: Path) -> None:
    with serve(create_app(Settings(root=ops_root))) as url:
        response = httpx.get(f"{url}/metrics", timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")


def test_metrics_off(ops_root: Path) -> None:
    with TestClient(create_app(Settings(root=ops_root, metrics_access="off"))) as client:
        assert client.get("/metrics").status_code == 404


# --- ncdc-stac serve: JSON logs, graceful shutdown ---------------------------------------------------------


def wait_until_up(url: str, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + SERVE_STARTUP
    while time.monotonic() < deadline:
        assert process.poll() is None, "ncdc-stac serve exited"
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise AssertionError(f"ncdc-stac serve did not answer within {SERVE_STARTUP} s")


def test_serve_logs_json_lines_with_request_ids_and_stops_gracefully(ops_root: Path, tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "stderr.log"
    environment = {**os.environ, "NCDC_STAC_SHUTDOWN_TIMEOUT": "5", "NCDC_STAC_LOG_LEVEL": "info"}
    command = [sys.executable, "-c", "from ncdc_stac.cli import main; main()", "serve", "--root", str(ops_root)]
    command += ["--port", str(port)]
    with log.open("w") as stderr:
        process = subprocess.Popen(
            [*command, "--log-format", "json"], stdout=subprocess.DEVNULL, stderr=stderr, env=environment, text=True
        )
        try:
            wait_until_up(url, process)
            response = httpx.post(
                f"{url}/stac/search", json={"limit": 1}, headers={"X-Request-ID": "ops-test-1"}, timeout=30
            )
            assert response.status_code == 200
            assert response.headers["x-request-id"] == "ops-test-1"
            process.send_signal(signal.SIGTERM)
            returncode = process.wait(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    assert returncode in (0, -signal.SIGTERM)  # uvicorn re-raises the signal once it has shut down

    lines = [line for line in log.read_text("utf-8").splitlines() if line.strip()]
    records: list[dict[str, Any]] = [json.loads(line) for line in lines]  # every line is a JSON object
    requests = [r for r in records if r["logger"] == "ncdc_stac.requests" and r.get("request_id") == "ops-test-1"]
    assert len(requests) == 1, records
    request = requests[0]
    assert request["method"] == "POST"
    assert request["path"] == "/stac/search"
    assert request["status"] == 200
    assert isinstance(request["duration_ms"], float)
    assert {"time", "level", "message"} <= set(request)
    messages = [r["message"] for r in records]
    assert "Application shutdown complete." in messages  # the lifespan ran to its end: pools and store closed
    assert not [r for r in records if r["logger"] == "uvicorn.access"]
