"""The web service on one origin: viewer at ``/``, STAC API at ``/stac``, tiles at ``/raster``, published files at
``/files`` (access-controlled), ``/auth``, ``/gdal``.

``create_app`` builds everything from :class:`~ncdc_stac.settings.Settings`; importing this module
builds nothing. Run with ``uvicorn --factory services.app:create_app`` (settings from the
``NCDC_STAC_*`` environment).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import Depends, FastAPI
from stac_fastapi.api.middleware import ProxyHeaderMiddleware

from ncdc_stac.settings import Settings
from services import ops
from services.access import (
    AccessControl,
    BodySizeLimitMiddleware,
    ErrorShieldMiddleware,
    FilesGuard,
    ImageSizeLimitMiddleware,
    SecurityHeadersMiddleware,
    StacLimitsMiddleware,
    add_cors,
    auth_router,
    require_collection_access,
)
from services.access.responses import sign_stac_assets
from services.access.signing import SIGNED_PARAMETERS
from services.api import create_stac_app
from services.api.tile_links import RASTER_PATH  # where the STAC API's web map links point
from services.api.urls import FILES_PATH, MountedApp, PublicUrlMiddleware
from services.compat import create_stacit_router
from services.files import files_app
from services.memory import bound_memory, bound_request_threads
from services.raster import create_raster_app
from services.viewer import create_viewer_router

STAC_PATH = "/stac"
GDAL_PATH = "/gdal"
AUTH_PATH = "/auth"


def create_app(settings: Settings | None = None) -> FastAPI:
    """The service for ``settings`` (default: from the environment); ``settings.service`` picks its parts."""
    settings = settings or Settings()
    bound_memory(settings)  # before the first request thread and the DuckDB store
    stac_app = create_stac_app(settings) if settings.service != "raster" else None
    raster_app = None
    if settings.service != "stac":
        raster_app = create_raster_app(
            settings,
            getattr(stac_app.state, "store", None) if stac_app is not None else None,
            collection_dependencies=[Depends(require_collection_access)],
            forward_parameters=SIGNED_PARAMETERS,
        )
    parts = [part for part in (stac_app, raster_app) if part is not None]

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        bound_request_threads(settings)  # the event loop's thread pool
        async with AsyncExitStack() as stack:
            for part in parts:
                await stack.enter_async_context(part.router.lifespan_context(part))
            yield

    app = FastAPI(title=parts[0].title, lifespan=lifespan, openapi_url=None, docs_url=None, redoc_url=None)
    app.state.settings = settings
    if stac_app is not None:
        sign_stac_assets(stac_app)  # restricted asset hrefs signed for the authorized caller
        app.state.stac = stac_app
        app.mount(STAC_PATH, MountedApp(StacLimitsMiddleware.from_settings(stac_app, settings)), name="stac")
        app.mount(FILES_PATH, FilesGuard(files_app(settings)), name="files")
        app.include_router(create_stacit_router(STAC_PATH), prefix=GDAL_PATH)
    if raster_app is not None:
        app.mount(RASTER_PATH, MountedApp(ImageSizeLimitMiddleware(raster_app)), name="raster")
    app.include_router(auth_router(), prefix=AUTH_PATH)
    if stac_app is not None:
        app.include_router(create_viewer_router(settings))
    AccessControl(settings).install(app)
    # add_middleware: the last added is the outermost
    app.add_middleware(ErrorShieldMiddleware, roots=[str(settings.root)])
    app.add_middleware(SecurityHeadersMiddleware, csp=settings.content_security_policy)
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes)
    add_cors(app, settings)
    app.add_middleware(PublicUrlMiddleware, public_url=settings.public_url)
    ops.install(app, settings)  # /healthz, /readyz, /metrics, request ids, access logs; 503 on database outages
    app.add_middleware(ProxyHeaderMiddleware)  # outermost: X-Forwarded-* / Forwarded first
    return app
