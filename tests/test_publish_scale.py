"""Publishing at scale: through a Dask cluster (same result as the process pool), and bounded client memory."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from click.testing import CliRunner
from distributed import LocalCluster

from ncdc_stac.cli import main
from publish.pipeline import publish_collection
from tests.conftest import REPO
from tests.publication import Publication

GANGRIGAB = REPO / "records" / "gangrigab-velocity.json"


def documents(root: Path) -> dict[str, bytes]:
    """Every STAC document of a publication, by path."""
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*.json") if not p.name.startswith(".")}


def rows(root: Path, collection_id: str) -> list[dict[str, Any]]:
    return pq.read_table(root / collection_id / "items.parquet").to_pylist()


def test_dask_cluster_publishes_what_the_process_pool_does(tmp_path: Path, publication: Publication) -> None:
    data = publication.samples / "gangrigab-velocity"
    local = publish_collection(GANGRIGAB, data, tmp_path / "pool", workers=2)
    with LocalCluster(
        n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None, silence_logs=40
    ) as cluster:  # type: ignore[no-untyped-call]
        args = ["publish", str(GANGRIGAB), "--data", str(data), "--root", str(tmp_path / "dask")]
        result = CliRunner().invoke(main, [*args, "--scheduler", cluster.scheduler_address])
        assert result.exit_code == 0, result.output
        assert "12 items (12 converted" in result.output
    pool, dask = documents(tmp_path / "pool"), documents(tmp_path / "dask")
    assert sorted(pool) == sorted(dask) and len(pool) == 14, "catalog, collection and the twelve items"
    items = {k: json.loads(v) for k, v in dask.items() if k.count("/") == 2}
    checksums = {k: item["assets"]["velocity"]["file:checksum"] for k, item in items.items()}
    assert checksums == {k: json.loads(pool[k])["assets"]["velocity"]["file:checksum"] for k in items}
    assert dask == pool, "byte for byte"
    assert rows(tmp_path / "dask", local.collection_id) == rows(tmp_path / "pool", local.collection_id)


def test_client_memory_does_not_grow_with_the_files() -> None:
    """The client's peak traced memory for 150 vs 450 files, measured in a process of its own (pytest keeps
    captured output and records in the test process, which grows with the files and is not the client's)."""
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.publish_scale", "--small", "150", "--large", "450"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    peaks = [float(mb) for mb in re.findall(r"client peak\s+([0-9.]+) MB", done.stdout)]
    items = [int(n) for n in re.findall(r"(\d+) items", done.stdout)]
    assert items == [150, 450], done.stdout
    assert len(peaks) == 2 and peaks[1] <= 1.5 * peaks[0], done.stdout
