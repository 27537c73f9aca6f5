// streetaudit map: roads coloured by a chosen element statistic, heritage areas,
// sample points (from zoom 14) and rated images coloured by their ELO score, all from
// this server's TileJSON endpoints.
"use strict";

const COLOURS = ["#440154", "#3b528b", "#21918c", "#5ec962", "#fde725"];
const elementSelect = document.getElementById("element");
const statisticSelect = document.getElementById("statistic");

function colourRamp(property, max) {
  const stops = [];
  COLOURS.forEach((c, i) => stops.push((max * i) / (COLOURS.length - 1), c));
  return ["case", ["==", ["get", property], null], "#bbbbbb",
          ["interpolate", ["linear"], ["to-number", ["get", property]], ...stops]];
}

// The colour ramp spans each element's observed range (largest point value over the
// heritage areas and the rest of the city, from /stats/areas); fixed shares would paint
// a scarce element like car or greenery in one colour.
const observedMax = {};

function rampMax(element, statistic) {
  const max = observedMax[element] > 0 ? observedMax[element] : 0.6;
  return statistic === "std" ? max / 2 : max;
}

async function loadRanges() {
  const response = await fetch(new URL("stats/areas", window.location.href));
  if (!response.ok) return;
  for (const row of await response.json()) {
    for (const element of Array.from(elementSelect.options, (o) => o.value)) {
      const value = row[`${element}_max`];
      if (typeof value === "number") observedMax[element] = Math.max(observedMax[element] || 0, value);
    }
  }
}

// Rated images: ELO starts at 1500; ±200 covers what a campaign spreads them over, and the
// ramp clamps beyond.
const ELO_LOW = 1300;
const ELO_HIGH = 1700;

function eloRamp() {
  const stops = [];
  COLOURS.forEach((c, i) => stops.push(ELO_LOW + ((ELO_HIGH - ELO_LOW) * i) / (COLOURS.length - 1), c));
  return ["interpolate", ["linear"], ["to-number", ["get", "elo"]], ...stops];
}

function renderLegend(element, statistic) {
  const max = rampMax(element, statistic);
  const ticks = [0, max / 2, max].map((v) => `<span>${v.toFixed(2)}</span>`).join("");
  document.getElementById("legend").innerHTML =
    `<div>${element} share, ${statistic === "std" ? "std. deviation" : "mean"} per street (or road)</div>` +
    `<div class="bar" style="background: linear-gradient(to right, ${COLOURS.join(",")})"></div>` +
    `<div class="ticks">${ticks}</div>` +
    `<div class="row"><span class="swatch" style="background:#bbbbbb"></span>no data</div>` +
    `<div class="row"><span class="swatch" style="background:#d9480f33;border-color:#d9480f"></span>heritage area</div>` +
    `<div class="row"><span class="swatch" style="border-radius:50%;background:#fff"></span>sample point (zoom ≥ 14)</div>` +
    `<div>rated image: ELO score</div>` +
    `<div class="bar" id="elo-bar" style="background: linear-gradient(to right, ${COLOURS.join(",")})"></div>` +
    `<div class="ticks"><span>${ELO_LOW}</span><span>1500</span><span>${ELO_HIGH}</span></div>`;
}

function tileJson(layer) {
  return new URL(`${layer}/tilejson.json`, window.location.href).href;
}

const map = new maplibregl.Map({
  container: "map",
  style: {
    version: 8,
    sources: {
      roads: { type: "vector", url: tileJson("api.roads") },
      streets: { type: "vector", url: tileJson("api.streets") },
      areas: { type: "vector", url: tileJson("api.areas") },
      points: { type: "vector", url: tileJson("api.points") },
      ratings: { type: "vector", url: tileJson("api.ratings") },
    },
    layers: [
      { id: "background", type: "background", paint: { "background-color": "#f4f1ea" } },
      { id: "areas-fill", type: "fill", source: "areas", "source-layer": "api.areas",
        paint: { "fill-color": "#d9480f", "fill-opacity": 0.15 } },
      { id: "areas-line", type: "line", source: "areas", "source-layer": "api.areas",
        paint: { "line-color": "#d9480f", "line-width": 2 } },
      { id: "roads", type: "line", source: "roads", "source-layer": "api.roads",
        layout: { "line-cap": "round", "line-join": "round" },
        paint: { "line-color": colourRamp("greenery_mean", 0.6),
                 "line-width": ["interpolate", ["linear"], ["zoom"], 10, 1, 16, 5] } },
      // Streets (`streetaudit streets build`) over the roads they are made of: where they
      // are built the map shows them; where not, the roads show through.
      { id: "streets", type: "line", source: "streets", "source-layer": "api.streets",
        layout: { "line-cap": "round", "line-join": "round" },
        paint: { "line-color": colourRamp("greenery_mean", 0.6),
                 "line-width": ["interpolate", ["linear"], ["zoom"], 10, 1, 16, 5] } },
      { id: "points", type: "circle", source: "points", "source-layer": "api.points", minzoom: 14,
        paint: { "circle-radius": 3, "circle-color": colourRamp("greenery", 0.6),
                 "circle-stroke-color": "#333", "circle-stroke-width": 0.5 } },
      { id: "ratings", type: "circle", source: "ratings", "source-layer": "api.ratings",
        paint: { "circle-radius": 5, "circle-color": eloRamp(),
                 "circle-stroke-color": "#000", "circle-stroke-width": 1.5 } },
    ],
  },
  center: [24.945, 60.17],
  zoom: 14,
  attribution: false,
});
window.streetauditMap = map;

function applyElement() {
  const element = elementSelect.value;
  const statistic = statisticSelect.value;
  map.setPaintProperty("roads", "line-color", colourRamp(`${element}_${statistic}`, rampMax(element, statistic)));
  map.setPaintProperty("streets", "line-color", colourRamp(`${element}_${statistic}`, rampMax(element, statistic)));
  map.setPaintProperty("points", "circle-color", colourRamp(element, rampMax(element, "mean")));
  renderLegend(element, statistic);
}
elementSelect.addEventListener("change", applyElement);
statisticSelect.addEventListener("change", applyElement);
renderLegend("greenery", "mean");
map.once("load", () => loadRanges().then(applyElement));

// Centre on the data once the roads' TileJSON (with its bounds) is known.
map.once("sourcedata", () => {
  const source = map.getSource("roads");
  const bounds = source && source.bounds;
  if (bounds && bounds[0] > -180) {
    map.jumpTo({ center: [(bounds[0] + bounds[2]) / 2, (bounds[1] + bounds[3]) / 2], zoom: 14.5 });
  }
});

map.on("click", (event) => {
  const hit = map.queryRenderedFeatures(event.point, { layers: ["ratings", "points", "streets", "roads", "areas-fill"] })[0];
  document.getElementById("info").textContent = hit
    ? Object.entries(hit.properties)
        .map(([k, v]) => `${k}: ${typeof v === "number" ? Number(v.toFixed(3)) : v}`)
        .join("\n")
    : "Click a road, point, rated image or area.";
});
map.on("idle", () => { window.streetauditIdle = true; });
