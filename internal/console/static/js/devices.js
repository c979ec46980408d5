// The device list: create, enable/disable, delete, copy connection
// strings, live connection state. Sorting is the server's: the column
// headers are links.
import { api, problem, toast, ago, copyConnectionString, watchPresence } from "./app.js";

const table = document.getElementById("device-table");
const tbody = table.querySelector("tbody");

// New device.
const toggle = document.getElementById("new-device-btn");
const panel = document.getElementById("new-device");
if (toggle && panel) {
  toggle.addEventListener("click", () => {
    panel.hidden = !panel.hidden;
    toggle.setAttribute("aria-expanded", String(!panel.hidden));
    if (!panel.hidden) panel.querySelector("input[name=deviceId]").focus();
  });
  document.getElementById("create-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const f = ev.target;
    const id = f.deviceId.value.trim();
    let tags = null;
    if (f.tags.value.trim()) {
      try { tags = JSON.parse(f.tags.value); } catch (e) { toast("Tags are not valid JSON: " + e.message, true); return; }
      if (typeof tags !== "object" || Array.isArray(tags) || tags === null) { toast("Tags must be a JSON object.", true); return; }
    }
    const btn = f.querySelector("button[type=submit]");
    btn.disabled = true;
    try {
      const r = await api("PUT", "devices/" + encodeURIComponent(id), { deviceId: id });
      if (!r.ok) { toast(problem(r), true); return; }
      if (tags) {
        const t = await api("PATCH", "twins/" + encodeURIComponent(id), { tags }, { "If-Match": "*" });
        if (!t.ok) toast("Device created, but its tags were not set: " + problem(t), true);
      }
      location.href = "/console/devices/" + encodeURIComponent(id);
    } finally {
      btn.disabled = false;
    }
  });
}

// Row actions.
tbody.addEventListener("click", async (ev) => {
  const b = ev.target.closest("button[data-action]");
  if (!b) return;
  const tr = b.closest("tr");
  const id = tr.dataset.id;
  const path = "devices/" + encodeURIComponent(id);
  switch (b.dataset.action) {
    case "copy":
      await copyConnectionString(id);
      return;
    case "delete": {
      if (!confirm("Delete device " + id + "? Its keys stop working at once.")) return;
      const r = await api("DELETE", path, undefined, { "If-Match": "*" });
      if (!r.ok) { toast(problem(r), true); return; }
      tr.remove();
      toast("Deleted " + id + ".");
      return;
    }
    case "enable":
    case "disable": {
      const g = await api("GET", path);
      if (!g.ok) { toast(problem(g), true); return; }
      const d = g.data;
      d.status = b.dataset.action === "enable" ? "enabled" : "disabled";
      const r = await api("PUT", path, d, { "If-Match": '"' + d.etag + '"' });
      if (!r.ok) { toast(problem(r), true); return; }
      toast((d.status === "enabled" ? "Enabled " : "Disabled ") + id + ".");
      setTimeout(() => location.reload(), 400);
      return;
    }
  }
});

// Live connection state and last activity: pushed over server-sent events
// as devices connect and disconnect; a slow poll catches up whatever a
// dropped stream missed (a reconnected stream also starts with every row).
const rows = [...tbody.querySelectorAll("tr[data-id]")];
const connected = document.getElementById("dev-connected");
const ids = rows.map((r) => r.dataset.id);

function apply(d) {
  if (connected) connected.textContent = d.connected;
  for (const tr of rows) {
    const p = d.devices[tr.dataset.id];
    if (!p) continue;
    const s = tr.querySelector("[data-conn]");
    s.classList.toggle("on", p.connected);
    s.classList.toggle("off", !p.connected);
    s.textContent = p.connected ? "Connected" : "Disconnected";
    if (p.lastActivity) {
      const ms = Date.parse(p.lastActivity);
      if (ms > Number(tr.dataset.activity || 0)) tr.dataset.activity = String(ms);
    }
  }
  refreshAgo();
}

function refreshAgo() {
  for (const tr of rows) {
    tr.querySelector("[data-activity-text]").textContent = ago(Number(tr.dataset.activity || 0));
  }
}

if (ids.length) {
  watchPresence(ids, apply, 30000);
  setInterval(() => { if (!document.hidden) refreshAgo(); }, 10000);
}
