/* fuzz_remove_bg - libFuzzer target: pm_remove_bg end to end, on the tiny CPU test
 * model red32.pt (alpha = red channel), with encoded bytes from the fuzzer.
 *
 * Input: byte 0 picks the options, the rest is the encoded image:
 *   bits 0-1 output kind (RGBA, MASK, COMPOSITE, OVERLAY), bit 2 PNG encoding, bit 3 no EXIF,
 *   bit 4 threshold 0.5, bit 5 invert, bit 6 clean_edges, bit 7 keep_input_alpha off.
 * The context is opened and warmed once, in LLVMFuzzerInitialize. The model folder
 * is --models=DIR on the command line (libFuzzer ignores flags that start with
 * "--"), else $PM_TEST_MODELS, else build-fuzz/tests/models.
 * The pixel limit is 1 MP so one input stays fast (limits: tests/image_decode.c). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "petmatte.h"

static pm_ctx *ctx;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    const char *dir = getenv("PM_TEST_MODELS");
    for (int i = 1; i < *argc; i++)
        if (strncmp((*argv)[i], "--models=", 9) == 0) dir = (*argv)[i] + 9;
    if (dir == NULL) dir = "build-fuzz/tests/models";
    char path[4096];
    snprintf(path, sizeof path, "%s/red32.pt", dir);
    pm_params p;
    pm_params_init(&p);
    p.model_path = path;
    p.device = "cpu";
    p.cpu_threads = 1;
    p.max_pixels = (uint64_t)1 << 20;
    if (pm_open(&p, &ctx) != PM_OK || pm_tune_set(ctx, PM_TUNE_WARMUP_MIN_RUNS, 3) != PM_OK ||
        pm_tune_set(ctx, PM_TUNE_WARMUP_MAX_RUNS, 5) != PM_OK || pm_warmup(ctx) != PM_OK) {
        fprintf(stderr, "fuzz_remove_bg: cannot open and warm %s: %s\n"
                        "(make the test models: python3 tests/models/make_test_models.py DIR, "
                        "then pass --models=DIR or set PM_TEST_MODELS)\n",
                path, pm_errmsg(ctx));
        exit(1);
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    uint8_t sel = data[0];
    pm_remove_options opt;
    pm_remove_options_init(&opt);
    opt.output = (int)(sel & 3);
    opt.encoding = (sel & 4) ? PM_ENCODING_PNG : PM_ENCODING_RAW;
    opt.apply_exif_orientation = !(sel & 8);
    opt.threshold = (sel & 16) ? 0.5f : -1.0f;
    opt.invert = (sel & 32) != 0;
    opt.clean_edges = (sel & 64) != 0;
    opt.keep_input_alpha = !(sel & 128);
    opt.background_rgb = 0x336699;

    pm_image in;
    pm_image_init(&in);
    in.format = PM_FORMAT_ENCODED;
    in.data = data + 1;
    in.size = size - 1;
    pm_output *out = NULL;
    pm_code rc = pm_remove_bg(ctx, &in, &opt, &out);
    if (rc == PM_OK) {
        if (out == NULL || out->data == NULL || out->width <= 0 || out->height <= 0) abort();
        volatile uint8_t sink = 0;
        for (size_t i = 0; i < out->size; i += 61) sink ^= out->data[i];
        sink ^= out->data[out->size - 1];
        (void)sink;
        pm_output_free(out);
    } else {
        /* Input errors only: the model and the context must stay healthy. */
        if (out != NULL) abort();
        if (rc != PM_ERR_DECODE && rc != PM_ERR_LIMIT && rc != PM_ERR_INVALID_ARGUMENT &&
            rc != PM_ERR_UNSUPPORTED) {
            fprintf(stderr, "unexpected code %d: %s\n", rc, pm_errmsg(ctx));
            abort();
        }
    }
    return 0;
}
