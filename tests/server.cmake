# pytest suite of the example HTTP host (tests/server): the API over real HTTP, and the
# demo page in headless Chromium (skipped with a reason when chromium is not installed).
if(TARGET petmatte_server AND EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/server)
  add_test(NAME pytest_server
           COMMAND ${PETMATTE_TEST_PYTHON} -m pytest -q -p no:cacheprovider -rs ${CMAKE_CURRENT_SOURCE_DIR}/server
           WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
  set_tests_properties(pytest_server PROPERTIES FIXTURES_REQUIRED test_models TIMEOUT 600
                       ENVIRONMENT "PETMATTE_SERVER=$<TARGET_FILE:petmatte_server>;PETMATTE_TEST_MODELS=${PETMATTE_TEST_MODELS};PETMATTE_TEST_ARTIFACTS=${CMAKE_CURRENT_BINARY_DIR};PYTHONDONTWRITEBYTECODE=1")
endif()
