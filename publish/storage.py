"""Atomic file output: nothing half-written is ever visible under the publication root."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def write_bytes_atomic(path: Path, data: bytes) -> bool:
    """Write ``data`` to ``path`` via a temporary file and a rename; False if it was already identical."""
    if path.exists() and path.read_bytes() == data:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return True


def dumps_json(obj: Any) -> bytes:
    """Canonical JSON bytes for STAC documents (UTF-8, readable Chinese, stable)."""
    return (json.dumps(obj, ensure_ascii=False, indent=2) + "\n").encode("utf-8")


def write_json_atomic(path: Path, obj: Any) -> bool:
    """Write a JSON document atomically; False if unchanged."""
    return write_bytes_atomic(path, dumps_json(obj))


@contextmanager
def temporary_sibling(path: Path) -> Iterator[Path]:
    """A temporary path beside ``path``, renamed onto it when the block succeeds, removed otherwise."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        yield tmp
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def scratch_sibling(path: Path) -> Iterator[Path]:
    """A temporary path beside ``path`` for building a file whose bytes are compared first; always removed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_name(f".{path.stem}.{os.getpid()}.scratch{path.suffix}")
    try:
        yield scratch
    finally:
        scratch.unlink(missing_ok=True)
