"""Item search figures: the embedded DuckDB API vs the pgstac API, and each API vs its engine called in-process.

For each size (synthetic monthly glacier-velocity items over High Mountain Asia, ``benchmarks.synthetic``:
publish's stac-geoparquet layout sorted by datetime) and each typical query

* ``bbox+datetime``  a 3x3 degree box and one year, 50 items
* ``cql2 filter``    ``ncdc:mean_velocity > v AND platform = 'sentinel-2'`` (cql2-text; cql2-json for pgstac), 50 items
* ``sortby``         one year sorted by ``-ncdc:mean_velocity``, 50 items
* ``id lookup``      ``/collections/{c}/items/{id}`` of a random item (the embedded API reads the item's static
  document; the synthetic publication writes those of the looked-up ids only: a million small files take many
  minutes to write, and a lookup reads one file by its path)
* ``page 50``        ``/search?limit=10`` and 49 ``next`` links: one operation is the whole walk to page 50

four ways are measured, 1 and 8 concurrent clients (threads, closed loop, bounded by count and time):

* ``embedded API``   ``services.app`` with the DuckDB backend on uvicorn (own process, 127.0.0.1), HTTP + JSON
* ``DuckDB``         the same searches in-process: ``services.api.search.Search`` (the API's SQL, Arrow out);
  the id lookup as DuckDB answers it from items.parquet (``WHERE id = ?``)
* ``pgstac API``     ``services.app`` with the pgstac backend on uvicorn, over a throwaway PostgreSQL 15 cluster
  (``tests.pgstac_cluster``) loaded with ``publish.ingest`` (pypgstac's loader), then ``VACUUM (ANALYZE)``
* ``pgstac search()`` pgstac's ``search(jsonb)`` in-process through psycopg (one connection per client)

The four are measured in turns (``benchmarks.load.measure_in_turns``: each cell in 4 rounds, the order rotated),
with both servers, the cluster and the in-process engines up throughout, so that a ratio compares runs made in
the same states of a shared machine. Then ratios: API overhead (API p50 / engine p50), embedded vs pgstac
(pgstac p50 / embedded p50 and the req/s ratio at 8 clients), id lookup. Loopback only; every loop is bounded.

Run from the repository root: ``.venv/bin/python -m benchmarks.search [--sizes 10k,100k] [--seconds 5]``
(``--results FILE`` appends the figures and the tables for ``make bench``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from benchmarks.load import Pool, Stats, measure_in_turns
from benchmarks.results import Point, Row, Target, add_results_option, print_rows, record
from benchmarks.server import serve
from benchmarks.synthetic import COLLECTION, SyntheticPublication, glacier_count, item_id, write_publication

QUERIES = ("bbox+datetime", "cql2 filter", "sortby", "id lookup", "page 50")
MODES = ("embedded API", "DuckDB", "pgstac API", "pgstac search()")
CONCURRENCY = (1, 8)
LIMIT = 50
PAGE_SIZE = 10
PAGES = 50
KEEPALIVE_SECONDS = 2.0
"""How long the benchmark's HTTP clients keep an idle connection: less than uvicorn's ``timeout_keep_alive``."""
SECTION = "search"
SLOW_OK = {"NCDC_STAC_REQUEST_TIMEOUT": "600"}
"""The APIs' request deadline (30 s by default, then 503) raised: slow answers are measured, not refused."""


# --- the queries, as numbered variations -------------------------------------------------------------------


def _bbox(number: int) -> list[float]:
    west, south = 71.0 + (number * 7) % 26, 27.5 + (number * 3) % 14
    return [west, south, west + 3.0, south + 3.0]


def _year(number: int) -> int:
    return 2013 + number % 12


def _interval(number: int) -> tuple[datetime, datetime]:
    year = _year(number)
    return datetime(year, 1, 1, tzinfo=UTC), datetime(year, 12, 31, 23, 59, 59, tzinfo=UTC)


def _datetime(number: int) -> str:
    year = _year(number)
    return f"{year}-01-01T00:00:00Z/{year}-12-31T23:59:59Z"


def _velocity(number: int) -> int:
    return 20 + number % 60


def _cql2_text(number: int) -> str:
    return f"ncdc:mean_velocity > {_velocity(number)} AND platform = 'sentinel-2'"


def _cql2_json(number: int) -> dict[str, Any]:
    return {
        "op": "and",
        "args": [
            {"op": ">", "args": [{"property": "ncdc:mean_velocity"}, _velocity(number)]},
            {"op": "=", "args": [{"property": "platform"}, "sentinel-2"]},
        ],
    }


@dataclass(frozen=True)
class Ids:
    glaciers: int
    months: int
    items: int

    @classmethod
    def of(cls, n: int) -> Ids:
        """The ids of the synthetic publication of ``n`` items."""
        glaciers = glacier_count(n)
        return cls(glaciers, math.ceil(n / glaciers), n)

    def __call__(self, number: int) -> str:
        """A pseudo-random existing item id."""
        index = (abs(number) * 7919 + 13) % self.items
        return item_id(index % self.glaciers, index // self.glaciers)


# --- HTTP (both APIs) --------------------------------------------------------------------------------------


class HttpMode:
    """One API on uvicorn; one keep-alive httpx client per thread."""

    def __init__(self, base: str, ids: Ids) -> None:
        self.base = base.rstrip("/") + "/stac"
        self.ids = ids
        # idle connections closed before uvicorn closes them (5 s): between turns a reused one could be reset
        limits = httpx.Limits(keepalive_expiry=KEEPALIVE_SECONDS)
        self.clients: Pool[httpx.Client] = Pool(lambda: httpx.Client(timeout=120, limits=limits), httpx.Client.close)

    def close(self) -> None:
        self.clients.close()

    def _get(self, url: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        with self.clients.get() as http:
            response = http.get(url, params=params)
        if response.status_code != 200:
            raise RuntimeError(f"{response.status_code} {response.url}: {response.text[:300]}")
        body: dict[str, Any] = response.json()
        return body

    def operation(self, query: str) -> Callable[[int], object]:
        search = f"{self.base}/search"
        if query == "bbox+datetime":
            return lambda n: self._get(
                search,
                {
                    "collections": COLLECTION,
                    "bbox": ",".join(map(str, _bbox(n))),
                    "datetime": _datetime(n),
                    "limit": LIMIT,
                },
            )
        if query == "cql2 filter":
            return lambda n: self._get(
                search, {"collections": COLLECTION, "filter": _cql2_text(n), "filter-lang": "cql2-text", "limit": LIMIT}
            )
        if query == "sortby":
            return lambda n: self._get(
                search,
                {
                    "collections": COLLECTION,
                    "datetime": _datetime(n),
                    "sortby": "-properties.ncdc:mean_velocity",
                    "limit": LIMIT,
                },
            )
        if query == "id lookup":
            return lambda n: self._get(f"{self.base}/collections/{COLLECTION}/items/{self.ids(n)}")
        if query == "page 50":
            return self._walk
        raise ValueError(query)

    def _walk(self, number: int) -> None:
        body = self._get(f"{self.base}/search", {"collections": COLLECTION, "limit": PAGE_SIZE})
        for _ in range(PAGES - 1):
            link = next(link for link in body["links"] if link["rel"] == "next")
            if link.get("method", "GET") != "GET":
                raise RuntimeError(f"next link is not a GET: {link}")
            body = self._get(link["href"])
        if len(body["features"]) != PAGE_SIZE:
            raise RuntimeError("page 50 is not full")


# --- DuckDB in-process -------------------------------------------------------------------------------------


class DuckDBMode:
    """``services.api.search.Search`` on the publication's DuckDB store, set up as the API's (same settings: a
    collection within ``NCDC_STAC_DUCKDB_RESIDENT_ITEMS`` is resident in both); one cursor per thread."""

    def __init__(self, root: Path, ids: Ids) -> None:
        from ncdc_stac.settings import Settings
        from services.api.store import DuckDBStore

        self.store = DuckDBStore.from_settings(Settings(root=root, backend="duckdb"))
        self.entry = self.store.collections[COLLECTION]
        self.ids = ids
        self.cursors: Pool[Any] = Pool(self.store.cursor, lambda cursor: cursor.close())

    def close(self) -> None:
        self.cursors.close()
        self.store.close()

    def _run(self, **params: Any) -> Any:
        from services.api.search import Search, SearchParams

        with self.cursors.get() as cursor:
            return Search([self.entry], SearchParams(collections=[COLLECTION], **params)).run(cursor)

    def operation(self, query: str) -> Callable[[int], object]:
        from services.api.cql2_sql import parse_filter
        from services.api.search import parse_bbox, parse_sortby

        sort = parse_sortby(["-properties.ncdc:mean_velocity"])
        if query == "bbox+datetime":
            return lambda n: self._run(bbox=parse_bbox(_bbox(n)), interval=_interval(n), limit=LIMIT)
        if query == "cql2 filter":
            return lambda n: self._run(filter=parse_filter(_cql2_text(n), "cql2-text", None), limit=LIMIT)
        if query == "sortby":
            return lambda n: self._run(interval=_interval(n), sortby=sort, limit=LIMIT)
        if query == "id lookup":
            return self._lookup
        if query == "page 50":
            return self._walk
        raise ValueError(query)

    def _lookup(self, number: int) -> None:
        """The item from items.parquet (``DuckDBClient.get_item`` where a publication has no static items)."""
        with self.cursors.get() as cursor:
            sql = f"SELECT * FROM {self.entry.view} WHERE id = ? LIMIT 1"
            table = cursor.execute(sql, [self.ids(number)]).to_arrow_table()
        if table.num_rows != 1:
            raise RuntimeError(f"item {self.ids(number)} not found")

    def _walk(self, number: int) -> None:
        page = self._run(limit=PAGE_SIZE)
        for _ in range(PAGES - 1):
            page = self._run(limit=PAGE_SIZE, token=page.next_token)
        if page.table.num_rows != PAGE_SIZE:
            raise RuntimeError("page 50 is not full")


# --- pgstac search() in-process ----------------------------------------------------------------------------


class PgstacMode:
    """pgstac's ``search(jsonb)`` through psycopg; one connection per thread."""

    def __init__(self, dsn: str, ids: Ids) -> None:
        import psycopg

        self.ids = ids
        self.connections: Pool[Any] = Pool(
            lambda: psycopg.connect(dsn, autocommit=True, options="-c search_path=pgstac,public"),
            lambda connection: connection.close(),
        )

    def close(self) -> None:
        self.connections.close()

    def _search(self, body: dict[str, Any]) -> dict[str, Any]:
        with self.connections.get() as connection:
            row = connection.execute("SELECT search(%s::text::jsonb)", [json.dumps(body)]).fetchone()
        if row is None:
            raise RuntimeError("search() returned no row")
        result: dict[str, Any] = row[0]
        return result

    def operation(self, query: str) -> Callable[[int], object]:
        collections = [COLLECTION]
        if query == "bbox+datetime":
            return lambda n: self._search(
                {"collections": collections, "bbox": _bbox(n), "datetime": _datetime(n), "limit": LIMIT}
            )
        if query == "cql2 filter":
            return lambda n: self._search(
                {"collections": collections, "filter": _cql2_json(n), "filter-lang": "cql2-json", "limit": LIMIT}
            )
        if query == "sortby":
            return lambda n: self._search(
                {
                    "collections": collections,
                    "datetime": _datetime(n),
                    "sortby": [{"field": "properties.ncdc:mean_velocity", "direction": "desc"}],
                    "limit": LIMIT,
                }
            )
        if query == "id lookup":
            return lambda n: self._search({"collections": collections, "ids": [self.ids(n)], "limit": 1})
        if query == "page 50":
            return self._walk
        raise ValueError(query)

    def _walk(self, number: int) -> None:
        body: dict[str, Any] = {"collections": [COLLECTION], "limit": PAGE_SIZE}
        page = self._search(body)
        for _ in range(PAGES - 1):
            link = next((link for link in page.get("links") or [] if link.get("rel") == "next"), None)
            if link is None:
                raise RuntimeError("no next link")
            token = parse_qs(urlsplit(link["href"]).query)["token"][0]
            page = self._search({**body, "token": token})
        if len(page.get("features") or []) != PAGE_SIZE:
            raise RuntimeError("page 50 is not full")


# --- runs and the table ------------------------------------------------------------------------------------


@dataclass
class Options:
    seconds: float
    operations: int
    walks: int


Results = dict[tuple[str, str, int], Stats]


def run_in_turns(targets: dict[str, Any], options: Options, results: Results, failures: list[str]) -> None:
    """Every query at each concurrency, the modes in turns (``measure_in_turns``); a mode whose requests fail is
    reported in ``failures`` and left out of that cell."""
    for query in QUERIES:
        operations = {mode: target.operation(query) for mode, target in targets.items()}
        for clients in CONCURRENCY:
            measured, failed = measure_in_turns(
                operations,
                concurrency=clients,
                max_operations=options.walks if query == "page 50" else options.operations,
                max_seconds=options.seconds,
                warmup=1 if query == "page 50" else 3,
            )
            for mode in operations:
                if mode in failed:
                    failures.append(f"{mode} {query} at {clients} client(s): {failed[mode][:300]}")
                    print(f"    {mode:<16} {query:<14} c={clients}  FAILED: {failed[mode][:300]}", flush=True)
                    continue
                stats = results[(mode, query, clients)] = measured[mode]
                print(
                    f"    {mode:<16} {query:<14} c={clients}  p50 {stats.p50 * 1e3:9.2f} ms  "
                    f"p95 {stats.p95 * 1e3:9.2f} ms  {stats.rate:8.1f}/s  (n={len(stats.latencies)})",
                    flush=True,
                )


def _ms(stats: Stats | None) -> str:
    return f"{stats.p50 * 1e3:8.1f} {stats.p95 * 1e3:8.1f}" if stats else f"{'-':>8} {'-':>8}"


def _ratio(numerator: float | None, denominator: float | None) -> str:
    if not numerator or not denominator:
        return "     -"
    return f"{numerator / denominator:6.2f}x"


def format_table(title: str, results: Results) -> str:
    """Latency and throughput of every query and mode, then the ratios, as text."""
    lines = ["", title]
    header = f"{'query':<14} {'mode':<16}"
    for clients in CONCURRENCY:
        header += f" | c={clients}: {'p50 ms':>8} {'p95 ms':>8} {'req/s':>8}"
    lines += [header, "-" * len(header)]
    for query in QUERIES:
        for mode in MODES:
            line = f"{query:<14} {mode:<16}"
            for clients in CONCURRENCY:
                stats = results.get((mode, query, clients))
                per_second = f"{stats.rate:8.1f}" if stats else f"{'-':>8}"
                line += f" |      {_ms(stats)} {per_second}"
            lines.append(line)
    lines.append("  (page 50: one operation = 50 sequential pages of 10; req/s there = walks/s)")

    def p50(mode: str, query: str, clients: int = 1) -> float | None:
        stats = results.get((mode, query, clients))
        return stats.p50 if stats else None

    def rate(mode: str, query: str, clients: int) -> float | None:
        stats = results.get((mode, query, clients))
        return stats.rate if stats else None

    lines += [
        "",
        "ratios (p50 at 1 client unless said)",
        f"{'query':<14} {'embedded API/DuckDB':>20} {'pgstac API/search()':>20} {'pgstac/embedded API':>20}"
        f" {'req/s emb/pgstac c=8':>21}",
    ]
    for query in QUERIES:
        lines.append(
            f"{query:<14} {_ratio(p50('embedded API', query), p50('DuckDB', query)):>20}"
            f" {_ratio(p50('pgstac API', query), p50('pgstac search()', query)):>20}"
            f" {_ratio(p50('pgstac API', query), p50('embedded API', query)):>20}"
            f" {_ratio(rate('embedded API', query, 8), rate('pgstac API', query, 8)):>21}"
        )
    lines.append(
        "id lookup, embedded vs pgstac: API p50 "
        f"{_ratio(p50('pgstac API', 'id lookup'), p50('embedded API', 'id lookup')).strip()} "
        "(pgstac/embedded), engines "
        f"{_ratio(p50('pgstac search()', 'id lookup'), p50('DuckDB', 'id lookup')).strip()} (pgstac/DuckDB)"
    )
    return "\n".join(lines)


def rows_of(n: int, results: Results) -> list[Row]:
    """Per query: embedded API vs DuckDB in-process (API overhead <= 1.3x) and vs the pgstac API (at 1M items
    at most 0.5x its latency; item by id never slower), p50 at 1 client."""
    rows = []
    for query in QUERIES:
        api, engine, pgstac = (results.get((mode, query, 1)) for mode in ("embedded API", "DuckDB", "pgstac API"))
        if api is None:
            continue
        figure = f"{n:,} items, {query}: embedded API p50"
        if engine is not None:
            rows.append(
                Row(
                    SECTION,
                    figure,
                    api.p50 * 1e3,
                    "ms",
                    "DuckDB in-process",
                    engine.p50 * 1e3,
                    Target(1.3),
                    note="API overhead" + ("; the API reads the static item" if query == "id lookup" else ""),
                )
            )
        if pgstac is not None:
            target = Target(1.0) if query == "id lookup" else Target(0.5) if n >= 1_000_000 else None
            rows.append(Row(SECTION, figure, api.p50 * 1e3, "ms", "pgstac API", pgstac.p50 * 1e3, target))
        busy, other = results.get(("embedded API", query, 8)), results.get(("pgstac API", query, 8))
        if busy is not None and other is not None:
            rows.append(
                Row(
                    SECTION,
                    f"{n:,} items, {query}: embedded API req/s at 8 clients",
                    busy.rate,
                    "req/s",
                    "pgstac API",
                    other.rate,
                )
            )
    return rows


def points_of(n: int, results: Results) -> list[Point]:
    """p50 at 1 client of both APIs, per query, for the search-scale plot."""
    return [
        Point("search-scale", f"{mode}: {query}", n, stats.p50 * 1e3)
        for (mode, query, clients), stats in results.items()
        if clients == 1 and mode in ("embedded API", "pgstac API")
    ]


def parse_size(text: str) -> int:
    text = text.strip().lower().replace("_", "")
    factor = {"k": 1_000, "m": 1_000_000}.get(text[-1:], 1)
    return int(float(text[:-1] if factor > 1 else text) * factor)


def bench_size(n: int, work: Path, options: Options, with_pgstac: bool, failures: list[str]) -> Results:
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    print(f"\n=== {n:,} items === (load average {load} on {os.cpu_count()} CPUs)", flush=True)
    started = time.perf_counter()
    ids = Ids.of(n)
    # static items for the ids the lookups ask for (numbers below the operation limit, warm-ups, 8 clients' overrun)
    static = {ids(number) for number in range(options.operations + 16)}
    publication: SyntheticPublication = write_publication(work / f"public-{n}", n, static)
    print(
        f"  stac-geoparquet: {publication.items:,} items, {publication.glaciers:,} glaciers x {publication.months} "
        f"months, {publication.row_groups} row groups, {publication.bytes / 1e6:.1f} MB, "
        f"written in {time.perf_counter() - started:.1f} s",
        flush=True,
    )
    results: Results = {}
    with contextlib.ExitStack() as stack:
        base = stack.enter_context(
            serve({"NCDC_STAC_ROOT": str(publication.root), "NCDC_STAC_BACKEND": "duckdb", **SLOW_OK})
        )
        targets: dict[str, Any] = {"embedded API": HttpMode(base, ids), "DuckDB": DuckDBMode(publication.root, ids)}
        for target in targets.values():
            stack.callback(target.close)
        where = "resident in DuckDB's memory" if targets["DuckDB"].entry.resident else "read from items.parquet"
        print(f"  embedded backend: the items are {where} (NCDC_STAC_DUCKDB_RESIDENT_ITEMS)", flush=True)
        if with_pgstac:
            targets.update(pgstac_targets(publication, ids, stack))
        print(f"  measuring in turns: {', '.join(targets)}", flush=True)
        run_in_turns(targets, options, results, failures)
    return results


def pgstac_targets(publication: SyntheticPublication, ids: Ids, stack: contextlib.ExitStack) -> dict[str, Any]:
    """The pgstac API and pgstac's ``search()`` over a throwaway cluster loaded with ``publish.ingest`` and then
    vacuumed and analyzed (as after any bulk load), kept up by ``stack``; none when PostgreSQL is missing."""
    from publish.ingest import ingest

    try:
        from tests.pgstac_cluster import pgstac_cluster

        dsn = stack.enter_context(pgstac_cluster())
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as err:  # tests.conftest.require() skips (pytest's Skipped) when PostgreSQL is missing
        print(f"  pgstac skipped: {err!r}", flush=True)
        return {}
    try:
        import psycopg

        started = time.perf_counter()
        summary = ingest(publication.root, dsn)
        loaded = time.perf_counter()
        with psycopg.connect(dsn, autocommit=True) as connection:
            connection.execute("VACUUM (ANALYZE)")
        print(
            f"  pgstac: loaded {summary.items:,} items in {loaded - started:.1f} s, VACUUM (ANALYZE) in "
            f"{time.perf_counter() - loaded:.1f} s",
            flush=True,
        )
        env = {"NCDC_STAC_ROOT": str(publication.root), "NCDC_STAC_BACKEND": "pgstac", "NCDC_STAC_DSN": dsn}
        base = stack.enter_context(serve({**env, **SLOW_OK}))
    except Exception as err:
        print(f"  pgstac failed: {err!r}", flush=True)
        return {}
    targets: dict[str, Any] = {"pgstac API": HttpMode(base, ids), "pgstac search()": PgstacMode(dsn, ids)}
    for target in targets.values():
        stack.callback(target.close)
    return targets


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10k", help="comma-separated item counts, e.g. 10k,100k,1m (default 10k)")
    parser.add_argument("--seconds", type=float, default=5.0, help="time limit of each measurement (default 5)")
    parser.add_argument("--operations", type=int, default=400, help="operation limit of each measurement")
    parser.add_argument("--walks", type=int, default=20, help="operation limit of each 'page 50' measurement")
    parser.add_argument("--no-pgstac", action="store_true", help="embedded API and DuckDB only")
    parser.add_argument("--keep", type=Path, help="write the publications here and keep them")
    add_results_option(parser)
    args = parser.parse_args(argv)
    options = Options(seconds=args.seconds, operations=args.operations, walks=args.walks)
    sizes = [parse_size(s) for s in args.sizes.split(",") if s.strip()]
    work = args.keep or Path(tempfile.mkdtemp(prefix="ncdc-bench-search-"))
    work.mkdir(parents=True, exist_ok=True)
    print(
        f"search benchmark: sizes {', '.join(f'{s:,}' for s in sizes)}; each cell at most {options.operations} ops "
        f"({options.walks} walks for page 50) or {options.seconds:g} s; {os.cpu_count()} CPUs"
    )
    rows: list[Row] = []
    points: list[Point] = []
    details: dict[str, str] = {}
    failures: list[str] = []
    try:
        for n in sizes:
            results = bench_size(n, work, options, not args.no_pgstac, failures)
            load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
            title = f"Search: {n:,} items - latency per operation and throughput (load average now {load})"
            details[title] = format_table(title, results).strip()
            print("\n" + details[title], flush=True)
            rows += rows_of(n, results)
            points += points_of(n, results)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    notes = [f"search: failed, left out: {failure}" for failure in failures]
    if max(sizes) < 1_000_000 or args.no_pgstac:
        notes.append(
            "search: embedded vs pgstac at 1M items (target <= 0.5x) not measured: run with --sizes ...,1m "
            "(make bench BENCH_SEARCH_SIZES=10k,100k,1m); loading 1M items into pgstac takes tens of minutes here"
        )
    if not any(row.reference == "pgstac API" for row in rows):
        notes.append("search: pgstac not measured (no PostgreSQL 15 + PostGIS, or --no-pgstac)")
    print_rows(rows, "Search (p50 at 1 client unless said)")
    record(args.results, rows, points, details, notes)


if __name__ == "__main__":
    main()
