# The deployment files (examples/deploy): the Dockerfiles read with the Dockerfile grammar
# and the server's own argument parser, the Kubernetes manifest deserialized into the
# client's models with unknown keys rejected (python3-yaml, python3-kubernetes). No
# container tool or cluster runs here; docs/server.md says what is and is not checked.
# Also three servers behind HAProxy with examples/haproxy/petmatte.cfg: kill, restart
# and drain under load (skipped with a reason when haproxy is not installed).
if(TARGET petmatte_server)
  add_test(NAME pytest_deploy
           COMMAND ${PETMATTE_TEST_PYTHON} -m pytest -q -p no:cacheprovider -rs ${CMAKE_CURRENT_SOURCE_DIR}/deploy
           WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
  set_tests_properties(pytest_deploy PROPERTIES FIXTURES_REQUIRED test_models TIMEOUT 600
                       ENVIRONMENT "PETMATTE_SERVER=$<TARGET_FILE:petmatte_server>;PETMATTE_LIBRARY=$<TARGET_FILE:petmatte>;PETMATTE_TEST_MODELS=${PETMATTE_TEST_MODELS};PYTHONDONTWRITEBYTECODE=1")
endif()
