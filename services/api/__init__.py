"""STAC API (stac-fastapi) with pluggable search backends: embedded DuckDB (default) or pgstac."""

from services.api.backends import BACKENDS, Backend, create_stac_app

__all__ = ["BACKENDS", "Backend", "create_stac_app"]
