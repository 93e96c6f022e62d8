/* tickets.js - a ticket's live gate code on the fan page (docs/tickets.md).
 *
 * Onsale.tickets.card(ticket, getToken) returns an element that shows the
 * ticket's seat, its current 8-digit code and QR (GET
 * /v1/tickets/{id}/code) and a countdown to the next step, and fetches the
 * next code when the step turns. The QR is the server's SVG shown through
 * an <img> data: URL, so nothing in it can run. A card stops refreshing once
 * it left the page. Onsale.tickets.list(container, getToken, eventId) fills
 * container with cards for the user's valid tickets (of one event, or all). */
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
    const el = h("div", { class: "ticket", "data-ticket-id": String(t.ticket_id) },
      h("strong", {}, seatText(t)),
      h("span", { class: "muted small" }, `Ticket ${t.ticket_id}${t.event_name ? " · " + t.event_name : ""}`),
      qr, code, left);
    let until = 0, attempt = 0, timer = null, ticker = null;

    function tick() {
      if (!el.isConnected && timer) { stop(); return; }
      const s = Math.max(0, Math.ceil((until - Date.now()) / 1000));
      /* (no code: the card's message stays) */
      if (until) left.textContent = `New code in ${s} s · show it at the gate`;
    }
    function stop() { clearTimeout(timer); clearInterval(ticker); timer = ticker = null; }

    async function refresh() {
      if (timer && !el.isConnected) { stop(); return; }
      try {
        const b = (await call("GET", `/v1/tickets/${t.ticket_id}/code`, { token: getToken() })).body;
        attempt = 0;
        code.textContent = b.code;
        el.dataset.step = String(b.step);
        qr.src = "data:image/svg+xml;charset=utf-8," + encodeURIComponent(b.qr_svg);
        until = Date.now() + b.seconds_left * 1000;
        if (b.admitted_at) left.dataset.admitted = b.admitted_at;
        timer = setTimeout(refresh, b.seconds_left * 1000 + 150);
      } catch (err) {
        if (err.code === "ticket_change_pending") {
          /* A transfer or cancel is on its way to the box office: no code
           * until it is applied (then 404 or ticket_not_valid) or dropped
           * (the code again). It clears by itself: asked again after its
           * Retry-After, as every refusal that says when. */
          code.textContent = "–";
          qr.removeAttribute("src");
          until = 0;
          left.textContent = "A change of this ticket is on its way; its code comes back if it is not made.";
          timer = setTimeout(refresh, backoffMs(err, ++attempt));
          return;
        }
        if (err.status === 404 || err.status === 409) {
          /* Transferred away, cancelled or voided: no code to show. */
          code.textContent = "–";
          qr.removeAttribute("src");
          until = 0;
          left.textContent = err.status === 409 ? "This ticket is no longer valid." :
            "This ticket is no longer yours.";
          stop();
          return;
        }
        timer = setTimeout(refresh, backoffMs(err, ++attempt));
      }
      tick();
    }
    ticker = setInterval(tick, 1000);
    timer = setTimeout(refresh, 0);
    return el;
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
