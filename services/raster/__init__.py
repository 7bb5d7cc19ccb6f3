"""Raster tiles, collection mosaics by time, time series, legends and PS-InSAR vector tiles (titiler + DuckDB)."""

from services.raster.app import create_raster_app

__all__ = ["create_raster_app"]
