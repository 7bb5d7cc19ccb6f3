"""Publishing: valid COGs, GeoParquet, FlatGeobuf, Items and catalog; idempotence, resume and bad input."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import duckdb
import geopandas as gpd
import numpy as np
import pyarrow.parquet as pq
import pyogrio
import pytest
import rasterio
import stac_geoparquet.arrow
from click.testing import CliRunner
from rio_cogeo.cogeo import cog_validate

from ncdc_stac.cli import main
from publish import pipeline
from publish.pipeline import STATE_FILE, publish_collection
from tests.conftest import REPO, require
from tests.publication import Publication
from tests.stac_schemas import OfflineValidator

GANGRIGAB = REPO / "records" / "gangrigab-velocity.json"


def stac_documents(root: Path) -> list[Path]:
    return [p for p in root.rglob("*.json") if not p.name.startswith(".")]


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def test_every_output_validates_offline(publication: Publication, stac_validator: OfflineValidator) -> None:
    documents = stac_documents(publication.root)
    assert len(documents) > 400, "catalog + 4 collections + all items"
    problems = {str(p): stac_validator.errors(load(p)) for p in documents}
    assert {p: e for p, e in problems.items() if e} == {}
    assert all(not s.errors for s in publication.summaries.values()), publication.summaries


def test_item_counts_and_dates(publication: Publication) -> None:
    counts = {name: summary.items for name, summary in publication.summaries.items()}
    assert counts["gangrigab-velocity"] == 12
    assert counts["cpec-deformation"] == 2
    muli = publication.collection_dir("muli-subsidence")
    with rasterio.open(publication.samples / "muli-subsidence" / "muli_sbas_cumulative.dat") as src:
        dates = list(src.descriptions)
    assert counts["muli-subsidence"] == len(dates) + 1, "one item per band date, plus the mean velocity"
    assert all((muli / f"displacement-{date}" / f"displacement-{date}.json").exists() for date in dates)
    january = load(publication.collection_dir("gangrigab-velocity") / "2023-01" / "2023-01.json")["properties"]
    assert (january["start_datetime"], january["end_datetime"]) == ("2022-12-31T16:00:00Z", "2023-01-31T15:59:59Z")


def test_band_items_carry_their_date(publication: Publication) -> None:
    muli = publication.collection_dir("muli-subsidence")
    item = load(muli / "displacement-2018-01-24" / "displacement-2018-01-24.json")
    assert item["properties"]["datetime"] == "2018-01-23T16:00:00Z", "2018-01-24 China Standard Time"
    assert item["assets"]["displacement"]["bands"][0]["name"] == "2018-01-24"
    assert item["assets"]["displacement"]["bands"][0]["unit"] == "mm"


def test_cogs_are_valid_and_pixels_identical(publication: Publication) -> None:
    pairs = [
        (publication.samples / "gangrigab-velocity" / "202307.tif", 1, "gangrigab-velocity", "2023-07", "velocity"),
        (publication.samples / "hma-glacier-velocity" / "Baltoro" / "Baltoro_201801.tif", 3, None, None, None),
        (publication.samples / "muli-subsidence" / "muli_sbas_cumulative.dat", 40, None, None, None),
    ]
    for source, band, _, _, _ in pairs:
        with rasterio.open(source) as src:
            expected = src.read(band)
            if "Baltoro" in source.name:
                cog = publication.collection_dir("hma-glacier-velocity") / "baltoro-2018-01" / "velocity.tif"
                got_band = band
            elif source.suffix == ".dat":
                date = src.descriptions[band - 1]
                cog = publication.collection_dir("muli-subsidence") / f"displacement-{date}" / "displacement.tif"
                got_band = 1
            else:
                cog = publication.collection_dir("gangrigab-velocity") / "2023-07" / "velocity.tif"
                got_band = 1
            transform, crs, nodata = src.transform, src.crs, src.nodata
        valid, errors, _ = cog_validate(str(cog), quiet=True)
        assert valid, errors
        with rasterio.open(cog) as out:
            assert out.profile["blockxsize"] == 512 and out.profile["compress"].lower() == "deflate"
            assert out.overviews(1) or max(out.shape) <= 512
            assert out.transform == transform and out.crs == crs and out.nodata == nodata
            np.testing.assert_array_equal(out.read(got_band), expected)


def test_checksums_and_sizes_match_files(publication: Publication) -> None:
    collection = publication.collection_dir("hma-glacier-velocity")
    item_path = next(collection.glob("*/*.json"))
    item = load(item_path)
    asset = item["assets"]["velocity"]
    data = (item_path.parent / asset["href"]).read_bytes()
    assert asset["file:size"] == len(data)
    assert asset["file:checksum"] == "1220" + hashlib.sha256(data).hexdigest()
    assert [b["name"] for b in asset["bands"]] == ["vx", "vy", "speed"]
    assert item["properties"]["proj:code"] == "EPSG:4326"
    assert "auth:refs" in asset and item["properties"]["auth:schemes"], "apply-access data assets are restricted"
    assert "auth:refs" not in item["assets"]["thumbnail"]


def test_geoparquet_roundtrips_points_and_chinese(publication: Publication) -> None:
    source = publication.samples / "cpec-deformation" / "T107_DESC" / "PS_T107_DESC.shp"
    expected = pyogrio.read_dataframe(source, encoding="GB18030").sort_values("CODE").reset_index(drop=True)
    item_dir = publication.collection_dir("cpec-deformation") / "ps-track-107-descending"
    parquet = item_dir / "points.parquet"
    got = gpd.read_parquet(parquet).sort_values("CODE").reset_index(drop=True)
    assert got.geometry.geom_equals_exact(expected.geometry, tolerance=0).all()
    assert list(got["REGION"]) == list(expected["REGION"])
    assert any("塔什库尔干" in value or "喀什" in value for value in got["REGION"])
    metadata = pq.ParquetFile(parquet).metadata
    geo = json.loads(metadata.metadata[b"geo"])
    assert geo["version"] == "1.1.0" and "covering" in geo["columns"]["geometry"]
    assert metadata.row_group(0).column(0).compression == "ZSTD"
    item = load(item_dir / "ps-track-107-descending.json")
    columns = {c["name"]: c for c in item["properties"]["table:columns"]}
    assert item["properties"]["table:row_count"] == len(expected)
    assert "cumulative LOS displacement" in columns[next(c for c in columns if c.startswith("D2"))]["description"]
    assert item["properties"]["sat:relative_orbit"] == 107


def test_flatgeobuf_opens_in_gdal_with_spatial_index(publication: Publication) -> None:
    fgb = publication.collection_dir("cpec-deformation") / "ps-track-27-ascending" / "points.fgb"
    info = pyogrio.read_info(fgb)
    assert info["features"] > 1000 and info["crs"] == "EPSG:4326"
    ogrinfo = shutil.which("ogrinfo", path="/usr/bin")
    require(ogrinfo is not None, "Debian's gdal-bin (GDAL 3.6, as QGIS 3.22 uses) is not installed")
    output = subprocess.run([str(ogrinfo), "-so", "-al", str(fgb)], capture_output=True, text=True, check=True).stdout
    assert "Feature Count:" in output and "REGION" in output


def test_stac_geoparquet_holds_every_item(publication: Publication) -> None:
    collection_dir = publication.collection_dir("gangrigab-velocity")
    table = pq.read_table(collection_dir / "items.parquet")
    items = list(stac_geoparquet.arrow.stac_table_to_items(table))
    assert [i["id"] for i in items] == [f"2023-{m:02d}" for m in range(12, 0, -1)], "newest first"
    href = items[0]["assets"]["velocity"]["href"]
    assert href == f"{collection_dir.name}/{items[0]['id']}/velocity.tif", "hrefs relative to the root"
    assert (publication.root / href).exists()


def test_items_parquet_bloom_filter_rules_out_row_groups_by_id(publication: Publication) -> None:
    parquet = publication.collection_dir("gangrigab-velocity") / "items.parquet"
    with duckdb.connect() as connection:
        probe = "SELECT bloom_filter_excludes FROM parquet_bloom_probe(?, 'id', ?)"
        assert connection.execute(probe, [str(parquet), "2023-05"]).fetchall() == [(False,)]
        assert connection.execute(probe, [str(parquet), "1999-01"]).fetchall() == [(True,)], "absent id ruled out"


def test_items_parquet_geometry_is_lz4_and_the_rest_zstd(publication: Publication) -> None:
    metadata = pq.read_metadata(publication.collection_dir("gangrigab-velocity") / "items.parquet")
    group = metadata.row_group(0)
    codecs = {group.column(i).path_in_schema: group.column(i).compression for i in range(group.num_columns)}
    assert codecs.pop("geometry") == "LZ4"
    assert {"id", "assets.velocity.href", "datetime"} <= set(codecs) and set(codecs.values()) == {"ZSTD"}


def test_collection_has_render_item_assets_and_synthetic_label(publication: Publication) -> None:
    collection = load(publication.collection_dir("gangrigab-velocity") / "collection.json")
    assert collection["renders"]["velocity"]["colormap_name"] == "viridis"
    assert collection["renders"]["velocity"]["rescale"] == [[0.0, 1.5]]
    assert collection["item_assets"]["velocity"]["roles"] == ["data"]
    assert collection["title"].startswith("[SYNTHETIC SAMPLE]") and collection["ncdc:synthetic_sample"] is True
    assert (publication.collection_dir("gangrigab-velocity") / collection["assets"]["thumbnail"]["href"]).exists()
    catalog = load(publication.root / "catalog.json")
    assert len([link for link in catalog["links"] if link["rel"] == "child"]) == 4


@pytest.fixture
def gangrigab(tmp_path: Path, publication: Publication) -> tuple[Path, Path]:
    """A private copy of the Gangrigab sample inputs and a fresh publication root."""
    data = tmp_path / "data"
    shutil.copytree(publication.samples / "gangrigab-velocity", data)
    return data, tmp_path / "public"


def snapshot(root: Path) -> dict[str, tuple[int, bytes]]:
    return {str(p.relative_to(root)): (p.stat().st_mtime_ns, p.read_bytes()) for p in root.rglob("*") if p.is_file()}


def test_second_run_writes_nothing(gangrigab: tuple[Path, Path]) -> None:
    data, root = gangrigab
    first = publish_collection(GANGRIGAB, data, root, workers=2)
    assert first.converted == 12 and not first.errors
    before = snapshot(root)
    result = CliRunner().invoke(main, ["publish", str(GANGRIGAB), "--data", str(data), "--root", str(root)])
    assert result.exit_code == 0, result.output
    assert "nothing changed" in result.output
    assert snapshot(root) == before


def test_changed_and_removed_inputs(gangrigab: tuple[Path, Path]) -> None:
    data, root = gangrigab
    publish_collection(GANGRIGAB, data, root, workers=1)
    collection_dir = next(p for p in root.iterdir() if p.is_dir())
    with rasterio.open(data / "202303.tif", "r+") as dst:
        dst.write(dst.read(1) * 2, 1)
    (data / "202312.tif").unlink()
    again = publish_collection(GANGRIGAB, data, root, workers=1)
    assert (again.converted, again.unchanged, again.removed) == (1, 10, 0)
    assert (collection_dir / "2023-12").exists(), "without --prune a removed input keeps its item"
    pruned = publish_collection(GANGRIGAB, data, root, workers=1, prune=True)
    assert (pruned.converted, pruned.removed, pruned.items) == (0, 1, 11)
    assert not (collection_dir / "2023-12").exists()
    assert "2023-12" not in json.dumps(load(collection_dir / "collection.json")["links"])


def test_crash_midway_keeps_previous_publication_and_next_run_completes(
    gangrigab: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    data, root = gangrigab
    publish_collection(GANGRIGAB, data, root, workers=1)
    collection_dir = next(p for p in root.iterdir() if p.is_dir())
    for name in ("202304.tif", "202305.tif"):
        with rasterio.open(data / name, "r+") as dst:
            dst.write(dst.read(1) + 0.5, 1)
    before = snapshot(root)
    real_build = pipeline.build_item
    calls = []

    def crash_on_second(*args: Any, **kwargs: Any) -> dict[str, Any]:
        calls.append(args[0].item_id)
        if len(calls) == 2:
            raise KeyboardInterrupt("simulated crash")
        return real_build(*args, **kwargs)

    monkeypatch.setattr(pipeline, "build_item", crash_on_second)
    with pytest.raises(KeyboardInterrupt):
        publish_collection(GANGRIGAB, data, root, workers=1)
    after = snapshot(root)
    for name in ("collection.json", "items.parquet", STATE_FILE, "2023-05/2023-05.json", "2023-05/velocity.tif"):
        key = f"{collection_dir.name}/{name}"
        assert after[key] == before[key], f"{name} changed by the crashed run"
    assert not list(root.rglob("*.tmp*")), "no temporary file left behind"
    monkeypatch.setattr(pipeline, "build_item", real_build)
    resumed = publish_collection(GANGRIGAB, data, root, workers=1)
    assert resumed.converted == 2 and not resumed.errors
    for month in ("2023-04", "2023-05"):
        asset = load(collection_dir / month / f"{month}.json")["assets"]["velocity"]
        data_bytes = (collection_dir / month / "velocity.tif").read_bytes()
        assert asset["file:checksum"] == "1220" + hashlib.sha256(data_bytes).hexdigest()


def test_bad_inputs_fail_alone(gangrigab: tuple[Path, Path], publication: Publication) -> None:
    data, root = gangrigab
    publish_collection(GANGRIGAB, data, root, workers=1)
    collection_dir = next(p for p in root.iterdir() if p.is_dir())
    july = snapshot(collection_dir / "2023-07")
    (data / "202307.tif").write_bytes(b"II*\x00garbage" * 100)
    (data / "velocity-august.tif").write_bytes((data / "202308.tif").read_bytes())
    result = CliRunner().invoke(main, ["publish", str(GANGRIGAB), "--data", str(data), "--root", str(root)])
    assert result.exit_code == 1
    assert f"{data / '202307.tif'}: cannot read raster" in result.stderr
    assert "velocity-august.tif: file name does not match the recipe's regex" in result.stderr
    assert result.stdout.rstrip().endswith(", 2 error(s) above"), result.stdout
    assert snapshot(collection_dir / "2023-07") == july, "the failed file keeps its previous publication"
    assert len(load(collection_dir / "collection.json")["links"]) >= 12


def test_vector_bad_inputs(tmp_path: Path, publication: Publication) -> None:
    record = REPO / "records" / "cpec-deformation.json"
    data = tmp_path / "data"
    shutil.copytree(publication.samples / "cpec-deformation", data)
    (data / "T107_DESC" / "PS_T107_DESC.prj").unlink()
    (data / "T027_ASC" / "PS_T027_ASC.kml").write_text("<kml><Document><Placemark>", encoding="utf-8")
    summary = publish_collection(record, data, tmp_path / "public", workers=1)
    messages = "\n".join(summary.errors)
    assert "PS_T107_DESC.shp: no coordinate reference system (.prj file missing)" in messages
    assert "PS_T027_ASC.kml: cannot read vector data" in messages
    shutil.copytree(publication.samples / "cpec-deformation", tmp_path / "data2")
    dbf = tmp_path / "data2" / "T107_DESC" / "PS_T107_DESC.dbf"
    dbf.write_bytes(b"\x00" * 10)
    summary = publish_collection(record, tmp_path / "data2", tmp_path / "public2", workers=1)
    assert any("PS_T107_DESC.dbf: cannot read vector data" in e for e in summary.errors), summary.errors
