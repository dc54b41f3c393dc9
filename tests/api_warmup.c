/* pm_warmup / pm_warmup_start / pm_status: states, single flight, background, close. */
#define _GNU_SOURCE /* sched_setaffinity, CPU_COUNT */
#include <pthread.h>
#include <sched.h>
#include <time.h>

#include "context.h" /* white-box: counts warm-up flights */
#include "test_util.h"

static void test_warmup_moves_cold_to_ready_and_fills_status(void **state) {
    (void)state;
    pm_ctx *ctx = open_model("red32.pt");
    assert_int_equal(status_of(ctx).state, PM_STATE_COLD);
    assert_int_equal(pm_warmup(ctx), PM_OK);
    pm_status_info st = status_of(ctx);
    assert_int_equal(st.state, PM_STATE_READY);
    assert_true(st.progress == 1.0);
    assert_true(st.load_ms > 0.0);
    assert_true(st.warmup_ms > 0.0);
    assert_in_range(st.warmup_runs, 3, 6);
    assert_true(st.last_warmup_run_ms > 0.0);
    assert_true(st.ready_unix > 1.7e9);
    if (test_on_cuda()) {
        assert_memory_equal(st.device, "cuda:", 5);
        assert_int_equal(st.precision, PM_PRECISION_FP16);
    } else {
        assert_string_equal(st.device, "cpu");
        assert_int_equal(st.precision, PM_PRECISION_FP32);
    }
    assert_string_equal(st.model_name, "red32");
    assert_int_equal(st.input_width, 32);
    assert_int_equal(st.input_height, 32);
    assert_int_equal(st.random_weights, 0);
    assert_int_equal(st.images_processed, 0);
    assert_true(test_on_cuda() ? st.device_memory_bytes > 0 : st.device_memory_bytes == 0);
    /* The allocator's peak is at least what it holds now. */
    assert_true(st.device_memory_peak_bytes >= st.device_memory_bytes);
    assert_true(test_on_cuda() ? st.device_memory_peak_bytes > 0 : st.device_memory_peak_bytes == 0);
    pm_close(ctx);
}

static void test_warmup_on_a_ready_context_returns_at_once_without_reloading(void **state) {
    (void)state;
    pm_ctx *ctx = open_model("red32.pt");
    assert_int_equal(pm_warmup(ctx), PM_OK);
    pm_status_info first = status_of(ctx);
    assert_int_equal(pm_warmup(ctx), PM_OK);
    assert_int_equal(pm_warmup_start(ctx), PM_OK);
    pm_status_info second = status_of(ctx);
    assert_true(first.ready_unix == second.ready_unix);
    assert_int_equal(first.warmup_runs, second.warmup_runs);
    assert_int_equal(ctx->flight_started, 1);
    pm_close(ctx);
}

/* Warm-up runs of a CPU context: auto (the default) makes one inference, since a CPU
 * forward has nothing lazy after the first; the profiling executor needs three. */
static int warmup_runs_with(int min_runs, int max_runs, int jit_optimize) {
    pm_params p;
    cpu_params(&p, "red32.pt");
    pm_ctx *ctx = open_with(&p, "red32.pt");
    if (min_runs >= 0) tune(ctx, PM_TUNE_WARMUP_MIN_RUNS, min_runs);
    if (max_runs > 0) tune(ctx, PM_TUNE_WARMUP_MAX_RUNS, max_runs);
    tune(ctx, PM_TUNE_JIT_OPTIMIZE, jit_optimize);
    assert_int_equal(pm_warmup(ctx), PM_OK);
    int runs = status_of(ctx).warmup_runs;
    pm_close(ctx);
    return runs;
}

static void test_auto_warmup_runs_one_cpu_inference_and_three_with_jit_optimize(void **state) {
    (void)state;
    pm_params p;
    cpu_params(&p, "red32.pt");
    pm_ctx *ctx = open_with(&p, "red32.pt");
    assert_int_equal(tuned(ctx, PM_TUNE_WARMUP_MIN_RUNS), 0); /* auto */
    pm_close(ctx);
    if (test_on_cuda()) {
        /* CUDA: two eager runs (autotuning), then the graph's capture; the profiling
         * executor wants a third eager run first. */
        assert_in_range(warmup_runs_with(-1, 0, -1), 3, 20);
        assert_in_range(warmup_runs_with(-1, 0, 1), 4, 20);
        assert_int_equal(warmup_runs_with(0, 2, 1), 2); /* the host's ceiling wins */
        return;
    }
    assert_int_equal(warmup_runs_with(-1, 0, -1), 1);
    assert_in_range(warmup_runs_with(-1, 0, 1), 3, 20);
    /* An explicit count adds to what the device needs, never takes from it: one run
     * asked for on the CPU is one run (a window of one is stable at once), five are
     * five or more, and with the profiling executor one still means three. */
    assert_int_equal(warmup_runs_with(1, 20, -1), 1);
    assert_in_range(warmup_runs_with(5, 20, -1), 5, 20);
    assert_in_range(warmup_runs_with(1, 20, 1), 3, 20);
    /* the host's ceiling wins */
    assert_int_equal(warmup_runs_with(0, 2, 1), 2);
}

static void test_auto_device_resolves_to_cpu_when_no_cuda_is_visible(void **state) {
    (void)state;
    int n = 0;
    assert_int_equal(pm_cuda_device_count(&n), PM_OK);
    if (n > 0) skip();
    pm_params p;
    pm_params_init(&p);
    p.model_path = model_path("red32.pt");
    pm_ctx *ctx = NULL;
    assert_int_equal(pm_open(&p, &ctx), PM_OK);
    assert_int_equal(pm_warmup(ctx), PM_OK);
    pm_status_info st = status_of(ctx);
    assert_string_equal(st.device, "cpu");
    assert_int_equal(st.precision, PM_PRECISION_FP32); /* AUTO resolves to fp32 on cpu */
    pm_close(ctx);
}

static void test_random_weights_flag_is_shown_in_status(void **state) {
    (void)state;
    pm_ctx *ctx = open_model("red32_random.pt");
    assert_int_equal(pm_warmup(ctx), PM_OK);
    assert_int_equal(status_of(ctx).random_weights, 1);
    pm_close(ctx);
}

struct racer {
    pm_ctx *ctx;
    pthread_barrier_t *go;
    pm_code rc;
};

static void *warm_racer(void *arg) {
    struct racer *r = arg;
    pthread_barrier_wait(r->go);
    r->rc = pm_warmup(r->ctx);
    return NULL;
}

static void test_eight_threads_warming_at_once_cause_one_load(void **state) {
    (void)state;
    pm_ctx *ctx = open_model("slow96.pt");
    enum { N = 8 };
    pthread_t t[N];
    struct racer r[N];
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, N);
    for (int i = 0; i < N; i++) {
        r[i] = (struct racer){ctx, &go, PM_ERR_INTERNAL};
        pthread_create(&t[i], NULL, warm_racer, &r[i]);
    }
    for (int i = 0; i < N; i++) pthread_join(t[i], NULL);
    for (int i = 0; i < N; i++) assert_int_equal(r[i].rc, PM_OK);
    assert_int_equal(ctx->flight_started, 1);
    assert_int_equal(status_of(ctx).state, PM_STATE_READY);
    pthread_barrier_destroy(&go);
    pm_close(ctx);
}

static void test_all_waiters_get_the_failed_flights_error(void **state) {
    (void)state;
    pm_ctx *ctx = open_model("wrong_shape.pt");
    enum { N = 4 };
    pthread_t t[N];
    struct racer r[N];
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, N);
    for (int i = 0; i < N; i++) {
        r[i] = (struct racer){ctx, &go, PM_OK};
        pthread_create(&t[i], NULL, warm_racer, &r[i]);
    }
    for (int i = 0; i < N; i++) pthread_join(t[i], NULL);
    for (int i = 0; i < N; i++) assert_int_equal(r[i].rc, PM_ERR_MODEL);
    /* Flights that overlapped were shared; at most one per thread ever runs. */
    assert_in_range(ctx->flight_started, 1, N);
    pthread_barrier_destroy(&go);
    pm_close(ctx);
}

static void test_status_answers_while_a_background_warmup_runs(void **state) {
    (void)state;
    pm_params p;
    pm_params_init(&p);
    p.model_path = model_path("slow96.pt");
    p.device = "cpu";
    pm_ctx *ctx = NULL;
    assert_int_equal(pm_open(&p, &ctx), PM_OK);
    tune(ctx, PM_TUNE_WARMUP_MIN_RUNS, 40); /* long enough to watch */
    tune(ctx, PM_TUNE_WARMUP_MAX_RUNS, 40);
    assert_int_equal(pm_warmup_start(ctx), PM_OK);
    int seen_busy = 0, seen_warming = 0, polls = 0;
    double last_progress = 0.0;
    for (;;) {
        pm_status_info st = status_of(ctx);
        polls++;
        if (st.state == PM_STATE_READY) break;
        assert_true(st.state == PM_STATE_LOADING || st.state == PM_STATE_WARMING);
        seen_busy = 1;
        if (st.state == PM_STATE_WARMING) {
            seen_warming = 1;
            assert_in_range(st.input_width, 96, 96);
        }
        assert_true(st.progress >= last_progress && st.progress < 1.0);
        last_progress = st.progress;
        nanosleep(&(struct timespec){0, 2000000}, NULL);
    }
    assert_true(seen_busy);
    assert_true(seen_warming);
    assert_true(polls > 3);
    assert_int_equal(status_of(ctx).warmup_runs, 40);
    assert_int_equal(pm_warmup(ctx), PM_OK);
    pm_close(ctx);
}

static void test_close_during_a_background_warmup_is_safe(void **state) {
    (void)state;
    for (int delay_ms = 0; delay_ms <= 60; delay_ms += 20) {
        pm_params p;
        pm_params_init(&p);
        p.model_path = model_path("slow96.pt");
        p.device = "cpu";
        pm_ctx *ctx = NULL;
        assert_int_equal(pm_open(&p, &ctx), PM_OK);
        tune(ctx, PM_TUNE_WARMUP_MIN_RUNS, 200);
        tune(ctx, PM_TUNE_WARMUP_MAX_RUNS, 200);
        assert_int_equal(pm_warmup_start(ctx), PM_OK);
        assert_int_equal(pm_warmup_start(ctx), PM_OK); /* a second start does nothing */
        nanosleep(&(struct timespec){0, delay_ms * 1000000L}, NULL);
        pm_close(ctx); /* joins; the warm-up stops early instead of running 200 times */
    }
}

static void test_failed_warmup_can_be_retried_and_background_reports_failure(void **state) {
    (void)state;
    pm_ctx *ctx = open_model("nan_output.pt");
    assert_int_equal(pm_warmup_start(ctx), PM_OK);
    pm_status_info st;
    do {
        nanosleep(&(struct timespec){0, 1000000}, NULL);
        st = status_of(ctx);
    } while (st.state == PM_STATE_LOADING || st.state == PM_STATE_WARMING);
    assert_int_equal(st.state, PM_STATE_FAILED);
    assert_int_equal(st.last_error_code, PM_ERR_MODEL);
    assert_non_null(strstr(st.last_error, "NaN"));
    uint64_t flights = ctx->flight_started;
    assert_int_equal(pm_warmup(ctx), PM_ERR_MODEL); /* tried again, once */
    assert_int_equal(ctx->flight_started, flights + 1);
    assert_int_equal(pm_warmup_start(ctx), PM_OK); /* reaps the old thread, starts anew */
    pm_close(ctx);
}

/* graph_safe says whether a CUDA graph would compute what the model does: unknown
 * (-1) until the model is loaded; 1 for a model whose control flow ignores tensor
 * values (red32 only slices); 0 for one that raises on a flat image (a value test). */
static void test_graph_safe_is_unknown_before_loading_and_found_once_ready(void **state) {
    (void)state;
    const struct {
        const char *model;
        int graph_safe;
    } cases[] = {{"red32.pt", 1}, {"throws_on_flat.pt", 0}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        pm_ctx *ctx = open_model(cases[i].model);
        assert_int_equal(status_of(ctx).graph_safe, -1);
        assert_int_equal(pm_warmup(ctx), PM_OK);
        pm_status_info st = status_of(ctx);
        assert_int_equal(st.state, PM_STATE_READY);
        if (st.graph_safe != cases[i].graph_safe)
            fprintf(stderr, "%s: graph_safe %d\n", cases[i].model, st.graph_safe);
        assert_int_equal(st.graph_safe, cases[i].graph_safe);
        /* A graph only on CUDA, and only for a graph-safe model. */
        assert_int_equal(st.cuda_graph, test_on_cuda() && cases[i].graph_safe);
        pm_close(ctx);
    }
}

/* A context opened with every warm-up key on auto (no quick_warmup). */
static pm_ctx *open_auto(const char *name) {
    pm_params p;
    cpu_params(&p, name);
    return open_with(&p, name);
}

/* One cut-out of the red32 pattern as a raw mask: PM_OK when it equals the red
 * channel, PM_ERR_INTERNAL when it does not, else pm_remove_bg's code. Asserts
 * nothing, so threads can call it. */
static pm_code try_cut_out_red32(pm_ctx *ctx) {
    uint8_t *rgb = make_rgb(32, 32);
    pm_image img = raw_image(PM_FORMAT_RGB, rgb, 32, 32, 0, 32 * 32 * 3);
    pm_remove_options opt;
    pm_remove_options_init(&opt);
    opt.output = PM_OUTPUT_MASK;
    pm_output *out = NULL;
    pm_code rc = pm_remove_bg(ctx, &img, &opt, &out);
    if (rc == PM_OK) {
        if (out->width != 32 || out->height != 32) rc = PM_ERR_INTERNAL;
        for (int y = 0; y < 32 && rc == PM_OK; y++)
            for (int x = 0; x < 32; x++)
                if (out->data[y * out->stride + x] != pattern_red(x, y)) rc = PM_ERR_INTERNAL;
        pm_output_free(out);
    }
    free(rgb);
    return rc;
}

static void cut_out_red32(pm_ctx *ctx) {
    pm_code rc = try_cut_out_red32(ctx);
    if (rc != PM_OK) fprintf(stderr, "cut-out: %s\n", rc == PM_ERR_INTERNAL ? "wrong matte" : pm_errmsg(ctx));
    assert_int_equal(rc, PM_OK);
}

/* On the CPU a cold context's first cut-out is its first inference: loaded, READY,
 * no warm-up inference. pm_warmup afterwards still warms (real inferences). On CUDA
 * the call warms as pm_warmup does (the graph's capture). */
static void test_a_cold_cpu_contexts_first_cut_out_runs_no_warmup_inference(void **state) {
    (void)state;
    pm_ctx *ctx = open_auto("red32.pt");
    cut_out_red32(ctx);
    pm_status_info st = status_of(ctx);
    assert_int_equal(st.state, PM_STATE_READY);
    assert_true(st.progress == 1.0);
    assert_true(st.load_ms > 0.0);
    assert_true(st.ready_unix > 1.7e9);
    assert_int_equal(st.images_processed, 1);
    assert_int_equal(st.forward_passes, 1);
    assert_int_equal(ctx->flight_started, 1);
    if (test_on_cuda()) {
        assert_true(st.warmup_runs >= 1);
        pm_close(ctx);
        return;
    }
    assert_int_equal(st.warmup_runs, 0);
    assert_true(st.warmup_ms == 0.0);
    assert_int_equal(tuned(ctx, PM_TUNE_WARMUP_MIN_RUNS), 1);

    assert_int_equal(pm_warmup(ctx), PM_OK); /* runs the warm-up it skipped */
    st = status_of(ctx);
    assert_int_equal(st.state, PM_STATE_READY);
    assert_true(st.warmup_runs >= 1);
    assert_true(st.warmup_ms > 0.0);
    assert_int_equal(st.images_processed, 1); /* warm-up runs are not cut-outs */
    assert_int_equal(st.forward_passes, 1);
    assert_int_equal(ctx->flight_started, 2);
    const int runs = st.warmup_runs;
    assert_int_equal(pm_warmup(ctx), PM_OK); /* now warm: at once */
    assert_int_equal(status_of(ctx).warmup_runs, runs);
    assert_int_equal(ctx->flight_started, 2);
    cut_out_red32(ctx);
    assert_int_equal(status_of(ctx).images_processed, 2);
    pm_close(ctx);
}

/* Where warm-up needs more than one inference, a cold cut-out warms first, as before. */
static void test_a_cold_cut_out_warms_first_when_more_runs_are_asked_for(void **state) {
    (void)state;
    pm_ctx *asked = open_auto("red32.pt");
    tune(asked, PM_TUNE_WARMUP_MIN_RUNS, 3);
    pm_ctx *profiled = open_auto("red32.pt");
    tune(profiled, PM_TUNE_JIT_OPTIMIZE, 1); /* the profiling executor needs three */
    pm_ctx *both[] = {asked, profiled};
    for (int i = 0; i < 2; i++) {
        cut_out_red32(both[i]);
        pm_status_info st = status_of(both[i]);
        assert_int_equal(st.state, PM_STATE_READY);
        assert_true(st.warmup_runs >= 3);
        assert_true(st.warmup_ms > 0.0);
        assert_int_equal(st.images_processed, 1);
        assert_int_equal(pm_warmup(both[i]), PM_OK);
        assert_int_equal(both[i]->flight_started, 1); /* warm already: nothing to top up */
        pm_close(both[i]);
    }
}

struct caller {
    pm_ctx *ctx;
    pthread_barrier_t *go;
    int warm;   /* 1: pm_warmup, 0: a cut-out */
    pm_code rc; /* checked by the main thread */
};

static void *first_caller(void *arg) {
    struct caller *c = arg;
    pthread_barrier_wait(c->go);
    c->rc = c->warm ? pm_warmup(c->ctx) : try_cut_out_red32(c->ctx);
    return NULL;
}

/* Concurrent first cut-outs share one load; a pm_warmup among them still gets its
 * warm-up inferences, whichever thread starts first. */
static void test_concurrent_first_cut_outs_share_one_load_and_warmup_still_warms(void **state) {
    (void)state;
    for (int with_warmup = 0; with_warmup <= 1; with_warmup++) {
        pm_ctx *ctx = open_auto("red32.pt");
        enum { N = 6 };
        pthread_t t[N];
        struct caller c[N];
        pthread_barrier_t go;
        pthread_barrier_init(&go, NULL, N);
        for (int i = 0; i < N; i++) {
            c[i] = (struct caller){ctx, &go, with_warmup && i == N / 2, PM_ERR_INTERNAL};
            pthread_create(&t[i], NULL, first_caller, &c[i]);
        }
        for (int i = 0; i < N; i++) pthread_join(t[i], NULL);
        for (int i = 0; i < N; i++) assert_int_equal(c[i].rc, PM_OK);
        pm_status_info st = status_of(ctx);
        assert_int_equal(st.state, PM_STATE_READY);
        assert_int_equal(st.images_processed, N - with_warmup);
        if (with_warmup) {
            assert_true(st.warmup_runs >= 1);
            assert_in_range(ctx->flight_started, 1, 2); /* one load, at most one top-up */
        } else {
            assert_int_equal(ctx->flight_started, 1);
            if (!test_on_cuda()) assert_int_equal(st.warmup_runs, 0);
        }
        pthread_barrier_destroy(&go);
        pm_close(ctx);
    }
}

/* pm_warmup_start on a context a cut-out loaded warms it on the library's thread. */
static void test_background_warmup_after_a_cold_cut_out_warms_the_loaded_model(void **state) {
    (void)state;
    if (test_on_cuda()) skip();
    pm_ctx *ctx = open_auto("red32.pt");
    cut_out_red32(ctx);
    assert_int_equal(status_of(ctx).warmup_runs, 0);
    assert_int_equal(pm_warmup_start(ctx), PM_OK);
    assert_int_equal(pm_warmup(ctx), PM_OK); /* joins that flight, or finds it done */
    pm_status_info st = status_of(ctx);
    assert_int_equal(st.state, PM_STATE_READY);
    assert_true(st.warmup_runs >= 1);
    assert_int_equal(ctx->flight_started, 2);
    pm_close(ctx);
}

/* cpu_threads 0 means one thread a physical core the process may run on: never more
 * than the CPUs allowed, and one when only one is. */
static void test_cpu_cores_follow_the_affinity_mask(void **state) {
    (void)state;
    cpu_set_t all;
    CPU_ZERO(&all);
    assert_int_equal(sched_getaffinity(0, sizeof all, &all), 0);
    const int cores = pm_cpu_cores();
    assert_in_range(cores, 1, CPU_COUNT(&all));
    int first = 0;
    while (!CPU_ISSET(first, &all)) first++;
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(first, &one);
    assert_int_equal(sched_setaffinity(0, sizeof one, &one), 0); /* this thread only */
    const int restricted = pm_cpu_cores();
    assert_int_equal(sched_setaffinity(0, sizeof all, &all), 0);
    assert_int_equal(restricted, 1);
    assert_int_equal(pm_cpu_cores(), cores);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_warmup_moves_cold_to_ready_and_fills_status),
        cmocka_unit_test(test_warmup_on_a_ready_context_returns_at_once_without_reloading),
        cmocka_unit_test(test_auto_warmup_runs_one_cpu_inference_and_three_with_jit_optimize),
        cmocka_unit_test(test_auto_device_resolves_to_cpu_when_no_cuda_is_visible),
        cmocka_unit_test(test_random_weights_flag_is_shown_in_status),
        cmocka_unit_test(test_eight_threads_warming_at_once_cause_one_load),
        cmocka_unit_test(test_all_waiters_get_the_failed_flights_error),
        cmocka_unit_test(test_status_answers_while_a_background_warmup_runs),
        cmocka_unit_test(test_close_during_a_background_warmup_is_safe),
        cmocka_unit_test(test_failed_warmup_can_be_retried_and_background_reports_failure),
        cmocka_unit_test(test_graph_safe_is_unknown_before_loading_and_found_once_ready),
        cmocka_unit_test(test_a_cold_cpu_contexts_first_cut_out_runs_no_warmup_inference),
        cmocka_unit_test(test_a_cold_cut_out_warms_first_when_more_runs_are_asked_for),
        cmocka_unit_test(test_concurrent_first_cut_outs_share_one_load_and_warmup_still_warms),
        cmocka_unit_test(test_background_warmup_after_a_cold_cut_out_warms_the_loaded_model),
        cmocka_unit_test(test_cpu_cores_follow_the_affinity_mask),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
