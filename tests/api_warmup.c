/* pm_warmup / pm_warmup_start / pm_status: states, single flight, background, close. */
#include <pthread.h>
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
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
