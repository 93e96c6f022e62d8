# The integration tests' costs: the seconds each took (ASan, -j2, the
# shared 2-core box; 2026-11-30, and CI's figures where CI saw longer),
# rounded. ctest -j starts the costliest first; with no timings of its own
# (a fresh clone, as CI runs) it would start them in the order the area
# files define them, and a long test started last sets the wall's tail
# (CI at fe286a9: it_faults_mid_sale, 97 s, defined late). A test left out
# costs 0 and starts after these, in file order: list it here once it takes
# over ~10 s. Refresh from build-asan/Testing/Temporary/CTestCostData.txt
# (the third field: the mean seconds) after a full run. The RUN_SERIAL tests
# (it_disk_full, now its PostgreSQL case alone; it_eta) run alone whatever
# their cost: when nothing else runs, which is the end of the run.
set(ONSALE_TEST_COSTS
    it_faults_mid_sale 97 it_web_crowd 96 it_kafka_hang 85 it_authz_matrix 70
    stack_from_private_dir 60 it_tickets 59 it_sim 53 it_ingress_active_key 45
    it_web 40 stack_as_user 39 it_disk_full_kafka 45 it_ingress_hostile 37
    it_fairness 36 it_web_accounts 35 it_eta 34 it_checkout 34 it_ingress_join_batch 34
    it_event_view 32 it_secrets 30 it_ingress_hostile_gate 29 it_ingress_direct_replies 28
    it_control_lane 27 it_redis_restart 27 it_sale_rules 27 it_redis_hang 27 it_search 25
    it_worker_fencing 47 it_ingress_http 23 it_worker_crash 22 it_search_index 22
    it_ingress_small_fixes 22 it_payment_replay 21 it_accounts 18 it_worker_pg_hang 66
    it_web_view 17 it_pg_connection_loss 16 it_pow 16 it_payment_concurrency 15
    it_worker_fifo 15 it_checkout_round 14 it_ingress_worker 12 it_web_tickets 36
    it_ingress_crash_join 11 it_contract_responses 10 it_web_cancel 64
    it_redis_stall_republish 40 it_ingress_back_to_back 12 it_hostile_costs 10
    it_write_limits 8 it_event_scanners 8 it_draw_cache 12 it_topic_grow 22
    it_ingress_unread 80 it_web_faults 120 it_newcomer_docs 12 it_ingress_dead_node_join 92)
# scripts/test runs unit, integration and ha tests in one ctest run. The ha
# chain (tests/ha.cmake) needs no cost to start first: ctest puts a
# fixture's setup and the tests that require it before the others. Its
# cleanup is not a dependency of anything, so it sorts with the rest: cost
# 1000 starts it the moment the last ha test ends (not in the run's tail,
# the ha stack held up until then). test_httpd (unit, 13 s) starts before
# the short tests rather than after them.
list(APPEND ONSALE_TEST_COSTS ha_stack_down 1000 test_httpd 13)
while(ONSALE_TEST_COSTS)
  list(POP_FRONT ONSALE_TEST_COSTS name cost)
  set_tests_properties(${name} PROPERTIES COST ${cost})
endwhile()
