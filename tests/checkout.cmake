# Tests of the checkout saga (issue 4): ingress + worker + onsale-payments +
# the gateway simulator against the real stack.
onsale_pytest(it_checkout test_checkout.py)
# A payment result re-sent and applied twice in one batch (issue 14 item 4).
onsale_pytest(it_payment_replay test_payment_replay.py)
