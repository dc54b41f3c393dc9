# The soak of petmatte-server (tools/soak.py, docs/server.md "Soak"): its short form, one
# minute of good, odd and hostile uploads at a fixed rate on the slow96 test model (real
# convolutions, cheap on 2 cores) with the malloc settings of the deployment images; it
# fails on any unexpected answer, on RSS growth after the first 20 s, or on threads and
# descriptors left behind. Latency is reported, not gated: the CPUs are shared with the
# other tests. And the tool's own unit tests (windows, verdict, inputs, loopback only).
if(TARGET petmatte_server AND NOT PETMATTE_SANITIZE)
  add_test(NAME server_soak_keeps_memory_flat_and_answers_every_upload
           COMMAND ${PETMATTE_TEST_PYTHON} ${PROJECT_SOURCE_DIR}/tools/soak.py
                   --server $<TARGET_FILE:petmatte_server> --model ${PETMATTE_TEST_MODELS}/slow96.pt
                   --device cpu --duration 60 --rate 1 --no-latency-gate
                   --json ${CMAKE_CURRENT_BINARY_DIR}/soak_short.json)
  set_tests_properties(server_soak_keeps_memory_flat_and_answers_every_upload PROPERTIES
                       FIXTURES_REQUIRED test_models TIMEOUT 400
                       ENVIRONMENT "GLIBC_TUNABLES=glibc.malloc.mmap_threshold=1048576:glibc.malloc.arena_max=4;PYTHONDONTWRITEBYTECODE=1")
endif()
add_test(NAME pytest_soak_tool
         COMMAND ${PETMATTE_TEST_PYTHON} -m pytest -q -p no:cacheprovider ${CMAKE_CURRENT_SOURCE_DIR}/soak
         WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(pytest_soak_tool PROPERTIES ENVIRONMENT "PYTHONDONTWRITEBYTECODE=1")
