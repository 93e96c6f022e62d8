/* tickets.js - a ticket's live gate code on the fan page (docs/tickets.md).
 *
 * Onsale.tickets.card(ticket, getToken) returns an element that shows the
 * ticket's seat, its current 8-digit code and QR (GET
 * /v1/tickets/{id}/code) and a countdown to the next step, and fetches the
 * next code when the step turns. The QR is the server's SVG shown through
 * an <img> data: URL, so nothing in it can run. A card stops refreshing once
 * it left the page. Onsale.tickets.list(container, getToken, eventId) fills
 * container with cards for the user's valid tickets (of one event, or all).
 *
 * A card also transfers its ticket (to a signed-up fan's email) or cancels
 * it for a refund (POST /v1/tickets/{id}/transfer|cancel), each a second
 * press away. A change refused for a while (no answer, 429, 5xx) is sent
 * again on the backoff, as long as the page is open, with its controls off;
 * from its 202 (or a 409 ticket_change_pending: a change is on its way,
 * maybe this one after a lost answer) the code route says the outcome:
 * gone (404), void (ticket_not_valid), or the code again (not made). */
"use strict";

Onsale.tickets = (() => {
  const { call, h, backoffMs } = Onsale;

  function seatText(t) {
    const s = t.seat || {};
    return `Section ${s.section} · Row ${s.row} · Seat ${s.seat}`;
  }

  function card(t, getToken) {
    const code = h("div", { class: "code", "data-ticket": String(t.ticket_id) }, "········");
    const qr = h("img", { class: "qr", alt: "QR code of the ticket's current gate code",
                          width: "180", height: "180" });
    const left = h("span", { class: "muted small code-left" }, "");
    /* A change taken: the code is read now; when a read is on its way (its
     * answer may predate the change), right after it if it brings a code: a
     * second read started beside it would be a second chain of timers for
     * good. A read refused (or backing off) keeps its backoff: the next read
     * comes after the change anyway, and no sooner than Retry-After. */
    const ch = changes(t, getToken, () => {
      if (reading) again = true;
      else if (attempt === 0) next(0);
    });
    const el = h("div", { class: "ticket", "data-ticket-id": String(t.ticket_id) },
      h("strong", {}, seatText(t)),
      h("span", { class: "muted small" }, `Ticket ${t.ticket_id}${t.event_name ? " · " + t.event_name : ""}`),
      qr, code, left, ch.el);
    let until = 0, attempt = 0, timer = null, ticker = null, reading = false, again = false;
    function next(ms) { clearTimeout(timer); timer = setTimeout(refresh, ms); }

    function tick() {
      if (!el.isConnected && timer) { stop(); return; }
      const s = Math.max(0, Math.ceil((until - Date.now()) / 1000));
      /* (no code: the card's message stays) */
      if (until) left.textContent = `New code in ${s} s · show it at the gate`;
    }
    function stop() { clearTimeout(timer); clearInterval(ticker); timer = ticker = null; }

    async function refresh() {
      if (timer && !el.isConnected) { stop(); return; }
      const asked = Date.now();
      let b;
      reading = true;
      try {
        b = (await call("GET", `/v1/tickets/${t.ticket_id}/code`, { token: getToken() })).body;
      } catch (err) {
        reading = again = false;
        refused(err, asked);
        return;
      }
      reading = false; /* (then nothing awaits until next(): see ch) */
      attempt = 0;
      code.textContent = b.code;
      el.dataset.step = String(b.step);
      qr.src = "data:image/svg+xml;charset=utf-8," + encodeURIComponent(b.qr_svg);
      until = Date.now() + b.seconds_left * 1000;
      if (b.admitted_at) left.dataset.admitted = b.admitted_at;
      ch.outcome("kept", asked);
      next(again ? 0 : b.seconds_left * 1000 + 150);
      again = false;
      tick();
    }

    function refused(err, asked) {
      if (err.code === "ticket_change_pending") {
        /* A transfer or cancel is on its way to the box office: no code
         * until it is applied (then 404 or ticket_not_valid) or dropped
         * (the code again). It clears by itself: asked again after its
         * Retry-After, as every refusal that says when. */
        code.textContent = "–";
        qr.removeAttribute("src");
        until = 0;
        left.textContent = "A change of this ticket is on its way; its code comes back if it is not made.";
        ch.outcome("pending", asked);
        next(backoffMs(err, ++attempt));
        return;
      }
      if (err.status === 404 || err.status === 409) {
        /* Transferred away, cancelled or voided: no code to show. */
        code.textContent = "–";
        qr.removeAttribute("src");
        until = 0;
        left.textContent = err.status === 409 ? "This ticket is no longer valid." :
          "This ticket is no longer yours.";
        ch.outcome(err.status === 409 ? "void" : "gone", asked);
        stop();
        return;
      }
      next(backoffMs(err, ++attempt));
      tick();
    }
    ticker = setInterval(tick, 1000);
    timer = setTimeout(refresh, 0);
    return el;
  }

  /* A card's transfer and cancel controls. onSent: the change was taken
   * (or one is on its way): the card reads its code now. The card reports
   * each code answer to outcome(): "kept" (a code: no change made),
   * "pending", "gone" (404), "void". */
  function changes(t, getToken, onSent) {
    const id = t.ticket_id;
    const email = h("input", { type: "email", class: "xfer-email", placeholder: "their@email",
                               "aria-label": `Email of the fan to give ticket ${id} to` });
    const xfer = h("button", { type: "button", class: "secondary xfer-btn" }, "Transfer");
    const cancel = h("button", { type: "button", class: "danger cancel-btn" }, "Cancel for a refund");
    const msg = h("span", { class: "muted small change-msg", role: "status" }, "");
    const acts = h("div", { class: "actions ticket-actions" }, email, xfer, cancel);
    const el = h("div", {}, acts, msg);
    /* busy: "transfer" | "cancel" on its way; sentAt: when it was taken (0: not yet) */
    let busy = null, attempt = 0, sentAt = 0;
    const controls = (off) => { for (const c of [email, xfer, cancel]) c.disabled = off; };

    async function send(kind, body) {
      try {
        await call("POST", `/v1/tickets/${id}/${kind}`, { token: getToken(), body });
        sentAt = Date.now();
        msg.textContent = kind === "transfer" ? "Transfer on its way…" : "Cancel on its way…";
        onSent();
      } catch (err) {
        if (err.code === "ticket_change_pending" || err.code === "not_found" || err.code === "ticket_not_valid") {
          /* A change is on its way or made (this one, if an answer was
           * lost): the code route says which; not sent again. */
          sentAt = Date.now();
          msg.textContent = "Checking with the box office…";
          onSent();
        } else if (err.transient) {
          const d = backoffMs(err, ++attempt);
          msg.textContent = (err.status === 0 || err.status >= 502 ? "The box office did not answer. "
            : "The box office is very busy right now. ") +
            `Trying again in ${Math.ceil(d / 1000)} s — keep this page open.`;
          setTimeout(() => send(kind, body), d);
        } else {
          busy = null;
          controls(false);
          msg.textContent = err.message;
        }
      }
    }
    function start(kind, body) {
      if (busy) return;
      busy = kind;
      attempt = 0;
      sentAt = 0;
      controls(true);
      msg.textContent = kind === "transfer" ? "Transferring…" : "Cancelling…";
      send(kind, body);
    }
    /* Giving a ticket up asks for a second press (within 4 s). */
    function twice(btn, label, confirm, go) {
      let armed = null;
      btn.addEventListener("click", (e) => {
        /* A double-click's second click (detail 2) is one gesture with its
         * first, not the second press the confirmation asks for. */
        if (busy || (armed && e.detail > 1)) return;
        if (!armed) {
          if (!go(false)) return;
          btn.textContent = confirm;
          armed = setTimeout(() => { armed = null; btn.textContent = label; }, 4000);
          return;
        }
        clearTimeout(armed);
        armed = null;
        btn.textContent = label;
        go(true);
      });
    }
    twice(xfer, "Transfer", "Press again to transfer", (now) => {
      const to = email.value.trim();
      if (!to) { msg.textContent = "Enter the email your friend signed up with."; return false; }
      if (now) start("transfer", { to_email: to });
      return true;
    });
    twice(cancel, "Cancel for a refund", "Press again to cancel", (now) => {
      if (now) start("cancel");
      return true;
    });

    /* what a code answer said; asked: when its request was sent (an answer
     * to a request sent before the change was taken says nothing of it) */
    function outcome(what, asked) {
      if (what === "gone" || what === "void") {
        acts.classList.add("hidden");
        msg.textContent = busy === "cancel" && what === "void" ? "Cancelled: your refund is on its way."
          : busy === "transfer" && what === "gone" ? "Transferred." : "";
        busy = null;
      } else if (what === "pending") {
        controls(true);             /* (another change is refused meanwhile) */
      } else if (!busy) {
        controls(false);
      } else if (sentAt && asked >= sentAt) {
        /* the box office dropped the change: the ticket stays */
        msg.textContent = `The ${busy} was not made: the ticket is still yours.`;
        busy = null;
        controls(false);
      }
    }
    return { el, outcome };
  }

  async function list(container, getToken, eventId) {
    const out = [];
    let cursor = null;
    for (let page = 0; page < 5; page++) {
      const q = cursor ? `?limit=100&cursor=${encodeURIComponent(cursor)}` : "?limit=100";
      const b = (await call("GET", "/v1/me/tickets" + q, { token: getToken() })).body;
      for (const t of b.tickets || [])
        if (t.status === "valid" && (!eventId || String(t.event_id) === String(eventId))) out.push(t);
      cursor = b.next_cursor;
      if (!cursor) break;
    }
    container.replaceChildren(...out.map((t) => card(t, getToken)));
    return out.length;
  }

  return { card, list };
})();
