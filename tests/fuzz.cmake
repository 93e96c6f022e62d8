# The fuzz targets' corpora as unit tests (docs/fuzzing.md): every target of
# tests/fuzz is also built with a plain main (fuzz/replay_main.c) in every
# build, and replays tests/fuzz/corpus/<target>/, where each crash the fuzzer
# found is kept next to the seeds. The crashes' own regression tests are
# Check suites in unit/test_fuzz_regressions.c.
function(onsale_fuzz_replay name)
  add_executable(${name}_replay fuzz/${name}.c fuzz/replay_main.c)
  target_link_libraries(${name}_replay PRIVATE ${ARGN})
  add_test(NAME ${name}_replay
           COMMAND ${name}_replay ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus/${name})
  set_tests_properties(${name}_replay PROPERTIES LABELS unit TIMEOUT 120)
endfunction()

onsale_fuzz_replay(fuzz_msg_decode onsale_queue)
onsale_fuzz_replay(fuzz_jwt onsale_common PkgConfig::JWT PkgConfig::CRYPTO)
onsale_fuzz_replay(fuzz_config onsale_common)
onsale_fuzz_replay(fuzz_http_head onsale_common)
onsale_fuzz_replay(fuzz_http_gate onsale_common)
onsale_fuzz_replay(fuzz_request onsale_ingress)

onsale_unit(test_fuzz_regressions onsale_ingress onsale_queue onsale_common PkgConfig::CRYPTO)
