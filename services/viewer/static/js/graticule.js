// A graticule for the visible part of the map, drawn in the page (no basemap needed).

const STEPS = [30, 10, 5, 2, 1, 0.5, 0.25, 0.1, 0.05, 0.02, 0.01, 0.005];

/** A step giving about 4 to 10 lines across `span` degrees. */
export function graticuleStep(span) {
  return STEPS.find((step) => span / step >= 4) ?? STEPS[STEPS.length - 1];
}

/**
 * GeoJSON lines of meridians and parallels every `step` degrees over `bounds` ([west, south, east, north]);
 * `major` is set on the lines that also belong to the next coarser step.
 */
export function graticule(bounds, step = graticuleStep(Math.max(bounds[2] - bounds[0], bounds[3] - bounds[1]))) {
  const [west, south, east, north] = [
    Math.max(-180, bounds[0]),
    Math.max(-85, bounds[1]),
    Math.min(180, bounds[2]),
    Math.min(85, bounds[3]),
  ];
  const features = [];
  const major = STEPS[Math.max(0, STEPS.indexOf(step) - 1)] ?? step;
  const isMajor = (v) => Math.abs(v / major - Math.round(v / major)) < 1e-9;
  const round = (v) => Number(v.toFixed(6));
  const first = (low) => Math.ceil(low / step - 1e-9) * step;
  for (let lon = first(west - step); lon <= east + step; lon += step) {
    const x = round(lon);
    if (x < -180 || x > 180) continue;
    features.push(line([[x, south], [x, north]], { major: isMajor(x), value: x, axis: "lon" }));
  }
  for (let lat = first(south - step); lat <= north + step; lat += step) {
    const y = round(lat);
    if (y < -85 || y > 85) continue;
    const points = [];
    const width = east - west;
    for (let i = 0; i <= 16; i += 1) points.push([round(west + (width * i) / 16), y]);
    features.push(line(points, { major: isMajor(y), value: y, axis: "lat" }));
  }
  return { type: "FeatureCollection", features };
}

function line(coordinates, properties) {
  return { type: "Feature", properties, geometry: { type: "LineString", coordinates } };
}

/** Label text of a meridian or parallel: `96.5°E`, `29°N`. */
export function graticuleLabel(value, axis, step) {
  const decimals = Math.max(0, Math.min(3, Math.ceil(-Math.log10(step) + 1e-9)));
  const text = Math.abs(value).toFixed(decimals);
  if (value === 0) return "0°";
  return `${text}°${axis === "lon" ? (value > 0 ? "E" : "W") : value > 0 ? "N" : "S"}`;
}

/**
 * Labels of the graticule along the left and bottom edges of the map, in a layer of HTML over the canvas
 * (no map fonts needed). `map` is a MapLibre map.
 */
export class GraticuleLabels {
  constructor(map) {
    this.map = map;
    this.element = document.createElement("div");
    this.element.className = "graticule-labels";
    this.element.setAttribute("aria-hidden", "true");
    map.getContainer().append(this.element);
    this.update = this.update.bind(this);
    map.on("move", this.update);
    map.on("resize", this.update);
    this.update();
  }

  update() {
    const map = this.map;
    const b = map.getBounds();
    const bounds = [b.getWest(), b.getSouth(), b.getEast(), b.getNorth()];
    const step = graticuleStep(Math.max(bounds[2] - bounds[0], bounds[3] - bounds[1]));
    const { clientWidth: width, clientHeight: height } = map.getContainer();
    const labels = [];
    const center = map.getCenter();
    for (let lon = Math.ceil(bounds[0] / step) * step; lon <= bounds[2]; lon += step) {
      const value = Number(lon.toFixed(6));
      const x = map.project([value, center.lat]).x;
      if (x > 40 && x < width - 40) labels.push(["lon", value, x]);
    }
    for (let lat = Math.ceil(Math.max(-85, bounds[1]) / step) * step; lat <= Math.min(85, bounds[3]); lat += step) {
      const value = Number(lat.toFixed(6));
      const y = map.project([center.lng, value]).y;
      if (y > 20 && y < height - 20) labels.push(["lat", value, y]);
    }
    this.element.replaceChildren(
      ...labels.map(([axis, value, position]) => {
        const span = document.createElement("span");
        span.className = `graticule-label ${axis}`;
        span.textContent = graticuleLabel(value, axis, step);
        if (axis === "lon") span.style.left = `${position}px`;
        else span.style.top = `${position}px`;
        return span;
      }),
    );
  }
}
