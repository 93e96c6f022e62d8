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
# Two tests of one file, by complementary filters (a case added to the file
# runs in one of them): the private broker's volume (~45 s) beside the
# others, as it_kafka_hang's private brokers run; every other case alone.
onsale_pytest(it_disk_full_kafka test_disk_full.py -k kafka_volume_full)
onsale_pytest(it_disk_full test_disk_full.py -k "not kafka_volume_full")
# A private broker stopped (SIGSTOP) mid-sale: no fan gets two places.
onsale_pytest(it_kafka_hang test_kafka_hang.py)
onsale_pytest(it_topic_grow test_topic_grow.py)
# Alone: a full tablespace volume makes the shared PostgreSQL fail other
# tests' statements (a backend evicting one of its dirty pages, the
# checkpoint a DROP DATABASE forces). The broker's case touches only its own
# volume and broker (its JVM start is given 150 s, ONSALE_KAFKA_START_S).
set_tests_properties(it_disk_full PROPERTIES RUN_SERIAL TRUE)
