# Tests of the checkout saga (issue 4): ingress + worker + onsale-payments +
# the gateway simulator against the real stack.
onsale_pytest(it_checkout test_checkout.py)
