"""Settings from environment variables, all prefixed ``NCDC_STAC_``.

Structured values (``AUTH_JWKS``, ``API_KEYS``, ``GRANTS``, lists) are JSON in the environment, e.g.
``NCDC_STAC_API_KEYS='{"<sha256 hex of the key>": {"subject": "ingest", "roles": ["admin"]}}'``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import AfterValidator, AliasChoices, BaseModel, ByteSize, ConfigDict, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    from ncdc_stac.storage import Root


class ApiKey(BaseModel):
    """What a static API key stands for (stored under the SHA-256 hex digest of the key)."""

    model_config = ConfigDict(extra="forbid")

    subject: str
    email: str | None = None
    roles: list[str] = Field(default_factory=list)
    grants: list[str] = Field(default_factory=list)


def _s3_url(value: str) -> str:
    if not value.startswith("s3://") or not value[5:].strip("/"):
        raise ValueError("not an s3://bucket/prefix URL")
    return value


S3Url = Annotated[str, AfterValidator(_s3_url)]
"""``s3://bucket/prefix`` of an S3-compatible object store."""


def _env(name: str, *fallbacks: str) -> AliasChoices:
    return AliasChoices(f"NCDC_STAC_{name.upper()}", *fallbacks)


class Settings(BaseSettings):
    """Runtime configuration shared by the command line and the services."""

    model_config = SettingsConfigDict(
        env_prefix="NCDC_STAC_", env_file=".env", env_ignore_empty=True, extra="ignore", populate_by_name=True
    )

    root: S3Url | Path = Path("public")
    """Publication root: static catalog, stac-geoparquet and cloud-native data files; a folder or
    ``s3://bucket/prefix`` (see :mod:`ncdc_stac.storage`)."""

    # Object storage (an s3:// root); each falls back to the standard AWS_* variable
    s3_endpoint: str | None = Field(default=None, validation_alias=_env("s3_endpoint", "AWS_ENDPOINT_URL"))
    """Endpoint of an S3-compatible store (``http://host:port``); none: AWS S3."""
    s3_region: str = Field(default="us-east-1", validation_alias=_env("s3_region", "AWS_REGION", "AWS_DEFAULT_REGION"))
    s3_access_key_id: SecretStr | None = Field(
        default=None, validation_alias=_env("s3_access_key_id", "AWS_ACCESS_KEY_ID")
    )
    s3_secret_access_key: SecretStr | None = Field(
        default=None, validation_alias=_env("s3_secret_access_key", "AWS_SECRET_ACCESS_KEY")
    )
    s3_session_token: SecretStr | None = Field(
        default=None, validation_alias=_env("s3_session_token", "AWS_SESSION_TOKEN")
    )
    s3_metadata_ttl: float = Field(default=5.0, ge=0, le=3600)
    """Seconds the services trust an object's metadata (HEAD) before asking again."""
    backend: Literal["duckdb", "pgstac"] = "duckdb"
    """Search backend: embedded DuckDB over stac-geoparquet, or PostgreSQL + pgstac."""
    dsn: SecretStr | None = None
    """PostgreSQL connection string for the pgstac backend and ``ingest``."""
    public_url: str | None = None
    """Public base URL of the service when it cannot be derived from the request."""
    service: Literal["all", "stac", "raster"] = "all"
    """What ``serve`` runs: everything on one origin, or one side of a deployment behind a proxy: ``stac``
    (the STAC API, viewer, /files, /auth, /gdal) or ``raster`` (the tiles at /raster)."""
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int | None = None
    """Parallel publishing workers; default: the number of cores."""
    scheduler: str | None = None
    """Dask scheduler (``tcp://host:port``) whose workers convert the files when publishing; none: a local
    process pool of ``workers``. The workers must reach the inputs and the root (see :mod:`publish.pipeline`)."""
    basemap_url: str | None = None
    """Viewer basemap: XYZ template (https://host/{z}/{x}/{y}.png) or a MapLibre style URL; none: background +
    graticule, nothing requested off the server."""
    basemap_attribution: str | None = None

    # Authentication: bearer JWTs
    auth_jwks_file: Path | None = None
    """JWKS (JSON Web Key Set) file of the identity provider."""
    auth_jwks: dict[str, Any] | None = None
    """JWKS given inline (JSON)."""
    auth_jwks_url: str | None = None
    """JWKS URL of the identity provider, fetched (short timeout, cached) when a token names an unknown key."""
    auth_jwks_timeout: float = Field(default=3.0, gt=0, le=30)
    auth_issuer: str | None = None
    """Required ``iss`` of tokens."""
    auth_audience: str | None = None
    """Required ``aud`` of tokens."""
    auth_algorithms: list[str] = Field(default_factory=lambda: ["RS256", "ES256"])
    auth_leeway: int = Field(default=30, ge=0, le=300)
    """Clock skew tolerated on ``exp`` / ``nbf`` / ``iat``, in seconds."""
    auth_roles_claim: str = "roles"
    """Claim with the roles (a dotted path such as ``realm_access.roles`` reaches into objects)."""
    auth_grants_claim: str = "ncdc_grants"
    """Claim with the collection ids granted to the user (apply-access)."""

    # Authentication: static API keys (header X-API-Key, or Authorization: Bearer <key>)
    api_keys: dict[str, ApiKey] = Field(default_factory=dict)
    """SHA-256 hex digest of each key -> its principal (JSON)."""
    api_keys_file: Path | None = None
    """The same mapping in a JSON file, re-read when it changes."""

    # Authorisation
    grants: dict[str, list[str]] = Field(default_factory=dict)
    """User (subject or e-mail) -> granted collection ids (JSON)."""
    grants_file: Path | None = None
    """The same mapping in a JSON file, re-read when it changes."""
    admin_role: str = "admin"
    admin_emails: list[str] = Field(default_factory=list)
    admin_subjects: list[str] = Field(default_factory=list)

    # Signed asset URLs
    signing_key: SecretStr | None = None
    """HMAC key of signed URLs (at least 32 bytes); without it a random per-process key (one worker only)."""
    signed_url_ttl: int = Field(default=900, ge=10, le=86_400)
    """Lifetime of signed URLs, in seconds."""

    # Hardening
    cors_origins: list[str] = Field(default_factory=lambda: ["*"])
    cors_allow_credentials: bool = False
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    max_limit: int = Field(default=1000, ge=1)
    """Largest page size of the STAC API (larger ``limit`` values are reduced to it)."""
    cql2_max_length: int = Field(default=20_000, ge=100)
    cql2_max_depth: int = Field(default=32, ge=2)
    content_security_policy: str | None = None
    """CSP of HTML pages; default :data:`services.access.hardening.DEFAULT_CSP`."""

    # Operations
    log_format: Literal["json", "text"] = "json"
    """``ncdc-stac serve`` logs on stderr: one JSON object per line, or text for reading at a terminal."""
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    metrics_access: Literal["loopback", "admin", "public", "off"] = "loopback"
    """Who may read ``/metrics``: clients on this machine, those and admin principals, anyone, or no metrics."""
    request_timeout: float = Field(default=30.0, gt=0, le=3600)
    """Seconds the STAC API may take to start an answer; then the request (and its query) is cancelled: 503."""
    readiness_timeout: float = Field(default=2.0, gt=0, le=60)
    """Seconds each ``/readyz`` check (database, storage) may take."""
    shutdown_timeout: int = Field(default=10, ge=0, le=600)
    """Seconds ``ncdc-stac serve`` lets open requests finish after SIGTERM / SIGINT (uvicorn's graceful shutdown)."""

    # Memory bounds of the service (flat resident memory under load; applied by services.memory at start-up)
    gdal_cachemax: ByteSize = Field(default=ByteSize(64 * 2**20), ge=0)
    """GDAL's raster block cache, process-wide (bytes, or ``64MiB``); GDAL's own default is 5% of RAM. An explicit
    ``GDAL_CACHEMAX`` environment variable wins."""
    duckdb_memory_limit: ByteSize = Field(default=ByteSize(2**30), ge=16 * 2**20)
    """DuckDB's buffer pool (``memory_limit``; bytes, or ``1GiB``); DuckDB's own default is 80% of RAM."""
    duckdb_resident_items: int = Field(default=100_000, ge=0)
    """Items of the smallest collections the embedded backend holds decoded in DuckDB's buffer pool (a few KiB
    each), read at start-up, instead of decoding items.parquet at each query; 0: every query reads the files."""
    request_threads: int = Field(default=8, ge=1, le=256)
    """Blocking request handlers (tiles, searches) run at once in the thread pool; the others wait for a thread.
    Each holds its buffers while it runs, so this bounds the memory under a burst (anyio's default: 40)."""
    malloc_arena_max: int | None = Field(default=2, ge=1, le=64)
    """glibc malloc arenas (``mallopt(M_ARENA_MAX)``): few arenas keep the memory freed by the request threads
    reusable instead of stranded in up to 8 arenas per core; none: glibc's default. An explicit
    ``MALLOC_ARENA_MAX`` environment variable wins."""

    def publication_root(self) -> Root:
        """The publication root as storage (:mod:`ncdc_stac.storage`): a folder, or an S3 prefix reached with these."""
        from ncdc_stac.storage import open_root

        return open_root(self.root, self)

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if self.cors_allow_credentials and "*" in self.cors_origins:
            raise ValueError("NCDC_STAC_CORS_ALLOW_CREDENTIALS needs explicit NCDC_STAC_CORS_ORIGINS, not '*'")
        if self.signing_key is not None and len(self.signing_key.get_secret_value().encode()) < 32:
            raise ValueError("NCDC_STAC_SIGNING_KEY must be at least 32 bytes")
        unsafe = {a for a in self.auth_algorithms if not a.startswith(("RS", "ES", "PS", "EdDSA"))}
        if unsafe:
            raise ValueError(f"NCDC_STAC_AUTH_ALGORITHMS: only asymmetric algorithms are accepted, not {unsafe}")
        return self
