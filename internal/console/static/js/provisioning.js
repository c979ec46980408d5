// Provisioning: approve or reject pending requests; create and revoke tokens.
import { api, problem, toast, el } from "./app.js";

document.querySelectorAll("form.op-form").forEach((f) => {
  f.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const decision = ev.submitter ? ev.submitter.value : "approve";
    const op = encodeURIComponent(f.dataset.op);
    let r;
    if (decision === "approve") {
      const body = {};
      if (f.deviceId.value.trim()) body.deviceId = f.deviceId.value.trim();
      r = await api("POST", "provisioning/operations/" + op + "/approve", body);
    } else {
      r = await api("POST", "provisioning/operations/" + op + "/reject", { reason: f.reason.value.trim() });
    }
    if (!r.ok) { toast(problem(r), true); return; }
    toast(decision === "approve" ? "Approved: device " + (r.data.deviceId || "") + " may connect." : "Rejected.");
    f.closest("tr").remove();
  });
});

document.getElementById("token-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const f = ev.target;
  const days = Number(f.days.value || 30);
  const body = { name: f.name.value.trim(), maxUses: Number(f.maxUses.value || 0),
    expiresAt: new Date(Date.now() + days * 86400000).toISOString() };
  const r = await api("POST", "provisioning/tokens", body);
  if (!r.ok) { toast(problem(r), true); return; }
  document.getElementById("new-token-value").textContent = r.data.token;
  document.getElementById("new-token").hidden = false;
  toast("Token " + r.data.name + " created.");
});

document.getElementById("tokens").addEventListener("click", async (ev) => {
  const b = ev.target.closest("button[data-revoke]");
  if (!b) return;
  const name = b.dataset.revoke;
  if (!confirm("Revoke token " + name + "? Devices can no longer start provisioning with it.")) return;
  const r = await api("POST", "provisioning/tokens/" + encodeURIComponent(name) + "/revoke");
  if (!r.ok) { toast(problem(r), true); return; }
  toast("Revoked " + name + ".");
  setTimeout(() => location.reload(), 400);
});

// DPS enrollments, read-only.
(async () => {
  const tbody = document.querySelector("#enrollments tbody");
  const [g, i] = await Promise.all([api("GET", "provisioning/enrollmentGroups"), api("GET", "provisioning/enrollments")]);
  tbody.replaceChildren();
  if (!g.ok || !i.ok) { tbody.append(el("tr", { class: "empty" }, el("td", { colspan: "5" }, problem(g.ok ? i : g)))); return; }
  const rows = [
    ...(g.data || []).map((x) => ["group", x.enrollmentGroupId, x]),
    ...(i.data || []).map((x) => ["individual", x.registrationId + (x.deviceId && x.deviceId !== x.registrationId ? " → " + x.deviceId : ""), x]),
  ];
  if (!rows.length) tbody.append(el("tr", { class: "empty" }, el("td", { colspan: "5" }, "No enrollments.")));
  for (const [kind, id, x] of rows) {
    const st = x.provisioningStatus || "enabled";
    tbody.append(el("tr", {}, el("td", {}, kind), el("td", { class: "mono" }, id),
      el("td", { class: "small" }, (x.attestation && x.attestation.type) || ""),
      el("td", {}, el("span", { class: "badge " + (st === "enabled" ? "enabled" : "disabled") }, st)),
      el("td", { class: "small" }, x.lastUpdatedDateTimeUtc ? new Date(x.lastUpdatedDateTimeUtc).toLocaleString() : "")));
  }
})();
