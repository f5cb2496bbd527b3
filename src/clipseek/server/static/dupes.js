// clipseek web page, duplicates to decide on: each group's members with their dimensions, file size,
// capture date and full path, the keeper and why, a side-by-side or blink comparison of any two, and
// the `clipseek dupes` command that moves the extras (the page changes no file). Loaded after app.js.
"use strict";

const plural = (n, one, many) => n + " " + (n === 1 ? one : many);

function memberRow(g, m, i, pickFor) {
  const row = document.createElement("li");
  row.className = "member" + (m.reason === "keep" ? " keeper" : "");
  const open = document.createElement("button");
  open.type = "button";
  open.className = "member-thumb";
  open.setAttribute("aria-label", "view " + m.path);
  const img = document.createElement("img");
  img.loading = "lazy";
  img.alt = m.path;
  img.width = 96;
  img.height = 96;
  img.src = withToken(THUMB_URL(m.id, m.hash));
  open.append(img);
  open.addEventListener("click", () => openViewer(g.members, i));
  const text = document.createElement("div");
  text.className = "member-text";
  const path = document.createElement("div");
  path.className = "member-path";
  path.textContent = m.path;
  const facts = document.createElement("div");
  facts.className = "member-facts";
  const badge = m.reason === "keep" ? "keeper: " + g.keep_reason : m.reason + " " + fmtScore(m.score);
  facts.textContent = [badge, m.width + "×" + m.height, fmtBytes(m.size), m.taken ? fmtDate(m.taken) : ""]
    .filter(Boolean).join(" · ");
  text.append(path, facts);
  const cmp = document.createElement("label");
  cmp.className = "check compare-pick";
  const box = document.createElement("input");
  box.type = "checkbox";
  box.checked = i < 2;
  box.addEventListener("change", () => pickFor(m, box));
  cmp.append(box, document.createTextNode(" compare"));
  row.append(open, text, cmp);
  return row;
}

function dupeGroup(g) {
  const group = document.createElement("div");
  group.className = "dupe-group";
  const head = document.createElement("h3");
  head.className = "dupe-head";
  head.textContent = plural(g.members.length - 1, "copy", "copies") + " of " + baseName(g.keep);
  const list = document.createElement("ul");
  list.className = "members";
  let picked = g.members.slice(0, 2);
  const pickFor = (m, box) => {
    picked = picked.filter((x) => x !== m);
    if (box.checked) picked.push(m);
    if (picked.length > 2) {  // keep the two chosen last
      const dropped = picked.shift();
      const i = g.members.indexOf(dropped);
      list.children[i].querySelector("input").checked = false;
    }
    if (picked.length === 2) showCompare(picked[0], picked[1], g);
  };
  g.members.forEach((m, i) => list.append(memberRow(g, m, i, pickFor)));
  const compare = document.createElement("button");
  compare.type = "button";
  compare.className = "secondary";
  compare.textContent = "Compare the two ticked";
  compare.addEventListener("click", () => { if (picked.length === 2) showCompare(picked[0], picked[1], g); });
  group.append(head, list, compare);
  return group;
}

function compareSide(m, g) {
  const fig = document.createElement("figure");
  const img = document.createElement("img");
  img.src = withToken(VIEW_URL(m.id, m.hash));
  img.alt = m.path;
  const cap = document.createElement("figcaption");
  cap.textContent = (m.reason === "keep" ? "KEEP (" + g.keep_reason + ") · " : "") + m.path + " · " +
    m.width + "×" + m.height + " · " + fmtBytes(m.size);
  fig.append(img, cap);
  return fig;
}

function showCompare(a, b, g) {
  const box = $("dupe-compare");
  box.replaceChildren();
  const sides = document.createElement("div");
  sides.className = "compare-sides";
  sides.append(compareSide(a, g), compareSide(b, g));
  const blink = document.createElement("button");
  blink.type = "button";
  blink.className = "secondary";
  blink.textContent = "Blink (show one, then the other)";
  blink.setAttribute("aria-pressed", "false");
  blink.addEventListener("click", () => {
    const on = sides.classList.toggle("blink");
    blink.setAttribute("aria-pressed", String(on));
    sides.classList.remove("second");
  });
  sides.addEventListener("click", () => { if (sides.classList.contains("blink")) sides.classList.toggle("second"); });
  const close = document.createElement("button");
  close.type = "button";
  close.className = "link";
  close.textContent = "close the comparison";
  close.addEventListener("click", () => { box.hidden = true; box.replaceChildren(); });
  const bar = document.createElement("div");
  bar.className = "compare-bar";
  const title = document.createElement("h3");
  title.textContent = "Side by side";
  bar.append(title, blink, close);
  box.append(bar, sides);
  box.hidden = false;
  box.scrollIntoView({ block: "nearest" });
}

async function findDupes(onlyId) {  // onlyId: just the group holding this image
  const similar = $("dupes-similar").checked;
  setStatus("Looking for duplicates…");
  const t0 = performance.now();
  try {
    const body = await api("/api/dupes?similar=" + similar);
    const groups = onlyId == null ? body.groups : body.groups.filter((g) => g.members.some((m) => m.id === onlyId));
    const box = $("dupe-groups");
    box.replaceChildren(...groups.map(dupeGroup));
    $("dupes-command").textContent = body.command;
    $("dupe-compare").hidden = true;
    clearList();
    $("classify-panel").hidden = true;
    $("dupes-panel").hidden = false;
    const ms = Math.round(performance.now() - t0);
    if (onlyId != null) setStatus(groups.length ? "Its duplicates (" + ms + " ms)" : "This image has no duplicate.");
    else setStatus(body.total_groups ? plural(body.total_groups, "group", "groups") + ", " +
                                       plural(body.extras, "extra copy", "extra copies") + " (" + ms + " ms)"
                                     : "No duplicates found.");
  } catch (e) { setStatus(e.message, true); }
}
