# Tests of the checkout saga (issue 4): ingress + worker + onsale-payments +
# the gateway simulator against the real stack.
onsale_pytest(it_checkout test_checkout.py)
# Payment results re-sent and applied in one batch, or across owners (issue 14 item 4).
onsale_pytest(it_payment_replay test_payment_replay.py)
onsale_pytest(it_payment_concurrency test_payment_concurrency.py)
# Sale rules (issue 14 items 6-7): the owner alone writes sale state; event
# cancel voids and refunds, refund cut-off, event schedule, ended events.
onsale_pytest(it_sale_rules test_sale_rules.py)
# Tickets at the gate (issue 11): rotating codes, scans, admission once.
onsale_pytest(it_tickets test_tickets.py)
# Hostile authenticated clients: every route as the wrong principal (IDOR,
# another seller, roles, tokens) and the races on tickets and holds.
onsale_pytest(it_authz_matrix test_authz_matrix.py)
# The payments relay (classify, backoff, what a row becomes) and the breaker,
# without services (issue 9 item 5).
onsale_unit(test_relay onsale_payments_core)
onsale_unit(test_breaker onsale_payments_core)
# Checkouts in the checkout claimer's rounds answer as one at a time
# (checkout.round_max 0 is the control; issue 12).
onsale_pytest(it_checkout_round test_checkout_round.py)
