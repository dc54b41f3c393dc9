/* files.c - reading inputs, writing outputs atomically, path helpers. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

/* The temporary file being written, so that a signal handler can remove it. */
static char tmp_path[PATH_MAX + 64];
static volatile sig_atomic_t tmp_active;

void cli_cleanup_on_signal(void) {
    if (tmp_active) unlink(tmp_path); /* async-signal-safe */
}

void cli_on_stop_signals(void (*handler)(int), int sa_flags, int with_hup) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = handler;
    sa.sa_flags = sa_flags;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    if (with_hup) sigaction(SIGHUP, &sa, NULL);
}

int cli_read_fd(int fd, const char *name, size_t limit, unsigned char **data, size_t *size, char *err,
                size_t errcap) {
    *data = NULL;
    *size = 0;
    size_t cap = 1 << 16, len = 0;
    struct stat st;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
        if ((uint64_t)st.st_size > (uint64_t)limit) {
            snprintf(err, errcap, "%s: %lld bytes is over the limit of %zu bytes", name,
                     (long long)st.st_size, limit);
            return -1;
        }
        cap = (size_t)st.st_size + 1; /* +1: reach EOF without growing */
    }
    unsigned char *buf = malloc(cap);
    if (!buf) {
        snprintf(err, errcap, "%s: out of memory", name);
        return -1;
    }
    for (;;) {
        if (len == cap) {
            if (cap > limit) {
                free(buf);
                snprintf(err, errcap, "%s: more than the limit of %zu bytes", name, limit);
                return -1;
            }
            size_t ncap = cap * 2;
            unsigned char *nb = realloc(buf, ncap);
            if (!nb) {
                free(buf);
                snprintf(err, errcap, "%s: out of memory", name);
                return -1;
            }
            buf = nb;
            cap = ncap;
        }
        ssize_t n = read(fd, buf + len, cap - len);
        if (n < 0) {
            if (errno == EINTR) continue;
            snprintf(err, errcap, "%s: %s", name, strerror(errno));
            free(buf);
            return -1;
        }
        if (n == 0) break;
        len += (size_t)n;
    }
    if (len > limit) {
        free(buf);
        snprintf(err, errcap, "%s: more than the limit of %zu bytes", name, limit);
        return -1;
    }
    if (len == 0) {
        free(buf);
        snprintf(err, errcap, "%s: empty input", name);
        return -1;
    }
    *data = buf;
    *size = len;
    return 0;
}

int cli_read_file(const char *path, size_t limit, unsigned char **data, size_t *size, char *err,
                  size_t errcap) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errcap, "%s: %s", path, strerror(errno));
        return -1;
    }
    int rc = cli_read_fd(fd, path, limit, data, size, err, errcap);
    close(fd);
    return rc;
}

int cli_write_fd(int fd, const void *data, size_t size, char *err, size_t errcap) {
    const unsigned char *p = data;
    while (size > 0) {
        ssize_t n = write(fd, p, size);
        if (n < 0) {
            if (errno == EINTR) continue;
            snprintf(err, errcap, "%s", strerror(errno));
            return -1;
        }
        p += n;
        size -= (size_t)n;
    }
    return 0;
}

static mode_t file_mode(void) {
    /* Why: mkstemp makes 0600 files; an output should get the usual 0666 & ~umask. */
    mode_t mask = umask(0);
    umask(mask);
    return (mode_t)(0666 & ~mask);
}

int cli_write_atomic(const char *path, const void *data, size_t size, char *err, size_t errcap) {
    char *dir = cli_dirname(path);
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    if (!dir) {
        snprintf(err, errcap, "out of memory");
        return -1;
    }
    int w = snprintf(tmp_path, sizeof tmp_path, "%s/.%s.petmatte-XXXXXX", dir, base);
    free(dir);
    if (w < 0 || (size_t)w >= sizeof tmp_path) {
        snprintf(err, errcap, "%s: path too long", path);
        return -1;
    }
    int fd = mkstemp(tmp_path);
    if (fd < 0) {
        snprintf(err, errcap, "cannot write in the folder of %s: %s", path, strerror(errno));
        return -1;
    }
    tmp_active = 1;
    char why[256];
    int rc = cli_write_fd(fd, data, size, why, sizeof why);
    if (rc == 0 && fchmod(fd, file_mode()) != 0) {
        snprintf(why, sizeof why, "%s", strerror(errno));
        rc = -1;
    }
    if (close(fd) != 0 && rc == 0) {
        snprintf(why, sizeof why, "%s", strerror(errno));
        rc = -1;
    }
    if (rc == 0 && rename(tmp_path, path) != 0) {
        snprintf(why, sizeof why, "%s", strerror(errno));
        rc = -1;
    }
    if (rc != 0) {
        unlink(tmp_path);
        snprintf(err, errcap, "cannot write %s: %s", path, why);
    }
    tmp_active = 0;
    return rc;
}

char *cli_join(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    int slash = a > 0 && dir[a - 1] != '/';
    char *s = malloc(a + (size_t)slash + b + 1);
    if (!s) return NULL;
    memcpy(s, dir, a);
    if (slash) s[a] = '/';
    memcpy(s + a + (size_t)slash, name, b + 1);
    return s;
}

char *cli_stem(const char *path) {
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    const char *dot = strrchr(base, '.');
    size_t n = dot && dot != base ? (size_t)(dot - base) : strlen(base);
    char *s = malloc(n + 1);
    if (!s) return NULL;
    memcpy(s, base, n);
    s[n] = '\0';
    return s;
}

char *cli_dirname(const char *path) {
    const char *slash = strrchr(path, '/');
    if (!slash) return strdup(".");
    if (slash == path) return strdup("/");
    size_t n = (size_t)(slash - path);
    char *s = malloc(n + 1);
    if (!s) return NULL;
    memcpy(s, path, n);
    s[n] = '\0';
    return s;
}

int cli_has_suffix_ci(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    if (b > a) return 0;
    s += a - b;
    for (size_t i = 0; i < b; i++)
        if (tolower((unsigned char)s[i]) != tolower((unsigned char)suffix[i])) return 0;
    return 1;
}

int cli_is_image_name(const char *name) {
    /* What the library's decoder (stb_image) reads. */
    static const char *const ext[] = {".png", ".jpg", ".jpeg", ".jpe", ".jfif", ".bmp", ".tga", ".gif",
                                      ".psd", ".pnm", ".ppm",  ".pgm", ".pbm",  ".hdr", ".pic"};
    if (name[0] == '.') return 0; /* hidden files, and our own temporary files */
    for (size_t i = 0; i < sizeof ext / sizeof ext[0]; i++)
        if (cli_has_suffix_ci(name, ext[i])) return 1;
    return 0;
}

int cli_mkdir_p(const char *path, char *err, size_t errcap) {
    char buf[PATH_MAX];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) {
        snprintf(err, errcap, "%s: path too long", path);
        return -1;
    }
    for (char *p = buf + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char c = *p;
            *p = '\0';
            if (mkdir(buf, 0777) != 0 && errno != EEXIST) {
                snprintf(err, errcap, "cannot create folder %s: %s", buf, strerror(errno));
                return -1;
            }
            *p = c;
            if (c == '\0') break;
        }
    }
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) {
        snprintf(err, errcap, "%s: not a folder", path);
        return -1;
    }
    return 0;
}
