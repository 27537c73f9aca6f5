// The raters' box-drawing page. As on /rate, the personal link carries the token after '#'
// (never sent to a server) and every request sends it as a bearer token; images are
// fetched with it and shown from object URLs. Boxes are kept in pixels of the stored
// image and only drawn scaled, so what is saved does not depend on the screen.
// Pointer events cover mouse, pen and touch alike.
"use strict";

(function () {
  const COLOURS = ["#e7b45e", "#6fcf7f", "#64b5f6", "#f06292", "#ba68c8", "#4dd0e1", "#ff8a65", "#aed581", "#fff176"];
  const MIN_DRAG_PX = 4; // a shorter drag on the empty image is a click (deselect), not a box
  const state = {
    ready: false, busy: false, index: -1, count: 0, id: null, width: 0, height: 0,
    boxes: [], selected: null, label: null, dirty: false, shown: 0, saves: 0,
  };
  window.labelState = state; // read by the browser test
  const { token, $, message, block, api } = window.raterLink(state);
  let queue = [];
  let labels = [];
  let history = [];
  let drag = null;
  const urls = new Map(); // image id → object URL (current and its neighbours)

  async function imageUrl(id) {
    if (!urls.has(id)) {
      urls.set(id, api(`/label/api/images/${id}`).then(async (r) => URL.createObjectURL(await r.blob())));
    }
    return urls.get(id);
  }

  function forgetFarImages() {
    const keep = new Set([-1, 0, 1].map((d) => queue[state.index + d]?.id));
    for (const [id, url] of urls) {
      if (keep.has(id)) continue;
      urls.delete(id);
      url.then((u) => URL.revokeObjectURL(u)).catch(() => {});
    }
  }

  // --- geometry -------------------------------------------------------------------------

  function scale() {
    return $("frame").clientWidth / Math.max(1, state.width);
  }

  function fit() {
    if (!state.width) return;
    const stage = $("stage");
    const style = getComputedStyle(stage);
    const room = {
      w: stage.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight),
      h: stage.clientHeight - parseFloat(style.paddingTop) - parseFloat(style.paddingBottom),
    };
    const s = Math.max(0.05, Math.min(room.w / state.width, room.h / state.height));
    $("frame").style.width = `${state.width * s}px`;
    $("frame").style.height = `${state.height * s}px`;
    render();
  }

  function toImage(event) {
    const rect = $("frame").getBoundingClientRect();
    const x = ((event.clientX - rect.left) / rect.width) * state.width;
    const y = ((event.clientY - rect.top) / rect.height) * state.height;
    return { x: clamp(x, 0, state.width), y: clamp(y, 0, state.height) };
  }

  const clamp = (v, lo, hi) => Math.min(hi, Math.max(lo, v));

  function normalised(b) {
    return {
      label: b.label,
      x1: Math.min(b.x1, b.x2), y1: Math.min(b.y1, b.y2),
      x2: Math.max(b.x1, b.x2), y2: Math.max(b.y1, b.y2),
    };
  }

  // --- drawing --------------------------------------------------------------------------

  function colour(label) {
    const i = labels.indexOf(label);
    return COLOURS[(i < 0 ? 0 : i) % COLOURS.length];
  }

  function render() {
    const layer = $("boxes");
    layer.replaceChildren();
    const s = scale();
    state.boxes.forEach((raw, index) => {
      const b = normalised(raw);
      const el = document.createElement("div");
      el.className = "box" + (index === state.selected ? " selected" : "");
      el.dataset.index = String(index);
      el.style.setProperty("--colour", colour(b.label));
      el.style.left = `${b.x1 * s}px`;
      el.style.top = `${b.y1 * s}px`;
      el.style.width = `${(b.x2 - b.x1) * s}px`;
      el.style.height = `${(b.y2 - b.y1) * s}px`;
      const tag = document.createElement("span");
      tag.className = "tag";
      tag.textContent = b.label;
      el.append(tag);
      if (index === state.selected) {
        for (const corner of ["nw", "ne", "sw", "se"]) {
          const handle = document.createElement("div");
          handle.className = "handle";
          handle.dataset.corner = corner;
          el.append(handle);
        }
      }
      layer.append(el);
    });
    for (const button of $("labels").children) {
      button.setAttribute("aria-pressed", String(button.dataset.label === currentLabel()));
    }
    $("delete").disabled = state.selected === null;
    $("undo").disabled = history.length === 0;
    $("save").classList.toggle("dirty", state.dirty);
    progress();
  }

  function currentLabel() {
    return state.selected !== null ? state.boxes[state.selected].label : state.label;
  }

  function progress() {
    if (state.index < 0) return;
    const saved = queue.reduce((sum, item) => sum + (item.boxes || 0), 0);
    const boxed = queue.filter((item) => item.boxes > 0).length;
    const here = state.boxes.length;
    $("progress-text").textContent =
      `Image ${state.index + 1} of ${queue.length} · ${here} box${here === 1 ? "" : "es"} here` +
      (state.dirty ? " (not saved yet)" : "") +
      ` · ${saved} box${saved === 1 ? "" : "es"} saved on ${boxed} image${boxed === 1 ? "" : "s"}`;
  }

  // --- editing --------------------------------------------------------------------------

  function remember() {
    history.push(JSON.stringify({ boxes: state.boxes, selected: state.selected }));
    if (history.length > 200) history.shift();
  }

  function changed() {
    state.dirty = true;
    render();
  }

  function undo() {
    if (!history.length || !state.ready) return;
    const before = JSON.parse(history.pop());
    state.boxes = before.boxes;
    state.selected = before.selected;
    changed();
  }

  function removeSelected() {
    if (state.selected === null || !state.ready) return;
    remember();
    state.boxes.splice(state.selected, 1);
    state.selected = null;
    changed();
  }

  function chooseLabel(label) {
    if (!state.ready || !labels.includes(label)) return;
    state.label = label;
    if (state.selected !== null && state.boxes[state.selected].label !== label) {
      remember();
      state.boxes[state.selected].label = label;
      changed();
    } else {
      render();
    }
  }

  function onPointerDown(event) {
    if (!state.ready || state.busy || event.button > 0) return;
    event.preventDefault();
    const point = toImage(event);
    const handle = event.target.closest(".handle");
    const boxEl = event.target.closest(".box");
    const before = JSON.stringify({ boxes: state.boxes, selected: state.selected });
    if (handle) {
      const index = Number(boxEl.dataset.index);
      state.boxes[index] = normalised(state.boxes[index]);
      drag = { mode: "resize", index, corner: handle.dataset.corner, before };
    } else if (boxEl) {
      const index = Number(boxEl.dataset.index);
      state.selected = index;
      drag = { mode: "move", index, start: point, orig: normalised(state.boxes[index]), before };
    } else {
      drag = { mode: "draw", index: null, start: point, x: event.clientX, y: event.clientY, before };
    }
    drag.moved = false;
    $("frame").setPointerCapture(event.pointerId);
    render();
  }

  function onPointerMove(event) {
    if (!drag) return;
    event.preventDefault();
    const p = toImage(event);
    if (drag.mode === "draw") {
      if (drag.index === null) {
        if (Math.hypot(event.clientX - drag.x, event.clientY - drag.y) < MIN_DRAG_PX) return;
        state.boxes.push({ label: state.label, x1: drag.start.x, y1: drag.start.y, x2: p.x, y2: p.y });
        drag.index = state.boxes.length - 1;
        state.selected = drag.index;
      }
      Object.assign(state.boxes[drag.index], { x2: p.x, y2: p.y });
    } else if (drag.mode === "move") {
      const o = drag.orig;
      const dx = clamp(p.x - drag.start.x, -o.x1, state.width - o.x2);
      const dy = clamp(p.y - drag.start.y, -o.y1, state.height - o.y2);
      Object.assign(state.boxes[drag.index], { x1: o.x1 + dx, x2: o.x2 + dx, y1: o.y1 + dy, y2: o.y2 + dy });
    } else {
      const b = state.boxes[drag.index];
      if (drag.corner.includes("n")) b.y1 = p.y;
      if (drag.corner.includes("s")) b.y2 = p.y;
      if (drag.corner.includes("w")) b.x1 = p.x;
      if (drag.corner.includes("e")) b.x2 = p.x;
    }
    drag.moved = true;
    render();
  }

  function onPointerUp(event) {
    if (!drag) return;
    const done = drag;
    drag = null;
    if ($("frame").hasPointerCapture(event.pointerId)) $("frame").releasePointerCapture(event.pointerId);
    if (done.mode === "draw" && done.index === null) {
      state.selected = null; // a click on the image: deselect
      render();
      return;
    }
    if (!done.moved) return;
    const b = normalised(state.boxes[done.index]);
    if (b.x2 - b.x1 < 1 || b.y2 - b.y1 < 1) {
      state.boxes.splice(done.index, 1); // no area: dropped rather than saved and refused
      state.selected = null;
    } else {
      state.boxes[done.index] = b;
    }
    history.push(done.before);
    changed();
  }

  // --- images and saving ----------------------------------------------------------------

  async function save(force) {
    if (!state.ready || state.id === null || (!state.dirty && !force)) return true;
    if (state.busy) return false;
    state.busy = true;
    const id = state.id;
    const boxes = state.boxes.map(normalised);
    try {
      const result = await (
        await api(`/label/api/images/${id}/boxes`, { method: "PUT", body: JSON.stringify({ boxes }) })
      ).json();
      queue[state.index].boxes = result.saved;
      state.dirty = false;
      state.saves += 1;
      message(`Saved ${result.saved} box${result.saved === 1 ? "" : "es"} on this image.`);
      return true;
    } catch (error) {
      if (error.message !== "refused") message(`Not saved: ${error.message}`, true);
      return false;
    } finally {
      state.busy = false;
      render();
    }
  }

  async function show(index) {
    if (index < 0 || index >= queue.length) return;
    state.busy = true;
    try {
      const item = queue[index];
      const [url, current] = await Promise.all([
        imageUrl(item.id),
        api(`/label/api/images/${item.id}/boxes`).then((r) => r.json()),
      ]);
      const photo = $("photo");
      photo.src = url;
      await photo.decode().catch(() => {});
      photo.dataset.imageId = String(item.id);
      Object.assign(state, {
        index, id: item.id, selected: null, dirty: false,
        width: item.width || photo.naturalWidth, height: item.height || photo.naturalHeight,
        boxes: current.boxes.map(normalised),
      });
      item.boxes = current.boxes.length;
      history = [];
      $("prev").disabled = index === 0;
      $("next").disabled = false;
      $("save").disabled = false;
      state.shown += 1;
      fit();
      forgetFarImages();
      for (const d of [1, -1]) if (queue[index + d]) imageUrl(queue[index + d].id).catch(() => {});
    } catch (error) {
      if (error.message !== "refused") message(`Could not load the image: ${error.message}`, true);
    } finally {
      state.busy = false;
    }
  }

  async function go(step) {
    if (!state.ready || state.busy) return;
    const target = state.index + step;
    if (!(await save(false))) return;
    if (target >= queue.length) {
      message("That was your last image. Thank you!");
      return;
    }
    if (target < 0) return;
    message("");
    await show(target);
  }

  // --- wiring ---------------------------------------------------------------------------

  function labelButtons() {
    const bar = $("labels");
    bar.replaceChildren();
    labels.forEach((label, i) => {
      const button = document.createElement("button");
      button.type = "button";
      button.dataset.label = label;
      button.style.setProperty("--colour", colour(label));
      button.innerHTML = i < 9 ? `<kbd></kbd> ` : "";
      if (i < 9) button.firstChild.textContent = String(i + 1);
      button.append(label);
      button.addEventListener("click", () => chooseLabel(label));
      bar.append(button);
    });
  }

  const frame = $("frame");
  frame.addEventListener("pointerdown", onPointerDown);
  frame.addEventListener("pointermove", onPointerMove);
  frame.addEventListener("pointerup", onPointerUp);
  frame.addEventListener("pointercancel", onPointerUp);
  $("prev").addEventListener("click", () => go(-1));
  $("next").addEventListener("click", () => go(1));
  $("save").addEventListener("click", () => save(true));
  $("delete").addEventListener("click", removeSelected);
  $("undo").addEventListener("click", undo);
  window.addEventListener("resize", fit);
  if (window.ResizeObserver) new ResizeObserver(() => fit()).observe($("stage"));
  document.addEventListener("keydown", (event) => {
    if (!state.ready) return;
    const key = event.key;
    if ((event.ctrlKey || event.metaKey) && key.toLowerCase() === "z") {
      event.preventDefault();
      undo();
    } else if ((event.ctrlKey || event.metaKey) && key.toLowerCase() === "s") {
      event.preventDefault();
      save(true);
    } else if (event.ctrlKey || event.metaKey || event.altKey) {
      return;
    } else if (/^[1-9]$/.test(key) && labels[Number(key) - 1]) {
      chooseLabel(labels[Number(key) - 1]);
    } else if (key === "Delete" || key === "Backspace") {
      event.preventDefault();
      removeSelected();
    } else if (key === "n" || key === "ArrowRight") {
      event.preventDefault();
      go(1);
    } else if (key === "p" || key === "ArrowLeft") {
      event.preventDefault();
      go(-1);
    } else if (key === "Escape") {
      state.selected = null;
      render();
    }
  });
  window.addEventListener("beforeunload", (event) => {
    if (state.dirty) event.preventDefault();
  });

  async function start() {
    if (!token) {
      block("This page needs your personal link (it ends in #token=…). Ask the campaign organiser for it.");
      return;
    }
    try {
      const session = await (await api("/label/api/queue")).json();
      labels = session.labels;
      queue = session.images;
      state.label = labels[0];
      state.count = queue.length;
      $("rater").textContent = session.rater;
      labelButtons();
      if (!queue.length) {
        message("No images for you to box yet. Thank you!");
        return;
      }
      state.ready = true;
      await show(0);
      message("Drag on the image to draw a box; choose its label with the buttons or keys 1–9.");
    } catch (error) {
      if (error.message !== "refused") block(`The labelling service is not available: ${error.message}`);
    }
  }

  start();
})();
