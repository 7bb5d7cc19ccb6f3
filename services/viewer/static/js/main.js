// The NCDC data viewer: collections from the STAC API, their tiles, time steps, legends and values on a MapLibre map.
//
// Every request goes to the page's own origin (STAC API at stac/, tiles at raster/, files at files/), except a
// basemap an operator configured. Record text is rendered as text or with the DOM-building Markdown renderer.

import * as maplibregl from "../../vendor/maplibre-gl/maplibre-gl.mjs";
import { HttpError, config, isCog, isGeoParquet, raster, stac, withQuery } from "./api.js";
import { timeSeriesChart } from "./chart.js";
import { clear, externalLink, h, safeUrl } from "./dom.js";
import { bboxText, collectionPeriod, cstDate, cstDayBound, itemPeriod, lonLat, number, stepLabel, unitOf } from "./format.js";
import { GraticuleLabels, graticule } from "./graticule.js";
import { LANGUAGES, collectionText, has, language, pickBilingual, setLanguage, t, translatePage } from "./i18n.js";
import { renderMarkdown } from "./markdown.js";

const $ = (id) => document.getElementById(id);
const EMPTY = { type: "FeatureCollection", features: [] };
const PLAY_INTERVAL_MS = 1600;
const RESULTS_PAGE = 12;
const MAX_FOOTPRINT_PAGES = 5;
const POINT_COLORMAP = "rdbu";
const POINT_RANGE = 20;

const state = {
  generation: 0,
  collections: [],
  byId: new Map(),
  selected: null,
  layers: [],
  layer: null,
  timesteps: null,
  steps: [],
  stepIndex: 0,
  item: null,
  tileJson: null,
  legend: null,
  opacity: 0.85,
  playing: null,
  rasterLayers: [],
  pointLayers: [],
  itemCount: null,
  results: [],
  resultsMatched: null,
  resultsNext: null,
  inspection: null,
  marker: null,
  notice: null,
  pendingStep: null,
  fitData: false,
};

let map;
let navigation;
let layerSeq = 0;
let statusTimer = null;

window.ncdcViewer = { state, get map() { return map; }, ready: false };

// ---------------------------------------------------------------------------------------------------------
// Start

async function start() {
  const params = new URLSearchParams(window.location.search);
  const requested = params.get("lang");
  const browser = (navigator.language || "").toLowerCase().startsWith("zh") ? "zh-Hans" : "en";
  setLanguage(LANGUAGES.includes(requested) ? requested : localStorage.getItem("ncdc-viewer-lang") || browser);
  translatePage();
  bindControls();
  await createMap();
  await loadCollections();
  const wanted = params.get("collection");
  if (wanted && state.byId.has(wanted)) {
    state.pendingStep = params.get("time");
    await selectCollection(wanted);
  }
  document.body.dataset.ready = "true";
  window.ncdcViewer.ready = true;
}

// ---------------------------------------------------------------------------------------------------------
// Map

function baseStyle() {
  const basemap = config().basemap;
  const sources = { graticule: { type: "geojson", data: EMPTY } };
  const layers = [{ id: "background", type: "background", paint: { "background-color": "#e8edf1" } }];
  if (basemap?.kind === "raster") {
    sources.basemap = { type: "raster", tiles: [basemap.url], tileSize: 256, attribution: basemap.attribution || "" };
    layers.push({ id: "basemap", type: "raster", source: "basemap" });
  }
  layers.push(
    {
      id: "graticule-minor",
      type: "line",
      source: "graticule",
      filter: ["!", ["get", "major"]],
      paint: { "line-color": "#c3ccd5", "line-width": 0.6 },
    },
    {
      id: "graticule-major",
      type: "line",
      source: "graticule",
      filter: ["get", "major"],
      paint: { "line-color": "#9fadbb", "line-width": 1 },
    },
  );
  return { version: 8, sources, layers };
}

function overlays() {
  return {
    sources: {
      extents: { type: "geojson", data: EMPTY, promoteId: "id" },
      footprints: { type: "geojson", data: EMPTY },
      results: { type: "geojson", data: EMPTY },
      highlight: { type: "geojson", data: EMPTY },
    },
    layers: [
      // Invisible anchors keeping rasters under points, and both under the outlines.
      { id: "anchor-raster", type: "background", layout: { visibility: "none" } },
      { id: "anchor-points", type: "background", layout: { visibility: "none" } },
      {
        id: "extents-fill",
        type: "fill",
        source: "extents",
        filter: ["!", ["get", "selected"]],
        paint: {
          "fill-color": "#1f6feb",
          "fill-opacity": ["case", ["boolean", ["feature-state", "hover"], false], 0.22, 0.08],
        },
      },
      {
        id: "extents-line",
        type: "line",
        source: "extents",
        paint: {
          "line-color": ["case", ["get", "selected"], "#cf222e", "#1f6feb"],
          "line-width": ["case", ["get", "selected"], 2.5, 1.5],
        },
      },
      {
        id: "footprints",
        type: "line",
        source: "footprints",
        paint: { "line-color": "#24292f", "line-width": 1, "line-opacity": 0.7, "line-dasharray": [2, 2] },
      },
      { id: "results", type: "line", source: "results", paint: { "line-color": "#8250df", "line-width": 1.5 } },
      { id: "highlight", type: "line", source: "highlight", paint: { "line-color": "#cf222e", "line-width": 3 } },
    ],
  };
}

async function createMap() {
  const basemap = config().basemap;
  map = new maplibregl.Map({
    container: "map",
    style: basemap?.kind === "style" ? basemap.url : baseStyle(),
    center: [86, 35],
    zoom: 3,
    maxPitch: 0,
    dragRotate: false,
    attributionControl: { compact: true, customAttribution: "NCDC · MapLibre" },
    cooperativeGestures: false,
    localIdeographFontFamily: "sans-serif",
    fadeDuration: 0,
  });
  map.touchZoomRotate.disableRotation();
  navigation = new maplibregl.NavigationControl({ showCompass: false });
  map.addControl(navigation, "top-left");
  map.addControl(new maplibregl.ScaleControl({ unit: "metric" }), "bottom-right");
  map.addControl(new CoordinatesControl(), "bottom-right");
  map.on("error", onMapError);
  map.on("idle", () => {
    document.body.dataset.mapIdle = "true";
  });
  map.on("dataloading", () => {
    document.body.dataset.mapIdle = "false";
  });
  await new Promise((resolve) => map.once("load", resolve));
  const extra = overlays();
  for (const [id, source] of Object.entries(extra.sources)) map.addSource(id, source);
  for (const layer of extra.layers) map.addLayer(layer);
  map.getCanvas().setAttribute("aria-label", t("map"));
  if (config().basemap?.kind !== "style") {
    map.on("moveend", updateGraticule);
    updateGraticule();
    new GraticuleLabels(map);
  }
  map.on("click", onMapClick);
  let hovered = null;
  map.on("mousemove", "extents-fill", (event) => {
    map.getCanvas().style.cursor = state.selected ? "" : "pointer";
    const id = event.features?.[0]?.id;
    if (hovered !== null && hovered !== id) map.setFeatureState({ source: "extents", id: hovered }, { hover: false });
    hovered = id ?? null;
    if (hovered !== null) map.setFeatureState({ source: "extents", id: hovered }, { hover: true });
  });
  map.on("mouseleave", "extents-fill", () => {
    map.getCanvas().style.cursor = "";
    if (hovered !== null) map.setFeatureState({ source: "extents", id: hovered }, { hover: false });
    hovered = null;
  });
  translateMapControls();
}

class CoordinatesControl {
  onAdd(target) {
    this.element = h("div", { class: "maplibregl-ctrl coords", "aria-hidden": "true" });
    target.on("mousemove", (event) => {
      this.element.textContent = lonLat(event.lngLat.lng, event.lngLat.lat);
    });
    return this.element;
  }

  onRemove() {
    this.element.remove();
  }
}

function updateGraticule() {
  if (!map.getSource("graticule")) return;
  const b = map.getBounds();
  map.getSource("graticule").setData(graticule([b.getWest(), b.getSouth(), b.getEast(), b.getNorth()]));
}

function translateMapControls() {
  const labels = { ".maplibregl-ctrl-zoom-in": language() === "zh-Hans" ? "放大" : "Zoom in",
    ".maplibregl-ctrl-zoom-out": language() === "zh-Hans" ? "缩小" : "Zoom out" };
  for (const [selector, label] of Object.entries(labels)) {
    const button = document.querySelector(selector);
    if (button) {
      button.title = label;
      button.setAttribute("aria-label", label);
    }
  }
  map?.getCanvas().setAttribute("aria-label", t("map"));
  $("map").setAttribute("aria-label", t("map"));
  $("sidebar").setAttribute("aria-label", t("sidebar"));
}

function onMapError(event) {
  const status = event?.error?.status;
  if (status === 401 || status === 403) {
    setNotice(t(status === 401 ? "layer.denied401" : "layer.denied403"));
  } else if (event?.sourceId && event.sourceId.startsWith("data-")) {
    setNotice(t("layer.failed"));
  }
  console.warn("map:", event?.error?.message || event);
}

function markBusy() {
  document.body.dataset.mapIdle = "false";
}

function bboxOf(collection) {
  return collection?.extent?.spatial?.bbox?.[0] || null;
}

function fitBbox(bbox, options = {}) {
  if (!bbox) return;
  const [w, s, e, n] = bbox;
  const pad = Math.min(60, Math.max(20, Math.round(Math.min(map.getContainer().clientWidth, map.getContainer().clientHeight) / 12)));
  map.fitBounds([[w, s], [e, n]], { padding: pad, maxZoom: 14, duration: 0, ...options });
}

function polygonOf(bbox, properties = {}) {
  const [w, s, e, n] = bbox;
  return {
    type: "Feature",
    properties,
    geometry: { type: "Polygon", coordinates: [[[w, s], [e, s], [e, n], [w, n], [w, s]]] },
  };
}

// ---------------------------------------------------------------------------------------------------------
// Collections

async function loadCollections() {
  const body = await stac.collections();
  state.collections = (body?.collections || []).slice();
  state.byId = new Map(state.collections.map((c) => [c.id, c]));
  renderCollectionList();
  updateExtents();
  const boxes = state.collections.map(bboxOf).filter(Boolean);
  if (boxes.length) {
    fitBbox([
      Math.min(...boxes.map((b) => b[0])),
      Math.min(...boxes.map((b) => b[1])),
      Math.max(...boxes.map((b) => b[2])),
      Math.max(...boxes.map((b) => b[3])),
    ]);
  }
}

function updateExtents() {
  const features = state.collections
    .filter((c) => bboxOf(c) && (!state.selected || c.id === state.selected.id))
    .map((c) => polygonOf(bboxOf(c), { id: c.id, selected: c.id === state.selected?.id }));
  map.getSource("extents")?.setData({ type: "FeatureCollection", features });
}

function shareBadge(collection) {
  const share = collection["ncdc:share_type"];
  const key = ["open-access", "login-access", "apply-access"].includes(share) ? share : "unknown";
  return h("span", { class: `badge share share-${key}`, dataset: { share: share || "" } }, t(`share.${key}`));
}

function renderCollectionList() {
  const list = clear($("collection-list"));
  $("collections-empty").hidden = state.collections.length > 0;
  for (const collection of state.collections) {
    const selected = collection.id === state.selected?.id;
    const button = h(
      "button",
      {
        type: "button",
        class: "collection",
        "aria-current": selected ? "true" : null,
        dataset: { collection: collection.id },
        onclick: () => selectCollection(collection.id, { focus: true }),
      },
      h("span", { class: "collection-title" }, collectionText(collection, "title") || collection.id),
      h("span", { class: "collection-meta" }, h("span", { class: "period" }, collectionPeriod(collection)), " ", shareBadge(collection)),
    );
    list.append(h("li", {}, button));
  }
}

async function selectCollection(id, { fit = true, keepResults = false, focus = false } = {}) {
  const collection = state.byId.get(id);
  if (!collection) return;
  const generation = ++state.generation;
  stopPlaying();
  clearDataLayers();
  closeInspector();
  setNotice(null);
  Object.assign(state, {
    selected: collection,
    layers: layerDefinitions(collection),
    layer: null,
    timesteps: null,
    steps: [],
    stepIndex: 0,
    item: null,
    tileJson: null,
    legend: null,
    itemCount: null,
  });
  if (!keepResults) clearResults();
  map.getSource("highlight").setData(EMPTY);
  map.getSource("footprints").setData(EMPTY);
  state.layer = state.layers[0] || null;
  renderCollectionList();
  renderCollectionPanel();
  updateExtents();
  if (fit) fitBbox(bboxOf(collection));
  state.fitData = fit;
  $("collections-section").hidden = true;
  $("collection-panel").hidden = false;
  if (focus) $("collection-title")?.focus({ preventScroll: true });
  updateUrl();
  loadFootprints(collection, generation);
  if (state.layers.some((layer) => layer.kind === "raster")) {
    try {
      state.timesteps = await raster.timesteps(collection.id);
    } catch (error) {
      state.timesteps = null;
      console.warn("timesteps", error);
    }
    if (generation !== state.generation) return;
  }
  await activateLayer(state.layer, generation);
}

function showCollectionList() {
  ++state.generation;
  stopPlaying();
  clearDataLayers();
  closeInspector();
  setNotice(null);
  Object.assign(state, { selected: null, layers: [], layer: null, item: null, steps: [], legend: null });
  map.getSource("highlight").setData(EMPTY);
  map.getSource("footprints").setData(EMPTY);
  $("collection-panel").hidden = true;
  $("collections-section").hidden = false;
  $("layer-panel").hidden = true;
  $("time-panel").hidden = true;
  renderCollectionList();
  updateExtents();
  updateUrl();
  const boxes = state.collections.map(bboxOf).filter(Boolean);
  if (boxes.length) {
    fitBbox([
      Math.min(...boxes.map((b) => b[0])),
      Math.min(...boxes.map((b) => b[1])),
      Math.max(...boxes.map((b) => b[2])),
      Math.max(...boxes.map((b) => b[3])),
    ]);
  }
  $("collection-list").querySelector("button")?.focus({ preventScroll: true });
}

/** What the collection can draw: its renders (raster), else its COG assets, and its GeoParquet point assets. */
function layerDefinitions(collection) {
  const itemAssets = collection.item_assets || {};
  const cogs = Object.keys(itemAssets).filter((key) => isCog(itemAssets[key]));
  const layers = Object.entries(collection.renders || {})
    .filter(([, render]) => Array.isArray(render.assets) && render.assets.length && render.assets.every((a) => cogs.includes(a)))
    .map(([key, render]) => ({ kind: "raster", id: key, title: render.title || itemAssets[render.assets[0]]?.title || key, assets: render.assets }));
  if (!layers.length) {
    for (const key of cogs) layers.push({ kind: "raster", id: key, title: itemAssets[key].title || key, assets: [key] });
  }
  for (const [key, asset] of Object.entries(itemAssets)) {
    if (isGeoParquet(asset)) layers.push({ kind: "points", id: key, title: null, asset: key });
  }
  return layers;
}

async function loadFootprints(collection, generation) {
  const features = [];
  const seen = new Set();
  let matched = null;
  try {
    let page = await stac.search({
      collections: [collection.id],
      limit: 1000,
      fields: { include: ["id", "collection", "geometry", "bbox", "properties.start_datetime", "properties.end_datetime", "properties.datetime"], exclude: ["links", "assets"] },
    });
    for (let n = 0; page && n < MAX_FOOTPRINT_PAGES; n += 1) {
      if (generation !== state.generation) return;
      matched = page.numberMatched ?? matched;
      for (const feature of page.features || []) {
        const key = JSON.stringify(feature.geometry);
        if (!feature.geometry || seen.has(key)) continue;
        seen.add(key);
        features.push({ type: "Feature", properties: { id: feature.id }, geometry: feature.geometry });
      }
      const next = (page.links || []).find((link) => link.rel === "next");
      page = next ? await stac.next(next) : null;
    }
  } catch (error) {
    console.warn("footprints", error);
    return;
  }
  if (generation !== state.generation) return;
  map.getSource("footprints").setData({ type: "FeatureCollection", features });
  state.itemCount = matched;
  const count = $("collection-items");
  if (count && matched !== null) count.textContent = t("items", { count: matched });
}

// ---------------------------------------------------------------------------------------------------------
// Collection panel

function renderCollectionPanel() {
  const panel = clear($("collection-panel"));
  const c = state.selected;
  if (!c) return;
  const title = collectionText(c, "title") || c.id;
  const badges = h("p", { class: "badges" }, shareBadge(c));
  if (c["ncdc:synthetic_sample"]) badges.append(" ", h("span", { class: "badge synthetic" }, t("badge.synthetic")));
  const embargo = c["ncdc:protected_to"];
  if (embargo && Date.parse(embargo) > Date.now()) {
    badges.append(" ", h("span", { class: "badge embargo" }, t("badge.embargo", { date: cstDate(embargo) })));
  }
  panel.append(
    h("button", { type: "button", class: "back", onclick: showCollectionList }, `← ${t("collections.back")}`),
    h("h2", { id: "collection-title", tabindex: "-1" }, title),
    badges,
  );
  const thumbnail = sameOriginUrl(c.assets?.thumbnail?.href);
  if (thumbnail) {
    panel.append(h("img", { class: "thumbnail", src: thumbnail, alt: t("thumbnail", { title }), loading: "lazy", width: 320, height: 180 }));
  }
  const facts = h("dl", { class: "facts" });
  const fact = (label, ...value) => facts.append(h("dt", {}, label), h("dd", {}, ...value));
  fact(t("period"), collectionPeriod(c));
  const resolution = c["ncdc:temporal_resolution"];
  if (resolution) fact(t("resolution"), has(`resolution.${resolution}`) ? t(`resolution.${resolution}`) : resolution);
  const bbox = bboxOf(c);
  if (bbox) fact(t("extent"), bboxText(bbox));
  const place = collectionText(c, "ncdc:place");
  if (place) fact(t("place"), place);
  fact(t("license"), licenseNode(c));
  fact(t("itemsLabel"), h("span", { id: "collection-items" }, state.itemCount === null ? "…" : t("items", { count: state.itemCount })));
  panel.append(facts);

  const description = collectionText(c, "description");
  if (description) {
    panel.append(h("h3", {}, t("description")), h("div", { class: "markdown", id: "collection-description" }, renderMarkdown(description, { baseLevel: 4 })));
  }
  const lineage = collectionText(c, "processing:lineage");
  if (lineage) {
    panel.append(h("details", { class: "lineage" }, h("summary", {}, t("lineage")), h("div", { class: "markdown" }, renderMarkdown(lineage, { baseLevel: 4 }))));
  }
  const citation = c["sci:citation"];
  if (citation) {
    const copy = h("button", { type: "button", class: "small", onclick: () => copyText(citation) }, t("citation.copy"));
    panel.append(h("h3", {}, t("citation")), h("blockquote", { class: "citation", id: "collection-citation" }, citation), copy);
  }
  const contacts = c.contacts || [];
  if (contacts.length) {
    panel.append(h("h3", {}, t("contacts")), h("ul", { class: "contacts" }, contacts.map(contactNode)));
  }
  const keywords = c.keywords || [];
  if (keywords.length) {
    panel.append(h("h3", {}, t("keywords")), h("ul", { class: "keywords" }, keywords.map((k) => h("li", {}, k))));
  }
  const links = (c.links || []).filter((link) => ["about", "cite-as"].includes(link.rel) && safeUrl(link.href));
  if (links.length) {
    panel.append(
      h("h3", {}, t("links")),
      h("ul", { class: "links" }, links.map((link) => h("li", {}, externalLink(link.href, has(`link.${link.rel}`) ? t(`link.${link.rel}`) : pickBilingual(link.title) || link.href)))),
    );
  }
}

function licenseNode(c) {
  const link = (c.links || []).find((l) => l.rel === "license" && safeUrl(l.href));
  const text = c.license || link?.title || "";
  return link ? externalLink(link.href, text || link.href) : text;
}

function contactNode(contact) {
  const roles = (contact.roles || []).map((role) => (has(`role.${role}`) ? t(`role.${role}`) : role));
  const item = h("li", {}, h("span", { class: "contact-name" }, contact.name || contact.organization || ""));
  if (contact.organization && contact.name) item.append(", ", contact.organization);
  if (roles.length) item.append(" ", h("span", { class: "muted" }, `(${roles.join(", ")})`));
  for (const email of contact.emails || []) {
    if (email?.value) item.append(" ", externalLink(`mailto:${email.value}`, email.value));
  }
  return item;
}

async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
    showStatus(t("citation.copied"));
  } catch {
    const range = document.createRange();
    range.selectNodeContents($("collection-citation"));
    window.getSelection()?.removeAllRanges();
    window.getSelection()?.addRange(range);
  }
}

function sameOriginUrl(href) {
  const url = safeUrl(href);
  return url && new URL(url).origin === window.location.origin ? url : null;
}

// ---------------------------------------------------------------------------------------------------------
// Layers: collection mosaics, item tiles, PS points

function clearDataLayers() {
  for (const id of [...state.rasterLayers, ...state.pointLayers]) removeLayer(id);
  state.rasterLayers = [];
  state.pointLayers = [];
}

function removeLayer(id) {
  if (map.getLayer(id)) map.removeLayer(id);
  if (map.getSource(id)) map.removeSource(id);
}

async function activateLayer(layer, generation = state.generation) {
  state.layer = layer;
  clearDataLayers();
  setNotice(null);
  renderLayerPanel();
  if (!layer) return;
  markBusy();
  // data-state of the layer panel: loading, ready (its tiles are requested) or error.
  const panel = $("layer-panel");
  panel.dataset.state = "loading";
  try {
    if (layer.kind === "points") await showPoints(layer, generation);
    else if (state.item) await showItemRaster(state.item, layer, generation);
    else await showMosaic(layer, generation);
    if (generation === state.generation) panel.dataset.state = "ready";
  } catch (error) {
    if (generation !== state.generation) return;
    console.warn("layer", error);
    setNotice(layerError(error));
    panel.dataset.state = "error";
  }
  updateUrl();
}

function layerError(error) {
  if (error instanceof HttpError && (error.status === 401 || error.status === 403)) {
    return t(error.status === 401 ? "layer.denied401" : "layer.denied403");
  }
  return `${t("layer.failed")} ${error.message || ""}`.trim();
}

async function showMosaic(layer, generation) {
  const cid = state.selected.id;
  const [tileJson, legend] = await Promise.all([raster.mosaicTileJson(cid, layer.assets), raster.legend(cid, layer.assets[0]).catch(() => null)]);
  if (generation !== state.generation) return;
  state.tileJson = tileJson;
  state.legend = legend && rasterLegend(legend);
  if (state.fitData) fitBbox(tileJson.bounds);
  state.fitData = false;
  const steps = state.timesteps && layer.assets.includes(state.timesteps.asset) ? state.timesteps.timesteps || [] : [];
  state.steps = steps.length > 1 ? steps : [];
  if (state.steps.length) {
    const wanted = state.pendingStep ? state.steps.findIndex((s) => s.datetime === state.pendingStep) : -1;
    state.stepIndex = wanted >= 0 ? wanted : state.steps.length - 1;
  }
  state.pendingStep = null;
  renderLayerPanel();
  renderTimePanel();
  drawRaster(mosaicUrl());
}

function mosaicUrl() {
  const step = state.steps[state.stepIndex];
  return withQuery(state.tileJson.tiles[0], { datetime: step ? step.datetime : null });
}

async function showItemRaster(item, layer, generation) {
  const cid = state.selected.id;
  const assets = layer.assets.filter((a) => item.assets?.[a]);
  const [tileJson, legend] = await Promise.all([
    raster.itemTileJson(cid, item.id, assets.length ? assets : layer.assets),
    raster.legend(cid, layer.assets[0]).catch(() => null),
  ]);
  if (generation !== state.generation) return;
  state.tileJson = tileJson;
  state.legend = legend && rasterLegend(legend);
  state.steps = [];
  renderLayerPanel();
  renderTimePanel();
  drawRaster(tileJson.tiles[0]);
}

function rasterLegend(legend) {
  return {
    title: legend.title || legend.band_name || legend.asset,
    unit: legend.unit || "",
    low: legend.rescale?.[0],
    high: legend.rescale?.[1],
    stops: (legend.stops || []).map((s) => s.color),
  };
}

function drawRaster(url) {
  const info = state.tileJson || {};
  const id = `data-raster-${++layerSeq}`;
  markBusy();
  // While time steps play faster than tiles load, keep only the one on screen and the newest.
  while (state.rasterLayers.length > 1) removeLayer(state.rasterLayers.splice(1, 1)[0]);
  map.addSource(id, {
    type: "raster",
    tiles: [url],
    tileSize: 512,
    bounds: info.bounds || [-180, -85, 180, 85],
    minzoom: Math.max(0, (info.minzoom ?? 0) - 5),
    maxzoom: info.maxzoom ?? 22,
  });
  map.addLayer(
    { id, type: "raster", source: id, paint: { "raster-opacity": state.opacity, "raster-fade-duration": 0, "raster-resampling": "nearest" } },
    "anchor-raster",
  );
  state.rasterLayers.push(id);
  // Keep the previous time step on screen until this one has loaded, then drop it.
  map.once("idle", () => {
    const index = state.rasterLayers.indexOf(id);
    if (index <= 0) return;
    for (const old of state.rasterLayers.slice(0, index)) removeLayer(old);
    state.rasterLayers = state.rasterLayers.slice(index);
  });
}

async function pointItems(layer) {
  const cid = state.selected.id;
  const body = await stac.search({ collections: [cid], limit: 100, fields: { include: ["id", "bbox", "assets"], exclude: ["links"] } });
  return (body?.features || []).filter((item) => isGeoParquet(item.assets?.[layer.asset]));
}

async function showPoints(layer, generation) {
  const cid = state.selected.id;
  const items = state.item ? [state.item].filter((item) => isGeoParquet(item.assets?.[layer.asset])) : await pointItems(layer);
  const tileJsons = await Promise.all(items.map((item) => raster.vectorTileJson(cid, item.id, layer.asset)));
  if (generation !== state.generation) return;
  const first = tileJsons[0];
  if (state.fitData && tileJsons.length) {
    const boxes = tileJsons.map((tj) => tj.bounds).filter(Boolean);
    if (boxes.length) fitBbox([Math.min(...boxes.map((b) => b[0])), Math.min(...boxes.map((b) => b[1])), Math.max(...boxes.map((b) => b[2])), Math.max(...boxes.map((b) => b[3]))]);
  }
  state.fitData = false;
  const fields = first?.vector_layers?.[0]?.fields || {};
  const column =
    first?.value_column ||
    Object.keys(fields).find((name) => /^vel/i.test(name)) ||
    Object.keys(fields).find((name) => /DOUBLE|FLOAT|INT/i.test(fields[name])) ||
    null;
  const render = first?.render || {};
  const colormapName = render.colormap_name || POINT_COLORMAP;
  const colors = await colormapStops(colormapName);
  if (generation !== state.generation) return;
  const rescale = render.rescale?.[0];
  const description = fields[column] && !/^[A-Z]+$/.test(fields[column]) ? fields[column] : column;
  state.legend = {
    title: pickBilingual(String(description || "").replace(/\s*\([^()]*\)\s*$/, "")) || column,
    unit: unitOf(description),
    low: rescale ? rescale[0] : -POINT_RANGE,
    high: rescale ? rescale[1] : POINT_RANGE,
    stops: colors,
    column,
    fixed: Boolean(rescale),
  };
  state.steps = [];
  renderLayerPanel();
  renderTimePanel();
  items.forEach((item, index) => {
    const tileJson = tileJsons[index];
    const id = `data-points-${item.id}-${++layerSeq}`;
    map.addSource(id, {
      type: "vector",
      tiles: tileJson.tiles,
      minzoom: tileJson.minzoom ?? 0,
      maxzoom: Math.min(tileJson.maxzoom ?? 16, 16),
      bounds: tileJson.bounds,
    });
    map.addLayer(
      {
        id,
        type: "circle",
        source: id,
        "source-layer": tileJson.vector_layers?.[0]?.id || "points",
        metadata: { item: item.id },
        paint: {
          "circle-radius": ["interpolate", ["linear"], ["zoom"], 6, 2, 10, 3.5, 14, 6, 18, 9],
          "circle-color": pointColor(),
          "circle-opacity": state.opacity,
          "circle-stroke-width": 0.6,
          "circle-stroke-color": "rgba(36, 41, 47, 0.55)",
          "circle-stroke-opacity": state.opacity,
        },
      },
      "anchor-points",
    );
    state.pointLayers.push(id);
  });
  if (!state.legend.fixed && column) {
    map.once("idle", () => {
      if (generation !== state.generation) return;
      fitPointRange(column);
    });
  }
}

function pointColor() {
  const { low, high, stops, column } = state.legend;
  if (!column || !stops.length) return "#0969da";
  const expression = ["interpolate", ["linear"], ["to-number", ["coalesce", ["get", column], 0]]];
  stops.forEach((color, i) => expression.push(low + ((high - low) * i) / (stops.length - 1), color));
  return expression;
}

/** A symmetric range around zero covering 98% of the values drawn (for points without a render range). */
function fitPointRange(column) {
  const values = [];
  for (const id of state.pointLayers) {
    for (const feature of map.querySourceFeatures(id, { sourceLayer: map.getLayer(id)?.sourceLayer || "points" })) {
      const value = Number(feature.properties?.[column]);
      if (Number.isFinite(value)) values.push(Math.abs(value));
    }
  }
  if (!values.length) return;
  values.sort((a, b) => a - b);
  const p98 = values[Math.min(values.length - 1, Math.floor(values.length * 0.98))];
  const nice = niceCeil(p98);
  state.legend.low = -nice;
  state.legend.high = nice;
  for (const id of state.pointLayers) map.setPaintProperty(id, "circle-color", pointColor());
  renderLegend();
}

function niceCeil(value) {
  if (!(value > 0)) return 1;
  const magnitude = 10 ** Math.floor(Math.log10(value));
  return [1, 2, 2.5, 5, 10].map((m) => m * magnitude).find((v) => v >= value);
}

const colormapCache = new Map();

async function colormapStops(name, count = 11) {
  if (!colormapCache.has(name)) {
    colormapCache.set(
      name,
      raster.colormap(name).then((table) =>
        Array.from({ length: count }, (_, i) => {
          const rgba = table[String(Math.round((i / (count - 1)) * 255))] || [128, 128, 128, 255];
          return `rgb(${rgba[0]}, ${rgba[1]}, ${rgba[2]})`;
        }),
      ),
    );
  }
  try {
    return await colormapCache.get(name);
  } catch (error) {
    colormapCache.delete(name);
    console.warn("colormap", error);
    return ["#b2182b", "#f7f7f7", "#2166ac"];
  }
}

async function showItem(item) {
  const cid = item.collection;
  if (state.selected?.id !== cid) await selectCollection(cid, { fit: false, keepResults: true });
  if (state.selected?.id !== cid) return;
  const generation = ++state.generation;
  stopPlaying();
  closeInspector();
  state.item = item;
  map.getSource("highlight").setData(item.geometry ? { type: "FeatureCollection", features: [{ type: "Feature", properties: {}, geometry: item.geometry }] } : EMPTY);
  if (item.bbox) fitBbox(item.bbox);
  const layer =
    state.layers.find((l) => l.kind === "raster" && l.assets.every((a) => item.assets?.[a])) ||
    state.layers.find((l) => l.kind === "points" && item.assets?.[l.asset]) ||
    state.layer;
  await activateLayer(layer, generation);
}

function backToMosaic() {
  state.item = null;
  map.getSource("highlight").setData(EMPTY);
  closeInspector();
  fitBbox(bboxOf(state.selected));
  state.fitData = true;
  activateLayer(state.layer, ++state.generation);
}

// ---------------------------------------------------------------------------------------------------------
// Layer panel, legend, time

function renderLayerPanel() {
  const panel = $("layer-panel");
  panel.hidden = !state.selected || !state.layer;
  if (panel.hidden) return;
  const select = clear($("layer-select"));
  for (const layer of state.layers) {
    const title = layer.kind === "points" ? t("layer.pointsTitle") : pickBilingual(layer.title);
    select.append(h("option", { value: layer.id, selected: layer === state.layer ? true : null }, title));
  }
  $("layer-select-label").hidden = state.layers.length < 2;
  const view = clear($("layer-view"));
  if (state.item) {
    view.append(
      h("span", {}, t("layer.item", { id: state.item.id })),
      " ",
      h("button", { type: "button", class: "small", id: "back-to-mosaic", onclick: backToMosaic }, t("layer.backToMosaic")),
    );
  } else if (state.layer.kind === "points") {
    view.append(t("layer.points", { column: state.legend?.column || "" }));
  } else {
    view.append(t("layer.mosaic"));
  }
  renderLegend();
  renderNotice();
}

function renderLegend() {
  const box = clear($("legend"));
  const legend = state.legend;
  if (!legend) return;
  const ramp = h("div", { class: "ramp", role: "img", "aria-label": `${t("legend")}: ${t("legend.range", { low: number(legend.low, 3), high: number(legend.high, 3), unit: legend.unit })}` });
  ramp.style.background = `linear-gradient(to right, ${legend.stops.join(", ")})`;
  const mid = (legend.low + legend.high) / 2;
  box.append(
    h("p", { class: "legend-title" }, pickBilingual(legend.title), legend.unit ? h("span", { class: "unit" }, ` (${legend.unit})`) : null),
    ramp,
    h(
      "div",
      { class: "ramp-labels", "aria-hidden": "true" },
      h("span", {}, number(legend.low, 3)),
      h("span", {}, number(mid, 3)),
      h("span", {}, number(legend.high, 3)),
    ),
  );
}

function setNotice(text) {
  state.notice = text;
  renderNotice();
}

function renderNotice() {
  const notice = $("layer-notice");
  notice.hidden = !state.notice;
  notice.textContent = state.notice || "";
}

function renderTimePanel() {
  const panel = $("time-panel");
  panel.hidden = state.steps.length < 2 || Boolean(state.item);
  if (panel.hidden) return;
  const slider = $("time-slider");
  slider.max = String(state.steps.length - 1);
  slider.value = String(state.stepIndex);
  const label = stepLabel(state.steps[state.stepIndex]?.datetime);
  slider.setAttribute("aria-valuetext", label);
  $("time-label").textContent = label;
  renderPlayButton();
}

function renderPlayButton() {
  const play = $("time-play");
  play.setAttribute("aria-pressed", String(Boolean(state.playing)));
  play.dataset.i18nLabel = state.playing ? "time.pause" : "time.play";
  play.setAttribute("aria-label", t(play.dataset.i18nLabel));
  play.title = t(play.dataset.i18nLabel);
  play.textContent = state.playing ? "⏸" : "▶";
}

function setStep(index) {
  if (!state.steps.length) return;
  const n = state.steps.length;
  const next = ((index % n) + n) % n;
  if (next === state.stepIndex && state.rasterLayers.length) {
    renderTimePanel();
    return;
  }
  state.stepIndex = next;
  renderTimePanel();
  drawRaster(mosaicUrl());
  updateUrl();
  if (state.inspection?.kind === "raster") renderInspection();
}

function togglePlay() {
  if (state.playing) {
    stopPlaying();
    return;
  }
  state.playing = setInterval(() => setStep(state.stepIndex + 1), PLAY_INTERVAL_MS);
  renderPlayButton();
}

function stopPlaying() {
  if (!state.playing) return;
  clearInterval(state.playing);
  state.playing = null;
  renderPlayButton();
}

// ---------------------------------------------------------------------------------------------------------
// Values at a point

function onMapClick(event) {
  if (!state.selected) {
    // Nested extents: the smallest one under the pointer is the one meant.
    const area = (id) => {
      const [w, s, e, n] = bboxOf(state.byId.get(id)) || [0, 0, 360, 180];
      return (e - w) * (n - s);
    };
    const ids = map.queryRenderedFeatures(event.point, { layers: ["extents-fill"] }).map((f) => f.properties?.id);
    const hit = ids.filter((id) => state.byId.has(id)).sort((a, b) => area(a) - area(b))[0];
    if (hit) selectCollection(hit, { focus: true });
    return;
  }
  inspect(event.lngLat, event.point, false);
}

async function inspect(lngLat, point, fromKeyboard) {
  const layer = state.layer;
  const panel = $("inspector");
  const body = clear($("inspector-body"));
  panel.hidden = false;
  if (!state.selected || !layer) {
    body.append(h("p", {}, t("inspect.pickLayer")));
    return;
  }
  placeMarker(lngLat);
  body.append(h("p", { class: "muted" }, t("inspect.loading")));
  panel.dataset.state = "loading";
  if (fromKeyboard) panel.focus({ preventScroll: false });
  const generation = state.generation;
  try {
    if (layer.kind === "points") await inspectPoints(lngLat, point, generation);
    else await inspectRaster(lngLat, generation);
  } catch (error) {
    if (generation !== state.generation) return;
    state.inspection = { kind: "error", message: layerError(error) };
    renderInspection();
  }
}

async function inspectRaster(lngLat, generation) {
  const cid = state.selected.id;
  const asset = state.layer.assets[0];
  const lon = Number(lngLat.lng.toFixed(6));
  const lat = Number(lngLat.lat.toFixed(6));
  const series = await raster.timeseries(cid, lon, lat, asset);
  if (generation !== state.generation) return;
  state.inspection = { kind: "raster", lon, lat, series, title: state.legend?.title || state.layer.title };
  renderInspection();
}

async function inspectPoints(lngLat, point, generation) {
  const cid = state.selected.id;
  const box = [[point.x - 8, point.y - 8], [point.x + 8, point.y + 8]];
  const features = map.queryRenderedFeatures(box, { layers: state.pointLayers.filter((id) => map.getLayer(id)) });
  let best = null;
  for (const feature of features) {
    const [x, y] = feature.geometry.coordinates;
    const p = map.project([x, y]);
    const d = (p.x - point.x) ** 2 + (p.y - point.y) ** 2;
    if (!best || d < best.d) best = { feature, d };
  }
  if (!best) {
    state.inspection = { kind: "none", message: t("inspect.noPoint") };
    renderInspection();
    return;
  }
  const item = map.getLayer(best.feature.layer.id)?.metadata?.item;
  const [lon, lat] = best.feature.geometry.coordinates;
  const found = await raster.vectorPoint(cid, item, Number(lon.toFixed(7)), Number(lat.toFixed(7)), 50, state.layer.asset);
  if (generation !== state.generation) return;
  if (!found) {
    state.inspection = { kind: "none", message: t("inspect.noPoint") };
  } else {
    placeMarker({ lng: found.geometry.coordinates[0], lat: found.geometry.coordinates[1] });
    state.inspection = { kind: "point", found };
  }
  renderInspection();
}

function placeMarker(lngLat) {
  if (!state.marker) {
    const element = h("div", { class: "pin", "aria-hidden": "true" });
    state.marker = new maplibregl.Marker({ element, anchor: "center" });
  }
  state.marker.setLngLat([lngLat.lng, lngLat.lat]).addTo(map);
}

function closeInspector() {
  $("inspector").hidden = true;
  state.inspection = null;
  state.marker?.remove();
}

function renderInspection() {
  const inspection = state.inspection;
  if (!inspection) return;
  const body = clear($("inspector-body"));
  $("inspector").dataset.state = inspection.kind;
  if (inspection.kind === "error" || inspection.kind === "none") {
    body.append(h("p", {}, inspection.message));
    return;
  }
  if (inspection.kind === "raster") renderRasterInspection(body, inspection);
  else renderPointInspection(body, inspection.found);
}

function renderRasterInspection(body, { lon, lat, series, title }) {
  const values = series.values || [];
  const unit = series.unit || "";
  let current = -1;
  if (state.item) {
    current = values.findIndex((v) => v.item === state.item.id);
  } else if (state.steps.length) {
    const step = state.steps[state.stepIndex];
    const [start, end] = [Date.parse(step.start), Date.parse(step.end)];
    current = values.findIndex((v) => v.datetime && Date.parse(v.datetime) >= start && Date.parse(v.datetime) <= end);
  } else {
    for (let i = values.length - 1; i >= 0 && current < 0; i -= 1) if (values[i].value !== null) current = i;
  }
  const value = current >= 0 ? values[current] : null;
  body.append(h("p", { class: "place" }, lonLat(lon, lat)));
  if (value && value.value !== null && value.value !== undefined) {
    const when = state.steps.length ? stepLabel(state.steps[state.stepIndex].datetime) : values.length > 1 ? cstDate(value.datetime) || value.item : null;
    const label = when ? t("inspect.valueAt", { date: when }) : t("inspect.value");
    body.append(
      h("p", { class: "value", id: "inspector-value" }, h("span", { class: "value-label" }, label), " ",
        h("strong", {}, number(value.value)), unit ? ` ${unit}` : ""),
    );
  } else {
    body.append(h("p", { class: "value", id: "inspector-value" }, t("inspect.noValue")));
  }
  if (values.length > 1) {
    const points = values.map((v) => ({ time: Date.parse(v.datetime || 0), value: v.value, label: cstDate(v.datetime) || v.item }));
    body.append(
      timeSeriesChart(points, {
        title: t("inspect.series", { lon: lon.toFixed(4), lat: lat.toFixed(4) }),
        unit,
        highlight: current,
        valueLabel: pickBilingual(title),
      }),
    );
  }
}

function renderPointInspection(body, found) {
  const properties = found.properties || {};
  const descriptions = found.descriptions || {};
  const code = properties.CODE || properties.id || properties.Name || "";
  const [lon, lat] = found.geometry.coordinates;
  body.append(h("p", { class: "place" }, lonLat(lon, lat)));
  const column = state.legend?.column;
  if (column && properties[column] !== undefined) {
    body.append(
      h("p", { class: "value", id: "inspector-value" }, h("span", { class: "value-label" }, state.legend.title || column), " ",
        h("strong", {}, number(properties[column])), state.legend.unit ? ` ${state.legend.unit}` : ""),
    );
  }
  const series = found.timeseries || [];
  if (series.length) {
    const firstColumn = Object.keys(descriptions).find((k) => /^D\d{8}$/.test(k));
    const unit = unitOf(descriptions[firstColumn]) || "";
    const points = series.map((s) => ({ time: Date.parse(`${s.date}T00:00:00+08:00`), value: s.value === null ? null : Number(s.value), label: s.date }));
    body.append(timeSeriesChart(points, { title: t("inspect.seriesPoint", { code }), unit, valueLabel: language() === "zh-Hans" ? "累积形变" : "displacement" }));
  }
  const rows = Object.entries(properties)
    .filter(([, value]) => value !== null && value !== undefined && value !== "")
    .map(([key, value]) => h("tr", {}, h("th", { scope: "row" }, descriptions[key] ? `${key} · ${descriptions[key]}` : key), h("td", {}, typeof value === "number" ? number(value, 6) : String(value))));
  body.append(h("h3", {}, t("inspect.attributes")), h("table", { class: "attributes" }, h("tbody", {}, rows)));
}

// ---------------------------------------------------------------------------------------------------------
// Search

function clearResults() {
  state.results = [];
  state.resultsNext = null;
  state.resultsMatched = null;
  renderResults();
  map?.getSource("results")?.setData(EMPTY);
  $("search-summary").textContent = "";
}

async function runSearch(more = false) {
  const from = $("search-from").value;
  const to = $("search-to").value;
  if (from && to && from > to) {
    $("search-summary").textContent = t("search.badRange");
    return;
  }
  $("search-summary").textContent = t("search.searching");
  $("search-section").dataset.state = "searching";
  try {
    let page;
    if (more && state.resultsNext) {
      page = await stac.next(state.resultsNext);
    } else {
      const b = map.getBounds();
      const body = {
        bbox: [Math.max(-180, b.getWest()), Math.max(-90, b.getSouth()), Math.min(180, b.getEast()), Math.min(90, b.getNorth())].map((v) => Number(v.toFixed(6))),
        limit: RESULTS_PAGE,
        fields: { exclude: ["properties.table:columns"] },
      };
      if (from || to) body.datetime = `${from ? cstDayBound(from) : ".."}/${to ? cstDayBound(to, true) : ".."}`;
      if ($("search-only-selected").checked && state.selected) body.collections = [state.selected.id];
      page = await stac.search(body);
      state.results = [];
    }
    state.results.push(...(page?.features || []));
    state.resultsMatched = page?.numberMatched ?? null;
    state.resultsNext = (page?.links || []).find((link) => link.rel === "next") || null;
    renderResults();
    map.getSource("results").setData({
      type: "FeatureCollection",
      features: state.results.filter((f) => f.geometry).map((f) => ({ type: "Feature", properties: { id: f.id }, geometry: f.geometry })),
    });
  } catch (error) {
    $("search-summary").textContent = t("error.load", { what: error.message });
  } finally {
    $("search-section").dataset.state = "done";
  }
}

function renderResults() {
  const list = clear($("results"));
  const summary = $("search-summary");
  $("results-more").hidden = !state.resultsNext;
  if (!state.results.length) {
    if (state.resultsMatched === 0) summary.textContent = t("search.none");
    return;
  }
  summary.textContent =
    state.resultsMatched === null
      ? t("search.summaryUnknown", { shown: state.results.length })
      : t("search.summary", { shown: state.results.length, matched: state.resultsMatched });
  for (const item of state.results) {
    const collection = state.byId.get(item.collection);
    const thumb = sameOriginUrl(item.assets?.thumbnail?.href);
    list.append(
      h(
        "li",
        {},
        h(
          "button",
          { type: "button", class: "result", dataset: { item: item.id, collection: item.collection || "" }, "aria-label": t("result.show", { id: item.id }), onclick: () => showItem(item) },
          thumb ? h("img", { src: thumb, alt: "", loading: "lazy", width: 64, height: 64 }) : h("span", { class: "no-thumb", "aria-hidden": "true" }),
          h(
            "span",
            { class: "result-text" },
            h("span", { class: "result-id" }, item.id),
            h("span", { class: "result-collection" }, collection ? collectionText(collection, "title") : item.collection || ""),
            h("span", { class: "result-time muted" }, itemPeriod(item)),
          ),
        ),
      ),
    );
  }
}

// ---------------------------------------------------------------------------------------------------------
// Controls, language, URL, status

function bindControls() {
  for (const button of document.querySelectorAll("[data-lang]")) {
    button.addEventListener("click", () => switchLanguage(button.dataset.lang));
  }
  $("layer-select").addEventListener("change", (event) => {
    const layer = state.layers.find((l) => l.id === event.target.value);
    if (layer) {
      closeInspector();
      activateLayer(layer, ++state.generation);
    }
  });
  $("opacity").addEventListener("input", (event) => {
    state.opacity = Number(event.target.value) / 100;
    for (const id of state.rasterLayers) if (map.getLayer(id)) map.setPaintProperty(id, "raster-opacity", state.opacity);
    for (const id of state.pointLayers) {
      if (!map.getLayer(id)) continue;
      map.setPaintProperty(id, "circle-opacity", state.opacity);
      map.setPaintProperty(id, "circle-stroke-opacity", state.opacity);
    }
  });
  $("inspect-center").addEventListener("click", () => {
    const center = map.getCenter();
    inspect(center, map.project(center), true);
  });
  $("inspector-close").addEventListener("click", () => {
    closeInspector();
    $("inspect-center").focus();
  });
  let dragTimer = null;
  $("time-slider").addEventListener("input", (event) => {
    const index = Number(event.target.value);
    stopPlaying();
    $("time-label").textContent = stepLabel(state.steps[index]?.datetime);
    clearTimeout(dragTimer);
    dragTimer = setTimeout(() => setStep(index), 120);
  });
  $("time-prev").addEventListener("click", () => {
    stopPlaying();
    setStep(state.stepIndex - 1);
  });
  $("time-next").addEventListener("click", () => {
    stopPlaying();
    setStep(state.stepIndex + 1);
  });
  $("time-play").addEventListener("click", togglePlay);
  $("search-form").addEventListener("submit", (event) => {
    event.preventDefault();
    runSearch(false);
  });
  $("results-more").addEventListener("click", () => runSearch(true));
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && !$("inspector").hidden) {
      closeInspector();
      $("inspect-center").focus();
    }
  });
}

function switchLanguage(lang) {
  setLanguage(lang);
  localStorage.setItem("ncdc-viewer-lang", language());
  translatePage();
  translateMapControls();
  renderCollectionList();
  if (state.selected) {
    const open = [...$("collection-panel").querySelectorAll("details")].map((d) => d.open);
    renderCollectionPanel();
    [...$("collection-panel").querySelectorAll("details")].forEach((d, i) => {
      d.open = Boolean(open[i]);
    });
  }
  renderLayerPanel();
  if (!$("time-panel").hidden) renderTimePanel();
  renderResults();
  if (state.inspection && !$("inspector").hidden) renderInspection();
  updateUrl();
}

function updateUrl() {
  const params = new URLSearchParams();
  if (state.selected) params.set("collection", state.selected.id);
  if (state.selected && state.steps.length && !state.item) params.set("time", state.steps[state.stepIndex].datetime);
  params.set("lang", language());
  const url = `${window.location.pathname}?${params}`;
  window.history.replaceState(null, "", url);
}

function showStatus(text) {
  const status = $("status");
  status.textContent = text;
  clearTimeout(statusTimer);
  statusTimer = setTimeout(() => {
    status.textContent = "";
  }, 6000);
}

start().catch((error) => {
  showStatus(t("error.load", { what: error.message }));
  console.warn("viewer failed to start", error);
});
