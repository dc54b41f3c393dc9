# Foreground colour estimation (lib/foreground.c): accuracy, exactness, determinism,
# skip-flat, arguments; internal API, no model, a few hundred ms.
pm_c_test(foreground)
target_compile_options(test_foreground PRIVATE -Wall -Wextra -Wshadow)
target_link_libraries(test_foreground PRIVATE m)

# Not a test: times a 12 MP image, on the CPU or, with a model, on its device
# (docs/clean-edges.md). Built only on request:
#   cmake --build build --target bench_foreground && build/tests/bench_foreground
add_executable(bench_foreground EXCLUDE_FROM_ALL bench_foreground.c)
target_link_libraries(bench_foreground PRIVATE petmatte_internal Threads::Threads m)
target_include_directories(bench_foreground PRIVATE ${PROJECT_SOURCE_DIR}/include ${PROJECT_SOURCE_DIR}/lib)
target_compile_options(bench_foreground PRIVATE -Wall -Wextra -Wshadow)

# Clean edges on a model's device (lib/foreground.c's plan, shim/foreground.cpp's
# tensor ops) on a CPU model against the C version with skip_flat = 0, and the
# shim's handling of plans; needs the test models (red32.pt), a few seconds.
pm_c_test(foreground_torch)
target_compile_options(test_foreground_torch PRIVATE -Wall -Wextra -Wshadow)
target_link_libraries(test_foreground_torch PRIVATE m)
