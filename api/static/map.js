// streetaudit map: roads coloured by a chosen element statistic, heritage areas, sample
// points (from zoom 15) and rated images coloured by their ELO score, all from this
// server's TileJSON endpoints; an optional basemap underneath; a click on a point shows
// its photos with the segmentation over them and its six shares.
"use strict";

const COLOURS = ["#440154", "#3b528b", "#21918c", "#5ec962", "#fde725"];
const NO_DATA = "#bbbbbb";
// The Cityscapes colours of the six elements: the masks that `segment --save-masks` writes
// use the same ones (models/label_palette.py ELEMENT_COLOURS), so a bar matches its overlay.
const ELEMENT_COLOURS = {
  building: "#464646", road: "#804080", sky: "#4682b4",
  greenery: "#6b8e23", sidewalk: "#f423e8", car: "#00008e",
};
const ELEMENTS = Object.keys(ELEMENT_COLOURS);
const elementSelect = document.getElementById("element");
const statisticSelect = document.getElementById("statistic");
const details = document.getElementById("details");
const detailsBody = document.getElementById("details-body");
let config = { ranges: {}, basemap: null, images_served: false, points_minzoom: 15 };

function showMessage(text) {
  const box = document.getElementById("message");
  box.textContent = text;
  box.hidden = false;
  document.getElementById("panel").hidden = true;
  window.streetauditMessage = text;
}

const NO_WEBGL =
  "This map needs WebGL, which this browser does not offer (it is turned off, or the graphics " +
  "driver is blocked). Turn on hardware acceleration or try another browser; the numbers behind " +
  "the map are also at stats/roads and stats/areas (JSON or CSV).";

function webglAvailable() {
  try {
    const canvas = document.createElement("canvas");
    return Boolean(canvas.getContext("webgl2") || canvas.getContext("webgl"));
  } catch (error) {
    return false;
  }
}

// The ramp spans the 2nd-98th percentiles of the data (api.map_ranges), known before the
// first paint: one extreme road cannot wash the ramp out and the legend never jumps.
function range(key, fallbackHigh) {
  const r = config.ranges[key];
  if (!r || typeof r.low !== "number" || typeof r.high !== "number") return { low: 0, high: fallbackHigh, n: 0 };
  return r.high > r.low ? r : { low: r.low, high: r.low + fallbackHigh / 100, n: r.n };
}

function roadRange(element, statistic) {
  return statistic === "n" ? range("*_n", 10) : range(`${element}_${statistic}`, 1);
}

function rampStops(low, high) {
  const stops = [];
  COLOURS.forEach((c, i) => stops.push(low + ((high - low) * i) / (COLOURS.length - 1), c));
  return stops;
}

function colourRamp(property, r, missing) {
  return ["case", missing, NO_DATA,
          ["interpolate", ["linear"], ["to-number", ["get", property]], ...rampStops(r.low, r.high)]];
}

function roadColour(element, statistic) {
  if (statistic === "n") {
    return colourRamp("n_points", roadRange(element, "n"), ["<=", ["to-number", ["get", "n_points"], 0], 0]);
  }
  const property = `${element}_${statistic}`;
  return colourRamp(property, roadRange(element, statistic), ["==", ["get", property], null]);
}

function pointColour(element) {
  return colourRamp(element, range(`${element}_point`, 1), ["==", ["get", element], null]);
}

// Rated images: ELO starts at 1500; ±200 covers what a campaign spreads them over, and the
// ramp clamps beyond.
const ELO_LOW = 1300;
const ELO_HIGH = 1700;

function eloRamp() {
  return ["interpolate", ["linear"], ["to-number", ["get", "elo"]], ...rampStops(ELO_LOW, ELO_HIGH)];
}

function tick(value, statistic) {
  return statistic === "n" ? String(Math.round(value)) : value.toFixed(value < 0.1 ? 3 : 2);
}

function renderLegend(element, statistic) {
  const r = roadRange(element, statistic);
  const ticks = [r.low, (r.low + r.high) / 2, r.high].map((v) => `<span>${tick(v, statistic)}</span>`).join("");
  const what = statistic === "n" ? "points per street or road (n)"
    : `${element} share, ${statistic === "std" ? "std. deviation" : "mean"} per street or road`;
  document.getElementById("legend").innerHTML =
    `<div>${what}</div>` +
    `<div class="bar" id="road-bar" style="background: linear-gradient(to right, ${COLOURS.join(",")})"></div>` +
    `<div class="ticks">${ticks}</div>` +
    `<div class="note">2nd–98th percentile of ${r.n || 0} roads; beyond: end colours</div>` +
    `<div class="row"><span class="swatch" style="background:${NO_DATA}"></span>no data</div>` +
    `<div class="row"><span class="swatch" style="background:#d9480f33;border-color:#d9480f"></span>heritage area</div>` +
    `<div class="row"><span class="swatch" style="border-radius:50%;background:#fff"></span>` +
    `sample point (zoom ≥ ${config.points_minzoom}), click for photos</div>` +
    `<div>rated image: ELO score</div>` +
    `<div class="bar" id="elo-bar" style="background: linear-gradient(to right, ${COLOURS.join(",")})"></div>` +
    `<div class="ticks"><span>${ELO_LOW}</span><span>1500</span><span>${ELO_HIGH}</span></div>`;
}

function here(path) {
  return new URL(path, window.location.href).href;
}

function overlaySources() {
  return {
    roads: { type: "vector", url: here("api.roads/tilejson.json") },
    streets: { type: "vector", url: here("api.streets/tilejson.json") },
    areas: { type: "vector", url: here("api.areas/tilejson.json") },
    points: { type: "vector", url: here("api.points/tilejson.json") },
    ratings: { type: "vector", url: here("api.ratings/tilejson.json") },
  };
}

function overlayLayers(element, statistic) {
  return [
    { id: "areas-fill", type: "fill", source: "areas", "source-layer": "api.areas",
      paint: { "fill-color": "#d9480f", "fill-opacity": 0.15 } },
    { id: "areas-line", type: "line", source: "areas", "source-layer": "api.areas",
      paint: { "line-color": "#d9480f", "line-width": 2 } },
    { id: "roads", type: "line", source: "roads", "source-layer": "api.roads",
      layout: { "line-cap": "round", "line-join": "round" },
      paint: { "line-color": roadColour(element, statistic),
               "line-width": ["interpolate", ["linear"], ["zoom"], 10, 1, 16, 5] } },
    // Streets (`streetaudit streets build`) over the roads they are made of: where they are
    // built the map shows them; where not, the roads show through. Same columns, same ramps.
    { id: "streets", type: "line", source: "streets", "source-layer": "api.streets",
      layout: { "line-cap": "round", "line-join": "round" },
      paint: { "line-color": roadColour(element, statistic),
               "line-width": ["interpolate", ["linear"], ["zoom"], 10, 1, 16, 5] } },
    { id: "points", type: "circle", source: "points", "source-layer": "api.points",
      minzoom: config.points_minzoom,
      paint: { "circle-radius": ["interpolate", ["linear"], ["zoom"], 15, 3, 18, 6],
               "circle-color": pointColour(element),
               "circle-stroke-color": "#333", "circle-stroke-width": 0.5 } },
    { id: "ratings", type: "circle", source: "ratings", "source-layer": "api.ratings",
      paint: { "circle-radius": 5, "circle-color": eloRamp(),
               "circle-stroke-color": "#000", "circle-stroke-width": 1.5 } },
  ];
}

// Offline (no STREETAUDIT_BASEMAP_STYLE): our roads and areas on a plain background. A raster
// template goes under them; a whole MapLibre style gets our layers added on top once loaded.
function inlineStyle(element, statistic) {
  const style = { version: 8, sources: overlaySources(), layers: [
    { id: "background", type: "background", paint: { "background-color": "#f4f1ea" } },
  ] };
  if (config.basemap && config.basemap.type === "raster") {
    style.sources.basemap = { type: "raster", tiles: [config.basemap.url], tileSize: 256 };
    style.layers.push({ id: "basemap", type: "raster", source: "basemap", paint: { "raster-opacity": 0.8 } });
  }
  style.layers.push(...overlayLayers(element, statistic));
  return style;
}

function fmt(value, digits = 3) {
  return typeof value === "number" ? String(Number(value.toFixed(digits))) : String(value ?? "–");
}

function escapeHtml(text) {
  const div = document.createElement("div");
  div.textContent = String(text ?? "");
  return div.innerHTML;
}

function sharesBar(shares) {
  if (!shares) return `<div class="shares no-data" title="no segmentation">no data</div>`;
  const parts = ELEMENTS.map((e) =>
    `<span data-element="${e}" title="${e} ${fmt(shares[e] * 100, 1)} %" ` +
    `style="width:${Math.max(0, shares[e] * 100)}%;background:${ELEMENT_COLOURS[e]}"></span>`).join("");
  return `<div class="shares">${parts}</div>`;
}

function shareKeys(shares) {
  return `<div class="share-keys">${ELEMENTS.map((e) =>
    `<span><i style="background:${ELEMENT_COLOURS[e]}"></i>${e} ${shares ? fmt(shares[e] * 100, 1) + " %" : "–"}</span>`
  ).join("")}</div>`;
}

function viewHtml(view) {
  const caption = `${fmt(view.heading, 0)}° · ${escapeHtml(view.provider)}` +
    (view.captured_at ? ` · ${escapeHtml(view.captured_at.slice(0, 10))}` : "");
  const photo = view.thumb_url
    ? `<div class="photo"><img class="thumb" alt="view at ${fmt(view.heading, 0)}°" src="${here(view.thumb_url)}">` +
      (view.mask_url ? `<img class="mask" alt="" src="${here(view.mask_url)}">` : "") + `</div>`
    : "";
  return `<figure class="view" data-image="${view.image_id}">${photo}` +
    `<figcaption>${caption}</figcaption>${sharesBar(view.shares)}</figure>`;
}

async function showPoint(pointId) {
  details.hidden = false;
  document.body.classList.add("point-open");
  detailsBody.innerHTML = `Point ${pointId}: loading…`;
  const response = await fetch(here(`points/${pointId}`));
  if (!response.ok) {
    detailsBody.textContent = `Point ${pointId}: ${response.status} ${(await response.json()).detail || ""}`;
    return;
  }
  const point = await response.json();
  const areas = point.areas.map((a) => `${escapeHtml(a.name)} (${escapeHtml(a.kind)})`).join(", ") || "none";
  const masks = point.views.some((v) => v.mask_url);
  const ratings = point.ratings.map((r) =>
    `<div>image ${r.image_id}: ELO ${fmt(r.elo, 0)}, ${r.n_comparisons} comparisons</div>`).join("");
  detailsBody.innerHTML =
    `<h3>Point ${point.point_id} · ${escapeHtml(point.road.name || point.road.kind || "road " + point.road.road_id)}</h3>` +
    `<div>heritage areas: ${areas}</div>` +
    `<div>mean of ${point.n_images ?? 0} segmented views${point.model ? " (" + escapeHtml(point.model) + ")" : ""}:</div>` +
    sharesBar(point.shares) + shareKeys(point.shares) +
    (ratings ? `<div class="ratings">${ratings}</div>` : "") +
    (point.images_served
      ? (masks ? `<label><input type="checkbox" id="mask-toggle" checked> segmentation overlay</label>` : "")
      : `<div class="note">Photos are not served here: STREETAUDIT_SERVE_IMAGES does not allow them (provider licences).</div>`) +
    `<div class="views">${point.views.map(viewHtml).join("") || "no stored views"}</div>`;
  const toggle = document.getElementById("mask-toggle");
  if (toggle) toggle.addEventListener("change", () => details.classList.toggle("masks-off", !toggle.checked));
  details.classList.remove("masks-off");
  window.streetauditPoint = point;
}

document.getElementById("details-close").addEventListener("click", () => {
  details.hidden = true;
  document.body.classList.remove("point-open");
});

function build() {
  const element = elementSelect.value;
  const statistic = statisticSelect.value;
  const styled = config.basemap && config.basemap.type === "style";
  let map;
  try {
    map = new maplibregl.Map({
      container: "map",
      style: styled ? config.basemap.url : inlineStyle(element, statistic),
      center: [24.945, 60.17],
      zoom: 14,
      attributionControl: config.basemap ? { compact: true } : false,
    });
  } catch (error) {
    showMessage(`${NO_WEBGL} (${error.message})`);
    return;
  }
  window.streetauditMap = map;
  if (styled) {
    let loaded = false;
    map.once("style.load", () => {
      loaded = true;
      if (map.getSource("roads")) return; // the fallback below, which has them already
      for (const [id, source] of Object.entries(overlaySources())) map.addSource(id, source);
      for (const layer of overlayLayers(elementSelect.value, statisticSelect.value)) map.addLayer(layer);
    });
    // A basemap style that cannot be fetched (offline) must not leave the map empty: our
    // own layers alone, as without a basemap.
    map.once("error", () => {
      if (!loaded) map.setStyle(inlineStyle(elementSelect.value, statisticSelect.value));
    });
  }
  map.addControl(new maplibregl.NavigationControl({ visualizePitch: true }), "top-right");
  map.addControl(new maplibregl.ScaleControl({ maxWidth: 120, unit: "metric" }), "bottom-left");
  map.on("webglcontextlost", () => showMessage(NO_WEBGL));

  function applyElement() {
    const e = elementSelect.value;
    const s = statisticSelect.value;
    if (!map.getLayer("roads")) return;
    map.setPaintProperty("roads", "line-color", roadColour(e, s));
    if (map.getLayer("streets")) map.setPaintProperty("streets", "line-color", roadColour(e, s));
    map.setPaintProperty("points", "circle-color", pointColour(e));
    renderLegend(e, s);
  }
  elementSelect.addEventListener("change", applyElement);
  statisticSelect.addEventListener("change", applyElement);

  // Centre on the data once the roads' TileJSON (with its bounds) is known.
  map.on("sourcedata", function centre(event) {
    if (event.sourceId !== "roads" || !event.isSourceLoaded) return;
    map.off("sourcedata", centre);
    const bounds = map.getSource("roads").bounds;
    if (bounds && bounds[0] > -180) {
      map.jumpTo({ center: [(bounds[0] + bounds[2]) / 2, (bounds[1] + bounds[3]) / 2], zoom: 14.5 });
    }
  });

  map.on("click", (event) => {
    const layers = ["ratings", "points", "streets", "roads", "areas-fill"].filter((l) => map.getLayer(l));
    const hit = map.queryRenderedFeatures(event.point, { layers })[0];
    if (hit && hit.layer.id === "points" && hit.id !== undefined) {
      showPoint(hit.id);
    }
    document.getElementById("info").textContent = hit
      ? Object.entries(hit.properties).map(([k, v]) => `${k}: ${fmt(v)}`).join("\n")
      : "Click a street, road, point, rated image or area.";
  });
  map.on("idle", () => { window.streetauditIdle = true; });
}

async function start() {
  if (!window.maplibregl || !webglAvailable()) {
    showMessage(NO_WEBGL);
    return;
  }
  try {
    const response = await fetch(here("map/config"));
    if (response.ok) config = { ...config, ...(await response.json()) };
  } catch (error) {
    // Without the ranges the ramps fall back to 0–1; the map itself still works.
  }
  window.streetauditConfig = config;
  renderLegend(elementSelect.value, statisticSelect.value);
  build();
}
start();
