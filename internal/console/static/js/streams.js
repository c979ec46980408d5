// Streams: list them and tail one (long polls through the REST API).
import { api, problem, el, timeOf } from "./app.js";

const tbody = document.querySelector("#streams tbody");
let tail = null; // {stream, next, stop}

async function load() {
  const r = await api("GET", "streams");
  tbody.replaceChildren();
  if (!r.ok) { tbody.append(el("tr", { class: "empty" }, el("td", { colspan: "6" }, problem(r)))); return; }
  const list = r.data || [];
  if (!list.length) tbody.append(el("tr", { class: "empty" }, el("td", { colspan: "6" }, "No messages stored yet.")));
  for (const s of list) {
    tbody.append(el("tr", {},
      el("td", {}, s.group), el("td", {}, el("strong", {}, s.name)),
      el("td", {}, Number(s.messages).toLocaleString()),
      el("td", { class: "small" }, s.first ? new Date(s.first).toLocaleString() : "–"),
      el("td", { class: "small" }, s.last ? new Date(s.last).toLocaleString() : "–"),
      el("td", { class: "actions" }, el("button", { type: "button", class: "btn small", "data-stream": s.name }, "Tail"))));
  }
}

function decode(b64) {
  try {
    const bin = atob(b64 || "");
    const bytes = Uint8Array.from(bin, (c) => c.charCodeAt(0));
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    return "(" + (b64 ? atob(b64).length : 0) + " bytes, not UTF-8)";
  }
}

async function run(t) {
  const ol = document.getElementById("tail");
  const state = document.getElementById("tail-state");
  while (!t.stopped) {
    const dev = document.getElementById("tail-device").value.trim();
    const q = (t.next ? "after=" + encodeURIComponent(t.next) : "from=now") + "&wait=20s&limit=50" + (dev ? "&device=" + encodeURIComponent(dev) : "");
    const r = await api("GET", "streams/" + encodeURIComponent(t.stream) + "/messages?" + q);
    if (t.stopped) return;
    if (!r.ok) { state.textContent = problem(r); state.classList.remove("on"); await new Promise((f) => setTimeout(f, 2000)); continue; }
    state.textContent = "live"; state.classList.add("on");
    t.next = r.data.next;
    for (const m of r.data.messages || []) {
      ol.prepend(el("li", {}, el("time", {}, timeOf(Date.parse(m.enqueuedTime))),
        el("div", {}, el("span", { class: "props" }, m.deviceId + (m.moduleId ? "/" + m.moduleId : "")), el("span", { class: "body" }, decode(m.body)))));
    }
    while (ol.children.length > 100) ol.lastChild.remove();
  }
}

tbody.addEventListener("click", (ev) => {
  const b = ev.target.closest("button[data-stream]");
  if (!b) return;
  if (tail) tail.stopped = true;
  tail = { stream: b.dataset.stream, next: "", stopped: false };
  document.getElementById("tail-name").textContent = b.dataset.stream;
  document.getElementById("tail").replaceChildren();
  document.getElementById("stream-tail").hidden = false;
  run(tail);
});
document.getElementById("tail-stop").addEventListener("click", () => {
  if (tail) tail.stopped = true;
  const state = document.getElementById("tail-state");
  state.textContent = "stopped"; state.classList.remove("on");
});
document.getElementById("streams-reload").addEventListener("click", load);
load();
