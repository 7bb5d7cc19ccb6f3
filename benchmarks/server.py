"""The service under benchmark in its own process: ``uvicorn --factory services.app:create_app`` on 127.0.0.1.

The client (the benchmark) and the server never share a Python interpreter (nor its GIL), so the figures are
those of a deployed service over loopback.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
STARTUP_SECONDS = 60


def free_port() -> int:
    """A TCP port of 127.0.0.1 free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def serve(env: Mapping[str, str], ready_path: str = "/healthz") -> Iterator[str]:
    """``uvicorn --factory services.app:create_app`` in its own process on 127.0.0.1; yields its base URL.

    ``env``: the service's settings (``NCDC_STAC_*``), added to this process's environment. The server is ready
    once ``ready_path`` answers 200 (uvicorn runs the app's lifespan before it listens); it is stopped on exit.
    """
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", "--factory", "services.app:create_app"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning", "--no-access-log"]
    process = subprocess.Popen(command, cwd=REPO, env={**os.environ, **env})
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"uvicorn exited with {process.returncode}")
            try:
                if httpx.get(f"{base}{ready_path}", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"uvicorn did not answer within {STARTUP_SECONDS} s")
            time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
