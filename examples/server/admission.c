/*
 * admission.c - work slots, a bounded queue and the counters behind /status "requests".
 *
 * Every connection has its own thread (MHD_USE_THREAD_PER_CONNECTION), so a queued
 * request simply waits on a condition variable; the queue bound is what keeps the
 * number of such threads (and the bodies they hold) bounded.
 */
#include <errno.h>
#include <math.h>
#include <time.h>

#include "admission.h"

static void deadline_after(struct timespec *ts, double ms) {
    clock_gettime(CLOCK_MONOTONIC, ts);
    double ns = (double)ts->tv_nsec + ms * 1e6;
    double whole = floor(ns / 1e9);
    ts->tv_sec += (time_t)whole;
    ts->tv_nsec = (long)(ns - whole * 1e9);
}

static double ms_since(const struct timespec *t0) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - t0->tv_sec) * 1e3 + (double)(now.tv_nsec - t0->tv_nsec) / 1e6;
}

void srv_adm_init(srv_admission *a, int max_inflight, int max_queue, double timeout_s, int retry_after_s) {
    *a = (srv_admission){.max_inflight = max_inflight < 1 ? 1 : max_inflight,
                         .max_queue = max_queue < 0 ? 0 : max_queue,
                         .timeout_ms = timeout_s > 0 ? timeout_s * 1e3 : 0,
                         .retry_after_s = retry_after_s < 1 ? 1 : retry_after_s};
    pthread_mutex_init(&a->mu, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC); /* waits immune to clock changes */
    pthread_cond_init(&a->changed, &attr);
    pthread_condattr_destroy(&attr);
}

int srv_adm_begin(srv_admission *a) {
    pthread_mutex_lock(&a->mu);
    int full = a->inflight >= a->max_inflight && a->queued >= a->max_queue;
    if (full) a->shed++;
    else a->active++;
    pthread_mutex_unlock(&a->mu);
    return full;
}

void srv_adm_end(srv_admission *a) {
    pthread_mutex_lock(&a->mu);
    a->active--;
    pthread_cond_broadcast(&a->changed);
    pthread_mutex_unlock(&a->mu);
}

srv_admit srv_adm_enter(srv_admission *a, double *waited_ms) {
    struct timespec t0, deadline;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (a->timeout_ms > 0) deadline_after(&deadline, a->timeout_ms);
    srv_admit result = SRV_ADMIT_OK;
    pthread_mutex_lock(&a->mu);
    if (a->inflight >= a->max_inflight) {
        if (a->queued >= a->max_queue) {
            a->shed++;
            result = SRV_ADMIT_SHED;
        } else {
            a->queued++;
            int rc = 0;
            while (a->inflight >= a->max_inflight && rc != ETIMEDOUT)
                rc = a->timeout_ms > 0 ? pthread_cond_timedwait(&a->changed, &a->mu, &deadline)
                                       : pthread_cond_wait(&a->changed, &a->mu);
            a->queued--;
            if (a->inflight >= a->max_inflight) {
                a->timed_out++;
                result = SRV_ADMIT_TIMED_OUT;
            }
        }
    }
    if (result == SRV_ADMIT_OK) a->inflight++;
    pthread_mutex_unlock(&a->mu);
    if (waited_ms) *waited_ms = ms_since(&t0);
    return result;
}

void srv_adm_leave(srv_admission *a, int ok) {
    pthread_mutex_lock(&a->mu);
    a->inflight--;
    if (ok) a->served++;
    else a->failed++;
    pthread_cond_broadcast(&a->changed);
    pthread_mutex_unlock(&a->mu);
}

void srv_adm_drain(srv_admission *a) {
    pthread_mutex_lock(&a->mu);
    a->draining = 1;
    pthread_mutex_unlock(&a->mu);
}

int srv_adm_draining(srv_admission *a) {
    pthread_mutex_lock(&a->mu);
    int d = a->draining;
    pthread_mutex_unlock(&a->mu);
    return d;
}

int srv_adm_wait_idle(srv_admission *a, double timeout_s) {
    struct timespec deadline;
    deadline_after(&deadline, timeout_s * 1e3);
    pthread_mutex_lock(&a->mu);
    int rc = 0;
    while (a->active > 0 && rc != ETIMEDOUT) rc = pthread_cond_timedwait(&a->changed, &a->mu, &deadline);
    int left = a->active;
    pthread_mutex_unlock(&a->mu);
    return left;
}

json_t *srv_adm_json(srv_admission *a) {
    pthread_mutex_lock(&a->mu);
    json_t *obj = json_pack("{s:i, s:i, s:i, s:i, s:f, s:I, s:I, s:I, s:I, s:b}",
                            "inflight", a->inflight, "queued", a->queued,
                            "max_inflight", a->max_inflight, "max_queue", a->max_queue,
                            "request_timeout_s", a->timeout_ms / 1e3,
                            "served", (json_int_t)a->served, "failed", (json_int_t)a->failed,
                            "shed", (json_int_t)a->shed, "timed_out", (json_int_t)a->timed_out,
                            "draining", a->draining);
    pthread_mutex_unlock(&a->mu);
    return obj;
}
