/* ready_timeline.c - where the time to READY goes: starts pm_warmup_start, polls
 * pm_get_status every 100 us and prints each state change and each warm-up run
 * (its latency), with milliseconds since process start (kernel start time) and
 * since main().
 *   gcc -std=c11 -O2 -D_POSIX_C_SOURCE=200809L -Iinclude tools/gpu/ready_timeline.c \
 *       -Lbuild-gpu/lib -lpetmatte -Wl,-rpath,$PWD/build-gpu/lib -o ready_timeline
 *   ./ready_timeline MODEL.pt cuda:0
 * A measurement (docs/benchmarks.md), not a test. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "petmatte.h"
#include "timing.h"

int main(int argc, char **argv) {
    double t_main = now_ms();
    double at_main = since_process_start_ms();
    if (argc < 3) {
        fprintf(stderr, "usage: %s MODEL DEVICE\n", argv[0]);
        return 2;
    }
    pm_params p;
    pm_params_init(&p);
    p.model_path = argv[1];
    p.device = argv[2];
    pm_ctx *c = NULL;
    if (pm_open(&p, &c) != PM_OK) {
        fprintf(stderr, "pm_open: %s\n", pm_errmsg(NULL));
        return 1;
    }
    printf("%9s %9s  %s\n", "proc ms", "main ms", "event");
    printf("%9.1f %9.1f  main() entered\n", at_main, 0.0);
    printf("%9.1f %9.1f  pm_open returned\n", at_main + now_ms() - t_main, now_ms() - t_main);
    pm_warmup_start(c);
    int state = -1, runs = 0;
    for (;;) {
        pm_status s;
        pm_status_init(&s);
        pm_get_status(c, &s);
        double t = now_ms() - t_main;
        if (s.state != state) {
            printf("%9.1f %9.1f  state %s (load_ms %.1f)\n", at_main + t, t, pm_state_name((pm_state)s.state), s.load_ms);
            state = s.state;
        }
        if (s.warmup_runs != runs) {
            printf("%9.1f %9.1f  warm-up run %d took %.1f ms\n", at_main + t, t, s.warmup_runs, s.last_warmup_run_ms);
            runs = s.warmup_runs;
        }
        if (s.state == PM_STATE_READY || s.state == PM_STATE_FAILED) {
            printf("warmup_ms %.1f, runs %d, device %s, memory %.0f MiB%s%s\n", s.warmup_ms, s.warmup_runs, s.device,
                   s.device_memory_bytes / 1048576.0, s.state == PM_STATE_FAILED ? ", FAILED: " : "",
                   s.state == PM_STATE_FAILED ? s.last_error : "");
            break;
        }
        nanosleep(&(struct timespec){0, 100000}, NULL);
    }
    pm_close(c);
    return 0;
}
