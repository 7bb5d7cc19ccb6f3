"""Publishing a collection: plan the items, convert what changed in parallel, write the catalog.

Layout under the publication root::

    catalog.json
    <collection-id>/collection.json
    <collection-id>/items.parquet            stac-geoparquet, asset hrefs relative to the root
    <collection-id>/<item-id>/<item-id>.json  static STAC item, asset hrefs relative to itself
    <collection-id>/<item-id>/<asset>.tif | .parquet | .fgb, thumbnail.png

The root is a folder or ``s3://bucket/prefix`` (:mod:`ncdc_stac.storage`). In a folder every file is
written to a temporary sibling and renamed, so readers never see half a file. In object storage each
item is built in a scratch folder of the process that converts it, which uploads the item's data files
itself (one PUT is atomic); the documents follow in reading order: the item documents, items.parquet,
collection.json and catalog.json last, so a reader never finds an item whose files are missing.
Documents are written only when their bytes changed. A state file per collection remembers the
fingerprint of each item's inputs: an unchanged input is not converted again, and a run interrupted
midway is completed by the next one.

Where the per-file work runs: a local pool of forked processes (``workers``), or the workers of a Dask
cluster (``scheduler="tcp://host:port"``, through ``distributed.Client.get_executor``). Dask workers
do not share the client's disk, so they must reach both the input files at the client's paths (a shared
filesystem) and the root: either ``s3://`` (each worker uploads the files of the items it converts) or
a folder mounted at the same path on the client and every worker (a shared filesystem).

Memory on the client does not grow with the number of files: the units are planned into a SQLite ledger
in a temporary folder (the listing of the inputs, of the published objects, the previous state), at
most a few tasks per worker are in flight, finished item documents go into the ledger, and the item
documents, items.parquet (stac-geoparquet, parsed :data:`PARSE_CHUNK` items at a time) and the item
links of collection.json are streamed from it.
"""

from __future__ import annotations

import filecmp
import gc
import hashlib
import json
import multiprocessing
import os
import pickle
import posixpath
import sqlite3
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import (
    FIRST_COMPLETED,
    Executor,
    Future,
    ProcessPoolExecutor,
    ThreadPoolExecutor,
    as_completed,
    wait,
)
from contextlib import closing, contextmanager
from dataclasses import asdict, dataclass, field
from functools import partial
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pyarrow as pa
import pyarrow.parquet as pq
import pystac
import rasterio
import stac_geoparquet.arrow

from catalog.collection import create_collection
from catalog.items import GEOPARQUET, AssetSpec, ItemTime, add_thumbnail, create_raster_item, create_vector_item
from catalog.record import Record, load_record
from ncdc_stac.storage import Root, S3Root, open_root
from publish import raster, vector
from publish.recipe import Recipe, RecipeError, Rule, band_date, load_recipe, period_bounds, recipe_path_for
from publish.storage import dumps_json

if TYPE_CHECKING:
    from ncdc_stac.settings import Settings

STATE_FILE = ".publish-state.ndjson"
"""Per collection: one ``{"id": ..., "fingerprint": ...}`` line per published item, sorted by id."""
ITEMS_PARQUET = "items.parquet"
PARSE_CHUNK = 128
"""Items parsed from JSON into Arrow at a time when writing items.parquet (the client's Python objects)."""
COLLECT_EVERY = 100
"""Items between two garbage collections on the client (pystac items are reference cycles)."""
ROW_GROUP = 16_384
"""Items per row group of items.parquet (gathered as Arrow batches): the unit a search's filters skip."""
ID_BLOOM_FPP = 0.01
"""False-positive rate of the per-row-group Bloom filter on ``id`` (an id lookup reads ~1 row group)."""
ITEMS_COMPRESSION = "zstd"
GEOMETRY_COMPRESSION = "lz4"
"""Codec of items.parquet's ``geometry``: coordinates barely compress (zstd saves ~17%) and every spatial filter
decodes them, so they get the codec that decompresses fastest; every other column gets :data:`ITEMS_COMPRESSION`."""
TASKS_PER_WORKER = 4
"""Tasks in flight per worker: enough to keep every worker busy, few enough to bound the client's memory."""
SYNTHETIC_MARK = "SYNTHETIC SAMPLE DATA"
"""First words of the README.txt that ``ncdc-stac samples`` writes beside generated data."""
SIDECARS = {".shx", ".dbf", ".prj", ".cpg", ".qix", ".sbn", ".sbx", ".hdr", ".xml", ".aux", ".ovr", ".txt", ".md"}
ITEM_MEDIA_TYPE = "application/geo+json"

T = TypeVar("T")
FileStat = tuple[str, int, int]
"""A file's name, size and modification time (ns)."""


@dataclass(frozen=True)
class Unit:
    """One item to publish: a source file (one band of it, for time series) under a rule."""

    item_id: str
    source: Path
    relative: str
    rule: Rule
    band: int | None
    time: ItemTime
    band_name: str | None = None

    def fingerprint(self, context: Any, siblings: list[FileStat]) -> str:
        """Changes whenever the inputs (the source and its same-named ``siblings``), the rule, the context
        (access terms) or the publisher's version change."""
        payload = [self.relative, self.band, siblings, self.rule.model_dump(mode="json"), context, version("ncdc-stac")]
        return hashlib.sha256(json.dumps(payload, default=str).encode()).hexdigest()


@dataclass
class Summary:
    """What a run did."""

    collection_id: str
    files: int = 0
    items: int = 0
    converted: int = 0
    unchanged: int = 0
    removed: int = 0
    written_files: int = 0
    bytes: int = 0
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)


def _units_of(path: Path, relative: str, rule: Rule, recipe: Recipe, interval: tuple[Any, Any]) -> Iterator[Unit]:
    if rule.datetime == "bands":
        with rasterio.open(path) as src:
            names = rule.band_names or list(src.descriptions)
        for band, name in enumerate(names, start=1):
            moment = band_date(name or "", recipe.zone, f"{path} band {band}")
            label = moment.astimezone(recipe.zone).strftime("%Y-%m-%d")
            item_id = rule.item_id_for(relative, band=label)
            yield Unit(item_id, path, relative, rule, band, ItemTime(moment), band_name=name or label)
        return
    if rule.datetime == "name":
        start, end = period_bounds(rule.groups(relative), rule.period, recipe.zone, str(path))
        yield Unit(rule.item_id_for(relative), path, relative, rule, None, ItemTime(start, end))
        return
    if interval[0] is None:
        raise RecipeError(str(path), "the record has no start time and the rule takes the collection's dates")
    yield Unit(rule.item_id_for(relative), path, relative, rule, None, ItemTime(interval[0], interval[1]))


def _kind(unit: Unit) -> str:
    if unit.rule.kind:
        return unit.rule.kind
    return "vector" if unit.source.suffix.lower() in (".shp", ".kml", ".gpkg", ".geojson", ".fgb") else "raster"


@dataclass(frozen=True)
class Context:
    """What every item of the collection shares: access terms and common properties."""

    auth_schemes: dict[str, Any]
    properties: dict[str, Any]


def build_item(unit: Unit, item_dir: Path, context: Context) -> dict[str, Any]:
    """Convert one unit's data and describe it as an Item (runs in a worker process)."""
    rule = unit.rule
    spec = AssetSpec(
        key=rule.asset,
        title=rule.title,
        description=rule.description,
        unit=rule.unit,
        roles=rule.roles,
        band_names=[unit.band_name] if unit.band_name else rule.band_names,
        auth_schemes=context.auth_schemes,
    )
    properties = {**rule.properties, **context.properties, "ncdc:source_file": unit.relative}
    thumb = item_dir / "thumbnail.png"
    if _kind(unit) == "raster":
        cog = item_dir / f"{rule.asset}.tif"
        raster.to_cog(unit.source, cog, unit.band)
        raster.thumbnail(cog, thumb, rule.render)
        item = create_raster_item(unit.item_id, cog, unit.time, spec, properties)
    else:
        frame = vector.read_vector(unit.source)
        parquet, fgb = item_dir / f"{rule.asset}.parquet", item_dir / f"{rule.asset}.fgb"
        frame = vector.write_geoparquet(frame, parquet)
        vector.write_flatgeobuf(frame, fgb)
        vector.thumbnail(frame, thumb, rule.render)
        item = create_vector_item(
            unit.item_id, parquet, fgb, vector.facts(frame, rule.columns), unit.time, spec, properties
        )
    add_thumbnail(item, thumb)
    return item.to_dict(include_self_link=False, transform_hrefs=False)


class Ledger:
    """The client's per-item bookkeeping of one run, in a SQLite file (memory does not grow with the items)."""

    SCHEMA = """
        CREATE TABLE inputs (relative TEXT PRIMARY KEY, size INTEGER, mtime INTEGER) WITHOUT ROWID;
        CREATE TABLE units (item_id TEXT PRIMARY KEY, relative TEXT, fingerprint TEXT, unit BLOB, todo INTEGER);
        CREATE TABLE state (item_id TEXT PRIMARY KEY, fingerprint TEXT) WITHOUT ROWID;
        CREATE TABLE listed (key TEXT PRIMARY KEY, size INTEGER, e_tag TEXT) WITHOUT ROWID;
        CREATE TABLE published (item_id TEXT PRIMARY KEY) WITHOUT ROWID;
        CREATE TABLE built (item_id TEXT PRIMARY KEY, document TEXT) WITHOUT ROWID;
        CREATE TABLE emitted (item_id TEXT PRIMARY KEY, sort_key TEXT, row TEXT) WITHOUT ROWID;
    """

    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(path, isolation_level=None)  # autocommit; the file is thrown away after the run
        self.db.executescript("PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;" + self.SCHEMA)

    def close(self) -> None:
        self.db.close()

    def rows(self, sql: str, *args: Any) -> Iterator[Any]:
        """The rows of a query, fetched as they are read."""
        return self.db.execute(sql, args)

    def value(self, sql: str, *args: Any) -> Any:
        row = self.db.execute(sql, args).fetchone()
        return None if row is None else row[0]

    def load_inputs(self, files: Iterable[FileStat]) -> None:
        self.db.executemany("INSERT INTO inputs VALUES (?, ?, ?)", files)

    def siblings(self, relative: str) -> list[FileStat]:
        """Name, size and time of the files beside ``relative`` named ``<its stem>.*`` (itself included)."""
        folder, name = posixpath.split(relative)
        prefix = posixpath.join(folder, Path(name).stem) + "."
        found = self.rows(
            "SELECT relative, size, mtime FROM inputs WHERE relative >= ? AND relative < ? ORDER BY relative",
            prefix,
            prefix[:-1] + "/",
        )
        return [(posixpath.basename(r), size, mtime) for r, size, mtime in found if "/" not in r[len(prefix) :]]

    def add_unit(self, unit: Unit, fingerprint: str, rule_index: int) -> str | None:
        """Record a planned unit; the relative path of the file that already made its item id, if any."""
        blob = pickle.dumps((rule_index, unit.band, unit.time, unit.band_name))
        added = self.db.execute(
            "INSERT OR IGNORE INTO units VALUES (?, ?, ?, ?, 1)", (unit.item_id, unit.relative, fingerprint, blob)
        )
        if added.rowcount:
            return None
        return str(self.value("SELECT relative FROM units WHERE item_id = ?", unit.item_id))

    def units(self, data_dir: Path, recipe: Recipe, todo: bool) -> Iterator[Unit]:
        """The planned units to convert (``todo``) or not, in planning order."""
        for item_id, relative, blob in self.rows(
            "SELECT item_id, relative, unit FROM units WHERE todo = ? ORDER BY rowid", int(todo)
        ):
            rule_index, band, moment, band_name = pickle.loads(blob)
            yield Unit(item_id, data_dir / relative, relative, recipe.rules[rule_index], band, moment, band_name)


def _input_files(folder: Path, base: Path) -> Iterator[FileStat]:
    """Every file below ``folder`` except hidden ones, as (path relative to ``base``, size, time), unsorted."""
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.is_dir():
                yield from _input_files(Path(entry.path), base)
            elif entry.is_file() and not entry.name.startswith("."):
                stat = entry.stat()
                yield Path(entry.path).relative_to(base).as_posix(), stat.st_size, stat.st_mtime_ns


def plan(ledger: Ledger, record: Record, data_dir: Path, recipe: Recipe, context: Any) -> tuple[list[str], int]:
    """Plan the units into ``ledger``; the errors found while planning, and the number of data files seen."""
    errors: list[str] = []
    files = 0
    interval = (record.ds_acq_start_time, record.ds_acq_end_time)
    rule_index = {id(rule): index for index, rule in enumerate(recipe.rules)}
    ledger.load_inputs(_input_files(data_dir, data_dir))
    for (relative,) in ledger.rows("SELECT relative FROM inputs ORDER BY relative"):
        path = data_dir / relative
        rule = recipe.rule_for(relative)
        if rule is None:
            if path.suffix.lower() not in SIDECARS:
                errors.append(f"{path}: matches no rule of the recipe; not published")
            continue
        files += 1
        try:
            units = list(_units_of(path, relative, rule, recipe, interval))
        except (RecipeError, rasterio.errors.RasterioError) as err:
            errors.append(str(err) if isinstance(err, RecipeError) else f"{path}: {err}")
            continue
        siblings = ledger.siblings(relative)
        for unit in units:
            first = ledger.add_unit(unit, unit.fingerprint(context, siblings), rule_index[id(rule)])
            if first is not None:
                errors.append(f"{unit.source}: item id {unit.item_id!r} also made from {first}")
    return errors, files


@dataclass(frozen=True)
class Destination:
    """Where the process converting a unit puts the item's files: a folder (shared with the client), or
    ``s3://...`` (reached with ``settings``, which then travel to the workers)."""

    root: str
    collection_id: str
    settings: Settings | None = None


def publish_unit(unit: Unit, context: Context, destination: Destination) -> dict[str, Any]:
    """Convert one unit into its item folder under the destination; its Item (runs in a worker)."""
    if not destination.root.startswith("s3://"):
        return build_item(unit, Path(destination.root) / destination.collection_id / unit.item_id, context)
    target = open_root(destination.root, destination.settings)
    with tempfile.TemporaryDirectory(prefix="ncdc-stac-item-") as scratch:
        item_dir = Path(scratch) / unit.item_id
        item = build_item(unit, item_dir, context)
        for file in sorted(item_dir.iterdir()):
            target.upload(f"{destination.collection_id}/{unit.item_id}/{file.name}", file)
    return item


@contextmanager
def _executor(workers: int, scheduler: str | None, fork: bool) -> Iterator[tuple[Executor | None, int]]:
    """Where units are converted, and how many at once: a Dask cluster, a process pool, or here (None).

    ``fork``: the pool's processes are forked (they inherit the imports); not when they reach object storage,
    since obstore's runtime, already started here, does not survive a fork.
    """
    if scheduler:
        from distributed import Client

        with Client(scheduler, set_as_default=False) as client:  # type: ignore[no-untyped-call]
            yield client.get_executor(pure=False), max(1, sum(client.nthreads().values()))
        return
    if workers <= 1:
        yield None, 1
        return
    context = multiprocessing.get_context("fork" if fork else "spawn")  # no GDAL dataset is open here
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        yield pool, workers


def _run(
    units: Iterable[Unit], task: Callable[[Unit], T], executor: Executor | None, window: int
) -> Iterator[tuple[Unit, Callable[[], T]]]:
    """Each unit with the result of ``task`` on it, as they finish; at most ``window`` tasks in flight."""
    if executor is None:
        for unit in units:
            yield unit, partial(task, unit)
        return
    pending: dict[Future[T], Unit] = {}
    for unit in units:
        pending[executor.submit(task, unit)] = unit
        while len(pending) >= window:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                yield pending.pop(future), future.result
    for future in as_completed(list(pending)):
        yield pending.pop(future), future.result


def _outcome(unit: Unit, result: Callable[[], dict[str, Any]]) -> dict[str, Any] | str:
    """The built item, or the error message naming the unit's file."""
    try:
        return result()
    except (raster.RasterError, vector.VectorError, RecipeError) as err:
        return str(err)
    except Exception as err:
        return f"{unit.source}: {type(err).__name__}: {err}"


def _ordered(pool: Executor, task: Callable[[T], Any], values: Iterable[T], window: int) -> Iterator[Any]:
    """``task`` on each value in ``pool``, results in the order of the values, at most ``window`` in flight."""
    queue: deque[Future[Any]] = deque()
    for value in values:
        queue.append(pool.submit(task, value))
        if len(queue) >= window:
            yield queue.popleft().result()
    while queue:
        yield queue.popleft().result()


def _item_key(collection_id: str, item_id: str) -> str:
    return f"{collection_id}/{item_id}/{item_id}.json"


def _listing(target: Root, prefix: str) -> Iterator[tuple[str, int, str | None]]:
    """Key, size and ETag of every object below the folder ``prefix``, streamed (one listing in object storage)."""
    if isinstance(target, S3Root):
        import obstore

        for batch in obstore.list(target.store, prefix.rstrip("/") + "/", chunk_size=1000):
            for meta in batch:
                yield meta["path"], meta["size"], meta.get("e_tag")
        return
    assert target.local is not None
    if (target.local / prefix).is_dir():
        for key, size, _ in _input_files(target.local / prefix, target.local):
            yield key, size, None


def _list_published(ledger: Ledger, target: Root, collection_id: str) -> None:
    """The collection's objects and published item ids into the ledger."""

    def rows() -> Iterator[tuple[str, int, str | None]]:
        for key, size, e_tag in _listing(target, collection_id):
            parts = key.split("/")
            if len(parts) == 3 and parts[2] == f"{parts[1]}.json":
                ledger.db.execute("INSERT INTO published VALUES (?)", (parts[1],))
            yield key, size, e_tag

    ledger.db.executemany("INSERT INTO listed VALUES (?, ?, ?)", rows())


def _fetch(target: Root, key: str, scratch: Path) -> Path | None:
    """A local copy of the object ``key`` (the file itself in a folder root); None when absent."""
    if target.local is not None:
        path = target.local / key
        return path if path.is_file() else None
    import obstore

    assert isinstance(target, S3Root)
    try:
        result = obstore.get(target.store, key)
    except FileNotFoundError:
        return None
    copy = scratch / posixpath.basename(key)
    with copy.open("wb") as out:
        for chunk in result.stream():
            out.write(chunk)
    return copy


def _put_file(target: Root, key: str, file: Path) -> bool:
    """Upload ``file`` to ``key`` atomically unless the object holds the same bytes; whether it wrote."""
    if target.local is not None:
        current = target.local / key
        if current.is_file() and filecmp.cmp(file, current, shallow=False):
            return False
    elif isinstance(target, S3Root):
        import obstore

        try:
            meta = obstore.head(target.store, key)
        except FileNotFoundError:
            meta = None
        if meta is not None and meta["size"] == file.stat().st_size:
            with file.open("rb") as handle:
                md5 = hashlib.file_digest(handle, "md5").hexdigest()
            if meta.get("e_tag") == f'"{md5}"':
                return False
    target.upload(key, file)
    return True


def publish_collection(
    record_path: Path,
    data_dir: Path,
    root: Root | Path | str,
    recipe_path: Path | None = None,
    workers: int | None = None,
    prune: bool = False,
    on_planned: Callable[[int], None] = lambda total: None,
    on_done: Callable[[str], None] = lambda item_id: None,
    settings: Settings | None = None,
    scheduler: str | None = None,
) -> Summary:
    """Publish one record's data files under ``root`` (a folder or ``s3://bucket/prefix``, reached with
    ``settings``), converting on ``workers`` local processes or on the Dask cluster of ``scheduler``
    (``tcp://host:port``); returns what was done (errors included)."""
    started = time.monotonic()
    target = open_root(root, settings)
    record = load_record(record_path)
    recipe = load_recipe(recipe_path or recipe_path_for(record_path))
    collection = create_collection(record, recipe.collection_id)
    synthetic = _is_synthetic(data_dir)
    if synthetic:
        collection.title = f"[SYNTHETIC SAMPLE] {collection.title}"
        collection.extra_fields["ncdc:synthetic_sample"] = True
    context = Context(
        collection.extra_fields.get("auth:schemes", {}), {"ncdc:synthetic_sample": True} if synthetic else {}
    )
    summary = Summary(collection.id)
    state_key = f"{collection.id}/{STATE_FILE}"
    with (
        tempfile.TemporaryDirectory(prefix="ncdc-stac-publish-") as folder,
        closing(Ledger(Path(folder) / "ledger.sqlite")) as ledger,
    ):
        scratch = Path(folder)
        _load_state(ledger, _fetch(target, state_key, scratch))
        _list_published(ledger, target, collection.id)
        summary.errors, summary.files = plan(ledger, record, data_dir, recipe, asdict(context))
        ledger.db.execute(
            "UPDATE units SET todo = (item_id NOT IN (SELECT item_id FROM published) OR fingerprint IS NOT"
            " (SELECT fingerprint FROM state WHERE state.item_id = units.item_id))"
        )
        on_planned(ledger.value("SELECT count(*) FROM units"))
        for unit in ledger.units(data_dir, recipe, todo=False):
            summary.unchanged += 1
            on_done(unit.item_id)
        if target.local is not None:
            destination = Destination(str(target.local), collection.id)
        else:
            from ncdc_stac.settings import Settings

            destination = Destination(target.url, collection.id, settings or Settings())
        task = partial(publish_unit, context=context, destination=destination)
        units = ledger.units(data_dir, recipe, todo=True)
        _convert(ledger, units, task, workers, scheduler, summary, on_done, local=target.local is not None)
        stale = "SELECT item_id FROM published WHERE item_id NOT IN (SELECT item_id FROM units)"
        for (item_id,) in ledger.db.execute(stale).fetchall() if prune else ():
            target.delete_folder(f"{collection.id}/{item_id}")
            ledger.db.execute("DELETE FROM published WHERE item_id = ?", (item_id,))
            ledger.db.execute("DELETE FROM state WHERE item_id = ?", (item_id,))
            summary.removed += 1
        facts = CollectionFacts()
        summary.written_files += _write_items(ledger, target, collection, facts)
        _finish_collection(collection, facts, recipe, data_dir)
        summary.written_files += _write_geoparquet(ledger, target, scratch, collection)
        summary.written_files += _write_collection(ledger, target, scratch, collection)
        summary.written_files += write_root_catalog(target, {collection.id: collection.title})
        _write_state(ledger, target, scratch / "state.ndjson", state_key)
        summary.items = facts.count
    summary.bytes = sum(size for _, size, _ in _listing(target, collection.id))
    summary.seconds = time.monotonic() - started
    return summary


def _convert(
    ledger: Ledger,
    units: Iterable[Unit],
    task: Callable[[Unit], dict[str, Any]],
    workers: int | None,
    scheduler: str | None,
    summary: Summary,
    on_done: Callable[[str], None],
    local: bool,
) -> None:
    """Run ``task`` on the units, here, on a local process pool or on a Dask cluster; built items into the ledger."""
    todo = ledger.value("SELECT count(*) FROM units WHERE todo")
    processes = 1 if todo <= 1 else workers or os.cpu_count() or 1
    with _executor(processes, scheduler, fork=local) as (executor, slots):
        for unit, result in _run(units, task, executor, TASKS_PER_WORKER * slots):
            outcome = _outcome(unit, result)
            if isinstance(outcome, str):
                summary.errors.append(outcome)
            else:
                ledger.db.execute("INSERT INTO built VALUES (?, ?)", (unit.item_id, json.dumps(outcome)))
                summary.converted += 1
            on_done(unit.item_id)


def _write_state(ledger: Ledger, target: Root, file: Path, key: str) -> None:
    """The fingerprints of the items converted now and those kept from before, one JSON line per item."""
    ledger.db.execute(
        "INSERT OR REPLACE INTO state"
        " SELECT item_id, fingerprint FROM units WHERE item_id IN (SELECT item_id FROM built)"
    )
    with file.open("w", encoding="utf-8") as out:
        for item_id, fingerprint in ledger.rows("SELECT item_id, fingerprint FROM state ORDER BY item_id"):
            out.write(json.dumps({"id": item_id, "fingerprint": fingerprint}) + "\n")
    _put_file(target, key, file)


def _load_state(ledger: Ledger, state: Path | None) -> None:
    """The fingerprints of the previous run into the ledger."""
    if state is None:
        return
    with state.open(encoding="utf-8") as lines:
        entries = (json.loads(line) for line in lines if line.strip())
        ledger.db.executemany(
            "INSERT OR REPLACE INTO state VALUES (?, ?)", ((e["id"], e["fingerprint"]) for e in entries)
        )


def _is_synthetic(data_dir: Path) -> bool:
    readme = data_dir / "README.txt"
    return readme.exists() and readme.read_text(encoding="utf-8", errors="replace").startswith(SYNTHETIC_MARK)


def _as_item(document: dict[str, Any]) -> pystac.Item:
    """An item, detached from where it was read (the catalog links it again)."""
    return pystac.Item.from_dict({**document, "links": []}, migrate=False, preserve_dict=False)


@dataclass
class CollectionFacts:
    """What the collection document takes from its items, gathered one item at a time (in id order)."""

    count: int = 0
    samples: dict[str, pystac.Asset] = field(default_factory=dict)
    """The first asset of each key."""
    thumbnail_item: str | None = None
    """The first item with a thumbnail."""

    def add(self, item: pystac.Item) -> None:
        self.count += 1
        for key, asset in item.assets.items():
            self.samples.setdefault(key, asset)
        if self.thumbnail_item is None and "thumbnail" in item.assets:
            self.thumbnail_item = item.id


def _write_items(ledger: Ledger, target: Root, collection: pystac.Collection, facts: CollectionFacts) -> int:
    """Every item document (links relative, written only when changed), its stac-geoparquet row into the ledger.

    The items are the planned ones converted now or published before, and without ``--prune`` those of
    removed inputs; a document read back must still find its asset files.
    """
    catalog = pystac.Catalog("ncdc", "catalog", catalog_type=pystac.CatalogType.SELF_CONTAINED)
    catalog.add_child(collection)
    base = target.url.rstrip("/")  # stable names in documents
    catalog.normalize_hrefs(base)
    published = ledger.rows(
        "SELECT k.item_id, b.document FROM (SELECT item_id FROM units UNION SELECT item_id FROM published) k"
        " LEFT JOIN built b USING (item_id)"
        " WHERE b.document IS NOT NULL OR k.item_id IN (SELECT item_id FROM published) ORDER BY k.item_id"
    )

    def load(row: tuple[str, str | None]) -> tuple[dict[str, Any], bool]:
        item_id, built = row
        return (
            (json.loads(built), True) if built else (json.loads(target.read(_item_key(collection.id, item_id))), False)
        )

    written = 0
    with ThreadPoolExecutor(max_workers=8) as pool:
        for document, fresh in _ordered(pool, load, published, 32):
            item = _as_item(document)
            item_key = _item_key(collection.id, item.id)
            for asset in item.assets.values():
                name = Path(asset.href).name
                asset.href = f"./{name}"
                key = f"{posixpath.dirname(item_key)}/{name}"
                if not fresh and ledger.value("SELECT 1 FROM listed WHERE key = ?", key) is None:
                    raise FileNotFoundError(f"{target}/{item_key}: asset file {name} of item {item.id} is missing")
            item.set_self_href(f"{base}/{item_key}")  # first: the root's cache of resolved objects keys by it
            collection.add_item(item)
            item.set_parent(collection)  # links in the order root, collection, parent, as published before
            data = dumps_json(item.to_dict(include_self_link=False, transform_hrefs=True))
            e_tag = ledger.value("SELECT e_tag FROM listed WHERE key = ?", item_key)
            if e_tag is None or e_tag != f'"{hashlib.md5(data, usedforsecurity=False).hexdigest()}"':
                written += target.put(item_key, data)
            row = item.to_dict(include_self_link=False, transform_hrefs=False)
            collection.remove_item(item.id)  # and from the root's cache: nothing of the item is kept
            row["links"] = []
            for asset in row["assets"].values():
                asset["href"] = f"{collection.id}/{item.id}/{Path(asset['href']).name}"
            moment = row["properties"].get("datetime") or row["properties"].get("start_datetime") or ""
            ledger.db.execute("INSERT INTO emitted VALUES (?, ?, ?)", (item.id, moment, json.dumps(row)))
            facts.add(item)
            if facts.count % COLLECT_EVERY == 0:
                gc.collect()  # pystac objects refer to each other (links, assets): free them, do not wait for Python
    return written


def _finish_collection(collection: pystac.Collection, facts: CollectionFacts, recipe: Recipe, data_dir: Path) -> None:
    """Item assets and render defaults from the recipe; a thumbnail from the data when the record's is absent."""
    from pystac.extensions.render import Render, RenderExtension

    definitions: dict[str, pystac.ItemAssetDefinition | dict[str, Any]] = {}
    renders: dict[str, Render] = {}
    for rule in recipe.rules:
        sample = facts.samples.get(rule.asset)
        if sample is None:
            continue
        definitions[rule.asset] = pystac.ItemAssetDefinition.create(
            title=rule.title, description=rule.description, media_type=sample.media_type, roles=rule.roles
        )
        if sample.media_type == pystac.MediaType.COG:
            bands = rule.render.bands
            renders[rule.asset] = Render.create(
                assets=[rule.asset],
                title=rule.title,
                rescale=[list(rule.render.rescale)] if rule.render.rescale else None,
                colormap_name=rule.render.colormap,
                nodata=sample.extra_fields.get("bands", [{}])[0].get("nodata"),
                expression=";".join(f"b{band}" for band in bands) if bands else None,  # e.g. "b3": HMA speed
            )
        elif sample.media_type == GEOPARQUET:  # drawn as vector tiles, coloured by the value column
            render = Render.create(
                assets=[rule.asset],
                title=rule.title,
                rescale=[list(rule.render.rescale)] if rule.render.rescale else None,
                colormap_name=rule.render.colormap,
            )
            if rule.render.value_column:
                render.properties["value_column"] = rule.render.value_column
            renders[rule.asset] = render
    if definitions:
        collection.item_assets = definitions
    if renders:
        RenderExtension.ext(collection, add_if_missing=True).apply(renders)
    thumbnail = collection.assets.get("thumbnail")
    if thumbnail and not (data_dir / thumbnail.href).exists():
        if facts.thumbnail_item is None:
            del collection.assets["thumbnail"]
        else:
            thumbnail.href = f"./{facts.thumbnail_item}/thumbnail.png"
            thumbnail.media_type = pystac.MediaType.PNG
            thumbnail.title = "Thumbnail made from the data"


class _StreamedArray(list[Any]):
    """A JSON array whose members are read while it is written (``json``'s indenting encoder iterates lists)."""

    def __init__(self, members: Callable[[], Iterator[Any]], length: int) -> None:
        super().__init__()
        self.members, self.length = members, length

    def __iter__(self) -> Iterator[Any]:
        return self.members()

    def __len__(self) -> int:
        return self.length


def _write_collection(ledger: Ledger, target: Root, scratch: Path, collection: pystac.Collection) -> int:
    """collection.json, its item links streamed from the ledger (before the parent link, as pystac orders them)."""
    document = collection.to_dict(include_self_link=False, transform_hrefs=True)
    links = document["links"]
    at = next((i for i, link in enumerate(links) if link["rel"] == "parent"), len(links))

    def members() -> Iterator[dict[str, Any]]:
        yield from links[:at]
        for (item_id,) in ledger.rows("SELECT item_id FROM emitted ORDER BY item_id"):
            yield {"rel": "item", "href": f"./{item_id}/{item_id}.json", "type": ITEM_MEDIA_TYPE}
        yield from links[at:]

    document["links"] = _StreamedArray(members, len(links) + ledger.value("SELECT count(*) FROM emitted"))
    file = scratch / "collection.json"
    with file.open("w", encoding="utf-8") as out:
        for chunk in json.JSONEncoder(ensure_ascii=False, indent=2).iterencode(document):
            out.write(chunk)
        out.write("\n")
    return _put_file(target, f"{collection.id}/collection.json", file)


def _write_geoparquet(ledger: Ledger, target: Root, scratch: Path, collection: pystac.Collection) -> int:
    """The collection's items as stac-geoparquet, hrefs relative to the root, built in chunks; newest first, in the
    API's default order (datetime descending, then id), so a page of the latest items reads the first row group."""
    if not ledger.value("SELECT count(*) FROM emitted"):
        return 0
    rows = scratch / "items.ndjson"
    with rows.open("w", encoding="utf-8") as out:
        for (row,) in ledger.rows("SELECT row FROM emitted ORDER BY sort_key DESC, item_id"):
            out.write(row + "\n")
    metadata = {collection.id: collection.to_dict(include_self_link=False, transform_hrefs=True)}
    parquet = scratch / ITEMS_PARQUET
    parsed = stac_geoparquet.arrow.parse_stac_ndjson_to_arrow(rows, chunk_size=PARSE_CHUNK)
    write_items_parquet(parsed, parquet, metadata)
    return _put_file(target, f"{collection.id}/{ITEMS_PARQUET}", parquet)


def write_items_parquet(
    batches: pa.RecordBatchReader, path: Path, collections: Mapping[str, Mapping[str, Any]]
) -> None:
    """The items.parquet layout: stac-geoparquet 1.1 (``collections`` in its metadata), zstd (lz4 geometry), row
    groups of :data:`ROW_GROUP` items in the order given (newest first) and a Bloom filter on ``id``."""
    stac_geoparquet.arrow.to_parquet(
        pa.RecordBatchReader.from_batches(batches.schema, _row_groups(batches, ROW_GROUP)),
        path,
        collections=collections,
        compression=_column_codecs(batches.schema),
        bloom_filter_options={"id": {"ndv": ROW_GROUP, "fpp": ID_BLOOM_FPP}},
    )


def _column_codecs(schema: pa.Schema) -> dict[str, str]:
    """Parquet column path -> codec of items.parquet (see :data:`GEOMETRY_COMPRESSION`)."""
    buffer = pa.BufferOutputStream()
    pq.write_metadata(schema, buffer)
    columns = pq.read_metadata(pa.BufferReader(buffer.getvalue())).schema
    paths = (columns.column(i).path for i in range(len(columns)))
    return {path: GEOMETRY_COMPRESSION if path == "geometry" else ITEMS_COMPRESSION for path in paths}


def _row_groups(batches: Iterable[pa.RecordBatch], rows: int) -> Iterator[pa.RecordBatch]:
    """The batches cut and gathered into batches of ``rows`` rows (one row group each; the last may be smaller)."""
    gathered: list[pa.RecordBatch] = []
    count = 0
    for batch in batches:
        offset = 0
        while offset < batch.num_rows:
            taken = batch.slice(offset, rows - count)
            gathered.append(taken)
            count += taken.num_rows
            offset += taken.num_rows
            if count == rows:
                yield pa.concat_batches(gathered)
                gathered, count = [], 0
    if gathered:
        yield pa.concat_batches(gathered)


def write_root_catalog(root: Root | Path, titles: dict[str, str | None] | None = None) -> int:
    """The root catalog.json, linking every published collection (``titles``: those known already, by id)."""
    catalog = pystac.Catalog(
        id="ncdc",
        title="National Cryosphere Desert Data Center (国家冰川冻土沙漠科学数据中心)",
        description="STAC catalog of the data center's datasets, published by ncdc-stac.",
        catalog_type=pystac.CatalogType.SELF_CONTAINED,
    )
    target = open_root(root)
    known = titles or {}
    for folder in target.collection_folders():
        title = known[folder] if folder in known else json.loads(target.read(f"{folder}/collection.json")).get("title")
        catalog.add_link(pystac.Link("child", f"./{folder}/collection.json", pystac.MediaType.JSON, title))
    return target.put("catalog.json", dumps_json(catalog.to_dict(include_self_link=False)))
