"""The JSON response of the STAC endpoints that return items."""

from __future__ import annotations

from typing import Any

import orjson
from stac_fastapi.api.models import GeoJSONResponse


class GeoJSONBody(GeoJSONResponse):
    """GeoJSON serialized by orjson.

    stac-fastapi passes a ready response through, so FastAPI's ``jsonable_encoder`` (on a 50-item page slower
    than the search itself) is skipped; NaN, which JSON has not, becomes null.
    """

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)
