# Tests of common/ (unit: onsale_unit(name libs...); integration: onsale_pytest(name file.py))
onsale_unit(test_auth onsale_common PkgConfig::JWT PkgConfig::CRYPTO)
onsale_unit(test_password onsale_common)
onsale_unit(test_metrics onsale_common m)

# schemas/openapi.yaml must describe every endpoint of the API contract
# (../shared/API.md, next to the source tree) and be a well-formed OpenAPI 3.
add_test(NAME openapi_in_step
         COMMAND ${ONSALE_PYTHON} ${CMAKE_SOURCE_DIR}/tests/unit/check_openapi.py
                 ${CMAKE_SOURCE_DIR}/../shared/API.md ${CMAKE_SOURCE_DIR}/schemas/openapi.yaml)
set_tests_properties(openapi_in_step PROPERTIES LABELS unit TIMEOUT 60)
