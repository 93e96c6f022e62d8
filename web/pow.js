/* pow.js - solves the proof-of-work challenge an event may ask of a join
 * (docs/fairness.md "Bot friction"): find a nonce such that
 * SHA-256(challenge ":" nonce) starts with `difficulty` zero bits.
 *
 * Web Crypto only (crypto.subtle.digest), in batches of digests in flight
 * at once: each batch resolves on its own task, so the page keeps painting
 * and answering between batches, and onProgress is called after each one.
 * Nonces are decimal counters, like the simulator's. */
"use strict";

const OnsalePow = (() => {
  const BATCH = 1024; /* measured best of 64..4096 in headless Chromium (bench/RESULTS.md) */

  /* Leading zero bits of the bytes of an ArrayBuffer. */
  function zeroBits(buf) {
    const d = new Uint8Array(buf);
    let n = 0;
    for (const b of d) {
      if (b === 0) { n += 8; continue; }
      return n + Math.clz32(b) - 24;
    }
    return n;
  }

  /* Resolves {nonce, tries, ms}. onProgress({tries, expected, fraction}) after
   * each batch: fraction is the chance a solution was due by now
   * (1 - e^(-tries / 2^difficulty)), so the bar moves like the work does.
   * Rejects with an AbortError when signal aborts. */
  async function solve(challenge, difficulty, { onProgress, signal, batch = BATCH } = {}) {
    const prefix = new TextEncoder().encode(challenge + ":");
    const expected = 2 ** difficulty;
    const t0 = performance.now();
    for (let base = 0; ; base += batch) {
      if (signal && signal.aborted) throw new DOMException("aborted", "AbortError");
      const jobs = new Array(batch);
      for (let i = 0; i < batch; i++) {
        const n = String(base + i);
        const msg = new Uint8Array(prefix.length + n.length);
        msg.set(prefix);
        for (let k = 0; k < n.length; k++) msg[prefix.length + k] = n.charCodeAt(k);
        jobs[i] = crypto.subtle.digest("SHA-256", msg);
      }
      const digests = await Promise.all(jobs);
      for (let i = 0; i < batch; i++) {
        if (zeroBits(digests[i]) >= difficulty) {
          return { nonce: String(base + i), tries: base + i + 1, ms: performance.now() - t0 };
        }
      }
      const tries = base + batch;
      if (onProgress) onProgress({ tries, expected, fraction: 1 - Math.exp(-tries / expected) });
    }
  }

  return { solve, zeroBits };
})();
