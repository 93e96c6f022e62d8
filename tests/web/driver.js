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
  const args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--disable-dev-shm-usage"];
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: EXECUTABLE,
    headless: true,
    viewport: { width: 390, height: 844 },
    args,
  });
  context._onsaleArgs = args;
  const pages = {};
  const logs = [];
  const requests = {};   // page name -> the requests it made (record)
  const t0 = Date.now();
  const cdps = {};       // page name -> its CDP session (record), for cpu
  let crowd = null;      // a second browser for pages with a context of their own
  const ops = {
    // own: the page gets a context of its own (its own cache and storage,
    // as a fan's own browser has); else it shares the persistent one.
    // headers: sent with every request of the page (a proxy's
    // X-Forwarded-For, say).
    async open({ name, width, height, own, headers }) {
      if (own && !crowd) crowd = await chromium.launch(
        { executablePath: EXECUTABLE, headless: true, args: context._onsaleArgs });
      const page = own ? await (await crowd.newContext(
        { viewport: { width: 390, height: 844 } })).newPage() : await context.newPage();
      if (width) await page.setViewportSize({ width, height: height || 900 });
      if (headers) await page.setExtraHTTPHeaders(headers);
      page.on("console", (m) => logs.push(`[${name}] ${m.type()}: ${m.text()}`));
      page.on("pageerror", (e) => logs.push(`[${name}] pageerror: ${e.message}`));
      pages[name] = page;
      return true;
    },
    // Records every request the page makes from now on, as it ends:
    // [ms since the driver started, method, path?query, status (0: failed),
    // the API answer's hints or null, ms when it started], and the page's
    // main-thread time (cpu).
    async record({ page }) {
      const log = requests[page] = [];
      const cdp = cdps[page] = await pages[page].context().newCDPSession(pages[page]);
      await cdp.send("Performance.enable");
      pages[page].on("requestfinished", async (rq) => {
        const rs = await rq.response().catch(() => null);
        const u = new URL(rq.url());
        const tm = rq.timing();
        const t = tm.responseEnd > 0 ? Math.round(tm.startTime + tm.responseEnd - t0) : Date.now() - t0;
        // The schedule the answer asked for (poll_after_ms,
        // refresh_after_ms, Retry-After), to check the next request against.
        let hint = null;
        if (rs && u.pathname.startsWith("/v1/")) {
          const b = await rs.json().catch(() => null);
          hint = { poll: b && b.poll_after_ms, refresh: b && b.refresh_after_ms, state: b && b.state,
                   retry: await rs.headerValue("retry-after").catch(() => null) };
        }
        log.push([t, rq.method(), u.pathname + u.search, rs ? rs.status() : 0, hint,
                  Math.round(rq.timing().startTime - t0)]);
      });
      pages[page].on("requestfailed", (rq) => {
        const u = new URL(rq.url());
        log.push([Date.now() - t0, rq.method(), u.pathname + u.search, 0, null,
                  Math.round(rq.timing().startTime - t0)]);
      });
      return Date.now() - t0;
    },
    // Runs js (a script's text) in the page before its own scripts, at
    // every load from now on.
    async init({ page, js }) { await pages[page].addInitScript({ content: js }); return true; },
    async requests({ page }) { return requests[page] || []; },
    async now() { return Date.now() - t0; },
    // Loads url in each of pages at once (a crowd arriving together).
    async gotoAll({ pages: names, urls }) {
      return Promise.all(names.map(async (n, i) => {
        const t = Date.now();
        const rs = await pages[n].goto(urls[i]);
        return [rs ? rs.status() : 0, Date.now() - t];
      }));
    },
    async evalAll({ pages: names, js }) {
      return Promise.all(names.map((n) => pages[n].evaluate(new Function(js))));
    },
    // The page's own main-thread time so far (Chrome's Performance domain), ms.
    async cpu({ page }) {
      const { metrics } = await cdps[page].send("Performance.getMetrics");
      const m = Object.fromEntries(metrics.map((x) => [x.name, x.value]));
      return { task_ms: m.TaskDuration * 1000, script_ms: m.ScriptDuration * 1000 };
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
    async dblclick({ page, selector }) { await pages[page].dblclick(selector); return true; },
    // Sets the page's viewport; answers the one it had.
    async viewport({ page, width, height }) {
      const old = pages[page].viewportSize();
      await pages[page].setViewportSize({ width, height });
      return old;
    },
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
  if (crowd) await crowd.close();
  await context.close();
  fs.rmSync(profile, { recursive: true, force: true });
  // stdin may still be open on the caller's side: it would keep node alive
  process.exit(0);
}

main().catch((e) => { process.stderr.write(String(e && e.stack || e) + "\n"); process.exit(1); });
