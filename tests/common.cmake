# Tests of common/ (unit: onsale_unit(name libs...); integration: onsale_pytest(name file.py))
onsale_unit(test_auth onsale_common PkgConfig::JWT PkgConfig::CRYPTO)
onsale_unit(test_password onsale_common)
onsale_unit(test_metrics onsale_common m)
# The grow-by-doubling helper.
onsale_unit(test_vec onsale_common)
onsale_unit(test_utc onsale_common)
# The word-at-a-time hash of the token cache and the ETags.
onsale_unit(test_hash onsale_common)
onsale_unit(test_recycle onsale_common)
# JSON text without a jansson tree (result documents, catalog pages).
onsale_unit(test_jsonw onsale_common PkgConfig::JANSSON)
# Unpadded base64url (JWT segments, catalog cursors).
onsale_unit(test_b64url onsale_common)
# Keyed HMAC-SHA256 contexts per thread (public ids, JWT signatures).
onsale_unit(test_hmac onsale_common PkgConfig::CRYPTO)
# The binary heap (hold expiries, gateway delays, simulator timers).
onsale_unit(test_heap onsale_common)
# The HTTP client against a scripted server (tests/unit/fake_http.h).
onsale_unit(test_httpc onsale_common)
# The HTTP server module, and the workers' /metrics endpoint served through it.
onsale_unit(test_httpd onsale_common PkgConfig::JANSSON)
target_sources(test_httpd PRIVATE ${CMAKE_SOURCE_DIR}/workers/httpd.c)
# The join body's common shape read without jansson, against jansson.
onsale_unit(test_httpd_sole_int onsale_common PkgConfig::JANSSON)
onsale_unit(test_pgarr onsale_common)
# Stop signals reach the process's handler; SIGPIPE is ignored.
onsale_unit(test_signals onsale_common)
onsale_unit(test_pg onsale_pg)
# No process starts on a development default secret unless dev_mode is on.
onsale_pytest(it_secrets test_secrets.py)

# The HTTP contract is true: schemas/openapi.yaml against ingress's own route
# table and error codes and against docs/api.md (all inside the repository).
add_test(NAME openapi_in_step
         COMMAND ${ONSALE_PYTHON} ${CMAKE_SOURCE_DIR}/tests/unit/check_openapi.py ${CMAKE_SOURCE_DIR})
set_tests_properties(openapi_in_step PROPERTIES LABELS unit TIMEOUT 60)
# ... and the check catches drift (a route, an error code or a status missing).
add_test(NAME openapi_checker
         COMMAND ${ONSALE_PYTHON} -m pytest -q -p no:cacheprovider
                 ${CMAKE_SOURCE_DIR}/tests/unit/test_check_openapi.py)
set_tests_properties(openapi_checker PROPERTIES LABELS unit TIMEOUT 120)
# Every process survives PostgreSQL terminating its sessions (common/pg).
onsale_pytest(it_pg_connection_loss test_pg_connection_loss.py)
# The accept gate's request-stream scanner: what reaches nng 1.5.2 and what
# is refused before it (common/httpd_head.h).
onsale_unit(test_httpd_head onsale_common)
