// clipseek web page, the viewer: full window, the current list's previous/next (keys, buttons, swipe),
// the picture's details, more / less like this, its duplicates, the original. Loaded after app.js.
"use strict";

const viewer = { list: [], index: -1, opener: null, zoomed: false };

function openViewer(list, index) {
  viewer.list = list;
  viewer.opener = document.activeElement;
  $("viewer").hidden = false;
  document.body.classList.add("viewing");
  showInViewer(index);
  $("viewer-close").focus();
}

function detailRows(r, info) {
  const rows = [["Folder", (info.folder || r.folder) || "(the gallery's root)"],
                ["Dimensions", r.width + " × " + r.height + " px"]];
  const size = info.size != null ? info.size : r.size;
  if (size != null) rows.push(["File size", fmtBytes(size)]);
  const taken = info.taken || r.taken;
  if (taken) rows.push(["Taken", fmtDate(taken)]);
  if (r.score != null) rows.push([r.reason ? "Duplicate (" + r.reason + ")" : "Score", fmtScore(r.score)]);
  if (r.relevance != null) rows.push(["Relevance", r.relevance.toFixed(2) + " (0: the query's median, 1: its best match)" +
                                      (r.relevant ? " · stands out" : "")]);
  return rows;
}

function showDetails(r, info) {
  const dl = $("viewer-details");
  dl.replaceChildren();
  for (const [k, v] of detailRows(r, info)) {
    const dt = document.createElement("dt");
    dt.textContent = k;
    const dd = document.createElement("dd");
    dd.textContent = v;
    dl.append(dt, dd);
  }
}

async function showInViewer(index) {
  if (index < 0 || index >= viewer.list.length) return;
  viewer.index = index;
  const r = viewer.list[index];
  viewer.zoomed = false;
  const img = $("viewer-img");
  img.classList.remove("zoomed");
  img.src = withToken(VIEW_URL(r.id, r.hash));
  img.alt = r.path;
  $("viewer-name").textContent = baseName(r.path);
  $("viewer-name").title = r.path;
  $("viewer-open").href = withToken(ORIGINAL_URL(r.id));
  $("viewer-pos").textContent = (index + 1) + " of " + viewer.list.length + (viewer.list === listing.items && listing.more ? "+" : "");
  $("viewer-prev").disabled = index === 0;
  $("viewer-next").disabled = index === viewer.list.length - 1 && !(viewer.list === listing.items && listing.more);
  showDetails(r, {});
  if (r.size == null || !r.taken) {  // a search result: the rest from /api/info
    try {
      const info = await api("/api/info/" + r.id);
      if (viewer.index === index && viewer.list[index] === r) showDetails(r, info);
    } catch (e) { /* the details shown stay */ }
  }
}

async function step(delta) {
  if ($("viewer").hidden) return;
  const next = viewer.index + delta;
  if (next >= viewer.list.length && viewer.list === listing.items) {
    if (!(await loadMore())) return;
  }
  showInViewer(Math.max(0, Math.min(viewer.list.length - 1, next)));
}

function closeViewer() {
  if ($("viewer").hidden) return;
  $("viewer").hidden = true;
  document.body.classList.remove("viewing");
  $("viewer-img").removeAttribute("src");
  if (viewer.opener && document.contains(viewer.opener)) viewer.opener.focus();
}

function toggleZoom() {
  const r = viewer.list[viewer.index];
  if (!r) return;
  viewer.zoomed = !viewer.zoomed;
  const img = $("viewer-img");
  img.classList.toggle("zoomed", viewer.zoomed);
  if (viewer.zoomed) img.src = withToken(ORIGINAL_URL(r.id));
}

function wireViewer() {
  $("viewer-prev").addEventListener("click", () => step(-1));
  $("viewer-next").addEventListener("click", () => step(1));
  $("viewer-close").addEventListener("click", closeViewer);
  $("viewer-img").addEventListener("click", toggleZoom);
  $("viewer-stage").addEventListener("click", (e) => { if (e.target.id === "viewer-stage") closeViewer(); });
  const term = (sign) => () => { const r = viewer.list[viewer.index]; closeViewer(); addTerm(sign, "image:" + r.id); };
  $("viewer-more").addEventListener("click", term(1));
  $("viewer-less").addEventListener("click", term(-1));
  $("viewer-dupes").addEventListener("click", () => { const r = viewer.list[viewer.index]; closeViewer(); findDupes(r.id); });
  document.addEventListener("keydown", (e) => {
    const typing = /^(INPUT|TEXTAREA|SELECT)$/.test(e.target.tagName);
    if (!$("viewer").hidden) {
      if (e.key === "Escape") { e.preventDefault(); closeViewer(); }
      else if (e.key === "ArrowRight") { e.preventDefault(); step(1); }
      else if (e.key === "ArrowLeft") { e.preventDefault(); step(-1); }
      else if (e.key === "/") { e.preventDefault(); closeViewer(); $("q").focus(); }
      else if (e.key === "Tab") trapFocus(e);
    } else if (e.key === "/" && !typing) { e.preventDefault(); $("q").focus(); }
  });
  let x0 = null, y0 = null;
  $("viewer-stage").addEventListener("touchstart", (e) => { x0 = e.touches[0].clientX; y0 = e.touches[0].clientY; }, { passive: true });
  $("viewer-stage").addEventListener("touchend", (e) => {
    if (x0 === null || viewer.zoomed) return;
    const dx = e.changedTouches[0].clientX - x0, dy = e.changedTouches[0].clientY - y0;
    x0 = null;
    if (Math.abs(dx) > 50 && Math.abs(dx) > Math.abs(dy)) step(dx < 0 ? 1 : -1);
  });
}

function trapFocus(e) {  // Tab stays inside the viewer while it is open
  const focusable = [...$("viewer").querySelectorAll("button:not([disabled]), a[href]")];
  if (!focusable.length) return;
  const first = focusable[0], last = focusable[focusable.length - 1];
  if (e.shiftKey && document.activeElement === first) { e.preventDefault(); last.focus(); }
  else if (!e.shiftKey && document.activeElement === last) { e.preventDefault(); first.focus(); }
}

wireViewer();
