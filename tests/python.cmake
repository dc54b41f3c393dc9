# pytest suites (binding, CLI, models) against the built library and test models.
set(PETMATTE_PYTEST_ENV
  "PETMATTE_LIBRARY=$<TARGET_FILE:petmatte>"
  "PETMATTE_TEST_MODELS=${PETMATTE_TEST_MODELS}"
  "PYTHONPATH=${PROJECT_SOURCE_DIR}/bindings/python"
  "PYTHONDONTWRITEBYTECODE=1")
if(TARGET petmatte_cli)
  list(APPEND PETMATTE_PYTEST_ENV "PETMATTE_CLI=$<TARGET_FILE:petmatte_cli>")
endif()
foreach(suite binding cli models)
  if(suite STREQUAL "binding")
    set(path ${CMAKE_CURRENT_SOURCE_DIR}/python/test_binding.py)
  elseif(suite STREQUAL "cli")
    set(path ${CMAKE_CURRENT_SOURCE_DIR}/cli)
  else()
    set(path ${CMAKE_CURRENT_SOURCE_DIR}/python)
  endif()
  if(EXISTS ${path})
    if(suite STREQUAL "models")
      set(args ${path} --ignore=${CMAKE_CURRENT_SOURCE_DIR}/python/test_binding.py)
    else()
      set(args ${path})
    endif()
    add_test(NAME pytest_${suite}
             COMMAND ${PETMATTE_TEST_PYTHON} -m pytest -q -p no:cacheprovider ${args}
             WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
    set_tests_properties(pytest_${suite} PROPERTIES FIXTURES_REQUIRED test_models
                         ENVIRONMENT "${PETMATTE_PYTEST_ENV}")
  endif()
endforeach()
