/*
 * tune_option.h - the `--tune KEY=VALUE` option of petmatte, petmatte-server and
 * petmatte-bench: one repeatable option for every pm_tune key, so that a key the
 * library adds needs no new flag here.
 *
 * KEY is a name pm_tune_name gives ("cuda_graph", "forward_streams", ...); VALUE an
 * integer, or auto, on, off (-1, 1, 0). The range of each key is the library's:
 * pm_tune_set checks it after pm_open and says what is wrong.
 */
#ifndef PETMATTE_EXAMPLES_TUNE_OPTION_H
#define PETMATTE_EXAMPLES_TUNE_OPTION_H

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <petmatte.h>

typedef struct tune_setting {
    pm_tune key;
    int value;
} tune_setting;

/* The keys as "a, b, c", for messages and help. */
static inline void tune_option_keys(char *buf, size_t cap) {
    size_t len = 0;
    if (cap) buf[0] = '\0';
    for (int k = 1; pm_tune_name((pm_tune)k) != NULL; k++) {
        int n = snprintf(buf + len, cap - len, "%s%s", k > 1 ? ", " : "", pm_tune_name((pm_tune)k));
        if (n < 0 || (size_t)n >= cap - len) break;
        len += (size_t)n;
    }
}

/* The keys for a help text: "a, b, c" wrapped into lines of at most width columns,
 * each starting with indent spaces and ending with a newline. */
static inline void tune_option_keys_wrapped(char *buf, size_t cap, int indent, int width) {
    size_t len = 0;
    int col = 0;
    if (cap) buf[0] = '\0';
    for (int k = 1; pm_tune_name((pm_tune)k) != NULL; k++) {
        const char *name = pm_tune_name((pm_tune)k);
        const char *sep = pm_tune_name((pm_tune)(k + 1)) != NULL ? "," : "\n";
        int n;
        if (col > indent && col + 1 + (int)strlen(name) + 1 > width) {
            n = snprintf(buf + len, cap - len, "\n");
            if (n < 0 || (size_t)n >= cap - len) return;
            len += (size_t)n;
            col = 0;
        }
        n = snprintf(buf + len, cap - len, "%*s%s%s", col ? 1 : indent, "", name, sep);
        if (n < 0 || (size_t)n >= cap - len) return;
        len += (size_t)n;
        col += n;
    }
}

/* Parses "KEY=VALUE" into *out. 1 on success; else 0 with a one-line message in
 * why that names the valid keys (unknown key) or the valid values. */
static inline int tune_option_parse(const char *text, tune_setting *out, char *why, size_t cap) {
    char keys[512];
    const char *eq = strchr(text, '=');
    if (!eq || eq == text) {
        tune_option_keys(keys, sizeof keys);
        snprintf(why, cap, "--tune '%s' is not KEY=VALUE; keys: %s", text, keys);
        return 0;
    }
    size_t klen = (size_t)(eq - text);
    int key = 0;
    for (int k = 1; pm_tune_name((pm_tune)k) != NULL; k++) {
        const char *name = pm_tune_name((pm_tune)k);
        if (strlen(name) == klen && strncmp(name, text, klen) == 0) {
            key = k;
            break;
        }
    }
    if (!key) {
        tune_option_keys(keys, sizeof keys);
        snprintf(why, cap, "--tune: unknown key '%.*s'; keys: %s", (int)klen, text, keys);
        return 0;
    }
    const char *v = eq + 1;
    int value;
    if (!strcmp(v, "auto")) {
        value = -1;
    } else if (!strcmp(v, "on")) {
        value = 1;
    } else if (!strcmp(v, "off")) {
        value = 0;
    } else {
        char *end = NULL;
        errno = 0;
        long n = strtol(v, &end, 10);
        if (!*v || errno || *end || n < INT_MIN || n > INT_MAX || (*v != '-' && (*v < '0' || *v > '9'))) {
            snprintf(why, cap, "--tune %.*s: '%s' is not an integer, auto, on or off", (int)klen, text, v);
            return 0;
        }
        value = (int)n;
    }
    out->key = (pm_tune)key;
    out->value = value;
    return 1;
}

/* Applies settings in order (a later one for the same key wins) with pm_tune_set.
 * PM_OK, or the failing call's code with "--tune KEY=VALUE: <library message>" in why. */
static inline pm_code tune_option_apply(pm_ctx *ctx, const tune_setting *settings, size_t n, char *why,
                                        size_t cap) {
    for (size_t i = 0; i < n; i++) {
        pm_code rc = pm_tune_set(ctx, settings[i].key, settings[i].value);
        if (rc != PM_OK) {
            snprintf(why, cap, "--tune %s=%d: %s", pm_tune_name(settings[i].key), settings[i].value,
                     pm_errmsg(ctx));
            return rc;
        }
    }
    return PM_OK;
}

#endif /* PETMATTE_EXAMPLES_TUNE_OPTION_H */
