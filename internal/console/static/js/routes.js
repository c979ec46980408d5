// Routes: list, switch on and off, test a sample message.
import { api, problem, toast, el } from "./app.js";

const page = document.getElementById("routes-page");
const canWrite = page.dataset.write === "true";
const tbody = document.querySelector("#routes tbody");

function endpointText(e) {
  const parts = [e.kind];
  if (e.name) parts.push(e.name);
  if (e.url) parts.push(e.url);
  if (e.target) parts.push("→ " + e.target);
  if (e.targetFrom) parts.push("→ from " + e.targetFrom);
  return parts.join(" ");
}

async function load() {
  const r = await api("GET", "routes");
  tbody.replaceChildren();
  if (!r.ok) { tbody.append(el("tr", { class: "empty" }, el("td", { colspan: "6" }, problem(r)))); return; }
  const routes = r.data || [];
  if (!routes.length) tbody.append(el("tr", { class: "empty" }, el("td", { colspan: "6" }, "No routes: every message stays in its stream.")));
  for (const rt of routes) {
    const actions = el("td", { class: "actions" });
    if (canWrite) {
      const b = el("button", { type: "button", class: "btn small ghost", "data-route": rt.name, "data-on": String(!rt.enabled) },
        rt.enabled ? "Disable" : "Enable");
      actions.append(b);
    }
    tbody.append(el("tr", {},
      el("td", {}, el("strong", {}, rt.name)),
      el("td", { class: "small" }, rt.source || "telemetry"),
      el("td", { class: "mono small cond" }, rt.condition || "true"),
      el("td", { class: "small" }, (rt.endpoints || []).map(endpointText).join(", ")),
      el("td", {}, el("span", { class: "badge " + (rt.enabled ? "enabled" : "disabled") }, rt.enabled ? "enabled" : "disabled")),
      actions));
  }
  const f = await api("GET", "routing/fallback");
  document.getElementById("fallback").textContent = f.ok ? "Fallback to the default stream: " + (f.data.enabled ? "on" : "off") : "";
}

tbody.addEventListener("click", async (ev) => {
  const b = ev.target.closest("button[data-route]");
  if (!b) return;
  const on = b.dataset.on === "true";
  const r = await api("POST", "routes/" + encodeURIComponent(b.dataset.route) + (on ? "/enable" : "/disable"));
  if (!r.ok) { toast(problem(r), true); return; }
  toast((on ? "Enabled " : "Disabled ") + b.dataset.route + ".");
  load();
});

document.getElementById("routes-reload").addEventListener("click", load);

document.getElementById("test-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const f = ev.target;
  const status = document.getElementById("test-status");
  const msg = { deviceId: f.deviceId.value.trim() || undefined, body: f.body.value, system: {} };
  if (f.contentType.value.trim()) { msg.system.contentType = f.contentType.value.trim(); msg.system.contentEncoding = "utf-8"; }
  if (f.props.value.trim()) {
    try { msg.properties = JSON.parse(f.props.value); } catch (e) { status.textContent = "Properties are not valid JSON."; status.className = "status-bad"; return; }
  }
  const r = await api("POST", "routes/test", { message: msg });
  const ol = document.getElementById("verdicts");
  ol.replaceChildren();
  if (!r.ok) { status.textContent = problem(r); status.className = "status-bad"; return; }
  const res = r.data;
  const n = (res.routes || []).filter((v) => v.matched).length;
  status.textContent = n + " route" + (n === 1 ? "" : "s") + " matched" + (res.fallback ? "; the message stays in its stream only" : "");
  status.className = n ? "status-ok" : "muted";
  for (const v of res.routes || []) {
    const li = el("li", { class: "verdict" },
      el("strong", {}, v.route),
      el("span", { class: v.matched ? "status-ok" : "muted" }, v.matched ? "matches" : "no match (" + v.result + ")"),
      v.enabled ? null : el("span", { class: "badge disabled" }, "disabled"),
      v.endpoints && v.endpoints.length ? el("span", { class: "small" }, "→ " + v.endpoints.join(", ")) : null);
    if (v.reasons && v.reasons.length) li.append(el("ul", {}, ...v.reasons.map((x) => el("li", {}, x))));
    ol.append(li);
  }
});

load();
