"""The benchmark plumbing that needs no server: results file, report, plots, the load mix, turns (no timings)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from PIL import Image

from benchmarks.load import measure_in_turns
from benchmarks.load_test import MIX, Request, RssSeries, schedule
from benchmarks.plots import draw_all
from benchmarks.results import Point, Results, Row, Target, main, markdown, print_rows, record
from benchmarks.search import parse_size
from benchmarks.synthetic import FIRST_MONTH, write_publication
from publish import pipeline

ROWS = [
    Row("publish", "COG 6000x6000", 11.0, "s", "gdal_translate -of COG", 10.0, Target(1.1)),
    Row("publish", "12 months, 2 workers", 6.0, "s", "1 worker", 10.0, Target(1.8, at_least=True), speed_up=True),
    Row("search", "1M items, id lookup", 3.0, "ms", "pgstac API", 2.0, Target(1.0)),
    Row("load", "error rate", 0.0, "%", target=Target(0.0, on="value")),
    Row("load", "p99 latency", 120.0, "ms"),
]
POINTS = [
    Point("search-scale", "embedded API: id lookup", n, ms) for n, ms in ((10_000, 2.0), (100_000, 2.5), (1e6, 3.0))
] + [Point("publish-scale", "to_cog", mb, s) for mb, s in ((10, 1.0), (100, 9.0))]


def test_ratios_and_targets() -> None:
    cog, workers, lookup, errors, p99 = ROWS
    assert cog.ratio == pytest.approx(1.1) and cog.met is True
    assert workers.ratio == pytest.approx(10 / 6) and workers.met is False  # a speed-up of 1.67x < 1.8x
    assert lookup.met is False
    assert errors.ratio is None and errors.met is True
    assert p99.met is None


def test_results_file_round_trip_and_report(tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    main(["start", str(path)])
    record(path, ROWS[:2], POINTS[:1])
    record(path, ROWS[2:], POINTS[1:], {"Search: 10k": "query  p50\nid     2.0"}, ["search: 1M not measured"])
    results = Results.load(path)
    assert results.rows == ROWS and results.points == POINTS
    assert results.machine["cores"] and results.versions["duckdb"]

    main(["report", str(path), "--markdown", str(tmp_path / "results.md"), "--plots", str(tmp_path)])
    text = (tmp_path / "results.md").read_text("utf-8")
    assert "| publish | COG 6000x6000 | 11.0 s | gdal_translate -of COG: 10.0 s | 1.10x | <= 1.1x | yes |" in text
    missed = text.split("## Targets not met")[1].split("##")[0]
    assert "12 months, 2 workers" in missed and "1M items, id lookup" in missed and "COG" not in missed
    assert "search: 1M not measured" in missed
    assert "![search-scale](search-scale.png)" in text and "id     2.0" in text
    assert "load average" in text and Results.load(path).machine["load_end"]


def test_plots_are_pngs(tmp_path: Path) -> None:
    drawn = draw_all(POINTS, tmp_path)
    assert [path.name for path in drawn] == ["search-scale.png", "publish-scale.png"]
    for path in drawn:
        with Image.open(path) as image:
            assert image.format == "PNG" and image.width >= 400
    assert draw_all([], tmp_path / "none") == []


def test_report_without_rows_and_console_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert "No figures were recorded." in markdown(Results())
    print_rows(ROWS, "t")
    assert "NO" in capsys.readouterr().out


def test_load_mix_and_sizes() -> None:
    pool = {kind: [Request(kind, "c", f"/{kind}/{n}", {}) for n in range(3)] for kind in MIX}
    plan = schedule(pool, 4000)
    assert plan == schedule(pool, 4000)  # fixed seed
    shares = Counter(request.kind for request in plan)
    for kind, weight in MIX.items():
        assert shares[kind] / len(plan) == pytest.approx(weight / 100, abs=0.03)
    assert [parse_size(s) for s in ("10k", "1m", "2_500", "0.5M")] == [10_000, 1_000_000, 2_500, 500_000]


def test_rss_levels_are_medians_and_second_half_growth() -> None:
    # 300 s sampled every 2 s: 400 MB, a transient 900 MB spike near half-way, then a climb of 1 MB per 10 s
    samples = [(float(t), 400.0 + max(0.0, t - 150) / 10) for t in range(0, 301, 2)]
    samples[70] = (140.0, 900.0)
    rss = RssSeries(samples, window=30)
    assert rss.start == 400 and rss.middle == pytest.approx(400.0, abs=1) and rss.peak == 900
    assert rss.end == pytest.approx(413.6, abs=1) and rss.slope() == pytest.approx(6.0, rel=0.2)  # MB per minute


def test_synthetic_publication_is_in_publish_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pipeline, "ROW_GROUP", 128)  # publish's row groups, smaller than the parse chunks
    publication = write_publication(tmp_path, 300)
    metadata = pq.ParquetFile(publication.parquet).metadata
    assert [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)] == [128, 128, 44]
    table = pq.read_table(publication.parquet, columns=["id", "datetime"])
    assert publication.items == table.num_rows == 300
    assert len(set(table.column("id").to_pylist())) == 300
    times, ids = table.column("datetime").to_pylist(), table.column("id").to_pylist()
    keys = [(-moment.timestamp(), item_id) for moment, item_id in zip(times, ids, strict=True)]
    assert keys == sorted(keys), "newest first, then by id: the API's default order"
    assert table.column("datetime")[-1].as_py() == FIRST_MONTH + timedelta(days=14), "the oldest month is the first"


def test_measure_in_turns_rotates_shares_and_drops_failures() -> None:
    calls: list[tuple[str, int]] = []

    def operation(name: str, fail_at: int | None = None) -> Callable[[int], object]:
        def run(number: int) -> None:
            calls.append((name, number))
            if number == fail_at:
                raise ValueError(f"{name} failed at {number}")

        return run

    operations = {"a": operation("a"), "b": operation("b"), "c": operation("c", fail_at=5)}
    stats, failed = measure_in_turns(operations, concurrency=1, max_operations=10, max_seconds=60, warmup=2, rounds=4)
    assert set(stats) == {"a", "b"} and set(failed) == {"c"} and "c failed at 5" in failed["c"]
    for name in ("a", "b"):
        numbers = [number for who, number in calls if who == name]
        assert numbers[:2] == [-1, -2]  # warm-up in the first turn only
        assert numbers[2:] == list(range(10))  # every number once, continued from turn to turn
        assert len(stats[name].latencies) == 10
    assert [number for who, number in calls if who == "c"] == [-1, -2, 0, 1, 2, 3, 4, 5]  # left out after failing
    runs = [who for index, (who, _) in enumerate(calls) if index == 0 or calls[index - 1][0] != who]
    assert runs[:6] == ["a", "b", "c", "b", "c", "a"]  # turn 2 starts with the second: the order rotates
