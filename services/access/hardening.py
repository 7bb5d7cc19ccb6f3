"""Hardening of the service: CORS, body size limit, security headers, STAC query limits, error shield.

Each piece is a plain ASGI middleware (or options for Starlette's ``CORSMiddleware``); errors are JSON
``{"code": ..., "description": ...}`` like the STAC API's.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import tempfile
from collections.abc import Iterable, Sequence
from itertools import pairwise
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.access.control import send_json
from services.access.settings import AccessSettings

log = logging.getLogger("ncdc_stac.access")

DEFAULT_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob: https:; "
    "font-src 'self' data:; connect-src 'self' https:; worker-src 'self' blob:; child-src 'self' blob:; "
    "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)
"""CSP of HTML pages (the viewer): no inline script or style, map tiles and basemaps over https."""
API_CSP = "frame-ancestors 'none'"
"""CSP of everything that is not HTML."""
CORS_HEADERS = ["Authorization", "X-API-Key", "Content-Type", "Range", "If-None-Match", "If-Modified-Since"]
CORS_EXPOSED = ["Content-Range", "Accept-Ranges", "Content-Length", "Content-Encoding", "ETag", "Last-Modified"]


# CORS


def cors_options(settings: AccessSettings) -> dict[str, Any]:
    """Keyword arguments of ``app.add_middleware(CORSMiddleware, **cors_options(settings))``.

    Default: read-only methods from any origin, without credentials (cookies); the ``Authorization``,
    ``X-API-Key`` and ``Range`` headers are allowed and the range headers exposed (COG streaming in
    browsers). Credentials are only ever allowed with explicit origins.
    """
    origins = list(settings.cors_origins)
    if settings.cors_allow_credentials and "*" in origins:
        raise ValueError("CORS credentials need explicit origins, not '*'")
    return {
        "allow_origins": origins,
        "allow_methods": ["GET", "HEAD", "POST", "OPTIONS"],
        "allow_headers": CORS_HEADERS,
        "expose_headers": CORS_EXPOSED,
        "allow_credentials": settings.cors_allow_credentials,
        "max_age": 600,
    }


def add_cors(app: Any, settings: AccessSettings) -> None:
    app.add_middleware(CORSMiddleware, **cors_options(settings))


# Body size


class BodyTooLargeError(HTTPException):
    """Raised while reading a request body over the limit; any Starlette app answers it with 413."""

    def __init__(self, max_bytes: int = 0) -> None:
        super().__init__(413, f"request body over {max_bytes} bytes" if max_bytes else "request body too large")


class BodySizeLimitMiddleware:
    """413 for request bodies over ``max_bytes`` (by ``Content-Length``, or counted while streaming)."""

    def __init__(self, app: ASGIApp, max_bytes: int = 1_048_576) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _header(scope, b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await _too_large(send, self.max_bytes)
            return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLargeError(self.max_bytes)
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracked_send)
        except BodyTooLargeError:
            if not started:
                await _too_large(send, self.max_bytes)


async def _too_large(send: Send, max_bytes: int) -> None:
    await send_json(send, 413, {"code": "PayloadTooLarge", "description": f"request body over {max_bytes} bytes"})


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return str(value.decode("latin-1"))
    return None


# Security headers


class SecurityHeadersMiddleware:
    """``X-Content-Type-Options``, ``Referrer-Policy``, ``X-Frame-Options`` and a CSP on every answer.

    HTML pages get ``csp`` (default :data:`DEFAULT_CSP`: no ``unsafe-inline``, ``frame-ancestors
    'none'``), other answers :data:`API_CSP`. Headers the app set itself are kept. ``hsts`` adds
    ``Strict-Transport-Security`` (only behind https).
    """

    def __init__(self, app: ASGIApp, csp: str | None = None, hsts: bool = False) -> None:
        self.app = app
        self.csp = csp or DEFAULT_CSP
        self.hsts = hsts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                content_type = next((v for k, v in headers if k.lower() == b"content-type"), b"")
                html = content_type.split(b";")[0].strip().lower() == b"text/html"
                extra = {
                    b"x-content-type-options": b"nosniff",
                    b"referrer-policy": b"strict-origin-when-cross-origin",
                    b"x-frame-options": b"DENY",
                    b"content-security-policy": (self.csp if html else API_CSP).encode(),
                }
                if html:
                    extra[b"permissions-policy"] = b"camera=(), microphone=(), geolocation=(), payment=()"
                    extra[b"cross-origin-opener-policy"] = b"same-origin"
                if self.hsts:
                    extra[b"strict-transport-security"] = b"max-age=31536000; includeSubDomains"
                headers += [(k, v) for k, v in extra.items() if k not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


# STAC query limits


class QueryTooComplexError(ValueError):
    pass


def json_depth(value: Any) -> int:
    """Nesting depth of a JSON value (a scalar is 0)."""
    depth, level = 0, [(value, 0)]
    while level:
        node, at = level.pop()
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else None
        if children is None:
            continue
        depth = max(depth, at + 1)
        level.extend((child, at + 1) for child in children)
    return depth


def text_depth(text: str) -> int:
    """Parenthesis (and bracket) nesting depth of a CQL2-text expression, outside string literals."""
    depth = deepest = 0
    quoted = False
    for char in text:
        if char == "'":
            quoted = not quoted
        elif not quoted and char in "([":
            depth += 1
            deepest = max(deepest, depth)
        elif not quoted and char in ")]":
            depth -= 1
    return deepest


class StacLimitsMiddleware:
    """Page-size cap and CQL2 size limits for a STAC API (wrap the app or mount it).

    ``limit`` above ``max_limit`` is reduced to it (OGC API - Features: no error); a ``filter`` longer
    than ``cql2_max_length`` characters or nested deeper than ``cql2_max_depth`` is refused with 400.
    Applies to the query string and to JSON bodies (``POST /search``), which are read up to
    ``max_body_bytes`` (413 beyond).
    """

    def __init__(
        self,
        app: ASGIApp,
        max_limit: int = 1000,
        cql2_max_length: int = 20_000,
        cql2_max_depth: int = 32,
        max_body_bytes: int = 1_048_576,
    ) -> None:
        self.app = app
        self.max_limit = max_limit
        self.cql2_max_length = cql2_max_length
        self.cql2_max_depth = cql2_max_depth
        self.max_body_bytes = max_body_bytes

    @classmethod
    def from_settings(cls, app: ASGIApp, settings: AccessSettings) -> StacLimitsMiddleware:
        return cls(app, settings.max_limit, settings.cql2_max_length, settings.cql2_max_depth, settings.max_body_bytes)

    def check_filter(self, value: Any) -> None:
        if isinstance(value, str):
            text = value
            try:
                parsed = json.loads(value) if value.lstrip().startswith("{") else None
            except ValueError:
                parsed = None
            depth = json_depth(parsed) if parsed is not None else text_depth(value)
        else:
            text = json.dumps(value, separators=(",", ":"))
            depth = json_depth(value)
        if len(text) > self.cql2_max_length:
            raise QueryTooComplexError(f"filter longer than {self.cql2_max_length} characters")
        if depth > self.cql2_max_depth:
            raise QueryTooComplexError(f"filter nested deeper than {self.cql2_max_depth} levels")

    def capped(self, value: Any) -> Any:
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value > self.max_limit:
            return self.max_limit
        if isinstance(value, str) and value.strip().isdigit() and int(value) > self.max_limit:
            return str(self.max_limit)
        return value

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            scope = self._query(scope)
            if scope["method"] in ("POST", "PUT", "PATCH") and _is_json(scope):
                scope, receive = await self._body(scope, receive)
        except QueryTooComplexError as error:
            await send_json(send, 400, {"code": "BadRequest", "description": str(error)})
            return
        except BodyTooLargeError:
            await _too_large(send, self.max_body_bytes)
            return
        await self.app(scope, receive, send)

    def _query(self, scope: Scope) -> Scope:
        raw: bytes = scope.get("query_string", b"")
        if not raw:
            return scope
        pairs = parse_qsl(raw.decode("latin-1"), keep_blank_values=True)
        changed = False
        for index, (key, value) in enumerate(pairs):
            if key == "filter":
                self.check_filter(value)
            elif key == "limit":
                capped = self.capped(value)
                if capped != value:
                    pairs[index] = (key, str(capped))
                    changed = True
        if not changed:
            return scope
        return {**scope, "query_string": urlencode(pairs).encode("latin-1")}

    async def _body(self, scope: Scope, receive: Receive) -> tuple[Scope, Receive]:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                raise BodyTooLargeError(self.max_body_bytes)
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        try:
            document = json.loads(body) if body else None
        except ValueError:
            document = None
        if isinstance(document, dict):
            if "filter" in document:
                self.check_filter(document["filter"])
            if "limit" in document and self.capped(document["limit"]) != document["limit"]:
                document["limit"] = self.capped(document["limit"])
                body = json.dumps(document).encode()
                headers = [(k, v) for k, v in scope["headers"] if k.lower() != b"content-length"]
                scope = {**scope, "headers": [*headers, (b"content-length", str(len(body)).encode())]}
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        return scope, replay


def _is_json(scope: Scope) -> bool:
    content_type = (_header(scope, b"content-type") or "").split(";")[0].strip().lower()
    return content_type in ("application/json", "application/geo+json", "application/query-cql-json") or (
        not content_type
    )


# Image sizes


class ImageSizeLimitMiddleware:
    """400 for raster requests asking for an image side outside ``1..max_pixels`` pixels.

    titiler leaves the sizes it renders unbounded (``width`` / ``height`` / ``tilesize`` / ``max_size``
    queries, ``/preview/{width}x{height}``, ``/bbox/.../{width}x{height}``, ``/feature/{width}x{height}``):
    a negative one fails with a 500, a huge one allocates until the process is killed. Values that are not
    integers are left to the app (422).
    """

    QUERY = frozenset({"width", "height", "tilesize", "max_size"})
    SIZE_SEGMENT = re.compile(r"^(-?\d+)x(-?\d+)(?:\.\w+)?$")

    def __init__(self, app: ASGIApp, max_pixels: int = 4096) -> None:
        self.app = app
        self.max_pixels = max_pixels

    def refused(self, scope: Scope) -> str | None:
        """Why the request asks for too large (or empty) an image, ``None`` when it does not."""
        sizes = [
            (key, value)
            for key, value in parse_qsl(scope.get("query_string", b"").decode("latin-1"))
            if key in self.QUERY and value.strip().lstrip("-").isdigit()
        ]
        segments = scope.get("path", "").split("/")
        for previous, segment in pairwise(segments):
            match = self.SIZE_SEGMENT.match(segment)
            if match and (previous in ("preview", "feature") or previous.count(",") == 3):
                sizes += [("width", match[1]), ("height", match[2])]
        for key, value in sizes:
            if not 0 < int(value) <= self.max_pixels:
                return f"{key} must be between 1 and {self.max_pixels} pixels"
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        reason = self.refused(scope) if scope["type"] == "http" else None
        if reason is not None:
            await send_json(send, 400, {"code": "BadRequest", "description": reason})
            return
        await self.app(scope, receive, send)


# Error shield

_SYSTEM_PATH = re.compile(
    r"(?<![\w.~-])/(?:usr|home|tmp|var|opt|work|root|srv|mnt|etc|proc|lib|lib64|private|Users)"
    r"(?:/[^\s'\"<>,;:()\\]*|(?![\w.-]))"
)
_TRACEBACK = "Traceback (most recent call last)"
MAX_SCRUBBED = 1_048_576


def default_roots() -> list[str]:
    return [str(Path.cwd()), sys.prefix, sys.base_prefix, tempfile.gettempdir(), str(Path.home())]


def scrub(text: str, roots: Iterable[str] = ()) -> str:
    """``text`` without filesystem paths (``<path>`` instead) and without Python tracebacks."""
    if _TRACEBACK in text:
        return "internal error"
    for root in sorted({r.rstrip("/") for r in roots if r and r.strip("/")}, key=len, reverse=True):
        text = re.sub(re.escape(root) + r"(?:/[^\s'\"<>,;:()\\]*)?", "<path>", text)
    return _SYSTEM_PATH.sub("<path>", text)


class ErrorShieldMiddleware:
    """No stack traces or filesystem paths in answers.

    An unhandled exception becomes a JSON 500 (logged here, with its traceback); the bodies of error
    answers (status >= 400, JSON or text, up to 1 MiB) are scrubbed of paths under ``roots`` (the
    publication root, the working directory, the Python prefix, the temporary directory, home) and of
    absolute paths under the usual system folders.
    """

    def __init__(self, app: ASGIApp, roots: Sequence[str | Path] = ()) -> None:
        self.app = app
        self.roots = [str(Path(r).resolve()) for r in roots] + [str(r) for r in roots] + default_roots()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False
        held: Message | None = None
        chunks: list[bytes] = []

        async def shielded_send(message: Message) -> None:
            nonlocal started, held
            if message["type"] == "http.response.start":
                header_map = {k.lower(): v for k, v in message.get("headers", [])}
                content_type = header_map.get(b"content-type", b"").lower()
                textual = content_type.startswith((b"application/json", b"text/", b"application/problem+json"))
                encoded = header_map.get(b"content-encoding", b"identity") != b"identity"  # compressed: not text
                if message["status"] >= 400 and textual and not encoded:
                    held = message
                    return
                started = True
            elif message["type"] == "http.response.body" and held is not None:
                chunks.append(message.get("body", b""))
                if message.get("more_body", False) and sum(map(len, chunks)) <= MAX_SCRUBBED:
                    return
                body = b"".join(chunks)
                if not message.get("more_body", False):
                    body = scrub(body.decode("utf-8", "replace"), self.roots).encode()
                headers = [(k, v) for k, v in held.get("headers", []) if k.lower() != b"content-length"]
                if not message.get("more_body", False):
                    headers.append((b"content-length", str(len(body)).encode()))
                await send({**held, "headers": headers})
                started, held = True, None
                await send({**message, "body": body})
                return
            await send(message)

        try:
            await self.app(scope, receive, shielded_send)
        except HTTPException as error:
            if not started:
                code = "PayloadTooLarge" if error.status_code == 413 else "Error"
                await send_json(send, error.status_code, {"code": code, "description": scrub(error.detail, self.roots)})
        except Exception:
            log.exception("unhandled error on %s %s", scope.get("method"), scope.get("path"))
            if not started:
                await send_json(send, 500, {"code": "InternalServerError", "description": "internal error"})
