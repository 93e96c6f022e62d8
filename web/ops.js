/* ops.js - the operators' dashboard (/ops/#token=<admin JWT>).
 *
 * Every second: GET /v1/admin/queues (partitions: owner, served offset,
 * high watermark, lag, drain rate; events: queued, waiting, held, sold,
 * available, status) and GET /metrics of this ingress. Request rate, error
 * rate and latency percentiles come from the difference of two successive
 * scrapes of onsale_ingress_requests_total and the histogram
 * onsale_ingress_request_seconds (summed over routes and statuses), the way
 * Prometheus' rate() and histogram_quantile() would compute them. Rows are
 * updated in place so keyboard focus on a pause/resume button survives the
 * refresh. The history panel reads the last 30 minutes back from
 * Prometheus through GET /v1/admin/history every 30 s (hidden when ingress
 * has no ops.prometheus_url). */
"use strict";

(() => {
  const { $, h, call, backoffMs, num } = Onsale;
  const REFRESH_MS = 1000;
  const HISTORY = 120;
  const SVG = "http://www.w3.org/2000/svg";

  const token = Onsale.takeToken("onsale.ops.token");
  const names = new Map();      /* event_id -> name ("" while loading) */
  const pending = new Map();    /* event_id -> action in flight */
  const history = [];           /* {lag, sold} per refresh */
  let prev = null;              /* the previous scrape: {t, total, errors, buckets} */
  let failures = 0;

  function notice(text, isError) {
    const n = $("notice");
    n.textContent = text || "";
    n.classList.toggle("hidden", !text);
    n.classList.toggle("error", !!isError);
  }

  /* ---- /metrics ---------------------------------------------------------- */
  const LINE = /^(onsale_ingress_requests_total|onsale_ingress_request_seconds_bucket)\{([^}]*)\}\s+(\S+)/;
  function label(labels, name) {
    const m = new RegExp(`(?:^|,)${name}="([^"]*)"`).exec(labels);
    return m ? m[1] : null;
  }
  /* Sums the request counter and latency buckets over every series. */
  function parseMetrics(text) {
    const out = { total: 0, errors: 0, buckets: new Map() };
    for (const line of text.split("\n")) {
      const m = LINE.exec(line);
      if (!m) continue;
      const v = Number(m[3]);
      if (m[1] === "onsale_ingress_requests_total") {
        out.total += v;
        if ((label(m[2], "status") || "").startsWith("5")) out.errors += v;
      } else {
        const le = label(m[2], "le");
        const key = le === "+Inf" ? Infinity : Number(le);
        out.buckets.set(key, (out.buckets.get(key) || 0) + v);
      }
    }
    return out;
  }
  /* histogram_quantile over cumulative bucket deltas: linear inside the
   * bucket; the +Inf bucket answers the largest finite bound. */
  function quantile(q, deltas) {
    const les = [...deltas.keys()].sort((a, b) => a - b);
    const total = deltas.get(Infinity) || 0;
    if (total <= 0) return null;
    const rank = q * total;
    let lower = 0, below = 0;
    for (const le of les) {
      const cum = deltas.get(le);
      if (cum >= rank) {
        if (le === Infinity) return lower;
        const inBucket = cum - below;
        return lower + (le - lower) * (inBucket > 0 ? (rank - below) / inBucket : 1);
      }
      lower = le;
      below = cum;
    }
    return lower;
  }
  function ms(seconds) {
    if (seconds == null) return "–";
    const v = seconds * 1000;
    return v < 10 ? v.toFixed(2) + " ms" : v < 1000 ? v.toFixed(0) + " ms" : (v / 1000).toFixed(2) + " s";
  }
  function renderMetrics(cur) {
    if (prev) {
      const dt = (cur.t - prev.t) / 1000;
      const dTotal = Math.max(0, cur.total - prev.total);
      const dErr = Math.max(0, cur.errors - prev.errors);
      const deltas = new Map();
      for (const [le, v] of cur.buckets) deltas.set(le, Math.max(0, v - (prev.buckets.get(le) || 0)));
      $("k-rps").textContent = dt > 0 ? (dTotal / dt).toFixed(1) : "–";
      $("k-err").textContent = dt > 0 ? (dErr / dt).toFixed(1) : "–";
      $("k-errpct").textContent = dTotal > 0 ? (100 * dErr / dTotal).toFixed(1) + " %" : "0 %";
      $("k-p50").textContent = ms(quantile(0.5, deltas));
      $("k-p95").textContent = ms(quantile(0.95, deltas));
      $("k-p99").textContent = ms(quantile(0.99, deltas));
    }
    prev = cur;
  }

  /* ---- the queue view ------------------------------------------------------- */
  /* A card with a heading and an empty table under it; a column head ending
   * in " #" is numeric (right-aligned). */
  function tableCard(id, title, heads) {
    return h("section", { class: "card", "aria-labelledby": `${id}-h` },
      h("h2", { id: `${id}-h` }, title),
      h("div", { class: "table-wrap" },
        h("table", { id },
          h("thead", {}, h("tr", {}, heads.map((t) => t.endsWith(" #")
            ? h("th", { scope: "col", class: "num" }, t.slice(0, -2))
            : h("th", { scope: "col" }, t)))),
          h("tbody"))));
  }
  $("tables").replaceWith(
    tableCard("parts", "Partitions", ["Partition", "Owner", "Epoch #", "Served offset #",
      "High watermark #", "Lag #", "Drain rate /s #"]),
    tableCard("events", "Events", ["Event", "Sale", "Queued #", "Waiting #", "Held #", "Sold #",
      "Available #", "Admission", "Control"]));

  /* Keeps one <tr> per key in tbody, in the given order, updating cells in place. */
  function syncRows(tbody, items, keyOf, create, update) {
    const rows = new Map([...tbody.rows].map((r) => [r.dataset.key, r]));
    let before = tbody.firstElementChild;
    for (const it of items) {
      const key = String(keyOf(it));
      let row = rows.get(key);
      if (!row) {
        row = create(it);
        row.dataset.key = key;
      }
      rows.delete(key);
      if (row !== before) tbody.insertBefore(row, before);
      else before = before.nextElementSibling;
      update(row, it);
    }
    for (const r of rows.values()) r.remove();
  }
  function cell(row, k, text) {
    const c = row.querySelector(`[data-k="${k}"]`);
    if (c.textContent !== text) c.textContent = text;
  }
  const PART_COLS = ["partition", "owner", "epoch", "served_offset", "high_watermark", "lag", "drain_rate"];
  function renderPartitions(parts) {
    syncRows($("parts").tBodies[0], parts, (p) => p.partition,
      () => h("tr", {}, PART_COLS.map((k) => h(k === "partition" ? "th" : "td", {
        "data-k": k,
        class: k === "owner" || k === "partition" ? "" : "num",
        scope: k === "partition" ? "row" : null,
      }))),
      (row, p) => {
        row.dataset.partition = p.partition;
        cell(row, "partition", String(p.partition));
        cell(row, "owner", p.owner || "none");
        cell(row, "epoch", p.epoch == null ? "–" : String(p.epoch));
        cell(row, "served_offset", p.served_offset == null || p.served_offset < 0 ? "–" : String(p.served_offset));
        cell(row, "high_watermark", p.high_watermark == null ? "–" : String(p.high_watermark));
        cell(row, "lag", p.lag == null ? "–" : String(p.lag));
        cell(row, "drain_rate", (p.drain_rate || 0).toFixed(1));
      });
  }
  const EV_COLS = ["queued", "waiting", "held", "sold", "available"];
  function renderEvents(events) {
    syncRows($("events").tBodies[0], events, (e) => e.event_id,
      (e) => {
        const btn = h("button", { type: "button", class: "secondary", "data-k": "action" }, "Pause");
        btn.addEventListener("click", () => control(e.event_id, btn));
        return h("tr", {},
          h("th", { scope: "row", "data-k": "event" }),
          h("td", {}, h("span", { class: "badge", "data-k": "status" })),
          EV_COLS.map((k) => h("td", { class: "num", "data-k": k })),
          h("td", { "data-k": "admission" }),
          h("td", {}, btn));
      },
      (row, e) => {
        row.dataset.event = e.event_id;
        row.dataset.status = e.status;
        if (!names.has(e.event_id)) fetchName(e.event_id);
        const name = names.get(e.event_id);
        cell(row, "event", name ? `#${e.event_id} ${name}` : `#${e.event_id}`);
        const badge = row.querySelector('[data-k="status"]');
        cell(row, "status", e.status.replace("_", " "));
        badge.className = "badge " + e.status;
        for (const k of EV_COLS) cell(row, k, num(e[k]));
        /* Admission caps (docs/fairness.md): holds now / the cap, grants a minute. */
        const caps = [];
        if (e.max_active_holds) caps.push(`${num(e.active_holds || 0)}/${num(e.max_active_holds)} holds`);
        if (e.admissions_per_minute) caps.push(`${num(e.admissions_per_minute)}/min`);
        cell(row, "admission", caps.length ? caps.join(" · ") : "open");
        const btn = row.querySelector('[data-k="action"]');
        const act = e.status === "paused" ? "resume" : e.status === "on_sale" || e.status === "scheduled" ? "pause" : null;
        const label = act ? act[0].toUpperCase() + act.slice(1) : "—";
        if (btn.textContent !== label) btn.textContent = label;
        btn.dataset.action = act || "";
        btn.disabled = !act;
        btn.setAttribute("aria-label", act ? `${label} sale of event ${e.event_id}` : "No control");
      });
  }
  async function fetchName(id) {
    names.set(id, "");
    try {
      names.set(id, (await call("GET", `/v1/events/${id}`)).body.name || "");
    } catch (e) {
      setTimeout(() => names.delete(id), 5000);
    }
  }
  async function control(id, btn) {
    const act = btn.dataset.action;
    if (!act || pending.has(id)) return;
    /* Not disabled while in flight: a disabled button would drop keyboard focus. */
    pending.set(id, act);
    btn.setAttribute("aria-busy", "true");
    try {
      const r = await call("POST", `/v1/events/${id}/${act}`, { token });
      $("announce").textContent = `Event ${id}: ${r.body.status.replace("_", " ")}.`;
    } catch (err) {
      notice(`Could not ${act} event ${id}: ${err.message}`, true);
    } finally {
      pending.delete(id);
      btn.removeAttribute("aria-busy");
    }
  }

  /* ---- charts ------------------------------------------------------------------ */
  function chart(svg, values, caption) {
    const max = Math.max(1, ...values);
    const n = HISTORY;
    const pts = values.map((v, i) => [((n - values.length + i) / (n - 1)) * 300, 96 - (v / max) * 86]);
    const line = pts.map(([x, y]) => `${x.toFixed(1)},${y.toFixed(1)}`).join(" ");
    const el = (tag, attrs, text) => {
      const e = document.createElementNS(SVG, tag);
      for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
      if (text != null) e.textContent = text;
      return e;
    };
    const kids = [];
    if (pts.length > 1) {
      const first = pts[0][0], last = pts[pts.length - 1][0];
      kids.push(el("polygon", { class: "area", points: `${first},96 ${line} ${last},96` }));
      kids.push(el("polyline", { class: "line", points: line }));
    }
    kids.push(el("text", { x: 4, y: 12 }, `max ${num(max)}`));
    kids.push(el("title", {}, caption));
    svg.replaceChildren(...kids);
  }

  /* ---- history from Prometheus (GET /v1/admin/history) ----------------------- */
  const HISTORY_MS = 30000;
  const HISTORY_SERIES = [
    ["lag", "Consumer lag (all partitions)"],
    ["drain_rate", "Intents applied / s"],
    ["requests_rate", "Ingress requests / s"],
    ["error_ratio", "5xx share of requests"],
    ["join_p99_seconds", "Join p99 (s)"],
    ["replica_lag_seconds", "Replica lag (s)"],
  ];
  let historyFailures = 0;
  async function refreshHistory() {
    const card = $("history");
    let wait = HISTORY_MS;
    try {
      const { body } = await call("GET", "/v1/admin/history?minutes=30", { token });
      const box = $("history-charts");
      for (const [key, title] of HISTORY_SERIES) {
        let svg = document.getElementById(`h-${key}`);
        if (!svg) {
          const fig = h("figure", { class: "hchart" }, h("figcaption", { class: "small" }, title));
          svg = document.createElementNS(SVG, "svg");
          svg.id = `h-${key}`;
          svg.setAttribute("class", "chart");
          svg.setAttribute("viewBox", "0 0 300 100");
          svg.setAttribute("preserveAspectRatio", "none");
          svg.setAttribute("role", "img");
          svg.setAttribute("aria-label", `${title} over the last ${body.minutes} minutes`);
          fig.append(svg);
          box.append(fig);
        }
        const values = (body.series[key] || []).map(([, v]) => (v == null ? 0 : v));
        svg.dataset.samples = String(values.length);
        chart(svg, values, `${title}: ${values.length} samples every ${body.step_s} s`);
      }
      $("history-span").textContent = `last ${body.minutes} min, every ${body.step_s} s`;
      $("history-note").textContent = "From Prometheus (every process of the stack, through " +
        "the recording rules), refreshed every 30 seconds.";
      card.classList.remove("hidden");
      card.dataset.state = "live";
      historyFailures = 0;
    } catch (err) {
      const code = err.body && err.body.error && err.body.error.code;
      if (code === "history_not_configured") {
        card.classList.add("hidden"); /* no Prometheus: nothing to show */
        card.dataset.state = "off";
        return;
      }
      card.classList.remove("hidden");
      card.dataset.state = "error";
      $("history-note").textContent = `History is unavailable (${err.message}); retrying.`;
      wait = Math.min(HISTORY_MS, backoffMs(err, ++historyFailures));
    }
    setTimeout(refreshHistory, wait);
  }

  /* ---- the refresh loop ------------------------------------------------------- */
  async function refresh() {
    const t0 = performance.now();
    const [q, m] = await Promise.allSettled([
      call("GET", "/v1/admin/queues", { token }),
      fetch("/metrics", { cache: "no-store" }).then((r) => {
        if (!r.ok) throw new Error(`/metrics answered ${r.status}`);
        return r.text();
      }),
    ]);
    const t = performance.now();
    let wait = REFRESH_MS;
    if (q.status === "fulfilled") {
      const body = q.value.body;
      renderPartitions(body.partitions || []);
      renderEvents(body.events || []);
      const lag = (body.partitions || []).reduce((s, p) => s + (p.lag || 0), 0);
      const sold = (body.events || []).reduce((s, e) => s + (e.sold || 0), 0);
      history.push({ lag, sold });
      if (history.length > HISTORY) history.shift();
      chart($("lag-chart"), history.map((x) => x.lag), `Total lag now ${lag}`);
      chart($("sales-chart"), history.map((x) => x.sold), `Seats sold now ${sold}`);
      $("lag-now").textContent = `now ${num(lag)}`;
      $("sales-now").textContent = `now ${num(sold)}`;
      $("updated").textContent = "updated " + new Date().toLocaleTimeString();
      document.body.dataset.state = "live";
      document.body.dataset.refreshes = String(Number(document.body.dataset.refreshes || 0) + 1);
      failures = 0;
      notice("");
    } else {
      const err = q.reason;
      failures++;
      if (err.status === 401 || err.status === 403) {
        document.body.dataset.state = "unauthorized";
        notice("This dashboard needs an admin link (ending in #token=…). " + err.message, true);
        return;
      }
      notice(`The queue view is unavailable (${err.message}); retrying.`, true);
      wait = Math.max(REFRESH_MS, backoffMs(err, failures));
    }
    if (m.status === "fulfilled") renderMetrics({ t, ...parseMetrics(m.value) });
    else notice(`Metrics unavailable: ${m.reason.message}`, true);
    setTimeout(refresh, Math.max(0, wait - (performance.now() - t0)));
  }

  if (!token) {
    document.body.dataset.state = "unauthorized";
    // The stack's own key: onsalectl refuses the development default.
    notice("This dashboard needs an admin link (ending in #token=…): " +
           "(set -a; . .state/secrets.env; build/bin/onsalectl token --user 1 --role admin)", true);
  } else {
    refresh();
    refreshHistory();
  }
})();
