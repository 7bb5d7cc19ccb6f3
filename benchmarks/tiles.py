"""Tile latency through HTTP vs rio-tiler in-process, for the same tiles (ratios; the machines are noisy).

1. Item tiles: ``GET /collections/{id}/items/{item}/tiles/WebMercatorQuad/{z}/{x}/{y}.png`` (render defaults:
   rescale + colormap) on uvicorn over loopback, vs ``rio_tiler.io.Reader.tile`` + titiler's ``render_image``
   with the same rescale and colormap in this process.
2. Collection mosaic tiles (``?datetime=2023-07``) over HTTP, vs the same in-process read.
3. The same item tiles as ``.npy`` (no PNG encoding) both ways.

Run from the repository root: ``.venv/bin/python -m benchmarks.tiles [--root PUBLIC] [--repeat 5]``
(without ``--root`` the small Gangrigab sample is generated and published into a temporary folder).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import morecantile
from rio_tiler.colormap import cmap
from rio_tiler.io import Reader
from titiler.core.resources.enums import ImageType
from titiler.core.utils import render_image

from ncdc_stac.settings import Settings
from publish.pipeline import publish_collection
from publish.samples import generate_samples
from services.raster import create_raster_app
from services.viewer.harness import serve

REPO = Path(__file__).resolve().parents[2]
RECORD = "gangrigab-velocity"
MONTHS = [f"2023-{m:02d}" for m in range(1, 13)]
WEB_MERCATOR = morecantile.tms.get("WebMercatorQuad")


def publish_sample(base: Path) -> tuple[Path, str]:
    folders = generate_samples(base / "samples", "small", [RECORD])
    summary = publish_collection(REPO / "records" / f"{RECORD}.json", folders[RECORD], base / "public", workers=2)
    return base / "public", summary.collection_id


def tiles_of(path: Path) -> list[morecantile.Tile]:
    with Reader(str(path)) as reader:
        west, south, east, north = reader.get_geographic_bounds("EPSG:4326")
        zooms = [reader.maxzoom - 1, reader.maxzoom]
    return list(WEB_MERCATOR.tiles(west, south, east, north, zooms))


def median_ms(run: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def in_process(path: Path, tile: morecantile.Tile, picture: bool) -> bytes:
    with Reader(str(path)) as reader:
        image = reader.tile(tile.x, tile.y, tile.z)
    if not picture:
        return image.data.tobytes()
    content, _ = render_image(image, colormap=cmap.get("viridis"), rescale=[(0.0, 1.5)], output_format=ImageType.png)
    return content


def measure(root: Path, cid: str, repeat: int) -> list[tuple[str, float, float, int]]:
    """(case, HTTP ms, in-process ms, tiles) per case: medians of the per-pass mean tile latency."""
    cases = {
        "item .png": ("items/{month}/tiles/WebMercatorQuad/{z}/{x}/{y}.png", {}, True),
        "item .npy": ("items/{month}/tiles/WebMercatorQuad/{z}/{x}/{y}.npy", {}, False),
        "mosaic .png (datetime=month)": ("tiles/WebMercatorQuad/{z}/{x}/{y}.png", {"datetime": "{month}"}, True),
    }
    work = [(m, root / cid / m / "velocity.tif") for m in MONTHS]
    jobs = [(m, path, tile) for m, path in work for tile in tiles_of(path)]
    results = []
    with (
        serve(create_raster_app(Settings(root=root))) as base,
        httpx.Client(base_url=f"{base}/collections/{cid}/", timeout=60) as client,
    ):
        for name, (template, params, picture) in cases.items():

            def over_http(template: str = template, params: dict[str, str] = params) -> None:
                for month, _, tile in jobs:
                    url = template.format(month=month, z=tile.z, x=tile.x, y=tile.y)
                    answer = client.get(url, params={k: v.format(month=month) for k, v in params.items()})
                    assert answer.status_code in (200, 204), (url, answer.status_code)

            def local(picture: bool = picture) -> None:
                for _, path, tile in jobs:
                    in_process(path, tile, picture)

            over_http()  # warm caches (file system, item JSON, DuckDB)
            local()
            http_ms = median_ms(over_http, repeat) / len(jobs)
            local_ms = median_ms(local, repeat) / len(jobs)
            results.append((name, http_ms, local_ms, len(jobs)))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, help="a publication root holding the Gangrigab collection")
    parser.add_argument("--collection", default="monthly-glacier-surface-velocity-gangrigab-area-2023")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        root, cid = (args.root, args.collection) if args.root else publish_sample(Path(scratch))
        print(f"{'case':32} {'tiles':>5} {'HTTP ms/tile':>13} {'rio-tiler ms/tile':>18} {'ratio':>6}")
        for name, http_ms, local_ms, count in measure(root, cid, args.repeat):
            print(f"{name:32} {count:5d} {http_ms:13.2f} {local_ms:18.2f} {http_ms / local_ms:6.2f}")


if __name__ == "__main__":
    main()
