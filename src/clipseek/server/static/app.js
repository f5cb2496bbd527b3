// clipseek web page: plain JS, no build step. Talks only to this server's /api.
"use strict";

const $ = (id) => document.getElementById(id);
const TOKEN_KEY = "clipseek-token";
let token = localStorage.getItem(TOKEN_KEY) || "";
let picked = null;  // the File chosen for image search / classification

// A token given once as /?token=... is kept in localStorage and removed from the address bar.
(function takeTokenFromUrl() {
  const url = new URL(location.href);
  const t = url.searchParams.get("token");
  if (t) {
    token = t;
    localStorage.setItem(TOKEN_KEY, t);
    url.searchParams.delete("token");
    history.replaceState(null, "", url.pathname + url.search + url.hash);
  }
})();

function withToken(url) {
  return token ? url + (url.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(token) : url;
}

function setStatus(text, isError) {
  const el = $("status");
  el.textContent = text || "";
  el.classList.toggle("error", !!isError);
}

async function api(path, options) {
  const opts = Object.assign({}, options);
  opts.headers = Object.assign({}, opts.headers, token ? { Authorization: "Bearer " + token } : {});
  const res = await fetch(path, opts);
  let body = null;
  try { body = await res.json(); } catch (e) { body = null; }
  if (res.status === 401) {
    $("token-form").hidden = false;
    $("token").focus();
  }
  if (!res.ok) throw new Error((body && body.error) || res.status + " " + res.statusText);
  return body;
}

function fmtScore(s) { return s.toFixed(3); }

// The list the grid shows (browse order, a search's results): the viewer walks it, `more` loads its next page.
const listing = { items: [], more: null, loading: false, fill: false };

function clearList() {
  $("grid").replaceChildren();
  $("list-title").textContent = "";
  $("more-btn").hidden = true;
  listing.items = [];
  listing.more = null;
  listing.fill = false;
}

async function loadMore() {  // the next page of the list, once at a time; true when items were added
  if (!listing.more || listing.loading) return false;
  listing.loading = true;
  const before = listing.items.length;
  try { await listing.more(); } catch (e) { setStatus(e.message, true); listing.more = null; }
  finally { listing.loading = false; }
  $("more-btn").hidden = !listing.more;
  const added = listing.items.length > before;
  if (added && listing.fill) requestAnimationFrame(loadIfNearEnd);  // browsing: fill the window
  return added;
}

function loadIfNearEnd() {  // on scroll: the next page once the end of the list comes near
  if (listing.more && !$("more-btn").hidden && $("more-btn").getBoundingClientRect().top < innerHeight + 600) loadMore();
}

function pick(file) {
  if (!file) return;
  if (!file.type.startsWith("image/")) { setStatus(file.name + " is not an image.", true); return; }
  picked = file;
  const prev = $("preview");
  if (prev.src) URL.revokeObjectURL(prev.src);
  prev.src = URL.createObjectURL(file);
  prev.hidden = false;
  $("drop-title").textContent = file.name;
  $("drop-hint").textContent = "Drop or click to choose another image";
  $("image-actions").hidden = false;
  $("drop").classList.add("has-image");
}

async function searchImage() {
  if (!picked) return;
  const form = new FormData();
  form.append("file", picked);
  form.append("k", $("k").value);
  for (const [key, value] of searchParams(readForm(), false)) if (key !== "q" && key !== "k") form.append(key, value);
  setStatus("Searching by image…");
  const t0 = performance.now();
  const mine = ++latest;  // search.js: the newest search wins
  try {
    const body = await api("/api/search/image", { method: "POST", body: form });
    if (mine !== latest) return;
    showResults(body, Math.round(performance.now() - t0), picked.name);
  } catch (e) { setStatus(e.message, true); }
}

async function classify() {
  if (!picked) return;
  const labels = $("labels").value.trim();
  if (!labels) { setStatus("Type some labels first, separated by commas or new lines.", true); $("labels").focus(); return; }
  const form = new FormData();
  form.append("file", picked);
  form.append("labels", labels);
  if ($("templates").value) form.append("templates", $("templates").value);
  setStatus("Classifying…");
  const t0 = performance.now();
  try {
    const body = await api("/api/classify", { method: "POST", body: form });
    showBars(body.predictions, body.scoring);
    setStatus(picked.name + ": " + body.predictions[0].label + " (" + body.labels.length + " labels, "
              + Math.round(performance.now() - t0) + " ms)");
  } catch (e) { setStatus(e.message, true); }
}

const SCORING_NOTES = {
  softmax: "Scores are shared out among the labels (softmax): they add up to 100%.",
  sigmoid: "Each label is scored on its own (sigmoid, as the model was trained): the scores need not add up to 100%.",
};

function showBars(predictions, scoring) {
  const list = $("bars");
  list.replaceChildren();
  const shown = predictions.slice(0, 25);
  for (const p of shown) {
    const li = document.createElement("li");
    li.className = "bar-row";
    const label = document.createElement("span");
    label.className = "bar-label";
    label.textContent = p.label;
    const track = document.createElement("span");
    track.className = "bar-track";
    const fill = document.createElement("span");
    fill.className = "bar-fill";
    fill.style.width = Math.max(0.5, p.score * 100).toFixed(1) + "%";
    track.append(fill);
    const value = document.createElement("span");
    value.className = "bar-value";
    value.textContent = (p.score * 100).toFixed(1) + "%";
    li.append(label, track, value);
    list.append(li);
  }
  if (predictions.length > shown.length) {
    const li = document.createElement("li");
    li.className = "bar-more";
    li.textContent = "… and " + (predictions.length - shown.length) + " more labels";
    list.append(li);
  }
  $("scoring-note").textContent = SCORING_NOTES[scoring] || "";
  clearList();
  $("dupes-panel").hidden = true;
  $("classify-panel").hidden = false;
}

// Where pictures come from: the grid's thumbnail, and the viewer's picture before zooming to the original.
// Thumbnails are made at index time in two sizes (grid, view); the hash, when known, makes the URL
// change with the content, so the browser may keep the image for a year (the server says immutable).
const THUMB_URL = (id, hash) => "/api/thumbs/" + id + (hash ? "?h=" + encodeURIComponent(hash) : "");
const VIEW_URL = (id, hash) => "/api/thumbs/" + id + "?size=view" + (hash ? "&h=" + encodeURIComponent(hash) : "");
const ORIGINAL_URL = (id) => "/api/images/" + id;

function fmtBytes(n) {
  if (n == null) return "";
  const units = ["bytes", "KB", "MB", "GB"];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) { n /= 1000; i++; }
  return (i ? n.toFixed(n < 10 ? 1 : 0) : n) + " " + units[i];
}

function fmtDate(iso) {  // "2024-05-03T10:00:00Z" -> "3 May 2024, 10:00" (UTC, as the server stores it)
  if (!iso) return "";
  const d = new Date(iso);
  return d.toLocaleDateString(undefined, { timeZone: "UTC", day: "numeric", month: "short", year: "numeric" })
    + ", " + iso.slice(11, 16);
}

function baseName(path) { return path.split("/").pop(); }

// The inside of an image card (a search result, a duplicate): thumbnail, badge, caption.
function thumbParts(m, badgeText) {
  const img = document.createElement("img");
  img.loading = "lazy";
  img.alt = m.path;
  img.width = 256;
  img.height = 256;
  img.src = withToken(THUMB_URL(m.id, m.hash));
  const cap = document.createElement("span");
  cap.className = "caption";
  cap.textContent = m.path;
  if (!badgeText) return [img, cap];
  const badge = document.createElement("span");
  badge.className = "score";
  badge.textContent = badgeText;
  return [img, badge, cap];
}

async function loadStats() {
  try {
    const s = await api("/api/stats");
    const model = (s.model || "").split("/").filter(Boolean).pop() || "model";
    $("stats").textContent = s.images.toLocaleString() + " images · " + model;
    if (s.default_template) $("default-template").textContent = "one prompt: \"" + s.default_template + "\"";
    $("token-form").hidden = true;
  } catch (e) { $("stats").textContent = ""; }
}

function wire() {
  $("pick").addEventListener("click", (e) => { e.stopPropagation(); $("file").click(); });
  $("file").addEventListener("change", () => pick($("file").files[0]));
  const drop = $("drop");
  drop.addEventListener("click", (e) => {
    if (e.target === drop || e.target.closest(".drop-text") || e.target === $("preview")) $("file").click();
  });
  drop.addEventListener("keydown", (e) => { if (e.key === "Enter" && e.target === drop) $("file").click(); });
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    pick(e.dataTransfer.files[0]);
  });
  $("similar-btn").addEventListener("click", searchImage);
  $("classify-btn").addEventListener("click", classify);
  $("dupes-btn").addEventListener("click", () => findDupes(null));
  $("token-form").addEventListener("submit", (e) => {
    e.preventDefault();
    token = $("token").value.trim();
    localStorage.setItem(TOKEN_KEY, token);
    loadStats();
  });
}

wire();
loadStats();
