/* hwy_timer_stub.c - LD_PRELOAD for valgrind runs only (docs/reliability.md).
 * Debian's libtorch pulls in OpenCV -> libjxl -> libhwy, whose load-time constructor
 * calls hwy::platform::TimerResolution(), which executes RDTSCP: valgrind 3.19 stops
 * with SIGILL there. The call goes through the PLT, so this definition replaces it.
 *   cc -shared -fPIC -O1 -o /tmp/hwy_timer_stub.so tests/sanitizers/hwy_timer_stub.c */
#include <stdint.h>

uint64_t _ZN3hwy8platform15TimerResolutionEv(void);
uint64_t _ZN3hwy8platform15TimerResolutionEv(void) { return 1; }
