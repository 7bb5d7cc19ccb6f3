"""Publishing many files: the client's memory must not grow with their number.

Makes ``n`` one-pixel GeoTIFFs under a generic recipe (one COG item each) and publishes them with the real
pipeline, measuring the peak of the Python memory the client process allocates (``tracemalloc``; the
conversions run in worker processes). Figures for two sizes and their ratio are printed; a ratio near 1
means the client holds no per-file state.

Run from the repository root: ``.venv/bin/python -m benchmarks.publish_scale [--small 3000] [--large 12000]``.
"""

from __future__ import annotations

import argparse
import gc
import tempfile
import time
import tracemalloc
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine

from publish.pipeline import Summary, publish_collection

REPO = Path(__file__).resolve().parents[1]
RECORD = REPO / "records" / "gangrigab-velocity.json"
RECIPE = """
[[rules]]
pattern = "*.tif"
kind = "raster"
item_id = "{stem}"
asset = "data"
title = "One pixel"
"""


def tiny_rasters(folder: Path, count: int) -> Path:
    """``count`` one-pixel float32 GeoTIFFs (EPSG:4326) in ``folder``, each a different value and place."""
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        path = folder / f"p{index:06d}.tif"
        if path.exists():
            continue
        x, y = 80 + (index % 1000) * 0.01, 30 + (index // 1000) * 0.01
        profile = {"driver": "GTiff", "width": 1, "height": 1, "count": 1, "dtype": "float32", "crs": "EPSG:4326"}
        with rasterio.open(path, "w", transform=Affine(0.01, 0, x, 0, -0.01, y), nodata=-9999.0, **profile) as dst:
            dst.write(np.full((1, 1, 1), index, dtype="float32"))
    return folder


def recipe(folder: Path) -> Path:
    path = folder / "tiny.recipe.toml"
    path.write_text(RECIPE, encoding="utf-8")
    return path


@dataclass(frozen=True)
class Measure:
    files: int
    peak_bytes: int
    seconds: float
    summary: Summary


def measure(base: Path, count: int, workers: int = 2) -> Measure:
    """Publish ``count`` tiny rasters into a fresh root under ``base``; the client's peak traced memory."""
    data = tiny_rasters(base / f"data-{count}", count)
    gc.collect()  # garbage of earlier runs is not this run's
    started = time.perf_counter()
    tracemalloc.start()
    try:
        summary = publish_collection(RECORD, data, base / f"public-{count}", recipe(base), workers=workers)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return Measure(count, peak, time.perf_counter() - started, summary)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=3000)
    parser.add_argument("--large", type=int, default=12000)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ncdc-publish-scale-") as folder:
        base = Path(folder)
        measure(base, 20, args.workers)  # imports and caches, before measuring
        results = [measure(base, count, args.workers) for count in (args.small, args.large)]
    for result in results:
        print(
            f"{result.files:>7} files: client peak {result.peak_bytes / 1e6:6.2f} MB, "
            f"{result.seconds:6.1f} s ({result.files / result.seconds:5.0f} files/s), {result.summary.items} items"
        )
    small, large = results
    print(f"peak ratio {large.peak_bytes / small.peak_bytes:.2f} for {large.files / small.files:.1f}x the files")


if __name__ == "__main__":
    main()
