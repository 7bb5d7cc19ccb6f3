"""Enforcement: one :class:`AccessControl` per app, the guard of ``/files``, and FastAPI dependencies.

Wiring (see the package docstring for the whole recipe)::

    access = AccessControl(settings)
    access.install(app)                                   # app.state.access + scope key for sub-apps
    app.mount("/files", FilesGuard(StaticFiles(...)), name="files")
    app.include_router(auth_router(), prefix="/auth")
    raster_router = APIRouter(dependencies=[Depends(require_collection_access)])  # {collection_id} routes
    stac_transactions = APIRouter(dependencies=[Depends(require_admin)])

Denials are JSON ``{"code": ..., "description": ...}``: 401 with ``WWW-Authenticate: Bearer`` when the
caller is anonymous (or its credentials are invalid), 403 when it is known but not allowed, or when a
signed URL is expired or tampered with.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from starlette.datastructures import Headers
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ncdc_stac.settings import Settings
from services.access.policy import AccessRule, Decision, Principal, decide
from services.access.principals import AuthenticationError, Authenticator
from services.access.rules import CollectionRules, classify, path_parts
from services.access.settings import AccessSettings, access_settings
from services.access.signing import InvalidSignatureError, Signed, UrlSigner, has_signature
from services.api.urls import FILES_PATH, service_base_url

log = logging.getLogger("ncdc_stac.access")
ACCESS_SCOPE_KEY = "ncdc_stac.access"
"""ASGI scope key holding the app's :class:`AccessControl` (set by :meth:`AccessControl.install`)."""
REQUEST_KEY = "ncdc_stac.access.request"
"""ASGI scope key holding the :class:`RequestAccess` of a request (shared by copies of the scope)."""
_SAFE = "/%:@!$&'()*+,;=-._~"
PRIVATE_VARY = (b"Authorization", b"X-API-Key")


class AccessDenied(HTTPException):
    """401 / 403 / 404 of access control, with ``WWW-Authenticate`` on 401."""

    def __init__(self, status_code: int, description: str, error: str | None = None) -> None:
        headers = None
        if status_code == 401:
            challenge = f'Bearer realm="ncdc-stac", error="{error}"' if error else 'Bearer realm="ncdc-stac"'
            headers = {"WWW-Authenticate": challenge}
        super().__init__(status_code, description, headers=headers)

    @property
    def code(self) -> str:
        return {401: "Unauthorized", 403: "Forbidden", 404: "NotFound"}.get(self.status_code, "Error")

    def body(self) -> dict[str, str]:
        return {"code": self.code, "description": str(self.detail)}


@dataclass
class RequestAccess:
    """Per-request state: the authenticated caller (once known) and whether the answer is private."""

    principal: tuple[Principal | None] | None = None
    private: bool = False


def request_access(scope: Scope) -> RequestAccess:
    state = scope.get(REQUEST_KEY)
    if not isinstance(state, RequestAccess):
        state = scope[REQUEST_KEY] = RequestAccess()
    return state


def _private_headers(message: Message) -> Message:
    """``Cache-Control: private, no-store`` and ``Vary`` on the credentials (other ``Vary`` values kept)."""
    headers = list(message.get("headers", []))
    vary = [v.strip() for k, value in headers if k.lower() == b"vary" for v in value.split(b",") if v.strip()]
    for name in PRIVATE_VARY:
        if name.lower() not in {v.lower() for v in vary}:
            vary.append(name)
    headers = [(k, v) for k, v in headers if k.lower() not in (b"cache-control", b"vary")]
    return {**message, "headers": [*headers, (b"cache-control", b"private, no-store"), (b"vary", b", ".join(vary))]}


def route_path(scope: Scope) -> str:
    """The request path below the app's (or mount's) root path."""
    path: str = scope.get("path", "")
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root + "/") else path


def _query(scope: Scope) -> dict[str, str]:
    raw: bytes = scope.get("query_string", b"")
    return dict(parse_qsl(raw.decode("latin-1"), keep_blank_values=True))


class AccessControl:
    """Access rules, authentication and URL signing of one app (no global state)."""

    def __init__(self, settings: Settings, clock: Callable[[], datetime] | None = None) -> None:
        self.settings: AccessSettings = access_settings(settings)
        self.rules = CollectionRules(self.settings.publication_root())
        self.authenticator = Authenticator(self.settings)
        key = self.settings.signing_key
        if key is None:
            log.warning("NCDC_STAC_SIGNING_KEY is not set: signed URLs hold for this process only")
        self.signer = UrlSigner(key.get_secret_value().encode() if key else None, self.settings.signed_url_ttl)
        self.clock = clock or (lambda: datetime.now(UTC))
        self.files_path = FILES_PATH

    def install(self, app: Any) -> None:
        """Make this access control the app's: ``app.state.access`` and a scope key seen by mounted sub-apps."""
        app.state.access = self
        app.add_middleware(AccessScopeMiddleware, access=self)

    # Who is calling

    async def principal(self, scope: Scope) -> Principal | None:
        """The caller of a request (cached in its scope); raises :class:`AccessDenied` (401) on bad credentials."""
        state = request_access(scope)
        if state.principal is not None:
            return state.principal[0]
        try:
            principal = await self.authenticator.authenticate(Headers(scope=scope))
        except AuthenticationError as error:
            raise AccessDenied(401, str(error), "invalid_token") from error
        state.principal = (principal,)
        return principal

    # What they may read

    def rule(self, collection_id: str) -> AccessRule:
        rule = self.rules.get(collection_id)
        if rule is None:
            raise AccessDenied(404, f"collection {collection_id!r} not found")
        return rule

    def decide(self, collection_id: str, principal: Principal | None) -> Decision:
        return decide(self.rule(collection_id), principal, self.clock())

    def check(self, collection_id: str, principal: Principal | None) -> None:
        """Raise :class:`AccessDenied` unless ``principal`` may read the collection's data."""
        decision = self.decide(collection_id, principal)
        if not decision.allowed:
            log.info("refused %s to %s: %s", collection_id, principal.subject if principal else "anonymous", decision)
            raise AccessDenied(decision.status, decision.reason)

    def readable(self, principal: Principal | None) -> list[str]:
        """Ids of the published collections whose data ``principal`` may read now."""
        now = self.clock()
        return [rule.collection_id for rule in self.rules.all() if decide(rule, principal, now).allowed]

    async def authorize(self, scope: Scope, collection_id: str, signed: Callable[[Mapping[str, str]], Signed]) -> None:
        """Let a request through to a collection's data, or raise :class:`AccessDenied`.

        Open data pass without looking at credentials; otherwise a signature in the query (checked by
        ``signed``) or the caller's credentials must allow it, and the request is marked private (its
        answer gets ``Cache-Control: private, no-store``).
        """
        if self.decide(collection_id, None).allowed:
            return
        request_access(scope).private = True
        params = _query(scope)
        if has_signature(params):
            try:
                signed(params)
            except InvalidSignatureError as error:
                log.info("refused %s: %s", scope.get("path"), error)
                raise AccessDenied(403, str(error)) from error
            return
        self.check(collection_id, await self.principal(scope))

    # Signed URLs

    def sign_path(self, path: str, principal: Principal | None, ttl: int | None = None) -> dict[str, str]:
        """Signature parameters for one file path (``/files/...``, decoded)."""
        return self.signer.sign("path", path, principal.subject if principal else None, ttl, self.clock().timestamp())

    def sign_collection(
        self, collection_id: str, principal: Principal | None, ttl: int | None = None
    ) -> dict[str, str]:
        """Signature parameters for every raster route of one collection (tile URL templates)."""
        subject = principal.subject if principal else None
        return self.signer.sign("collection", collection_id, subject, ttl, self.clock().timestamp())

    def verify_path(self, path: str, params: Mapping[str, str]) -> Signed:
        return self.signer.verify("path", path, params, self.clock().timestamp())

    def verify_collection(self, collection_id: str, params: Mapping[str, str]) -> Signed:
        return self.signer.verify("collection", collection_id, params, self.clock().timestamp())

    def sign_href(self, href: str, principal: Principal | None, service_base: str) -> str | None:
        """``href`` signed for ``principal`` when it is a restricted file it may read, else ``None``.

        ``href`` is a URL under ``{service_base}/files/`` (or a path ``/files/...``). Metadata, open data,
        foreign URLs and data the principal may not read are not signed.
        """
        path = self.files_route(href, service_base)
        try:
            rule = self.data_rule(path) if path else None
        except AccessDenied:  # a file of no published collection: nothing to sign
            return None
        if path is None or rule is None:
            return None
        now = self.clock()
        if decide(rule, None, now).allowed or not decide(rule, principal, now).allowed:
            return None
        split = urlsplit(href)
        query = "&".join(filter(None, [split.query, _encode(self.sign_path(path, principal))]))
        return f"{service_base}{quote(path, safe=_SAFE)}?{query}"

    def sign_assets(self, document: dict[str, Any], principal: Principal | None, service_base: str) -> int:
        """Sign in place the restricted asset hrefs of a STAC Item or Collection the principal may read.

        Returns how many were signed: when > 0 the response must be ``Cache-Control: private``.
        """
        count = 0
        for asset in (document.get("assets") or {}).values():
            if not isinstance(asset, dict):
                continue
            targets = [asset, *(a for a in (asset.get("alternate") or {}).values() if isinstance(a, dict))]
            for target in targets:
                href = target.get("href")
                signed = self.sign_href(href, principal, service_base) if isinstance(href, str) else None
                if signed is not None:
                    target["href"] = signed
                    count += 1
        return count

    def data_rule(self, path: str) -> AccessRule | None:
        """The rule of the collection a path ``/files/<collection>/...`` is data of; ``None`` for metadata."""
        parts = path_parts(path[len(self.files_path) :])
        rule = self.rules.get(parts[0]) if parts and len(parts) > 1 else None
        if parts is None or classify(parts, rule) != "data":
            return None
        if rule is None:
            raise AccessDenied(404, "not found")
        return rule

    def files_route(self, href: str, service_base: str) -> str | None:
        """The decoded path ``/files/...`` of an href to a published file, ``None`` for anything else."""
        split = urlsplit(href)
        if split.scheme or split.netloc:
            base = urlsplit(service_base)
            if (split.scheme, split.netloc) != (base.scheme, base.netloc) or not split.path.startswith(base.path):
                return None
            path = split.path[len(base.path.rstrip("/")) :]
        else:
            path = split.path
        path = unquote(path)
        if not path.startswith(self.files_path + "/") or path_parts(path[len(self.files_path) :]) is None:
            return None
        return path


def _encode(params: Mapping[str, str]) -> str:
    return "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in params.items())


class AccessScopeMiddleware:
    """Put the app's :class:`AccessControl` into every request scope (mounted sub-apps see it)."""

    def __init__(self, app: ASGIApp, access: AccessControl) -> None:
        self.app = app
        self.access = access

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        scope[ACCESS_SCOPE_KEY] = self.access
        state = request_access(scope)

        async def send_marked(message: Message) -> None:
            if message["type"] == "http.response.start" and state.private:
                message = _private_headers(message)
            await send(message)

        await self.app(scope, receive, send_marked)


def access_of(scope: Scope, app: Any = None) -> AccessControl:
    access = scope.get(ACCESS_SCOPE_KEY) or getattr(getattr(app, "state", None), "access", None)
    if not isinstance(access, AccessControl):
        raise RuntimeError("access control is not installed: call AccessControl(settings).install(app)")
    return access


def get_access(request: HTTPConnection) -> AccessControl:
    """FastAPI dependency: the app's :class:`AccessControl`."""
    return access_of(request.scope, request.app)


async def send_json(send: Send, status: int, body: Mapping[str, Any], headers: Mapping[str, str] | None = None) -> None:
    content = json.dumps(body).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(content)).encode())]
    raw += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": content})


class FilesGuard:
    """Wrap the app serving ``/files`` (StaticFiles): metadata pass, data need the collection's access.

    Mount it where the files are: ``app.mount("/files", FilesGuard(StaticFiles(directory=root)))``. The
    collection is the first path segment. Data answers carry ``Cache-Control: private, no-store`` unless
    open to everyone; HEAD and Range requests are handled by the wrapped app as usual.
    """

    def __init__(self, app: ASGIApp, access: AccessControl | None = None) -> None:
        self.app = app
        self.access = access

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            await self._authorize(scope)
        except AccessDenied as denied:
            await send_json(send, denied.status_code, denied.body(), denied.headers)
            return
        state = request_access(scope)

        async def send_marked(message: Message) -> None:
            if message["type"] == "http.response.start" and state.private:
                message = _private_headers(message)
            await send(message)

        await self.app(scope, receive, send_marked)

    async def _authorize(self, scope: Scope) -> None:
        access = self.access or access_of(scope)
        route = route_path(scope)
        parts = path_parts(route)
        if parts is None:
            raise AccessDenied(404, "not found")
        rule = access.rules.get(parts[0]) if len(parts) > 1 else None
        kind = classify(parts, rule)
        if kind == "metadata":
            return
        if kind == "refused" or rule is None:
            raise AccessDenied(404, "not found")
        path = access.files_path + route
        await access.authorize(scope, rule.collection_id, lambda params: access.verify_path(path, params))


async def sign_response_assets(request: Request, documents: Iterable[dict[str, Any]]) -> int:
    """Sign the restricted asset hrefs of STAC Items / Collections for the caller (STAC API, STACIT).

    Nothing happens for anonymous callers or without access control installed; invalid credentials
    count as anonymous here (metadata is never refused). When anything is signed the answer is marked
    ``Cache-Control: private, no-store``. Returns how many hrefs were signed.
    """
    access = access_of(request.scope, request.app) if _installed(request) else None
    if access is None:
        return 0
    try:
        principal = await access.principal(request.scope)
    except AccessDenied:
        return 0
    if principal is None:
        return 0
    base = service_base_url(request)
    count = sum(access.sign_assets(document, principal, base) for document in documents)
    if count:
        request_access(request.scope).private = True
    return count


async def signed_collection_query(request: Request, collection_id: str) -> str:
    """Query string (``exp=..&sig=..&sub=..``) letting the caller's tile URLs of a collection work without headers.

    For TileJSON / WMTS / viewer URL templates: ``""`` when the collection is open to everyone, or the
    caller is anonymous or may not read it (those tile requests then answer 401 / 403 themselves).
    """
    if not _installed(request):
        return ""
    access = access_of(request.scope, request.app)
    try:
        if access.decide(collection_id, None).allowed:
            return ""
        principal = await access.principal(request.scope)
        if principal is None or not access.decide(collection_id, principal).allowed:
            return ""
    except AccessDenied:
        return ""
    request_access(request.scope).private = True
    return _encode(access.sign_collection(collection_id, principal))


def _installed(request: HTTPConnection) -> bool:
    return isinstance(request.scope.get(ACCESS_SCOPE_KEY), AccessControl) or isinstance(
        getattr(request.app.state, "access", None), AccessControl
    )


# FastAPI dependencies


async def current_principal(request: Request) -> Principal | None:
    """The authenticated caller, ``None`` when anonymous; 401 for invalid credentials."""
    return await get_access(request).principal(request.scope)


async def require_principal(principal: Annotated[Principal | None, Depends(current_principal)]) -> Principal:
    """An authenticated caller (401 otherwise)."""
    if principal is None:
        raise AccessDenied(401, "authentication required")
    return principal


async def require_admin(principal: Annotated[Principal, Depends(require_principal)]) -> Principal:
    """An admin (transactions, ingest): 401 anonymous, 403 otherwise. Signed URLs never make an admin."""
    if not principal.admin:
        raise AccessDenied(403, "admin role required")
    return principal


def collection_access(parameter: str = "collection_id") -> Callable[[Request], Any]:
    """Dependency guarding the data of the collection named by the path parameter ``parameter``.

    Accepts a caller allowed by the collection's rule, or a collection-scoped signature
    (:meth:`AccessControl.sign_collection`) in the query. 404 for a collection that is not published.
    """

    async def guard(request: Request) -> None:
        collection_id = request.path_params.get(parameter)
        if not isinstance(collection_id, str):
            raise RuntimeError(f"collection_access: the route has no {{{parameter}}} path parameter")
        access = get_access(request)
        await access.authorize(request.scope, collection_id, lambda p: access.verify_collection(collection_id, p))

    return guard


require_collection_access = collection_access()
"""Dependency for routes with a ``{collection_id}`` path parameter (tiles, points, statistics, ...)."""


def auth_router() -> APIRouter:
    """``/sign`` (signed URLs for the caller) and ``/me`` (who the caller is and what it may read)."""
    router = APIRouter(tags=["Access"])

    @router.get("/me")
    async def me(
        request: Request, principal: Annotated[Principal | None, Depends(current_principal)]
    ) -> dict[str, Any]:
        readable = get_access(request).readable(principal)
        if principal is None:
            return {"authenticated": False, "collections": readable}
        return {
            "authenticated": True,
            "subject": principal.subject,
            "email": principal.email,
            "roles": sorted(principal.roles),
            "admin": principal.admin,
            "collections": readable,
        }

    @router.get("/sign")
    async def sign(
        request: Request,
        principal: Annotated[Principal, Depends(require_principal)],
        href: Annotated[str | None, Query(max_length=2048, description="URL or path of a file under /files")] = None,
        collection: Annotated[str | None, Query(max_length=200, description="Collection id (tile URLs)")] = None,
    ) -> dict[str, Any]:
        access = get_access(request)
        if (href is None) == (collection is None):
            raise HTTPException(400, "give either href or collection")
        base = service_base_url(request)
        if collection is not None:
            access.check(collection, principal)
            params = access.sign_collection(collection, principal)
            return {"collection": collection, "query": _encode(params), "expires": _iso(int(params["exp"]))}
        path = access.files_route(href or "", base)
        if path is None:
            raise HTTPException(400, "href is not a published file of this service")
        rule = access.data_rule(path)
        if rule is not None:
            access.check(rule.collection_id, principal)
        signed = access.sign_href(path, principal, base)
        if signed is None:  # metadata or open data: no signature needed
            return {"href": f"{base}{quote(path, safe=_SAFE)}", "expires": None}
        expires = dict(parse_qsl(urlsplit(signed).query))["exp"]
        return {"href": signed, "expires": _iso(int(expires))}

    return router


def _iso(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
