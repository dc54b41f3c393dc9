# Reliability (docs/reliability.md): NULL arguments, bad inputs and the fuzzers'
# regressions, races and resource hygiene, host out-of-memory; and a check that the
# ABI test really fails on an incompatible change.
pm_c_test(api_null_arguments)
pm_c_test(api_bad_inputs)
pm_c_test(api_races)
pm_c_test(api_faults)
pm_c_test(api_batching)
# api_bad_inputs writes PNG/TGA with stb_image_write and uses tests/fuzz/seed_formats.h.
target_include_directories(test_api_bad_inputs PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/fuzz)
target_include_directories(test_api_bad_inputs SYSTEM PRIVATE ${PETMATTE_STB_INCLUDE_DIR})
foreach(t test_api_null_arguments test_api_bad_inputs test_api_races test_api_faults test_api_batching)
  target_compile_options(${t} PRIVATE -Wall -Wextra)
  target_link_libraries(${t} PRIVATE m)
endforeach()
set_tests_properties(api_races api_faults api_batching PROPERTIES TIMEOUT 120)

find_program(PETMATTE_ABIDW abidw)
if(PETMATTE_ABIDW AND PETMATTE_ABIDIFF)
  add_test(NAME abi_check_fails_on_incompatible_changes
           COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/abi/abi_break_detected.sh ${CMAKE_C_COMPILER}
                   ${PROJECT_SOURCE_DIR}/include/petmatte.h ${CMAKE_CURRENT_BINARY_DIR}/abi_break)
endif()
