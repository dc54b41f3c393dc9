/* watch.c - `petmatte remove FOLDER -o OUTDIR --watch`: keeps running and cuts out
 * each image that appears in FOLDER, until SIGINT or SIGTERM.
 *
 * A file is read once it is complete: on IN_CLOSE_WRITE (written in place and closed)
 * or IN_MOVED_TO (renamed in), never on IN_CREATE, when a writer may be half-way.
 * SIGINT and SIGTERM only write their number into a pipe that is polled beside the
 * inotify descriptor (whichever thread the kernel picks runs the handler: the model's
 * libraries start threads of their own), so an image in progress is always finished
 * and the summary printed. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "cli.h"

static int stop_pipe[2] = {-1, -1};

static void on_stop(int sig) {
    int saved = errno;
    unsigned char b = (unsigned char)sig;
    if (write(stop_pipe[1], &b, 1) < 0) {
        /* full: a stop is already pending */
    }
    errno = saved;
}

static int open_stop_pipe(void) {
    if (pipe(stop_pipe) != 0) return -1;
    for (int i = 0; i < 2; i++) {
        fcntl(stop_pipe[i], F_SETFD, FD_CLOEXEC);
        fcntl(stop_pipe[i], F_SETFL, O_NONBLOCK);
    }
    cli_on_stop_signals(on_stop, 0, 0);
    return 0;
}

static void close_stop_pipe(void) {
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    for (int i = 0; i < 2; i++) {
        if (stop_pipe[i] >= 0) close(stop_pipe[i]);
        stop_pipe[i] = -1;
    }
}

/* Cuts out dir/name into outdir. 0, or -1 with the reason printed. */
static int cut_one(pm_ctx *ctx, const cli_remove_request *req, const char *dir, const char *outdir,
                   const char *name) {
    char err[768];
    char *in = cli_join(dir, name);
    char *stem = cli_stem(name);
    char *out_name = stem ? malloc(strlen(stem) + 8) : NULL;
    if (out_name) sprintf(out_name, "%s.%s", stem, req->made_ext);
    char *out = out_name ? cli_join(outdir, out_name) : NULL;
    free(stem);
    free(out_name);
    if (!in || !out) {
        free(in);
        free(out);
        cli_error("out of memory");
        return -1;
    }
    pm_params defaults;
    pm_params_init(&defaults);
    unsigned char *data = NULL;
    size_t size = 0;
    int rc = cli_read_file(in, (size_t)defaults.max_encoded_bytes, &data, &size, err, sizeof err);
    if (rc != 0) {
        cli_error("%s", err);
    } else {
        pm_image image;
        pm_image_init(&image);
        image.format = PM_FORMAT_ENCODED;
        image.data = data;
        image.size = size;
        pm_remove_options o = req->opt;
        o.encoding = strcmp(req->made_ext, "webp") == 0 ? req->image_encoding : PM_ENCODING_PNG;
        pm_output *result = NULL;
        if (pm_remove_bg(ctx, &image, &o, &result) != PM_OK) {
            cli_error("%s: %s", in, pm_errmsg(ctx));
            rc = -1;
        } else if ((rc = cli_write_atomic(out, result->data, result->size, err, sizeof err)) != 0) {
            cli_error("%s: %s", in, err);
        } else if (!req->quiet) {
            fprintf(stderr, "%s: %s -> %s\n", CLI_NAME, in, out);
        }
        pm_output_free(result);
    }
    free(data);
    free(in);
    free(out);
    return rc;
}

int cli_watch(pm_ctx *ctx, const cli_remove_request *req, const char *dir, const char *outdir) {
    /* Warm first: a broken model stops here, and the first image is not slower. */
    if (pm_warmup(ctx) != PM_OK) {
        cli_error("cannot load the model: %s", pm_errmsg(ctx));
        return CLI_EXIT_MODEL;
    }
    int ifd = inotify_init1(IN_CLOEXEC);
    int sfd = open_stop_pipe() == 0 ? stop_pipe[0] : -1;
    if (ifd < 0 || sfd < 0) {
        cli_error("cannot watch %s: %s", dir, strerror(errno));
        if (ifd >= 0) close(ifd);
        close_stop_pipe();
        return CLI_EXIT_FAILED;
    }
    if (inotify_add_watch(ifd, dir, IN_CLOSE_WRITE | IN_MOVED_TO | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR) < 0) {
        cli_error("cannot watch %s: %s", dir, strerror(errno));
        close(ifd);
        close_stop_pipe();
        return CLI_EXIT_FAILED;
    }
    if (!req->quiet)
        fprintf(stderr, "%s: watching %s for new images (cut-outs in %s); Ctrl-C to stop\n", CLI_NAME, dir, outdir);
    double t0 = cli_now();
    size_t written = 0, failed = 0;
    int stop_sig = 0, gone = 0, broken = 0;
    /* Aligned for struct inotify_event; room for many events at once. */
    _Alignas(struct inotify_event) char buf[16 * (sizeof(struct inotify_event) + NAME_MAX + 1)];
    while (!stop_sig && !gone && !broken) {
        struct pollfd fds[2] = {{sfd, POLLIN, 0}, {ifd, POLLIN, 0}};
        if (poll(fds, 2, -1) < 0) {
            if (errno == EINTR) continue;
            cli_error("cannot watch %s: %s", dir, strerror(errno));
            broken = 1;
            break;
        }
        if (fds[0].revents & POLLIN) {
            unsigned char b = 0;
            stop_sig = read(sfd, &b, 1) == 1 ? b : SIGTERM;
            break; /* stop before starting another image */
        }
        if (!(fds[1].revents & POLLIN)) continue;
        ssize_t n = read(ifd, buf, sizeof buf);
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN) continue;
            cli_error("cannot watch %s: %s", dir, strerror(errno));
            broken = 1;
            break;
        }
        for (char *p = buf; p < buf + n;) {
            const struct inotify_event *ev = (const struct inotify_event *)p;
            p += sizeof *ev + ev->len;
            if (ev->mask & IN_Q_OVERFLOW) {
                cli_error("note: too many changes at once in %s; some new images may have been missed", dir);
                continue;
            }
            if (ev->mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED)) {
                gone = 1;
                break;
            }
            if (!ev->len || (ev->mask & IN_ISDIR) || !cli_is_image_name(ev->name)) continue;
            if (cut_one(ctx, req, dir, outdir, ev->name) == 0)
                written++;
            else
                failed++;
        }
    }
    close(ifd);
    close_stop_pipe();
    if (gone) cli_error("%s was removed or moved away; stopped watching it", dir);
    if (!req->quiet || failed || gone || broken) {
        char why[64] = "";
        if (stop_sig) snprintf(why, sizeof why, " (%s)", stop_sig == SIGINT ? "SIGINT" : "SIGTERM");
        fprintf(stderr, "%s: stopped watching %s%s after %.1f s: %zu image%s written to %s, %zu failed\n", CLI_NAME,
                dir, why, cli_now() - t0, written, written == 1 ? "" : "s", outdir, failed);
    }
    return failed || gone || broken ? CLI_EXIT_FAILED : CLI_EXIT_OK;
}
