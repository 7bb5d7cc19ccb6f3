"""What answers ``/files`` behind :class:`~services.access.FilesGuard` (which decides who may read what).

A local root is served by Starlette's ``StaticFiles`` (HTTP ranges, ETag, HEAD). A root in object storage
answers ``307 Temporary Redirect`` to a presigned GET URL of the object (valid ``NCDC_STAC_SIGNED_URL_TTL``
seconds): the bytes, ranges included, come straight from the store, and GDAL's ``/vsicurl/`` and
browsers follow the redirect with their ``Range`` header. The store must be reachable by the clients.
"""

from __future__ import annotations

from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from ncdc_stac.settings import Settings
from ncdc_stac.storage import Root
from services.access.control import route_path
from services.access.rules import path_parts


class PresignedRedirect:
    """ASGI app: ``GET/HEAD <key>`` -> 307 to a presigned URL of the object ``key`` of ``root`` (404 if absent)."""

    def __init__(self, root: Root, ttl: int) -> None:
        self.root = root
        self.ttl = ttl

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = self.answer(scope)
        await response(scope, receive, send)

    def answer(self, scope: Scope) -> Response:
        if scope["method"] not in ("GET", "HEAD"):
            return JSONResponse({"code": "MethodNotAllowed", "description": "GET or HEAD"}, 405, {"Allow": "GET, HEAD"})
        parts = path_parts(route_path(scope))
        key = "/".join(parts) if parts else None
        url = self.root.sign(key, self.ttl) if key and self.root.is_file(key) else None
        if url is None:
            return JSONResponse({"code": "NotFound", "description": "not found"}, 404)
        return RedirectResponse(url, 307, headers={"Cache-Control": "no-store"})


def files_app(settings: Settings) -> ASGIApp:
    """The app serving the publication root's files: static files, or redirects to presigned URLs."""
    root = settings.publication_root()
    if root.local is not None:
        return StaticFiles(directory=root.local, check_dir=False)
    return PresignedRedirect(root, settings.signed_url_ttl)
