/* api.js - what the fan page and the ops dashboard share: the bearer token
 * (taken from the URL fragment or a login, kept in sessionStorage, never sent
 * in a URL), logins with refresh-token rotation (docs/accounts.md), JSON calls to the Onsale API with Retry-After aware errors, and
 * formatting helpers. No framework, no network access beyond this origin. */
"use strict";

const Onsale = (() => {
  /* Reads #token=... once, stores it under key and removes it from the
   * address bar (so it is not bookmarked or shared by accident). */
  function takeToken(key) {
    const m = /(?:^#|&)token=([A-Za-z0-9._-]+)/.exec(location.hash);
    if (m) {
      /* A link's token replaces any login of this tab. */
      sessionStorage.removeItem(key + ".refresh");
      sessionStorage.removeItem(key + ".name");
      sessionStorage.setItem(key, m[1]);
      history.replaceState(null, "", location.pathname + location.search);
    }
    return sessionStorage.getItem(key);
  }

  /* The JWT's claims (not verified here: the server does that). */
  function claims(token) {
    try {
      const p = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
      return JSON.parse(atob(p + "===".slice((p.length + 3) % 4)));
    } catch (e) {
      return {};
    }
  }

  class ApiError extends Error {
    constructor(status, body, retryAfter) {
      const e = (body && body.error) || {};
      super(e.message || (status ? "HTTP " + status : "The network is unreachable."));
      this.status = status;
      this.code = e.code || (status ? "http_" + status : "network");
      this.body = body;
      this.retryAfterMs = retryAfter;
    }
    /* Overload, rate limit or network trouble: worth retrying later. So is
     * a 409 the server sends with Retry-After (docs/api.md): its conflict
     * clears by itself, e.g. idempotency_in_progress, a request with the
     * same Idempotency-Key still running, or left claimed by one that lost
     * its store mid-way (until idem.inflight_ttl_s); a retry with the same
     * key still never takes a second place or makes a second order. */
    get transient() {
      return this.status === 0 || this.status === 429 || this.status === 503 ||
             this.status === 502 || this.status === 504 ||
             (this.status === 409 && this.retryAfterMs != null);
    }
  }

  /* One JSON request. Resolves with {status, body}; rejects with ApiError
   * for anything but 2xx (and for network failures, status 0). raw: the
   * body as JSON text already made (a retry with an Idempotency-Key must
   * send its first attempt's bytes), instead of body. */
  async function call(method, path, { token, body, raw, idem, headers: extra, timeoutMs = 15000 } = {}) {
    const headers = { Accept: "application/json", ...extra };
    if (token) headers.Authorization = "Bearer " + token;
    if (raw === undefined && body !== undefined) raw = JSON.stringify(body);
    if (raw !== undefined) headers["Content-Type"] = "application/json";
    if (idem) headers["Idempotency-Key"] = idem;
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), timeoutMs);
    let res;
    try {
      res = await fetch(path, {
        method, headers, cache: "no-store", signal: ctl.signal, body: raw,
      });
    } catch (e) {
      throw new ApiError(0, null, null);
    } finally {
      clearTimeout(timer);
    }
    let parsed = null;
    const text = await res.text().catch(() => "");
    try { parsed = text ? JSON.parse(text) : null; } catch (e) { parsed = text; }
    if (res.ok) return { status: res.status, body: parsed, headers: res.headers };
    const ra = parseInt(res.headers.get("Retry-After") || "", 10);
    throw new ApiError(res.status, parsed, Number.isFinite(ra) ? ra * 1000 : null);
  }

  /* Delay before retrying after err (attempt counts from 1): capped
   * exponential backoff with jitter, and never sooner than the server's
   * Retry-After when it gave one. A crowd refused at once gets the same
   * Retry-After; up to half of it again spreads their retries over that
   * time instead of bringing them all back within the same instant, and
   * the backoff still grows while the refusals go on. */
  function backoffMs(err, attempt) {
    const base = Math.min(30000, 500 * 2 ** Math.min(attempt - 1, 6));
    const jitter = base / 2 + Math.random() * base / 2;
    if (err && err.retryAfterMs != null) {
      const ra = Math.max(err.retryAfterMs, 250);
      return Math.max(jitter, ra + Math.random() * ra / 2);
    }
    return jitter;
  }

  function randomKey() {
    const b = new Uint8Array(16);
    crypto.getRandomValues(b);
    return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  }

  function money(cents, currency) {
    try {
      return new Intl.NumberFormat(undefined, { style: "currency", currency: currency || "USD" })
        .format(cents / 100);
    } catch (e) {
      return (cents / 100).toFixed(2) + " " + (currency || "");
    }
  }

  function when(iso) {
    const d = new Date(iso);
    if (isNaN(d)) return iso || "";
    return d.toLocaleString(undefined, { weekday: "short", year: "numeric", month: "short",
                                         day: "numeric", hour: "2-digit", minute: "2-digit" });
  }

  function duration(seconds) {
    seconds = Math.max(0, Math.round(seconds));
    if (seconds < 60) return seconds <= 1 ? "under a minute" : "about " + seconds + " s";
    const m = Math.round(seconds / 60);
    if (m < 60) return "about " + m + " min";
    return "about " + Math.floor(m / 60) + " h " + (m % 60) + " min";
  }

  function num(n) {
    return n == null || Number.isNaN(n) ? "–" : Number(n).toLocaleString();
  }

  /* Shorthand for document.getElementById. */
  const $ = (id) => document.getElementById(id);

  /* Replaces el's children with a new element tree built from [tag, attrs,
   * ...children] arrays and strings (text only: never HTML). */
  function h(tag, attrs, ...kids) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === false || v == null) continue;
      if (k === "class") el.className = v;
      else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
      else el.setAttribute(k, v === true ? "" : v);
    }
    for (const kid of kids.flat()) {
      if (kid == null || kid === false) continue;
      el.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
    }
    return el;
  }

  /* ---- accounts: sign-up, login, refresh, logout --------------------------
   * A login keeps its access token under key (where takeToken looks), the
   * refresh token under key + ".refresh" and the display name under
   * key + ".name", all in sessionStorage: gone when the tab closes. */
  const REFRESH_EARLY_MS = 60000;   /* refresh this long before exp */

  function keep(key, b) {
    sessionStorage.setItem(key, b.access_token);
    sessionStorage.setItem(key + ".refresh", b.refresh_token);
    if (b.user) sessionStorage.setItem(key + ".name", b.user.display_name);
  }
  function forgetLogin(key) {
    for (const k of [key, key + ".refresh", key + ".name"]) sessionStorage.removeItem(k);
  }
  const auth = {
    signup: async (email, password, displayName) =>
      (await call("POST", "/v1/users", { body: { email, password, display_name: displayName } })).body,
    async login(key, email, password) {
      const b = (await call("POST", "/v1/sessions", { body: { email, password } })).body;
      keep(key, b);
      return b;
    },
    loggedIn: (key) => !!sessionStorage.getItem(key + ".refresh"),
    name: (key) => sessionStorage.getItem(key + ".name"),
    /* Trades the refresh token for new tokens; returns the access token.
     * A refused refresh token (401) ends the login. */
    async refresh(key) {
      const rt = sessionStorage.getItem(key + ".refresh");
      if (!rt) return null;
      try {
        const b = (await call("POST", "/v1/sessions/refresh", { body: { refresh_token: rt } })).body;
        keep(key, b);
        return b.access_token;
      } catch (err) {
        if (!err.transient) forgetLogin(key);
        throw err;
      }
    },
    async logout(key) {
      const rt = sessionStorage.getItem(key + ".refresh");
      forgetLogin(key);
      if (rt) await call("DELETE", "/v1/sessions", { body: { refresh_token: rt } }).catch(() => {});
    },
    /* The access token to start with: a login's token refreshed first when
     * it is (nearly) expired. Resolves null when there is none. */
    async resume(key) {
      const t = sessionStorage.getItem(key);
      if (!auth.loggedIn(key)) return t;
      if (t && (claims(t).exp || 0) * 1000 - Date.now() > REFRESH_EARLY_MS) return t;
      try { return await auth.refresh(key); } catch (err) { return err.transient ? t : null; }
    },
    /* Refreshes a login's access token before it expires, for as long as
     * the page lives; onToken(newToken or null when the login ended). */
    keepFresh(key, onToken) {
      const t = sessionStorage.getItem(key);
      if (!t || !auth.loggedIn(key)) return;
      /* A minute early, or halfway through a token shorter-lived than that. */
      const left = (claims(t).exp || 0) * 1000 - Date.now();
      const due = Math.max(0, left / 2, left - REFRESH_EARLY_MS);
      let attempt = 0;
      const tick = async () => {
        try {
          onToken(await auth.refresh(key));
          auth.keepFresh(key, onToken);
        } catch (err) {
          if (err.transient) setTimeout(tick, backoffMs(err, ++attempt));
          else onToken(null);
        }
      };
      setTimeout(tick, due);
    },
  };

  return { takeToken, claims, call, auth, ApiError, backoffMs, randomKey, money, when, duration, num, $, h };
})();
