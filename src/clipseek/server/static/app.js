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
  $("grid").replaceChildren();
  $("dupes-panel").hidden = true;
  $("classify-panel").hidden = false;
}

// The inside of an image card (a search result, a duplicate): thumbnail, badge, caption.
function thumbParts(m, badgeText) {
  const img = document.createElement("img");
  img.loading = "lazy";
  img.alt = m.path;
  img.src = withToken("/api/thumbs/" + m.id);
  const badge = document.createElement("span");
  badge.className = "score";
  badge.textContent = badgeText;
  const cap = document.createElement("span");
  cap.className = "caption";
  cap.textContent = m.path;
  return [img, badge, cap];
}

function dupeCard(m) {
  const card = document.createElement("button");
  card.type = "button";
  card.className = "card" + (m.reason === "keep" ? " keeper" : "");
  card.title = m.path + "  (" + m.width + "×" + m.height + ", " + m.size.toLocaleString() + " bytes)";
  card.append(...thumbParts(m, m.reason === "keep" ? "keep" : m.reason + " " + fmtScore(m.score)));
  card.addEventListener("click", () => openViewer(m));
  return card;
}

async function findDupes() {
  const similar = $("dupes-similar").checked;
  setStatus("Looking for duplicates…");
  const t0 = performance.now();
  try {
    const body = await api("/api/dupes?similar=" + similar);
    const box = $("dupe-groups");
    box.replaceChildren();
    for (const g of body.groups) {
      const group = document.createElement("div");
      group.className = "dupe-group";
      const head = document.createElement("div");
      head.className = "dupe-head";
      head.textContent = (g.members.length - 1) + (g.members.length === 2 ? " copy" : " copies") + " of " + g.keep;
      const row = document.createElement("div");
      row.className = "grid";
      for (const m of g.members) row.append(dupeCard(m));
      group.append(head, row);
      box.append(group);
    }
    $("grid").replaceChildren();
    $("classify-panel").hidden = true;
    $("dupes-panel").hidden = false;
    const ms = Math.round(performance.now() - t0);
    const plural = (n, one, many) => n + " " + (n === 1 ? one : many);
    setStatus(body.total_groups ? plural(body.total_groups, "group", "groups") + ", " +
                                  plural(body.extras, "extra copy", "extra copies") + " (" + ms + " ms)"
                                : "No duplicates found.");
  } catch (e) { setStatus(e.message, true); }
}

function openViewer(r) {
  const url = withToken("/api/images/" + r.id);
  $("viewer-img").src = url;
  $("viewer-img").alt = r.path;
  $("viewer-caption").textContent = r.path + " · " + r.width + "×" + r.height + " · " +
    (r.reason ? r.reason : "score") + " " + fmtScore(r.score);
  $("viewer-open").href = url;
  $("viewer").hidden = false;
}

function closeViewer() {
  $("viewer").hidden = true;
  $("viewer-img").removeAttribute("src");
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
  $("dupes-btn").addEventListener("click", findDupes);
  $("viewer").addEventListener("click", (e) => { if (e.target.id !== "viewer-img") closeViewer(); });
  document.addEventListener("keydown", (e) => { if (e.key === "Escape") closeViewer(); });
  $("token-form").addEventListener("submit", (e) => {
    e.preventDefault();
    token = $("token").value.trim();
    localStorage.setItem(TOKEN_KEY, token);
    loadStats();
  });
}

wire();
loadStats();
