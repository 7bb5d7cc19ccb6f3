"""Publishing figures, each next to its reference measured in the same run (ratios; the machines are noisy).

1. COG conversion of a large float32 raster: ``publish.raster.to_cog`` (rio-cogeo) vs GDAL's own COG driver
   with the same options (``gdal_translate -of COG``, through the GDAL that rasterio bundles, and Debian's
   ``/usr/bin/gdal_translate`` when installed).
2. Publishing the twelve full-scale Gangrigab months with 1 worker vs 2 workers.

Run from the repository root: ``.venv/bin/python -m benchmarks.publish [--size 6000] [--repeat 3]``.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import rasterio
from rasterio.shutil import copy as rio_copy

from publish.pipeline import publish_collection
from publish.raster import BLOCK_SIZE, to_cog
from publish.samples import generate_samples

REPO = Path(__file__).resolve().parents[1]
GDAL_COG_OPTIONS = {
    "COMPRESS": "DEFLATE",
    "PREDICTOR": "YES",
    "BLOCKSIZE": str(BLOCK_SIZE),
    "OVERVIEW_RESAMPLING": "AVERAGE",
}


def median_seconds(run: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _burn(n: int) -> int:
    total = 0
    for i in range(n):
        total += i * i
    return total


def cpu_ceiling(tasks: int = 4, n: int = 4_000_000) -> float:
    """Speed-up of pure-Python CPU work on 2 processes vs 1: what this machine allows right now."""
    from concurrent.futures import ProcessPoolExecutor

    started = time.perf_counter()
    for _ in range(tasks):
        _burn(n)
    serial = time.perf_counter() - started
    with ProcessPoolExecutor(2) as pool:
        started = time.perf_counter()
        list(pool.map(_burn, [n] * tasks))
        parallel = time.perf_counter() - started
    return serial / parallel


def big_raster(path: Path, size: int) -> None:
    """A smooth float32 field with nodata holes, written in strips (never whole in memory)."""
    profile = {
        "driver": "GTiff", "dtype": "float32", "width": size, "height": size, "count": 1, "crs": "EPSG:32647",
        "transform": rasterio.transform.from_origin(276840, 3290000, 30, 30), "nodata": -9999.0,
        "tiled": True, "blockxsize": 256, "blockysize": 256, "compress": "deflate",
    }  # fmt: skip
    rng = np.random.default_rng(7)
    columns = np.arange(size, dtype=np.float32)
    with rasterio.open(path, "w", **profile) as dst:
        for top in range(0, size, 1024):
            rows = np.arange(top, min(top + 1024, size), dtype=np.float32)[:, None]
            block = np.sin(rows / 300) * np.cos(columns / 200) + rng.normal(0, 0.05, (len(rows), size))
            block[block < -0.8] = -9999.0
            dst.write(block.astype(np.float32), 1, window=rasterio.windows.Window(0, top, size, len(rows)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=6000, help="side of the square test raster, pixels")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ncdc-bench-"))
    try:
        source = work / "big.tif"
        big_raster(source, args.size)
        ours = median_seconds(lambda: to_cog(source, work / "ours.tif"), args.repeat)
        gdal = median_seconds(
            lambda: rio_copy(str(source), str(work / "gdal.tif"), driver="COG", **GDAL_COG_OPTIONS), args.repeat
        )
        mb = source.stat().st_size / 1e6
        print(f"COG, {args.size}x{args.size} float32 ({mb:.0f} MB deflate input), median of {args.repeat}:")
        print(f"  ncdc-stac to_cog (rio-cogeo + validation)   {ours:7.2f} s")
        print(f"  GDAL COG driver (rasterio's GDAL)           {gdal:7.2f} s   ratio {ours / gdal:.2f}x")
        debian = shutil.which("gdal_translate", path="/usr/bin")
        if debian:
            options = [arg for key, value in GDAL_COG_OPTIONS.items() for arg in ("-co", f"{key}={value}")]
            command = [debian, "-q", "-of", "COG", *options, str(source), str(work / "debian.tif")]
            cli = median_seconds(lambda: subprocess.run(command, check=True), args.repeat)
            print(f"  gdal_translate -of COG (Debian GDAL 3.6)    {cli:7.2f} s   ratio {ours / cli:.2f}x")

        data = generate_samples(work / "samples", "full", ["gangrigab-velocity"])["gangrigab-velocity"]
        record = REPO / "records" / "gangrigab-velocity.json"
        timings = {}
        for workers in (1, 2):
            root = work / f"public-{workers}"
            started = time.perf_counter()
            summary = publish_collection(record, data, root, workers=workers)
            timings[workers] = time.perf_counter() - started
            assert summary.items == 12 and not summary.errors, summary
        print("Publish 12 full-scale Gangrigab months:")
        print(f"  1 worker   {timings[1]:7.2f} s")
        print(f"  2 workers  {timings[2]:7.2f} s   speed-up {timings[1] / timings[2]:.2f}x")
        print(f"  (pure-CPU speed-up of 2 processes on this machine now: {cpu_ceiling():.2f}x)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
