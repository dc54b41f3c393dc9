# Image side of pm_remove_bg (lib/image_*.c, lib/stb_impl.c, lib/encode_*.c): decoding,
# limits, EXIF orientation, output building and encoding, tested through the internal
# API, no model (api_encoding: through the public one).
pm_c_test(image_decode)
pm_c_test(image_output)
# PNG and WebP through pm_remove_bg on the red-channel model (libwebp decodes WebP back).
pm_c_test(api_encoding)
# image_decode writes its test images with stb_image_write (compiled static there).
target_include_directories(test_image_decode SYSTEM PRIVATE ${PETMATTE_STB_INCLUDE_DIR})
target_include_directories(test_image_decode PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/fuzz)
foreach(t test_image_decode test_image_output test_api_encoding)
  target_compile_options(${t} PRIVATE -Wall -Wextra -Wshadow)
  target_link_libraries(${t} PRIVATE m)
endforeach()
# Blurred and picture backgrounds and the overlay through pm_remove_bg on the red-channel
# model; writes its EXIF JPEG with stb_image_write and tests/fuzz/seed_formats.h.
pm_c_test(api_background)
target_include_directories(test_api_background PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/fuzz)
target_include_directories(test_api_background SYSTEM PRIVATE ${PETMATTE_STB_INCLUDE_DIR})
target_compile_options(test_api_background PRIVATE -Wall -Wextra -Wshadow)
target_link_libraries(test_api_background PRIVATE m)
