"""The command line: exit codes, outputs, and bad records that write nothing."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from ncdc_stac.cli import main
from tests.conftest import RECORDS


def test_every_subcommand_has_help() -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["--help"])
    assert result.exit_code == 0
    for command in main.commands:
        sub = runner.invoke(main, [command, "--help"])
        assert sub.exit_code == 0 and "Usage:" in sub.output


def test_usage_error_exits_2() -> None:
    assert CliRunner().invoke(main, ["convert"]).exit_code == 2


def test_convert_writes_one_collection_per_record(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["convert", *map(str, RECORDS), "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    written = sorted(tmp_path.glob("*/collection.json"))
    assert len(written) == len(RECORDS) == 4
    assert "Brazil" in result.stderr, "quality warnings reach the console"
    again = CliRunner().invoke(main, ["convert", *map(str, RECORDS), "--out", str(tmp_path)])
    assert again.output.count("unchanged") == 4


def test_bad_record_fails_alone(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    good = json.loads(RECORDS[0].read_text(encoding="utf-8"))
    bad.write_text(json.dumps(good | {"ds_acq_lat_north": 123}), encoding="utf-8")
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["convert", str(bad), str(RECORDS[1]), "--out", str(out)])
    assert result.exit_code == 1
    assert f"{bad}: ds_acq_lat_north:" in result.stderr
    assert len(list(out.glob("*/collection.json"))) == 1, "the good record still converts, the bad writes nothing"


def test_samples_names_its_datasets_and_refuses_unknown_ones(tmp_path: Path) -> None:
    from publish.samples import DATASETS

    runner = CliRunner()
    help_text = " ".join(runner.invoke(main, ["samples", "--help"]).output.split())
    assert all(name in help_text for name in DATASETS)
    result = runner.invoke(main, ["samples", "--out", str(tmp_path / "s"), "--dataset", "nosuch"])
    assert result.exit_code == 2, result.output
    assert "Invalid value for '--dataset': unknown dataset(s) nosuch; choose from" in result.output
    assert not (tmp_path / "s").exists()
