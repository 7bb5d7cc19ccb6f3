"""The docker-compose stack, validated and run natively: the same commands and environment as the containers.

``docker-compose config`` (Debian's docker-compose, no engine needed) validates ``docker-compose.yml`` with
``.env.example`` and prints the resolved services. No Docker engine runs here, so the services are started
natively from that output: PostgreSQL + PostGIS + pgstac (``tests.pgstac_cluster``), SeaweedFS for the
object store, the ``migrate`` and ``publish`` jobs, ``api`` and ``raster`` (``ncdc-stac serve --only ...``) and
nginx with ``deploy/nginx/default.conf.template``. Only host names, ports and the image's folders differ
(``db:5432`` -> the test cluster, ``/app`` -> this repository, ...). The checks then go through the proxy's
one origin: STAC API (pystac-client), tiles and time series against the COGs in the object store, access
rules, signed URLs and ``/files`` redirects to the store.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import string
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import yaml
from pydantic import SecretStr

from ncdc_stac.settings import Settings
from ncdc_stac.storage import Root
from services.raster.reader import storage_env
from services.viewer.harness import free_port
from tests.conftest import REPO, require
from tests.pgstac_cluster import pgstac_cluster
from tests.raster.helpers import data_tile, decode_npy, source_tile, valid, zxy
from tests.s3_server import S3Server, seaweedfs

BIN = Path(sys.executable).parent
COMPOSE = shutil.which("docker-compose")
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
ADMIN_KEY = "deploy-test-admin-key-0123456789"
GANGRIGAB = "monthly-glacier-surface-velocity-gangrigab-area-2023"
HMA = "monthly-velocity-large-glaciers-high-mountain-asia-2013-2024"
MONTH = "2023-07"


def compose_config(env_file: Path) -> dict[str, Any]:
    """``docker-compose config`` of the repository's compose file with ``env_file``: validated and resolved."""
    require(COMPOSE is not None, "docker-compose not found (Debian package docker-compose; .ci/run installs it)")
    done = subprocess.run(
        [str(COMPOSE), "--env-file", str(env_file), "-f", str(REPO / "docker-compose.yml"), "config"],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr
    config: dict[str, Any] = yaml.safe_load(done.stdout)
    return config


def test_compose_file_validates_with_the_example_env() -> None:
    config = compose_config(REPO / ".env.example")
    services = config["services"]
    assert {"db", "s3", "migrate", "api", "raster", "proxy", "publish"} <= set(services)
    assert services["publish"]["profiles"] == ["publish"]
    assert services["api"]["image"] == services["raster"]["image"] == services["publish"]["image"]
    assert services["db"]["healthcheck"]["test"]
    for name, service in services.items():
        for port in service.get("ports", []):
            published = port if isinstance(port, str) else f"{port.get('host_ip')}:{port.get('published')}"
            assert published.startswith("127.0.0.1:"), f"{name} publishes {port} beyond localhost"
    raw = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    environments = [raw["x-ncdc"]["environment"], *(s.get("environment") or {} for s in raw["services"].values())]
    secrets = {k: v for env in environments for k, v in env.items() if re.search("PASSWORD|SECRET|_KEY", k)}
    assert secrets and all(str(v).startswith("${") for v in secrets.values()), f"secrets in the file: {secrets}"


@dataclass
class Stack:
    url: str
    s3: S3Server
    settings_env: dict[str, str]


def _native(
    service: Mapping[str, Any], hosts: Mapping[str, str], folders: Mapping[str, str]
) -> tuple[list[str], dict[str, str]]:
    """The command and environment of a compose service, for this machine: hosts and folders mapped."""

    def local(value: str) -> str:
        value = value.replace("$$", "$")
        for old, new in {**hosts, **folders}.items():
            value = value.replace(old, new)
        return value

    entrypoint = service.get("entrypoint") or [str(BIN / "ncdc-stac")]
    command = [local(str(part)) for part in [*entrypoint, *(service.get("command") or [])]]
    environment = {key: local(str(value)) for key, value in (service.get("environment") or {}).items()}
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", **environment}
    return command, env


def _run_job(name: str, service: Mapping[str, Any], hosts: Mapping[str, str], folders: Mapping[str, str]) -> str:
    command, env = _native(service, hosts, folders)
    done = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=900, check=False, cwd=folders["/srv"]
    )
    assert done.returncode == 0, f"{name}: {done.stderr[-3000:]}"
    return done.stdout + done.stderr


def _wait(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: exited: {log.read_text()[-3000:]}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url} did not answer: {log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    work = tmp_path_factory.mktemp("deploy")
    require(Path(NGINX).is_file(), "nginx not found (Debian package nginx-light; .ci/run installs it)")
    with pgstac_cluster() as dsn, seaweedfs(work / "seaweedfs", bucket="ncdc") as s3:
        db_host = dsn.split("@", 1)[1].split("/", 1)[0]
        env_file = work / ".env"
        example = (REPO / ".env.example").read_text()
        admin = hashlib.sha256(ADMIN_KEY.encode()).hexdigest()
        overrides = {
            "POSTGRES_USER": "postgres",
            "POSTGRES_DB": dsn.rsplit("/", 1)[1],
            "NCDC_S3_ACCESS_KEY_ID": s3.access_key,
            "NCDC_S3_SECRET_ACCESS_KEY": s3.secret_key,
            "NCDC_STAC_API_KEYS": f'{{"{admin}": {{"subject": "deploy-test", "roles": ["admin"]}}}}',
        }
        lines = [line for line in example.splitlines() if line.split("=", 1)[0] not in overrides]
        env_file.write_text("\n".join([*lines, *(f"{k}={v}" for k, v in overrides.items())]) + "\n")
        services = compose_config(env_file)["services"]
        ports = {"api": free_port(), "raster": free_port(), "proxy": free_port()}
        hosts = {
            "db:5432": db_host,
            "http://s3:8333": s3.endpoint,
            "api:8000": f"127.0.0.1:{ports['api']}",
            "raster:8000": f"127.0.0.1:{ports['raster']}",
        }
        folders = {"/app/": f"{REPO}/", "/srv": str(work)}
        _run_job("migrate", services["migrate"], hosts, folders)
        publish = dict(services["publish"])
        publish["environment"] = {**publish["environment"], "NCDC_RECORDS": str(REPO / "records")}
        _run_job("publish", publish, hosts, folders)
        processes: list[subprocess.Popen[bytes]] = []
        try:
            for name in ("api", "raster"):
                command, env = _native(services[name], hosts, folders)
                env.update(NCDC_STAC_HOST="127.0.0.1", NCDC_STAC_PORT=str(ports[name]))
                log = work / f"{name}.log"
                processes.append(
                    subprocess.Popen(command, env=env, cwd=work, stdout=log.open("wb"), stderr=subprocess.STDOUT)
                )
                _wait(f"http://127.0.0.1:{ports[name]}/healthz", processes[-1], log)
            proxy_env = {k: hosts.get(str(v), str(v)) for k, v in services["proxy"]["environment"].items()}
            proxy_env["NCDC_PROXY_LISTEN"] = f"127.0.0.1:{ports['proxy']}"
            template = (REPO / "deploy" / "nginx" / "default.conf.template").read_text()
            site = work / "site.conf"
            site.write_text(string.Template(template).safe_substitute(proxy_env))
            nginx_conf = work / "nginx.conf"
            nginx_conf.write_text(
                f"pid {work}/nginx.pid;\nerror_log {work}/nginx-error.log warn;\nevents {{}}\n"
                f"http {{\n  access_log {work}/nginx-access.log;\n  client_body_temp_path {work}/nginx-body;\n"
                f"  proxy_temp_path {work}/nginx-proxy;\n  include {site};\n}}\n"
            )
            log = work / "nginx.log"
            processes.append(
                subprocess.Popen(
                    [NGINX, "-c", str(nginx_conf), "-g", "daemon off;"], stdout=log.open("wb"), stderr=subprocess.STDOUT
                )
            )
            url = f"http://127.0.0.1:{ports['proxy']}"
            _wait(f"{url}/healthz", processes[-1], log)
            yield Stack(
                url,
                s3,
                {k: v for k, v in _native(services["api"], hosts, folders)[1].items() if k.startswith("NCDC_STAC_")},
            )
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()


def test_ready_through_the_proxy(stack: Stack) -> None:
    ready = httpx.get(f"{stack.url}/readyz", timeout=10)
    assert ready.status_code == 200, ready.text
    assert httpx.get(f"{stack.url}/metrics", timeout=10).status_code == 404  # not on the public origin


def test_stac_api_on_pgstac_through_the_proxy(stack: Stack) -> None:
    from pystac_client import Client

    client = Client.open(f"{stack.url}/stac")
    ids = {collection.id for collection in client.get_collections()}
    assert {GANGRIGAB, HMA} <= ids and len(ids) == 4
    items = list(client.search(collections=[GANGRIGAB], datetime="2023-06-15/2023-08-15").items())
    assert sorted(item.id for item in items) == ["2023-06", "2023-07", "2023-08"]  # months in China Standard Time
    item = next(i for i in items if i.id == MONTH)
    assert item.assets["velocity"].href.startswith(f"{stack.url}/files/")
    tiles = [link for link in item.links if link.rel in {"xyz", "tilejson", "wmts"}]
    assert tiles and all(str(link.href).startswith(f"{stack.url}/raster/") for link in tiles)


def _published(stack: Stack) -> Root:
    """The publication in the object store, reached with the services' own settings."""
    env = stack.settings_env
    return Settings(
        root=env["NCDC_STAC_ROOT"],
        s3_endpoint=env["NCDC_STAC_S3_ENDPOINT"],
        s3_access_key_id=SecretStr(env["NCDC_STAC_S3_ACCESS_KEY_ID"]),
        s3_secret_access_key=SecretStr(env["NCDC_STAC_S3_SECRET_ACCESS_KEY"]),
    ).publication_root()


def test_mosaic_tiles_and_time_series_read_the_object_store(stack: Stack) -> None:
    root = _published(stack)
    with storage_env(root):
        source = root.gdal_path(f"{GANGRIGAB}/{MONTH}/velocity.tif")
        tile = data_tile(source)  # type: ignore[arg-type]
        expected = source_tile(source, tile)  # type: ignore[arg-type]
    answer = httpx.get(
        f"{stack.url}/raster/collections/{GANGRIGAB}/tiles/WebMercatorQuad/{zxy(tile)}.npy",
        params={"datetime": MONTH},
        timeout=60,
    )
    assert answer.status_code == 200, answer.text
    data, ok = decode_npy(answer.content)
    np.testing.assert_array_equal(ok, valid(expected))
    np.testing.assert_array_equal(data[0][ok], expected.data[0][ok])
    lon, lat = tile_center(tile)
    series = httpx.get(
        f"{stack.url}/raster/collections/{GANGRIGAB}/timeseries", params={"lon": lon, "lat": lat}, timeout=60
    )
    assert series.status_code == 200 and len(series.json()["values"]) == 12


def tile_center(tile: Any) -> tuple[float, float]:
    import morecantile

    bounds = morecantile.tms.get("WebMercatorQuad").bounds(tile)
    return (bounds.left + bounds.right) / 2, (bounds.bottom + bounds.top) / 2


def test_access_rules_and_signed_urls_through_the_proxy(stack: Stack) -> None:
    timesteps = httpx.get(f"{stack.url}/raster/collections/{HMA}/timesteps", timeout=30)
    assert timesteps.status_code == 401  # apply-access: not for anonymous callers
    admin = {"X-API-Key": ADMIN_KEY}
    assert httpx.get(f"{stack.url}/raster/collections/{HMA}/timesteps", headers=admin, timeout=30).status_code == 200
    item = httpx.get(f"{stack.url}/stac/collections/{HMA}/items", params={"limit": 1}, timeout=30).json()["features"][0]
    href = next(a["href"] for a in item["assets"].values() if a["href"].endswith(".tif"))
    assert httpx.get(href, timeout=30).status_code == 401
    signed = httpx.get(f"{stack.url}/auth/sign", params={"href": href}, headers=admin, timeout=30)
    assert signed.status_code == 200, signed.text
    url = signed.json()["href"]
    streamed = httpx.get(url, headers={"Range": "bytes=0-3"}, follow_redirects=True, timeout=30)
    assert streamed.status_code == 206 and streamed.content[:2] in (b"II", b"MM")
    tampered = url.replace("sig=", "sig=0")
    assert httpx.get(tampered, follow_redirects=True, timeout=30).status_code == 403


def test_open_files_stream_from_the_object_store(stack: Stack) -> None:
    href = f"{stack.url}/files/{GANGRIGAB}/{MONTH}/velocity.tif"
    answer = httpx.get(href, headers={"Range": "bytes=0-15"}, follow_redirects=True, timeout=30)
    assert answer.status_code == 206, answer.text
    assert answer.content[:2] in (b"II", b"MM")
    assert int(answer.headers["content-range"].rsplit("/", 1)[1]) == len(
        _published(stack).read(f"{GANGRIGAB}/{MONTH}/velocity.tif")
    )
