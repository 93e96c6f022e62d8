# The production topology on one box (scripts/stack --ha, issue 13).
# Unit: the client-address trust and the Prometheus rules (no services).
onsale_unit(test_client_addr onsale_ingress)
find_program(ONSALE_PROMTOOL promtool)
if(ONSALE_PROMTOOL)
  add_test(NAME ha_prometheus_rules
           COMMAND ${ONSALE_PROMTOOL} check rules ${CMAKE_SOURCE_DIR}/scripts/ha/rules.yml)
  set_tests_properties(ha_prometheus_rules PROPERTIES LABELS unit TIMEOUT 60)
endif()

# A cancel through any ingress node (two nodes on the shared single-node stack).
onsale_pytest(it_cancel_any_node test_ha_cancel_any_node.py)

# Label "ha": tests against `scripts/stack --ha up` (its own ports and
# .state/ha, beside the single-node stack), brought up once by the fixture
# ha_stack with the binaries under test and taken down after the last one.
# The fixture starts from a clean state (reset): no leftovers of an earlier
# run (a stopped replica, a third worker, old logs).
add_test(NAME ha_stack_up COMMAND sh -c "${CMAKE_SOURCE_DIR}/scripts/stack --ha reset && ${CMAKE_SOURCE_DIR}/scripts/stack --ha up")
add_test(NAME ha_stack_down COMMAND ${CMAKE_SOURCE_DIR}/scripts/stack --ha down)
set_tests_properties(ha_stack_up PROPERTIES FIXTURES_SETUP ha_stack LABELS ha TIMEOUT 600
                     ENVIRONMENT "ONSALE_BUILD=${CMAKE_BINARY_DIR}")
set_tests_properties(ha_stack_down PROPERTIES FIXTURES_CLEANUP ha_stack LABELS ha TIMEOUT 180
                     ENVIRONMENT "ONSALE_BUILD=${CMAKE_BINARY_DIR}")
function(onsale_ha_pytest name file)
  add_test(NAME ${name}
           COMMAND ${ONSALE_PYTHON} -m pytest -q -x -s -p no:cacheprovider ${CMAKE_CURRENT_SOURCE_DIR}/integration/${file})
  set_tests_properties(${name} PROPERTIES LABELS ha TIMEOUT 720 FIXTURES_REQUIRED ha_stack
                       RESOURCE_LOCK ha_stack
                       ENVIRONMENT "ONSALE_BUILD_BIN=${CMAKE_BINARY_DIR}/bin")
endfunction()
onsale_ha_pytest(ha_stack test_ha_stack.py)
onsale_ha_pytest(ha_links test_ha_links.py)
onsale_ha_pytest(ha_trail test_ha_trail.py)
onsale_ha_pytest(ha_failures test_ha_failures.py)
onsale_unit(test_clock_skew onsale_worker_core)
onsale_pytest(it_clock_skew test_ha_clock_skew.py)
