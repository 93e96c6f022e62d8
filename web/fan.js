/* fan.js - the fan's queue page (/q/{event_id}#token=...).
 *
 * Flow: event details and live availability (GET /v1/events/{id}, every
 * few seconds) -> join (POST /v1/events/{id}/intents; first a proof of work,
 * web/pow.js, when the event asks for one) -> status polls
 * (GET /v1/intents/{id}) exactly as poll_after_ms says, backing off on
 * 429/503 (Retry-After) and network errors -> reserved seats with a
 * countdown and checkout (POST /v1/reservations/{id}/checkout, then
 * GET /v1/orders/{id} until it settles) -> a clear final answer, with each
 * ticket's live gate code and QR (web/tickets.js). The home page (/) lists
 * the signed-in fan's valid tickets the same way.
 *
 * The intent id (and the pending order) is kept in localStorage per event
 * and user, so a reload keeps the fan's place. The token comes from the URL
 * fragment (#token=..., minted links) or from signing in on this page
 * (Onsale.auth: refreshed before it expires); either way it is kept in
 * sessionStorage. */
"use strict";

(() => {
  const { $, h, call, backoffMs, money, when, duration, num, randomKey } = Onsale;
  const FINAL = new Set(["purchased", "rejected", "expired", "released"]);
  const EVENT_REFRESH_MS = 5000;

  const TOKEN_KEY = "onsale.fan.token";
  const m = /^\/q\/([1-9][0-9]{0,17})\/?$/.exec(location.pathname);
  const eventId = m ? m[1] : null;
  let token = null, who = {}, storeKey = null;
  /* Sets the bearer token (a refresh replaces it for the same user). */
  function setToken(t) {
    token = t || null;
    who = token ? Onsale.claims(token) : {};
    storeKey = eventId && who.sub ? `onsale.intent.${eventId}.${who.sub}` : null;
  }
  setToken(Onsale.takeToken(TOKEN_KEY));

  let ev = null;            /* the event, as last read */
  let mine = null;          /* {intent_id, max_position, order_id, pay_key, pay_res} */
  let state = null;         /* the intent's last state */
  let reservation = null;
  let pollTimer = null, pollAttempt = 0;
  let orderTimer = null, orderAttempt = 0;
  let countdownTimer = null;
  let joinAttempt = 0;
  /* A join is on its way or waiting to be retried: the form stays as the
   * join left it (the view's refreshes must not offer the button again, a
   * second press would start a second chain of retries). */
  let joining = false;
  let powNeeded = false, powAttempt = 0; /* the server asked for work (403 pow_*) */
  let answered = false;     /* a final answer is on screen */
  const said = { state: null, bucket: null, at: 0 };

  /* ---- storage ------------------------------------------------------------ */
  function load() {
    if (!storeKey) return null;
    try { return JSON.parse(localStorage.getItem(storeKey)) || null; } catch (e) { return null; }
  }
  function save() { if (storeKey && mine) localStorage.setItem(storeKey, JSON.stringify(mine)); }
  function forget() { if (storeKey) localStorage.removeItem(storeKey); mine = null; }

  /* ---- small view helpers ------------------------------------------------- */
  const SECTIONS = ["join", "queue", "held", "final"];
  function show(which) {
    for (const s of SECTIONS) $(s).classList.toggle("hidden", s !== which);
  }
  function setState(s) { document.body.dataset.state = s; }
  function notice(text, isError) {
    const n = $("notice");
    n.textContent = text || "";
    n.classList.toggle("hidden", !text);
    n.classList.toggle("error", !!isError);
  }
  function announce(text) {
    /* Re-set even when equal so screen readers repeat a real change. */
    const a = $("announce");
    a.textContent = "";
    setTimeout(() => { a.textContent = text; }, 50);
  }

  /* Announces positions politely, only on meaningful changes: the first
   * one, then when the position enters a new bucket (1..10 one by one, then
   * tens, hundreds, thousands), at most every 10 s (every time near the
   * front). */
  function bucket(p) {
    if (p <= 10) return p;
    const step = p <= 100 ? 10 : p <= 1000 ? 100 : 1000;
    return Math.ceil(p / step) * step;
  }
  function announcePosition(p, eta) {
    const b = bucket(p), now = Date.now();
    if (said.bucket === b) return;
    if (said.bucket !== null && p > 5 && now - said.at < 10000) return;
    said.bucket = b;
    said.at = now;
    announce(p === 0 ? "You are at the front of the line." :
             `${num(p)} ${p === 1 ? "fan" : "fans"} ahead of you, wait ${duration(eta)}.`);
  }
  function announceState(s, text) {
    if (said.state === s) return;
    said.state = s;
    said.bucket = null;
    announce(text);
  }

  /* ---- the event -------------------------------------------------------------- */
  function renderEvent() {
    $("event").classList.remove("hidden");
    $("ev-name").textContent = ev.name;
    document.title = `${ev.name} · Onsale`;
    const v = ev.venue || {};
    $("ev-meta").textContent = [when(ev.starts_at), [v.name, v.city].filter(Boolean).join(", ")]
      .filter(Boolean).join(" · ");
    const st = $("ev-status");
    st.textContent = ev.status.replace("_", " ");
    st.className = "badge " + ev.status;
    $("ev-avail").textContent = `${num(ev.available)} of ${num(ev.seats_total)} seats available`;
    const body = $("tiers").tBodies[0];
    body.replaceChildren(...(ev.tiers || []).map((t) =>
      h("tr", {}, h("td", {}, t.section), h("td", { class: "num" }, money(t.price_cents, ev.currency)),
        h("td", { class: "num" }, t.available > 0 ? num(t.available) : "Sold out"))));
    /* The join form's choices follow the event. */
    const qty = $("qty");
    if (qty.options.length !== ev.max_per_user) {
      const keep = qty.value || "2";
      qty.replaceChildren(...Array.from({ length: ev.max_per_user }, (_, i) =>
        h("option", { value: i + 1 }, String(i + 1))));
      qty.value = Math.min(+keep, ev.max_per_user);
    }
    const sec = $("section");
    const names = (ev.tiers || []).map((t) => t.section);
    if (sec.options.length !== names.length + 1) {
      sec.replaceChildren(h("option", { value: "" }, "Best available"),
        ...(ev.tiers || []).map((t) => h("option", { value: t.section },
          `${t.section} · ${money(t.price_cents, ev.currency)}`)));
    }
    if (!mine && !answered) renderJoinable();
  }

  function renderJoinable() {
    const msg = $("join-msg"), btn = $("join-btn");
    const reasons = {
      scheduled: `The sale opens ${when(ev.onsale_at)}. Come back then — joining early gives no advantage.`,
      paused: "The sale is paused for a moment. Stay on this page; you can join as soon as it resumes.",
      sold_out: "Sold out. Every seat has been sold.",
      cancelled: "This event was cancelled.",
      ended: "This sale has ended.",
    };
    if (ev.status === "sold_out" && state === null) {
      finalAnswer("sold_out", "Sold out", "bad", "Every seat for this event has been sold.");
      return;
    }
    show("join");
    setState("join");
    if (joining) return;
    /* A pre-queue (docs/fairness.md): joining before the sale puts the fan in
     * the draw; the order among them is drawn at onsale_at, not raced. */
    const pre = ev.status === "scheduled" && ev.prequeue_opens_at &&
      Date.parse(ev.prequeue_opens_at) <= Date.now() && Date.now() < Date.parse(ev.onsale_at);
    btn.disabled = !token || !(ev.status === "on_sale" || pre);
    msg.textContent = !token ? "Sign in above to join, or open the access link you were given."
      : pre ? `The pre-queue is open. Everyone who joins before the sale opens ${when(ev.onsale_at)} ` +
        "is put in line by a public draw, so there is no need to hurry."
      : reasons[ev.status] || "Seats go strictly first come, first served. You can pick a section.";
  }

  /* The view is fetched on arrival and then only as its refresh_after_ms
   * says (never sooner than EVENT_REFRESH_MS), until the page shows a final
   * answer: a crowd's pages stay open long after the sale, and a page that
   * went on refreshing would spend the view budget the server spreads over
   * the fans still waiting. A state change does not fetch it early either:
   * a crowd's places move together, and its views with them would come at
   * once. */
  let eventTimer = null;
  /* Failed views in a row. A failed view is retried after 1-2 s (the
   * backoff's third step: a view is not urgent) and then later each time
   * (backoffMs), as the other requests are: a retry every 1-2 s for as
   * long as a node stays down was the whole crowd's views again every
   * second or two. */
  let viewAttempt = 0;
  async function loadEvent() {
    clearTimeout(eventTimer);
    eventTimer = null;
    try {
      ev = (await call("GET", `/v1/events/${eventId}`)).body;
      viewAttempt = 0;
      renderEvent();
      /* The server spreads a big crowd's refreshes (refresh_after_ms grows
       * with the fans waiting); the fan's own place comes from its polls. */
      const next = Math.max(EVENT_REFRESH_MS, Number(ev.refresh_after_ms) || 0);
      if (eventTimer === null && !answered) eventTimer = setTimeout(loadEvent, next);
    } catch (err) {
      if (err.status === 404 || err.status === 400) {
        $("event").classList.remove("hidden");
        $("ev-name").textContent = "No such event";
        $("ev-meta").textContent = "Check the link you were given.";
        setState("no_event");
        return;
      }
      if (!answered) eventTimer = setTimeout(loadEvent, backoffMs(err, 3 + viewAttempt++));
    }
  }

  /* ---- joining ---------------------------------------------------------------- */
  /* The event asks for a proof of work (docs/fairness.md "Bot friction"):
   * fetches a challenge and solves it, showing progress. Resolves the
   * Onsale-PoW header value, or null when no work is asked after all. */
  async function proveWork() {
    const c = (await call("GET", `/v1/events/${eventId}/challenge`, { token })).body;
    if (!c.challenge) return null;
    const bar = $("pow-bar"), msg = $("join-msg");
    const show = (pct) => {
      bar.setAttribute("aria-valuenow", String(pct));
      bar.firstElementChild.style.width = pct + "%";
      msg.textContent = `Checking this browser before you join (this keeps bots out)… ${pct} %`;
    };
    bar.classList.remove("hidden");
    show(0);
    try {
      const s = await OnsalePow.solve(c.challenge, c.difficulty, {
        onProgress: (p) => show(Math.min(99, Math.floor(p.fraction * 100))),
      });
      show(100);
      document.body.dataset.powMs = String(Math.round(s.ms)); /* for tests and the curious */
      return `${c.challenge}:${s.nonce}`;
    } finally {
      bar.classList.add("hidden");
    }
  }

  /* The join form's controls, all off while a join is on its way. */
  function joinFormDisabled(off) {
    for (const id of ["join-btn", "qty", "section"]) $(id).disabled = off;
  }

  async function join(e) {
    if (e) e.preventDefault();
    /* A retried join reuses its Idempotency-Key, so it can never take a second place. */
    const keyName = `onsale.join.${eventId}.${who.sub}`;
    let pending = null;
    try { pending = JSON.parse(sessionStorage.getItem(keyName)); } catch (x) { pending = null; }
    /* A retry (joining already) sends the first attempt's body and key as
     * they were, whatever the form says now: the first attempt may be
     * queued already (503 outcome_unknown, 504, no answer), and a new body
     * would be a new key, a second join the server has to refuse. */
    if (!joining || !pending) {
      const body = { quantity: +$("qty").value };
      if ($("section").value) body.section = $("section").value;
      if (!pending || JSON.stringify(pending.body) !== JSON.stringify(body)) {
        pending = { key: randomKey(), body };
        sessionStorage.setItem(keyName, JSON.stringify(pending));
      }
    }
    const body = pending.body;
    joining = true;
    joinFormDisabled(true);
    $("join-msg").textContent = "Joining…";
    try {
      const pow = powNeeded || (ev && ev.pow_difficulty > 0) ? await proveWork() : null;
      if (pow) $("join-msg").textContent = "Joining…";
      const r = await call("POST", `/v1/events/${eventId}/intents`, {
        token, body, idem: pending.key, headers: pow ? { "Onsale-PoW": pow } : undefined });
      powAttempt = 0;
      sessionStorage.removeItem(keyName);
      joinAttempt = 0;
      joining = false;
      mine = { intent_id: r.body.intent_id, max_position: r.body.position };
      save();
      notice("");
      render(r.body);
      schedule(r.body.poll_after_ms);
    } catch (err) {
      if (err.code === "already_in_queue" && err.body && err.body.intent_id) {
        joining = false;
        joinAttempt = 0;
        sessionStorage.removeItem(keyName);
        mine = { intent_id: err.body.intent_id };
        save();
        schedule(0);
      } else if (/^pow_(required|invalid|used)$/.test(err.code) && powAttempt < 3) {
        /* Work asked for, raised meanwhile, or the challenge expired: a new one. */
        powNeeded = true;
        powAttempt++;
        join();
      } else if (err.code === "sold_out") {
        joining = false;
        sessionStorage.removeItem(keyName);
        finalAnswer("sold_out", "Sold out", "bad", "Every seat for this event has been sold.");
      } else if (err.transient) {
        /* Retried for as long as the page is open, each time later
         * (backoffMs: at most every 30 s or so): a join whose node died
         * after queueing it is answered only once its claim clears (409
         * idempotency_in_progress for up to idem.inflight_ttl_s, 60 s, then
         * already_in_queue once the intent is applied), and a page that
         * gave up after a few tries left its fan at the join button with
         * the place already taken, unseen. */
        joinAttempt++;
        const d = backoffMs(err, joinAttempt);
        $("join-msg").textContent = (err.status === 0 || err.status === 502 || err.status === 504
          ? "The waiting room did not answer. "
          : err.status === 503 ? "The waiting room is busy right now. "
          : err.status === 409 ? "Your join is still being checked. "
          : "Too many requests came from this account or network just now; we have to wait a moment. ") +
          `Trying again in ${Math.ceil(d / 1000)} s — don't close the page.`;
        setTimeout(join, d);
      } else {
        joining = false;
        joinAttempt = 0;
        joinFormDisabled(false);
        $("join-msg").textContent = err.status === 401
          ? "Your access link has expired. Ask for a new one." : err.message;
        if (err.code === "idempotency_mismatch") sessionStorage.removeItem(keyName);
      }
    }
  }

  /* ---- polling the intent ----------------------------------------------------- */
  function schedule(ms) {
    clearTimeout(pollTimer);
    pollTimer = setTimeout(poll, Math.max(0, ms == null ? 1000 : ms));
  }

  async function poll() {
    pollTimer = null;
    if (!mine) return;
    try {
      const r = await call("GET", `/v1/intents/${mine.intent_id}`, { token });
      /* A final answer came meanwhile (the order's poll): this older one
       * must not take its place. */
      if (answered) return;
      pollAttempt = 0;
      notice("");
      render(r.body);
      if (!FINAL.has(r.body.state)) schedule(r.body.poll_after_ms);
    } catch (err) {
      if (err.status === 404 || err.status === 403) {
        forget();
        notice("We could not find a place in line for you here; you can join below.");
        if (ev) renderJoinable();
        return;
      }
      if (err.status === 401) {
        notice("Your access link has expired. Your place is kept: open a new link to see it.", true);
        return;
      }
      pollAttempt++;
      const d = backoffMs(err, pollAttempt);
      notice(`The waiting room is very busy; checking again in ${Math.ceil(d / 1000)} s. ` +
             "You keep your place.");
      schedule(d);
    }
  }

  /* One status answer -> the page. */
  function render(st) {
    state = st.state;
    setState(st.state);
    switch (st.state) {
    case "prequeued": return renderPrequeued(st);
    case "queued": return renderQueued(st);
    case "waiting": return renderWaiting(st);
    case "reserved":
    case "paying": return renderHeld(st);
    case "purchased": return renderPurchased();
    case "rejected": return renderRejected(st.reason);
    case "expired":
      return finalAnswer("expired", "Your hold ran out", "warn",
        "The seats were held for you, but the time to pay ran out, so they went back to the queue.");
    case "released":
      /* Released by the seller's cancel of the event (reason "cancelled"),
       * not by the fan: say so, and that a charge is refunded. */
      if (st.reason === "cancelled") {
        finalAnswer("released", "The event was cancelled", "bad",
          "The seller cancelled this event, so your hold ended. If you were paying, the charge is refunded.");
        $("again-btn").classList.add("hidden");
        return undefined;
      }
      return finalAnswer("released", "Your seats were released", "warn",
        "You gave your place or seats back. Thank you — they went to the next fan in line.");
    default:
      return undefined;
    }
  }

  function renderQueued(st) {
    show("queue");
    /* No position: the answering node does not watch the join's partition
     * yet (the topics grew since it started). The fan is in line, but its
     * place is not known here: say so rather than "You're next". */
    if (st.position == null) return renderQueuedUnplaced();
    const p = st.position;
    if (mine.max_position == null || p > mine.max_position) { mine.max_position = p; save(); }
    const max = mine.max_position;
    $("queue-h").textContent = "You are in line";
    $("q-place").textContent = p === 0 ? "You're next" : `No. ${num(p + 1)}`;
    /* Every unsold seat held: the fans already waiting for one are ahead too. */
    const waiting = st.seats_all_held ? (st.waiting_ahead ?? 0) : 0;
    $("q-ahead").textContent = num(p + waiting);
    $("q-eta").textContent = p === 0 ? "any moment" : duration(st.eta_seconds);
    $("q-state").textContent = "In line";
    const pct = max > 0 ? Math.round(100 * (max - p) / max) : 100;
    setBar(pct);
    $("q-note").textContent = st.seats_all_held
      ? `Every seat is held by other fans right now, and ${num(waiting)} already wait for one ` +
        "ahead of you. You keep your place in case seats come back."
      : "Keep this page open or come back to it: your place is kept if you reload.";
    $("leave-btn").classList.remove("hidden");
    announceState("queued", "You are in line.");
    announcePosition(p, st.eta_seconds);
  }

  function renderQueuedUnplaced() {
    $("queue-h").textContent = "You are in line";
    $("q-place").textContent = "Not known yet";
    $("q-ahead").textContent = "—";
    $("q-eta").textContent = "—";
    $("q-state").textContent = "In line";
    setBar(0);
    $("q-note").textContent = "You are in line; this server cannot tell your place right now. " +
      "Keep this page open: it asks again.";
    $("leave-btn").classList.remove("hidden");
    announceState("queued", "You are in line.");
  }

  /* Pre-queued: no place yet, a countdown to the draw. */
  let drawTimer = null;
  function renderPrequeued(st) {
    show("queue");
    const at = Date.parse(st.draw_at);
    const tick = () => {
      const left = Math.max(0, Math.ceil((at - Date.now()) / 1000));
      $("q-eta").textContent = left > 0 ? duration(left) : "now";
      $("q-place").textContent = left > 0 ? `Draw in ${duration(left)}` : "Drawing…";
      if (left > 0 && state === "prequeued") drawTimer = setTimeout(tick, 1000);
    };
    clearTimeout(drawTimer);
    tick();
    $("queue-h").textContent = "You are in the pre-queue";
    $("q-ahead").textContent = "–";
    $("q-state").textContent = "Pre-queued";
    setBar(0);
    $("q-note").textContent = "When the sale opens, everyone in the pre-queue is put in line by a " +
      "public draw that anyone can check. Keep this page open; you will see your place then.";
    $("leave-btn").classList.remove("hidden");
    announceState("prequeued", "You are in the pre-queue. Your place is drawn when the sale opens.");
  }

  function renderWaiting(st) {
    show("queue");
    if (st && st.position) {
      /* Drawn: the place the draw gave, waiting for admission or seats. */
      $("queue-h").textContent = "You are in line (drawn)";
      $("q-place").textContent = `No. ${num(st.position)}`;
      $("q-ahead").textContent = num(st.position - 1);
      $("q-eta").textContent = "depends";
      $("q-state").textContent = "Waiting";
      $("q-note").textContent = "Your place came from the pre-queue's draw. Seats go to fans in " +
        "draw order; you keep your place.";
      announceState("waiting", `Your place in line is ${st.position}.`);
      return;
    }
    $("queue-h").textContent = "You are at the front — waiting for seats";
    $("q-place").textContent = "Next";
    $("q-ahead").textContent = "0";
    $("q-eta").textContent = "depends";
    $("q-state").textContent = "Waiting";
    setBar(100);
    $("q-note").textContent = "Every remaining seat is held by another fan right now. Seats that are " +
      "not paid for in time come back and go to fans in line, in order. You keep your place.";
    announceState("waiting", "Every seat is held right now. You are waiting at the front for released seats.");
  }

  function setBar(pct) {
    const bar = $("q-bar");
    bar.setAttribute("aria-valuenow", String(pct));
    bar.firstElementChild.style.width = pct + "%";
  }

  function renderHeld(st) {
    show("held");
    reservation = st.reservation || reservation;
    if (!reservation) return;
    const cur = ev ? ev.currency : reservation.currency;
    $("seats").replaceChildren(...reservation.seats.map((s) =>
      h("tr", {}, h("td", {}, s.section), h("td", {}, s.row), h("td", {}, s.seat),
        h("td", { class: "num" }, money(s.price_cents, reservation.currency || cur)))));
    $("total").textContent = money(reservation.total_cents, reservation.currency || cur);
    startCountdown();
    $("pay-btn").textContent = `Pay ${money(reservation.total_cents, reservation.currency || cur)}`;
    /* A step that waited for this answer (see moneyStep) ends with it; so
     * does a release the intent says a payment overtook. */
    if (moneyStep === "check" || (moneyStep === "release" && st.state === "paying")) moneyStep = null;
    if (!moneyStep && mine.order_id) {
      /* An order from before a reload, or met again: its outcome is the truth. */
      moneyStep = "pay";
      payMsg("Processing your payment…");
      pollOrder();
    } else if (!moneyStep) {
      payMsg(payNote || (st.state === "paying" ? "Processing your payment…" : ""));
    }
    heldButtons();
    announceState(st.state, st.state === "paying" ? "Processing your payment."
      : `Your seats are reserved: ${reservation.seats.length} ${reservation.seats.length === 1 ? "seat" : "seats"}. ` +
        "Pay before the timer runs out.");
  }

  function startCountdown() {
    clearInterval(countdownTimer);
    const tick = () => {
      if (!reservation) return;
      const left = Math.max(0, Math.floor((Date.parse(reservation.expires_at) - Date.now()) / 1000));
      const el = $("countdown");
      el.textContent = `${Math.floor(left / 60)}:${String(left % 60).padStart(2, "0")}`;
      el.classList.toggle("low", left < 60);
      el.setAttribute("aria-label", `${Math.floor(left / 60)} minutes ${left % 60} seconds left to pay`);
      if (left === 0 && state === "reserved") {
        $("pay-msg").textContent = "Time is up — checking with the box office…";
        clearInterval(countdownTimer);
        schedule(1500);
      }
    };
    tick();
    countdownTimer = setInterval(tick, 1000);
  }

  function renderRejected(reason) {
    const text = {
      sold_out: ["Sold out", "Every seat has been sold. Thank you for waiting with us."],
      insufficient_seats: ["Not enough seats left", "There are not enough seats left that match your request."],
      duplicate: ["You already have a place", "You were already in line for this event with another request."],
      sale_closed: ["The sale has closed", "The sale closed before your turn came."],
    }[reason] || ["We could not reserve seats", reason ? `Reason: ${reason}.` : ""];
    finalAnswer(reason === "sold_out" ? "sold_out" : "rejected", text[0], "bad", text[1]);
  }

  function finalAnswer(s, title, tone, detail) {
    answered = true;
    clearTimeout(moneyTimer); /* a checkout or release retry has nothing left to do */
    moneyTimer = null;
    moneyStep = null;
    clearInterval(countdownTimer);
    clearTimeout(pollTimer);
    clearTimeout(eventTimer); /* no more views: see loadEvent */
    eventTimer = null;
    if (s === "sold_out" && ev && ev.status !== "sold_out") {
      /* The view says what the answer did, without asking for it again. */
      ev = { ...ev, status: "sold_out", available: 0,
             tiers: (ev.tiers || []).map((t) => ({ ...t, available: 0 })) };
      renderEvent();
    }
    setState(s);
    show("final");
    const a = $("final-answer");
    a.textContent = title;
    a.className = "answer " + tone;
    $("final-detail").textContent = detail;
    /* Starting over makes no sense once nothing is left to sell. */
    $("again-btn").classList.toggle("hidden", s === "sold_out" || s === "purchased");
    announceState("final:" + s, `${title}. ${detail}`);
  }

  /* ---- checkout and release: the money steps ---------------------------------
   * moneyStep is the step on its way: "pay" from the press until the order's
   * outcome, "release" from the second press until the intent leaves the
   * hold, "check" from a refusal until the intent's next answer says what
   * became of the hold ("settle" while a failed order's cause is read). While one is, the held view's buttons stay off: the
   * intent's polls re-render the view, and a button offered again would
   * start a second chain of requests (a second order, or a release racing
   * the payment). */
  let moneyStep = null;
  let payAttempt = 0, releaseAttempt = 0, moneyTimer = null;
  let payNote = "";          /* the last payment's outcome, said until the next press */
  let pendingSince = 0;      /* when the order was first seen pending */
  const SLOW_PAYMENT_MS = 10000;
  const PAY_BODY = JSON.stringify({ payment_method: "pm_card_visa" });

  function heldBusy() { return moneyStep !== null || state === "paying"; }
  function heldButtons() {
    $("pay-btn").disabled = heldBusy();
    $("release-btn").disabled = heldBusy();
  }
  function payMsg(text) { $("pay-msg").textContent = text; }
  function holdLeftMs() { return reservation ? Date.parse(reservation.expires_at) - Date.now() : 0; }

  /* Asks for the intent now (its answer is the hold's truth after a money
   * step), unless its polls are failing: their retry is due on the backoff
   * then, and asking sooner is the early retry the backoff is there to stop. */
  function askHold(ms) {
    if (pollAttempt === 0) schedule(ms);
  }

  /* Waits for the intent's next answer with the buttons off. */
  function checkHold() {
    moneyStep = "check";
    heldButtons();
    payMsg("Checking with the box office…");
    askHold(0);
  }

  /* Why a transient refusal is retried, and when. */
  function retryText(err, what, d) {
    return (err.status === 0 || err.status === 502 || err.status === 504 ? "The box office did not answer. "
      : err.status === 409 ? `Your ${what} is still being checked. `
      : "The box office is very busy right now. ") + `Trying again in ${Math.ceil(d / 1000)} s — ` +
      "keep this page open.";
  }

  function pay() {
    if (!reservation || heldBusy()) return;
    const rid = reservation.reservation_id;
    /* One key and one body per payment, kept with the intent until its
     * outcome: every retry, after a reload too, is the same request, which
     * makes one order and one charge at most. */
    if (!mine.pay_key || mine.pay_res !== rid) { mine.pay_key = randomKey(); mine.pay_res = rid; }
    mine.pay_body = mine.pay_body || PAY_BODY;
    save();
    moneyStep = "pay";
    payNote = "";
    payAttempt = 0;
    heldButtons();
    payMsg("Starting payment…");
    sendCheckout();
  }

  async function sendCheckout() {
    moneyTimer = null;
    try {
      const r = await call("POST", `/v1/reservations/${mine.pay_res}/checkout`,
        { token, raw: mine.pay_body, idem: mine.pay_key });
      /* An answer slower than the intent's polls: the page said the outcome
       * (tickets, expired, ...) already, and must not go back to "processing". */
      if (answered) return;
      mine.order_id = r.body.order_id;
      save();
      payMsg("Processing your payment…");
      announce("Processing your payment.");
      pollOrder();
    } catch (err) {
      checkoutRefused(err);
    }
  }

  function checkoutRefused(err) {
    if (answered) return;
    if (err.transient && holdLeftMs() > 0) {
      /* Retried with the same key and bytes for as long as the page is open
       * and the hold lasts (backoffMs, never sooner than Retry-After): a
       * page that gave up after a few tries left its fan at the pay button
       * with the payment maybe on its way, or the hold running out unpaid. */
      const d = backoffMs(err, ++payAttempt);
      payMsg(retryText(err, "payment", d) + " You will not be charged twice.");
      moneyTimer = setTimeout(sendCheckout, d);
      return;
    }
    if (err.code === "idempotency_mismatch") { mine.pay_key = null; save(); }
    if (err.transient || err.status === 404 || err.code === "invalid_state" ||
        err.code === "checkout_in_progress") {
      /* The hold ran out, ended, or is being paid already (this key's first
       * request got through and its answer was lost): the intent says which. */
      checkHold();
      return;
    }
    moneyStep = null;
    heldButtons();
    payMsg(err.status === 401 ? "Your access link has expired. Open a new link to pay; your seats stay held until the timer runs out."
      : `Payment could not start: ${err.message}`);
  }

  async function pollOrder() {
    clearTimeout(orderTimer);
    orderTimer = answered ? null : 0;
    if (answered) return; /* (the intent's poll answered first) */
    let o;
    try {
      o = (await call("GET", `/v1/orders/${mine.order_id}`, { token })).body;
    } catch (err) {
      orderAttempt++;
      orderTimer = setTimeout(pollOrder, err.status === 404 ? 2000 : backoffMs(err, orderAttempt));
      return;
    }
    orderAttempt = 0;
    if (o.state === "pending") {
      /* The payments path may be slow or down (it retries the charge under
       * the same key): the page says so, and keeps asking. */
      if (!pendingSince) pendingSince = Date.now();
      payMsg(Date.now() - pendingSince < SLOW_PAYMENT_MS ? "Processing your payment…"
        : "Processing your payment… The payment service is slow right now; it keeps trying, " +
          "and charges you once at most.");
      orderTimer = setTimeout(pollOrder, 1000);
      return;
    }
    orderTimer = null;
    pendingSince = 0;
    await orderSettled(o);
  }

  /* The order's outcome -> the page (the intent's next answer confirms the hold's). */
  async function orderSettled(o) {
    if (o.state === "paid") {
      moneyStep = null;
      clearTimeout(pollTimer);
      showTickets(o);
      return;
    }
    mine.order_id = null;
    mine.pay_key = null;
    save();
    moneyStep = "settle"; /* (a render meanwhile keeps the buttons off) */
    if ((o.state === "refunded" || (o.state === "failed" && o.reason === "cancelled")) &&
        await eventCancelled(true)) {
      cancelledAnswer();
      return;
    }
    if (o.state === "refunded") {
      finalAnswer("refunded", "Payment refunded", "warn",
        "Your payment arrived after your hold ended, so the seats were released and your money refunded.");
      return;
    }
    if (o.reason === "declined" || o.reason === "failed") {
      /* The hold is reserved again until its expires_at: a new press pays
       * with a new key (docs/api.md). */
      moneyStep = null;
      payNote = (o.reason === "declined" ? "Your payment was declined. "
        : "The payment did not go through. ") +
        "Your seats are still held until the timer runs out: try again.";
      payMsg(payNote);
      heldButtons();
      announce(payNote);
      askHold(0);
      return;
    }
    /* expired, not_held, ended: the hold is gone, or another payment has it. */
    checkHold();
  }

  /* The release, the second press on its button: retried as a payment is
   * while the hold lasts; its 202 leaves the buttons off until the intent
   * says released. */
  function release() {
    if (!reservation || heldBusy()) return;
    moneyStep = "release";
    releaseAttempt = 0;
    heldButtons();
    payMsg("Releasing your seats…");
    sendRelease(reservation.reservation_id);
  }

  async function sendRelease(rid) {
    moneyTimer = null;
    try {
      await call("DELETE", `/v1/reservations/${rid}`, { token });
      if (!answered) askHold(300); /* (a poll after the answer is a request for nothing) */
    } catch (err) {
      if (answered) return;
      if (err.transient && holdLeftMs() > 0) {
        const d = backoffMs(err, ++releaseAttempt);
        payMsg(retryText(err, "release", d));
        moneyTimer = setTimeout(() => sendRelease(rid), d);
      } else if (err.status === 401) {
        moneyStep = null;
        heldButtons();
        payMsg("Your access link has expired. Open a new link to release the seats.");
      } else {
        /* Released already (a retry after a lost answer), paying or
         * expired: the intent says which. */
        checkHold();
      }
    }
  }

  function showTickets(order) {
    finalAnswer("purchased", "You have tickets!", "good",
      `Order paid: ${money(order.total_cents, order.currency)}. Show these at the door.`);
    /* Each ticket with its live gate code (web/tickets.js). */
    $("tickets").replaceChildren(...(order.tickets || []).map((t) =>
      Onsale.tickets.card(t, () => token)));
    $("again-btn").classList.add("hidden");
  }

  /* How long the event view may be older than what it says (its
   * Cache-Control max-age, capped at VIEW_AGE_CAP_MS), in ms; 0 unknown. */
  const VIEW_AGE_CAP_MS = 60000;
  const VIEW_REREAD_MS = 500;
  function viewMaxAgeMs(headers) {
    const m = /max-age=(\d+)/.exec((headers && headers.get("Cache-Control")) || "");
    return m ? Math.min(parseInt(m[1], 10) * 1000, VIEW_AGE_CAP_MS) : 0;
  }

  /* Whether the seller cancelled the event (read now, not from the view the
   * page refreshes every few seconds): a paid order is then refunded and
   * its tickets void, a payment in flight fails and is refunded.
   * settle: the page just read something a cancel explains (a refunded
   * order), newer than the view can be: a node serves its cached view for
   * up to the view's max-age (a node that did not send the cancel knows
   * nothing of it until then; the one that did may answer a render begun
   * before the owner applied it), so a view that does not say cancelled is
   * read again every VIEW_REREAD_MS until it does or that max-age (and one
   * more wait) has passed since the first read; then it is believed. */
  async function eventCancelled(settle) {
    const started = Date.now();
    /* the largest max-age seen: a failed read (a blip, a 429) does not end
     * the wait early */
    let maxAgeMs = 0;
    for (;;) {
      try {
        const r = await call("GET", `/v1/events/${eventId}`);
        ev = r.body;
        maxAgeMs = Math.max(maxAgeMs, viewMaxAgeMs(r.headers));
      } catch (err) { /* keep the last view */ }
      if (ev && ev.status === "cancelled") return true;
      if (!settle || Date.now() - started >= maxAgeMs + VIEW_REREAD_MS) return false;
      await new Promise((res) => setTimeout(res, VIEW_REREAD_MS));
    }
  }

  function cancelledAnswer() {
    finalAnswer("refunded", "The event was cancelled", "bad",
      "The seller cancelled this event: any tickets are void and your payment is refunded.");
    $("again-btn").classList.add("hidden");
  }

  async function renderPurchased() {
    clearTimeout(pollTimer);
    if (await eventCancelled()) return cancelledAnswer();
    /* The order's poll may have shown the tickets meanwhile. */
    if (answered) return undefined;
    if (mine && mine.order_id) {
      /* The order's poll shows the tickets: now (a poll waiting for its
       * next second is brought forward), unless one is on its way or its
       * retry is waiting out a backoff. */
      if (orderTimer !== 0 && orderAttempt === 0) pollOrder();
      return undefined;
    }
    finalAnswer("purchased", "You have tickets!", "good", "Your order is paid.");
    try {
      await Onsale.tickets.list($("tickets"), () => token, eventId);
    } catch (e) { /* the answer stands without the list */ }
    $("again-btn").classList.add("hidden");
    return undefined;
  }

  /* Buttons that give something up ask to be pressed twice. busy: whether
   * the button stays off once action has returned (a step it started is
   * still on its way). */
  function twoStep(btn, label, confirmLabel, action, busy = () => false) {
    let armed = null;
    btn.textContent = label;
    btn.addEventListener("click", async (e) => {
      /* A double-click's second click (detail 2) is one gesture with its
       * first, not the second press the confirmation asks for. */
      if (armed && e.detail > 1) return;
      if (!armed) {
        btn.textContent = confirmLabel;
        armed = setTimeout(() => { armed = null; btn.textContent = label; }, 4000);
        return;
      }
      clearTimeout(armed);
      armed = null;
      btn.disabled = true;
      try { await action(); } catch (err) { notice(err.message, true); }
      btn.disabled = busy();
      btn.textContent = label;
    });
  }

  /* ---- signing in ---------------------------------------------------------------- */
  function renderAccount() {
    const loggedIn = token && Onsale.auth.loggedIn(TOKEN_KEY);
    $("account").classList.toggle("hidden", !!token);
    $("logout-btn").classList.toggle("hidden", !loggedIn);
    if (loggedIn) {
      $("who").textContent = `Signed in as ${Onsale.auth.name(TOKEN_KEY) || "fan #" + who.sub}`;
    } else if (who.sub) {
      const exp = who.exp ? new Date(who.exp * 1000).toLocaleTimeString() : "";
      $("who").textContent = `Signed in as fan #${who.sub}${exp ? ` · link valid until ${exp}` : ""}`;
    } else {
      $("who").textContent = "";
    }
  }

  /* Runs a sign-in form's action; a success reloads the page as that user. */
  function accountForm(form, btn, action) {
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      btn.disabled = true;
      $("acct-msg").textContent = "";
      try {
        await action();
        location.reload();
      } catch (err) {
        $("acct-msg").textContent = err.message;
        btn.disabled = false;
      }
    });
  }

  function wireAccount() {
    accountForm($("login-form"), $("login-btn"), () =>
      Onsale.auth.login(TOKEN_KEY, $("login-email").value.trim(), $("login-password").value));
    accountForm($("signup-form"), $("signup-btn"), async () => {
      const email = $("su-email").value.trim(), password = $("su-password").value;
      await Onsale.auth.signup(email, password, $("su-name").value.trim());
      await Onsale.auth.login(TOKEN_KEY, email, password);
    });
    $("logout-btn").addEventListener("click", async () => {
      await Onsale.auth.logout(TOKEN_KEY);
      location.reload();
    });
    Onsale.auth.keepFresh(TOKEN_KEY, (t) => {
      setToken(t);
      if (!t) notice("Your session has ended; sign in again.", true);
      renderAccount();
      if (ev && !mine && !answered) renderJoinable();
    });
  }

  /* ---- the fan's tickets, with their gate codes ------------------------------- */
  async function showMyTickets() {
    try {
      const n = await Onsale.tickets.list($("mytickets-list"), () => token, null);
      $("mytickets").classList.toggle("hidden", n === 0);
    } catch (e) { /* the page works without the list */ }
  }

  /* ---- start ------------------------------------------------------------------ */
  function start() {
    wireAccount();
    renderAccount();
    if (!eventId) {
      $("pick").classList.remove("hidden");
      setState("pick");
      if (token) showMyTickets();
      $("pick-form").addEventListener("submit", (e) => {
        e.preventDefault();
        const id = $("pick-id").value;
        if (/^[1-9][0-9]*$/.test(id)) location.href = `/q/${id}`;
      });
      return;
    }
    if (!token) notice("Sign in or create an account to join the queue.");
    $("join-form").addEventListener("submit", join);
    $("pay-btn").addEventListener("click", pay);
    twoStep($("release-btn"), "Release seats", "Press again to release", release, heldBusy);
    twoStep($("leave-btn"), "Leave the line", "Press again to leave", async () => {
      await call("DELETE", `/v1/intents/${mine.intent_id}`, { token });
      schedule(300);
    });
    $("again-btn").addEventListener("click", () => {
      forget();
      state = null;
      answered = false;
      said.state = null;
      reservation = null;
      moneyStep = null;
      payNote = "";
      notice("");
      if (ev) renderJoinable();
      loadEvent(); /* the views stopped at the final answer */
      $("qty").focus();
    });
    loadEvent();
    if (mine && token) {
      setState("resuming");
      schedule(0);
    }
  }

  /* A login's token may need a refresh before anything else runs. */
  Onsale.auth.resume(TOKEN_KEY).then((t) => {
    setToken(t);
    mine = load();
    start();
  });
})();
