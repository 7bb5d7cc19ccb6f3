"""PostgreSQL stopped under a bounded search load: the API answers 503 (never 500, never a hang) and recovers.

A cluster of its own (it is stopped and started here), the service on a real port so that the asyncpg pool
is the real one, and a few threads searching with httpx (5 s timeouts) until told to stop.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from ncdc_stac.settings import Settings
from publish.ingest import ingest
from services.app import create_app
from tests.live import serve
from tests.ops.conftest import PostgresServer

CLIENT_TIMEOUT = 5.0
REQUEST_TIMEOUT = 3.0
"""``NCDC_STAC_REQUEST_TIMEOUT`` of the service under test."""
LOAD_THREADS = 3
MAX_REQUESTS_PER_THREAD = 2000
DOWN_SECONDS = 3.0
RECOVERY_LIMIT = 10.0
"""Seconds after PostgreSQL is back within which searches must answer 200 again."""


@dataclass(frozen=True)
class Outcome:
    started: float
    seconds: float
    status: int | None = None
    retry_after: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class Service:
    url: str
    dsn: str
    root: Path
    server: PostgresServer


@pytest.fixture(scope="module")
def service(ops_root: Path) -> Iterator[Service]:
    from tests.pgstac_cluster import pgstac_cluster

    with pgstac_cluster() as dsn:
        ingest(ops_root, dsn)
        settings = Settings(
            root=ops_root,
            backend="pgstac",
            dsn=dsn,  # type: ignore[arg-type]
            request_timeout=REQUEST_TIMEOUT,
            readiness_timeout=1.0,
        )
        with serve(create_app(settings)) as url:
            yield Service(url, dsn, ops_root, PostgresServer.of(dsn))


def search(client: httpx.Client, url: str) -> httpx.Response:
    return client.post(f"{url}/stac/search", json={"limit": 50, "sortby": [{"field": "id", "direction": "asc"}]})


def load(url: str, stop: threading.Event, outcomes: list[Outcome]) -> None:
    """Search until ``stop`` is set (at most ``MAX_REQUESTS_PER_THREAD`` requests)."""
    with httpx.Client(timeout=CLIENT_TIMEOUT) as client:
        for _ in range(MAX_REQUESTS_PER_THREAD):
            if stop.is_set():
                return
            started = time.monotonic()
            try:
                response = search(client, url)
            except httpx.HTTPError as error:
                outcomes.append(Outcome(started, time.monotonic() - started, error=repr(error)))
                continue
            seconds = time.monotonic() - started
            outcomes.append(Outcome(started, seconds, response.status_code, response.headers.get("retry-after")))
            time.sleep(0.02)


def statuses_of(outcomes: list[Outcome]) -> Counter[int | str | None]:
    return Counter(o.status or o.error for o in outcomes)


def item_count(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT count(*) FROM pgstac.items").fetchone()
    assert row is not None
    return int(row[0])


def test_ready_while_the_database_runs(service: Service) -> None:
    response = httpx.get(f"{service.url}/readyz", timeout=CLIENT_TIMEOUT)
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "checks": {"database": "ok", "storage": "ok"}}


@dataclass(frozen=True)
class Outage:
    """What the load saw around a stop and start of PostgreSQL."""

    outcomes: list[Outcome]
    down_from: float
    back_at: float
    recovered_after: float | None
    """Seconds from PostgreSQL answering again to the first search answered 200."""
    ready_while_down: httpx.Response
    health_while_down: int


def outage_under_load(service: Service) -> Outage:
    """Search from a few threads; stop PostgreSQL, wait, start it, and measure until searches answer again."""
    url = service.url
    stop, outcomes = threading.Event(), list[Outcome]()
    threads = [threading.Thread(target=load, args=(url, stop, outcomes)) for _ in range(LOAD_THREADS)]
    for thread in threads:
        thread.start()
    recovered_after: float | None = None
    try:
        time.sleep(1.0)
        down_from = time.monotonic()
        service.server.stop()
        time.sleep(DOWN_SECONDS)
        ready = httpx.get(f"{url}/readyz", timeout=CLIENT_TIMEOUT)
        health = httpx.get(f"{url}/healthz", timeout=CLIENT_TIMEOUT).status_code
        service.server.start()
        back_at = time.monotonic()
        with httpx.Client(timeout=CLIENT_TIMEOUT) as client:
            while time.monotonic() - back_at < RECOVERY_LIMIT:
                if search(client, url).status_code == 200:
                    recovered_after = time.monotonic() - back_at
                    break
                time.sleep(0.05)
        time.sleep(1.5)  # the load goes on after the recovery
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    return Outage(outcomes, down_from, back_at, recovered_after, ready, health)


def test_outage_answers_503_and_recovers(service: Service, record_property: Any) -> None:
    with httpx.Client(timeout=CLIENT_TIMEOUT) as client:
        before = search(client, service.url)
    assert before.status_code == 200
    items_before = item_count(service.dsn)

    outage = outage_under_load(service)
    record_property("recovery_seconds", outage.recovered_after)
    print(
        f"searches answer 200 again {outage.recovered_after} s after PostgreSQL is back; {statuses_of(outage.outcomes)}"
    )
    assert outage.recovered_after is not None, f"searches did not recover within {RECOVERY_LIMIT} s"

    assert outage.ready_while_down.status_code == 503
    assert outage.ready_while_down.headers["retry-after"]
    assert outage.ready_while_down.json()["checks"]["database"] != "ok"
    assert outage.ready_while_down.json()["checks"]["storage"] == "ok"
    assert outage.health_while_down == 200  # alive: no reason to restart the process

    outcomes = outage.outcomes
    errors = [o for o in outcomes if o.error is not None]
    assert not errors, f"requests failed or hung: {errors[:5]}"
    statuses = Counter(o.status for o in outcomes)
    assert set(statuses) <= {200, 503}, statuses
    assert statuses[503] > 0, f"no 503 while PostgreSQL was down: {statuses}"
    assert all(o.retry_after for o in outcomes if o.status == 503)
    assert max(o.seconds for o in outcomes) < REQUEST_TIMEOUT + 1.0
    assert all(o.status == 200 for o in outcomes if o.started + o.seconds < outage.down_from)
    late = [o for o in outcomes if o.started > outage.back_at + outage.recovered_after + 0.5]
    assert late, "no searches after the recovery"
    assert {o.status for o in late} == {200}

    assert httpx.get(f"{service.url}/readyz", timeout=CLIENT_TIMEOUT).status_code == 200
    again = ingest(service.root, service.dsn)  # re-running ingest after the outage is harmless
    assert again.items == items_before == item_count(service.dsn)
    with httpx.Client(timeout=CLIENT_TIMEOUT) as client:
        after = search(client, service.url).json()
    assert [f["id"] for f in after["features"]] == [f["id"] for f in before.json()["features"]]
    assert after["numberMatched"] == before.json()["numberMatched"]


def test_unanswered_query_is_cancelled_with_503(service: Service) -> None:
    """A database that accepts connections but does not answer (a lock here): 503 after the request timeout,
    and the query is cancelled in PostgreSQL rather than left waiting."""
    with psycopg.connect(service.dsn) as locker:
        locker.execute("LOCK TABLE pgstac.items IN ACCESS EXCLUSIVE MODE")
        started = time.monotonic()
        with httpx.Client(timeout=REQUEST_TIMEOUT + CLIENT_TIMEOUT) as client:
            response = search(client, service.url)
        seconds = time.monotonic() - started
        assert response.status_code == 503
        assert response.headers["retry-after"]
        assert response.json()["code"] == "ServiceUnavailable"
        assert REQUEST_TIMEOUT - 0.5 < seconds < REQUEST_TIMEOUT + 2.0
        with psycopg.connect(service.dsn, autocommit=True) as observer:
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                row = observer.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND pid <> %s",
                    [locker.info.backend_pid],
                ).fetchone()
                if row is not None and row[0] == 0:
                    break
                time.sleep(0.1)
            assert row is not None and row[0] == 0, "the cancelled search still waits in PostgreSQL"
    with httpx.Client(timeout=CLIENT_TIMEOUT) as client:
        assert search(client, service.url).status_code == 200
