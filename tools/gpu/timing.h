/* timing.h - the clocks the measurement programs in tools/ share (not part of the
 * library): a monotonic millisecond clock, and how long ago the kernel started this
 * process, for "process start -> ..." figures. Header-only: each tool is one file
 * compiled by hand (see each tool's first comment). */
#ifndef PETMATTE_TOOLS_TIMING_H
#define PETMATTE_TOOLS_TIMING_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static inline double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

/* Milliseconds since this process started: field 22 of /proc/self/stat (clock ticks
 * since boot) against /proc/uptime, both on the boot clock; 10 ms resolution. -1 when
 * /proc cannot be read. */
static inline double since_process_start_ms(void) {
    FILE *f = fopen("/proc/self/stat", "r");
    if (!f) return -1;
    char buf[2048];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')'); /* the command name may contain spaces */
    for (int field = 2; p && field < 22; field++) p = strchr(p + 1, ' ');
    unsigned long long start = p ? strtoull(p + 1, NULL, 10) : 0;
    double up = 0;
    f = fopen("/proc/uptime", "r");
    if (f) {
        if (fscanf(f, "%lf", &up) != 1) up = 0;
        fclose(f);
    }
    return up * 1e3 - (double)start * 1e3 / (double)sysconf(_SC_CLK_TCK);
}

#endif
