"use strict";
// The gate report viewer. Every string from the data becomes a DOM text node
// (textContent), never markup, so the text shows literally and runs nothing.
(function () {
  const D = JSON.parse(document.getElementById("data").textContent);
  const $ = (id) => document.getElementById(id);
  const chars = Array.from(D.text);            // code points, as Python indexes them
  const DIRS = ["forward", "backward"];
  const cache = {};

  function acts(key) {                         // base64 uint8, time-major (T, H); 127 is 0
    if (!cache[key]) {
      const s = atob(D.acts[key]);
      const a = new Uint8Array(s.length);
      for (let i = 0; i < s.length; i++) a[i] = s.charCodeAt(i);
      cache[key] = a;
    }
    return cache[key];
  }
  const value = (b) => b / 127 - 1;
  function colour(b) {                         // blue −1, white 0, red +1
    const v = value(b);
    const c = Math.round(255 * (1 - Math.abs(v)));
    return v >= 0 ? `rgb(255, ${c}, ${c})` : `rgb(${c}, ${c}, 255)`;
  }
  function el(tag, text, parent) {
    const e = document.createElement(tag);
    if (text !== undefined) e.textContent = String(text);
    if (parent) parent.appendChild(e);
    return e;
  }
  function options(sel, items) {
    for (const [v, label] of items) { const o = el("option", label, sel); o.value = v; }
  }

  options($("layer"), [...new Set(D.keys.map((k) => k[0]))].map((l) => [l, l]));
  options($("direction"), [...new Set(D.keys.map((k) => k[1]))].map((d) => [d, DIRS[d]]));
  options($("quantity"), D.quantities.map((q) => [q, q]));

  const box = $("text");
  const spans = chars.map((ch, t) => { const s = el("span", ch, box); s.dataset.t = t; return s; });

  function current() {
    return { layer: +$("layer").value, direction: +$("direction").value,
             quantity: $("quantity").value, unit: +$("unit").value };
  }
  const keyOf = (st) => `${st.layer},${st.direction},${st.quantity}`;

  function paint() {
    const st = current();
    const H = D.hidden[`${st.layer},${st.direction}`];
    const unit = Math.min(Math.max(0, Math.trunc(st.unit) || 0), H - 1);
    for (const id of ["unit", "unit-range"]) { $(id).max = H - 1; $(id).value = unit; }
    const key = keyOf(st);
    const a = acts(key);
    let lo = 0, hi = 254;                      // byte range mapped onto blue..red
    if ($("stretch").checked) {
      lo = 255; hi = 0;
      for (let t = 0; t < spans.length; t++) { const b = a[t * H + unit]; lo = Math.min(lo, b); hi = Math.max(hi, b); }
      if (hi === lo) { lo = 0; hi = 254; }
    }
    for (let t = 0; t < spans.length; t++) {
      spans[t].style.backgroundColor = colour(Math.round((a[t * H + unit] - lo) / (hi - lo) * 254));
    }
    const r = D.features.map((f, i) => `${f} ${D.corr[key][i][unit] >= 0 ? "+" : ""}${D.corr[key][i][unit].toFixed(2)}`);
    $("unit-info").textContent = `layer ${st.layer} ${DIRS[st.direction]}, ${st.quantity}[${unit}] of ${H}; r with ${r.join(", ")}`;
    document.body.dataset.selected = `${key},${unit}`;
    try { history.replaceState(null, "", `#layer=${st.layer}&direction=${st.direction}&quantity=${st.quantity}&unit=${unit}`); } catch (e) { /* file: URLs in some browsers */ }
  }

  function select(st) {
    $("layer").value = st.layer; $("direction").value = st.direction;
    $("quantity").value = st.quantity; $("unit").value = st.unit;
    paint();
  }

  function fromHash() {
    const p = new URLSearchParams(location.hash.slice(1));
    const st = Object.assign({}, D.initial);
    for (const k of ["layer", "direction", "unit"]) if (p.has(k) && !isNaN(+p.get(k))) st[k] = +p.get(k);
    if (p.has("quantity") && D.quantities.includes(p.get("quantity"))) st.quantity = p.get("quantity");
    if (!D.keys.some((k) => k[0] === st.layer && k[1] === st.direction)) Object.assign(st, D.initial);
    return st;
  }

  for (const id of ["layer", "direction", "quantity", "unit", "stretch"]) $(id).addEventListener("change", paint);
  $("unit").addEventListener("input", paint);
  $("unit-range").addEventListener("input", () => { $("unit").value = $("unit-range").value; paint(); });
  box.addEventListener("mouseover", (e) => {
    const t = e.target.dataset ? e.target.dataset.t : undefined;
    if (t === undefined) return;
    const st = current();
    const b = acts(keyOf(st))[t * D.hidden[`${st.layer},${st.direction}`] + st.unit];
    $("hover").textContent = `character ${t} ${JSON.stringify(chars[t])}: ${value(b).toFixed(2)}`;
  });

  const rows = $("units").tBodies[0];
  for (const u of D.top) {
    const tr = el("tr", undefined, rows);
    for (const v of [u.feature, u.layer, DIRS[u.direction], u.quantity, u.unit, (u.r >= 0 ? "+" : "") + u.r.toFixed(2)]) el("td", v, tr);
    const snip = el("span", undefined, el("td", undefined, tr));
    snip.className = "snippet";
    Array.from(u.snippet).forEach((ch, i) => {
      el("span", ch === "\n" ? "\u21b5" : ch, snip).style.backgroundColor = colour(u.values[i]);
    });
    tr.addEventListener("click", () => { select(u); $("viewer").scrollIntoView(); });
  }
  if (!D.top.length) el("td", "no feature varies over this text", el("tr", undefined, rows)).colSpan = 7;

  const spanRows = $("spans").tBodies[0];
  for (const m of D.spans) {
    const sorted = m.span.map((s, u) => [s, u]).sort((a, b) => b[0] - a[0]);
    const med = sorted[Math.floor(sorted.length / 2)][0];
    const tr = el("tr", undefined, spanRows);
    for (const v of [m.layer, DIRS[m.direction], m.gate, med.toFixed(1), sorted[0][0].toFixed(1),
                     sorted.slice(0, 5).map(([s, u]) => `${u} (${s.toFixed(1)})`).join(", ")]) el("td", v, tr);
  }

  select(fromHash());
  document.body.dataset.ready = "1";
})();
