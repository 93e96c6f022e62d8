# Tests of scripts/ (the local stack and the README's commands).

# The stack comes up from a checkout in a mode-0700 folder (as root:
# PostgreSQL runs as 'postgres', who cannot enter it), on ports of its own.
add_test(NAME stack_from_private_dir
         COMMAND ${CMAKE_SOURCE_DIR}/tests/integration/stack_from_private_dir.sh ${CMAKE_BINARY_DIR}/bin)
set_tests_properties(stack_from_private_dir PROPERTIES LABELS integration TIMEOUT 240)

# The same as a user who is not root (a user with sudo running the README's
# commands; CI, as root, makes a throwaway user): PostgreSQL, Kafka and Redis
# run as that user from its 0700 home, and `down` leaves none of its
# processes behind.
add_test(NAME stack_as_user
         COMMAND ${CMAKE_SOURCE_DIR}/tests/integration/stack_from_private_dir.sh --as-new-user
                 ${CMAKE_BINARY_DIR}/bin)
set_tests_properties(stack_as_user PROPERTIES LABELS integration TIMEOUT 300)
