// clipseek web page, browsing without a query: the gallery newest first (by capture time), grouped by
// month, a page at a time (/api/browse's cursor, loaded on scroll); a folder tree and the months with
// their counts (/api/folders). Where you are lives in the address as the filters' names (/?in=trip&
// after=2024-05-01&before=2024-06-01), so Back/Forward and a copied link work. Loaded last: it starts the page.
"use strict";

const PAGE = 100;
const MONTH_FMT = { timeZone: "UTC", month: "long", year: "numeric" };

function monthName(ym) { return new Date(ym + "-01T00:00:00Z").toLocaleDateString(undefined, MONTH_FMT); }

function monthRange(ym) {  // "2024-05" -> ["2024-05-01", "2024-06-01"]
  const [y, m] = ym.split("-").map(Number);
  const next = m === 12 ? (y + 1) + "-01" : y + "-" + String(m + 1).padStart(2, "0");
  return [ym + "-01", next + "-01"];
}

function browseParams(s) {
  const p = new URLSearchParams();
  for (const f of s.in) p.append("in", f);
  for (const [key] of FILTER_FIELDS) if (s[key]) p.append(key, s[key]);
  return p;
}

function browseTitle(s) {
  const where = s.in.length ? s.in.join(", ") : "All photos";
  const month = s.after && s.after.endsWith("-01") && monthRange(s.after.slice(0, 7))[1] === s.before
    ? monthName(s.after.slice(0, 7)) : (s.after || s.before ? [s.after && "from " + s.after, s.before && "before " + s.before].filter(Boolean).join(" ") : "");
  return where + (month ? " · " + month : "");
}

function browseCard(item, index) {
  const card = document.createElement("button");
  card.type = "button";
  card.className = "card";
  card.title = item.path + "  (" + item.width + "×" + item.height + ", " + fmtDate(item.taken) + ")";
  card.setAttribute("aria-label", "view " + item.path);
  card.append(...thumbParts(item, ""));
  card.addEventListener("click", () => openViewer(listing.items, index));
  return card;
}

function appendBrowse(items) {
  const grid = $("grid");
  for (const item of items) {
    const last = listing.items[listing.items.length - 1];
    const month = item.taken.slice(0, 7);
    if (!last || last.taken.slice(0, 7) !== month) {
      const head = document.createElement("h2");
      head.className = "month-head";
      head.textContent = monthName(month);
      grid.append(head);
    }
    grid.append(browseCard(item, listing.items.length));
    listing.items.push(item);
  }
}

function browsePage(params, cursor, mine) {
  return async () => {
    const p = new URLSearchParams(params);
    p.set("limit", PAGE);
    if (cursor) p.set("cursor", cursor);
    const t0 = performance.now();
    const body = await api("/api/browse?" + p.toString());
    if (mine !== latest) return;
    appendBrowse(body.results);
    listing.more = body.cursor ? browsePage(params, body.cursor, mine) : null;
    setStatus(body.total ? listing.items.length.toLocaleString() + " of " + body.total.toLocaleString() +
                           " images, newest first (" + Math.round(performance.now() - t0) + " ms)"
                         : "No image here.");
  };
}

async function runBrowse(s, how) {
  const params = browseParams(s);
  const address = params.toString() ? "/?" + params.toString() : "/";
  if (how === "push" && address !== location.pathname + location.search) history.pushState(null, "", address);
  else if (how === "replace") history.replaceState(null, "", address);
  const mine = ++latest;
  clearList();
  $("classify-panel").hidden = true;
  $("dupes-panel").hidden = true;
  $("list-title").textContent = browseTitle(s);
  markCurrent(s);
  listing.more = browsePage(params, null, mine);
  listing.fill = true;
  await loadMore();
}

function go(change) {  // browse somewhere else: a folder or a month, keeping the other
  const s = Object.assign(readForm(), change);
  s.q = "";
  s.terms = [];
  writeForm(s);
  runSearch(s, "push");
}

// The folder tree: each folder with the images under it (its own and its subfolders').
function folderTree(folders) {
  const root = { name: "", path: "", count: 0, own: 0, kids: new Map() };
  for (const f of folders) {
    let node = root;
    root.count += f.count;
    if (f.path) {
      const parts = f.path.split("/");
      parts.forEach((part, i) => {
        if (!node.kids.has(part)) node.kids.set(part, { name: part, path: parts.slice(0, i + 1).join("/"), count: 0, own: 0, kids: new Map() });
        node = node.kids.get(part);
        node.count += f.count;
      });
    }
    node.own += f.count;
  }
  return root;
}

function treeItem(node, label) {
  const li = document.createElement("li");
  const b = document.createElement("button");
  b.type = "button";
  b.className = "tree-btn";
  b.dataset.folder = node.path;
  const name = document.createElement("span");
  name.textContent = label || node.name;
  const count = document.createElement("span");
  count.className = "count";
  count.textContent = node.count.toLocaleString();
  b.append(name, count);
  b.addEventListener("click", () => go({ in: node.path ? [node.path] : [] }));
  li.append(b);
  if (node.kids.size) {
    const ul = document.createElement("ul");
    for (const kid of [...node.kids.values()].sort((a, c) => a.name.localeCompare(c.name))) ul.append(treeItem(kid));
    li.append(ul);
  }
  return li;
}

function monthList(months) {
  const box = $("month-list");
  box.replaceChildren();
  const all = document.createElement("li");
  const any = document.createElement("button");
  any.type = "button";
  any.className = "tree-btn";
  any.dataset.month = "";
  any.textContent = "Any time";
  any.addEventListener("click", () => go({ after: "", before: "" }));
  all.append(any);
  box.append(all);
  let year = null, yearList = null;
  for (const m of months) {
    if (m.month.slice(0, 4) !== year) {
      year = m.month.slice(0, 4);
      const li = document.createElement("li");
      li.className = "year";
      const h = document.createElement("span");
      h.className = "year-name";
      h.textContent = year;
      yearList = document.createElement("ul");
      li.append(h, yearList);
      box.append(li);
    }
    const li = document.createElement("li");
    const b = document.createElement("button");
    b.type = "button";
    b.className = "tree-btn";
    b.dataset.month = m.month;
    const name = document.createElement("span");
    name.textContent = monthName(m.month).replace(/\s*\d{4}$/, "").replace(/^(\D+) \d{4}$/, "$1");
    const count = document.createElement("span");
    count.className = "count";
    count.textContent = m.count.toLocaleString();
    b.append(name, count);
    b.addEventListener("click", () => { const [after, before] = monthRange(m.month); go({ after, before }); });
    li.append(b);
    yearList.append(li);
  }
}

function markCurrent(s) {
  const folder = s.in.length === 1 ? s.in[0].replace(/\/+$/, "") : s.in.length ? null : "";
  for (const b of document.querySelectorAll("#folder-tree .tree-btn")) {
    if (b.dataset.folder === folder) b.setAttribute("aria-current", "true"); else b.removeAttribute("aria-current");
  }
  const month = s.after && monthRange(s.after.slice(0, 7))[1] === s.before ? s.after.slice(0, 7) : (s.after || s.before ? null : "");
  for (const b of document.querySelectorAll("#month-list .tree-btn")) {
    if (b.dataset.month === month) b.setAttribute("aria-current", "true"); else b.removeAttribute("aria-current");
  }
}

async function loadFolders() {
  try {
    const body = await api("/api/folders");
    const tree = folderTree(body.folders);
    $("folder-tree").replaceChildren(treeItem(tree, "All photos"));
    monthList(body.months);
    markCurrent(readForm());
  } catch (e) { /* the token form shows; the grid says why */ }
}

function wireBrowse() {
  $("more-btn").addEventListener("click", loadMore);
  let ticking = false;
  addEventListener("scroll", () => {
    if (!ticking) { ticking = true; requestAnimationFrame(() => { ticking = false; loadIfNearEnd(); }); }
  }, { passive: true });
  $("home").addEventListener("click", (e) => {
    e.preventDefault();
    writeForm({ q: "", k: $("k").value, terms: [], in: [], relevant: false });
    runSearch(readForm(), "push");
  });
  if (matchMedia("(max-width: 640px)").matches) $("nav-details").open = false;
  $("token-form").addEventListener("submit", () => { loadFolders(); runSearch(readForm(), "replace"); });
}

wireBrowse();
loadFolders();
const start = fromAddress();  // a copied address: the same search, folder or month
writeForm(start);
runSearch(start, "none");
