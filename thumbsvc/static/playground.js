// thumbsvc playground: sign the form's spec on the server, load and measure the thumbnail (one request:
// the page's own <img> for it is in <noscript>), show a refused value next to its field, explain images
// the service cannot render, set the focal point by clicking (or with the arrow keys on) the original.
// Plain script, no build.
"use strict";

(function () {
  const form = document.getElementById("controls");
  if (!form) return;

  const byId = (id) => document.getElementById(id);
  const original = byId("original");
  const area = byId("focus-area");
  const marker = byId("marker");
  const thumb = byId("thumb");
  const error = byId("error");
  const status = byId("status");
  const fields = form.elements;
  // What Chromium sends for <img>, so f:auto negotiates the format an <img> would get.
  const IMAGE_ACCEPT = "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8";

  // The service's X-Cache header, in words.
  const CACHE_NOTES = { HIT: "from the service's cache", MISS: "rendered now", JOIN: "shared a render in flight" };

  let sequence = 0;
  let timer = 0;
  let lastBody = "";
  let objectUrl = "";

  function formFields() {
    const data = {};
    for (const [name, value] of new FormData(form)) data[name] = String(value);
    return data;
  }

  function clamp(value) {
    return Math.min(1, Math.max(0, Number.isFinite(value) ? value : 0.5));
  }

  function round3(value) {
    return String(Math.round(clamp(value) * 1000) / 1000);
  }

  function focalMode() {
    return fields.g.value === "focal";
  }

  function syncFocal() {
    const on = focalMode();
    fields.fx.disabled = !on;
    fields.fy.disabled = !on;
    marker.hidden = !on;
    if (on) {
      marker.style.left = clamp(parseFloat(fields.fx.value)) * 100 + "%";
      marker.style.top = clamp(parseFloat(fields.fy.value)) * 100 + "%";
    }
  }

  function setFocal(x, y) {
    fields.g.value = "focal";
    fields.fx.value = round3(x);
    fields.fy.value = round3(y);
    syncFocal();
  }

  function setState(state) {
    document.body.dataset.state = state;
    form.setAttribute("aria-busy", state === "loading" ? "true" : "false");
  }

  function showError(message) {
    error.textContent = message;
    error.hidden = false;
    thumb.classList.add("stale");
    setState("error");
  }

  // Each refused value is shown next to its field (the server renders the same for a bookmarked address).
  function showFieldErrors(errors) {
    for (const box of form.querySelectorAll(".field-error")) {
      const message = errors[box.dataset.field] || "";
      box.textContent = message;
      box.hidden = !message;
      const control = fields[box.dataset.field];
      if (!control) continue;
      if (message) control.setAttribute("aria-invalid", "true");
      else control.removeAttribute("aria-invalid");
    }
  }

  function hasFieldErrors() {
    return form.querySelector(".field-error:not([hidden])") !== null;
  }

  // Why the service would not render an image: its answer is a short plain-text reason.
  async function reasonFor(src) {
    try {
      const response = await fetch(src, { headers: { Accept: IMAGE_ACCEPT } });
      const text = response.ok ? "" : (await response.text()).trim();
      if (text) return text;
    } catch (failure) {
      // the network's own failure: say so below
    }
    return "This image could not be shown";
  }

  // A sample tile whose image failed (a truncated file passes the header check) says why, inside its tile.
  async function breakTile(link, image) {
    const reason = await reasonFor(image.src);
    const part = (className, text) => {
      const span = document.createElement("span");
      span.className = className;
      span.textContent = text;
      return span;
    };
    const box = part("tile-problem", "");
    box.append(part("tile-name", link.dataset.source), part("visually-hidden", ": "), part("tile-reason", reason));
    image.replaceWith(box);
    link.classList.add("broken");
    link.title = link.dataset.source + ": " + reason;
  }

  function showOriginal(src, problem) {
    const box = byId("original-problem");
    if (problem) {
      original.hidden = true;
      original.removeAttribute("src");
      original.dataset.src = "";
      box.textContent = problem;
      box.hidden = false;
      return;
    }
    box.hidden = true;
    original.hidden = false;
    if (original.dataset.src !== src) {
      original.dataset.src = src;
      original.src = src;
    }
  }

  function formatBytes(size) {
    const text = size.toLocaleString("en") + " B";
    return size < 1024 ? text : (size / 1024).toFixed(1) + " KB (" + text + ")";
  }

  function serverTiming(header) {
    // "render;dur=12.3, fetch;dur=1.0;desc=..." -> "render 12.3 ms, fetch 1.0 ms"
    if (!header) return "";
    return header
      .split(",")
      .map((entry) => {
        const parts = entry.trim().split(";");
        const dur = parts.find((p) => p.trim().startsWith("dur="));
        return parts[0].trim() + (dur ? " " + Number(dur.split("=")[1]).toFixed(1) + " ms" : "");
      })
      .join(", ");
  }

  function schedule(delay, force) {
    clearTimeout(timer);
    timer = setTimeout(() => update(force), delay);
  }

  async function update(force) {
    const body = JSON.stringify(formFields());
    if (body === lastBody && !force) return;
    lastBody = body;
    const mine = ++sequence;
    setState("loading");
    let signed;
    try {
      const response = await fetch(form.dataset.sign, {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "application/json" },
        body: body,
      });
      signed = await response.json();
      if (mine !== sequence) return;
      showFieldErrors(signed.errors || {});
      if (signed.errors) {
        showError("Fix the marked fields; the thumbnail shows the last settings that worked.");
        return;
      }
      if (!response.ok) throw new Error(signed.error || "HTTP " + response.status);
    } catch (failure) {
      if (mine === sequence) showError("Cannot sign these options: " + failure.message);
      return;
    }
    showSpec(signed);
    await load(signed, mine);
  }

  // Fetch the thumbnail once, measure it, and show those very bytes.
  async function load(signed, mine) {
    try {
      const started = performance.now();
      const response = await fetch(signed.path, { cache: "no-store", headers: { Accept: IMAGE_ACCEPT } });
      const blob = await response.blob();
      const elapsed = performance.now() - started;
      if (mine !== sequence) return;
      if (!response.ok) {
        const text = (await blob.text()).trim();
        throw new Error("the service answered " + response.status + ": " + text);
      }
      await showThumbnail(signed, blob, response, elapsed, mine);
    } catch (failure) {
      if (mine === sequence) showError("No thumbnail: " + failure.message);
    }
  }

  function showSpec(signed) {
    byId("url").textContent = signed.url;
    byId("django").textContent = signed.django;
    byId("python").textContent = signed.python;
    byId("source-info").textContent = signed.source_info;
    original.alt = "Original: " + fields.source.value;
    showOriginal(signed.original, signed.source_problem);
    history.replaceState(null, "", "?" + signed.query);
    byId("nav-page").href = "?" + signed.query;
    byId("nav-grid").href = byId("nav-grid").pathname + "?" + signed.grid_query;
    for (const link of document.querySelectorAll(".strip a")) {
      const current = link.dataset.source === fields.source.value;
      if (current) link.setAttribute("aria-current", "true");
      else link.removeAttribute("aria-current");
    }
  }

  function showThumbnail(signed, blob, response, elapsed, mine) {
    return new Promise((resolve, reject) => {
      const previous = objectUrl;
      objectUrl = URL.createObjectURL(blob);
      thumb.onload = () => {
        if (previous) URL.revokeObjectURL(previous);
        if (mine !== sequence) return resolve();
        const width = thumb.naturalWidth;
        const height = thumb.naturalHeight;
        const dpr = Number(signed.dpr) || 1;
        // Show it at CSS size (natural size / dpr), so a dpr:2 thumbnail looks as it would on a page.
        thumb.style.width = Math.round(width / dpr) + "px";
        const shown = dpr === 1 ? "" : " (shown at " + Math.round(width / dpr) + " \u00d7 " + Math.round(height / dpr) + ")";
        byId("m-size").textContent = width + " \u00d7 " + height + " px" + shown;
        byId("m-bytes").textContent = formatBytes(blob.size);
        byId("m-type").textContent = response.headers.get("content-type") || "?";
        const server = serverTiming(response.headers.get("server-timing"));
        const cache = CACHE_NOTES[response.headers.get("x-cache")];
        byId("m-time").textContent =
          Math.round(elapsed) + " ms" + (server ? " (server: " + server + ")" : "") + (cache ? ", " + cache : "");
        byId("m-time").title = "From request to last byte, measured in this browser";
        if (!hasFieldErrors()) error.hidden = true;
        thumb.hidden = false;
        thumb.classList.remove("stale");
        status.textContent = "Thumbnail updated: " + width + " by " + height + " pixels, " + blob.size + " bytes.";
        setState("ready");
        resolve();
      };
      thumb.onerror = () => reject(new Error("this browser cannot show " + blob.type));
      thumb.alt = "Thumbnail of " + fields.source.value;
      thumb.dataset.url = signed.path;
      thumb.src = objectUrl;
    });
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    schedule(0, true);
  });
  form.addEventListener("change", (event) => {
    if (event.target === fields.g || event.target === fields.fx || event.target === fields.fy) syncFocal();
    schedule(0);
  });
  form.addEventListener("input", (event) => {
    if (event.target.tagName === "INPUT" && event.target.type !== "checkbox") {
      if (event.target === fields.fx || event.target === fields.fy) syncFocal();
      schedule(400);
    }
  });

  original.addEventListener("click", (event) => {
    const box = original.getBoundingClientRect();
    setFocal((event.clientX - box.left) / box.width, (event.clientY - box.top) / box.height);
    schedule(0);
  });
  area.addEventListener("keydown", (event) => {
    const step = event.shiftKey ? 0.01 : 0.05;
    const moves = { ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, -step], ArrowDown: [0, step] };
    const move = moves[event.key];
    if (!move) return;
    event.preventDefault();
    const x = focalMode() ? parseFloat(fields.fx.value) : 0.5;
    const y = focalMode() ? parseFloat(fields.fy.value) : 0.5;
    setFocal(clamp(x) + move[0], clamp(y) + move[1]);
    schedule(250);
  });

  for (const link of document.querySelectorAll(".strip a")) {
    link.addEventListener("click", (event) => {
      event.preventDefault();
      fields.source.value = link.dataset.source;
      schedule(0);
    });
  }

  for (const button of document.querySelectorAll("button[data-copy]")) {
    button.hidden = false;
    button.addEventListener("click", async () => {
      const code = byId(button.dataset.copy);
      try {
        await navigator.clipboard.writeText(code.textContent);
        status.textContent = "Copied.";
      } catch (failure) {
        const range = document.createRange();
        range.selectNodeContents(code);
        const selection = window.getSelection();
        selection.removeAllRanges();
        selection.addRange(range);
        status.textContent = "Selected: press Ctrl+C (or Command+C) to copy.";
      }
    });
  }

  for (const image of document.querySelectorAll(".strip img")) {
    const link = image.closest("a");
    // An image may have failed before this script ran: complete, with no pixels.
    if (image.complete && image.naturalWidth === 0) breakTile(link, image);
    else image.addEventListener("error", () => breakTile(link, image), { once: true });
  }
  original.addEventListener("error", async () => {
    const src = original.getAttribute("src");
    if (!src) return;
    const reason = await reasonFor(src);
    if (original.getAttribute("src") === src) showOriginal(src, reason);
  });

  original.dataset.src = original.getAttribute("src") || "";
  if (original.dataset.src && original.complete && original.naturalWidth === 0) {
    original.dispatchEvent(new Event("error"));
  }
  syncFocal();
  // The page was rendered for this very form: measure its thumbnail without signing it again.
  lastBody = JSON.stringify(formFields());
  load({ path: thumb.dataset.url, dpr: thumb.dataset.dpr }, ++sequence);
})();
