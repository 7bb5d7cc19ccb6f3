"""The map viewer: one page at ``/`` over the STAC API (``/stac``), the tiles (``/raster``) and the files (``/files``).

MapLibre GL JS and the viewer's own scripts are plain ES modules, served from ``/static`` with no bundler:

    /                                   the page (index.html, with a Content-Security-Policy keeping every request
                                        on the page's origin, except a configured basemap's)
    /viewer/config.json                 what the page is configured with (basemap)
    /static/viewer/...                  the viewer's modules and stylesheet (``services/viewer/static``)
    /static/vendor/maplibre-gl/...      MapLibre GL JS from ``web/node_modules/maplibre-gl/dist`` (``npm ci``)

Mount with ``app.include_router(create_viewer_router(settings))``.
"""

from services.viewer.app import (
    MAPLIBRE_DIR,
    STATIC_DIR,
    ViewerConfig,
    content_security_policy,
    create_viewer_router,
    viewer_config,
)

__all__ = [
    "MAPLIBRE_DIR",
    "STATIC_DIR",
    "ViewerConfig",
    "content_security_policy",
    "create_viewer_router",
    "viewer_config",
]
