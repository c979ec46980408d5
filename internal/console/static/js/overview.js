// The overview's live numbers (Server-Sent Events, once a second).
import { el } from "./app.js";

const rate = document.getElementById("st-rate");
const total = document.getElementById("st-total");
const conn = document.getElementById("st-connected");
const up = document.getElementById("st-uptime");
const errBody = document.querySelector("#errors tbody");
const box = document.getElementById("rate-chart");

const xs = [], ys = [];
const css = getComputedStyle(document.documentElement);
const color = (v) => css.getPropertyValue(v).trim();
let plot = null;
if (window.uPlot && box) {
  const opts = {
    width: box.clientWidth || 400, height: 180,
    legend: { show: false },
    scales: { x: { time: true, range: () => { const now = Date.now() / 1000; return [now - 300, now]; } }, y: { range: (u, min, max) => [0, Math.max(10, max * 1.15)] } },
    axes: [
      { stroke: color("--muted"), grid: { stroke: color("--line") }, ticks: { stroke: color("--line") } },
      { stroke: color("--muted"), grid: { stroke: color("--line") }, ticks: { stroke: color("--line") }, size: 56 },
    ],
    series: [{}, { label: "messages/s", stroke: color("--accent"), width: 2, fill: color("--accent-soft") }],
  };
  plot = new uPlot(opts, [xs, ys], box);
  new ResizeObserver(() => plot.setSize({ width: box.clientWidth, height: 180 })).observe(box);
}

function uptime(s) {
  const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60);
  return (d ? d + "d " : "") + (d || h ? h + "h " : "") + m + "m " + (s % 60) + "s";
}

const es = new EventSource("/console/data/stats");
es.addEventListener("stats", (e) => {
  const s = JSON.parse(e.data);
  total.textContent = s.total;
  conn.textContent = s.connected;
  up.textContent = uptime(s.uptime);
  if (s.primed) {
    rate.textContent = s.rate < 10 ? s.rate.toFixed(1) : Math.round(s.rate).toLocaleString();
    xs.push(Date.now() / 1000);
    ys.push(s.rate);
    if (xs.length > 300) { xs.shift(); ys.shift(); }
    if (plot) plot.setData([xs, ys]);
  }
  if (s.errors) {
    errBody.replaceChildren();
    if (!s.errors.length) {
      errBody.append(el("tr", { class: "empty" }, el("td", { colspan: "4" }, "No errors logged since the hub started.")));
    }
    for (const x of s.errors) {
      errBody.append(el("tr", {},
        el("td", {}, new Date(x.time).toISOString().replace("T", " ").slice(0, 19) + "Z"),
        el("td", {}, x.component || ""), el("td", {}, x.message), el("td", { class: "mono" }, x.detail || "")));
    }
  }
});
