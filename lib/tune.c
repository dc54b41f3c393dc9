/* tune.c - pm_tune_set / pm_tune_get: device tuning by key, so that a knob can be
 * added or retired without changing a struct layout. */
#include <stdio.h>

#include "context.h"

#define PM_MAX_DEVICE_CACHE_MB 1048576
#define PM_MAX_BATCH_WAIT_US 100000

/* One row a key: its name, range, default, and whether -1 (auto) is accepted beside
 * the range. Index = pm_tune value. */
static const struct {
    const char *name;
    int min, max, dflt, has_auto;
} keys[PM_TUNE_SLOTS] = {
    [PM_TUNE_WARMUP_MIN_RUNS] = {"warmup_min_runs", 0, 1000, 0, 0},
    [PM_TUNE_WARMUP_MAX_RUNS] = {"warmup_max_runs", 1, 1000, 20, 0},
    [PM_TUNE_WARMUP_TOLERANCE_PCT] = {"warmup_tolerance_pct", 1, 1000, 15, 0},
    [PM_TUNE_CUDA_GRAPH] = {"cuda_graph", 0, 1, -1, 1},
    [PM_TUNE_CHANNELS_LAST] = {"channels_last", 0, 1, -1, 1},
    [PM_TUNE_JIT_OPTIMIZE] = {"jit_optimize", 0, 1, -1, 1},
    [PM_TUNE_FREEZE] = {"freeze", 0, 1, -1, 1},
    [PM_TUNE_BATCH_WAIT_US] = {"batch_wait_us", 0, PM_MAX_BATCH_WAIT_US, 0, 0},
    [PM_TUNE_DEVICE_CACHE_MB] = {"device_cache_mb", 0, PM_MAX_DEVICE_CACHE_MB, -1, 1},
    [PM_TUNE_FORWARD_STREAMS] = {"forward_streams", 1, PM_MAX_FORWARD_STREAMS, -1, 1},
};

static int known(pm_tune key) { return key >= 1 && key <= PM_TUNE_LAST && keys[key].name; }

void pm_tune_defaults(int tune[PM_TUNE_SLOTS]) {
    tune[0] = 0;
    for (int k = 1; k <= PM_TUNE_LAST; k++) tune[k] = keys[k].dflt;
}

const char *pm_tune_name(pm_tune key) { return known(key) ? keys[key].name : NULL; }

pm_code pm_tune_set(pm_ctx *c, pm_tune key, int value) {
    if (!c) return pm_fail(NULL, PM_ERR_INVALID_ARGUMENT, "pm_tune_set: ctx is NULL");
    if (!known(key)) return pm_fail(c, PM_ERR_INVALID_ARGUMENT, "pm_tune_set: %d is not a pm_tune key", (int)key);
    const int in_range = value >= keys[key].min && value <= keys[key].max;
    if (!in_range && !(keys[key].has_auto && value == -1)) {
        if (keys[key].has_auto)
            return pm_fail(c, PM_ERR_INVALID_ARGUMENT, "pm_tune_set: %s %d is not -1 (auto) or %d..%d",
                           keys[key].name, value, keys[key].min, keys[key].max);
        return pm_fail(c, PM_ERR_INVALID_ARGUMENT, "pm_tune_set: %s %d is outside %d..%d", keys[key].name, value,
                       keys[key].min, keys[key].max);
    }
    pthread_mutex_lock(&c->mu);
    /* A running flight read the values when it began; a READY model runs with them. */
    const int busy = c->flight_running || (c->state != PM_STATE_COLD && c->state != PM_STATE_FAILED);
    const pm_state state = c->state;
    if (!busy) c->tune[key] = value;
    pthread_mutex_unlock(&c->mu);
    if (busy)
        return pm_fail(c, PM_ERR_STATE, "pm_tune_set: %s cannot change while the context is %s (tune before pm_warmup)",
                       keys[key].name, pm_state_name(state));
    return PM_OK;
}

pm_code pm_tune_get(pm_ctx *c, pm_tune key, int *value) {
    if (!c) return pm_fail(NULL, PM_ERR_INVALID_ARGUMENT, "pm_tune_get: ctx is NULL");
    if (!value) return pm_fail(c, PM_ERR_INVALID_ARGUMENT, "pm_tune_get: value is NULL");
    if (!known(key)) return pm_fail(c, PM_ERR_INVALID_ARGUMENT, "pm_tune_get: %d is not a pm_tune key", (int)key);
    pthread_mutex_lock(&c->mu);
    *value = c->state == PM_STATE_READY ? c->tune_used[key] : c->tune[key];
    pthread_mutex_unlock(&c->mu);
    return PM_OK;
}
