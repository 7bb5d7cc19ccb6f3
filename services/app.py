"""The web service on one origin: viewer at ``/``, STAC API at ``/stac``, tiles at ``/raster``, published files at
``/files`` (access-controlled), ``/auth``, ``/gdal``.

``create_app`` builds everything from :class:`~ncdc_stac.settings.Settings`; importing this module
builds nothing. Run with ``uvicorn --factory services.app:create_app`` (settings from the
``NCDC_STAC_*`` environment).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from stac_fastapi.api.middleware import ProxyHeaderMiddleware
from starlette.staticfiles import StaticFiles

from ncdc_stac.settings import Settings
from services.access import (
    AccessControl,
    BodySizeLimitMiddleware,
    ErrorShieldMiddleware,
    FilesGuard,
    SecurityHeadersMiddleware,
    StacLimitsMiddleware,
    add_cors,
    auth_router,
    require_collection_access,
)
from services.access.signing import SIGNED_PARAMETERS
from services.api import create_stac_app
from services.api.urls import FILES_PATH, MountedApp, PublicUrlMiddleware
from services.compat import create_stacit_router
from services.raster import create_raster_app
from services.viewer import create_viewer_router

STAC_PATH = "/stac"
GDAL_PATH = "/gdal"
RASTER_PATH = "/raster"
AUTH_PATH = "/auth"


def create_app(settings: Settings | None = None) -> FastAPI:
    """The service for ``settings`` (default: from the environment)."""
    settings = settings or Settings()
    stac_app = create_stac_app(settings)
    raster_app = create_raster_app(  # tiles index the published stac-geoparquet, whichever backend searches
        settings.model_copy(update={"backend": "duckdb"}),
        getattr(stac_app.state, "store", None),
        collection_dependencies=[Depends(require_collection_access)],
        forward_parameters=SIGNED_PARAMETERS,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with stac_app.router.lifespan_context(stac_app), raster_app.router.lifespan_context(raster_app):
            yield

    app = FastAPI(title=stac_app.title, lifespan=lifespan, openapi_url=None, docs_url=None, redoc_url=None)
    app.state.settings = settings
    app.state.stac = stac_app
    access = AccessControl(settings)
    app.mount(STAC_PATH, MountedApp(StacLimitsMiddleware.from_settings(stac_app, settings)), name="stac")
    app.mount(FILES_PATH, FilesGuard(StaticFiles(directory=settings.root, check_dir=False)), name="files")
    app.include_router(create_stacit_router(STAC_PATH), prefix=GDAL_PATH)
    app.mount(RASTER_PATH, MountedApp(raster_app), name="raster")
    app.include_router(auth_router(), prefix=AUTH_PATH)
    app.include_router(create_viewer_router(settings))
    access.install(app)
    # add_middleware: the last added is the outermost
    app.add_middleware(ErrorShieldMiddleware, roots=[str(settings.root)])
    app.add_middleware(SecurityHeadersMiddleware, csp=settings.content_security_policy)
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes)
    add_cors(app, settings)
    app.add_middleware(PublicUrlMiddleware, public_url=settings.public_url)
    app.add_middleware(ProxyHeaderMiddleware)  # outermost: X-Forwarded-* / Forwarded first
    return app
