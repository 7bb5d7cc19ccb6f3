"""Settings from environment variables, all prefixed ``NCDC_STAC_``."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Runtime configuration shared by the command line and the services."""

    model_config = SettingsConfigDict(env_prefix="NCDC_STAC_", env_file=".env", extra="ignore")

    root: Path = Path("public")
    """Publication root: static catalog, stac-geoparquet and cloud-native data files."""
    backend: Literal["duckdb", "pgstac"] = "duckdb"
    """Search backend: embedded DuckDB over stac-geoparquet, or PostgreSQL + pgstac."""
    dsn: SecretStr | None = None
    """PostgreSQL connection string for the pgstac backend and ``ingest``."""
    public_url: str | None = None
    """Public base URL of the service when it cannot be derived from the request."""
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int | None = None
    """Parallel publishing workers; default: the number of cores."""
