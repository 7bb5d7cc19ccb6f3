"""Publishing a collection: plan the items, convert what changed in parallel, write the catalog.

Layout under the publication root::

    catalog.json
    <collection-id>/collection.json
    <collection-id>/items.parquet            stac-geoparquet, asset hrefs relative to the root
    <collection-id>/<item-id>/<item-id>.json  static STAC item, asset hrefs relative to itself
    <collection-id>/<item-id>/<asset>.tif | .parquet | .fgb, thumbnail.png

Every file is written to a temporary sibling and renamed, so readers never see half a file. A state
file per collection remembers the fingerprint of each item's inputs: an unchanged input is not
converted again, and a run interrupted midway is completed by the next one.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import shutil
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from functools import partial
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pystac
import rasterio
import stac_geoparquet.arrow

from catalog.collection import create_collection
from catalog.items import AssetSpec, ItemTime, add_thumbnail, create_raster_item, create_vector_item
from catalog.record import Record, load_record
from publish import raster, vector
from publish.recipe import Recipe, RecipeError, Rule, band_date, load_recipe, period_bounds, recipe_path_for
from publish.storage import dumps_json, scratch_sibling, write_bytes_atomic, write_json_atomic

STATE_FILE = ".publish-state.json"
ITEMS_PARQUET = "items.parquet"
SYNTHETIC_MARK = "SYNTHETIC SAMPLE DATA"
"""First words of the README.txt that ``ncdc-stac samples`` writes beside generated data."""
SIDECARS = {".shx", ".dbf", ".prj", ".cpg", ".qix", ".sbn", ".sbx", ".hdr", ".xml", ".aux", ".ovr", ".txt", ".md"}


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

    def fingerprint(self, context: Any = None) -> str:
        """Changes whenever the inputs, the rule, the context (access terms) or the publisher's version change."""
        stats = [
            (p.name, p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(self.source.parent.glob(f"{self.source.stem}.*"))
        ]
        payload = [self.relative, self.band, stats, self.rule.model_dump(mode="json"), context, version("ncdc-stac")]
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


def plan(record: Record, data_dir: Path, recipe: Recipe) -> tuple[list[Unit], list[str], int]:
    """The units to publish, the errors found while planning, and the number of data files seen."""
    units: list[Unit] = []
    errors: list[str] = []
    files = 0
    interval = (record.ds_acq_start_time, record.ds_acq_end_time)
    for path in sorted(p for p in data_dir.rglob("*") if p.is_file() and not p.name.startswith(".")):
        relative = path.relative_to(data_dir).as_posix()
        rule = recipe.rule_for(relative)
        if rule is None:
            if path.suffix.lower() not in SIDECARS:
                errors.append(f"{path}: matches no rule of the recipe; not published")
            continue
        files += 1
        try:
            units += list(_units_of(path, relative, rule, recipe, interval))
        except (RecipeError, rasterio.errors.RasterioError) as err:
            errors.append(str(err) if isinstance(err, RecipeError) else f"{path}: {err}")
    seen: dict[str, str] = {}
    for unit in units:
        if unit.item_id in seen:
            errors.append(f"{unit.source}: item id {unit.item_id!r} also made from {seen[unit.item_id]}")
        seen[unit.item_id] = unit.relative
    return units, errors, files


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


def _run(
    todo: list[Unit], collection_dir: Path, context: Context, workers: int, on_done: Callable[[str], None]
) -> tuple[dict[str, dict[str, Any]], list[str]]:
    built: dict[str, dict[str, Any]] = {}
    errors: list[str] = []
    if workers <= 1 or len(todo) <= 1:
        for unit in todo:
            _collect(unit, partial(build_item, unit, collection_dir / unit.item_id, context), built, errors)
            on_done(unit.item_id)
        return built, errors
    fork = multiprocessing.get_context("fork")  # workers inherit imports; no GDAL dataset is open here
    with ProcessPoolExecutor(max_workers=workers, mp_context=fork) as pool:
        futures: dict[Future[dict[str, Any]], Unit] = {
            pool.submit(build_item, unit, collection_dir / unit.item_id, context): unit for unit in todo
        }
        for future in as_completed(futures):
            unit = futures[future]
            _collect(unit, future.result, built, errors)
            on_done(unit.item_id)
    return built, errors


def _collect(
    unit: Unit, result: Callable[[], dict[str, Any]], built: dict[str, dict[str, Any]], errors: list[str]
) -> None:
    try:
        built[unit.item_id] = result()
    except (raster.RasterError, vector.VectorError, RecipeError) as err:
        errors.append(str(err))
    except Exception as err:
        errors.append(f"{unit.source}: {type(err).__name__}: {err}")


def _item_json(collection_dir: Path, item_id: str) -> Path:
    return collection_dir / item_id / f"{item_id}.json"


def publish_collection(
    record_path: Path,
    data_dir: Path,
    root: Path,
    recipe_path: Path | None = None,
    workers: int | None = None,
    prune: bool = False,
    on_planned: Callable[[int], None] = lambda total: None,
    on_done: Callable[[str], None] = lambda item_id: None,
) -> Summary:
    """Publish one record's data files under ``root``; returns what was done (errors included)."""
    started = time.monotonic()
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
    collection_dir = root / collection.id
    summary = Summary(collection.id)
    units, summary.errors, summary.files = plan(record, data_dir, recipe)
    state_path = collection_dir / STATE_FILE
    state: dict[str, str] = json.loads(state_path.read_text()) if state_path.exists() else {}
    fingerprints = {unit.item_id: unit.fingerprint(asdict(context)) for unit in units}
    todo = [
        u
        for u in units
        if state.get(u.item_id) != fingerprints[u.item_id] or not _item_json(collection_dir, u.item_id).exists()
    ]
    on_planned(len(units))
    for unit in units:
        if unit not in todo:
            on_done(unit.item_id)
    built, errors = _run(todo, collection_dir, context, workers or os.cpu_count() or 1, on_done)
    summary.errors += errors
    summary.converted, summary.unchanged = len(built), len(units) - len(todo)

    keep = {unit.item_id for unit in units}
    previous = {p.parent.name for p in collection_dir.glob("*/*.json") if p.stem == p.parent.name}
    for stale in sorted(previous - keep):
        if prune:
            shutil.rmtree(collection_dir / stale)
            state.pop(stale, None)
            summary.removed += 1
        else:
            keep.add(stale)
    items = [
        _as_item(built[item_id] if item_id in built else json.loads(_item_json(collection_dir, item_id).read_bytes()))
        for item_id in sorted(keep)
        if item_id in built or _item_json(collection_dir, item_id).exists()
    ]
    _finish_collection(collection, items, recipe, data_dir, record)
    summary.written_files += _write_static(root, collection, items)
    summary.written_files += _write_geoparquet(collection_dir, collection, items)
    summary.written_files += write_root_catalog(root)
    state.update({item_id: fingerprints[item_id] for item_id in built})
    write_json_atomic(state_path, dict(sorted(state.items())))
    summary.items = len(items)
    summary.bytes = sum(p.stat().st_size for p in collection_dir.rglob("*") if p.is_file())
    summary.seconds = time.monotonic() - started
    return summary


def _is_synthetic(data_dir: Path) -> bool:
    readme = data_dir / "README.txt"
    return readme.exists() and readme.read_text(encoding="utf-8", errors="replace").startswith(SYNTHETIC_MARK)


def _as_item(document: dict[str, Any]) -> pystac.Item:
    """An item, detached from where it was read (the catalog links it again)."""
    return pystac.Item.from_dict({**document, "links": []}, migrate=False, preserve_dict=False)


def _finish_collection(
    collection: pystac.Collection, items: list[pystac.Item], recipe: Recipe, data_dir: Path, record: Record
) -> None:
    """Item assets and render defaults from the recipe; a thumbnail from the data when the record's is absent."""
    from pystac.extensions.render import Render, RenderExtension

    definitions: dict[str, pystac.ItemAssetDefinition | dict[str, Any]] = {}
    renders: dict[str, Render] = {}
    for rule in recipe.rules:
        if not any(rule.asset in item.assets for item in items):
            continue
        sample = next(item.assets[rule.asset] for item in items if rule.asset in item.assets)
        definitions[rule.asset] = pystac.ItemAssetDefinition.create(
            title=rule.title, description=rule.description, media_type=sample.media_type, roles=rule.roles
        )
        if sample.media_type == pystac.MediaType.COG:
            renders[rule.asset] = Render.create(
                assets=[rule.asset],
                title=rule.title,
                rescale=[list(rule.render.rescale)] if rule.render.rescale else None,
                colormap_name=rule.render.colormap,
                nodata=sample.extra_fields.get("bands", [{}])[0].get("nodata"),
            )
    if definitions:
        collection.item_assets = definitions
    if renders:
        RenderExtension.ext(collection, add_if_missing=True).apply(renders)
    thumbnail = collection.assets.get("thumbnail")
    if thumbnail and not (data_dir / thumbnail.href).exists():
        first = next((item for item in items if "thumbnail" in item.assets), None)
        if first is None:
            del collection.assets["thumbnail"]
        else:
            thumbnail.href = f"./{first.id}/thumbnail.png"
            thumbnail.media_type = pystac.MediaType.PNG
            thumbnail.title = "Thumbnail made from the data"
    collection.add_items(items)


def _write_static(root: Path, collection: pystac.Collection, items: list[pystac.Item]) -> int:
    """collection.json and every item JSON, links relative, written only when changed."""
    catalog = pystac.Catalog("ncdc", "catalog", catalog_type=pystac.CatalogType.SELF_CONTAINED)
    catalog.add_child(collection)
    asset_files = {item.id: {k: a.href for k, a in item.assets.items()} for item in items}
    catalog.normalize_hrefs(str(root))
    written = 0
    for item in items:
        item_dir = Path(item.get_self_href() or "").parent
        for key, href in asset_files[item.id].items():
            name = Path(href).name
            item.assets[key].href = f"./{name}"
            if not (item_dir / name).exists():
                raise FileNotFoundError(f"{item_dir / name}: asset file of item {item.id} is missing")
        document = item.to_dict(include_self_link=False, transform_hrefs=True)
        written += write_json_atomic(Path(item.get_self_href() or ""), document)
    collection_href = Path(collection.get_self_href() or "")
    thumbnail = collection.assets.get("thumbnail")
    if thumbnail and thumbnail.href.startswith("/"):
        thumbnail.href = os.path.relpath(thumbnail.href, collection_href.parent)
    written += write_json_atomic(collection_href, collection.to_dict(include_self_link=False, transform_hrefs=True))
    return written


def _write_geoparquet(collection_dir: Path, collection: pystac.Collection, items: list[pystac.Item]) -> int:
    """The collection's items as stac-geoparquet: sorted by time, 64k-row groups, hrefs relative to the root."""
    if not items:
        return 0
    rows = []
    for item in items:
        row = item.to_dict(include_self_link=False, transform_hrefs=False)
        row["links"] = []
        for asset in row["assets"].values():
            asset["href"] = f"{collection.id}/{item.id}/{Path(asset['href']).name}"
        rows.append(row)
    rows.sort(key=lambda r: (r["properties"].get("start_datetime") or r["properties"].get("datetime") or "", r["id"]))
    target = collection_dir / ITEMS_PARQUET
    metadata = {collection.id: collection.to_dict(include_self_link=False, transform_hrefs=False)}
    with scratch_sibling(target) as tmp:
        stac_geoparquet.arrow.to_parquet(
            stac_geoparquet.arrow.parse_stac_items_to_arrow(rows), tmp, collections=metadata, compression="zstd"
        )
        data = tmp.read_bytes()
    return write_bytes_atomic(target, data)


def write_root_catalog(root: Path) -> int:
    """The root catalog.json, linking every published collection."""
    catalog = pystac.Catalog(
        id="ncdc",
        title="National Cryosphere Desert Data Center (国家冰川冻土沙漠科学数据中心)",
        description="STAC catalog of the data center's datasets, published by ncdc-stac.",
        catalog_type=pystac.CatalogType.SELF_CONTAINED,
    )
    for path in sorted(root.glob("*/collection.json")):
        title = json.loads(path.read_text(encoding="utf-8")).get("title")
        catalog.add_link(pystac.Link("child", f"./{path.parent.name}/collection.json", pystac.MediaType.JSON, title))
    catalog.set_self_href(str(root / "catalog.json"))
    return write_bytes_atomic(root / "catalog.json", dumps_json(catalog.to_dict(include_self_link=False)))
