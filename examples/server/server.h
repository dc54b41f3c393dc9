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

typedef struct srv_app {
    pm_ctx *ctx;
    uint64_t max_upload_bytes; /* request bodies larger than this get 413 */
    char static_dir[4096];     /* realpath of the static folder; "" = no static files */
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

#endif /* PETMATTE_SERVER_H */
