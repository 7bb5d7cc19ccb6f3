"""Where a publication lives: a local folder or a prefix of an S3-compatible bucket (the storage seam).

``NCDC_STAC_ROOT`` (or ``--root``) is a path or ``s3://bucket/prefix``; :func:`open_root` makes it a
:class:`Root`. Keys are ``/``-separated paths below the root (``<collection>/<item>/<asset>.tif``).

- :class:`LocalRoot`: plain file operations, atomic writes (temporary sibling + rename), as before.
- :class:`S3Root`: obstore's ``S3Store`` for get / put / list / delete (one PUT is atomic), GDAL's
  ``/vsis3/`` and DuckDB's httpfs ``s3://`` for the readers, each given the endpoint and credentials
  of the settings (``NCDC_STAC_S3_*``, falling back to the standard ``AWS_*`` variables).
"""

from __future__ import annotations

import hashlib
import posixpath
import re
import shutil
import threading
from abc import ABC, abstractmethod
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from cachetools import TTLCache

from publish.storage import temporary_sibling, write_bytes_atomic

if TYPE_CHECKING:
    from ncdc_stac.settings import Settings

S3_SCHEME = "s3://"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,254}")


class Root(ABC):
    """A publication root: read, list and write objects by key; name them for GDAL and DuckDB."""

    url: str
    """The root as given: a folder path or ``s3://bucket/prefix``."""
    local: Path | None
    """The folder of a local root, ``None`` for object storage."""
    gdal_options: Mapping[str, str] = MappingProxyType({})
    """GDAL configuration options the readers need (``rasterio.Env``), empty for a local root."""
    gdal_credentials: Mapping[str, str] = MappingProxyType({})
    """GDAL's ``AWS_*`` credential options (rasterio takes these from a session, not as options)."""

    def __str__(self) -> str:
        return self.url

    @abstractmethod
    def read(self, key: str) -> bytes:
        """The object's bytes; :class:`FileNotFoundError` when absent."""

    @abstractmethod
    def stamp(self, key: str) -> Hashable | None:
        """Something that changes when the object changes (``None``: absent), for caches."""

    @abstractmethod
    def is_file(self, key: str) -> bool:
        """Whether ``key`` is a regular object inside the root (a local symlink leading out of it is not)."""

    @abstractmethod
    def collection_folders(self) -> list[str]:
        """Sorted names of the top-level folders holding a ``collection.json``."""

    @abstractmethod
    def sizes(self, prefix: str) -> dict[str, int]:
        """Key -> size of every object below the folder ``prefix``."""

    @abstractmethod
    def put(self, key: str, data: bytes) -> bool:
        """Write ``data`` atomically unless the object already holds exactly those bytes; whether it wrote."""

    @abstractmethod
    def upload(self, key: str, file: Path) -> None:
        """Copy a local file to ``key`` atomically."""

    @abstractmethod
    def delete_folder(self, prefix: str) -> None:
        """Remove every object below the folder ``prefix``."""

    @abstractmethod
    def gdal_path(self, key: str) -> str:
        """The name GDAL opens ``key`` by (a local path, or ``/vsis3/...`` with :attr:`gdal_options`)."""

    @abstractmethod
    def duckdb_path(self, key: str) -> str:
        """The name DuckDB reads ``key`` by (a local path, or ``s3://...`` with :meth:`duckdb_secret`)."""

    def duckdb_secret(self) -> str | None:
        """The ``CREATE SECRET`` statement DuckDB's httpfs needs for this root (``None``: local files)."""
        return None

    def sign(self, key: str, seconds: int) -> str | None:
        """A presigned GET URL of ``key`` valid ``seconds`` (``None``: a local root is served from disk)."""
        return None

    def exists(self, key: str) -> bool:
        return self.stamp(key) is not None


def is_name(value: str) -> bool:
    """Whether ``value`` can name a published collection or item: one key segment, no separator, no leading dot."""
    return _NAME.fullmatch(value) is not None


def normalized_key(*parts: str) -> str | None:
    """``parts`` joined and normalised as a key below the root, ``None`` when it would leave it."""
    joined = posixpath.normpath("/".join(parts))
    if joined in (".", "..") or joined.startswith(("../", "/")):
        return None
    return joined


class LocalRoot(Root):
    """A publication in a local folder."""

    def __init__(self, path: Path) -> None:
        self.local = path.resolve()
        self.url = str(path)

    def _path(self, key: str) -> Path:
        assert self.local is not None
        return self.local / key

    def read(self, key: str) -> bytes:
        return self._path(key).read_bytes()

    def stamp(self, key: str) -> tuple[int, int] | None:
        try:
            stat = self._path(key).stat()
        except OSError:
            return None
        return stat.st_mtime_ns, stat.st_size

    def is_file(self, key: str) -> bool:
        assert self.local is not None
        path = self._path(key).resolve()
        return path.is_relative_to(self.local) and path.is_file()

    def collection_folders(self) -> list[str]:
        assert self.local is not None
        return sorted(path.parent.name for path in self.local.glob("*/collection.json"))

    def sizes(self, prefix: str) -> dict[str, int]:
        assert self.local is not None
        found = (p for p in self._path(prefix).rglob("*") if p.is_file())
        return {p.relative_to(self.local).as_posix(): p.stat().st_size for p in found}

    def put(self, key: str, data: bytes) -> bool:
        return write_bytes_atomic(self._path(key), data)

    def upload(self, key: str, file: Path) -> None:
        with temporary_sibling(self._path(key)) as tmp:
            shutil.copyfile(file, tmp)

    def delete_folder(self, prefix: str) -> None:
        shutil.rmtree(self._path(prefix), ignore_errors=True)

    def gdal_path(self, key: str) -> str:
        return str(self._path(key))

    def duckdb_path(self, key: str) -> str:
        return self._path(key).as_posix()


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


class S3Root(Root):
    """A publication below ``s3://bucket/prefix`` of an S3-compatible store (AWS, MinIO, SeaweedFS, Ceph, ...).

    Object metadata (HEAD) is cached for ``metadata_ttl`` seconds, so readers see a republished object
    within that time; a PUT through this root is seen at once.
    """

    def __init__(
        self,
        url: str,
        *,
        endpoint: str | None = None,
        region: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        session_token: str | None = None,
        metadata_ttl: float = 5.0,
    ) -> None:
        from obstore.store import S3Store

        parts = urlsplit(url)
        if parts.scheme != "s3" or not parts.netloc:
            raise ValueError(f"{url!r}: expected s3://bucket/prefix")
        self.url = url
        self.local = None
        self.bucket, self.prefix = parts.netloc, parts.path.strip("/")
        self.endpoint = endpoint.rstrip("/") if endpoint else None
        self.region = region or "us-east-1"
        config: dict[str, Any] = {"region": self.region}
        credentials = {
            "access_key_id": access_key_id,
            "secret_access_key": secret_access_key,
            "session_token": session_token,
        }
        config.update({k: v for k, v in credentials.items() if v})
        if self.endpoint:
            config.update(endpoint=self.endpoint, virtual_hosted_style_request=False)
        plain_http = bool(self.endpoint and self.endpoint.startswith("http://"))
        self.store = S3Store(
            self.bucket,
            prefix=self.prefix or None,
            client_options={"allow_http": plain_http} if plain_http else None,
            **config,
        )
        gdal = {"AWS_REGION": self.region, "GDAL_HTTP_MAX_RETRY": "2", "GDAL_HTTP_RETRY_DELAY": "0.5"}
        if self.endpoint:
            endpoint_parts = urlsplit(self.endpoint)
            gdal.update(
                AWS_S3_ENDPOINT=endpoint_parts.netloc + endpoint_parts.path.rstrip("/"),
                AWS_HTTPS="NO" if plain_http else "YES",
                AWS_VIRTUAL_HOSTING="FALSE",
            )
        keys: dict[str, str] = {}
        if access_key_id and secret_access_key:
            keys.update(AWS_ACCESS_KEY_ID=access_key_id, AWS_SECRET_ACCESS_KEY=secret_access_key)
            if session_token:
                keys["AWS_SESSION_TOKEN"] = session_token
        else:
            gdal["AWS_NO_SIGN_REQUEST"] = "YES"
        self.gdal_options = MappingProxyType(gdal)
        self.gdal_credentials = MappingProxyType(keys)
        self._credentials = (access_key_id, secret_access_key, session_token)
        self._heads: TTLCache[str, Hashable | None] = TTLCache(maxsize=8192, ttl=metadata_ttl)
        self._lock = threading.Lock()

    def _full(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def read(self, key: str) -> bytes:
        import obstore

        return bytes(obstore.get(self.store, key).bytes())

    def _head(self, key: str) -> Mapping[str, Any] | None:
        import obstore

        try:
            return obstore.head(self.store, key)
        except FileNotFoundError:
            return None

    def stamp(self, key: str) -> Hashable | None:
        with self._lock:
            if key in self._heads:
                return self._heads[key]
        meta = self._head(key)
        stamp = None if meta is None else (meta.get("e_tag"), meta["size"], meta["last_modified"])
        with self._lock:
            self._heads[key] = stamp
        return stamp

    def _forget(self, key: str) -> None:
        with self._lock:
            self._heads.pop(key, None)

    def is_file(self, key: str) -> bool:
        return self.exists(key)

    def collection_folders(self) -> list[str]:
        import obstore

        listing = obstore.list_with_delimiter(self.store, None)
        folders = (posixpath.basename(p.rstrip("/")) for p in listing["common_prefixes"])
        return sorted(folder for folder in folders if self.exists(f"{folder}/collection.json"))

    def sizes(self, prefix: str) -> dict[str, int]:
        import obstore

        return {
            meta["path"]: meta["size"]
            for batch in obstore.list(self.store, prefix.rstrip("/") + "/" if prefix else None)
            for meta in batch
        }

    def put(self, key: str, data: bytes) -> bool:
        import obstore

        meta = self._head(key)
        if meta is not None and meta["size"] == len(data):
            md5 = f'"{hashlib.md5(data, usedforsecurity=False).hexdigest()}"'
            if meta.get("e_tag") == md5 or self.read(key) == data:
                return False
        obstore.put(self.store, key, data)
        self._forget(key)
        return True

    def upload(self, key: str, file: Path) -> None:
        import obstore

        obstore.put(self.store, key, file)
        self._forget(key)

    def delete_folder(self, prefix: str) -> None:
        import obstore

        keys = list(self.sizes(prefix))
        if keys:
            obstore.delete(self.store, keys)
        for key in keys:
            self._forget(key)

    def gdal_path(self, key: str) -> str:
        return f"/vsis3/{self.bucket}/{self._full(key)}"

    def duckdb_path(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._full(key)}"

    def duckdb_secret(self) -> str:
        access_key_id, secret_access_key, session_token = self._credentials
        options = {"TYPE": "s3", "REGION": _literal(self.region)}
        options["SCOPE"] = _literal(f"s3://{self.bucket}/{self.prefix}".rstrip("/"))
        if access_key_id and secret_access_key:
            options.update(KEY_ID=_literal(access_key_id), SECRET=_literal(secret_access_key))
            if session_token:
                options["SESSION_TOKEN"] = _literal(session_token)
        if self.endpoint:
            endpoint_parts = urlsplit(self.endpoint)
            options.update(
                ENDPOINT=_literal(endpoint_parts.netloc + endpoint_parts.path.rstrip("/")),
                URL_STYLE="'path'",
                USE_SSL="false" if endpoint_parts.scheme == "http" else "true",
            )
        return f"CREATE OR REPLACE SECRET ncdc_root ({', '.join(f'{k} {v}' for k, v in options.items())})"

    def sign(self, key: str, seconds: int) -> str:
        import obstore

        return str(obstore.sign(self.store, "GET", key, timedelta(seconds=seconds)))


def open_root(root: Root | Path | str, settings: Settings | None = None) -> Root:
    """``root`` as a :class:`Root`; an ``s3://`` root takes its endpoint and credentials from ``settings``."""
    if isinstance(root, Root):
        return root
    text = str(root)
    if not text.startswith(S3_SCHEME):
        return LocalRoot(Path(root))
    if settings is None:
        from ncdc_stac.settings import Settings

        settings = Settings()

    def secret(value: Any) -> str | None:
        return value.get_secret_value() if value is not None else None

    return S3Root(
        text,
        endpoint=settings.s3_endpoint,
        region=settings.s3_region,
        access_key_id=secret(settings.s3_access_key_id),
        secret_access_key=secret(settings.s3_secret_access_key),
        session_token=secret(settings.s3_session_token),
        metadata_ttl=settings.s3_metadata_ttl,
    )


@dataclass(frozen=True)
class StoredFile:
    """An object of a root, named for each engine that reads it."""

    key: str
    storage: Root = field(repr=False, compare=False)

    @property
    def gdal(self) -> str:
        """What GDAL opens (with ``storage.gdal_options``)."""
        return self.storage.gdal_path(self.key)

    @property
    def duckdb(self) -> str:
        """What DuckDB reads (with the store's secret for the root)."""
        return self.storage.duckdb_path(self.key)

    @property
    def name(self) -> str:
        return posixpath.basename(self.key)

    def __str__(self) -> str:
        return self.gdal
