"""Reading the vectors a data manager drops in: shapefiles whose DBF says nothing of its encoding, broken DBFs."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import pytest
import shapely

from publish.vector import VectorError, read_vector


def _shapefile(folder: Path, encoding: str) -> Path:
    """Two points with Chinese field names and values, the DBF in ``encoding``, no .cpg (as many real files)."""
    frame = gpd.GeoDataFrame(
        {"备注": ["冻土区；测试", "喀喇昆仑公路（KKH）"], "名称": ["镕", "碁"], "value": [1.5, 2.5]},
        geometry=[shapely.Point(75.0, 36.0), shapely.Point(75.1, 36.1)],
        crs=4326,
    )
    path = folder / "points.shp"
    frame.to_file(path, engine="pyogrio", layer_options={"ENCODING": encoding})
    path.with_suffix(".cpg").unlink(missing_ok=True)
    return path


@pytest.mark.parametrize("encoding", ["CP936", "UTF-8"])
def test_undeclared_dbf_encoding_decodes_names_and_values(tmp_path: Path, encoding: str) -> None:
    frame = read_vector(_shapefile(tmp_path, encoding))
    assert list(frame.columns) == ["备注", "名称", "value", "geometry"]
    assert frame["备注"].tolist() == ["冻土区；测试", "喀喇昆仑公路（KKH）"]
    assert frame["名称"].tolist() == ["镕", "碁"]
    assert frame["value"].tolist() == [1.5, 2.5]


@pytest.mark.parametrize("size", [20, 100, 200, 300])
def test_truncated_dbf_is_an_error_naming_it(tmp_path: Path, size: int) -> None:
    """Cut inside its header (GDAL then reads no field at all, silently) or inside its records."""
    dbf = _shapefile(tmp_path, "CP936").with_suffix(".dbf")
    assert dbf.stat().st_size > 300
    dbf.write_bytes(dbf.read_bytes()[:size])
    with pytest.raises(VectorError, match=rf"{dbf.name}: cannot read vector data: the DBF is (truncated|unreadable)"):
        read_vector(dbf.with_suffix(".shp"))
