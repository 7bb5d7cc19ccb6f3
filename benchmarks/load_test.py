"""Bounded open-loop mixed load on ``ncdc-stac serve`` (embedded DuckDB), loopback only.

The server runs as a subprocess on a free port of 127.0.0.1 over a publication (``--root``, or the small
Gangrigab and Muli samples published into a temporary folder; collections that refuse anonymous requests are
left out). Requests are sent at a fixed rate
(``--rate`` per second, open loop: a request is sent when it is due whether or not earlier ones have answered)
for ``--seconds``, after ``--warmup`` seconds at the same rate that are not counted. The mix, drawn with a fixed
seed: 70% tiles (item and mosaic PNG tiles at the COGs' native zooms), 25% searches (``/stac/search`` with
collection, bbox, datetime, sortby), 5% items (``/stac/collections/{id}/items/{item}``).

Reported: error rate (non-2xx answers, time-outs and refused connections), p50 / p99 latency (from the moment
the request was due, so a slow server is not hidden by fewer requests), achieved rate, and the server's resident
memory, sampled every ``--rss-every`` seconds through the measured run: its level after the warm-up, half-way and
at the end (each the median of the samples of a ``--rss-window`` around that moment, so one request's transient
buffers do not decide it), the peak, and the growth over the second half (end / half-way, and the least-squares
slope in MB per minute). Flat means the end at most 10% above both the level after the warm-up and the half-way
level; the growth over the second half is what separates a leak (it keeps climbing) from caches filling up to
their bounds (they level off). An overloaded server (errors, achieved rate below the requested one) grows with
its backlog, so read the memory rows together with the error rate.

Run from the repository root: ``.venv/bin/python -m benchmarks.load_test [--seconds 300] [--rate 20]``
(``--results FILE`` appends the figures for ``make bench``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import morecantile
import psutil
from rio_tiler.io import Reader

from benchmarks.results import Row, Target, add_results_option, print_rows, record
from benchmarks.tiles import GANGRIGAB, publish_sample

SECTION = "load"
MULI = "muli-subsidence"
MONTH = re.compile(r"\d{4}-\d{2}$")
MIX = {"tile": 70, "search": 25, "item": 5}
WEB_MERCATOR = morecantile.tms.get("WebMercatorQuad")
RSS_GROWTH = Target(1.10)
"""Server memory at the end at most 10% above its level after the warm-up, and above its half-way level."""


@dataclass(frozen=True)
class Request:
    kind: str
    collection: str
    path: str
    params: dict[str, str]


@dataclass(frozen=True)
class Outcome:
    kind: str
    latency: float
    status: int
    """HTTP status; 0 when there was no answer (time-out, refused)."""

    @property
    def ok(self) -> bool:
        return self.status in (200, 204)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def serve(root: Path, log: Path) -> Iterator[tuple[str, psutil.Process]]:
    """``ncdc-stac serve --root ROOT`` on a free loopback port; yields its base URL and process."""
    port = free_port()
    command = [
        sys.executable,
        "-c",
        "from ncdc_stac.cli import main; main()",
        "serve",
        "--root",
        str(root),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--backend",
        "duckdb",
    ]
    env = {**os.environ, "NCDC_STAC_LOG_LEVEL": "warning"}
    with log.open("wb") as output:
        process = subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"ncdc-stac serve exited with {process.returncode}: {log.read_text()[-2000:]}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{base}/stac/", timeout=5).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError("ncdc-stac serve did not answer within 60 s")
            time.sleep(0.2)
        yield base, psutil.Process(process.pid)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# --- the requests ------------------------------------------------------------------------------------------


def _cog_tiles(path: Path) -> tuple[list[morecantile.Tile], tuple[float, float, float, float]]:
    with Reader(str(path)) as reader:
        west, south, east, north = reader.get_geographic_bounds("EPSG:4326")
        zooms = sorted({max(reader.minzoom, reader.maxzoom - 2), reader.maxzoom - 1, reader.maxzoom})
    return list(WEB_MERCATOR.tiles(west, south, east, north, zooms)), (west, south, east, north)


def requests_of(root: Path) -> dict[str, list[Request]]:
    """Every tile, search and item request the mix draws from, for each collection of the publication."""
    pool: dict[str, list[Request]] = defaultdict(list)
    for collection in sorted(path.parent for path in root.glob("*/collection.json")):
        cid = collection.name
        cogs = sorted(collection.glob("*/*.tif"))
        for cog in cogs[:: max(1, len(cogs) // 24)]:  # at most ~24 items per collection
            item = cog.parent.name
            tiles, bounds = _cog_tiles(cog)
            month = MONTH.search(item)  # the sample items are monthly: <name>-YYYY-MM or YYYY-MM
            for tile in tiles:
                xyz = f"WebMercatorQuad/{tile.z}/{tile.x}/{tile.y}.png"
                pool["tile"].append(Request("tile", cid, f"/raster/collections/{cid}/items/{item}/tiles/{xyz}", {}))
                if month:
                    pool["tile"].append(
                        Request("tile", cid, f"/raster/collections/{cid}/tiles/{xyz}", {"datetime": month.group(0)})
                    )
            pool["item"].append(Request("item", cid, f"/stac/collections/{cid}/items/{item}", {}))
            west, south, east, north = bounds
            pool["search"] += [
                Request(
                    "search",
                    cid,
                    "/stac/search",
                    {"collections": cid, "bbox": f"{west},{south},{east},{north}", "limit": "20"},
                ),
                Request("search", cid, "/stac/search", {"collections": cid, "sortby": "-datetime", "limit": "10"}),
                Request(
                    "search",
                    cid,
                    "/stac/search",
                    {"collections": cid, "datetime": "2023-01-01T00:00:00Z/2023-06-30T23:59:59Z"},
                ),
            ]
    return dict(pool)


def open_requests(base: str, pool: dict[str, list[Request]]) -> dict[str, list[Request]]:
    """The requests of the collections that answer without credentials (one probe per collection and kind);
    the load is anonymous, so a collection under access control would only measure refusals."""
    kept: dict[str, list[Request]] = {}
    for kind, requests in pool.items():
        refused = set()
        for cid in sorted({request.collection for request in requests}):
            probe = next(request for request in requests if request.collection == cid)
            status = httpx.get(base + probe.path, params=probe.params, timeout=60).status_code
            if status in (401, 403):
                refused.add(cid)
                print(f"  {kind} requests of {cid} left out: {status} without credentials", flush=True)
        kept[kind] = [request for request in requests if request.collection not in refused]
    missing = [kind for kind in MIX if not kept.get(kind)]
    if missing:
        raise RuntimeError(f"nothing open to request for {', '.join(missing)} (no public COG items?)")
    return kept


def schedule(pool: dict[str, list[Request]], count: int, seed: int = 2024) -> list[Request]:
    """``count`` requests drawn with the weights of :data:`MIX`."""
    rng = random.Random(seed)
    kinds = rng.choices(list(MIX), weights=list(MIX.values()), k=count)
    return [rng.choice(pool[kind]) for kind in kinds]


# --- the open loop -----------------------------------------------------------------------------------------


async def drive(base: str, plan: list[Request], rate: float, timeout: float) -> list[Outcome]:
    """Send ``plan`` at ``rate`` per second; each latency runs from the moment its request was due."""
    limits = httpx.Limits(max_connections=256, max_keepalive_connections=64)
    async with httpx.AsyncClient(base_url=base, timeout=timeout, limits=limits) as client:
        loop = asyncio.get_running_loop()
        start = loop.time()

        async def one(request: Request, due: float) -> Outcome:
            try:
                status = (await client.get(request.path, params=request.params)).status_code
            except httpx.HTTPError:
                status = 0
            return Outcome(request.kind, loop.time() - due, status)

        tasks = []
        for number, request in enumerate(plan):
            due = start + number / rate
            await asyncio.sleep(max(0.0, due - loop.time()))
            tasks.append(asyncio.create_task(one(request, due)))
        return list(await asyncio.gather(*tasks))


def run_phase(base: str, plan: list[Request], rate: float, timeout: float) -> tuple[list[Outcome], float]:
    started = time.perf_counter()
    outcomes = asyncio.run(drive(base, plan, rate, timeout))
    return outcomes, time.perf_counter() - started


def percentile(values: list[float], share: int) -> float:
    if len(values) < 2:
        return values[0] if values else float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[share - 1]


def rss_mb(process: psutil.Process) -> float:
    return float(process.memory_info().rss) / 1e6


@dataclass(frozen=True)
class RssSeries:
    """The server's resident memory sampled through the measured run: (seconds since its start, MB)."""

    samples: list[tuple[float, float]]
    window: float
    """Seconds of samples whose median gives the level at a moment."""

    def level(self, at: float) -> float:
        """Median of the samples within ``window`` (at most a quarter of the run) around ``at``, clipped to the run."""
        window = min(self.window, self.duration / 4)
        low = min(max(0.0, at - window / 2), max(0.0, self.duration - window))
        values = [mb for t, mb in self.samples if low <= t <= low + window]
        return statistics.median(values or [min(self.samples, key=lambda s: abs(s[0] - at))[1]])

    @property
    def duration(self) -> float:
        return self.samples[-1][0]

    @property
    def start(self) -> float:
        return self.level(0.0)

    @property
    def middle(self) -> float:
        return self.level(self.duration / 2)

    @property
    def end(self) -> float:
        return self.level(self.duration)

    @property
    def peak(self) -> float:
        return max(mb for _, mb in self.samples)

    def slope(self) -> float:
        """Least-squares growth over the second half, in MB per minute."""
        half = [(t, mb) for t, mb in self.samples if t >= self.duration / 2]
        if len(half) < 2:
            return 0.0
        return statistics.linear_regression([t for t, _ in half], [mb for _, mb in half]).slope * 60


class RssSampler:
    """Samples a process's RSS every ``every`` seconds in a thread, from ``__enter__`` to ``__exit__``."""

    def __init__(self, process: psutil.Process, every: float) -> None:
        self.process, self.every = process, every
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _run(self) -> None:
        started = time.monotonic()
        while True:
            self.samples.append((time.monotonic() - started, rss_mb(self.process)))
            if self._stop.wait(self.every):
                self.samples.append((time.monotonic() - started, rss_mb(self.process)))
                return

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@dataclass(frozen=True)
class LoadResult:
    outcomes: list[Outcome]
    wall: float
    rate: float
    rss: RssSeries

    def latencies(self, kind: str | None = None) -> list[float]:
        return [o.latency for o in self.outcomes if kind is None or o.kind == kind]

    @property
    def errors(self) -> int:
        return sum(not o.ok for o in self.outcomes)


def load(base: str, server: psutil.Process, pool: dict[str, list[Request]], args: argparse.Namespace) -> LoadResult:
    warmup = schedule(pool, int(args.rate * args.warmup), seed=1)
    run_phase(base, warmup, args.rate, args.timeout)
    plan = schedule(pool, int(args.rate * args.seconds))
    with RssSampler(server, args.rss_every) as sampler:
        outcomes, wall = run_phase(base, plan, args.rate, args.timeout)
    return LoadResult(outcomes, wall, args.rate, RssSeries(sampler.samples, args.rss_window))


def rows_of(result: LoadResult, seconds: float) -> list[Row]:
    count = len(result.outcomes)
    latencies = result.latencies()
    label = f"{seconds:g} s at {result.rate:g} req/s (70% tiles, 25% search, 5% item)"
    rss = result.rss
    return [
        Row(
            SECTION,
            f"{label}: error rate ({result.errors} of {count})",
            100 * result.errors / max(1, count),
            "%",
            target=Target(0.0, on="value"),
        ),
        Row(SECTION, f"{label}: p50 latency", percentile(latencies, 50) * 1e3, "ms"),
        Row(SECTION, f"{label}: p99 latency", percentile(latencies, 99) * 1e3, "ms"),
        Row(SECTION, f"{label}: achieved rate", count / result.wall, "req/s", "requested", result.rate),
        Row(
            SECTION,
            f"{label}: server RSS at the end",
            rss.end,
            "MB",
            "after the warm-up",
            rss.start,
            RSS_GROWTH,
            note=f"half-way {rss.middle:.0f} MB, peak {rss.peak:.0f} MB",
        ),
        Row(
            SECTION,
            f"{label}: server RSS growth over the second half",
            rss.end,
            "MB",
            "half-way",
            rss.middle,
            RSS_GROWTH,
            note=f"slope {rss.slope():+.1f} MB/min",
        ),
    ]


def kinds_table(result: LoadResult) -> str:
    lines = [f"{'kind':8} {'requests':>9} {'errors':>7} {'p50 ms':>9} {'p99 ms':>9}  error statuses (0: no answer)"]
    for kind in MIX:
        latencies = result.latencies(kind)
        statuses = Counter(o.status for o in result.outcomes if o.kind == kind and not o.ok)
        lines.append(
            f"{kind:8} {len(latencies):9d} {statuses.total():7d} {percentile(latencies, 50) * 1e3:9.1f} "
            f"{percentile(latencies, 99) * 1e3:9.1f}  {dict(statuses) or ''}"
        )
    rss = result.rss
    lines.append(
        f"server RSS (median of {rss.window:g} s of samples): {rss.start:.0f} MB after the warm-up, "
        f"{rss.middle:.0f} MB half-way ({rss.middle / rss.start:.2f}x), {rss.end:.0f} MB at the end "
        f"({rss.end / rss.start:.2f}x; second half {rss.end / rss.middle:.2f}x, slope {rss.slope():+.1f} MB/min), "
        f"peak {rss.peak:.0f} MB"
    )
    every = max(1, len(rss.samples) // 20)  # about 20 points of the curve
    lines.append("RSS curve (s: MB): " + ", ".join(f"{t:.0f}: {mb:.0f}" for t, mb in rss.samples[::every]))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, help="publication root (default: publish the small samples)")
    parser.add_argument("--seconds", type=float, default=300.0, help="measured duration (default 300)")
    parser.add_argument("--warmup", type=float, default=15.0, help="uncounted warm-up at the same rate")
    parser.add_argument("--rate", type=float, default=20.0, help="requests per second (default 20)")
    parser.add_argument("--timeout", type=float, default=10.0, help="a request slower than this is an error")
    parser.add_argument("--rss-every", type=float, default=2.0, help="seconds between RSS samples (default 2)")
    parser.add_argument(
        "--rss-window", type=float, default=30.0, help="seconds of samples whose median is a level (default 30)"
    )
    add_results_option(parser)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="ncdc-bench-load-") as scratch:
        root = args.root
        if root is None:
            for dataset in (GANGRIGAB, MULI):
                publish_sample(Path(scratch), dataset, "small")
            root = Path(scratch) / "public"
        with serve(root, Path(scratch) / "server.log") as (base, server):
            pool = open_requests(base, requests_of(root))
            print(
                f"load: {args.rate:g} req/s for {args.seconds:g} s (+{args.warmup:g} s warm-up) over {root}; "
                f"{sum(map(len, pool.values()))} distinct requests",
                flush=True,
            )
            result = load(base, server, pool, args)
    rows = rows_of(result, args.seconds)
    table = kinds_table(result)
    print(table)
    print_rows(rows, "Load")
    record(args.results, rows, details={"Load: per kind": table})


if __name__ == "__main__":
    main()
