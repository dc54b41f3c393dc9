# The exported ABI equals the committed abidw baseline (Debian: abigail-tools).
find_program(PETMATTE_ABIDIFF abidiff)
if(PETMATTE_ABIDIFF AND EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/abi/petmatte.abi)
  add_test(NAME abi_matches_baseline
           COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/abi/check_abi.sh ${CMAKE_CURRENT_SOURCE_DIR}/abi/petmatte.abi
                   $<TARGET_FILE:petmatte> ${PROJECT_SOURCE_DIR}/include)
elseif(NOT PETMATTE_ABIDIFF)
  message(STATUS "petmatte: abidiff not found (Debian abigail-tools): ABI test skipped")
endif()
