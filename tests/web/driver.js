// driver.js - a line-oriented remote control for headless Chromium, used by
// tests/integration/test_web.py: one JSON command per stdin line
// {"id", "op", ...args}, one JSON answer per stdout line {"id", "ok", "value"|"error"}.
// playwright-core drives Debian's /usr/bin/chromium (never a downloaded
// browser) with networking to anything but the test's own origin off.
"use strict";
const fs = require("fs");
const os = require("os");
const path = require("path");
const readline = require("readline");
const { chromium } = require("playwright-core");

const EXECUTABLE = process.env.ONSALE_CHROMIUM || "/usr/bin/chromium";

async function main() {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), "onsale-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: EXECUTABLE,
    headless: true,
    viewport: { width: 390, height: 844 },
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--disable-dev-shm-usage"],
  });
  const pages = {};
  const logs = [];
  const ops = {
    async open({ name, width, height }) {
      const page = await context.newPage();
      if (width) await page.setViewportSize({ width, height: height || 900 });
      page.on("console", (m) => logs.push(`[${name}] ${m.type()}: ${m.text()}`));
      page.on("pageerror", (e) => logs.push(`[${name}] pageerror: ${e.message}`));
      pages[name] = page;
      return true;
    },
    async goto({ page, url }) { await pages[page].goto(url); return pages[page].url(); },
    async reload({ page }) { await pages[page].reload(); return true; },
    async close({ page }) { await pages[page].close(); delete pages[page]; return true; },
    // Waits until the JS expression (a function body returning a value) is truthy; returns it.
    async wait({ page, js, timeout }) {
      const h = await pages[page].waitForFunction(new Function(js), null,
        { timeout: timeout || 20000, polling: 50 });
      return h.jsonValue();
    },
    async eval({ page, js }) { return pages[page].evaluate(new Function(js)); },
    async click({ page, selector }) { await pages[page].click(selector); return true; },
    async select({ page, selector, value }) { return pages[page].selectOption(selector, value); },
    async press({ page, key }) { await pages[page].keyboard.press(key); return true; },
    async screenshot({ page, file, full }) {
      fs.mkdirSync(path.dirname(file), { recursive: true });
      await pages[page].screenshot({ path: file, fullPage: !!full });
      return file;
    },
    async logs() { return logs.splice(0); },
  };
  const rl = readline.createInterface({ input: process.stdin });
  for await (const line of rl) {
    if (!line.trim()) continue;
    const cmd = JSON.parse(line);
    if (cmd.op === "quit") break;
    let answer;
    try {
      answer = { id: cmd.id, ok: true, value: await ops[cmd.op](cmd) };
    } catch (e) {
      answer = { id: cmd.id, ok: false, error: String(e && e.stack || e) };
    }
    process.stdout.write(JSON.stringify(answer) + "\n");
  }
  await context.close();
  fs.rmSync(profile, { recursive: true, force: true });
  // stdin may still be open on the caller's side: it would keep node alive
  process.exit(0);
}

main().catch((e) => { process.stderr.write(String(e && e.stack || e) + "\n"); process.exit(1); });
