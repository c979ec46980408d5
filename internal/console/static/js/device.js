// The device page: live telemetry chart and message tail, twin editor and
// history, direct methods, cloud-to-device messages, modules.
import { api, data, problem, toast, el, ago, timeOf, pretty, copyConnectionString, watchPresence } from "./app.js";

const root = document.getElementById("device");
const id = root.dataset.id;
const canService = root.dataset.service === "true";
const enc = encodeURIComponent(id);

document.getElementById("copy-conn").addEventListener("click", () => copyConnectionString(id));

// Connection state.
const connEl = document.getElementById("conn-state");
const lastEl = document.getElementById("last-activity");
let lastActivity = 0;
// Connecting and disconnecting are pushed; last activity comes with the
// pushes, the live message tail and a poll every 10 s, and its "… ago"
// text is kept current here.
watchPresence([id], (d) => {
  const p = d.devices[id];
  if (!p) return;
  connEl.classList.toggle("on", p.connected);
  connEl.classList.toggle("off", !p.connected);
  connEl.textContent = p.connected ? "Connected" : "Disconnected";
  if (p.lastActivity) noteActivity(Date.parse(p.lastActivity));
}, 10000);
function noteActivity(ms) {
  if (!(ms > lastActivity)) return;
  lastActivity = ms;
  lastEl.textContent = ago(lastActivity);
}
setInterval(() => { if (!document.hidden && lastActivity) lastEl.textContent = ago(lastActivity); }, 5000);

// ---- Telemetry chart ----------------------------------------------------
const palette = ["#2563eb", "#16a34a", "#dc2626", "#9333ea", "#ea580c", "#0891b2", "#ca8a04", "#db2777", "#4f46e5", "#059669"];
const windows = { "5m": 300, "1h": 3600, "24h": 86400 };
const chart = {
  range: "5m",
  times: [],              // seconds
  values: new Map(),      // field -> array aligned with times
  shown: new Set(),       // fields the operator wants
  known: [],              // fields in order of appearance
  plot: null,
  box: document.getElementById("chart"),
  es: null,
  units: window.ferryUnits || {}, // field -> unit, from the device's model (model.js)
};
window.addEventListener("ferry:units", (e) => {
  chart.units = e.detail || {};
  chart.dirty = true;
  if (chart.plot) draw();
});
const titled = (f) => (chart.units[f] ? f + " (" + chart.units[f] + ")" : f);

function cssVar(v) { return getComputedStyle(document.documentElement).getPropertyValue(v).trim(); }

function addPoints(points) {
  for (const p of points) {
    const t = p.t / 1000;
    chart.times.push(t);
    for (const f of chart.known) chart.values.get(f).push(null);
    for (const [f, v] of Object.entries(p.v)) {
      if (!chart.values.has(f)) {
        chart.known.push(f);
        chart.values.set(f, new Array(chart.times.length).fill(null));
        if (chart.shown.size < 4) chart.shown.add(f);
        chart.dirty = true;
      }
      chart.values.get(f)[chart.times.length - 1] = v;
    }
  }
  // Drop what left the window, and cap the points kept.
  const from = Date.now() / 1000 - windows[chart.range];
  let cut = 0;
  while (cut < chart.times.length && chart.times[cut] < from) cut++;
  cut = Math.max(cut, chart.times.length - 5000);
  if (cut > 0) {
    chart.times.splice(0, cut);
    for (const a of chart.values.values()) a.splice(0, cut);
  }
}

function renderFields() {
  const box = document.getElementById("fields");
  box.replaceChildren(el("legend", { class: "sr-only" }, "Fields to chart"));
  chart.known.forEach((f, i) => {
    const cb = el("input", { type: "checkbox", value: f });
    cb.checked = chart.shown.has(f);
    cb.addEventListener("change", () => {
      if (cb.checked) chart.shown.add(f); else chart.shown.delete(f);
      chart.dirty = true;
      draw();
    });
    const sw = el("span", { class: "swatch", "aria-hidden": "true" });
    sw.style.background = palette[i % palette.length];
    box.append(el("label", {}, cb, sw, titled(f)));
  });
}

function draw() {
  const fields = chart.known.filter((f) => chart.shown.has(f));
  document.getElementById("chart-empty").hidden = chart.times.length > 0;
  chart.box.dataset.points = String(chart.times.length);
  chart.box.dataset.fields = chart.known.join(",");
  const series = [chart.times, ...fields.map((f) => chart.values.get(f))];
  if (chart.dirty || !chart.plot) {
    renderFields();
    if (chart.plot) chart.plot.destroy();
    const axis = { stroke: cssVar("--muted"), grid: { stroke: cssVar("--line"), width: 1 }, ticks: { stroke: cssVar("--line") } };
    chart.plot = new uPlot({
      width: chart.box.clientWidth || 600, height: 300,
      // The window ends now; it starts at the oldest point, at least a
      // minute back, at most the chosen window back.
      scales: { x: { time: true, range: (u, min, max) => {
        const now = Date.now() / 1000;
        const from = Math.max(now - windows[chart.range], Math.min(min || now, now - 60));
        return [from, Math.max(max || now, now)];
      } } },
      axes: [axis, { ...axis, size: 60 }],
      series: [{ label: "time" }, ...fields.map((f) => ({
        label: titled(f), stroke: palette[chart.known.indexOf(f) % palette.length], width: 2, spanGaps: true,
        points: { show: chart.times.length < 60, size: 5 },
      }))],
    }, series, chart.box);
    chart.dirty = false;
  } else {
    chart.plot.setData(series);
  }
}

function renderTail(items, reset) {
  const ol = document.getElementById("tail");
  if (reset) ol.replaceChildren();
  for (const m of items) {
    const props = m.props ? Object.entries(m.props).map(([k, v]) => k + "=" + v).join("  ") : "";
    const body = el("span", { class: "body" }, m.body + (m.truncated ? " …" : ""));
    const meta = [m.id && "id " + m.id, m.module && "module " + m.module, m.component && "component " + m.component, m.stream && m.stream !== "default" && "stream " + m.stream, props]
      .filter(Boolean).join(" · ");
    ol.prepend(el("li", {}, el("time", { datetime: new Date(m.t).toISOString() }, timeOf(m.t)),
      el("div", {}, meta ? el("span", { class: "props" }, meta) : null, body)));
  }
  while (ol.children.length > 50) ol.lastChild.remove();
  if (!ol.children.length) ol.append(el("li", {}, el("span", { class: "empty" }, "No messages in this window.")));
  else ol.querySelectorAll(".empty").forEach((e) => e.closest("li").remove());
}

async function loadHistory() {
  chart.times = []; chart.values = new Map(); chart.known = []; chart.dirty = true;
  const r = await data("devices/" + enc + "/telemetry?range=" + chart.range);
  if (!r.ok) { toast(problem(r), true); return; }
  addPoints(r.data.points || []);
  renderTail(r.data.tail || [], true);
  draw();
  const hint = document.getElementById("chart-partial");
  hint.hidden = !r.data.partial;
}

function startLive() {
  const state = document.getElementById("live-state");
  chart.es = new EventSource("/console/data/devices/" + enc + "/live");
  chart.es.onopen = () => { state.textContent = "live"; state.classList.add("on"); };
  chart.es.onerror = () => { state.textContent = "reconnecting…"; state.classList.remove("on"); };
  chart.es.addEventListener("telemetry", (e) => {
    const u = JSON.parse(e.data);
    state.textContent = u.sampled ? "live · sampled" : "live";
    state.title = u.sampled ? "The hub is busy: the chart shows a sample of the newest messages" : "Live updates";
    addPoints(u.points || []);
    renderTail(u.tail || [], false);
    draw();
    // A message is activity: the "last activity" text follows the tail.
    for (const m of u.tail || []) noteActivity(m.t);
  });
  chart.es.addEventListener("dropped", (e) => { state.title = e.data + " updates skipped: the browser was behind"; });
}

if (canService && root.dataset.charts === "true" && window.uPlot) {
  document.querySelectorAll(".seg-btn").forEach((b) => b.addEventListener("click", () => {
    document.querySelectorAll(".seg-btn").forEach((o) => o.setAttribute("aria-pressed", String(o === b)));
    chart.range = b.dataset.range;
    loadHistory();
  }));
  new ResizeObserver(() => { if (chart.plot) chart.plot.setSize({ width: chart.box.clientWidth, height: 300 }); }).observe(chart.box);
  loadHistory().then(startLive);
}

// ---- Twin ---------------------------------------------------------------
const twin = { etag: "", desired: {}, tags: {} };
const twinErr = document.getElementById("twin-error");

function strip(o) {
  const out = {};
  for (const [k, v] of Object.entries(o || {})) if (!k.startsWith("$")) out[k] = v;
  return out;
}

// edited tells whether the operator changed an editor since the last load.
function edited() {
  return document.getElementById("desired").value !== pretty(twin.desired) ||
    document.getElementById("tags").value !== pretty(twin.tags);
}

// loadTwin shows the twin. A refresh (quiet) leaves editors the operator
// changed alone, and their etag with them, so a save still detects a
// conflict.
async function loadTwin(quiet = false) {
  const r = await api("GET", "twins/" + enc);
  if (!r.ok) { if (!quiet) showTwinError(problem(r)); return; }
  const t = r.data;
  document.getElementById("reported").textContent = pretty(strip(t.properties && t.properties.reported));
  if (quiet && edited()) return;
  twin.etag = t.etag;
  twin.desired = strip(t.properties && t.properties.desired);
  twin.tags = t.tags || {};
  document.getElementById("desired").value = pretty(twin.desired);
  document.getElementById("tags").value = pretty(twin.tags);
  const dv = t.properties && t.properties.desired ? t.properties.desired.$version : "";
  const rv = t.properties && t.properties.reported ? t.properties.reported.$version : "";
  document.getElementById("twin-meta").textContent = "etag " + t.etag + " · desired v" + dv + " · reported v" + rv;
  if (!quiet) {
    twinErr.hidden = true;
    loadHistory2();
  }
}
setInterval(() => { if (!document.hidden) loadTwin(true); }, 3000);

function showTwinError(msg) {
  twinErr.textContent = msg;
  twinErr.hidden = false;
}

// diff returns the merge patch that turns a into b (null removes).
function diff(a, b) {
  const out = {};
  for (const k of Object.keys(a)) if (!(k in b)) out[k] = null;
  for (const [k, v] of Object.entries(b)) {
    const o = a[k];
    if (isObj(o) && isObj(v)) {
      const d = diff(o, v);
      if (Object.keys(d).length) out[k] = d;
    } else if (JSON.stringify(o) !== JSON.stringify(v)) {
      out[k] = v;
    }
  }
  return out;
}
function isObj(v) { return v !== null && typeof v === "object" && !Array.isArray(v); }

function parseObject(text, what) {
  let v;
  try { v = JSON.parse(text); } catch (e) { throw new Error(what + " is not valid JSON: " + e.message); }
  if (!isObj(v)) throw new Error(what + " must be a JSON object.");
  const bad = (o, path) => {
    for (const [k, x] of Object.entries(o)) {
      if (k.startsWith("$")) throw new Error(what + ": " + path + k + " — names starting with $ are reserved.");
      if (isObj(x)) bad(x, path + k + ".");
    }
  };
  bad(v, "");
  return v;
}

const form = document.getElementById("twin-form");
form.addEventListener("submit", async (ev) => {
  ev.preventDefault();
  let desired, tags;
  try {
    desired = parseObject(document.getElementById("desired").value, "Desired properties");
    tags = parseObject(document.getElementById("tags").value, "Tags");
  } catch (e) { showTwinError(e.message); return; }
  const patch = {};
  const dd = diff(twin.desired, desired), td = diff(twin.tags, tags);
  if (Object.keys(dd).length) patch.properties = { desired: dd };
  if (Object.keys(td).length) patch.tags = td;
  if (!Object.keys(patch).length) { toast("Nothing changed."); return; }
  const r = await api("PATCH", "twins/" + enc, patch, { "If-Match": twin.etag });
  if (r.status === 412) {
    showTwinError("Someone changed this twin since you loaded it (etag " + twin.etag + " is stale). Reload it, then make your change again.");
    return;
  }
  if (!r.ok) { showTwinError(problem(r)); return; }
  toast("Twin saved.");
  await loadTwin();
});
document.getElementById("twin-reload").addEventListener("click", () => loadTwin());

// Tabs.
const tabs = [...document.querySelectorAll('[role="tab"]')];
tabs.forEach((t) => t.addEventListener("click", () => {
  for (const o of tabs) {
    o.setAttribute("aria-selected", String(o === t));
    document.getElementById(o.getAttribute("aria-controls")).hidden = o !== t;
  }
}));

async function loadHistory2() {
  const ol = document.getElementById("history");
  const r = await api("GET", "twins/" + enc + "/history?limit=50");
  ol.replaceChildren();
  if (!r.ok) { ol.append(el("li", { class: "muted" }, problem(r))); return; }
  const items = (r.data || []).slice().reverse();
  if (!items.length) ol.append(el("li", { class: "muted" }, "No changes recorded yet."));
  for (const c of items) {
    ol.append(el("li", {},
      el("strong", {}, c.side + " v" + c.version), " ",
      el("span", { class: "muted" }, new Date(c.time).toLocaleString() + (c.source ? " · " + c.source : "")),
      el("pre", {}, typeof c.patch === "string" ? c.patch : JSON.stringify(c.patch))));
  }
}

loadTwin();

// ---- Direct method -------------------------------------------------------
const mform = document.getElementById("method-form");
if (mform) {
  mform.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const status = document.getElementById("method-status");
    const out = document.getElementById("method-result");
    let payload = null;
    const text = mform.payload.value.trim();
    if (text) {
      try { payload = JSON.parse(text); } catch (e) { status.textContent = "Payload is not valid JSON: " + e.message; status.className = "status-bad"; return; }
    }
    const btn = mform.querySelector("button[type=submit]");
    btn.disabled = true;
    status.className = "muted";
    status.textContent = "Invoking…";
    const t0 = performance.now();
    const r = await api("POST", "twins/" + enc + "/methods", {
      methodName: mform.method.value.trim(), payload, responseTimeoutInSeconds: Number(mform.timeout.value || 30),
    });
    const ms = Math.round(performance.now() - t0);
    btn.disabled = false;
    if (!r.ok) {
      status.textContent = problem(r) + " · " + ms + " ms";
      status.className = "status-bad";
      out.hidden = true;
      return;
    }
    status.textContent = "status " + r.data.status + " · " + ms + " ms";
    status.className = r.data.status >= 200 && r.data.status < 300 ? "status-ok" : "status-bad";
    out.textContent = pretty(r.data.payload);
    out.hidden = false;
  });
}

// ---- Cloud-to-device -----------------------------------------------------
const cform = document.getElementById("c2d-form");
if (cform) {
  cform.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const status = document.getElementById("c2d-status");
    const headers = { "Content-Type": "text/plain; charset=utf-8" };
    if (cform.props.value.trim()) {
      let p;
      try { p = JSON.parse(cform.props.value); } catch (e) { status.textContent = "Properties are not valid JSON."; status.className = "status-bad"; return; }
      for (const [k, v] of Object.entries(p)) headers["iothub-app-" + k] = String(v);
    }
    const r = await api("POST", "devices/" + enc + "/messages/deviceBound", cform.body.value, headers);
    if (!r.ok) { status.textContent = problem(r); status.className = "status-bad"; return; }
    status.textContent = "Queued as message " + r.data.messageId + ".";
    status.className = "status-ok";
  });
}

// ---- Modules -------------------------------------------------------------
(async () => {
  const ul = document.getElementById("modules");
  const r = await api("GET", "devices/" + enc + "/modules");
  ul.replaceChildren();
  if (!r.ok) { ul.append(el("li", { class: "muted" }, problem(r))); return; }
  if (!r.data || !r.data.length) { ul.append(el("li", { class: "muted" }, "No modules.")); return; }
  for (const m of r.data) {
    ul.append(el("li", {}, el("span", { class: "mono" }, m.moduleId), " ",
      el("span", { class: "state " + (m.connectionState === "Connected" ? "on" : "off") }, m.connectionState || "")));
  }
})();
