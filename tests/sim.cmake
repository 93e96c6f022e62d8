# Tests of admin/sim and admin/audit (integration: a CI-sized flash sale and
# the audit's control tests; see tests/integration/test_sim.py).
onsale_pytest(it_sim test_sim.py)
# A sale with the worker, payments and an ingress killed, Redis restarted and
# PostgreSQL paused mid-sale: the audit, one place per fan, polls = PostgreSQL.
onsale_pytest(it_faults_mid_sale test_faults_mid_sale.py)
# The simulator's request lanes: a fan's requests never wait behind other
# fans' joins in the simulator (unit, a fake pool).
onsale_unit(test_sim_lanes onsale_sim_lanes)
