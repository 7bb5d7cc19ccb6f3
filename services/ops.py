"""Operations: probes, request ids, JSON logs, Prometheus metrics, and database outages answered as 503.

``install(app, settings)`` (called by ``services.app.create_app``) adds to the service:

* ``GET /healthz`` - the process answers (no I/O); ``GET /readyz`` - the database (pgstac: ``SELECT 1`` through
  the API's pool; duckdb: the store is open) and the storage (the root's ``catalog.json`` is readable) answer
  within ``NCDC_STAC_READINESS_TIMEOUT``; 503 with the failed checks otherwise;
* request ids: ``X-Request-ID`` from the proxy when it is a short token, else a new one (asgi-correlation-id),
  echoed in the response and attached to every log record (``request_id``);
* one access log line per request (logger ``ncdc_stac.requests``: method, path, status, duration_ms, client);
* Prometheus metrics at ``/metrics`` (prometheus-fastapi-instrumentator, a registry per app): requests and
  latency labelled by route template (``/stac/collections/{collection_id}/items``,
  ``/raster/collections/{collection_id}/tiles/{tileMatrixSetId}/{z}/{x}/{y}``, ...), never by raw path;
  who may read them is ``NCDC_STAC_METRICS_ACCESS`` (``loopback`` by default);
* on the STAC API: database connection errors (refused, reset, closed, shutting down, too many connections,
  timeouts) become 503 with ``Retry-After`` and a JSON body, and a request that has not started its answer
  after ``NCDC_STAC_REQUEST_TIMEOUT`` seconds is cancelled (its query too) and answered 503 - never a 500 nor
  a hang. stac-fastapi-pgstac creates its asyncpg pools without connect or command timeouts, so this deadline
  is what bounds a connect, a pool acquire or a query to an unresponsive server.

:func:`logging_config` is the ``logging.config.dictConfig`` of ``ncdc-stac serve`` (JSON or text on stderr).
"""

from __future__ import annotations

import ipaddress
import logging
import math
import re
import time
from collections.abc import Callable, Sequence
from typing import Any, Literal
from uuid import uuid4

import anyio
import asyncpg
from asgi_correlation_id import CorrelationIdMiddleware
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_fastapi_instrumentator import Instrumentator
from pythonjsonlogger.core import RESERVED_ATTRS
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ncdc_stac.settings import Settings
from ncdc_stac.storage import Root, open_root

HEALTH_PATH = "/healthz"
READY_PATH = "/readyz"
METRICS_PATH = "/metrics"
REQUEST_ID_HEADER = "X-Request-ID"
REQUEST_ID = re.compile(r"[A-Za-z0-9._:+=/-]{1,128}")
"""A request id accepted from the proxy: a short token (uuid, nginx ``$request_id``, trace ids, ...)."""
RETRY_AFTER_SECONDS = 5
ACCESS_LOGGER = "ncdc_stac.requests"
CATALOG_KEY = "catalog.json"
NO_STORE = {"Cache-Control": "no-store"}
LogFormat = Literal["json", "text"]
DATABASE_UNAVAILABLE: tuple[type[Exception], ...] = (
    asyncpg.exceptions.PostgresConnectionError,  # SQLSTATE class 08, and the server closing the connection
    asyncpg.exceptions.OperatorInterventionError,  # class 57: shutting down, starting up, query cancelled
    asyncpg.exceptions.InsufficientResourcesError,  # class 53: too many connections, out of memory or disk
    asyncpg.exceptions.InternalClientError,  # the protocol out of step: the server dropped the connection mid-query
    ConnectionError,  # refused, reset, aborted
    TimeoutError,  # connect and pool timeouts
)
"""Exceptions of the STAC API that mean "the database is not reachable now" (503), not a fault of ours (500)."""
log = logging.getLogger(__name__)


def install(app: FastAPI, settings: Settings) -> None:
    """Probes, metrics, request ids and access logs on the service ``app``; 503 handling on its STAC app.

    The STAC app is ``app.state.stac`` (none in a tiles-only service). Call it once the routes and the other
    middlewares are added: the middlewares added here wrap those, so that every log line of a request has its id
    and the access log and metrics see the final status.
    """
    stac_app: FastAPI | None = getattr(app.state, "stac", None)
    if stac_app is not None:
        install_database_errors(stac_app, settings)
    app.include_router(probes_router(settings, stac_app))
    if settings.metrics_access != "off":
        instrument(app, settings)
    app.add_middleware(AccessLogMiddleware)
    app.add_middleware(
        CorrelationIdMiddleware,
        header_name=REQUEST_ID_HEADER,
        generator=lambda: uuid4().hex,
        validator=lambda value: REQUEST_ID.fullmatch(value) is not None,
    )


# --- probes ------------------------------------------------------------------------------------------------


def probes_router(settings: Settings, stac_app: FastAPI | None) -> APIRouter:
    """``/healthz`` (liveness) and ``/readyz`` (readiness of ``stac_app``'s database, if any, and the storage)."""
    router = APIRouter(tags=["Operations"], include_in_schema=False)
    root = open_root(settings.root, settings)

    @router.get(HEALTH_PATH)
    async def healthz() -> JSONResponse:
        return JSONResponse({"status": "ok"}, headers=NO_STORE)

    @router.get(READY_PATH)
    async def readyz() -> JSONResponse:
        checks = await readiness(stac_app, root, settings)
        ready = all(value == "ok" for value in checks.values())
        body = {"status": "ready" if ready else "unavailable", "checks": checks}
        headers = NO_STORE if ready else {**NO_STORE, "Retry-After": str(RETRY_AFTER_SECONDS)}
        return JSONResponse(body, status_code=200 if ready else 503, headers=headers)

    return router


async def readiness(stac_app: FastAPI | None, root: Root, settings: Settings) -> dict[str, str]:
    """``{"database": ..., "storage": ...}``: ``"ok"`` or why not, each check bounded by the readiness timeout."""
    checks = {"storage": storage_ready(root)}
    if stac_app is not None:
        checks = {"database": database_ready(stac_app, settings), **checks}
    return {name: await _bounded(name, check, settings.readiness_timeout) for name, check in checks.items()}


async def _bounded(name: str, check: Any, seconds: float) -> str:
    try:
        with anyio.fail_after(seconds):
            await check
    except TimeoutError:
        log.warning("readiness: %s did not answer within %.1f s", name, seconds)
        return f"timeout after {seconds:g} s"
    except Exception as error:
        log.warning("readiness: %s failed: %r", name, error)
        return f"unavailable ({type(error).__name__})"
    return "ok"


async def database_ready(stac_app: FastAPI, settings: Settings) -> None:
    """pgstac: ``SELECT 1`` through the STAC API's own pool; duckdb: the store is open."""
    if settings.backend == "pgstac":
        pool: asyncpg.Pool | None = getattr(stac_app.state, "readpool", None)
        if pool is None:
            raise RuntimeError("the database pool is not open")
        async with pool.acquire() as connection:
            await connection.fetchval("SELECT 1")
        return
    store = getattr(stac_app.state, "store", None)
    if store is None or not store.connected:
        raise RuntimeError("the DuckDB store is not open")


async def storage_ready(root: Root) -> None:
    """The publication root's ``catalog.json`` can be read (in a thread: a network mount or a bucket)."""
    await anyio.to_thread.run_sync(root.read, CATALOG_KEY, abandon_on_cancel=True)


# --- database outages --------------------------------------------------------------------------------------


def install_database_errors(stac_app: FastAPI, settings: Settings) -> None:
    """On the STAC app: database connection errors as 503, and a deadline of ``settings.request_timeout``."""
    unavailable: Sequence[type[Exception]] = DATABASE_UNAVAILABLE
    if settings.backend == "pgstac":
        unavailable = (*unavailable, OSError)  # asyncpg's connect raises plain OSErrors too (several addresses)
    for error_class in unavailable:
        stac_app.add_exception_handler(error_class, database_unavailable)
    stac_app.add_middleware(DeadlineMiddleware, seconds=settings.request_timeout)


async def database_unavailable(request: Request, error: Exception) -> JSONResponse:
    """503 + ``Retry-After`` for a database that cannot be reached."""
    log.warning("database unavailable on %s %s: %r", request.method, request.url.path, error)
    return JSONResponse(
        {"code": "ServiceUnavailable", "description": "the database is unavailable; retry later"},
        status_code=503,
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


class DeadlineMiddleware:
    """Cancel a request that has not started its answer within ``seconds`` and answer 503 instead.

    Cancelling the request cancels its pending query (asyncpg sends the server a cancel request). Once the
    answer has started (e.g. a long streamed body) there is no deadline any more.
    """

    def __init__(self, app: ASGIApp, seconds: float) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False
        with anyio.CancelScope(deadline=anyio.current_time() + self.seconds) as deadline:

            async def send_started(message: Message) -> None:
                nonlocal started
                if message["type"] == "http.response.start":
                    started = True
                    deadline.deadline = math.inf
                await send(message)

            await self.app(scope, receive, send_started)
        if deadline.cancelled_caught and not started:
            log.warning("%s %s: no answer within %.1f s", scope.get("method"), scope.get("path"), self.seconds)
            answer = JSONResponse(
                {"code": "ServiceUnavailable", "description": "the request took too long; retry later"},
                status_code=503,
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            )
            await answer(scope, receive, send)


# --- logs --------------------------------------------------------------------------------------------------


class AccessLogMiddleware:
    """One log record per HTTP request: method, path (no query: it may carry signatures), status, duration_ms."""

    def __init__(self, app: ASGIApp, logger: str = ACCESS_LOGGER) -> None:
        self.app = app
        self.log = logging.getLogger(logger)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500  # unless the app answers

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            duration_ms = round((time.perf_counter() - start) * 1000, 1)
            method, path = scope.get("method", ""), scope.get("path", "")
            client = scope.get("client")
            self.log.info(
                "%s %s %d %.1f ms",
                method,
                path,
                status,
                duration_ms,
                extra={
                    "method": method,
                    "path": path,
                    "status": status,
                    "duration_ms": duration_ms,
                    "client": client[0] if client else None,
                },
            )


def logging_config(log_format: LogFormat = "json", level: str = "INFO") -> dict[str, Any]:
    """``logging.config.dictConfig`` of the service (also uvicorn's ``log_config``): one line per record on stderr,
    JSON objects (python-json-logger) or text, with the request id of the record's request."""
    level = level.upper()
    if log_format == "json":
        formatter: dict[str, Any] = {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(levelname)s %(name)s %(message)s",
            "timestamp": "time",
            "rename_fields": {"levelname": "level", "name": "logger", "correlation_id": "request_id"},
            "reserved_attrs": [*RESERVED_ATTRS, "color_message"],
            "json_ensure_ascii": False,
        }
        default_id = None
    else:
        formatter = {"format": "%(asctime)s %(levelname)s [%(correlation_id)s] %(name)s: %(message)s"}
        default_id = "-"
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {
            "request_id": {"()": "asgi_correlation_id.CorrelationIdFilter", "default_value": default_id},
        },
        "formatters": {"service": formatter},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": "service",
                "filters": ["request_id"],
            }
        },
        "root": {"handlers": ["stderr"], "level": level},
        "loggers": {
            "uvicorn": {"handlers": [], "level": level, "propagate": True},
            "uvicorn.error": {"handlers": [], "level": level, "propagate": True},
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},  # ncdc_stac.requests instead
        },
    }


# --- metrics -----------------------------------------------------------------------------------------------


def instrument(app: FastAPI, settings: Settings) -> Instrumentator:
    """Request count and latency by route template (sub-apps resolved through their mounts) at ``/metrics``."""
    registry = CollectorRegistry()
    for collector in (ProcessCollector, PlatformCollector, GCCollector):
        collector(registry=registry)
    instrumentator = Instrumentator(
        should_group_status_codes=False,
        should_group_untemplated=True,  # unknown paths count as handler "none"
        excluded_handlers=[f"^{re.escape(path)}$" for path in (HEALTH_PATH, READY_PATH, METRICS_PATH)],
        registry=registry,
    )
    instrumentator.instrument(app)
    instrumentator.expose(
        app, endpoint=METRICS_PATH, include_in_schema=False, dependencies=[Depends(metrics_guard(settings))]
    )
    return instrumentator


def is_loopback(host: str | None) -> bool:
    """Whether a client address is 127.0.0.0/8 or ::1."""
    try:
        return host is not None and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def metrics_guard(settings: Settings) -> Callable[[Request], Any]:
    """Who may read ``/metrics``: ``public`` anyone; ``loopback`` clients on this machine (behind a proxy the
    client is the ``X-Forwarded-For`` address that uvicorn trusts); ``admin`` those and admin principals."""
    from services.access import AccessDenied, current_principal  # not at import: logging_config comes first

    policy = settings.metrics_access

    async def guard(request: Request) -> None:
        if policy == "public" or is_loopback(request.client.host if request.client else None):
            return
        if policy == "admin":
            principal = await current_principal(request)
            if principal is not None and principal.admin:
                return
        raise AccessDenied(403, f"metrics are served to {policy} clients only")

    return guard
