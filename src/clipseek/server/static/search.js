// clipseek web page, the search: query, + and − terms, filters, relevant-only divider, and the address.
// The address holds the whole search (/?q=...&add=...&in=...&relevant=1, the API's parameter names),
// so a copied link reproduces it, and Back/Forward move between searches. Loaded after app.js.
"use strict";

const FILTER_FIELDS = [["after", "f-after"], ["before", "f-before"], ["orientation", "f-orientation"],
                       ["min-size", "f-min-size"], ["ext", "f-ext"]];
let terms = [];  // [{sign: 1 | -1, value: "0.5:sunset" | "image:12"}]
let latest = 0;  // the newest search: an older one's answer, arriving later, is dropped

function readForm() {
  const s = { q: $("q").value.trim(), k: $("k").value, terms: terms.slice(), relevant: $("relevant").checked,
              in: $("f-in").value.split(";").map((x) => x.trim()).filter(Boolean) };
  for (const [key, id] of FILTER_FIELDS) s[key] = $(id).value.trim();
  return s;
}

function writeForm(s) {
  $("q").value = s.q || "";
  if (s.k && [...$("k").options].some((o) => o.value === s.k)) $("k").value = s.k;
  terms = s.terms.slice();
  $("relevant").checked = !!s.relevant;
  $("f-in").value = (s.in || []).join("; ");
  for (const [key, id] of FILTER_FIELDS) $(id).value = s[key] || "";
  showChips();
  showFilterSummary();
}

// The search as URL parameters, in the API's names (the page's address uses the same).
function searchParams(s, forAddress) {
  const p = new URLSearchParams();
  if (s.q) p.append("q", s.q);
  p.append("k", s.k);
  for (const t of s.terms) p.append(t.sign > 0 ? "add" : "subtract", t.value);
  for (const f of s.in) p.append("in", f);
  for (const [key] of FILTER_FIELDS) if (s[key]) p.append(key, s[key]);
  if (s.relevant && forAddress) p.append("relevant", "1");  // the API is asked for all k: the page marks
  return p;
}

function fromAddress() {
  const p = new URL(location.href).searchParams;
  const s = { q: p.get("q") || "", k: p.get("k") || "24", in: p.getAll("in"), relevant: p.get("relevant") === "1",
              terms: p.getAll("add").map((v) => ({ sign: 1, value: v }))
                .concat(p.getAll("subtract").map((v) => ({ sign: -1, value: v }))) };
  for (const [key] of FILTER_FIELDS) s[key] = p.get(key) || "";
  return s;
}

async function runSearch(s, how) {  // how: "push" (a new search), "replace" or "none" (Back/Forward)
  if (!s.q && !s.terms.some((t) => t.sign > 0)) { runBrowse(s, how); return; }  // browse.js: no query
  const query = searchParams(s, false);
  const address = "/?" + searchParams(s, true).toString();
  if (how === "push" && address !== location.pathname + location.search) history.pushState(null, "", address);
  else if (how === "replace") history.replaceState(null, "", address);
  setStatus("Searching…");
  const t0 = performance.now();
  const mine = ++latest;
  try {
    const body = await api("/api/search?" + query.toString());
    if (mine !== latest) return;
    const what = [s.q ? "\u201c" + s.q + "\u201d" : ""].concat(s.terms.map(termLabel)).filter(Boolean).join(" ");
    showResults(body, Math.round(performance.now() - t0), what);
    listing.more = body.cursor ? nextPage(query, body.cursor, mine) : null;
    $("more-btn").hidden = !listing.more;
  } catch (e) { if (mine === latest) setStatus(e.message, true); }
}

// The next k results of the same search (its cursor), appended to the grid: up to the server's k limit.
function nextPage(query, cursor, mine) {
  return async () => {
    const p = new URLSearchParams(query);
    p.set("cursor", cursor);
    const body = await api("/api/search?" + p.toString());
    if (mine !== latest) return;
    appendResults(body.results);
    listing.more = body.cursor ? nextPage(query, body.cursor, mine) : null;
    showCount(body);
  };
}

function termLabel(t) { return (t.sign > 0 ? "+ " : "− ") + t.value; }

function showChips() {
  const box = $("chips");
  box.replaceChildren();
  terms.forEach((t, i) => {
    const chip = document.createElement("span");
    chip.className = "chip " + (t.sign > 0 ? "plus" : "minus");
    const id = /^image:(\d+)$/.exec(t.value.replace(/^[\d.eE+-]+:/, ""));
    if (id) {
      const img = document.createElement("img");
      img.src = withToken("/api/thumbs/" + id[1]);
      img.alt = t.value;
      chip.append(img);
    }
    const label = document.createElement("span");
    label.textContent = termLabel(t);
    const remove = document.createElement("button");
    remove.type = "button";
    remove.className = "chip-remove";
    remove.setAttribute("aria-label", "remove " + t.value);
    remove.textContent = "×";
    remove.addEventListener("click", () => { terms.splice(i, 1); showChips(); runSearch(readForm(), "push"); });
    chip.append(label, remove);
    box.append(chip);
  });
}

function addTerm(sign, value) {
  value = (value || "").trim();
  if (!value) { $("term").focus(); return; }
  terms.push({ sign, value });
  $("term").value = "";
  showChips();
  runSearch(readForm(), "push");
}

function showFilterSummary() {
  const s = readForm();
  const parts = (s.in.length ? ["in " + s.in.join(", ")] : []).concat(
    FILTER_FIELDS.filter(([key]) => s[key]).map(([key]) => key + " " + s[key]));
  $("filter-summary").textContent = parts.length ? "· " + parts.join(" · ") : "";
  if (parts.length) $("filters").open = true;
}

function resultCard(r, dimmed, index) {
  const card = document.createElement("div");
  card.className = "card result" + (dimmed ? " dimmed" : "");
  const open = document.createElement("button");
  open.type = "button";
  open.className = "card-open";
  open.title = r.path + "  (" + r.width + "×" + r.height + ")";
  open.setAttribute("aria-label", "view " + r.path + ", score " + fmtScore(r.score));
  open.append(...thumbParts(r, fmtScore(r.score)));
  open.addEventListener("click", () => openViewer(listing.items, index));
  const actions = document.createElement("div");
  actions.className = "card-actions";
  for (const [sign, text, cls] of [[1, "+ more", "more"], [-1, "− less", "less"]]) {
    const b = document.createElement("button");
    b.type = "button";
    b.className = "link " + cls;
    b.textContent = text;
    b.title = cls + " like this (adds it to the query as " + (sign > 0 ? "+" : "−") + " image:" + r.id + ")";
    b.setAttribute("aria-label", cls + " like " + r.path);
    b.addEventListener("click", () => addTerm(sign, "image:" + r.id));
    actions.append(b);
  }
  card.append(open, actions);
  return card;
}

let shown = { what: "", took: 0, message: "" };

function appendResults(results) {  // a page of results, after those shown; the divider where relevance ends
  const marking = $("relevant").checked;
  const grid = $("grid");
  for (const r of results) {
    const i = listing.items.length;
    const nRelevant = listing.items.filter((x) => x.relevant).length;
    if (marking && !r.relevant && nRelevant === i && !grid.querySelector(".divider")) {
      const line = document.createElement("div");
      line.className = "divider";
      line.textContent = nRelevant ? "the " + nRelevant + " relevant results end here; below: less likely matches"
                                   : "no result stands out as relevant for this query";
      grid.append(line);
    }
    listing.items.push(r);
    grid.append(resultCard(r, marking && !r.relevant, i));
  }
}

function showCount(body) {
  const n = listing.items.length;
  const marking = $("relevant").checked;
  let text = n ? n + " results for " + shown.what + " in " + shown.took + " ms" +
                 (body.matched ? " · " + body.matched.toLocaleString() + " images searched" : "") +
                 (listing.more ? " · scroll for more" : "")
               : (body.message ? body.message.charAt(0).toUpperCase() + body.message.slice(1) + "."
                               : "No results for " + shown.what + ".");
  const nRelevant = listing.items.filter((r) => r.relevant).length;
  if (marking && n) text += " · " + nRelevant + " relevant" + (nRelevant === n ? " (all shown: more may follow)" : "");
  setStatus(text);
}

function showResults(body, took, what) {
  clearList();
  $("classify-panel").hidden = true;
  $("dupes-panel").hidden = true;
  shown = { what, took };
  $("list-title").textContent = "Results for " + what;
  appendResults(body.results);
  showCount(body);
}

function wireSearch() {
  $("search-form").addEventListener("submit", (e) => { e.preventDefault(); runSearch(readForm(), "push"); });
  $("add-btn").addEventListener("click", () => addTerm(1, $("term").value));
  $("sub-btn").addEventListener("click", () => addTerm(-1, $("term").value));
  $("term").addEventListener("keydown", (e) => {
    if (e.key === "Enter") { e.preventDefault(); addTerm(e.shiftKey ? -1 : 1, $("term").value); }
  });
  for (const id of ["f-in", "f-after", "f-before", "f-orientation", "f-min-size", "f-ext", "relevant"]) {
    $(id).addEventListener("change", () => {
      showFilterSummary();
      runSearch(readForm(), "push");
    });
  }
  $("f-clear").addEventListener("click", () => {
    $("f-in").value = "";
    for (const [, id] of FILTER_FIELDS) $(id).value = "";
    showFilterSummary();
    runSearch(readForm(), "push");
  });
  window.addEventListener("popstate", () => {
    const s = fromAddress();
    writeForm(s);
    runSearch(s, "none");
  });
}

wireSearch();
