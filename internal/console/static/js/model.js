// The model-driven view of a device with a DTDL model in the hub's
// repository: per component, telemetry with units (the chart labels its
// series with them), properties with the device's reported values and
// acknowledgements, writable properties as a form, commands as buttons
// with their request schema.
import { api, data, problem, toast, el, pretty } from "./app.js";

const root = document.getElementById("device");
const id = root.dataset.id;
const enc = encodeURIComponent(id);
const canService = root.dataset.service === "true";
const body = document.getElementById("model-body");

const unitNames = {
  degreeCelsius: "°C", degreeFahrenheit: "°F", kelvin: "K", percent: "%", byte: "B", kibibyte: "KiB",
  kilobyte: "kB", megabyte: "MB", mebibyte: "MiB", hertz: "Hz", volt: "V", ampere: "A", watt: "W",
  second: "s", millisecond: "ms", minute: "min", hour: "h", metrePerSecond: "m/s", pascal: "Pa",
  kilopascal: "kPa", hectopascal: "hPa", metre: "m", centimetre: "cm", millimetre: "mm", lux: "lx",
  degreeOfArc: "°", radian: "rad", kilowattHour: "kWh",
};
const numeric = new Set(["double", "float", "integer", "long"]);

const typesOf = (x) => (Array.isArray(x["@type"]) ? x["@type"] : [x["@type"]]);
const is = (x, t) => typesOf(x).includes(t);
const labelOf = (x) => {
  const d = x.displayName;
  if (!d) return x.name;
  return typeof d === "string" ? d : d.en || Object.values(d)[0] || x.name;
};
const schemaText = (s) => (typeof s === "string" ? s : s && s["@type"] ? String(s["@type"]) : "object");
const unitOf = (x) => (x.unit ? unitNames[x.unit] || x.unit : "");

async function main() {
  const r = await data("model?id=" + encodeURIComponent(root.dataset.model));
  if (!r.ok) { body.replaceChildren(el("p", { class: "muted" }, problem(r))); return; }
  const ifaces = r.data.interfaces;
  const top = ifaces[r.data.root];
  const comps = [{ name: "", title: labelOf(top) || "Default component", iface: top }];
  for (const c of top.contents || []) {
    if (is(c, "Component")) comps.push({ name: c.name, title: labelOf(c), iface: ifaces[c.schema] });
  }
  const tw = await api("GET", "twins/" + enc);
  const reported = tw.ok ? tw.data.properties.reported || {} : {};
  const units = {};
  body.replaceChildren();
  if (r.data.missing && r.data.missing.length) {
    body.append(el("p", { class: "alert error" }, "The repository lacks " + r.data.missing.join(", ") + "."));
  }
  for (const c of comps) {
    if (!c.iface) continue;
    const sec = el("section", { class: "component", "aria-label": c.name || "default component" },
      el("h3", {}, c.name ? c.title + " (" + c.name + ")" : c.title));
    const contents = c.iface.contents || [];
    const tel = contents.filter((x) => is(x, "Telemetry"));
    if (tel.length) {
      const ul = el("ul", { class: "plain tel" });
      for (const t of tel) {
        const key = (c.name ? c.name + "/" : "") + t.name;
        if (unitOf(t)) units[key] = unitOf(t);
        ul.append(el("li", { "data-telemetry": key }, el("strong", {}, labelOf(t)), " ",
          el("span", { class: "muted small" }, t.name + " · " + schemaText(t.schema) + (unitOf(t) ? " · " + unitOf(t) : ""))));
      }
      sec.append(el("h4", {}, "Telemetry"), ul);
    }
    const props = contents.filter((x) => is(x, "Property"));
    if (props.length) sec.append(el("h4", {}, "Properties"), propertyTable(c, props, reported));
    const cmds = contents.filter((x) => is(x, "Command"));
    if (cmds.length) sec.append(el("h4", {}, "Commands"), ...cmds.map((x) => commandForm(c, x)));
    body.append(sec);
  }
  window.ferryUnits = units;
  window.dispatchEvent(new CustomEvent("ferry:units", { detail: units }));
}

// reportedOf returns a property's reported entry: the plain value, or for
// a writable property the acknowledgement {value, ac, av, ad}.
function reportedOf(c, p, reported) {
  const scope = c.name ? reported[c.name] || {} : reported;
  return scope[p.name];
}

function propertyTable(c, props, reported) {
  const tbody = el("tbody");
  for (const p of props) {
    const rep = reportedOf(c, p, reported);
    const ack = rep && typeof rep === "object" && "ac" in rep ? rep : null;
    const value = ack ? ack.value : rep;
    const cells = [el("td", {}, el("strong", {}, labelOf(p)), el("div", { class: "muted small" }, p.name + " · " + schemaText(p.schema) + (unitOf(p) ? " · " + unitOf(p) : ""))),
      el("td", { class: "mono", "data-reported": p.name }, value === undefined ? "–" : typeof value === "object" ? JSON.stringify(value) : String(value)),
      el("td", { class: "small" }, ack ? "ack " + ack.ac + (ack.av !== undefined ? " v" + ack.av : "") + (ack.ad ? " · " + ack.ad : "") : "")];
    const act = el("td", {});
    if (p.writable && canService) act.append(writableForm(c, p));
    tbody.append(el("tr", { "data-property": (c.name ? c.name + "/" : "") + p.name }, ...cells, act));
  }
  return el("table", { class: "table props" },
    el("thead", {}, el("tr", {}, el("th", { scope: "col" }, "Property"), el("th", { scope: "col" }, "Reported"),
      el("th", { scope: "col" }, "Acknowledged"), el("th", { scope: "col" }, el("span", { class: "sr-only" }, "Set")))),
    tbody);
}

function writableForm(c, p) {
  const s = schemaText(p.schema);
  const input = s === "boolean" ? el("input", { type: "checkbox", name: "v" })
    : el("input", { name: "v", type: numeric.has(s) ? "number" : "text", step: numeric.has(s) ? "any" : undefined,
      "aria-label": "New value of " + labelOf(p), spellcheck: "false", autocomplete: "off" });
  const f = el("form", { class: "row" }, input, el("button", { type: "submit", class: "btn small primary" }, "Set"));
  f.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    let v;
    if (s === "boolean") v = input.checked;
    else if (numeric.has(s)) {
      v = Number(input.value);
      if (input.value === "" || !Number.isFinite(v)) { toast(p.name + " needs a number.", true); return; }
      if ((s === "integer" || s === "long") && !Number.isInteger(v)) { toast(p.name + " needs a whole number.", true); return; }
    } else if (s === "string") v = input.value;
    else {
      try { v = JSON.parse(input.value); } catch { toast(p.name + " needs JSON (" + s + ").", true); return; }
    }
    const desired = c.name ? { [c.name]: { __t: "c", [p.name]: v } } : { [p.name]: v };
    const r = await api("PATCH", "twins/" + enc, { properties: { desired } }, { "If-Match": "*" });
    if (!r.ok) { toast(problem(r), true); return; }
    toast("Set " + (c.name ? c.name + "." : "") + p.name + "; waiting for the device's acknowledgement.");
  });
  return f;
}

function commandForm(c, cmd) {
  const req = cmd.request;
  const name = (c.name ? c.name + "*" : "") + cmd.name;
  const payload = el("input", { name: "payload", spellcheck: "false", autocomplete: "off",
    placeholder: req ? req.name + ": " + schemaText(req.schema) + " (JSON)" : "no request",
    "aria-label": "Request of " + labelOf(cmd) });
  if (!req) payload.disabled = true;
  const out = el("pre", { class: "code result", hidden: true, tabindex: "0" });
  const status = el("span", { class: "muted small", "aria-live": "polite" });
  const btn = el("button", { type: "submit", class: "btn small primary" }, labelOf(cmd));
  if (!canService) btn.disabled = true;
  const f = el("form", { class: "stack cmd", "data-command": name },
    el("div", { class: "row wrap" }, el("label", { class: "field grow" }, el("span", {}, name), payload), btn, status), out);
  f.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    let p = null;
    if (req && payload.value.trim()) {
      try { p = JSON.parse(payload.value); } catch { status.textContent = "The request is not JSON."; status.className = "status-bad"; return; }
    }
    btn.disabled = true;
    const t0 = performance.now();
    const r = await api("POST", "twins/" + enc + "/methods", { methodName: name, payload: p, responseTimeoutInSeconds: 30 });
    btn.disabled = false;
    const ms = Math.round(performance.now() - t0);
    if (!r.ok) { status.textContent = problem(r) + " · " + ms + " ms"; status.className = "status-bad"; return; }
    status.textContent = "status " + r.data.status + " · " + ms + " ms";
    status.className = r.data.status >= 200 && r.data.status < 300 ? "status-ok" : "status-bad";
    out.textContent = pretty(r.data.payload);
    out.hidden = false;
  });
  return f;
}

main();
