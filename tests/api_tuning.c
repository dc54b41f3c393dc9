/* pm_tune_set / pm_tune_get / pm_tune_name: defaults, ranges, unknown keys, the
 * states in which a key may change, the values in use once READY, and the rules
 * between keys that warm-up checks. */
#include <time.h>

#include "test_util.h"

/* Every key with its default and its range (-1, auto, is in range where the header
 * allows it). forward_streams' range has a hole: -1 or 1..8, never 0. */
static const struct key_range {
    pm_tune key;
    const char *name;
    int fallback; /* the default before READY */
    int lo, hi;
    int zero_refused;
} keys[] = {
    {PM_TUNE_WARMUP_MIN_RUNS, "warmup_min_runs", 0, 0, 1000, 0},
    {PM_TUNE_WARMUP_MAX_RUNS, "warmup_max_runs", 20, 1, 1000, 1},
    {PM_TUNE_WARMUP_TOLERANCE_PCT, "warmup_tolerance_pct", 15, 1, 1000, 1},
    {PM_TUNE_CUDA_GRAPH, "cuda_graph", -1, -1, 1, 0},
    {PM_TUNE_CHANNELS_LAST, "channels_last", -1, -1, 1, 0},
    {PM_TUNE_JIT_OPTIMIZE, "jit_optimize", -1, -1, 1, 0},
    {PM_TUNE_FREEZE, "freeze", -1, -1, 1, 0},
    {PM_TUNE_BATCH_WAIT_US, "batch_wait_us", 0, 0, 100000, 0},
    {PM_TUNE_DEVICE_CACHE_MB, "device_cache_mb", -1, -1, 1048576, 0},
    {PM_TUNE_FORWARD_STREAMS, "forward_streams", -1, -1, 8, 1},
};
enum { NKEYS = sizeof keys / sizeof keys[0] };

/* A CPU context on red32 with nothing tuned. */
static pm_ctx *untuned(void) {
    pm_params p;
    cpu_params(&p, "red32.pt");
    return open_with(&p, "red32.pt");
}

/* One pm_remove_bg of a 16x16 image: red32's alpha equals the red channel. */
static void assert_removes_a_background(pm_ctx *ctx) {
    uint8_t rgb[16 * 16 * 3];
    memset(rgb, 140, sizeof rgb);
    pm_image img = raw_image(PM_FORMAT_RGB, rgb, 16, 16, 0, sizeof rgb);
    pm_output *out = NULL;
    assert_int_equal(pm_remove_bg(ctx, &img, NULL, &out), PM_OK);
    assert_int_equal(out->data[3], 140);
    pm_output_free(out);
}

static void test_every_key_starts_at_its_documented_default(void **state) {
    (void)state;
    pm_ctx *ctx = untuned();
    for (size_t i = 0; i < NKEYS; i++) {
        int v = tuned(ctx, keys[i].key);
        if (v != keys[i].fallback) fprintf(stderr, "%s: %d\n", keys[i].name, v);
        assert_int_equal(v, keys[i].fallback);
    }
    assert_int_equal(status_of(ctx).state, PM_STATE_COLD);
    pm_close(ctx);
}

static void test_tune_set_then_get_round_trips_each_end_of_every_range(void **state) {
    (void)state;
    pm_ctx *ctx = untuned();
    for (size_t i = 0; i < NKEYS; i++) {
        const int ends[2] = {keys[i].lo, keys[i].hi};
        for (int e = 0; e < 2; e++) {
            tune(ctx, keys[i].key, ends[e]);
            assert_int_equal(tuned(ctx, keys[i].key), ends[e]);
        }
        /* The key just set does not move any other key. */
        for (size_t j = 0; j < i; j++) assert_int_equal(tuned(ctx, keys[j].key), keys[j].lo);
        tune(ctx, keys[i].key, keys[i].lo);
    }
    pm_close(ctx);
}

static void test_out_of_range_values_are_refused_by_name_and_the_context_stays_usable(void **state) {
    (void)state;
    pm_ctx *ctx = untuned();
    for (size_t i = 0; i < NKEYS; i++) {
        const int bad[4] = {keys[i].lo - 1, keys[i].hi + 1, keys[i].lo - 1000, 0};
        for (int b = 0; b < (keys[i].zero_refused ? 4 : 3); b++) {
            pm_code rc = pm_tune_set(ctx, keys[i].key, bad[b]);
            if (rc != PM_ERR_INVALID_ARGUMENT || !strstr(pm_errmsg(ctx), keys[i].name))
                fprintf(stderr, "%s = %d: code %d, \"%s\"\n", keys[i].name, bad[b], rc, pm_errmsg(ctx));
            assert_int_equal(rc, PM_ERR_INVALID_ARGUMENT);
            assert_non_null(strstr(pm_errmsg(ctx), keys[i].name));
            assert_int_equal(tuned(ctx, keys[i].key), keys[i].fallback);
        }
    }
    assert_int_equal(status_of(ctx).state, PM_STATE_COLD);
    quick_warmup(ctx);
    assert_int_equal(pm_warmup(ctx), PM_OK);
    assert_removes_a_background(ctx);
    pm_close(ctx);
}

static void test_unknown_keys_are_refused_and_the_context_stays_usable(void **state) {
    (void)state;
    pm_ctx *ctx = untuned();
    const int unknown[] = {0, NKEYS + 1, -1, 1000, -2147483647 - 1};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        int v = 77;
        assert_int_equal(pm_tune_set(ctx, (pm_tune)unknown[i], 0), PM_ERR_INVALID_ARGUMENT);
        assert_int_equal(pm_tune_get(ctx, (pm_tune)unknown[i], &v), PM_ERR_INVALID_ARGUMENT);
        assert_int_equal(v, 77); /* nothing written on failure */
    }
    for (size_t i = 0; i < NKEYS; i++) assert_int_equal(tuned(ctx, keys[i].key), keys[i].fallback);
    quick_warmup(ctx);
    assert_int_equal(pm_warmup(ctx), PM_OK);
    assert_removes_a_background(ctx);
    pm_close(ctx);
}

static void test_tune_set_once_ready_is_a_state_error_and_changes_nothing(void **state) {
    (void)state;
    pm_ctx *ctx = open_model("red32.pt");
    assert_int_equal(pm_warmup(ctx), PM_OK);
    for (size_t i = 0; i < NKEYS; i++) {
        const int before = tuned(ctx, keys[i].key);
        /* In range, and different from the value in use. */
        const int other = before == keys[i].hi ? keys[i].hi - 1 : keys[i].hi;
        assert_int_equal(pm_tune_set(ctx, keys[i].key, other), PM_ERR_STATE);
        assert_int_equal(tuned(ctx, keys[i].key), before);
    }
    pm_status_info st = status_of(ctx);
    assert_int_equal(st.state, PM_STATE_READY);
    assert_int_equal(st.last_error_code, PM_ERR_STATE);
    assert_removes_a_background(ctx);
    pm_close(ctx);
}

static void test_tune_set_while_a_warmup_runs_is_a_state_error(void **state) {
    (void)state;
    pm_params p;
    cpu_params(&p, "slow96.pt");
    pm_ctx *ctx = open_with(&p, "slow96.pt");
    tune(ctx, PM_TUNE_WARMUP_MIN_RUNS, 40); /* long enough to catch it running */
    tune(ctx, PM_TUNE_WARMUP_MAX_RUNS, 40);
    assert_int_equal(pm_warmup_start(ctx), PM_OK);
    pm_status_info st;
    do {
        st = status_of(ctx);
        if (st.state == PM_STATE_COLD) nanosleep(&(struct timespec){0, 1000000}, NULL);
    } while (st.state == PM_STATE_COLD);
    assert_true(st.state == PM_STATE_LOADING || st.state == PM_STATE_WARMING);
    assert_int_equal(pm_tune_set(ctx, PM_TUNE_WARMUP_MAX_RUNS, 41), PM_ERR_STATE);
    assert_int_equal(pm_warmup(ctx), PM_OK);
    assert_int_equal(status_of(ctx).warmup_runs, 40);
    assert_int_equal(tuned(ctx, PM_TUNE_WARMUP_MAX_RUNS), 40);
    pm_close(ctx);
}

static void test_a_failed_context_takes_new_values_and_warms_with_them(void **state) {
    (void)state;
    pm_ctx *ctx = open_model("picks_by_name.pt");
    tune(ctx, PM_TUNE_FREEZE, 1); /* this model cannot be frozen */
    assert_int_equal(pm_warmup(ctx), PM_ERR_UNSUPPORTED);
    assert_int_equal(status_of(ctx).state, PM_STATE_FAILED);
    tune(ctx, PM_TUNE_FREEZE, 0);
    assert_int_equal(pm_warmup(ctx), PM_OK);
    assert_int_equal(status_of(ctx).frozen, 0);
    assert_int_equal(tuned(ctx, PM_TUNE_FREEZE), 0);
    pm_close(ctx);
}

static void test_once_ready_tune_get_answers_the_values_in_use_on_the_cpu(void **state) {
    (void)state;
    pm_ctx *ctx = untuned();
    tune(ctx, PM_TUNE_WARMUP_MAX_RUNS, 6);
    tune(ctx, PM_TUNE_BATCH_WAIT_US, 250);
    assert_int_equal(pm_warmup(ctx), PM_OK);
    /* auto resolved: the CPU captures no graph, keeps NCHW, runs one stream, and the
     * executor's re-optimisation and freezing stay off by default. */
    assert_int_equal(tuned(ctx, PM_TUNE_CUDA_GRAPH), test_on_cuda()); /* a graph on CUDA */
    assert_int_equal(tuned(ctx, PM_TUNE_CHANNELS_LAST), 0);
    assert_int_equal(tuned(ctx, PM_TUNE_FORWARD_STREAMS), 1);
    assert_int_equal(tuned(ctx, PM_TUNE_JIT_OPTIMIZE), 0);
    assert_int_equal(tuned(ctx, PM_TUNE_FREEZE), 0);
    assert_true(tuned(ctx, PM_TUNE_DEVICE_CACHE_MB) >= 0);
    /* values the host set are the values in use */
    assert_int_equal(tuned(ctx, PM_TUNE_WARMUP_MAX_RUNS), 6);
    assert_int_equal(tuned(ctx, PM_TUNE_BATCH_WAIT_US), 250);
    assert_int_equal(tuned(ctx, PM_TUNE_WARMUP_TOLERANCE_PCT), 15);
    /* and agree with the status */
    pm_status_info st = status_of(ctx);
    assert_int_equal(st.cuda_graph, tuned(ctx, PM_TUNE_CUDA_GRAPH));
    assert_int_equal(st.forward_streams, tuned(ctx, PM_TUNE_FORWARD_STREAMS));
    assert_int_equal(st.frozen, tuned(ctx, PM_TUNE_FREEZE));
    assert_in_range(st.warmup_runs, 1, 6);
    pm_close(ctx);
}

/* Auto precision on the CPU is bf16 only for a model whose manifest says it was checked
 * in bf16 (cpu.bf16): red32 has no such key, so even in NHWC order, on a CPU with AMX,
 * it runs in fp32. */
static void test_auto_precision_on_the_cpu_is_fp32_without_the_manifests_bf16(void **state) {
    (void)state;
    if (test_on_cuda()) skip();
    pm_ctx *ctx = open_model("red32.pt");
    tune(ctx, PM_TUNE_CHANNELS_LAST, 1);
    assert_int_equal(pm_warmup(ctx), PM_OK);
    assert_int_equal(tuned(ctx, PM_TUNE_CHANNELS_LAST), 1);
    assert_int_equal(status_of(ctx).precision, PM_PRECISION_FP32);
    pm_close(ctx);
}

static void test_tune_name_names_every_key_and_nothing_else(void **state) {
    (void)state;
    for (size_t i = 0; i < NKEYS; i++) {
        assert_non_null(pm_tune_name(keys[i].key));
        assert_string_equal(pm_tune_name(keys[i].key), keys[i].name);
    }
    assert_null(pm_tune_name((pm_tune)0));
    assert_null(pm_tune_name((pm_tune)(NKEYS + 1)));
    assert_null(pm_tune_name((pm_tune)-1));
    /* What a host's option parser does: walk the keys from 1 until NULL. */
    int n = 0;
    while (pm_tune_name((pm_tune)(n + 1)) != NULL) n++;
    assert_int_equal(n, NKEYS);
}

/* Batching and streams are two ways to serve concurrent callers: asking for both,
 * or for streams without the graphs they replay, fails warm-up by name. */
static void test_forward_streams_beside_batching_or_without_graphs_fail_warmup(void **state) {
    (void)state;
    const struct {
        int streams, max_batch, cuda_graph;
        const char *says;
    } cases[] = {
        {2, 2, -1, "choose one"},
        {8, 64, -1, "choose one"},
        {2, 1, 0, "CUDA graphs"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        pm_params p;
        cpu_params(&p, "red32.pt");
        p.max_batch = cases[i].max_batch;
        pm_ctx *ctx = open_with(&p, "red32.pt");
        quick_warmup(ctx);
        tune(ctx, PM_TUNE_FORWARD_STREAMS, cases[i].streams);
        tune(ctx, PM_TUNE_CUDA_GRAPH, cases[i].cuda_graph);
        assert_int_equal(pm_warmup(ctx), PM_ERR_INVALID_ARGUMENT);
        if (!strstr(pm_errmsg(ctx), cases[i].says)) fprintf(stderr, "case %zu: %s\n", i, pm_errmsg(ctx));
        assert_non_null(strstr(pm_errmsg(ctx), cases[i].says));
        assert_int_equal(status_of(ctx).state, PM_STATE_FAILED);
        /* A FAILED context takes a consistent value and warms (not max_batch 64's:
         * readying 64 batch sizes is slow). */
        if (cases[i].max_batch <= 2) {
            tune(ctx, PM_TUNE_FORWARD_STREAMS, 1);
            assert_int_equal(pm_warmup(ctx), PM_OK);
            assert_removes_a_background(ctx);
        }
        pm_close(ctx);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_key_starts_at_its_documented_default),
        cmocka_unit_test(test_tune_set_then_get_round_trips_each_end_of_every_range),
        cmocka_unit_test(test_out_of_range_values_are_refused_by_name_and_the_context_stays_usable),
        cmocka_unit_test(test_unknown_keys_are_refused_and_the_context_stays_usable),
        cmocka_unit_test(test_tune_set_once_ready_is_a_state_error_and_changes_nothing),
        cmocka_unit_test(test_tune_set_while_a_warmup_runs_is_a_state_error),
        cmocka_unit_test(test_a_failed_context_takes_new_values_and_warms_with_them),
        cmocka_unit_test(test_once_ready_tune_get_answers_the_values_in_use_on_the_cpu),
        cmocka_unit_test(test_auto_precision_on_the_cpu_is_fp32_without_the_manifests_bf16),
        cmocka_unit_test(test_tune_name_names_every_key_and_nothing_else),
        cmocka_unit_test(test_forward_streams_beside_batching_or_without_graphs_fail_warmup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
