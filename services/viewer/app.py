"""Routes of the map viewer: the page, its configuration and its static modules."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from fastapi import APIRouter, HTTPException, Request
from fastapi import Path as PathParam
from pydantic import BaseModel
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.staticfiles import StaticFiles

from ncdc_stac.settings import Settings

STATIC_DIR = Path(__file__).resolve().parent / "static"
"""The viewer's page, modules and stylesheet."""
WEB_DIR = Path(__file__).resolve().parents[2] / "web"
MAPLIBRE_DIR = WEB_DIR / "node_modules" / "maplibre-gl" / "dist"
"""MapLibre GL JS as ``npm ci`` in ``web/`` installs it (``maplibre-gl.mjs``, its worker and stylesheet)."""
MAPLIBRE_FILES = ("maplibre-gl.mjs", "maplibre-gl-worker.mjs", "maplibre-gl.css")
CONFIG_MARK = "__NCDC_VIEWER_CONFIG__"
NO_CACHE = "no-cache"
"""Static files are revalidated (ETag / Last-Modified), so a deployment is seen at once."""
SECURITY_HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}


class Basemap(BaseModel):
    """A basemap: an XYZ raster tile template (``{z}/{x}/{y}``) or a MapLibre style document."""

    kind: Literal["raster", "style"]
    url: str
    attribution: str | None = None


class ViewerConfig(BaseModel):
    """What the page reads from its ``<meta name="ncdc-viewer-config">`` (and ``/viewer/config.json``)."""

    basemap: Basemap | None = None
    stac: str = "stac/"
    raster: str = "raster/"
    """Service paths, relative to the page (so the viewer works under a path prefix)."""


def viewer_config(basemap_url: str | None, basemap_attribution: str | None = None) -> ViewerConfig:
    """The configuration for a basemap URL (``None``: a plain background and a graticule drawn in the page)."""
    if not basemap_url:
        return ViewerConfig()
    parts = urlsplit(basemap_url)
    if parts.scheme not in ("", "http", "https") or (parts.scheme and not parts.netloc):
        raise ValueError(f"basemap URL {basemap_url!r}: expected http(s)://... or a path on this server")
    kind: Literal["raster", "style"] = "raster" if all(f"{{{k}}}" in basemap_url for k in "zxy") else "style"
    return ViewerConfig(basemap=Basemap(kind=kind, url=basemap_url, attribution=basemap_attribution))


def _origin(url: str) -> str | None:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else None


def content_security_policy(config: ViewerConfig) -> str:
    """Everything from the page's origin only (plus the basemap's origin when one is configured).

    Record text is never markup, and this policy makes sure nothing else loads or runs: no inline script,
    no other host for scripts, styles, images, fetches or workers.
    """
    extra = _origin(config.basemap.url) if config.basemap else None
    remote = f" {extra}" if extra else ""
    directives = {
        "default-src": "'none'",
        "script-src": "'self'",
        "style-src": "'self'",
        "img-src": f"'self' data: blob:{remote}",
        "connect-src": f"'self'{remote}",
        "worker-src": "'self' blob:",
        "font-src": "'self'",
        "base-uri": "'none'",
        "form-action": "'none'",
        "frame-ancestors": "'self'",
    }
    return "; ".join(f"{key} {value}" for key, value in directives.items())


def _page(config: ViewerConfig) -> str:
    template = (STATIC_DIR / "index.html").read_text(encoding="utf-8")
    return template.replace(CONFIG_MARK, html.escape(json.dumps(config.model_dump(mode="json")), quote=True))


class _Files:
    """Files of one folder, served with revalidation and ``nosniff`` (Starlette's StaticFiles lookup)."""

    def __init__(self, directory: Path, only: tuple[str, ...] | None = None) -> None:
        self.directory = directory
        self.only = only
        self.static = StaticFiles(directory=directory, check_dir=False)

    async def respond(self, path: str, request: Request) -> Response:
        if self.only is not None and path not in self.only:
            raise HTTPException(404, "Not Found")
        if not self.directory.is_dir():
            raise HTTPException(404, f"{self.directory.name} is not installed")
        response = await self.static.get_response(path, request.scope)
        response.headers["Cache-Control"] = NO_CACHE
        response.headers.update(SECURITY_HEADERS)
        return response


def create_viewer_router(
    settings: Settings | None = None,
    *,
    basemap_url: str | None = None,
    basemap_attribution: str | None = None,
    maplibre_dir: Path = MAPLIBRE_DIR,
) -> APIRouter:
    """``/``, ``/viewer/config.json`` and ``/static/...``.

    The basemap is ``basemap_url`` or ``settings.basemap_url`` (``NCDC_STAC_BASEMAP_URL``); without one the
    map has a plain background and a graticule, and the page makes no request off its origin.
    """
    url = basemap_url or getattr(settings, "basemap_url", None)
    attribution = basemap_attribution or getattr(settings, "basemap_attribution", None)
    config = viewer_config(url, attribution)
    policy = content_security_policy(config)
    own = _Files(STATIC_DIR)
    maplibre = _Files(maplibre_dir, only=MAPLIBRE_FILES)
    router = APIRouter(tags=["Viewer"], include_in_schema=False)

    @router.api_route("/", methods=["GET", "HEAD"], name="viewer")
    def page() -> Response:
        """The viewer page (503 when MapLibre GL JS is not installed)."""
        if not (maplibre_dir / MAPLIBRE_FILES[0]).is_file():
            return PlainTextResponse(
                f"The map viewer needs MapLibre GL JS: run `npm ci` in {WEB_DIR} (make web).", status_code=503
            )
        headers = {"Content-Security-Policy": policy, "Cache-Control": NO_CACHE, **SECURITY_HEADERS}
        return HTMLResponse(_page(config), headers=headers)

    @router.get("/viewer/config.json", name="viewer_config")
    def configuration() -> ViewerConfig:
        """The page's configuration."""
        return config

    @router.get("/static/viewer/{path:path}", name="viewer_static")
    async def viewer_file(request: Request, path: Annotated[str, PathParam()]) -> Response:
        """The viewer's modules, stylesheet and icons."""
        if path == "index.html":
            raise HTTPException(404, "Not Found")
        return await own.respond(path, request)

    @router.get("/static/vendor/maplibre-gl/{path}", name="maplibre_static")
    async def maplibre_file(request: Request, path: Annotated[str, PathParam()]) -> Response:
        """MapLibre GL JS (module, worker, stylesheet)."""
        return await maplibre.respond(path, request)

    return router
