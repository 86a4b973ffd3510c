/*
 * http.h - the HTTP side: routes, limits, replies.
 *
 * One evhttp server serves every [[app]] callback path plus /healthz and
 * /readyz.  A push is checked in order - method, content type, size, form,
 * signature, message - and the first failure is answered at once with a
 * short plain-text reason and audited; a good push waits for its commit.
 */
#ifndef RECEIVER_HTTP_H
#define RECEIVER_HTTP_H

#include <stddef.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <stdint.h>

#include "config.h"
#include "store.h"

struct http;

/* Requests counted by app and status (the statuses this server gives). */
#define HTTP_STATUS_KINDS 10
extern const int http_status_kinds[HTTP_STATUS_KINDS]; /* the last, 0, is "other" */

struct http_stats {
	size_t n_rows;	    /* one row per [[app]], in order, then one for no app */
	uint64_t *requests; /* [n_rows][HTTP_STATUS_KINDS] */
	uint64_t signature_failures;
	uint64_t rejections_not_audited; /* over [server] max_rejections_per_s */
	size_t open_connections;
	uint64_t connection_cap_reached; /* times accepting paused at max_connections */
};

/* Writes the /metrics page. */
typedef void (*http_metrics_fn)(struct evbuffer *out, void *arg);

struct http *http_new(struct event_base *base, const struct config *cfg, struct store *store);

/* Serve GET /metrics with FN. */
void http_set_metrics(struct http *h, http_metrics_fn fn, void *arg);

const struct http_stats *http_get_stats(const struct http *h);

/* Bind [server] listen.  Returns 0, or -1 with a reason in ERR. */
int http_listen(struct http *h, char *err, size_t errlen);

/* Bind [server] admin_listen, when set.  Returns 0, or -1 with ERR. */
int http_listen_admin(struct http *h, char *err, size_t errlen);

/* Close the listening socket; connections already open are still served. */
void http_stop_accepting(struct http *h);

/* Close every connection and free.  Waiting pushes must be answered first. */
void http_free(struct http *h);

#endif
