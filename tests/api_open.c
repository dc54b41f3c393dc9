/* pm_open: validation without touching a device, device strings, struct sizes (of
 * pm_params and of pm_status_info, as binaries built against older headers pass them). */
#include "test_util.h"

static pm_code try_open(const char *model, const char *device, pm_ctx **out) {
    pm_params p;
    pm_params_init(&p);
    p.model_path = model;
    p.device = device;
    return pm_open(&p, out);
}

static void test_open_rejects_null_arguments(void **state) {
    (void)state;
    pm_ctx *ctx = (pm_ctx *)0x1;
    pm_params p;
    pm_params_init(&p);
    assert_int_equal(pm_open(NULL, &ctx), PM_ERR_INVALID_ARGUMENT);
    assert_null(ctx);
    assert_int_equal(pm_open(&p, NULL), PM_ERR_INVALID_ARGUMENT);
    assert_int_equal(pm_open(&p, &ctx), PM_ERR_INVALID_ARGUMENT); /* no model_path */
    assert_non_null(strstr(pm_errmsg(NULL), "model_path"));
}

static void test_open_missing_model_is_an_io_error_naming_the_path(void **state) {
    (void)state;
    pm_ctx *ctx = NULL;
    assert_int_equal(try_open("/nonexistent/model.pt", "cpu", &ctx), PM_ERR_IO);
    assert_null(ctx);
    assert_non_null(strstr(pm_errmsg(NULL), "/nonexistent/model.pt"));
    assert_int_equal(try_open("/tmp", "cpu", &ctx), PM_ERR_IO); /* a folder */
}

static void test_open_rejects_malformed_device_strings(void **state) {
    (void)state;
    const char *bad[] = {"gpu", "cuda:", "cuda:x", "cuda:-1", "cuda:0 ", "CPU", "cuda:99999", "cuda0", "metal"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        pm_ctx *ctx = NULL;
        assert_int_equal(try_open(model_path("red32.pt"), bad[i], &ctx), PM_ERR_INVALID_ARGUMENT);
        assert_null(ctx);
        assert_non_null(strstr(pm_errmsg(NULL), "device"));
    }
}

static void test_cuda_device_on_a_cpu_build_is_a_device_error_never_cpu(void **state) {
    (void)state;
    int n = -1;
    assert_int_equal(pm_cuda_device_count(&n), PM_OK);
    if (n > 0) skip(); /* a CUDA machine: covered by the GPU bench */
    pm_ctx *ctx = NULL;
    pm_code rc = try_open(model_path("red32.pt"), "cuda:7", &ctx);
    if (rc == PM_OK) {
        /* A CUDA build without devices learns it at warm-up: still an error, never cpu. */
        assert_int_equal(pm_warmup(ctx), PM_ERR_DEVICE);
        assert_non_null(strstr(pm_errmsg(ctx), "0 CUDA devices"));
        pm_status_info st = status_of(ctx);
        assert_int_equal(st.state, PM_STATE_FAILED);
        pm_close(ctx);
    } else {
        assert_int_equal(rc, PM_ERR_DEVICE);
        assert_non_null(strstr(pm_errmsg(NULL), "0 CUDA devices"));
    }
}

static void test_open_is_cold_and_loads_nothing(void **state) {
    (void)state;
    pm_ctx *ctx = NULL;
    assert_int_equal(try_open(model_path("red32.pt"), NULL, &ctx), PM_OK);
    pm_status_info st = status_of(ctx);
    assert_int_equal(st.state, PM_STATE_COLD);
    assert_true(st.progress == 0.0);
    assert_true(st.load_ms == 0.0);
    assert_true(st.open_ms >= 0.0);
    assert_string_equal(st.device, "auto");
    assert_int_equal(st.input_width, 0);
    assert_string_equal(st.model_name, "red32.pt");
    assert_int_equal(st.last_error_code, PM_OK);
    pm_close(ctx);
}

static void test_open_rejects_out_of_range_parameters(void **state) {
    (void)state;
    pm_params base;
    pm_params_init(&base);
    base.model_path = model_path("red32.pt");
    base.device = "cpu";
    pm_params p;
    pm_ctx *ctx = NULL;
#define EXPECT_BAD(field, value)                                          \
    do {                                                                  \
        p = base;                                                         \
        p.field = value;                                                  \
        assert_int_equal(pm_open(&p, &ctx), PM_ERR_INVALID_ARGUMENT);     \
        assert_non_null(strstr(pm_errmsg(NULL), #field));                 \
    } while (0)
    EXPECT_BAD(precision, 9);
    EXPECT_BAD(input_size, 3);
    EXPECT_BAD(max_pixels, 0);
    EXPECT_BAD(max_encoded_bytes, 0);
    EXPECT_BAD(cpu_threads, -2);
    EXPECT_BAD(cpu_threads, 1025);
    EXPECT_BAD(max_batch, -1); /* auto is gone: a host names its batch */
    EXPECT_BAD(max_batch, 0);
    EXPECT_BAD(max_batch, 65);
#undef EXPECT_BAD
    p = base;
    p.struct_size = 4;
    assert_int_equal(pm_open(&p, &ctx), PM_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(pm_errmsg(NULL), "struct_size"));
}

/* A binary built against an older, shorter pm_params keeps working: fields it does
 * not know take their defaults. */
static void test_open_accepts_an_older_shorter_params_struct(void **state) {
    (void)state;
    pm_params p;
    pm_params_init_sized(&p, offsetof(pm_params, input_size));
    assert_int_equal(p.struct_size, offsetof(pm_params, input_size));
    p.model_path = model_path("red32.pt");
    p.device = "cpu";
    p.precision = PM_PRECISION_FP32;
    p.input_size = 12345; /* beyond the old struct: must be ignored */
    p.max_pixels = 0;
    pm_ctx *ctx = NULL;
    assert_int_equal(pm_open(&p, &ctx), PM_OK);
    assert_int_equal(pm_warmup(ctx), PM_OK);
    pm_close(ctx);
}

/* The same, with the struct ending after max_encoded_bytes: cpu_threads and
 * max_batch take their defaults (Torch's threads, one image a pass), whatever the
 * caller's memory beyond struct_size holds, and pm_params_init_sized writes nothing
 * there. */
static void test_params_fields_beyond_struct_size_take_their_defaults(void **state) {
    (void)state;
    const size_t old_size = offsetof(pm_params, max_encoded_bytes) + sizeof(uint64_t);
    assert_int_equal(old_size, offsetof(pm_params, cpu_threads));
    pm_params p;
    memset(&p, 0xA5, sizeof p);
    pm_params_init_sized(&p, old_size);
    assert_int_equal(p.struct_size, old_size);
    for (size_t i = old_size; i < sizeof p; i++) assert_int_equal(((const unsigned char *)&p)[i], 0xA5);
    p.model_path = model_path("red32.pt");
    p.device = "cpu";
    p.cpu_threads = -7; /* out of range, but beyond the struct: never read */
    p.max_batch = 1000;
    pm_ctx *ctx = NULL;
    pm_code rc = pm_open(&p, &ctx);
    if (rc != PM_OK) fprintf(stderr, "pm_open: %s\n", pm_errmsg(NULL));
    assert_int_equal(rc, PM_OK);
    quick_warmup(ctx);
    assert_int_equal(pm_warmup(ctx), PM_OK);
    assert_int_equal(status_of(ctx).max_batch, 1);
    pm_close(ctx);
}

/* pm_status_info as a binary built against an older header had it: the fields up to
 * input_height. Its struct is laid out as the start of today's. */
struct old_status_info {
    size_t struct_size;
    int state;
    int precision;
    double progress;
    double open_ms;
    double load_ms;
    double warmup_ms;
    double last_warmup_run_ms;
    double ready_unix;
    int warmup_runs;
    int random_weights;
    int input_width;
    int input_height;
    uint64_t canary; /* where today's images_processed starts: must stay untouched */
};

#define SAME_PLACE(field)                                                                     \
    _Static_assert(offsetof(struct old_status_info, field) == offsetof(pm_status_info, field), \
                   #field " is where pm_status_info has it")
SAME_PLACE(state);
SAME_PLACE(precision);
SAME_PLACE(progress);
SAME_PLACE(open_ms);
SAME_PLACE(load_ms);
SAME_PLACE(warmup_ms);
SAME_PLACE(last_warmup_run_ms);
SAME_PLACE(ready_unix);
SAME_PLACE(warmup_runs);
SAME_PLACE(random_weights);
SAME_PLACE(input_width);
SAME_PLACE(input_height);
#undef SAME_PLACE

static void test_status_fills_an_older_shorter_struct_and_writes_nothing_beyond_it(void **state) {
    (void)state;
    const uint64_t canary = 0xC0FFEE0DDBA11ull;
    pm_ctx *ctx = open_model("red32.pt");
    assert_int_equal(pm_warmup(ctx), PM_OK);
    struct old_status_info old;
    memset(&old, 0, sizeof old);
    old.canary = canary;
    pm_status_info_init_sized((pm_status_info *)&old, offsetof(struct old_status_info, canary));
    assert_int_equal(old.struct_size, offsetof(struct old_status_info, canary));
    assert_true(old.canary == canary);
    assert_int_equal(pm_status(ctx, (pm_status_info *)&old), PM_OK);
    assert_int_equal(old.struct_size, offsetof(struct old_status_info, canary));
    assert_int_equal(old.state, PM_STATE_READY);
    assert_int_equal(old.precision, test_on_cuda() ? PM_PRECISION_FP16 : PM_PRECISION_FP32);
    assert_true(old.progress == 1.0);
    assert_true(old.load_ms > 0.0);
    assert_true(old.warmup_ms > 0.0);
    assert_true(old.ready_unix > 1.7e9);
    assert_in_range(old.warmup_runs, 3, 6);
    assert_int_equal(old.random_weights, 0);
    assert_int_equal(old.input_width, 32);
    assert_int_equal(old.input_height, 32);
    assert_true(old.canary == canary);
    pm_close(ctx);
}

static void test_strerror_and_names_cover_every_value(void **state) {
    (void)state;
    for (int c = PM_OK; c <= PM_ERR_STATE; c++) {
        const char *s = pm_strerror((pm_code)c);
        assert_non_null(s);
        assert_string_not_equal(s, "unknown error code");
    }
    assert_string_equal(pm_strerror((pm_code)999), "unknown error code");
    assert_string_equal(pm_state_name(PM_STATE_READY), "ready");
    assert_string_equal(pm_precision_name(PM_PRECISION_BF16), "bf16");
    assert_string_equal(pm_version(), PETMATTE_VERSION_STRING);
    assert_int_equal(pm_version_number(), PETMATTE_VERSION_NUMBER);
}

static void test_close_accepts_null(void **state) {
    (void)state;
    pm_close(NULL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_open_rejects_null_arguments),
        cmocka_unit_test(test_open_missing_model_is_an_io_error_naming_the_path),
        cmocka_unit_test(test_open_rejects_malformed_device_strings),
        cmocka_unit_test(test_cuda_device_on_a_cpu_build_is_a_device_error_never_cpu),
        cmocka_unit_test(test_open_is_cold_and_loads_nothing),
        cmocka_unit_test(test_open_rejects_out_of_range_parameters),
        cmocka_unit_test(test_open_accepts_an_older_shorter_params_struct),
        cmocka_unit_test(test_params_fields_beyond_struct_size_take_their_defaults),
        cmocka_unit_test(test_status_fills_an_older_shorter_struct_and_writes_nothing_beyond_it),
        cmocka_unit_test(test_strerror_and_names_cover_every_value),
        cmocka_unit_test(test_close_accepts_null),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
