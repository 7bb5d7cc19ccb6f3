"""Nothing to draw is 204, never 500; zooms and tile indexes outside the TileMatrixSet are 404; unknown ids 404."""

from __future__ import annotations

from pathlib import Path

from starlette.testclient import TestClient

from tests.raster.helpers import WEB_MERCATOR, cog, empty_tile, zxy


def test_empty_areas_are_204(client: TestClient, root: Path, ids: dict[str, str]) -> None:
    cid = ids["gangrigab"]
    item = f"/collections/{cid}/items/2023-07"
    far = zxy(WEB_MERCATOR.tile(10.0, 50.0, 12))
    nodata = zxy(empty_tile(cog(root, cid, "2023-07", "velocity")))  # inside the raster, all nodata
    for url in (
        f"{item}/tiles/WebMercatorQuad/{far}.png",
        f"{item}/tiles/WebMercatorQuad/{nodata}.png",
        f"{item}/tiles/WebMercatorQuad/{nodata}.npy",
        f"{item}/tiles/WorldCRS84Quad/2/0/0",
        f"{item}/point/10,50",
        f"/collections/{cid}/tiles/WebMercatorQuad/{far}.png?datetime=2023-07",
        f"/collections/{cid}/tiles/WebMercatorQuad/{nodata}.png?datetime=2023-07",
        f"/collections/{cid}/tiles/WebMercatorQuad/{nodata}.png?datetime=2030-01",
        f"/collections/{cid}/point/10,50?datetime=2023",
        f"/collections/{cid}/point/96.75,29.25?datetime=1999",
    ):
        answer = client.get(url)
        assert answer.status_code == 204, f"{url}: {answer.status_code} {answer.text[:200]}"
        assert answer.content == b""


def test_outside_the_tile_matrix_set_is_404(client: TestClient, ids: dict[str, str]) -> None:
    cid = ids["gangrigab"]
    for base in (f"/collections/{cid}/items/2023-07/tiles", f"/collections/{cid}/tiles"):
        for tile in ("WebMercatorQuad/25/0/0.png", "WebMercatorQuad/-1/0/0", "WebMercatorQuad/2/4/0.png",
                     "WebMercatorQuad/2/0/-1.png", "WorldCRS84Quad/0/2/0.png", "WorldCRS84Quad/0/0/1"):  # fmt: skip
            answer = client.get(f"{base}/{tile}", params={"datetime": "2023-07"})
            assert answer.status_code == 404, f"{base}/{tile}: {answer.status_code}"
    assert client.get(f"/collections/{cid}/tiles/CanadianNAD83_LCC/1/0/0.png").status_code == 422


def test_unknown_ids_are_404(client: TestClient, ids: dict[str, str]) -> None:
    cid = ids["gangrigab"]
    for url in (
        f"/collections/{cid}/items/2031-01/info",
        f"/collections/{cid}/items/2031-01/tiles/WebMercatorQuad/12/3148/1699.png",
        "/collections/no-such-collection/items/2023-07/info",
        "/collections/no-such-collection/tiles/WebMercatorQuad/12/3148/1699.png",
        "/collections/no-such-collection/WMTSCapabilities.xml",
        "/collections/no-such-collection/legend",
        f"/collections/{cid}/items/2023-07/tiles/WebMercatorQuad/12/3148/1699.png?assets=nope",
        f"/collections/{cid}/tiles/WebMercatorQuad/12/3148/1699.png?assets=nope",
        f"/collections/{cid}/legend?asset=thumbnail",
    ):
        answer = client.get(url)
        assert answer.status_code == 404, f"{url}: {answer.status_code} {answer.text[:200]}"


def test_legend(client: TestClient, ids: dict[str, str]) -> None:
    legend = client.get(f"/collections/{ids['gangrigab']}/legend").json()
    assert (legend["asset"], legend["unit"], legend["colormap_name"], legend["rescale"]) == (
        "velocity",
        "m/d",
        "viridis",
        [0.0, 1.5],
    )
    assert len(legend["stops"]) == 11 and legend["stops"][0] == {
        "value": 0.0,
        "color": "#440154",
        "rgba": [68, 1, 84, 255],
    }
    assert legend["stops"][-1]["value"] == 1.5 and legend["nodata"] == -9999.0
    image = client.get(legend["links"][0]["href"].replace("http://testserver", ""))
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"
    muli = client.get(f"/collections/{ids['muli']}/legend", params={"stops": 3, "rescale": "-50,50"}).json()
    assert (muli["asset"], muli["unit"], muli["colormap_name"]) == ("displacement", "mm", "rdbu")
    assert [s["value"] for s in muli["stops"]] == [-50.0, 0.0, 50.0]
    assert client.get(f"/collections/{ids['muli']}/legend", params={"rescale": "a,b"}).status_code == 400
