"""The web service: the STAC API at ``/stac`` and the published files at ``/files``.

``create_app`` builds everything from :class:`~ncdc_stac.settings.Settings`; importing this module
builds nothing. Run with ``uvicorn --factory services.app:create_app`` (settings from the
``NCDC_STAC_*`` environment).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from stac_fastapi.api.middleware import ProxyHeaderMiddleware
from starlette.staticfiles import StaticFiles

from ncdc_stac.settings import Settings
from services.api import create_stac_app
from services.api.urls import FILES_PATH, MountedApp, PublicUrlMiddleware
from services.compat import create_stacit_router

STAC_PATH = "/stac"
GDAL_PATH = "/gdal"


def create_app(settings: Settings | None = None) -> FastAPI:
    """The service for ``settings`` (default: from the environment)."""
    settings = settings or Settings()
    stac_app = create_stac_app(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with stac_app.router.lifespan_context(stac_app):
            yield

    app = FastAPI(title=stac_app.title, lifespan=lifespan, openapi_url=None, docs_url=None, redoc_url=None)
    app.state.settings = settings
    app.state.stac = stac_app
    app.mount(STAC_PATH, MountedApp(stac_app), name="stac")
    app.mount(FILES_PATH, StaticFiles(directory=settings.root, check_dir=False), name="files")
    app.include_router(create_stacit_router(STAC_PATH), prefix=GDAL_PATH)
    app.add_middleware(PublicUrlMiddleware, public_url=settings.public_url)
    app.add_middleware(ProxyHeaderMiddleware)  # outermost: X-Forwarded-* / Forwarded first
    return app
