/* progress.c - one redrawn line on stderr while a folder or a video is processed
 * (terminals only). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

double cli_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int columns(void) {
    struct winsize ws;
    if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 20) return ws.ws_col;
    const char *env = getenv("COLUMNS");
    int n = env ? atoi(env) : 0;
    return n >= 20 ? n : 80;
}

/* The bar on screen, so that cli_error can clear it before printing a line. */
static cli_progress *active;

void cli_progress_interrupt(void) {
    if (active) cli_progress_clear(active);
}

void cli_progress_init(cli_progress *p, size_t total, int enabled) {
    p->enabled = enabled && total > 0;
    active = p->enabled ? p : NULL;
    p->total = total;
    p->t0 = cli_now();
    p->drawn = 0;
    p->unit = "img/s";
    p->noun = "";
}

void cli_progress_init_frames(cli_progress *p, size_t total, int enabled) {
    cli_progress_init(p, total, enabled);
    p->enabled = enabled; /* an unknown frame count still shows frames and fps */
    active = p->enabled ? p : NULL;
    p->unit = "fps";
    p->noun = " frames";
}

void cli_progress_draw(cli_progress *p, size_t done, size_t failed, const char *name) {
    if (!p->enabled) return;
    int cols = columns();
    char tail[96];
    double elapsed = cli_now() - p->t0;
    double rate = elapsed > 0 ? (double)done / elapsed : 0.0;
    int n = p->total ? snprintf(tail, sizeof tail, " %zu/%zu%s", done, p->total, p->noun)
                     : snprintf(tail, sizeof tail, " %zu%s", done, p->noun);
    if (failed) n += snprintf(tail + n, sizeof tail - (size_t)n, " (%zu failed)", failed);
    if (done > 0 && done < p->total && rate > 0)
        snprintf(tail + n, sizeof tail - (size_t)n, " %.1f %s, %.0f s left", rate, p->unit,
                 (double)(p->total - done) / rate);
    else if (done > 0 && !p->total && rate > 0)
        snprintf(tail + n, sizeof tail - (size_t)n, " %.1f %s", rate, p->unit);
    int bar = cols / 3;
    if (bar > 40) bar = 40;
    if (!p->total) bar = 0; /* nothing to fill against */
    int fill = p->total ? (int)((double)bar * (double)done / (double)p->total) : bar;
    char line[512];
    size_t len = 0;
    if (bar) {
        line[len++] = '[';
        for (int i = 0; i < bar; i++) line[len++] = i < fill ? '=' : (i == fill ? '>' : ' ');
        line[len++] = ']';
    }
    int room = cols - 1 - (int)len;
    int t = snprintf(line + len, sizeof line - len, "%.*s", room > 0 ? room : 0, tail);
    len += (size_t)(t > 0 ? t : 0);
    room = cols - 1 - (int)len - 2;
    if (name && room > 8) {
        const char *base = strrchr(name, '/');
        base = base ? base + 1 : name;
        size_t bl = strlen(base);
        if ((int)bl > room) base += bl - (size_t)room;
        snprintf(line + len, sizeof line - len, "  %s", base);
    }
    fprintf(stderr, "\r\033[K%s", line);
    fflush(stderr);
    p->drawn = 1;
}

void cli_progress_clear(cli_progress *p) {
    if (!p->enabled || !p->drawn) return;
    fputs("\r\033[K", stderr);
    p->drawn = 0;
}

void cli_progress_end(cli_progress *p) {
    if (active == p) active = NULL;
    if (!p->enabled || !p->drawn) return;
    fputc('\n', stderr);
    p->drawn = 0;
}
