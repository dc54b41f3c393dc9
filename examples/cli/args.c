/* args.c - a small option parser and the value parsers.
 *
 * Why not getopt_long: it is not POSIX, and its messages are not the one-line,
 * command-named errors this tool promises. Accepted forms: --name value,
 * --name=value, -x value, -xvalue, flags anywhere among positionals, "--" to end
 * options, and "-" as a positional (stdin/stdout). An optional value is only ever
 * inline (--name=value), so that the next argument stays a positional. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static void vprint_line(const char *fmt, va_list ap) {
    char msg[1024];
    vsnprintf(msg, sizeof msg, fmt, ap);
    for (char *p = msg; *p; p++)
        if (*p == '\n' || *p == '\r') *p = ' ';
    cli_progress_interrupt();
    fprintf(stderr, "%s: %s\n", CLI_NAME, msg);
}

void cli_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vprint_line(fmt, ap);
    va_end(ap);
}

int cli_usage(const char *cmd, const char *fmt, ...) {
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (cmd)
        cli_error("%s: %s (see '%s %s --help')", cmd, msg, CLI_NAME, cmd);
    else
        cli_error("%s (see '%s --help')", msg, CLI_NAME);
    return CLI_EXIT_USAGE;
}

void cli_args_init(cli_args *a, const char *cmd, int argc, char **argv) {
    a->argc = argc;
    a->argv = argv;
    a->i = 0;
    a->only_positional = 0;
    a->cmd = cmd;
}

const char *cli_opt_name(const cli_opt *opts, int id, char *buf, size_t cap) {
    for (const cli_opt *o = opts; o->name; o++) {
        if (o->id == id) {
            snprintf(buf, cap, "--%s", o->name);
            return buf;
        }
    }
    snprintf(buf, cap, "option");
    return buf;
}

int cli_next(cli_args *a, const cli_opt *opts, int *id, const char **value) {
    *value = NULL;
    *id = 0;
    if (a->i >= a->argc) return CLI_ARG_END;
    char *arg = a->argv[a->i++];
    if (a->only_positional || arg[0] != '-' || arg[1] == '\0') {
        *value = arg;
        return CLI_ARG_POSITIONAL;
    }
    if (strcmp(arg, "--") == 0) {
        a->only_positional = 1;
        return cli_next(a, opts, id, value);
    }
    const cli_opt *found = NULL;
    const char *inline_value = NULL;
    if (arg[1] == '-') {
        const char *name = arg + 2;
        const char *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        for (const cli_opt *o = opts; o->name; o++) {
            if (strlen(o->name) == len && strncmp(o->name, name, len) == 0) {
                found = o;
                break;
            }
        }
        if (!found) {
            cli_usage(a->cmd, "unknown option '%.*s'", (int)(len + 2), arg);
            return CLI_ARG_ERROR;
        }
        if (eq) {
            if (!found->has_value) {
                cli_usage(a->cmd, "option '--%s' takes no value", found->name);
                return CLI_ARG_ERROR;
            }
            inline_value = eq + 1;
        }
    } else {
        for (const cli_opt *o = opts; o->name; o++) {
            if (o->short_name && o->short_name == arg[1]) {
                found = o;
                break;
            }
        }
        if (!found) {
            cli_usage(a->cmd, "unknown option '-%c'", arg[1]);
            return CLI_ARG_ERROR;
        }
        if (arg[2] != '\0') {
            if (!found->has_value) {
                cli_usage(a->cmd, "unknown option '%s' (flags cannot be combined)", arg);
                return CLI_ARG_ERROR;
            }
            inline_value = arg + 2;
        }
    }
    *id = found->id;
    if (found->has_value == CLI_VALUE_INLINE) { /* "--overlay" or "--overlay=green" */
        *value = inline_value;
    } else if (found->has_value) {
        if (inline_value) {
            *value = inline_value;
        } else if (a->i < a->argc) {
            *value = a->argv[a->i++];
        } else {
            cli_usage(a->cmd, "option '--%s' needs a value", found->name);
            return CLI_ARG_ERROR;
        }
    }
    return CLI_ARG_OPTION;
}

int cli_parse_int(const char *s, long lo, long hi, int *out) {
    if (!s || !*s || isspace((unsigned char)*s)) return 0;
    errno = 0;
    char *end;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < lo || v > hi) return 0;
    *out = (int)v;
    return 1;
}

int cli_parse_float(const char *s, float lo, float hi, float *out) {
    if (!s || !*s || isspace((unsigned char)*s)) return 0;
    errno = 0;
    char *end;
    double v = strtod(s, &end);
    if (errno || *end || !isfinite(v) || v < lo || v > hi) return 0;
    *out = (float)v;
    return 1;
}

int cli_parse_unit(const char *s, float *out) { return cli_parse_float(s, 0.0f, 1.0f, out); }

static int hex_digit(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    c = tolower(c);
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

static const struct {
    const char *name;
    uint32_t rgb;
} color_names[] = {
    {"white", 0xFFFFFF}, {"black", 0x000000}, {"gray", 0x808080},   {"grey", 0x808080},
    {"red", 0xFF0000},   {"green", 0x00FF00}, {"blue", 0x0000FF},   {"yellow", 0xFFFF00},
    {"cyan", 0x00FFFF},  {"magenta", 0xFF00FF},
};

int cli_parse_color(const char *s, uint32_t *rgb) {
    if (!s) return 0;
    for (size_t i = 0; i < sizeof color_names / sizeof color_names[0]; i++) {
        const char *a = s, *b = color_names[i].name;
        while (*a && tolower((unsigned char)*a) == *b) a++, b++;
        if (!*a && !*b) {
            *rgb = color_names[i].rgb;
            return 1;
        }
    }
    /* "#RRGGBB", "RRGGBB", "0xRRGGBB" and the short "#RGB" ('#' alone starts a shell
     * comment when unquoted, hence the forms without it). */
    if (s[0] == '#')
        s++;
    else if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
        s += 2;
    size_t n = strlen(s);
    if (n != 6 && n != 3) return 0;
    uint32_t v = 0;
    for (size_t i = 0; i < n; i++) {
        int d = hex_digit((unsigned char)s[i]);
        if (d < 0) return 0;
        v = n == 6 ? (v << 4) | (uint32_t)d : (v << 8) | (uint32_t)(d * 17);
    }
    *rgb = v;
    return 1;
}

int cli_parse_precision(const char *s, int *out) {
    static const struct {
        const char *name;
        int value;
    } names[] = {{"auto", PM_PRECISION_AUTO},
                 {"fp32", PM_PRECISION_FP32},
                 {"fp16", PM_PRECISION_FP16},
                 {"bf16", PM_PRECISION_BF16}};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (strcmp(s, names[i].name) == 0) {
            *out = names[i].value;
            return 1;
        }
    }
    return 0;
}
