// Dates (shown in China Standard Time, like the records), numbers and coordinates.

import { language } from "./i18n.js";

const CST_MS = 8 * 3600 * 1000;

/** `YYYY-MM-DD` of an RFC 3339 time in China Standard Time (UTC+8). */
export function cstDate(value) {
  if (!value) return "";
  const time = Date.parse(value);
  if (Number.isNaN(time)) return String(value);
  return new Date(time + CST_MS).toISOString().slice(0, 10);
}

/** `start – end` of an interval (either end may be open). */
export function period(start, end) {
  const a = cstDate(start);
  const b = cstDate(end);
  if (a && b) return a === b ? a : `${a} – ${b}`;
  return a ? `${a} –` : b ? `– ${b}` : "";
}

/** The collection's temporal extent as text. */
export function collectionPeriod(collection) {
  const [start, end] = collection?.extent?.temporal?.interval?.[0] || [];
  return period(start, end);
}

/** The item's time as text (its interval, else its datetime). */
export function itemPeriod(item) {
  const p = item?.properties || {};
  return p.start_datetime || p.end_datetime ? period(p.start_datetime, p.end_datetime) : cstDate(p.datetime);
}

/** UTC RFC 3339 time of a calendar date (`YYYY-MM-DD`) at the start or the end of that day in CST. */
export function cstDayBound(date, end = false) {
  const [y, m, d] = date.split("-").map(Number);
  const midnight = Date.UTC(y, m - 1, d) - CST_MS;
  const time = end ? midnight + 24 * 3600 * 1000 - 1000 : midnight;
  return new Date(time).toISOString().replace(/\.\d{3}Z$/, "Z");
}

/** A time-step label (`2023-07`, `2018-01-12`, `2023`) for people: `Jul 2023` / `2023年7月`. */
export function stepLabel(label) {
  const month = /^(\d{4})-(\d{2})$/.exec(label || "");
  if (month) {
    const [y, m] = [Number(month[1]), Number(month[2])];
    if (language() === "zh-Hans") return `${y}年${m}月`;
    const names = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    return `${names[m - 1]} ${y}`;
  }
  const day = /^(\d{4})-(\d{2})-(\d{2})$/.exec(label || "");
  if (day && language() === "zh-Hans") return `${Number(day[1])}年${Number(day[2])}月${Number(day[3])}日`;
  return label || "";
}

/** A number with about `digits` significant digits, without trailing noise. */
export function number(value, digits = 4) {
  if (value === null || value === undefined || Number.isNaN(Number(value))) return "–";
  const x = Number(value);
  if (x === 0) return "0";
  if (Math.abs(x) >= 10 ** digits || Math.abs(x) < 1e-3) return x.toPrecision(digits).replace(/\.?0+(e|$)/, "$1");
  return String(Number(x.toPrecision(digits)));
}

/** `29.2500° N, 96.7500° E` style coordinates. */
export function lonLat(lon, lat) {
  const ns = lat >= 0 ? "N" : "S";
  const ew = lon >= 0 ? "E" : "W";
  return `${Math.abs(lat).toFixed(4)}° ${ns}, ${Math.abs(lon).toFixed(4)}° ${ew}`;
}

export function bboxText(bbox) {
  if (!bbox || bbox.length < 4) return "";
  const [w, s, e, n] = bbox;
  return `${lonLat(w, s)} – ${lonLat(e, n)}`;
}

/** The unit in a column description such as "mean LOS velocity (mm/yr)". */
export function unitOf(description) {
  const match = /\(([^()]+)\)\s*$/.exec(description || "");
  return match ? match[1] : "";
}
