"""Signed asset hrefs in the STAC API's answers, for callers who may read restricted data.

An authenticated caller (bearer token or API key) who may read a restricted collection gets its data assets
with short-lived signed hrefs (``?exp=&sig=&sub=``, :meth:`AccessControl.sign_href`), so that GDAL / QGIS
(``/vsicurl/``) and browsers stream them with no header; the answer is then ``Cache-Control: private,
no-store``. Anonymous callers, open data and metadata (thumbnails, item documents) keep plain hrefs (a
restricted one answers 401 / 403 by itself).

The signing is one ASGI middleware, the innermost of the STAC app (inside its compression), so it works on
whatever a backend answers: items (``/collections/{id}/items[/{item}]``, ``/search``) and collections::

    stac_app = create_stac_app(settings)
    sign_stac_assets(stac_app)
"""

from __future__ import annotations

import json
from typing import Any

from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.access.control import ACCESS_SCOPE_KEY, AccessControl, sign_response_assets

JSON_TYPES = (b"application/json", b"application/geo+json")
CREDENTIAL_HEADERS = (b"authorization", b"x-api-key")


def sign_stac_assets(stac_app: Any) -> None:
    """Add :class:`SignedAssetsMiddleware` to a (not yet started) STAC app, innermost."""
    if stac_app.middleware_stack is not None:
        raise RuntimeError("sign_stac_assets: the STAC app has already started")
    stac_app.user_middleware.append(Middleware(SignedAssetsMiddleware))


def stac_documents(body: Any) -> list[dict[str, Any]]:
    """The STAC objects with assets in an answer: the features of an item collection, the collections of a
    collection list, or the object itself."""
    if not isinstance(body, dict):
        return []
    for key in ("features", "collections"):
        if isinstance(body.get(key), list):
            return [d for d in body[key] if isinstance(d, dict)]
    return [body] if isinstance(body.get("assets"), dict) else []


def _credentials(scope: Scope) -> bool:
    return any(key.lower() in CREDENTIAL_HEADERS for key, _ in scope.get("headers", []))


def _signable(message: Message) -> bool:
    """A complete, uncompressed JSON 200 answer."""
    headers = {k.lower(): v for k, v in message.get("headers", [])}
    content_type = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
    encoding = headers.get(b"content-encoding", b"identity").strip().lower()
    return message["status"] == 200 and content_type in JSON_TYPES and encoding == b"identity"


class SignedAssetsMiddleware:
    """Sign the restricted asset hrefs of STAC answers for the authenticated caller (see the module docstring).

    Requests without credentials pass untouched; other JSON answers are held until complete, signed, and sent
    with their new length.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope.get("method") not in ("GET", "POST")
            or not _credentials(scope)
            or not isinstance(scope.get(ACCESS_SCOPE_KEY), AccessControl)
        ):
            await self.app(scope, receive, send)
            return
        held: Message | None = None
        chunks: list[bytes] = []

        async def signing_send(message: Message) -> None:
            nonlocal held
            if message["type"] == "http.response.start" and _signable(message):
                held = message
                return
            if message["type"] != "http.response.body" or held is None:
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            body = await self.signed(scope, b"".join(chunks))
            headers = [(k, v) for k, v in held.get("headers", []) if k.lower() != b"content-length"]
            await send({**held, "headers": [*headers, (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, signing_send)

    @staticmethod
    async def signed(scope: Scope, body: bytes) -> bytes:
        """``body`` with the caller's restricted asset hrefs signed (unchanged when nothing is to sign)."""
        try:
            document = json.loads(body)
        except ValueError:
            return body
        documents = stac_documents(document)
        if not documents or not await sign_response_assets(Request(scope), documents):
            return body
        return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()
