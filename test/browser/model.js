// Drives the console's model-driven device view in Debian's Chromium
// (run by internal/console/model_test.go against a console with a DTDL
// model repository). Env as console.js: FERRY_URL, FERRY_POLICY, FERRY_KEY,
// FERRY_DEVICE (a device whose model is the temperature controller),
// FERRY_ARTIFACTS, CHROMIUM.
"use strict";
const { chromium } = require("playwright-core");
const path = require("path");
const fs = require("fs");

const env = (k, d) => process.env[k] || d;
const base = env("FERRY_URL");
const device = env("FERRY_DEVICE");
const artifacts = env("FERRY_ARTIFACTS", path.join(__dirname, "artifacts"));
fs.mkdirSync(artifacts, { recursive: true });
const log = (step, extra = {}) => console.log(JSON.stringify({ step, ...extra }));

async function main() {
  const browser = await chromium.launch({ executablePath: env("CHROMIUM", "/usr/bin/chromium"), headless: true,
    args: ["--no-sandbox", "--disable-dev-shm-usage"] });
  const errors = [];
  try {
    const ctx = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1360, height: 900 } });
    const page = await ctx.newPage();
    page.setDefaultTimeout(20000);
    page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
    page.on("pageerror", (e) => errors.push(String(e)));
    await page.goto(base + "/console/login");
    await page.fill("#policy", env("FERRY_POLICY"));
    await page.fill("#key", env("FERRY_KEY"));
    await page.click("button[type=submit]");
    await page.waitForURL(/\/console\/$/);
    await page.goto(base + "/console/devices/" + encodeURIComponent(device));

    // Components, with telemetry units.
    await page.waitForSelector("#model .component h3");
    const titles = await page.$$eval("#model .component h3", (hs) => hs.map((h) => h.textContent));
    if (titles.length !== 3 || !titles[1].includes("thermostat1")) throw new Error("components: " + titles);
    const tel = await page.textContent('#model [data-telemetry="thermostat1/temperature"]');
    if (!tel.includes("°C")) throw new Error("telemetry without its unit: " + tel);
    log("components", { titles });

    // The chart labels component series with their units.
    await page.waitForFunction(() => [...document.querySelectorAll("#fields label")].some((l) => l.textContent === "thermostat1/temperature (°C)"));
    log("chart series carry units");

    // A writable property through the form.
    const row = page.locator('#model tr[data-property="thermostat1/targetTemperature"]');
    await row.locator("input[name=v]").fill("25.5");
    await row.locator("button[type=submit]").click();
    await page.waitForSelector("#toast:not([hidden])");
    const t = await page.textContent("#toast");
    if (!t.startsWith("Set thermostat1.targetTemperature")) throw new Error("toast: " + t);
    log("writable property set");

    // A component command with its request.
    const cmd = page.locator('#model form[data-command="thermostat1*getMaxMinReport"]');
    await cmd.locator("input[name=payload]").fill('"2026-11-23T05:00:00Z"');
    await cmd.locator("button[type=submit]").click();
    await cmd.locator(".status-ok").waitFor();
    const out = await cmd.locator("pre").textContent();
    if (!out.includes("maxTemp")) throw new Error("command result: " + out);
    log("command invoked", { result: JSON.parse(out) });
    await page.screenshot({ path: path.join(artifacts, "11-model-view.png"), fullPage: true });

    const bad = errors.filter((e) => !/status of (401|412)/.test(e));
    if (bad.length) throw new Error("browser console errors: " + bad.join("; "));
  } finally {
    await browser.close();
  }
}

main().then(() => log("ok"), (e) => { log("failed", { error: String(e && e.stack || e) }); process.exitCode = 1; });
