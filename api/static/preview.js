// pg_tileserv-style preview of one tile layer: its TileJSON source, drawn with our
// /style.json's layers for it (the ramps of /map), or a plain style for a layer the
// style leaves out; the map opens on the layer's bounds. Click a feature for its attributes.
"use strict";

const layerId = document.body.dataset.layer;
const geometry = document.body.dataset.geometry;
const root = new URL(".", window.location.href);

function plainLayers() {
  const common = { source: "layer", "source-layer": layerId };
  if (geometry === "line") return [{ id: "layer", type: "line", ...common, paint: { "line-color": "#3b528b", "line-width": 2 } }];
  if (geometry === "polygon") return [{ id: "layer", type: "fill", ...common, paint: { "fill-color": "#d9480f", "fill-opacity": 0.3 } }];
  return [{ id: "layer", type: "circle", ...common, paint: { "circle-radius": 4, "circle-color": "#21918c" } }];
}

async function start() {
  const tilejson = await (await fetch(new URL(`${layerId}/tilejson.json`, root))).json();
  let layers = [];
  const styleResponse = await fetch(new URL("style.json", root));
  if (styleResponse.ok) {
    const style = await styleResponse.json();
    layers = style.layers.filter((l) => l["source-layer"] === layerId).map((l) => ({ ...l, source: "layer" }));
  }
  if (layers.length === 0) layers = plainLayers();
  const map = new maplibregl.Map({
    container: "map",
    style: {
      version: 8,
      sources: { layer: { type: "vector", url: new URL(`${layerId}/tilejson.json`, root).href } },
      layers: [{ id: "background", type: "background", paint: { "background-color": "#f4f1ea" } }, ...layers],
    },
    center: tilejson.center.slice(0, 2),
    zoom: tilejson.center[2],
    attribution: false,
  });
  window.streetauditPreview = map;
  map.on("load", () => {
    const [w, s, e, n] = tilejson.bounds;
    map.fitBounds([[w, s], [e, n]], { animate: false, padding: 20, minZoom: tilejson.minzoom });
  });
  map.on("idle", () => { window.streetauditIdle = true; });
  map.on("click", (event) => {
    const hit = map.queryRenderedFeatures(event.point, { layers: layers.map((l) => l.id) })[0];
    const info = document.getElementById("info");
    info.textContent = hit ? JSON.stringify(hit.properties, null, 1) : "";
  });
}

start().catch((error) => {
  document.getElementById("info").textContent = `could not load ${layerId}: ${error}`;
  console.error(error);
});
