/*
 * server.h - petmatte-server, an example HTTP host for libpetmatte.
 *
 * main.c parses the command line, opens the context and runs the daemon;
 * http.c answers the API; static_files.c serves the demo page.
 */
#ifndef PETMATTE_SERVER_H
#define PETMATTE_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include <microhttpd.h>

#include "petmatte.h"
#include "admission.h"

typedef struct srv_app {
    pm_ctx *ctx;
    uint64_t max_upload_bytes; /* request bodies larger than this get 413 */
    char static_dir[4096];     /* realpath of the static folder; "" = no static files */
    srv_admission *adm;        /* work slots, queue and counters of /remove-bg */
    int log_requests;          /* --log-requests: one stderr line per answered /remove-bg */
} srv_app;

/* The MHD access handler and request-completed callback (http.c). */
enum MHD_Result srv_handle(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                           const char *version, const char *upload_data, size_t *upload_data_size,
                           void **con_cls);
void srv_request_done(void *cls, struct MHD_Connection *conn, void **con_cls,
                      enum MHD_RequestTerminationCode toe);

/* Queues a JSON error {"error": message, "code": code} with the given HTTP status. */
enum MHD_Result srv_send_error(struct MHD_Connection *conn, unsigned status, const char *code,
                               const char *message);

/* Percent-decodes s in place, except %00: a NUL would cut the path short. */
size_t srv_unescape(void *cls, struct MHD_Connection *conn, char *s);

/* Answers GET/HEAD for a file under app->static_dir, or 404. "/" means index.html. */
enum MHD_Result srv_serve_static(const srv_app *app, struct MHD_Connection *conn, const char *url);

/* shedding.c: the answers and log lines of admission control. */

/* The client's X-Request-Id when it is 1..128 printable characters, else NULL. */
const char *srv_request_id(struct MHD_Connection *conn);

/* Adds X-Request-Id (echoed) to r, and Connection: close while draining. */
void srv_tag_response(const srv_app *app, struct MHD_Connection *conn, struct MHD_Response *r);

/* Queues 503 + Retry-After for a request that was shed or waited too long. */
enum MHD_Result srv_send_unavailable(const srv_app *app, struct MHD_Connection *conn, srv_admit why,
                                     double waited_ms);

/* --log-requests: "request id=ID status=S arrived=STATE queued_ms=Q ms=T" on stderr. */
void srv_log_request(const srv_app *app, struct MHD_Connection *conn, unsigned status, int arrival_state,
                     double queued_ms, double ms);

#endif /* PETMATTE_SERVER_H */
