// The services the viewer reads: the STAC API (/stac) and the tile service (/raster), relative to the page.

export class HttpError extends Error {
  constructor(status, url, detail) {
    super(`${status} ${detail || ""}`.trim());
    this.status = status;
    this.url = url;
  }
}

const CONFIG = readConfig();

function readConfig() {
  const meta = document.querySelector('meta[name="ncdc-viewer-config"]');
  try {
    return JSON.parse(meta?.content || "{}");
  } catch {
    return {};
  }
}

export function config() {
  return CONFIG;
}

/** An absolute URL of the service path `path` (relative to the page, so a path prefix is kept). */
export function serviceUrl(service, path, query) {
  const base = new URL(CONFIG[service] || `${service}/`, document.baseURI);
  const url = new URL(path.replace(/^\//, ""), base);
  if (query) {
    for (const [key, value] of Object.entries(query)) {
      if (value === null || value === undefined || value === "") continue;
      for (const v of Array.isArray(value) ? value : [value]) url.searchParams.append(key, String(v));
    }
  }
  return url.href;
}

async function request(url, options = {}) {
  const response = await fetch(url, { credentials: "same-origin", ...options });
  if (!response.ok) {
    let detail = response.statusText;
    try {
      const body = await response.json();
      detail = body.detail || body.description || body.message || detail;
      if (typeof detail !== "string") detail = JSON.stringify(detail);
    } catch {
      // not JSON
    }
    throw new HttpError(response.status, url, detail);
  }
  return response;
}

/** JSON of a GET (or of `options`); `null` for 204 No Content. */
export async function getJson(url, options = {}) {
  const response = await request(url, { headers: { Accept: "application/json" }, ...options });
  if (response.status === 204) return null;
  return response.json();
}

export function postJson(url, body, options = {}) {
  return getJson(url, {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: "application/geo+json, application/json" },
    body: JSON.stringify(body),
    ...options,
  });
}

const enc = encodeURIComponent;

export const stac = {
  collections: () => getJson(serviceUrl("stac", "collections", { limit: 1000 })),
  search: (body, options) => postJson(serviceUrl("stac", "search"), body, options),
  /** Follow a `next` link of a search (POST with a body, or GET). */
  next: (link, options) =>
    link.method === "POST" ? postJson(link.href, link.body || {}, options) : getJson(link.href, options),
};

const TMS = "WebMercatorQuad";

export const raster = {
  timesteps: (cid) => getJson(serviceUrl("raster", `collections/${enc(cid)}/timesteps`)),
  mosaicTileJson: (cid, assets) =>
    getJson(serviceUrl("raster", `collections/${enc(cid)}/${TMS}/tilejson.json`, { assets })),
  itemTileJson: (cid, iid, assets) =>
    getJson(serviceUrl("raster", `collections/${enc(cid)}/items/${enc(iid)}/${TMS}/tilejson.json`, { assets })),
  legend: (cid, asset) => getJson(serviceUrl("raster", `collections/${enc(cid)}/legend`, { asset })),
  timeseries: (cid, lon, lat, asset) =>
    getJson(serviceUrl("raster", `collections/${enc(cid)}/timeseries`, { lon, lat, asset })),
  itemPoint: (cid, iid, lon, lat, assets) =>
    getJson(serviceUrl("raster", `collections/${enc(cid)}/items/${enc(iid)}/point/${lon},${lat}`, { assets })),
  vectorTileJson: (cid, iid, asset) =>
    getJson(serviceUrl("raster", `collections/${enc(cid)}/items/${enc(iid)}/vector/tilejson.json`, { asset })),
  vectorPoint: (cid, iid, lon, lat, radius, asset) =>
    getJson(
      serviceUrl("raster", `collections/${enc(cid)}/items/${enc(iid)}/vector/point`, {
        lon,
        lat,
        radius_m: radius,
        asset,
      }),
    ),
  colormap: (name) => getJson(serviceUrl("raster", `colorMaps/${enc(name)}`)),
};

/** `template` (a tile URL with `{z}/{x}/{y}`) with its query parameters `params` set (or removed when null). */
export function withQuery(template, params) {
  const [path, query = ""] = template.split("?");
  const search = new URLSearchParams(query);
  for (const [key, value] of Object.entries(params)) {
    search.delete(key);
    if (value === null || value === undefined) continue;
    for (const v of Array.isArray(value) ? value : [value]) search.append(key, String(v));
  }
  const text = search.toString();
  return text ? `${path}?${text}` : path;
}

const PARQUET = new Set(["application/vnd.apache.parquet", "application/x-parquet"]);
const COG = /^image\/tiff; application=geotiff; profile=cloud-optimized/;

export function isCog(asset) {
  return COG.test(asset?.type || "") && (asset.roles || ["data"]).includes("data");
}

export function isGeoParquet(asset) {
  return PARQUET.has(asset?.type || "");
}
