# Image side of pm_remove_bg (lib/image_*.c, lib/stb_impl.c): decoding, limits,
# EXIF orientation and output building, tested through the internal API, no model.
pm_c_test(image_decode)
pm_c_test(image_output)
# image_decode writes its test images with stb_image_write (compiled static there).
target_include_directories(test_image_decode SYSTEM PRIVATE ${PETMATTE_STB_INCLUDE_DIR})
target_include_directories(test_image_decode PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/fuzz)
foreach(t test_image_decode test_image_output)
  target_compile_options(${t} PRIVATE -Wall -Wextra -Wshadow)
  target_link_libraries(${t} PRIVATE m)
endforeach()
