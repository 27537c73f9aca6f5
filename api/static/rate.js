// The raters' page. The personal link carries the token after '#', which the browser never
// sends to a server; every request sends it as a bearer token. Images are fetched with it
// too (an <img src> could not carry the header) and shown from object URLs, which also
// lets the next pair be fully loaded while the rater looks at the current one.
"use strict";

(function () {
  const state = { current: null, next: null, last: null, busy: false, shown: 0, ready: false, done: 0, target: 0 };
  window.rateState = state; // read by the browser test
  const { token, $, message, block, api } = window.raterLink(state);
  let queue = Promise.resolve(); // requests that change the record run one after another

  async function imageUrl(id) {
    const blob = await (await api(`/rate/image/${id}`)).blob();
    const url = URL.createObjectURL(blob);
    const probe = new Image();
    probe.src = url;
    await probe.decode().catch(() => {});
    return url;
  }

  async function load(pair) {
    if (!pair || pair.left === null) return null;
    const [leftUrl, rightUrl] = await Promise.all([imageUrl(pair.left), imageUrl(pair.right)]);
    return { left: pair.left, right: pair.right, leftUrl, rightUrl };
  }

  async function fetchPair() {
    const pair = await (await api("/rate/pair")).json();
    progress(pair.progress);
    return load(pair);
  }

  function progress(p) {
    if (!p) return;
    state.done = p.done;
    state.target = p.target;
    const share = Math.min(1, p.done / Math.max(1, p.target));
    $("progress-bar").style.width = `${(share * 100).toFixed(1)}%`;
    $("progress").setAttribute("aria-valuenow", String(p.done));
    $("progress").setAttribute("aria-valuemax", String(p.target));
    $("progress-text").textContent = `${p.done} / ${p.target}` + (p.skipped ? ` · ${p.skipped} skipped` : "");
    if (p.done >= p.target) message("Target reached. Thank you! You may go on if you like.");
  }

  function release(pair) {
    if (!pair) return;
    for (const p of [state.current, state.next, state.last]) if (p && p !== pair && p.leftUrl === pair.leftUrl) return;
    URL.revokeObjectURL(pair.leftUrl);
    URL.revokeObjectURL(pair.rightUrl);
  }

  function show(pair) {
    state.current = pair;
    const enabled = Boolean(pair);
    for (const side of ["left", "right"]) {
      $(side).disabled = !enabled;
      $(side).classList.remove("picked");
      const img = $(`${side}-img`);
      if (pair) {
        img.src = side === "left" ? pair.leftUrl : pair.rightUrl;
        img.dataset.imageId = String(side === "left" ? pair.left : pair.right);
      } else {
        img.removeAttribute("src");
        delete img.dataset.imageId;
      }
    }
    $("skip").disabled = !enabled;
    $("undo").disabled = !state.last;
    if (pair) {
      pair.shownAt = performance.now();
      state.shown += 1;
    } else if (state.ready) {
      message("No more pairs for you in this campaign. Thank you!");
    }
  }

  async function prefetch() {
    if (state.next) return;
    try {
      state.next = await fetchPair();
    } catch (error) {
      if (error.message !== "refused") message(`Could not load the next pair: ${error.message}`, true);
    }
  }

  function choose(choice) {
    const pair = state.current;
    if (!pair || state.busy || !state.ready) return;
    if (choice !== "skip") $(choice).classList.add("picked");
    const client = {
      viewport: `${innerWidth}x${innerHeight}`,
      ms: Math.round(performance.now() - pair.shownAt),
      input: choose.input || "pointer",
    };
    state.busy = true;
    const send = queue.then(() =>
      api("/rate/choice", {
        method: "POST",
        body: JSON.stringify({ left: pair.left, right: pair.right, choice, client }),
      }).then((r) => r.json())
    );
    queue = send.catch(() => {});
    const following = state.next;
    state.next = null;
    send
      .then(async (result) => {
        progress(result.progress);
        release(state.last);
        state.last = pair;
        if (following) {
          show(following);
        } else {
          show(await fetchPair());
        }
        state.busy = false;
        await prefetch();
      })
      .catch((error) => {
        state.next = following;
        state.busy = false;
        if (error.message !== "refused") {
          message(`Your choice was not saved (${error.message}); please choose again.`, true);
          show(pair);
        }
      });
  }

  async function undo() {
    if (!state.last || state.busy || !state.ready) return;
    state.busy = true;
    try {
      await queue;
      const result = await (await api("/rate/undo", { method: "POST" })).json();
      progress(result.progress);
      if (result.left === null) return;
      const back =
        state.last.left === result.left && state.last.right === result.right ? state.last : await load(result);
      // The pair on screen goes back to the front of the line.
      if (state.current) {
        release(state.next);
        state.next = state.current;
      }
      state.last = null;
      show(back);
      message("Last choice undone: choose again.");
    } catch (error) {
      if (error.message !== "refused") message(`Undo failed: ${error.message}`, true);
    } finally {
      state.busy = false;
    }
  }

  $("left").addEventListener("click", () => ((choose.input = "pointer"), choose("left")));
  $("right").addEventListener("click", () => ((choose.input = "pointer"), choose("right")));
  $("skip").addEventListener("click", () => ((choose.input = "pointer"), choose("skip")));
  $("undo").addEventListener("click", undo);
  document.addEventListener("keydown", (event) => {
    if (event.altKey || event.ctrlKey || event.metaKey) return;
    const keys = { ArrowLeft: "left", ArrowRight: "right", " ": "skip" };
    if (event.key in keys) {
      event.preventDefault();
      choose.input = "keyboard";
      choose(keys[event.key]);
    } else if (event.key === "Backspace" || event.key === "z" || event.key === "u") {
      event.preventDefault();
      undo();
    }
  });

  async function start() {
    if (!token) {
      block("This page needs your personal link (it ends in #token=…). Ask the campaign organiser for it.");
      return;
    }
    try {
      const session = await (await api("/rate/session")).json();
      const c = session.campaign;
      $("question").textContent = c.question;
      $("rater").textContent = session.rater;
      $("campaign").textContent =
        `· ${c.strategy} pairs from ${c.pool} images in ${c.area || "the heritage cores"} · target ${c.target}`;
      progress(session.progress);
      state.ready = true;
      const first = await fetchPair();
      show(first);
      if (first) await prefetch();
    } catch (error) {
      if (error.message !== "refused") block(`The rating service is not available: ${error.message}`);
    }
  }

  start();
})();
