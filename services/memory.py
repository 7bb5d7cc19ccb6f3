"""Process-wide memory bounds of the service, applied when the application is built and when it starts.

Measured under ``benchmarks/load_test.py`` (mixed tiles / search / items, memory sampled inside the server): the
Python heap (tracemalloc) stays flat, GDAL's block cache holds almost nothing (each request's datasets are closed,
which drops their blocks) and DuckDB's buffer pool about 1 MB. What grew was native memory freed by the request
threads (anyio's pool: up to 40) but kept by glibc's malloc in per-thread arenas (up to 8 per core): a high-water
mark that ratchets up with each burst of concurrent requests, not a leak. Fewer arenas and fewer request threads
keep it flat; GDAL's cache and DuckDB's buffer pool are bounded as well, so neither can grow to its default share
of the machine's RAM (5% and 80%) over a larger publication.
"""

from __future__ import annotations

import ctypes
import logging
import os
import platform

import anyio.to_thread
from rasterio.env import get_gdal_config, set_gdal_config

from ncdc_stac.settings import Settings

log = logging.getLogger(__name__)

M_ARENA_MAX = -8
"""``mallopt`` parameter of the arena count (glibc ``malloc.h``)."""


def set_malloc_arena_max(arenas: int) -> bool:
    """Limit glibc's malloc arenas for the threads created from now on; False where malloc is not glibc's."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    return bool(ctypes.CDLL(None).mallopt(M_ARENA_MAX, arenas))


def gdal_cachemax() -> int:
    """GDAL's block cache size in bytes (the value in force, not the configuration option)."""
    return int(get_gdal_config("GDAL_CACHEMAX"))


def bound_memory(settings: Settings) -> None:
    """Apply ``settings.gdal_cachemax`` and ``settings.malloc_arena_max`` to this process, except where the
    ``GDAL_CACHEMAX`` / ``MALLOC_ARENA_MAX`` environment variables set them (DuckDB's ``memory_limit`` is applied
    by :class:`services.api.store.DuckDBStore`)."""
    if "GDAL_CACHEMAX" not in os.environ:
        set_gdal_config("GDAL_CACHEMAX", int(settings.gdal_cachemax))  # rasterio: GDALSetCacheMax64
    arenas = settings.malloc_arena_max
    if arenas is not None and "MALLOC_ARENA_MAX" not in os.environ and not set_malloc_arena_max(arenas):
        log.debug("malloc arenas left as they are (not glibc)")


def bound_request_threads(settings: Settings) -> None:
    """Run at most ``settings.request_threads`` blocking request handlers at once (the running event loop's
    default thread limiter, used by Starlette's thread pool): the memory they hold at once is bounded with them."""
    anyio.to_thread.current_default_thread_limiter().total_tokens = settings.request_threads
