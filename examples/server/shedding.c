/*
 * shedding.c - what petmatte-server answers and logs around admission control:
 * 503 + Retry-After for a request it has no room for, the echoed X-Request-Id, and
 * the per-request log line of --log-requests.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "server.h"

#define REQUEST_ID_MAX 128

const char *srv_request_id(struct MHD_Connection *conn) {
    const char *id = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Request-Id");
    if (!id || !*id) return NULL;
    size_t n = 0;
    for (; id[n]; n++)
        if (n == REQUEST_ID_MAX || id[n] < 0x21 || id[n] > 0x7e) return NULL; /* no spaces: one log token */
    return id;
}

void srv_tag_response(const srv_app *app, struct MHD_Connection *conn, struct MHD_Response *r) {
    const char *id = srv_request_id(conn);
    if (id) MHD_add_response_header(r, "X-Request-Id", id);
    /* A draining process ends kept-alive connections so the balancer opens new ones
     * elsewhere (it stops listening as soon as the drain starts). */
    if (srv_adm_draining(app->adm)) MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
}

enum MHD_Result srv_send_unavailable(const srv_app *app, struct MHD_Connection *conn, srv_admit why,
                                     double waited_ms) {
    const srv_admission *a = app->adm;
    char msg[200];
    const char *code = why == SRV_ADMIT_TIMED_OUT ? "queue_timeout" : "overloaded";
    if (why == SRV_ADMIT_TIMED_OUT)
        snprintf(msg, sizeof msg, "waited %.0f ms for a free slot, over --request-timeout; try again later",
                 waited_ms);
    else
        snprintf(msg, sizeof msg, "busy: %d requests in progress and %d waiting (--max-inflight, --max-queue); "
                 "try again later", a->max_inflight, a->max_queue);
    json_t *obj = json_pack("{s:s, s:s}", "error", msg, "code", code);
    char *text = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
    json_decref(obj);
    if (!text) return MHD_NO;
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(text);
        return MHD_NO;
    }
    char retry[16];
    snprintf(retry, sizeof retry, "%d", a->retry_after_s);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, retry);
    srv_tag_response(app, conn, r);
    enum MHD_Result ret = MHD_queue_response(conn, MHD_HTTP_SERVICE_UNAVAILABLE, r);
    MHD_destroy_response(r);
    return ret;
}

void srv_log_request(const srv_app *app, struct MHD_Connection *conn, unsigned status, int arrival_state,
                     double queued_ms, double ms) {
    if (!app->log_requests) return;
    const char *id = srv_request_id(conn);
    /* One fprintf to the unbuffered stderr: one write, so lines of threads do not mix. */
    fprintf(stderr, "petmatte-server: request id=%s status=%u arrived=%s queued_ms=%.1f ms=%.1f\n",
            id ? id : "-", status, arrival_state < 0 ? "-" : pm_state_name((pm_state)arrival_state), queued_ms,
            ms);
}
