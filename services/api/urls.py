"""Public URLs behind proxies and path prefixes, and hrefs of published files.

The service answers under ``{service}/stac/...`` and serves files under ``{service}/files/...``.
``{service}`` is ``Settings.public_url`` when set, else what the request says: scheme and host
(``Forwarded`` / ``X-Forwarded-Proto|Host|Port`` via stac-fastapi's ``ProxyHeaderMiddleware``)
and path prefix (ASGI ``root_path``, e.g. ``uvicorn --root-path``, or ``X-Forwarded-Prefix``).
"""

from __future__ import annotations

import posixpath
import re
from typing import Any
from urllib.parse import quote, urlsplit

from starlette.requests import Request
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

SERVICE_ROOT = "ncdc_stac.service_root_path"
"""ASGI scope key: the root path of the whole service, recorded when entering a mounted sub-app."""
FILES_PATH = "/files"
_SAFE = "/%:@!$&'()*+,;=-._~"
_UNQUOTED = re.compile(r"[A-Za-z0-9/%:@!$&'()*+,;=._~-]*")
"""Paths that ``quote(path, safe=_SAFE)`` returns unchanged (the common case: spared the call)."""


def _route_path(scope: Scope) -> str:
    path: str = scope.get("path", "")
    root_path: str = scope.get("root_path", "")
    return path[len(root_path) :] if root_path and path.startswith(root_path) else path


class PublicUrlMiddleware:
    """Make ``scheme://host/prefix`` of every request the public one.

    With a ``public_url`` it is used as is; without one an ``X-Forwarded-Prefix`` header (from a
    proxy that strips a path prefix) becomes the root path.
    """

    def __init__(self, app: ASGIApp, public_url: str | None = None) -> None:
        self.app = app
        self.public = urlsplit(public_url.rstrip("/")) if public_url else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            scope = dict(scope)
            route_path = _route_path(scope)
            if self.public is not None:
                prefix = self.public.path.rstrip("/")
                scope["scheme"] = self.public.scheme if scope["type"] == "http" else scope["scheme"]
                host = self.public.netloc.encode("latin-1")
                scope["headers"] = [(k, v) for k, v in scope["headers"] if k != b"host"] + [(b"host", host)]
            else:
                forwarded = dict(scope["headers"]).get(b"x-forwarded-prefix", b"").decode("latin-1").strip()
                prefix = "/" + forwarded.strip("/") if forwarded.strip("/") else scope.get("root_path", "")
            scope["root_path"] = prefix
            scope["path"] = prefix + route_path
            scope.pop("app_root_path", None)
        await self.app(scope, receive, send)


class MountedApp:
    """Run a mounted sub-application as if it were at the root of its own URL space.

    Starlette builds ``request.base_url`` and ``url_for`` from the top-level app, so stac-fastapi
    behind a ``Mount`` would make links without the mount path. Here the mount path becomes the
    sub-app's own root, and the service root is kept in the scope for :func:`service_base_url`.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    @property
    def routes(self) -> list[BaseRoute]:
        """The sub-app's routes, seen through the middlewares wrapping it (``Mount.routes``: route templates)."""
        app: Any = self.app
        while not hasattr(app, "routes") and hasattr(app, "app"):
            app = app.app
        return list(getattr(app, "routes", []))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            scope = dict(scope)
            scope[SERVICE_ROOT] = scope.get("app_root_path", "")
            scope["app_root_path"] = scope.get("root_path", "")
            scope.pop("router", None)
        await self.app(scope, receive, send)


def service_base_url(request: Request) -> str:
    """Base URL of the whole service (no trailing slash), e.g. ``https://host/prefix``."""
    root = request.scope.get(SERVICE_ROOT, request.scope.get("app_root_path", request.scope.get("root_path", "")))
    return str(request.base_url.replace(path=root)).rstrip("/")


def api_base_url(request: Request) -> str:
    """Base URL of the STAC API (no trailing slash), e.g. ``https://host/prefix/stac``."""
    return str(request.base_url).rstrip("/")


def is_absolute(href: str) -> bool:
    """An href with a scheme (http, https, s3, ...) is used as is."""
    return bool(urlsplit(href).scheme)


def file_href(href: str, files_base: str, folder: str = "") -> str:
    """``{files_base}/{folder}/{href}`` for a relative href, the href itself when absolute."""
    if not href or href.startswith("//") or (":" in href and is_absolute(href)):  # a scheme needs a colon
        return href
    path = posixpath.normpath(posixpath.join(folder, href.lstrip("/")))
    if path in (".", "..") or path.startswith("../"):
        return href
    return f"{files_base}/{path if _UNQUOTED.fullmatch(path) else quote(path, safe=_SAFE)}"


def absolute_assets(assets: dict[str, Any], files_base: str, folder: str = "") -> None:
    """Rewrite the relative asset hrefs (and alternate hrefs) of a STAC object in place."""
    for asset in assets.values():
        if not isinstance(asset, dict):
            continue
        if isinstance(asset.get("href"), str):
            asset["href"] = file_href(asset["href"], files_base, folder)
        for alternate in (asset.get("alternate") or {}).values():
            if isinstance(alternate, dict) and isinstance(alternate.get("href"), str):
                alternate["href"] = file_href(alternate["href"], files_base, folder)
