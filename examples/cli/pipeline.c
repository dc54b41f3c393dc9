/* pipeline.c - raw frames through pm_remove_bg on worker threads, results in order.
 *
 * Why threads: with max_batch > 1 the library serves several concurrent calls with
 * one forward pass, so throughput needs several frames in flight; with one worker,
 * decoding and encoding on the main thread still overlap the model. Memory is
 * bounded: a ring of 2 slots a worker, each holding one input frame and its result. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

enum { SLOT_FREE = 0, SLOT_QUEUED, SLOT_RUNNING, SLOT_DONE };

typedef struct slot {
    int state;
    unsigned char *in; /* frame_bytes of raw pixels */
    pm_image image;
    int64_t tag;
    pm_output *out;
    pm_code code;
    char err[512];     /* pm_errmsg is per thread: copied in the worker */
} slot;

struct cli_pipe {
    pm_ctx *ctx;
    pm_remove_options opt;
    cli_pipe_sink sink;
    void *user;
    size_t frame_bytes;
    slot *slots;
    size_t nslots;
    pthread_t *threads;
    int nthreads;
    pthread_mutex_t mu;
    pthread_cond_t work, done;
    uint64_t next_in;   /* frames submitted */
    uint64_t next_take; /* frames taken by a worker */
    uint64_t next_out;  /* frames handed to the sink */
    int stop;
    int failed;
    char err[768];
};

static void *worker_main(void *arg) {
    cli_pipe *p = arg;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->stop && p->next_take == p->next_in) pthread_cond_wait(&p->work, &p->mu);
        if (p->stop) break;
        slot *s = &p->slots[p->next_take % p->nslots];
        p->next_take++;
        s->state = SLOT_RUNNING;
        pthread_mutex_unlock(&p->mu);
        pm_output *out = NULL;
        pm_code code = pm_remove_bg(p->ctx, &s->image, &p->opt, &out);
        if (code != PM_OK) snprintf(s->err, sizeof s->err, "%s", pm_errmsg(p->ctx));
        pthread_mutex_lock(&p->mu);
        s->out = out;
        s->code = code;
        s->state = SLOT_DONE;
        pthread_cond_broadcast(&p->done);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

cli_pipe *cli_pipe_new(pm_ctx *ctx, const pm_remove_options *opt, int workers, size_t frame_bytes,
                       cli_pipe_sink sink, void *user) {
    if (workers < 1) workers = 1;
    cli_pipe *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->ctx = ctx;
    p->opt = *opt;
    p->sink = sink;
    p->user = user;
    p->frame_bytes = frame_bytes;
    p->nslots = (size_t)workers * 2;
    p->slots = calloc(p->nslots, sizeof *p->slots);
    p->threads = calloc((size_t)workers, sizeof *p->threads);
    if (!p->slots || !p->threads) goto fail;
    for (size_t i = 0; i < p->nslots; i++)
        if (!(p->slots[i].in = malloc(frame_bytes ? frame_bytes : 1))) goto fail;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->work, NULL);
    pthread_cond_init(&p->done, NULL);
    for (int i = 0; i < workers; i++) {
        if (pthread_create(&p->threads[i], NULL, worker_main, p) != 0) break;
        p->nthreads++;
    }
    if (p->nthreads == 0) {
        pthread_mutex_destroy(&p->mu);
        pthread_cond_destroy(&p->work);
        pthread_cond_destroy(&p->done);
        goto fail;
    }
    return p;
fail:
    if (p->slots)
        for (size_t i = 0; i < p->nslots; i++) free(p->slots[i].in);
    free(p->slots);
    free(p->threads);
    free(p);
    return NULL;
}

/* Hands the oldest frame to the sink once it is done (waiting for it when wait is
 * set). Returns 1 when one was handed over, 0 when none was ready, -1 on failure. */
static int drain_one(cli_pipe *p, int wait) {
    if (p->failed) return -1;
    pthread_mutex_lock(&p->mu);
    if (p->next_out == p->next_in) {
        pthread_mutex_unlock(&p->mu);
        return 0;
    }
    slot *s = &p->slots[p->next_out % p->nslots];
    while (wait && s->state != SLOT_DONE) pthread_cond_wait(&p->done, &p->mu);
    int ready = s->state == SLOT_DONE;
    pthread_mutex_unlock(&p->mu);
    if (!ready) return 0;
    uint64_t number = p->next_out + 1;
    int rc = 0;
    if (s->code != PM_OK) {
        snprintf(p->err, sizeof p->err, "frame %llu: %s", (unsigned long long)number, s->err);
        rc = -1;
    } else {
        char why[512] = "";
        if (p->sink(p->user, number, s->tag, s->out, why, sizeof why) != 0) {
            snprintf(p->err, sizeof p->err, "frame %llu: %s", (unsigned long long)number, why);
            rc = -1;
        }
    }
    pm_output_free(s->out);
    s->out = NULL;
    if (rc != 0) {
        p->failed = 1;
        return -1;
    }
    pthread_mutex_lock(&p->mu);
    s->state = SLOT_FREE;
    p->next_out++;
    pthread_mutex_unlock(&p->mu);
    return 1;
}

unsigned char *cli_pipe_next(cli_pipe *p) {
    if (p->failed) return NULL;
    /* The ring is full: the oldest frame must leave before a new one enters. */
    while (p->next_in - p->next_out >= p->nslots)
        if (drain_one(p, 1) < 0) return NULL;
    return p->slots[p->next_in % p->nslots].in;
}

int cli_pipe_submit(cli_pipe *p, int format, int width, int height, size_t stride, int64_t tag) {
    if (p->failed) return -1;
    slot *s = &p->slots[p->next_in % p->nslots];
    pm_image_init(&s->image);
    s->image.format = format;
    s->image.data = s->in;
    s->image.size = p->frame_bytes;
    s->image.width = width;
    s->image.height = height;
    s->image.stride = stride;
    s->tag = tag;
    s->code = PM_OK;
    s->err[0] = '\0';
    pthread_mutex_lock(&p->mu);
    s->state = SLOT_QUEUED;
    p->next_in++;
    pthread_cond_signal(&p->work);
    pthread_mutex_unlock(&p->mu);
    int rc;
    while ((rc = drain_one(p, 0)) > 0) {
    }
    return rc < 0 ? -1 : 0;
}

int cli_pipe_finish(cli_pipe *p) {
    int rc;
    while ((rc = drain_one(p, 1)) > 0) {
    }
    return rc < 0 ? -1 : 0;
}

const char *cli_pipe_error(const cli_pipe *p) { return p->err; }

uint64_t cli_pipe_written(const cli_pipe *p) { return p->next_out; }

void cli_pipe_free(cli_pipe *p) {
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->nthreads; i++) pthread_join(p->threads[i], NULL);
    for (size_t i = 0; i < p->nslots; i++) {
        pm_output_free(p->slots[i].out);
        free(p->slots[i].in);
    }
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->work);
    pthread_cond_destroy(&p->done);
    free(p->slots);
    free(p->threads);
    free(p);
}

int cli_frames_in_flight(pm_ctx *ctx) {
    pm_status_info st;
    pm_status_info_init(&st);
    if (pm_status(ctx, &st) != PM_OK || st.state != PM_STATE_READY) return 1;
    int n = st.max_batch > st.forward_streams ? st.max_batch : st.forward_streams;
    return n > 1 ? n : 1;
}
