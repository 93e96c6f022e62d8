# Tests of admin/sim and admin/audit (integration: a CI-sized flash sale and
# the audit's control tests; see tests/integration/test_sim.py).
onsale_pytest(it_sim test_sim.py)
