// What the raters' pages (/rate and /label) share: the personal link carries the token after
// '#', which the browser never sends to a server; every request sends it as a bearer token,
// and a refused link blocks the page with one message instead of failing request by request.
"use strict";

window.raterLink = function (state) {
  const token = new URLSearchParams(location.hash.slice(1)).get("token");
  const $ = (id) => document.getElementById(id);

  function message(text, isError) {
    $("message").textContent = text || "";
    $("message").className = isError ? "error" : "";
  }

  function block(text) {
    document.body.classList.add("blocked");
    message(text, true);
    state.ready = false;
  }

  async function api(path, options) {
    const response = await fetch(path, {
      ...options,
      headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
      cache: "no-store",
    });
    if (response.status === 401 || response.status === 403) {
      const body = await response.json().catch(() => ({}));
      block(`This link does not work (${body.detail || response.status}). Ask the campaign organiser for a new one.`);
      throw new Error("refused");
    }
    if (!response.ok) {
      const body = await response.json().catch(() => ({}));
      throw new Error(typeof body.detail === "string" ? body.detail : `HTTP ${response.status}`);
    }
    return response;
  }

  return { token, $, message, block, api };
};
