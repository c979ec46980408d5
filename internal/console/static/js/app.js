// Shared helpers of the console's pages. Data from the hub is inserted with
// textContent only, never as HTML.
const meta = document.querySelector('meta[name="csrf-token"]');
export const csrf = meta ? meta.content : "";

// api calls the REST API through the console (/console/api/...), with the
// session cookie and the CSRF token. It resolves to {ok, status, data,
// headers}; data is parsed JSON when the answer is JSON.
export async function api(method, path, body, headers = {}) {
  const h = { "X-CSRF-Token": csrf, ...headers };
  let payload;
  if (body !== undefined) {
    if (typeof body === "string") {
      payload = body;
    } else {
      payload = JSON.stringify(body);
      h["Content-Type"] = h["Content-Type"] || "application/json";
    }
  }
  const res = await fetch("/console/api/" + path, { method, headers: h, body: payload, credentials: "same-origin" });
  return read(res);
}

// data fetches a console data endpoint (/console/data/...).
export async function data(path) {
  const res = await fetch("/console/data/" + path, { credentials: "same-origin" });
  return read(res);
}

async function read(res) {
  let out = null;
  const text = await res.text();
  if (text) {
    try { out = JSON.parse(text); } catch { out = text; }
  }
  if (res.status === 401) {
    toast("Your session ended: sign in again.", true);
    setTimeout(() => { location.href = "/console/login?next=" + encodeURIComponent(location.pathname + location.search); }, 1200);
  }
  return { ok: res.ok, status: res.status, data: out, headers: res.headers };
}

// problem turns an error answer into a sentence.
export function problem(r) {
  const d = r.data;
  let msg = "";
  if (d && typeof d === "object") msg = d.message || d.Message || "";
  else if (typeof d === "string") msg = d;
  if (msg.startsWith("ErrorCode:")) msg = msg.slice(msg.indexOf(";") + 1);
  if (r.status === 403 && !msg) msg = "Your access policy does not allow this.";
  return (msg || "Request failed") + " (HTTP " + r.status + ")";
}

let toastTimer;
export function toast(msg, isError = false) {
  const t = document.getElementById("toast");
  if (!t) return;
  t.textContent = msg;
  t.classList.toggle("error", isError);
  t.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { t.hidden = true; }, isError ? 6000 : 3000);
}

// el builds an element; string children become text nodes.
export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) {
    if (c === null || c === undefined) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

export function ago(ms) {
  if (!ms) return "never";
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  if (s < 60) return s + "s ago";
  if (s < 3600) return Math.floor(s / 60) + "m ago";
  if (s < 172800) return Math.floor(s / 3600) + "h ago";
  return Math.floor(s / 86400) + "d ago";
}

export function timeOf(ms) {
  const d = new Date(ms);
  return d.toLocaleTimeString([], { hour12: false }) + "." + String(d.getMilliseconds()).padStart(3, "0");
}

export async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    const ta = el("textarea", { class: "sr-only", "aria-hidden": "true" });
    ta.value = text;
    document.body.append(ta);
    ta.select();
    let ok = false;
    try { ok = document.execCommand("copy"); } catch { ok = false; }
    ta.remove();
    return ok;
  }
}

let hubInfo;
// connectionString reads the device's primary key and the hub's device host
// name and builds the device connection string.
export async function connectionString(id) {
  if (!hubInfo) {
    const h = await api("GET", "hub");
    if (!h.ok) throw new Error(problem(h));
    hubInfo = h.data;
  }
  const r = await api("GET", "devices/" + encodeURIComponent(id));
  if (!r.ok) throw new Error(problem(r));
  const sk = r.data.authentication && r.data.authentication.symmetricKey;
  if (!sk || !sk.primaryKey) throw new Error("This device uses X.509 certificates: it has no key to put in a connection string.");
  return "HostName=" + hubInfo.deviceHostName + ";DeviceId=" + id + ";SharedAccessKey=" + sk.primaryKey;
}

export async function copyConnectionString(id) {
  try {
    const cs = await connectionString(id);
    const ok = await copyText(cs);
    toast(ok ? "Connection string copied." : "Could not reach the clipboard.", !ok);
    return cs;
  } catch (e) {
    toast(e.message, true);
    return "";
  }
}

// pretty prints JSON with two-space indentation.
export function pretty(v) {
  return JSON.stringify(v, null, 2);
}

// watchPresence gives fn the connection state of ids as the hub pushes it
// (devices connecting and disconnecting, over Server-Sent Events), and
// polls every resync ms for what a push cannot tell: last activity, and
// anything missed while the stream was down.
export function watchPresence(ids, fn, resync = 30000) {
  if (!ids.length) return;
  const q = ids.map((id) => "id=" + encodeURIComponent(id)).join("&");
  const es = new EventSource("/console/data/presence/live?" + q);
  es.addEventListener("presence", (ev) => fn(JSON.parse(ev.data)));
  pollPresence(ids, fn, resync);
}

// presence polls the live connection state of ids every few seconds.
function pollPresence(ids, fn, every = 2000) {
  if (!ids.length) return;
  const q = ids.map((id) => "id=" + encodeURIComponent(id)).join("&");
  const tick = async () => {
    if (!document.hidden) {
      const r = await data("presence?" + q);
      if (r.ok) fn(r.data);
    }
    setTimeout(tick, every);
  };
  tick();
}
