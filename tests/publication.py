"""A published copy of the four small sample datasets, made once per test run (shared by xdist workers)."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock

from publish.pipeline import Summary, publish_collection
from publish.samples import generate_samples
from tests.conftest import REPO


@dataclass(frozen=True)
class Publication:
    samples: Path
    root: Path
    summaries: dict[str, Summary]

    def collection_dir(self, dataset: str) -> Path:
        return self.root / self.collection_ids[dataset]

    @property
    def collection_ids(self) -> dict[str, str]:
        return {name: summary.collection_id for name, summary in self.summaries.items()}


def publish_samples(base: Path) -> Publication:
    """Generate the small samples and publish them under ``base`` (once; later callers reuse it)."""
    samples, root, done = base / "samples", base / "public", base / "summaries.json"
    with FileLock(str(base / ".lock")):
        if not done.exists():
            shutil.rmtree(base / "samples", ignore_errors=True)
            folders = generate_samples(samples, "small")
            summaries = {
                name: publish_collection(REPO / "records" / f"{name}.json", folder, root, workers=2)
                for name, folder in folders.items()
            }
            done.write_text(json.dumps({k: v.__dict__ for k, v in summaries.items()}))
    loaded = json.loads(done.read_text())
    return Publication(samples, root, {k: Summary(**v) for k, v in loaded.items()})
