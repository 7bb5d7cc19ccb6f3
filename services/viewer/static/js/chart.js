// A small SVG line chart of a time series (no chart library), with a data table for screen readers.

import { h, svg } from "./dom.js";
import { cstDate, number } from "./format.js";
import { t } from "./i18n.js";

const WIDTH = 340;
const HEIGHT = 170;
const PAD = { left: 52, right: 10, top: 10, bottom: 30 };

/**
 * `points`: [{time: ms since epoch, value: number|null, label: string}]; `highlight`: index of the
 * current point. Returns a <figure> with the chart and a collapsible table of the values.
 */
export function timeSeriesChart(points, { title = "", unit = "", highlight = -1, valueLabel = "" } = {}) {
  const figure = h("figure", { class: "chart" });
  const valid = points.filter((p) => p.value !== null && p.value !== undefined && Number.isFinite(p.value));
  if (!valid.length) {
    figure.append(h("p", { class: "muted" }, t("chart.empty")));
    return figure;
  }
  const times = points.map((p) => p.time);
  let [t0, t1] = [Math.min(...times), Math.max(...times)];
  if (t0 === t1) [t0, t1] = [t0 - 86400000, t1 + 86400000];
  const values = valid.map((p) => p.value);
  let [v0, v1] = [Math.min(...values), Math.max(...values)];
  if (v0 === v1) [v0, v1] = [v0 - 1, v1 + 1];
  const pad = (v1 - v0) * 0.08;
  [v0, v1] = [v0 - pad, v1 + pad];
  const x = (time) => PAD.left + ((time - t0) / (t1 - t0)) * (WIDTH - PAD.left - PAD.right);
  const y = (value) => PAD.top + (1 - (value - v0) / (v1 - v0)) * (HEIGHT - PAD.top - PAD.bottom);

  const label = t("chart.label", {
    title: title || valueLabel,
    count: valid.length,
    first: cstDate(new Date(t0).toISOString()),
    last: cstDate(new Date(t1).toISOString()),
  });
  const chart = svg("svg", {
    viewBox: `0 0 ${WIDTH} ${HEIGHT}`,
    role: "img",
    "aria-label": label,
    class: "chart-svg",
    preserveAspectRatio: "xMidYMid meet",
  });
  chart.append(svg("title", {}, label));

  const ticks = niceTicks(v0, v1, 4);
  for (const tick of ticks) {
    chart.append(
      svg("line", { x1: PAD.left, x2: WIDTH - PAD.right, y1: y(tick), y2: y(tick), class: "grid" }),
      svg("text", { x: PAD.left - 6, y: y(tick) + 4, "text-anchor": "end", class: "tick" }, number(tick, 3)),
    );
  }
  if (v0 < 0 && v1 > 0) {
    chart.append(svg("line", { x1: PAD.left, x2: WIDTH - PAD.right, y1: y(0), y2: y(0), class: "zero" }));
  }
  chart.append(
    svg("line", { x1: PAD.left, x2: PAD.left, y1: PAD.top, y2: HEIGHT - PAD.bottom, class: "axis" }),
    svg("line", { x1: PAD.left, x2: WIDTH - PAD.right, y1: HEIGHT - PAD.bottom, y2: HEIGHT - PAD.bottom, class: "axis" }),
    svg("text", { x: PAD.left, y: HEIGHT - 10, "text-anchor": "start", class: "tick" }, cstDate(new Date(t0).toISOString())),
    svg("text", { x: WIDTH - PAD.right, y: HEIGHT - 10, "text-anchor": "end", class: "tick" }, cstDate(new Date(t1).toISOString())),
  );
  if (unit) {
    chart.append(svg("text", { x: 4, y: PAD.top + 2, "text-anchor": "start", class: "unit", "dominant-baseline": "hanging" }, unit));
  }

  // The line, broken where a value is missing.
  let segment = [];
  const segments = [];
  for (const p of points) {
    if (p.value === null || p.value === undefined || !Number.isFinite(p.value)) {
      if (segment.length) segments.push(segment);
      segment = [];
    } else {
      segment.push(`${x(p.time).toFixed(1)},${y(p.value).toFixed(1)}`);
    }
  }
  if (segment.length) segments.push(segment);
  for (const part of segments) chart.append(svg("polyline", { points: part.join(" "), class: "series" }));
  const dots = points.length <= 60;
  points.forEach((p, index) => {
    if (p.value === null || p.value === undefined || !Number.isFinite(p.value)) return;
    if (index === highlight) {
      chart.append(svg("circle", { cx: x(p.time), cy: y(p.value), r: 5, class: "current" }));
    } else if (dots) {
      chart.append(svg("circle", { cx: x(p.time), cy: y(p.value), r: 2.2, class: "dot" }));
    }
  });
  figure.append(chart);
  if (title) figure.append(h("figcaption", {}, title));

  const rows = points.map((p, index) =>
    h(
      "tr",
      { class: index === highlight ? "current" : null },
      h("td", {}, p.label || cstDate(new Date(p.time).toISOString())),
      h("td", {}, number(p.value)),
    ),
  );
  figure.append(
    h(
      "details",
      { class: "chart-table" },
      h("summary", {}, t("inspect.table")),
      h(
        "table",
        {},
        h("thead", {}, h("tr", {}, h("th", { scope: "col" }, t("inspect.date")), h("th", { scope: "col" }, unit ? `${valueLabel || t("inspect.value")} (${unit})` : valueLabel || t("inspect.value")))),
        h("tbody", {}, rows),
      ),
    ),
  );
  return figure;
}

/** About `count` round tick values between `low` and `high`. */
export function niceTicks(low, high, count) {
  const span = high - low;
  const raw = span / Math.max(1, count);
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * magnitude).find((s) => s >= raw) || raw;
  const ticks = [];
  for (let v = Math.ceil(low / step) * step; v <= high + step * 1e-9; v += step) ticks.push(Number(v.toPrecision(12)));
  return ticks;
}
