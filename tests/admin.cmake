# Tests of admin/ (integration: onsale_pytest(name file.py)).
# The payment gateway simulator, alone on a free port: needs no stack.
onsale_pytest(it_gateway test_gateway.py)
