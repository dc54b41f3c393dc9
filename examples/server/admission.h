/*
 * admission.h - how many cut-outs petmatte-server works on at once, how many wait,
 * and what it says when there is no room.
 *
 * A POST /remove-bg whose body has arrived takes a work slot (one of --max-inflight)
 * or waits for one in a bounded queue (--max-queue). When slots and queue are full
 * the request is answered 503 with Retry-After at once ("shed"), so memory and
 * latency stay bounded under overload instead of piling up; a request that waited
 * longer than --request-timeout gets 503 too ("timed out") and its work never starts.
 *
 * The counters are what /status shows under "requests". Draining (SIGTERM) makes
 * /ready answer 503 and lets main() wait until no request is left in the process.
 */
#ifndef PETMATTE_SERVER_ADMISSION_H
#define PETMATTE_SERVER_ADMISSION_H

#include <pthread.h>
#include <stdint.h>

#include <jansson.h>

typedef struct srv_admission {
    pthread_mutex_t mu;
    pthread_cond_t changed;   /* a slot was freed, or the active count went down */
    int max_inflight;         /* work slots, >= 1 */
    int max_queue;            /* requests that may wait for a slot, >= 0 */
    double timeout_ms;        /* longest wait in the queue; 0 = no limit */
    int retry_after_s;        /* the Retry-After of a shed or timed-out request */
    int draining;             /* set once by srv_adm_drain */
    int inflight, queued;     /* now */
    int active;               /* /remove-bg requests between their headers and completion */
    uint64_t served;          /* answered 200 */
    uint64_t failed;          /* admitted, but the library refused or failed */
    uint64_t shed;            /* 503: no slot and no room in the queue */
    uint64_t timed_out;       /* 503: waited longer than timeout_ms */
} srv_admission;

typedef enum srv_admit {
    SRV_ADMIT_OK,        /* a slot is held: call srv_adm_leave when the work is done */
    SRV_ADMIT_SHED,      /* full: answer 503 now */
    SRV_ADMIT_TIMED_OUT, /* waited timeout_ms without a slot: answer 503 now */
} srv_admit;

void srv_adm_init(srv_admission *a, int max_inflight, int max_queue, double timeout_s, int retry_after_s);

/* At the headers of a POST /remove-bg: 1 (and counted as shed) when slots and queue are
 * already full, so the body need not be received; else 0 and the request is active. */
int srv_adm_begin(srv_admission *a);

/* The request is complete (answered or dropped): pairs with a 0 from srv_adm_begin. */
void srv_adm_end(srv_admission *a);

/* Takes a slot, waiting in the queue up to timeout_ms; *waited_ms says how long. */
srv_admit srv_adm_enter(srv_admission *a, double *waited_ms);

/* Gives the slot back; ok: answered 200 (served) or not (failed). */
void srv_adm_leave(srv_admission *a, int ok);

/* Marks the process as draining: /ready answers 503 from now on. */
void srv_adm_drain(srv_admission *a);
int srv_adm_draining(srv_admission *a);

/* Waits until no /remove-bg request is active, at most timeout_s; returns how many are left. */
int srv_adm_wait_idle(srv_admission *a, double timeout_s);

/* {"inflight", "queued", "max_inflight", "max_queue", "request_timeout_s", "served",
 *  "failed", "shed", "timed_out", "draining"}: one consistent snapshot. */
json_t *srv_adm_json(srv_admission *a);

#endif /* PETMATTE_SERVER_ADMISSION_H */
