"""Tile latency through HTTP vs rio-tiler in-process, for the same tiles (ratios; the machines are noisy).

On the Gangrigab sample (12 monthly COGs; ``--scale full``: 1583 x 1816 pixels at 30 m, with overviews):

1. Item tiles: ``GET /collections/{id}/items/{item}/tiles/WebMercatorQuad/{z}/{x}/{y}.png`` (render defaults:
   rescale + colormap) through the whole service (``uvicorn --factory services.app:create_app`` in its own
   process, :mod:`benchmarks.server`, tiles under ``/raster``, every request with an API key granted the
   collections) over loopback, vs ``rio_tiler.io.Reader.tile`` + titiler's ``render_image`` with the same
   rescale and colormap in this process; the same tiles as ``.npy`` (no PNG encoding) both ways; collection
   mosaic tiles (``?datetime=2023-07``) vs the same in-process read. Native zooms (max - 1, max).
2. Zooms 3 to 12: item and mosaic ``.png`` of the tile at the raster's centre, every month (``--months``), per zoom.

On the High Mountain Asia sample (141 months, 2013-04 .. 2024-12, one 3-band COG per glacier and month):

3. Mosaic tiles of each of the 141 months (``?datetime=YYYY-MM``) vs ``rio_tiler.mosaic.mosaic_reader`` over
   the same COGs + ``render_image`` in-process.
4. Point time series over the 141 items (``GET /collections/{id}/timeseries?lon&lat``) vs a loop of
   ``Reader.point`` over the 141 COGs in-process.

Run from the repository root: ``.venv/bin/python -m benchmarks.tiles [--scale full] [--repeat 5]`` (the samples
are generated and published into a temporary folder; ``--results FILE`` appends the figures for ``make bench``).
"""

from __future__ import annotations

import argparse
import json
import secrets
import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import morecantile
from rio_tiler.colormap import cmap
from rio_tiler.io import Reader
from rio_tiler.models import ImageData
from rio_tiler.mosaic import mosaic_reader
from titiler.core.resources.enums import ImageType
from titiler.core.utils import render_image

from benchmarks.results import Row, Target, add_results_option, print_rows, record
from benchmarks.server import serve
from publish.pipeline import publish_collection
from publish.samples import generate_samples
from services.access.principals import API_KEY_HEADER, hash_api_key
from services.api.tile_links import RASTER_PATH

REPO = Path(__file__).resolve().parents[1]
SECTION = "tiles"
GANGRIGAB = "gangrigab-velocity"
HMA = "hma-glacier-velocity"
MONTHS = [f"2023-{m:02d}" for m in range(1, 13)]
ZOOMS = range(3, 13)
LOW_ZOOMS = range(3, 8)
WEB_MERCATOR = morecantile.tms.get("WebMercatorQuad")
TARGET = Target(1.3)
"""Tile latency through the service at most 1.3x rio-tiler in-process."""


@dataclass(frozen=True)
class Render:
    """The render defaults of a collection's recipe (what the service applies without parameters)."""

    colormap: str
    rescale: tuple[float, float]
    band: int


GANGRIGAB_RENDER = Render("viridis", (0.0, 1.5), 1)
HMA_RENDER = Render("plasma", (0.0, 1.0), 3)


@dataclass(frozen=True)
class Job:
    """One tile request: the URL path (and query) and the COGs the in-process reference reads."""

    url: str
    params: dict[str, str]
    paths: tuple[Path, ...]
    tile: morecantile.Tile


@dataclass(frozen=True)
class Figure:
    case: str
    http_ms: float
    local_ms: float
    count: int


def publish_sample(base: Path, dataset: str, scale: str) -> str:
    """Generate one sample dataset and publish it into ``base/public``; its collection id."""
    folders = generate_samples(base / "samples", scale, [dataset])  # type: ignore[arg-type]
    summary = publish_collection(REPO / "records" / f"{dataset}.json", folders[dataset], base / "public", workers=2)
    if summary.errors:
        raise RuntimeError(f"publishing {dataset} failed: {summary.errors}")
    return summary.collection_id


def service_env(root: Path, key: str, collections: Sequence[str]) -> dict[str, str]:
    """Settings of the service: the publication ``root``, and an API key ``key`` granted ``collections`` (HMA is
    apply-access, so its tiles are read as an authorized caller)."""
    grant = {"subject": "benchmark", "grants": list(collections)}
    return {"NCDC_STAC_ROOT": str(root), "NCDC_STAC_API_KEYS": json.dumps({hash_api_key(key): grant})}


def median_ms(run: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def render(image: ImageData, style: Render) -> bytes:
    content, _ = render_image(
        image, colormap=cmap.get(style.colormap), rescale=[style.rescale], output_format=ImageType.png
    )
    return content


def read_tile(path: Path, tile: morecantile.Tile, band: int) -> ImageData:
    with Reader(str(path)) as reader:
        return reader.tile(tile.x, tile.y, tile.z, indexes=band)


def in_process(job: Job, style: Render, picture: bool) -> bytes:
    """The reference: one COG read, or rio-tiler's mosaic of several, then the same PNG rendering."""
    if len(job.paths) == 1:
        image = read_tile(job.paths[0], job.tile, style.band)
    else:
        image, _ = mosaic_reader(list(job.paths), read_tile, job.tile, band=style.band)
    return render(image, style) if picture else image.data.tobytes()


def centre_tile(path: Path, zoom: int) -> morecantile.Tile:
    with Reader(str(path)) as reader:
        west, south, east, north = reader.get_geographic_bounds("EPSG:4326")
    return WEB_MERCATOR.tile((west + east) / 2, (south + north) / 2, zoom)


def native_tiles(path: Path) -> list[morecantile.Tile]:
    with Reader(str(path)) as reader:
        west, south, east, north = reader.get_geographic_bounds("EPSG:4326")
        zooms = [reader.maxzoom - 1, reader.maxzoom]
    return list(WEB_MERCATOR.tiles(west, south, east, north, zooms))


def spread(values: Sequence[Job], most: int) -> list[Job]:
    """At most ``most`` of ``values``, evenly spaced."""
    if len(values) <= most:
        return list(values)
    step = len(values) / most
    return [values[int(i * step)] for i in range(most)]


def compare(
    client: httpx.Client, jobs: Sequence[Job], style: Render, picture: bool, repeat: int
) -> tuple[float, float]:
    """(HTTP ms, in-process ms) per tile: medians of the per-pass mean, passes in turns, after one warm-up each."""

    def over_http() -> None:
        for job in jobs:
            answer = client.get(job.url, params=job.params)
            if answer.status_code not in (200, 204):
                raise RuntimeError(f"{job.url} {job.params}: {answer.status_code} {answer.text[:200]}")

    def local() -> None:
        for job in jobs:
            in_process(job, style, picture)

    over_http()  # warm caches (file system, item JSON, DuckDB)
    local()
    http_ms, local_ms = interleaved_ms(over_http, local, repeat)
    return http_ms / len(jobs), local_ms / len(jobs)


def interleaved_ms(first: Callable[[], object], second: Callable[[], object], repeat: int) -> tuple[float, float]:
    """Median ms of each of two runs, timed in turns (first, second, first, ...): a drift of the machine's speed
    during the measurement weighs on both alike."""
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeat):
        for run, spent in zip((first, second), times, strict=True):
            spent.append(median_ms(run, 1))
    return statistics.median(times[0]), statistics.median(times[1])


def gangrigab_figures(client: httpx.Client, root: Path, cid: str, repeat: int, most: int, months: int) -> list[Figure]:
    cogs = {month: root / cid / month / "velocity.tif" for month in MONTHS}
    item = f"collections/{cid}/items/{{month}}/tiles/WebMercatorQuad/{{z}}/{{x}}/{{y}}.{{ext}}"
    mosaic = f"collections/{cid}/tiles/WebMercatorQuad/{{z}}/{{x}}/{{y}}.png"

    def jobs(template: str, tiles: dict[str, list[morecantile.Tile]], ext: str, by_date: bool) -> list[Job]:
        return [
            Job(
                template.format(month=month, z=t.z, x=t.x, y=t.y, ext=ext),
                {"datetime": month} if by_date else {},
                (cogs[month],),
                t,
            )
            for month, month_tiles in tiles.items()
            for t in month_tiles
        ]

    native = {month: native_tiles(path) for month, path in cogs.items()}
    figures = []
    for case, template, ext, by_date, picture in (
        ("item .png, native zooms", item, "png", False, True),
        ("item .npy, native zooms", item, "npy", False, False),
        ("mosaic .png (datetime=month), native zooms", mosaic, "png", True, True),
    ):
        chosen = spread(jobs(template, native, ext, by_date), most)
        http_ms, local_ms = compare(client, chosen, GANGRIGAB_RENDER, picture, repeat)
        figures.append(Figure(case, http_ms, local_ms, len(chosen)))
        print(f"  {case}: {http_ms:.2f} vs {local_ms:.2f} ms/tile", flush=True)
    for zoom in ZOOMS:
        at_zoom = {month: [centre_tile(path, zoom)] for month, path in list(cogs.items())[:months]}
        for kind, template, by_date in (("item", item, False), ("mosaic", mosaic, True)):
            chosen = jobs(template, at_zoom, "png", by_date)
            http_ms, local_ms = compare(client, chosen, GANGRIGAB_RENDER, True, repeat)
            figures.append(Figure(f"{kind} .png z{zoom}", http_ms, local_ms, len(chosen)))
        print(
            f"  z{zoom}: item {figures[-2].http_ms:.2f} vs {figures[-2].local_ms:.2f}, "
            f"mosaic {figures[-1].http_ms:.2f} vs {figures[-1].local_ms:.2f} ms/tile",
            flush=True,
        )
    return figures


def hma_cogs(root: Path, cid: str) -> dict[str, list[Path]]:
    """Month (``YYYY-MM``) -> the COGs of that month (one per glacier)."""
    months: dict[str, list[Path]] = defaultdict(list)
    for path in sorted((root / cid).glob("*/velocity.tif")):
        months[path.parent.name[-7:]].append(path)
    return dict(sorted(months.items()))


def hma_figures(client: httpx.Client, root: Path, cid: str, repeat: int) -> tuple[list[Figure], int]:
    months = hma_cogs(root, cid)
    first = next(iter(months.values()))[0]
    with Reader(str(first)) as reader:
        zoom = reader.maxzoom
        west, south, east, north = reader.get_geographic_bounds("EPSG:4326")
    tile = WEB_MERCATOR.tile((west + east) / 2, (south + north) / 2, zoom)
    bounds = WEB_MERCATOR.bounds(tile)

    def overlaps(path: Path) -> bool:
        with Reader(str(path)) as reader:
            w, s, e, n = reader.get_geographic_bounds("EPSG:4326")
        return w < bounds.right and e > bounds.left and s < bounds.top and n > bounds.bottom

    jobs = [
        Job(
            f"collections/{cid}/tiles/WebMercatorQuad/{tile.z}/{tile.x}/{tile.y}.png",
            {"datetime": month},
            tuple(path for path in paths if overlaps(path)),
            tile,
        )
        for month, paths in months.items()
    ]
    http_ms, local_ms = compare(client, jobs, HMA_RENDER, True, repeat)
    figures = [Figure(f"mosaic .png z{zoom}, each of {len(jobs)} months", http_ms, local_ms, len(jobs))]
    print(f"  HMA mosaic: {http_ms:.2f} vs {local_ms:.2f} ms/tile", flush=True)

    lon, lat = (west + east) / 2, (south + north) / 2
    series = [path for paths in months.values() for path in paths if overlaps(path)]

    def over_http() -> None:
        answer = client.get(f"collections/{cid}/timeseries", params={"lon": lon, "lat": lat})
        answer.raise_for_status()
        if len(answer.json()["values"]) != len(series):
            raise RuntimeError(f"time series has {len(answer.json()['values'])} values, expected {len(series)}")

    def local() -> None:
        for path in series:
            with Reader(str(path)) as reader:
                reader.point(lon, lat, indexes=HMA_RENDER.band)

    over_http()
    local()
    figures.append(Figure(f"point time series, {len(series)} items", *interleaved_ms(over_http, local, repeat), 1))
    print(f"  time series: {figures[-1].http_ms:.1f} vs {figures[-1].local_ms:.1f} ms", flush=True)
    return figures, len(months)


def rows_of(gangrigab: list[Figure], hma: list[Figure], scale: str, repeat: int) -> list[Row]:
    """Native-zoom and HMA cases one row each; the zoom sweep as a mean over low (3-7) and high (8-12) zooms."""
    label = f"Gangrigab {scale}"
    rows = [
        Row(
            SECTION,
            f"{label}: {f.case} ({f.count} tiles)",
            f.http_ms,
            "ms",
            "rio-tiler in-process",
            f.local_ms,
            TARGET if ".png" in f.case else None,
        )
        for f in gangrigab
        if "native" in f.case
    ]
    for kind in ("item", "mosaic"):
        for name, zooms in (("low zooms z3-z7", LOW_ZOOMS), ("high zooms z8-z12", range(8, 13))):
            chosen = [f for f in gangrigab if any(f.case == f"{kind} .png z{z}" for z in zooms)]
            rows.append(
                Row(
                    SECTION,
                    f"{label}: {kind} .png, {name} (mean of {len(chosen)} zooms x {chosen[0].count} months)",
                    statistics.mean(f.http_ms for f in chosen),
                    "ms",
                    "rio-tiler in-process",
                    statistics.mean(f.local_ms for f in chosen),
                    TARGET,
                )
            )
    mosaic, series = hma
    rows.append(
        Row(
            SECTION,
            f"HMA: {mosaic.case}",
            mosaic.http_ms,
            "ms",
            "rio-tiler mosaic_reader in-process",
            mosaic.local_ms,
            TARGET,
        )
    )
    rows.append(
        Row(
            SECTION,
            f"HMA: {series.case} (HTTP, median of {repeat})",
            series.http_ms,
            "ms",
            "Reader.point per file, serial, in-process",
            series.local_ms,
            note="the service reads the files in a thread pool",
        )
    )
    return rows


def zoom_table(figures: list[Figure]) -> str:
    lines = [f"{'case':48} {'tiles':>5} {'HTTP ms/tile':>13} {'rio-tiler ms/tile':>18} {'ratio':>6}"]
    lines += [
        f"{f.case:48} {f.count:5d} {f.http_ms:13.2f} {f.local_ms:18.2f} {f.http_ms / f.local_ms:6.2f}" for f in figures
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", choices=["small", "full"], default="full", help="Gangrigab sample scale")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--tiles", type=int, default=48, help="tiles per native-zoom case (spread over the months)")
    parser.add_argument("--months", type=int, default=12, help="Gangrigab months per zoom of the z3-z12 sweep")
    add_results_option(parser)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="ncdc-bench-tiles-") as scratch:
        base = Path(scratch)
        started = time.perf_counter()
        gangrigab_id = publish_sample(base, GANGRIGAB, args.scale)
        hma_id = publish_sample(base, HMA, "small")
        print(f"  samples published in {time.perf_counter() - started:.0f} s", flush=True)
        root = base / "public"
        key = secrets.token_urlsafe(32)
        with (
            serve(service_env(root, key, [gangrigab_id, hma_id])) as url,
            httpx.Client(base_url=f"{url}{RASTER_PATH}/", headers={API_KEY_HEADER: key}, timeout=60) as client,
        ):
            gangrigab = gangrigab_figures(client, root, gangrigab_id, args.repeat, args.tiles, args.months)
            hma, months = hma_figures(client, root, hma_id, args.repeat)
    rows = rows_of(gangrigab, hma, args.scale, args.repeat)
    details = {f"Tiles: every case (HTTP vs in-process; HMA: {months} months)": zoom_table(gangrigab + hma)}
    print(zoom_table(gangrigab + hma))
    print_rows(rows, "Tiles")
    record(args.results, rows, details=details)


if __name__ == "__main__":
    main()
