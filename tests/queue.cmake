# Tests of queue/ (unit: onsale_unit(name libs...); integration: onsale_pytest(name file.py))
onsale_unit(test_intent_id onsale_queue)
onsale_unit(test_draw onsale_queue)
onsale_unit(test_msg_encode onsale_queue PkgConfig::JANSSON)
onsale_unit(test_producer_outcome onsale_queue)
onsale_unit(test_kconf onsale_queue)
onsale_integration(test_status onsale_queue)
onsale_pytest(it_pipeline test_pipeline.py)

# The shared vocabularies (queue/states.h): conversions, and the lists held
# against the migrations' CHECKs, schemas/openapi.yaml and schemas/messages.
onsale_unit(test_states onsale_queue)
add_executable(vocab_dump unit/vocab_dump.c)
target_link_libraries(vocab_dump PRIVATE onsale_queue)
add_test(NAME vocab_in_step
         COMMAND ${ONSALE_PYTHON} ${CMAKE_SOURCE_DIR}/tests/unit/check_vocab.py
                 $<TARGET_FILE:vocab_dump> ${CMAKE_SOURCE_DIR})
set_tests_properties(vocab_in_step PROPERTIES LABELS unit TIMEOUT 60)
# ... and the check catches drift (a state, a limit or an enum that differs).
add_test(NAME vocab_checker
         COMMAND ${ONSALE_PYTHON} -m pytest -q -p no:cacheprovider
                 ${CMAKE_SOURCE_DIR}/tests/unit/test_check_vocab.py)
set_tests_properties(vocab_checker PROPERTIES LABELS unit TIMEOUT 120
                     ENVIRONMENT "ONSALE_VOCAB_DUMP=$<TARGET_FILE:vocab_dump>")
# Disk full (docs/scaling.md "Failures"): a private broker's and a tablespace's
# small tmpfs filled; needs root to mount (CI runs as root), fails otherwise.
onsale_pytest(it_disk_full test_disk_full.py)
# A private broker stopped (SIGSTOP) mid-sale: no fan gets two places.
onsale_pytest(it_kafka_hang test_kafka_hang.py)
onsale_pytest(it_topic_grow test_topic_grow.py)
# Alone: a full tablespace volume makes the shared PostgreSQL fail other
# tests' statements (a backend evicting one of its dirty pages, the
# checkpoint a DROP DATABASE forces), and the broker's JVM start wants the cores.
set_tests_properties(it_disk_full PROPERTIES RUN_SERIAL TRUE)
