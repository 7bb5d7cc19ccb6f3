"""Benchmark results shared by every script: rows (figure, reference, ratio, target), plot points, the report.

Each benchmark script builds :class:`Row` values (a figure next to its reference measured in the same run, the
ratio and, where the issue sets one, a :class:`Target`) and :class:`Point` values (data of the scale plots),
prints them with :func:`print_rows` and, with ``--results FILE``, appends them to a JSON file with
:func:`record`. ``make bench`` runs::

    python -m benchmarks.results start FILE     # machine, versions, date, load average
    python -m benchmarks.<script> --results FILE ...
    python -m benchmarks.results report FILE --markdown benchmarks/results.md   # + the PNG plots

The report prints the whole table (rich) and writes the Markdown: machine (cores, RAM, CPU model, load average
at start and end), library versions, date, the table, the targets not met, and the scripts' detailed tables.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

from rich.console import Console
from rich.table import Table

PACKAGES = (
    "duckdb",
    "pypgstac",
    "rasterio",
    "rio-cogeo",
    "rio-tiler",
    "titiler.core",
    "stac-fastapi.api",
    "stac-fastapi.pgstac",
    "pyarrow",
    "geopandas",
    "httpx",
    "uvicorn",
    "uvloop",
    "httptools",
)
"""Versions written into the report, besides Python, GDAL and pgstac."""


@dataclass(frozen=True)
class Target:
    """A bound the issue sets on a row's ratio (or on its value): ``ratio <= bound`` or ``ratio >= bound``."""

    bound: float
    at_least: bool = False
    on: Literal["ratio", "value"] = "ratio"

    def met(self, number: float) -> bool:
        return number >= self.bound if self.at_least else number <= self.bound

    def __str__(self) -> str:
        sign = ">=" if self.at_least else "<="
        return f"{sign} {self.bound:g}" + ("x" if self.on == "ratio" else "")


@dataclass(frozen=True)
class Row:
    """One figure next to its reference, both measured in the same run.

    ``ratio`` is ``value / reference_value`` (``speed_up``: ``reference_value / value``, for "how many times
    faster"); a row without a reference has no ratio, and its target (if any) is on the value.
    """

    section: str
    figure: str
    value: float
    unit: str
    reference: str = ""
    reference_value: float | None = None
    target: Target | None = None
    speed_up: bool = False
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.reference_value is None or not self.value or not self.reference_value:
            return None
        return self.reference_value / self.value if self.speed_up else self.value / self.reference_value

    @property
    def met(self) -> bool | None:
        """Whether the target is reached; None without a target or the number it bounds."""
        if self.target is None:
            return None
        number = self.value if self.target.on == "value" else self.ratio
        return None if number is None else self.target.met(number)


@dataclass(frozen=True)
class Point:
    """One point of a scale plot: ``series`` of ``plot`` has ``y`` at ``x``."""

    plot: str
    series: str
    x: float
    y: float


@dataclass
class Results:
    """Everything one ``make bench`` run measured."""

    machine: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    started: str = ""
    finished: str = ""
    rows: list[Row] = field(default_factory=list)
    points: list[Point] = field(default_factory=list)
    details: dict[str, str] = field(default_factory=dict)
    """Preformatted tables of the scripts (title -> text), copied into the report."""
    notes: list[str] = field(default_factory=list)
    """What was not measured, and why (listed with the targets not met)."""

    @classmethod
    def load(cls, path: Path) -> Results:
        data = json.loads(path.read_text("utf-8"))
        rows = [
            Row(**{**row, "target": Target(**row["target"]) if row.get("target") else None}) for row in data["rows"]
        ]
        return cls(
            machine=data["machine"],
            versions=data["versions"],
            started=data["started"],
            finished=data.get("finished", ""),
            rows=rows,
            points=[Point(**point) for point in data["points"]],
            details=data.get("details", {}),
            notes=data.get("notes", []),
        )

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        document = asdict(self)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(document, indent=1, ensure_ascii=False), "utf-8")
        tmp.replace(path)


# --- machine and versions ----------------------------------------------------------------------------------


def load_average() -> str:
    return ", ".join(f"{value:.2f}" for value in os.getloadavg())


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def memory_gb() -> float:
    import psutil

    return float(psutil.virtual_memory().total) / 2**30


def machine() -> dict[str, Any]:
    """Cores, RAM, CPU model, OS and the load average now."""
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "ram_gb": round(memory_gb(), 1),
        "os": platform.platform(),
        "load_start": load_average(),
    }


def versions() -> dict[str, str]:
    """Python, GDAL (rasterio's and Debian's), pgstac and the libraries of :data:`PACKAGES`."""
    import shutil
    import subprocess

    import rasterio

    found = {"python": platform.python_version(), "gdal (rasterio)": rasterio.__gdal_version__}
    debian = shutil.which("gdal_translate", path="/usr/bin")
    if debian:
        answer = subprocess.run([debian, "--version"], capture_output=True, text=True, check=False)
        found["gdal (Debian gdal_translate)"] = answer.stdout.strip().removeprefix("GDAL ").split(",")[0]
    for package in PACKAGES:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = "not installed"
    found["pgstac (schema of pypgstac)"] = found.get("pypgstac", "")
    return found


def start(path: Path) -> Results:
    """A new results file: machine, versions, date; no rows yet."""
    results = Results(machine=machine(), versions=versions(), started=datetime.now(UTC).isoformat(timespec="seconds"))
    results.save(path)
    return results


def record(
    path: Path | None,
    rows: Iterable[Row] = (),
    points: Iterable[Point] = (),
    details: dict[str, str] | None = None,
    notes: Iterable[str] = (),
) -> None:
    """Append to the results file at ``path`` (started when missing); nothing when ``path`` is None."""
    if path is None:
        return
    results = Results.load(path) if path.is_file() else start(path)
    results.rows.extend(rows)
    results.points.extend(points)
    results.details.update(details or {})
    results.notes.extend(notes)
    results.save(path)


# --- output ------------------------------------------------------------------------------------------------


def _number(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    text = f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}" if abs(value) < 10 else f"{value:.1f}"
    return f"{text} {unit}".strip()


def _cells(row: Row) -> list[str]:
    ratio = "-" if row.ratio is None else f"{row.ratio:.2f}x"
    met = {None: "", True: "yes", False: "NO"}[row.met]
    reference = f"{row.reference}: {_number(row.reference_value, row.unit)}" if row.reference else ""
    return [
        row.figure,
        _number(row.value, row.unit),
        reference,
        ratio,
        str(row.target or ""),
        met,
        row.note,
    ]


HEADER = ("figure", "value", "reference (same run)", "ratio", "target", "met", "note")


def print_rows(rows: Sequence[Row], title: str = "", console: Console | None = None) -> None:
    """The rows as a rich table, one group per section."""
    table = Table(title=title or None, show_lines=False)
    for name in HEADER:
        table.add_column(name, justify="right" if name in ("value", "ratio") else "left", overflow="fold")
    section = None
    for row in rows:
        if row.section != section:
            if section is not None:
                table.add_section()
            section = row.section
        cells = _cells(row)
        style = {True: "green", False: "red"}.get(row.met) if row.met is not None else None
        table.add_row(*[f"[{style}]{cell}[/]" if style and i == 5 else cell for i, cell in enumerate(cells)])
    if console is None:
        console = Console()
        if not console.is_terminal:  # a log file: wide enough for one line per row
            console = Console(width=200)
    console.print(table)


def _shortfall(row: Row) -> str:
    on_ratio = row.target is not None and row.target.on == "ratio"
    reached = f"{row.ratio:.2f}x" if on_ratio and row.ratio is not None else _number(row.value, row.unit)
    note = f" ({row.note})" if row.note else ""
    return f"{row.section}: {row.figure}: {reached}, target {row.target}{note}"


def markdown(results: Results, plots: Sequence[Path] = ()) -> str:
    """The report: machine, versions, date, the table, targets not met, plots, detailed tables."""
    lines = [
        "# Benchmark results",
        "",
        f"Run {results.started} .. {results.finished} (UTC), written by `make bench` "
        "(`python -m benchmarks.results report`). Every figure is next to its reference measured in the same run; "
        "ratios matter more than absolute times on this shared machine.",
        "",
        "## Machine",
        "",
    ]
    m = results.machine
    lines += [
        f"- CPU: {m.get('cpu')} ({m.get('cores')} cores)",
        f"- RAM: {m.get('ram_gb')} GiB",
        f"- OS: {m.get('os')}",
        f"- load average (1, 5, 15 min): {m.get('load_start')} at start, {m.get('load_end', '?')} at end",
        "",
        "## Versions",
        "",
        *[f"- {name}: {version}" for name, version in results.versions.items()],
        "",
        "## Figures",
        "",
        "| section | " + " | ".join(HEADER) + " |",
        "|---|" + "|".join("---:" if name in ("value", "ratio") else "---" for name in HEADER) + "|",
    ]
    lines += [
        f"| {row.section} | " + " | ".join(c.replace("|", "\\|") for c in _cells(row)) + " |" for row in results.rows
    ]
    missed = [row for row in results.rows if row.met is False]
    lines += ["", "## Targets not met", ""]
    if missed:
        lines += [f"- {_shortfall(row)}" for row in missed]
    else:
        lines.append("None: every figure with a target reached it." if results.rows else "No figures were recorded.")
    unmeasured = [row for row in results.rows if row.target is not None and row.met is None]
    lines += [f"- {row.section}: {row.figure}: not measured ({row.note or 'no reference'})" for row in unmeasured]
    lines += [f"- {note}" for note in results.notes]
    if plots:
        lines += ["", "## Plots", "", *[f"![{plot.stem}]({plot.name})" for plot in plots]]
    for title, text in results.details.items():
        lines += ["", f"## {title}", "", "```", text.rstrip(), "```"]
    return "\n".join(lines) + "\n"


def report(path: Path, output: Path, plot_folder: Path | None) -> Path:
    """Finish the results file (end date, load average), print the table, draw the plots, write the Markdown."""
    results = Results.load(path)
    results.finished = datetime.now(UTC).isoformat(timespec="seconds")
    results.machine["load_end"] = load_average()
    results.save(path)
    print_rows(
        results.rows,
        f"Benchmarks {results.started} (load {results.machine.get('load_start')} -> {results.machine['load_end']})",
    )
    plots: list[Path] = []
    if plot_folder is not None:
        from benchmarks.plots import draw_all

        plots = draw_all(results.points, plot_folder)
    output.write_text(markdown(results, plots), "utf-8")
    print(f"wrote {output}" + "".join(f", {plot}" for plot in plots))
    return output


def add_results_option(parser: argparse.ArgumentParser) -> None:
    """``--results FILE``: the scripts' common option to append their rows to a results file."""
    parser.add_argument("--results", type=Path, help="append the figures to this results file (JSON)")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    begin = commands.add_parser("start", help="a new results file: machine, versions, date")
    begin.add_argument("file", type=Path)
    finish = commands.add_parser("report", help="print the table, draw the plots, write the Markdown")
    finish.add_argument("file", type=Path)
    finish.add_argument("--markdown", type=Path, default=Path(__file__).with_name("results.md"))
    finish.add_argument("--plots", type=Path, default=Path(__file__).parent, help="folder of the PNG plots")
    args = parser.parse_args(argv)
    if args.command == "start":
        results = start(args.file)
        print(f"benchmarks on {results.machine['cpu']} x{results.machine['cores']}, load {load_average()}")
    else:
        report(args.file, args.markdown, args.plots)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
