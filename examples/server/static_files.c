/*
 * static_files.c - serves the demo page from one folder, and nothing outside it.
 *
 * Safety: the URL (percent-decoded by srv_unescape, which leaves %00 alone) may only use [A-Za-z0-9._-/],
 * no segment may be empty or start with '.', the resolved real path must lie
 * inside the folder (so symlinks cannot lead out), and only regular files are sent.
 */
#define _GNU_SOURCE /* O_CLOEXEC, O_NOFOLLOW, realpath */
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "server.h"

#define MAX_URL 512

static const char *content_type_of(const char *path) {
    static const struct {
        const char *ext, *type;
    } types[] = {
        {".html", "text/html; charset=utf-8"}, {".js", "text/javascript; charset=utf-8"},
        {".css", "text/css; charset=utf-8"},   {".png", "image/png"},
        {".jpg", "image/jpeg"},                {".jpeg", "image/jpeg"},
        {".svg", "image/svg+xml"},             {".ico", "image/x-icon"},
        {".json", "application/json"},         {".txt", "text/plain; charset=utf-8"},
    };
    const char *dot = strrchr(path, '.');
    if (dot && !strchr(dot, '/'))
        for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
            if (!strcmp(dot, types[i].ext)) return types[i].type;
    return "application/octet-stream";
}

/* 1 when url is a plain relative file name: safe characters, no hidden or empty segments. */
static int url_is_safe(const char *url) {
    size_t n = strlen(url);
    if (n < 2 || n > MAX_URL || url[0] != '/') return 0;
    for (const char *p = url; *p; p++) {
        char ch = *p;
        int ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                 ch == '.' || ch == '_' || ch == '-' || ch == '/';
        if (!ok) return 0;
        /* every segment starts after a '/': it may be neither empty nor start with '.' */
        if (ch == '/' && (p[1] == '/' || p[1] == '.')) return 0;
    }
    return 1;
}

static int hex_value(char ch) {
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

size_t srv_unescape(void *cls, struct MHD_Connection *conn, char *s) {
    (void)cls, (void)conn;
    char *out = s;
    for (const char *in = s; *in; in++) {
        int hi = in[0] == '%' ? hex_value(in[1]) : -1;
        int lo = hi >= 0 ? hex_value(in[2]) : -1;
        if (lo >= 0 && (hi | lo) != 0) {
            *out++ = (char)(hi * 16 + lo);
            in += 2;
        } else {
            *out++ = *in; /* not an escape, or %00: kept as text */
        }
    }
    *out = '\0';
    return (size_t)(out - s);
}

static enum MHD_Result not_found(struct MHD_Connection *conn) {
    return srv_send_error(conn, MHD_HTTP_NOT_FOUND, "not_found", "no such endpoint or file");
}

enum MHD_Result srv_serve_static(const srv_app *app, struct MHD_Connection *conn, const char *url) {
    if (!app->static_dir[0]) return not_found(conn);
    char rel[MAX_URL + 16];
    size_t n = strlen(url);
    if (n > MAX_URL) return not_found(conn);
    /* "/" and "/dir/" mean the folder's index.html */
    snprintf(rel, sizeof rel, "%s%s", url, n > 0 && url[n - 1] == '/' ? "index.html" : "");
    if (!url_is_safe(rel)) return not_found(conn);

    char joined[sizeof app->static_dir + sizeof rel];
    snprintf(joined, sizeof joined, "%s%s", app->static_dir, rel);
    char *real = realpath(joined, NULL);
    if (!real) return not_found(conn);
    size_t root_len = strlen(app->static_dir);
    int inside = strncmp(real, app->static_dir, root_len) == 0 && real[root_len] == '/';
    if (!inside) {
        free(real);
        return not_found(conn);
    }
    int fd = open(real, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    free(real);
    if (fd < 0) return not_found(conn);
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return not_found(conn);
    }
    struct MHD_Response *r = MHD_create_response_from_fd64((uint64_t)st.st_size, fd); /* owns fd */
    if (!r) {
        close(fd);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, content_type_of(rel));
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(r, "Content-Security-Policy",
                            "default-src 'self'; img-src 'self' blob: data:; object-src 'none'");
    enum MHD_Result ret = MHD_queue_response(conn, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return ret;
}
