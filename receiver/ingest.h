/*
 * ingest.h - a push's life: check, reject, audit, reply.
 *
 * http.c routes every request to a callback path here, with the app that
 * path belongs to (or none) and the request's id.  A push is checked in
 * order - method, content type, form, signature, message - and the first
 * failure is answered at once with a short plain-text reason and audited
 * (at most [server] max_rejections_per_s rows a second); a good push is
 * handed to the store and answered once its transaction committed (200)
 * or failed (503).  This module is the only one that turns a request into
 * a struct delivery and the only caller of the store on the push path.
 */
#ifndef RECEIVER_INGEST_H
#define RECEIVER_INGEST_H

#include <stddef.h>
#include <stdint.h>

#include <event2/buffer.h>
#include <event2/http.h>

#include "config.h"
#include "store.h"

struct ingest;

struct ingest *ingest_new(const struct config *cfg, struct store *store);

/*
 * A request to a callback path: APP is the path's app, or NULL (then 404).
 * REQUEST_ID is copied.  The request is answered now or after its commit.
 */
void ingest_request(struct ingest *in, struct evhttp_request *req, const struct app_config *app,
		    const char *request_id);

/* evhttp refused a body over max_body_bytes before it was read: audit it. */
void ingest_refused(struct ingest *in, const char *request_id);

/* Requests by app and status, signature failures, audits skipped. */
void ingest_metrics(const struct ingest *in, struct evbuffer *out);

/* Free; every delivery must have been answered (the store freed) first. */
void ingest_free(struct ingest *in);

#endif
