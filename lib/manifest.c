/* manifest.c - petmatte.json (docs/manifest.md) read with jansson over the defaults. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "manifest.h"

#define PM_MANIFEST_MAX_BYTES (1u << 20)
#define PM_MANIFEST_MAX_SIDE 8192

void pm_manifest_defaults(pm_model_config *cfg, int size, const char *name) {
    static const float imagenet_mean[3] = {0.485f, 0.456f, 0.406f};
    static const float imagenet_std[3] = {0.229f, 0.224f, 0.225f};
    memset(cfg, 0, sizeof *cfg);
    snprintf(cfg->name, sizeof cfg->name, "%s", name ? name : "");
    cfg->input_width = cfg->input_height = size;
    memcpy(cfg->mean, imagenet_mean, sizeof cfg->mean);
    memcpy(cfg->std, imagenet_std, sizeof cfg->std);
    cfg->activation = PM_ACTIVATION_PROBABILITY;
    cfg->minmax_normalize = 1;
    cfg->align_corners = 1;
    cfg->random_weights = 0;
    cfg->channels_last = 0;
    cfg->forward_streams = 1;
    cfg->graph_safe = 0;
    cfg->cpu_bf16 = 0;
}

static pm_code bad(char *err, size_t cap, const char *what) {
    snprintf(err, cap, "model manifest petmatte.json: %s", what);
    return PM_ERR_MODEL;
}

/* An optional boolean member key of obj; name is how messages call it. Absent leaves
 * *out as it is. */
static pm_code read_bool(json_t *obj, const char *key, const char *name, int *out, char *err, size_t cap) {
    json_t *v = json_object_get(obj, key);
    if (!v) return PM_OK;
    if (!json_is_boolean(v)) {
        char msg[96];
        snprintf(msg, sizeof msg, "%s must be a boolean", name);
        return bad(err, cap, msg);
    }
    *out = json_is_true(v);
    return PM_OK;
}

static pm_code read_side(json_t *obj, const char *key, int *out, char *err, size_t cap) {
    json_t *v = json_object_get(obj, key);
    if (!v) return PM_OK;
    if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > PM_MANIFEST_MAX_SIDE) {
        char msg[96];
        snprintf(msg, sizeof msg, "input.%s must be an integer in 1..%d", key, PM_MANIFEST_MAX_SIDE);
        return bad(err, cap, msg);
    }
    *out = (int)json_integer_value(v);
    return PM_OK;
}

static pm_code read_triple(json_t *obj, const char *key, float out[3], int positive, char *err, size_t cap) {
    json_t *v = json_object_get(obj, key);
    if (!v) return PM_OK;
    char msg[96];
    snprintf(msg, sizeof msg, "input.%s must be an array of 3 finite numbers%s", key, positive ? " > 0" : "");
    if (!json_is_array(v) || json_array_size(v) != 3) return bad(err, cap, msg);
    float tmp[3];
    for (size_t i = 0; i < 3; i++) {
        json_t *e = json_array_get(v, i);
        if (!json_is_number(e)) return bad(err, cap, msg);
        double d = json_number_value(e);
        if (!isfinite(d) || fabs(d) > 1e6 || (positive && !(d > 1e-12))) return bad(err, cap, msg);
        tmp[i] = (float)d;
    }
    memcpy(out, tmp, sizeof tmp);
    return PM_OK;
}

static pm_code read_output(json_t *o, pm_model_config *cfg, char *err, size_t cap) {
    if (!json_is_object(o)) return bad(err, cap, "output must be an object");
    json_t *v;
    if ((v = json_object_get(o, "activation"))) {
        const char *s = json_string_value(v);
        if (s && strcmp(s, "probability") == 0) cfg->activation = PM_ACTIVATION_PROBABILITY;
        else if (s && strcmp(s, "logit") == 0) cfg->activation = PM_ACTIVATION_LOGIT;
        else return bad(err, cap, "output.activation must be \"probability\" or \"logit\"");
    }
    if ((v = json_object_get(o, "normalize"))) {
        const char *s = json_string_value(v);
        if (s && strcmp(s, "minmax") == 0) cfg->minmax_normalize = 1;
        else if (s && strcmp(s, "none") == 0) cfg->minmax_normalize = 0;
        else return bad(err, cap, "output.normalize must be \"minmax\" or \"none\"");
    }
    if ((v = json_object_get(o, "resize"))) {
        const char *s = json_string_value(v);
        if (!s || strcmp(s, "bilinear") != 0) return bad(err, cap, "output.resize must be \"bilinear\"");
    }
    return read_bool(o, "align_corners", "output.align_corners", &cfg->align_corners, err, cap);
}

static pm_code read_root(json_t *root, pm_model_config *cfg, char *err, size_t cap) {
    if (!json_is_object(root)) return bad(err, cap, "the top level must be an object");
    json_t *v;
    if ((v = json_object_get(root, "format"))) {
        const char *s = json_string_value(v);
        if (!s || strcmp(s, "petmatte-manifest") != 0)
            return bad(err, cap, "format must be \"petmatte-manifest\"");
    }
    if ((v = json_object_get(root, "version"))) {
        if (!json_is_integer(v) || json_integer_value(v) < 1)
            return bad(err, cap, "version must be a positive integer");
        if (json_integer_value(v) > 1)
            return bad(err, cap, "version is newer than this libpetmatte reads (1)");
    }
    if ((v = json_object_get(root, "name"))) {
        const char *s = json_string_value(v);
        if (!s || !*s || strlen(s) >= sizeof cfg->name) return bad(err, cap, "name must be a string of 1..63 bytes");
        snprintf(cfg->name, sizeof cfg->name, "%s", s);
    }
    if ((v = json_object_get(root, "input"))) {
        if (!json_is_object(v)) return bad(err, cap, "input must be an object");
        pm_code rc;
        if ((rc = read_side(v, "width", &cfg->input_width, err, cap)) != PM_OK) return rc;
        if ((rc = read_side(v, "height", &cfg->input_height, err, cap)) != PM_OK) return rc;
        if ((rc = read_triple(v, "mean", cfg->mean, 0, err, cap)) != PM_OK) return rc;
        if ((rc = read_triple(v, "std", cfg->std, 1, err, cap)) != PM_OK) return rc;
    }
    if ((v = json_object_get(root, "output"))) {
        pm_code rc = read_output(v, cfg, err, cap);
        if (rc != PM_OK) return rc;
    }
    if ((v = json_object_get(root, "gpu"))) {
        if (!json_is_object(v)) return bad(err, cap, "gpu must be an object");
        pm_code rc = read_bool(v, "channels_last", "gpu.channels_last", &cfg->channels_last, err, cap);
        if (rc != PM_OK) return rc;
        json_t *fs = json_object_get(v, "forward_streams");
        if (fs) {
            if (!json_is_integer(fs) || json_integer_value(fs) < 1 ||
                json_integer_value(fs) > PM_MAX_FORWARD_STREAMS)
                return bad(err, cap, "gpu.forward_streams must be an integer in 1..8");
            cfg->forward_streams = (int)json_integer_value(fs);
        }
        rc = read_bool(v, "graph_safe", "gpu.graph_safe", &cfg->graph_safe, err, cap);
        if (rc != PM_OK) return rc;
    }
    if ((v = json_object_get(root, "cpu"))) {
        if (!json_is_object(v)) return bad(err, cap, "cpu must be an object");
        pm_code rc = read_bool(v, "bf16", "cpu.bf16", &cfg->cpu_bf16, err, cap);
        if (rc != PM_OK) return rc;
    }
    return read_bool(root, "random_weights", "random_weights", &cfg->random_weights, err, cap);
}

pm_code pm_manifest_parse(const char *json, size_t len, pm_model_config *cfg, char *err, size_t cap) {
    if (!json || len == 0) return bad(err, cap, "empty");
    if (len > PM_MANIFEST_MAX_BYTES) return bad(err, cap, "larger than 1 MiB");
    json_error_t jerr;
    /* Work on a copy so a failure leaves the caller's defaults untouched. */
    pm_model_config tmp = *cfg;
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        snprintf(err, cap, "model manifest petmatte.json is not valid JSON (line %d, column %d): %s", jerr.line,
                 jerr.column, jerr.text);
        return PM_ERR_MODEL;
    }
    pm_code rc = read_root(root, &tmp, err, cap);
    json_decref(root);
    if (rc == PM_OK) *cfg = tmp;
    return rc;
}
