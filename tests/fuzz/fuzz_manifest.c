/* fuzz_manifest - libFuzzer target: pm_manifest_parse (lib/manifest.c) on arbitrary
 * bytes, the petmatte.json that a model archive carries. The bytes are passed with
 * their length and no terminating NUL, as the shim does. A successful parse must
 * leave a configuration the shim can use (sides 1..8192, finite mean, std > 0). */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "manifest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pm_model_config cfg, before;
    pm_manifest_defaults(&cfg, 1024, "fuzz.pt");
    before = cfg;
    char err[256];
    /* A copy of exactly size bytes, so ASan sees any read past the end. */
    char *json = malloc(size ? size : 1);
    if (json == NULL) return 0;
    if (size) memcpy(json, data, size);
    pm_code rc = pm_manifest_parse(json, size, &cfg, err, sizeof err);
    free(json);
    if (rc != PM_OK) {
        if (rc != PM_ERR_MODEL || memcmp(&cfg, &before, sizeof cfg) != 0) abort();
        return 0;
    }
    if (cfg.input_width < 1 || cfg.input_width > 8192 || cfg.input_height < 1 || cfg.input_height > 8192)
        abort();
    for (int i = 0; i < 3; i++)
        if (!isfinite(cfg.mean[i]) || !(cfg.std[i] > 0.0f) || !isfinite(cfg.std[i])) abort();
    if (memchr(cfg.name, '\0', sizeof cfg.name) == NULL) abort();
    return 0;
}
