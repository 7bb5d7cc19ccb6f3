"""Scale plots (PNG) from the benchmark points: search latency vs item count, publish time vs data size.

``draw_all(points, folder)`` draws one PNG per plot named in :data:`PLOTS` that has points, e.g.
``benchmarks/search-scale.png`` and ``benchmarks/publish-scale.png``; both axes are logarithmic, one line per
series (a series named ``group: key`` gets the colour of its key and the line style of its group).
Called by ``python -m benchmarks.results report``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from benchmarks.results import Point

PLOTS = {
    "search-scale": ("Search latency vs item count (p50, 1 client)", "items", "p50 latency (ms)"),
    "publish-scale": ("Publish time vs data size", "input size (MB)", "time (s)"),
}
"""Plot name -> (title, x label, y label); the PNG is ``<name>.png``."""
LINE_STYLES = ("-", "--", ":", "-.")


def draw(points: Sequence[Point], title: str, x_label: str, y_label: str, target: Path) -> Path:
    """One log-log line plot, a line per series (points sorted by x)."""
    import matplotlib

    matplotlib.use("Agg")  # no display
    import matplotlib.pyplot as plt

    series: dict[str, list[Point]] = defaultdict(list)
    for point in points:
        series[point.series].append(point)
    figure, axes = plt.subplots(figsize=(9, 5.5), dpi=100)
    colors: dict[str, str] = {}
    dashes: dict[str, str] = {}
    palette = [entry["color"] for entry in plt.rcParams["axes.prop_cycle"]]
    try:
        for name, values in sorted(series.items()):
            group, _, key = name.rpartition(": ")  # "mode: query": a colour per query, a line style per mode
            colour = colors.setdefault(key, palette[len(colors) % len(palette)])
            style = dashes.setdefault(group, LINE_STYLES[len(dashes) % len(LINE_STYLES)])
            values.sort(key=lambda point: point.x)
            xs, ys = [p.x for p in values], [p.y for p in values]
            axes.plot(xs, ys, marker="o", color=colour, linestyle=style, label=name)
        axes.set_xscale("log")
        axes.set_yscale("log")
        axes.set_title(title)
        axes.set_xlabel(x_label)
        axes.set_ylabel(y_label)
        axes.grid(True, which="both", alpha=0.3)
        axes.legend(fontsize="small", loc="best")
        figure.tight_layout()
        figure.savefig(target, format="png")
    finally:
        plt.close(figure)
    return target


def draw_all(points: Sequence[Point], folder: Path) -> list[Path]:
    """The PNG of every plot of :data:`PLOTS` that has points, in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    drawn = []
    for name, (title, x_label, y_label) in PLOTS.items():
        mine = [point for point in points if point.plot == name]
        if mine:
            drawn.append(draw(mine, title, x_label, y_label, folder / f"{name}.png"))
    return drawn
