# Tests of admin/ (integration: onsale_pytest(name file.py)).
# The payment gateway simulator, alone on a free port: needs no stack.
onsale_pytest(it_gateway test_gateway.py)
# The invariant audit's rules (FIFO walk, reachable states, releases) over
# rows built in the test: no PostgreSQL.
onsale_unit(test_audit_rules onsale_audit)
