"""Synthetic sample generator: deterministic, in the records' formats and extents, labelled synthetic."""

from __future__ import annotations

import hashlib
import itertools
import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyogrio
import pytest
import rasterio
from rasterio.warp import transform_bounds

from publish.samples import (
    CPEC_BBOX,
    DATASETS,
    GANGRIGAB_BBOX,
    HMA_BBOX,
    HMA_MONTHS,
    LABEL_EN,
    MULI_BBOX,
    NODATA,
    BBox,
    count_files,
    generate_samples,
)

PLACES = {"喀什", "奥依塔克", "阿克陶", "塔什库尔干", "红其拉甫"}
SMALL_GLACIERS = ("Siachen", "Baltoro")
Mask = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class Run:
    """One small-scale generation and the progress messages it sent."""

    folders: dict[str, Path]
    messages: list[str]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    messages: list[str] = []
    folders = generate_samples(tmp_path_factory.mktemp("samples"), "small", progress=messages.append)
    return Run(folders, messages)


def _files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def _digests(root: Path) -> dict[str, str]:
    return {name: hashlib.sha256((root / name).read_bytes()).hexdigest() for name in _files(root)}


def _inside(bbox: BBox, west: float, south: float, east: float, north: float) -> bool:
    return bbox.west <= west < east <= bbox.east and bbox.south <= south < north <= bbox.north


def _core_and_margin(ice: Mask) -> tuple[Mask, Mask]:
    """Ice pixels at least 4 px inside the outline, and ice pixels on it (window edges don't count)."""

    def eroded(mask: Mask) -> Mask:
        pad = np.pad(mask, 1, mode="edge")
        return mask & pad[:-2, 1:-1] & pad[2:, 1:-1] & pad[1:-1, :-2] & pad[1:-1, 2:]

    core = ice
    for _ in range(4):
        core = eroded(core)
    return core, ice & ~eroded(ice)


def _assert_trunk_faster_than_margins(speed: np.ma.MaskedArray) -> None:
    core, margin = _core_and_margin(~np.ma.getmaskarray(speed))
    assert core.sum() > 50 and margin.sum() > 50
    assert np.median(speed.data[core]) > 2 * np.median(speed.data[margin])


# ------------------------------------------------------------------------------------- all datasets


def test_same_bytes_every_run(run: Run, tmp_path: Path) -> None:
    again = generate_samples(tmp_path, "small")
    for key, folder in run.folders.items():
        assert _digests(folder) == _digests(again[key]), key


def test_files_named_counted_and_reported(run: Run) -> None:
    assert tuple(run.folders) == DATASETS
    assert all(folder.name == key for key, folder in run.folders.items())
    root = run.folders[DATASETS[0]].parent
    files = _files(root)
    assert sorted(run.messages) == files, "one message per file; no .cpg, .aux.xml or .part left behind"
    assert len(files) == count_files("small")
    months = [f"{y}{m:02d}" for y, m in HMA_MONTHS]
    assert len(months) == 141 and months[0] == "201304" and months[-1] == "202412"
    expected = {
        "cpec-deformation": ["T027_ASC/PS_T027_ASC.kml"]
        + [f"T107_DESC/PS_T107_DESC.{ext}" for ext in ("dbf", "prj", "shp", "shx")],
        "muli-subsidence": [f"muli_sbas_{name}.{ext}" for name in ("cumulative", "velocity") for ext in ("dat", "hdr")],
        "gangrigab-velocity": [f"2023{m:02d}.tif" for m in range(1, 13)],
        "hma-glacier-velocity": [f"{g}/{g}_{month}.tif" for g in sorted(SMALL_GLACIERS) for month in months],
    }
    for key, names in expected.items():
        assert _files(run.folders[key]) == sorted([*names, "README.txt"]), key


def test_every_folder_says_synthetic(run: Run) -> None:
    for folder in run.folders.values():
        readme = (folder / "README.txt").read_text(encoding="utf-8")
        assert (
            LABEL_EN in readme and "SYNTHETIC" in readme and "合成样例数据" in readme and "不是真实观测数据" in readme
        )


def test_subset_replaces_folder_and_bad_arguments_fail(tmp_path: Path) -> None:
    stale = tmp_path / "muli-subsidence" / "stale.txt"
    stale.parent.mkdir()
    stale.write_text("old", encoding="utf-8")
    assert list(generate_samples(tmp_path, datasets=["muli-subsidence"])) == ["muli-subsidence"]
    assert not stale.exists()
    with pytest.raises(ValueError, match="unknown dataset"):
        generate_samples(tmp_path, datasets=["nope"])
    with pytest.raises(ValueError, match="scale"):
        generate_samples(tmp_path, "huge")  # type: ignore[arg-type]
    assert count_files("full") == 6 + 5 + 13 + 4 * 141 + 1


# ------------------------------------------------------------------------------- cpec-deformation


def test_shapefile_dbf_is_gbk_and_says_nothing(run: Run) -> None:
    shp = run.folders["cpec-deformation"] / "T107_DESC" / "PS_T107_DESC.shp"
    assert not shp.with_suffix(".cpg").exists()
    assert shp.with_suffix(".dbf").read_bytes()[29] == 0, "no language driver id"
    assert pyogrio.read_info(shp)["encoding"] == "ISO-8859-1", "GDAL falls back to Latin-1: it cannot tell"
    assert not set(pyogrio.read_dataframe(shp, read_geometry=False)["REGION"]) & PLACES, "mojibake unless told"
    frame = pyogrio.read_dataframe(shp, encoding="GBK")
    assert len(frame) == 2000 and frame["CODE"].is_unique
    assert set(frame["REGION"]) <= PLACES and len(set(frame["REGION"])) >= 4
    assert frame["HEIGHT"].between(2000, 6000).all() and frame["COHER"].between(0.6, 1).all()
    dates = [c for c in frame.columns if re.fullmatch(r"D\d{8}", c)]
    assert len(dates) == 74 and dates == sorted(dates) and dates[0] == "D20141015" and dates[-1] <= "D20180630"
    velocity = frame["VEL"].to_numpy()
    assert np.median(np.abs(velocity)) < 3 and velocity.min() < -30, "mostly stable, with landslides"
    years = (
        date.fromisoformat(f"{dates[-1][1:5]}-{dates[-1][5:7]}-{dates[-1][7:]}") - date(2014, 10, 15)
    ).days / 365.25
    assert (frame[dates[0]] == 0).all()
    assert np.corrcoef(frame[dates[-1]], velocity * years)[0, 1] > 0.9, "displacement follows VEL x time"


def test_points_inside_bbox_and_clustered(run: Run) -> None:
    folder = run.folders["cpec-deformation"]
    for path in (folder / "T107_DESC" / "PS_T107_DESC.shp", folder / "T027_ASC" / "PS_T027_ASC.kml"):
        frame = pyogrio.read_dataframe(path, encoding="GBK" if path.suffix == ".shp" else None)
        lon, lat = frame.geometry.x.to_numpy(), frame.geometry.y.to_numpy()
        assert CPEC_BBOX.contains(lon, lat).all(), path.name
        assert np.allclose(frame["LON"], lon) and np.allclose(frame["LAT"], lat)
        cells = np.histogram2d(
            lon, lat, bins=20, range=[[CPEC_BBOX.west, CPEC_BBOX.east], [CPEC_BBOX.south, CPEC_BBOX.north]]
        )
        assert (cells[0] > 0).mean() < 0.4, "points follow the valleys, not the whole box"


def test_kml_carries_attributes_and_label(run: Run) -> None:
    kml = run.folders["cpec-deformation"] / "T027_ASC" / "PS_T027_ASC.kml"
    text = kml.read_text(encoding="utf-8")
    assert LABEL_EN in text and "合成样例数据" in text and "<SchemaData" in text
    frame = pyogrio.read_dataframe(kml)
    assert len(frame) == 2000
    for column in ("CODE", "LON", "LAT", "HEIGHT", "VEL", "VEL_STD", "COHER", "REGION"):
        assert column in frame.columns
    assert set(frame["REGION"]) <= PLACES
    assert len([c for c in frame.columns if re.fullmatch(r"D\d{8}", c)]) == 85


# -------------------------------------------------------------------------------- muli-subsidence


def test_envi_headers(run: Run) -> None:
    header = (run.folders["muli-subsidence"] / "muli_sbas_cumulative.hdr").read_text(encoding="utf-8")
    assert header.startswith("ENVI\ndescription = {\n  " + LABEL_EN)
    for key in ("band names = {\n2018-01-12,", "map info = {Geographic Lat/Lon", "coordinate system string = {GEOGCS"):
        assert key in header
    assert "data ignore value = -9999" in header


def test_subsidence_bowl_deepens(run: Run) -> None:
    folder = run.folders["muli-subsidence"]
    with rasterio.open(folder / "muli_sbas_cumulative.dat") as src:
        assert src.driver == "ENVI" and src.crs.to_epsg() == 4326 and src.nodata == NODATA
        assert src.res == pytest.approx((0.0002, 0.0002)) and set(src.dtypes) == {"float32"}
        assert _inside(MULI_BBOX, *src.bounds)
        dates = [date.fromisoformat(d) for d in src.descriptions]
        assert dates[0] == date(2018, 1, 12) and dates[-1] == date(2023, 4, 4) and src.count == 160
        assert {(b - a).days for a, b in itertools.pairwise(dates)} == {12}
        first, middle, last = (src.read(i, masked=True) for i in (1, src.count // 2, src.count))
    assert 0 < first.mask.mean() < 0.05, "a few incoherent pixels"
    assert (first == 0).all(), "reference date"
    assert last.min() < middle.min() < first.min() - 100 and -330 < last.min() < -250
    with rasterio.open(folder / "muli_sbas_velocity.dat") as src:
        assert src.count == 1 and src.descriptions == ("velocity",) and src.nodata == NODATA
        velocity = src.read(1, masked=True)
    assert velocity.min() < -40 and abs(np.median(velocity.compressed())) < 10


# -------------------------------------------------------------------------------------- glaciers


def test_gangrigab_monthly_geotiffs(run: Run) -> None:
    folder = run.folders["gangrigab-velocity"]
    speeds = []
    for month in range(1, 13):
        with rasterio.open(folder / f"2023{month:02d}.tif") as src:
            assert src.driver == "GTiff" and src.crs.to_epsg() == 32647 and src.res == (30.0, 30.0)
            assert (src.width, src.height, src.count, src.dtypes[0]) == (300, 300, 1, "float32")
            assert src.nodata == NODATA and src.tags()["TIFFTAG_IMAGEDESCRIPTION"] == LABEL_EN
            assert _inside(GANGRIGAB_BBOX, *transform_bounds(src.crs, "EPSG:4326", *src.bounds))
            speeds.append(src.read(1, masked=True))
    july, january = speeds[6], speeds[0]
    assert 0.1 < july.mask.mean() < 0.9, "glaciers and ice-free ground"
    assert july.mean() > 1.2 * january.mean(), "faster in summer"
    assert 0.5 < july.max() < 2.5
    _assert_trunk_faster_than_margins(july)


def test_hma_three_band_geotiffs(run: Run) -> None:
    folder = run.folders["hma-glacier-velocity"]
    for glacier in SMALL_GLACIERS:
        with rasterio.open(folder / glacier / f"{glacier}_201807.tif") as src:
            assert src.crs.to_epsg() == 4326 and src.res == pytest.approx((1 / 900, 1 / 900))
            assert (src.width, src.height, src.count) == (48, 48, 3) and set(src.dtypes) == {"float32"}
            assert src.descriptions == ("vx", "vy", "speed") and src.nodata == NODATA
            assert src.tags()["TIFFTAG_IMAGEDESCRIPTION"] == LABEL_EN
            assert _inside(HMA_BBOX, *src.bounds)
            vx, vy, speed = src.read(masked=True)
        assert np.array_equal(speed.mask, vx.mask) and np.allclose(speed, np.hypot(vx, vy), atol=1e-6)
        _assert_trunk_faster_than_margins(speed)
