"""Access control from the records, and hardening of the service.

- :mod:`~services.access.policy`: pure rules, Collection document -> :class:`AccessRule`,
  :func:`decide` (allow / 401 / 403) for a :class:`Principal` at a moment.
- :mod:`~services.access.principals`: bearer JWTs (JWKS file, inline or URL) and static API keys.
- :mod:`~services.access.signing`: HMAC-SHA256 signed URLs (``?exp=&sig=[&sub=]``), per file path or
  per collection.
- :mod:`~services.access.control`: :class:`AccessControl` (one per app), :class:`FilesGuard` for
  ``/files``, the dependencies :func:`require_collection_access`, :func:`require_admin`,
  :func:`current_principal`, and :func:`auth_router` (``/auth/sign``, ``/auth/me``).
- :mod:`~services.access.responses`: :func:`sign_stac_assets`, signed asset hrefs in the STAC API's answers
  for the authorized caller.
- :mod:`~services.access.hardening`: CORS options, body size limit, security headers, STAC ``limit`` /
  CQL2 limits, image size limits of the tile service, error shield.

Wiring in ``create_app`` (``add_middleware``: the last added is the outermost)::

    access = AccessControl(settings)
    sign_stac_assets(stac_app)
    app.mount("/stac", MountedApp(StacLimitsMiddleware.from_settings(stac_app, access.settings)), name="stac")
    app.mount("/files", FilesGuard(StaticFiles(directory=settings.root, check_dir=False)), name="files")
    app.include_router(auth_router(), prefix="/auth")
    access.install(app)
    app.add_middleware(ErrorShieldMiddleware, roots=[settings.root])
    app.add_middleware(SecurityHeadersMiddleware, csp=access.settings.content_security_policy)
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=access.settings.max_body_bytes)
    add_cors(app, access.settings)
    app.add_middleware(PublicUrlMiddleware, public_url=settings.public_url)
    app.add_middleware(ProxyHeaderMiddleware)

Routes of collection data add ``Depends(require_collection_access)``; transactions ``Depends(require_admin)``;
responses with asset hrefs call :func:`sign_response_assets` (the STAC API's, through :func:`sign_stac_assets`),
tile URL templates :func:`signed_collection_query`.
"""

from services.access.control import (
    AccessControl,
    AccessDenied,
    FilesGuard,
    auth_router,
    collection_access,
    current_principal,
    get_access,
    require_admin,
    require_collection_access,
    require_principal,
    sign_response_assets,
    signed_collection_query,
)
from services.access.hardening import (
    BodySizeLimitMiddleware,
    ErrorShieldMiddleware,
    ImageSizeLimitMiddleware,
    SecurityHeadersMiddleware,
    StacLimitsMiddleware,
    add_cors,
    cors_options,
)
from services.access.policy import AccessRule, Decision, Principal, ShareType, decide, rule_from_collection
from services.access.principals import Authenticator, hash_api_key
from services.access.responses import SignedAssetsMiddleware, sign_stac_assets
from services.access.settings import AccessSettings, ApiKey
from services.access.signing import UrlSigner

__all__ = [
    "AccessControl",
    "AccessDenied",
    "AccessRule",
    "AccessSettings",
    "ApiKey",
    "Authenticator",
    "BodySizeLimitMiddleware",
    "Decision",
    "ErrorShieldMiddleware",
    "FilesGuard",
    "ImageSizeLimitMiddleware",
    "Principal",
    "SecurityHeadersMiddleware",
    "ShareType",
    "SignedAssetsMiddleware",
    "StacLimitsMiddleware",
    "UrlSigner",
    "add_cors",
    "auth_router",
    "collection_access",
    "cors_options",
    "current_principal",
    "decide",
    "get_access",
    "hash_api_key",
    "require_admin",
    "require_collection_access",
    "require_principal",
    "rule_from_collection",
    "sign_response_assets",
    "sign_stac_assets",
    "signed_collection_query",
]
