"""Publishing figures, each next to its reference measured in the same run (ratios; the machines are noisy).

1. COG conversion of a large float32 raster: ``publish.raster.to_cog`` (rio-cogeo) vs GDAL's own COG driver
   with the same options (``gdal_translate -of COG``, through the GDAL that rasterio bundles, and Debian's
   ``/usr/bin/gdal_translate`` when installed); also at smaller sizes for the publish-scale plot.
2. Publishing the twelve Gangrigab months (``--scale full``: full-scale rasters) with 1 worker vs 2 workers, in turns
   (medians of ``--repeat``).
3. PS-InSAR points (``--points``, default 400,000, the columns of the CPEC tracks: 85 displacement dates) to
   GeoParquet with ``publish.vector.write_geoparquet`` (Hilbert sort, bbox covering, GeoParquet 1.1 metadata)
   vs a plain ``pyarrow.parquet.write_table`` of the same table (WKB geometry, zstd, same row groups).
4. Loading stac-geoparquet items into pgstac: ``publish.ingest.ingest`` (reads items.parquet, checks and
   rebases the items, registers queryables) vs pypgstac's ``Loader.load_items`` (upsert) of the same items
   from NDJSON, each into a fresh copy of a migrated database on a throwaway cluster (``tests.pgstac_cluster``).

Run from the repository root: ``.venv/bin/python -m benchmarks.publish [--size 6000] [--repeat 3]``
(``--help`` for the other sizes; ``--results FILE`` appends the figures for ``make bench``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from uuid import uuid4

import geopandas as gpd
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import rasterio
import shapely
from rasterio.shutil import copy as rio_copy

from benchmarks.results import Point, Row, Target, add_results_option, print_rows, record
from publish.pipeline import publish_collection
from publish.raster import BLOCK_SIZE, to_cog
from publish.samples import CPEC_BBOX, generate_samples
from publish.vector import ROW_GROUP_SIZE, write_geoparquet

REPO = Path(__file__).resolve().parents[1]
SECTION = "publish"
GDAL_COG_OPTIONS = {
    "COMPRESS": "DEFLATE",
    "PREDICTOR": "YES",
    "BLOCKSIZE": str(BLOCK_SIZE),
    "OVERVIEW_RESAMPLING": "AVERAGE",
}
PS_DATES = 85
"""Displacement columns of a CPEC track (T027_ASC has 85 acquisition dates)."""


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
        "driver": "GTiff",
        "dtype": "float32",
        "width": size,
        "height": size,
        "count": 1,
        "crs": "EPSG:32647",
        "transform": rasterio.transform.from_origin(276840, 3290000, 30, 30),
        "nodata": -9999.0,
        "tiled": True,
        "blockxsize": 256,
        "blockysize": 256,
        "compress": "deflate",
    }
    rng = np.random.default_rng(7)
    columns = np.arange(size, dtype=np.float32)
    with rasterio.open(path, "w", **profile) as dst:
        for top in range(0, size, 1024):
            rows = np.arange(top, min(top + 1024, size), dtype=np.float32)[:, None]
            block = np.sin(rows / 300) * np.cos(columns / 200) + rng.normal(0, 0.05, (len(rows), size))
            block[block < -0.8] = -9999.0
            dst.write(block.astype(np.float32), 1, window=rasterio.windows.Window(0, top, size, len(rows)))


# --- 1. COG ------------------------------------------------------------------------------------------------


def cog_times(work: Path, size: int, repeat: int) -> tuple[float, dict[str, float], float]:
    """(to_cog s, {reference: s}, input MB) for a ``size`` x ``size`` float32 raster."""
    source = work / f"big-{size}.tif"
    big_raster(source, size)
    ours = median_seconds(lambda: to_cog(source, work / "ours.tif"), repeat)
    references = {
        "GDAL COG driver (rasterio's GDAL)": median_seconds(
            lambda: rio_copy(str(source), str(work / "gdal.tif"), driver="COG", **GDAL_COG_OPTIONS), repeat
        )
    }
    debian = shutil.which("gdal_translate", path="/usr/bin")
    if debian:
        options = [arg for key, value in GDAL_COG_OPTIONS.items() for arg in ("-co", f"{key}={value}")]
        command = [debian, "-q", "-of", "COG", *options, str(source), str(work / "debian.tif")]
        references["gdal_translate -of COG (Debian)"] = median_seconds(
            lambda: subprocess.run(command, check=True), repeat
        )
    megabytes = source.stat().st_size / 1e6
    source.unlink()
    return ours, references, megabytes


def bench_cog(work: Path, size: int, plot_sizes: list[int], repeat: int) -> tuple[list[Row], list[Point]]:
    rows, points = [], []
    for side in sorted({*plot_sizes, size}):
        ours, references, megabytes = cog_times(work, side, repeat if side == size else 1)
        points.append(Point("publish-scale", "to_cog (rio-cogeo)", megabytes, ours))
        points += [Point("publish-scale", name, megabytes, seconds) for name, seconds in references.items()]
        print(
            f"  COG {side}x{side} ({megabytes:.0f} MB): ours {ours:.2f} s, "
            + ", ".join(f"{name} {seconds:.2f} s" for name, seconds in references.items()),
            flush=True,
        )
        if side != size:
            continue
        for name, seconds in references.items():
            rows.append(
                Row(
                    SECTION,
                    f"COG {side}x{side} float32 ({megabytes:.0f} MB), median of {repeat}",
                    ours,
                    "s",
                    name,
                    seconds,
                    Target(1.1) if "gdal_translate" in name else None,
                )
            )
    return rows, points


# --- 2. workers --------------------------------------------------------------------------------------------


def bench_workers(work: Path, scale: str, repeat: int) -> tuple[list[Row], list[Point]]:
    """Medians of ``repeat`` fresh publications with 1 and with 2 workers, taken in turns."""
    data = generate_samples(work / "samples", scale, ["gangrigab-velocity"])["gangrigab-velocity"]  # type: ignore[arg-type]
    megabytes = sum(path.stat().st_size for path in data.glob("*.tif")) / 1e6
    record_path = REPO / "records" / "gangrigab-velocity.json"
    runs: dict[int, list[float]] = {1: [], 2: []}
    for _ in range(repeat):
        for workers in (1, 2):
            started = time.perf_counter()
            summary = publish_collection(record_path, data, work / f"public-{workers}", workers=workers)
            runs[workers].append(time.perf_counter() - started)
            if summary.items != 12 or summary.errors:
                raise RuntimeError(f"publishing Gangrigab failed: {summary}")
            shutil.rmtree(work / f"public-{workers}")
    shutil.rmtree(work / "samples")
    timings = {workers: statistics.median(seconds) for workers, seconds in runs.items()}
    ceiling = cpu_ceiling()
    figure = f"publish 12 {scale}-scale Gangrigab months ({megabytes:.0f} MB): 2 workers, speed-up, median of {repeat}"
    rows = [
        Row(
            SECTION,
            figure,
            timings[2],
            "s",
            "1 worker",
            timings[1],
            Target(1.8, at_least=True),
            speed_up=True,
            note=f"pure-CPU 2-process speed-up on this machine now: {ceiling:.2f}x",
        )
    ]
    points = [Point("publish-scale", f"publish_collection, {n} worker(s)", megabytes, timings[n]) for n in (1, 2)]
    return rows, points


# --- 3. PS points ------------------------------------------------------------------------------------------


def ps_points(count: int, seed: int = 501) -> gpd.GeoDataFrame:
    """``count`` synthetic PS-InSAR points in the CPEC bbox with the attribute columns of a CPEC track."""
    rng = np.random.default_rng(seed)
    lon = rng.uniform(CPEC_BBOX.west, CPEC_BBOX.east, count).round(6)
    lat = rng.uniform(CPEC_BBOX.south, CPEC_BBOX.north, count).round(6)
    velocity = rng.normal(0, 3, count)
    columns: dict[str, object] = {
        "CODE": np.char.mod("T027_ASC_%06d", np.arange(1, count + 1)),
        "LON": lon,
        "LAT": lat,
        "HEIGHT": rng.uniform(2000, 6000, count).round(1),
        "VEL": velocity.round(2),
        "VEL_STD": rng.uniform(0.3, 4, count).round(2),
        "COHER": rng.uniform(0.6, 1, count).round(3),
        "REGION": rng.choice(["Tashkurgan 塔什库尔干", "Gez 盖孜", "Bulunkou 布伦口"], count),
    }
    years = np.arange(PS_DATES) * 12 / 365.25
    for index in range(PS_DATES):
        columns[f"D{index:03d}"] = (velocity * years[index] + rng.normal(0, 2, count)).round(1)
    return gpd.GeoDataFrame(columns, geometry=shapely.points(lon, lat), crs="EPSG:4326")


def plain_write(frame: gpd.GeoDataFrame, target: Path) -> None:
    """The reference: the same table, geometry as WKB, written by pyarrow alone (zstd, same row groups)."""
    table = pa.Table.from_pandas(frame.to_wkb(), preserve_index=False)
    pq.write_table(table, target, compression="zstd", row_group_size=ROW_GROUP_SIZE)


def bench_points(work: Path, count: int, repeat: int) -> list[Row]:
    frame = ps_points(count)
    ours = median_seconds(lambda: write_geoparquet(frame, work / "ours.parquet"), repeat)
    plain = median_seconds(lambda: plain_write(frame, work / "plain.parquet"), repeat)
    ratio_size = (work / "ours.parquet").stat().st_size / (work / "plain.parquet").stat().st_size
    return [
        Row(
            SECTION,
            f"{count:,} PS points ({len(frame.columns) - 1} columns) to GeoParquet 1.1, median of {repeat}",
            ours,
            "s",
            "plain pyarrow write_table",
            plain,
            note=f"Hilbert sort + bbox covering; file size {ratio_size:.2f}x the plain one",
        )
    ]


# --- 4. ingest ---------------------------------------------------------------------------------------------


@contextmanager
def pgstac_template() -> Iterator[str | None]:
    """A migrated pgstac database on a throwaway cluster (None when PostgreSQL is not installed)."""
    try:
        from tests.pgstac_cluster import pgstac_cluster
    except ImportError as err:
        print(f"  pgstac skipped: {err}")
        yield None
        return
    cluster = pgstac_cluster()
    try:
        dsn = cluster.__enter__()
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as err:  # tests.conftest.require() skips (pytest's Skipped) without PostgreSQL
        print(f"  pgstac skipped: {err!r}")
        yield None
        return
    try:
        yield dsn
    finally:
        cluster.__exit__(None, None, None)


def pypgstac_load(dsn: str, collection: dict[str, object], items: Path) -> float:
    """Seconds of ``Loader.load_items`` (upsert, pypgstac's chunk size) of an NDJSON file; collection first."""
    from pypgstac.load import Loader, Methods

    from publish.ingest import open_pgstac

    with open_pgstac(dsn) as db:
        loader = Loader(db)
        loader.load_collections(iter([collection]), Methods.upsert)
        started = time.perf_counter()
        loader.load_items(str(items), insert_mode=Methods.upsert)
        return time.perf_counter() - started


def bench_ingest(work: Path, count: int, repeat: int) -> list[Row]:
    from benchmarks.synthetic import COLLECTION, write_publication
    from publish.ingest import ingest, iter_parquet_items, read_collection
    from tests.pgstac_cluster import clone_database

    publication = write_publication(work / "ingest", count)
    items = work / "items.ndjson"
    with items.open("w", encoding="utf-8") as out:
        for item in iter_parquet_items(publication.parquet):
            out.write(json.dumps(item) + "\n")
    collection = read_collection(publication.root / COLLECTION / "collection.json")
    ours, theirs = [], []
    with pgstac_template() as template:
        if template is None:
            return []
        for _ in range(repeat):
            database = clone_database(template, f"ours_{uuid4().hex[:8]}")
            started = time.perf_counter()
            summary = ingest(publication.root, database)
            ours.append(time.perf_counter() - started)
            if summary.items != count:
                raise RuntimeError(f"ingest loaded {summary.items} items, not {count}")
            theirs.append(pypgstac_load(clone_database(template, f"ref_{uuid4().hex[:8]}"), collection, items))
    return [
        Row(
            SECTION,
            f"ingest {count:,} items into pgstac (stac-geoparquet), median of {repeat}",
            statistics.median(ours),
            "s",
            "pypgstac Loader.load_items (NDJSON)",
            statistics.median(theirs),
            Target(0.9, at_least=True),
            speed_up=True,
            note="ratio = throughput vs pypgstac; ingest includes reading parquet and registering queryables",
        )
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=6000, help="side of the square test raster, pixels")
    parser.add_argument("--plot-sizes", default="1500,3000", help="other raster sides for the publish-scale plot")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--scale", choices=["small", "full"], default="full", help="Gangrigab samples to publish")
    parser.add_argument("--points", type=int, default=400_000, help="PS points written to GeoParquet")
    parser.add_argument("--ingest-items", type=int, default=50_000, help="items loaded into pgstac (0: skip)")
    add_results_option(parser)
    args = parser.parse_args(argv)
    rows: list[Row] = []
    points: list[Point] = []
    work = Path(tempfile.mkdtemp(prefix="ncdc-bench-"))
    try:
        plot_sizes = [int(size) for size in args.plot_sizes.split(",") if size.strip()]
        cog_rows, cog_points = bench_cog(work, args.size, plot_sizes, args.repeat)
        worker_rows, worker_points = bench_workers(work, args.scale, args.repeat)
        rows += cog_rows + worker_rows + bench_points(work, args.points, args.repeat)
        points += cog_points + worker_points
        if args.ingest_items:
            rows += bench_ingest(work, args.ingest_items, args.repeat)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print_rows(rows, "Publishing")
    record(args.results, rows, points)


if __name__ == "__main__":
    main()
