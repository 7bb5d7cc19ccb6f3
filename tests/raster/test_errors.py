"""Nothing to draw is 204, never 500; zooms and tile indexes outside the TileMatrixSet are 404; unknown ids 404;
titiler's parameters are validated (422) by dependencies that run in the event loop."""

from __future__ import annotations

import inspect
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import fastapi.dependencies.utils
import pytest
from starlette.testclient import TestClient
from titiler.core.dependencies import DatasetParams, TileParams
from titiler.mosaic.factory import PixelSelectionParams

from services.raster.renders import inline
from tests.raster.helpers import WEB_MERCATOR, cog, data_tile, empty_tile, zxy


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


def test_pure_dependencies_are_coroutines_with_the_same_parameters() -> None:
    for dependency in (TileParams, DatasetParams, PixelSelectionParams):
        call = inline(dependency)
        assert inspect.iscoroutinefunction(call)
        assert inspect.signature(call) == inspect.signature(dependency, eval_str=True)


def test_tile_dependencies_leave_the_event_loop_only_for_the_path(
    client: TestClient, root: Path, ids: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Per tile, only the dependencies that read the publication (the item or collection, its render) go to the
    thread pool; titiler's parameter classes are called in the event loop and still refuse bad values."""
    handed: Counter[str] = Counter()
    to_thread = fastapi.dependencies.utils.run_in_threadpool  # type: ignore[attr-defined]

    async def counting(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        handed[function.__name__] += 1
        return await to_thread(function, *args, **kwargs)

    monkeypatch.setattr(fastapi.dependencies.utils, "run_in_threadpool", counting)
    cid = ids["gangrigab"]
    tile = zxy(data_tile(cog(root, cid, "2023-07", "velocity")))
    item = f"/collections/{cid}/items/2023-07/tiles/WebMercatorQuad/{tile}.png"
    mosaic = f"/collections/{cid}/tiles/WebMercatorQuad/{tile}.png"
    assert client.get(item).status_code == 200
    assert handed == {"published_item": 1}
    handed.clear()
    assert client.get(mosaic, params={"datetime": "2023-07"}).status_code == 200
    assert handed == {"collection_mosaic": 1, "mosaic_render": 1}
    for url, bad in (
        (item, {"buffer": "-1"}),
        (item, {"algorithm": "nope"}),
        (item, {"nodata": "many"}),
        (mosaic, {"pixel_selection": "nope", "datetime": "2023-07"}),
        (mosaic, {"colormap_name": "nope", "datetime": "2023-07"}),
    ):
        answer = client.get(url, params=bad)
        assert answer.status_code == 422, f"{url} {bad}: {answer.status_code} {answer.text[:200]}"
