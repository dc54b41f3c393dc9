/* petmatte.json parsing: fields, defaults, and every malformed variant. */
#include "manifest.h"
#include "test_util.h"

static pm_code parse(const char *json, pm_model_config *cfg, char *err, size_t cap) {
    pm_manifest_defaults(cfg, 1024, "file.pt");
    return pm_manifest_parse(json, strlen(json), cfg, err, cap);
}

static void test_defaults_are_inspyrenets(void **state) {
    (void)state;
    pm_model_config c;
    pm_manifest_defaults(&c, 384, "x.pt");
    assert_int_equal(c.input_width, 384);
    assert_int_equal(c.input_height, 384);
    assert_true(c.mean[0] == 0.485f && c.mean[1] == 0.456f && c.mean[2] == 0.406f);
    assert_true(c.std[0] == 0.229f && c.std[1] == 0.224f && c.std[2] == 0.225f);
    assert_int_equal(c.activation, PM_ACTIVATION_PROBABILITY);
    assert_int_equal(c.minmax_normalize, 1);
    assert_int_equal(c.align_corners, 1);
    assert_string_equal(c.name, "x.pt");
}

static void test_a_full_manifest_sets_every_field(void **state) {
    (void)state;
    pm_model_config c;
    char err[256];
    const char *json =
        "{\"format\":\"petmatte-manifest\",\"version\":1,\"name\":\"isnet\","
        "\"input\":{\"width\":1024,\"height\":768,\"mean\":[0.5,0.5,0.5],\"std\":[1,1,1]},"
        "\"output\":{\"activation\":\"logit\",\"normalize\":\"none\",\"resize\":\"bilinear\","
        "\"align_corners\":false},\"gpu\":{\"channels_last\":true,\"forward_streams\":3},\"cpu\":{\"bf16\":true},"
        "\"random_weights\":true,"
        "\"license\":\"MIT\",\"extra\":{\"x\":1}}";
    assert_int_equal(parse(json, &c, err, sizeof err), PM_OK);
    assert_string_equal(c.name, "isnet");
    assert_int_equal(c.input_width, 1024);
    assert_int_equal(c.input_height, 768);
    assert_true(c.mean[2] == 0.5f && c.std[1] == 1.0f);
    assert_int_equal(c.activation, PM_ACTIVATION_LOGIT);
    assert_int_equal(c.minmax_normalize, 0);
    assert_int_equal(c.align_corners, 0);
    assert_int_equal(c.random_weights, 1);
    assert_int_equal(c.channels_last, 1);
    assert_int_equal(c.forward_streams, 3);
    assert_int_equal(c.cpu_bf16, 1);
}

static void test_missing_fields_keep_their_defaults(void **state) {
    (void)state;
    pm_model_config c;
    char err[256];
    assert_int_equal(parse("{\"name\":\"only-name\"}", &c, err, sizeof err), PM_OK);
    assert_string_equal(c.name, "only-name");
    assert_int_equal(c.input_width, 1024);
    assert_int_equal(c.minmax_normalize, 1);
    assert_int_equal(c.forward_streams, 1);
    assert_int_equal(c.cpu_bf16, 0);
}

static void test_malformed_manifests_are_model_errors_naming_the_field(void **state) {
    (void)state;
    const struct {
        const char *json, *field;
    } cases[] = {
        {"{", "JSON"},
        {"[1,2]", "top level"},
        {"{\"format\":\"other\"}", "format"},
        {"{\"version\":2}", "version"},
        {"{\"version\":\"1\"}", "version"},
        {"{\"name\":\"\"}", "name"},
        {"{\"name\":\"0123456789012345678901234567890123456789012345678901234567890123456789\"}", "name"},
        {"{\"input\":{\"width\":0}}", "input.width"},
        {"{\"input\":{\"width\":100000}}", "input.width"},
        {"{\"input\":{\"height\":1.5}}", "input.height"},
        {"{\"input\":{\"mean\":[0,0]}}", "input.mean"},
        {"{\"input\":{\"std\":[1,0,1]}}", "input.std"},
        {"{\"input\":{\"std\":[1,\"a\",1]}}", "input.std"},
        {"{\"input\":7}", "input"},
        {"{\"output\":{\"activation\":\"softmax\"}}", "output.activation"},
        {"{\"output\":{\"normalize\":1}}", "output.normalize"},
        {"{\"output\":{\"resize\":\"nearest\"}}", "output.resize"},
        {"{\"output\":{\"align_corners\":\"yes\"}}", "output.align_corners"},
        {"{\"random_weights\":1}", "random_weights"},
        {"{\"gpu\":true}", "gpu"},
        {"{\"gpu\":{\"channels_last\":1}}", "gpu.channels_last"},
        {"{\"cpu\":{\"bf16\":1}}", "cpu.bf16"},
        {"{\"cpu\":true}", "cpu must be"},
        {"{\"gpu\":{\"forward_streams\":0}}", "gpu.forward_streams"},
        {"{\"gpu\":{\"forward_streams\":9}}", "gpu.forward_streams"},
        {"{\"gpu\":{\"forward_streams\":2.5}}", "gpu.forward_streams"},
        {"{\"gpu\":{\"forward_streams\":\"2\"}}", "gpu.forward_streams"},
        {"{\"name\":\"a\",\"name\":\"b\"}", "JSON"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        pm_model_config c;
        char err[256] = "";
        pm_code rc = parse(cases[i].json, &c, err, sizeof err);
        if (rc != PM_ERR_MODEL || !strstr(err, cases[i].field))
            fprintf(stderr, "case %zu %s -> %d \"%s\"\n", i, cases[i].json, rc, err);
        assert_int_equal(rc, PM_ERR_MODEL);
        assert_non_null(strstr(err, cases[i].field));
        assert_int_equal(c.input_width, 1024); /* a failed parse changes nothing */
    }
}

static void test_empty_and_unterminated_input_is_refused_without_reading_past_len(void **state) {
    (void)state;
    pm_model_config c;
    char err[256];
    pm_manifest_defaults(&c, 1024, "f");
    assert_int_equal(pm_manifest_parse("", 0, &c, err, sizeof err), PM_ERR_MODEL);
    const char buf[4] = {'{', '}', 'x', 'x'}; /* only the first two bytes belong to it */
    assert_int_equal(pm_manifest_parse(buf, 2, &c, err, sizeof err), PM_OK);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_are_inspyrenets),
        cmocka_unit_test(test_a_full_manifest_sets_every_field),
        cmocka_unit_test(test_missing_fields_keep_their_defaults),
        cmocka_unit_test(test_malformed_manifests_are_model_errors_naming_the_field),
        cmocka_unit_test(test_empty_and_unterminated_input_is_refused_without_reading_past_len),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
