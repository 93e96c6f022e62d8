// pow_bench.js - median time headless Chromium takes to solve a join's
// proof of work with the fan page's solver (web/pow.js), per difficulty.
//   node tests/web/pow_bench.js [difficulty ...] [--runs N]
// Prints one JSON line per difficulty: {difficulty, runs, median_ms, p90_ms,
// mean_tries, hashes_per_s}. The challenges are random strings of a real
// challenge's length: the solve time depends on the difficulty and luck only.
"use strict";
const fs = require("fs");
const os = require("os");
const path = require("path");
const { chromium } = require("playwright-core");

const EXECUTABLE = process.env.ONSALE_CHROMIUM || "/usr/bin/chromium";

async function main() {
  const args = process.argv.slice(2);
  let runs = 41, batch = 0;
  const diffs = [];
  for (let i = 0; i < args.length; i++) {
    if (args[i] === "--runs") runs = +args[++i];
    else if (args[i] === "--batch") batch = +args[++i];
    else diffs.push(+args[i]);
  }
  if (!diffs.length) diffs.push(18);
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), "onsale-pow-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: EXECUTABLE, headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-dev-shm-usage"],
  });
  const page = await context.newPage();
  // Web Crypto needs a secure context: a page of http://localhost, served
  // from here (no server, no network).
  const pow = fs.readFileSync(path.join(__dirname, "..", "..", "web", "pow.js"), "utf8");
  await page.route("http://localhost/**", (route) => route.fulfill({
    contentType: "text/html", body: `<!doctype html><script>${pow}</script>`,
  }));
  await page.goto("http://localhost/pow");
  for (const d of diffs) {
    const r = await page.evaluate(async ({ d, runs, batch }) => {
      const ms = [], tries = [];
      for (let i = 0; i < runs; i++) {
        const salt = Array.from(crypto.getRandomValues(new Uint8Array(8)), (x) => x.toString(16).padStart(2, "0")).join("");
        const tag = Array.from(crypto.getRandomValues(new Uint8Array(16)), (x) => x.toString(16).padStart(2, "0")).join("");
        const ch = `1.1234.567890.${d}.1796245200000.${salt}.${tag}`;
        const s = await OnsalePow.solve(ch, d, batch ? { batch } : {});
        ms.push(s.ms);
        tries.push(s.tries);
      }
      return { ms, tries };
    }, { d, runs, batch });
    const ms = r.ms.slice().sort((a, b) => a - b);
    const sumMs = r.ms.reduce((a, b) => a + b, 0), sumTries = r.tries.reduce((a, b) => a + b, 0);
    console.log(JSON.stringify({
      difficulty: d, runs, batch: batch || "default", median_ms: Math.round(ms[Math.floor(ms.length / 2)]),
      p90_ms: Math.round(ms[Math.floor(ms.length * 0.9)]),
      mean_tries: Math.round(sumTries / runs), hashes_per_s: Math.round(sumTries / (sumMs / 1000)),
    }));
  }
  await context.close();
  fs.rmSync(profile, { recursive: true, force: true });
}

main().catch((e) => { process.stderr.write(String(e && e.stack || e) + "\n"); process.exit(1); });
