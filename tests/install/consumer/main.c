/* Links against the installed library and checks that header and library agree. */
#include <petmatte.h>
#include <stdio.h>
#include <string.h>

int main(void) {
    if (pm_version_number() != PETMATTE_VERSION_NUMBER) {
        fprintf(stderr, "header %u, library %u\n", (unsigned)PETMATTE_VERSION_NUMBER, pm_version_number());
        return 1;
    }
    pm_params p;
    pm_params_init(&p);
    p.model_path = "/nonexistent/model.pt";
    pm_ctx *ctx = NULL;
    if (pm_open(&p, &ctx) != PM_ERR_IO || ctx != NULL || strstr(pm_errmsg(NULL), "model.pt") == NULL) {
        fprintf(stderr, "unexpected pm_open result: %s\n", pm_errmsg(NULL));
        return 1;
    }
    const char *key = pm_tune_name(PM_TUNE_CUDA_GRAPH);
    if (key == NULL || strcmp(key, "cuda_graph") != 0) {
        fprintf(stderr, "pm_tune_name(PM_TUNE_CUDA_GRAPH): %s\n", key ? key : "NULL");
        return 1;
    }
    printf("petmatte %s from the install prefix\n", pm_version());
    return 0;
}
