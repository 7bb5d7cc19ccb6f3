"""A real uvicorn server on a free loopback port, in a thread, for tests that need HTTP (GDAL, clients).

The helper lives in :mod:`services.viewer.harness` (the screenshot script needs it too); tests import it here.
"""

from services.viewer.harness import free_port, serve

__all__ = ["free_port", "serve"]
