// Drives Ferry's web console in Debian's Chromium (headless) with
// playwright-core. internal/console/browser_test.go starts a real hub and a
// real device and runs this script with:
//
//   FERRY_URL        the hub's HTTPS base URL
//   FERRY_POLICY     access policy name, FERRY_KEY its key
//   FERRY_DEVICE     the device id to create (the Go test connects it)
//   FERRY_OP_CODE    the verification code of a pending provisioning request
//   FERRY_ARTIFACTS  where screenshots go
//   FERRY_SIGNAL     a file to create when the device list waits for
//                    <FERRY_DEVICE>-late to connect (the Go test then dials it)
//   CHROMIUM         the browser (default /usr/bin/chromium)
//
// Every step prints one JSON line; the exit status says whether all passed.
"use strict";
const { chromium } = require("playwright-core");
const path = require("path");
const fs = require("fs");

const env = (k, d) => process.env[k] || d;
const base = env("FERRY_URL");
const device = env("FERRY_DEVICE", "browser-dev");
const artifacts = env("FERRY_ARTIFACTS", path.join(__dirname, "artifacts"));
fs.mkdirSync(artifacts, { recursive: true });

function log(step, extra = {}) {
  console.log(JSON.stringify({ step, ...extra }));
}

async function shot(page, name) {
  await page.screenshot({ path: path.join(artifacts, name + ".png"), fullPage: true });
}

async function main() {
  const browser = await chromium.launch({
    executablePath: env("CHROMIUM", "/usr/bin/chromium"),
    headless: true,
    args: ["--no-sandbox", "--disable-dev-shm-usage"],
  });
  const consoleErrors = [];
  try {
    const ctx = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1360, height: 900 } });
    const page = await ctx.newPage();
    page.setDefaultTimeout(20000);
    page.on("console", (m) => { if (m.type() === "error") consoleErrors.push(m.text()); });
    page.on("pageerror", (e) => consoleErrors.push(String(e)));
    page.on("dialog", (d) => d.accept());

    // 1. The root redirects a browser to the sign-in page.
    await page.goto(base + "/");
    await page.waitForURL(/\/console\/login/);
    await shot(page, "01-login");
    await page.fill("#policy", env("FERRY_POLICY"));
    await page.fill("#key", "wrong-" + env("FERRY_KEY"));
    await page.click("button[type=submit]");
    await page.waitForSelector(".alert.error");
    log("wrong key refused");
    await page.fill("#policy", env("FERRY_POLICY"));
    await page.fill("#key", env("FERRY_KEY"));
    await page.click("button[type=submit]");
    await page.waitForURL(/\/console\/$/);
    await page.waitForFunction(() => document.getElementById("st-rate").textContent !== "–");
    log("signed in");
    await shot(page, "02-overview");

    // 2. Create the device.
    await page.click("nav >> text=Devices");
    await page.waitForURL(/\/console\/devices$/);
    await page.click("#new-device-btn");
    await page.fill("#create-form input[name=deviceId]", device);
    await page.fill("#create-form input[name=tags]", '{"site": "<b>lab</b>"}');
    await page.click("#create-form button[type=submit]");
    await page.waitForURL(new RegExp("/console/devices/" + device + "$"));
    log("device created", { device });

    // 3. The real device connects (the Go test dials it once it exists).
    await page.waitForSelector("#conn-state.on", { timeout: 30000 });
    log("device connected");

    // 3b. Copy the device's connection string.
    await ctx.grantPermissions(["clipboard-read", "clipboard-write"], { origin: base });
    await page.click("#copy-conn");
    await page.waitForSelector("#toast:not([hidden])");
    const cs = await page.evaluate(() => navigator.clipboard.readText());
    if (!cs.includes("DeviceId=" + device + ";") || !cs.includes("SharedAccessKey=")) throw new Error("clipboard: " + cs);
    log("connection string copied");

    // 4. A telemetry point appears on the chart.
    await page.waitForFunction(() => {
      const c = document.getElementById("chart");
      return c && Number(c.dataset.points || 0) > 0 && (c.dataset.fields || "").includes("temperature") && c.querySelector("canvas");
    }, null, { timeout: 30000 });
    const before = await page.$eval("#chart", (c) => Number(c.dataset.points));
    await page.waitForFunction((n) => Number(document.getElementById("chart").dataset.points) > n, before, { timeout: 15000 });
    await page.waitForSelector("#tail li .body");
    log("telemetry on chart", { points: await page.$eval("#chart", (c) => Number(c.dataset.points)) });

    // 5. Invoke a direct method; the device answers.
    await page.fill("#method-form input[name=method]", "reboot");
    await page.fill("#method-form textarea[name=payload]", '{"delay": 1}');
    await page.click("#method-form button[type=submit]");
    await page.waitForSelector("#method-status.status-ok");
    const status = await page.textContent("#method-status");
    const result = await page.textContent("#method-result");
    if (!/status 200/.test(status) || !result.includes("rebooted")) throw new Error("method result: " + status + " " + result);
    log("method invoked", { status, result: JSON.parse(result) });

    // 6. Edit desired properties; the Go test checks the device got them.
    await page.waitForFunction(() => document.getElementById("twin-meta").textContent.includes("etag"));
    await page.fill("#desired", JSON.stringify({ targetTemperature: 23.5, mode: "eco" }, null, 2));
    await page.click("#twin-save");
    await page.waitForFunction(() => /desired v[1-9]/.test(document.getElementById("twin-meta").textContent));
    log("desired saved");
    // The device echoes desired into reported.
    await page.click("#tab-reported");
    await page.waitForFunction(() => document.getElementById("reported").textContent.includes("23.5"), null, { timeout: 15000 });
    log("device reported the desired value");
    await page.click("#tab-desired");

    // 6b. An etag conflict is shown, not silently overwritten: the operator
    // edits, someone else changes the twin meanwhile, the save is refused.
    await page.fill("#desired", JSON.stringify({ targetTemperature: 19, mode: "eco" }, null, 2));
    const staleEtag = await page.evaluate(() => document.getElementById("twin-meta").textContent);
    await page.evaluate(async (dev) => {
      const csrf = document.querySelector('meta[name="csrf-token"]').content;
      await fetch("/console/api/twins/" + encodeURIComponent(dev), {
        method: "PATCH", headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf, "If-Match": "*" },
        body: JSON.stringify({ properties: { desired: { mode: "boost" } } }),
      });
    }, device);
    await page.click("#twin-save");
    await page.waitForSelector("#twin-error:not([hidden])");
    const conflict = await page.textContent("#twin-error");
    if (!/stale|changed/.test(conflict)) throw new Error("no etag conflict shown: " + conflict);
    log("etag conflict shown", { staleEtag });
    await shot(page, "03-device");
    await page.click("#twin-reload");
    await page.click("#tab-history");
    await page.waitForSelector("#history li strong");
    log("twin history shown");

    // 7. C2D send.
    await page.fill("#c2d-form textarea[name=body]", "hello device");
    await page.click("#c2d-form button[type=submit]");
    await page.waitForSelector("#c2d-status.status-ok");
    log("c2d sent");

    // 8. The device list: the device with its tags (escaped) and state.
    await page.goto(base + "/console/devices?q=" + encodeURIComponent(device));
    await page.waitForSelector(`tr[data-id="${device}"] .state.on`);
    const tags = await page.textContent(`tr[data-id="${device}"] .tags`);
    if (!tags.includes("<b>lab</b>")) throw new Error("tags not shown as text: " + tags);
    if (await page.$(`tr[data-id="${device}"] .tags b`)) throw new Error("tag HTML was rendered");
    log("device listed");
    await shot(page, "04-devices");

    // 8b. A device that connects while the list is open shows as connected
    // at once: pushed, not found by the 30 s poll.
    const late = device + "-late";
    const stream = page.waitForResponse((r) => r.url().includes("/console/data/presence/live"));
    await page.goto(base + "/console/devices?q=" + encodeURIComponent(late));
    await page.waitForSelector(`tr[data-id="${late}"] .state.off`);
    await stream;
    const t0 = Date.now();
    fs.writeFileSync(env("FERRY_SIGNAL"), "connect");
    await page.waitForSelector(`tr[data-id="${late}"] .state.on`, { timeout: 10000 });
    log("connect pushed to the list", { ms: Date.now() - t0 });
    await shot(page, "04b-devices-pushed");

    // 8c. Sorting is server-side and keeps the search: the device id
    // header reverses the order, another header sorts by its column.
    await page.goto(base + "/console/devices?q=" + encodeURIComponent(device));
    await page.waitForSelector(`tr[data-id="${late}"]`);
    const ids = () => page.$$eval("tbody tr[data-id]", (rows) => rows.map((r) => r.dataset.id));
    const asc = await ids();
    if (asc[0] !== device || !asc.includes(late)) throw new Error("ascending order: " + asc);
    await page.click("th[aria-sort=ascending] a.sort");
    await page.waitForSelector("th[aria-sort=descending] a.sort >> text=Device id");
    const desc = await ids();
    if (desc[0] !== late || !page.url().includes("order=desc") || !page.url().includes("q=" + encodeURIComponent(device))) {
      throw new Error("descending order: " + desc + " at " + page.url());
    }
    await page.click("th a.sort >> text=Last activity");
    await page.waitForSelector("th[aria-sort=descending] a.sort >> text=Last activity");
    if (!page.url().includes("sort=activity")) throw new Error("sort by activity: " + page.url());
    log("device list sorted", { ascending: asc, descending: desc });

    // 9. Approve a provisioning request.
    await page.click("nav >> text=Provisioning");
    await page.waitForURL(/\/console\/provisioning$/);
    const code = env("FERRY_OP_CODE");
    const row = page.locator("#operations tr", { hasText: code });
    await row.waitFor();
    await shot(page, "05-provisioning");
    await row.locator("input[name=deviceId]").fill(device + "-prov");
    await row.locator("button[value=approve]").click();
    await row.waitFor({ state: "detached" });
    log("provisioning approved", { code });

    // 9b. Routes: test a sample message, then switch the route off.
    await page.click("nav >> text=Routes");
    await page.waitForURL(/\/console\/routes$/);
    await page.waitForSelector("#routes button[data-route=hot]");
    await page.fill("#test-form textarea[name=body]", '{"temperature": 31.5}');
    await page.click("#test-form button[type=submit]");
    await page.waitForSelector("#verdicts li .status-ok");
    log("route test matched", { verdict: await page.textContent("#verdicts li") });
    await shot(page, "09-routes");
    await page.click("#routes button[data-route=hot]");
    await page.waitForSelector("#routes .badge.disabled");
    log("route disabled");

    // 9c. Streams: the default stream, tailed live.
    await page.click("nav >> text=Streams");
    await page.waitForURL(/\/console\/streams$/);
    await page.click("#streams button[data-stream=default]");
    await page.waitForSelector("#tail li .body", { timeout: 15000 });
    log("stream tailed");
    await shot(page, "10-streams");
    await page.click("#tail-stop");

    // 10. Dark scheme screenshots of the device page.
    const dark = await browser.newContext({ ignoreHTTPSErrors: true, colorScheme: "dark", viewport: { width: 1360, height: 900 } });
    await dark.addCookies(await ctx.cookies());
    const dp = await dark.newPage();
    await dp.goto(base + "/console/devices/" + encodeURIComponent(device));
    await dp.waitForFunction(() => Number(document.getElementById("chart").dataset.points || 0) > 0);
    await dp.waitForTimeout(500);
    await shot(dp, "06-device-dark");
    await dp.goto(base + "/console/");
    await dp.waitForTimeout(1500);
    await shot(dp, "07-overview-dark");
    // A narrow screen.
    await dp.setViewportSize({ width: 420, height: 900 });
    await dp.goto(base + "/console/devices");
    await shot(dp, "08-devices-narrow-dark");
    await dp.goto(base + "/console/devices/" + encodeURIComponent(device));
    await dp.waitForFunction(() => Number(document.getElementById("chart").dataset.points || 0) > 0);
    await shot(dp, "12-device-narrow-dark");
    for (const p of ["/console/devices/" + encodeURIComponent(device), "/console/devices", "/console/", "/console/provisioning", "/console/routes", "/console/streams"]) {
      await dp.goto(base + p);
      await dp.waitForTimeout(300);
      const w = await dp.evaluate(() => {
        const wide = [...document.querySelectorAll("body *")].filter((e) => e.getBoundingClientRect().right > window.innerWidth + 1 && !e.closest(".flushx, .card.flush"));
        return { scroll: document.documentElement.scrollWidth, wide: wide.slice(0, 5).map((e) => e.tagName + "." + e.className) };
      });
      if (w.scroll > 421) throw new Error(p + " is " + w.scroll + "px wide on a 420px screen: " + w.wide.join(", "));
    }
    log("narrow screens fit");

    // 11. Sign out: the session no longer works.
    await page.goto(base + "/console/");
    await page.click("text=Sign out");
    await page.waitForURL(/\/console\/login/);
    const after = await page.evaluate(async () => (await fetch("/console/data/presence?id=x")).status);
    if (after !== 401) throw new Error("after sign-out the data endpoint answered " + after);
    log("signed out");

    const csp = consoleErrors.filter((e) => /Content Security Policy|Refused/.test(e));
    if (csp.length) throw new Error("CSP violations: " + csp.join("; "));
    // Expected: the 401 of the wrong key and of the check after sign-out,
    // the 412 of the etag conflict. Anything else fails the test.
    const unexpected = consoleErrors.filter((e) => !/status of (401|412)/.test(e));
    if (unexpected.length) throw new Error("browser console errors: " + unexpected.join("; "));
  } finally {
    await browser.close();
  }
}

main().then(() => { log("ok"); }, (e) => {
  log("failed", { error: String(e && e.stack || e) });
  process.exitCode = 1;
});
