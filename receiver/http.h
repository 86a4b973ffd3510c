/*
 * http.h - the network side: listeners, TLS, connection limits, routing,
 * request ids, replies.
 *
 * One evhttp server serves every [[app]] callback path plus /healthz,
 * /readyz and /metrics (or those three on [server] admin_listen, with the
 * same limits and no request body).  Every request must have fully arrived
 * within request_timeout_s of its connection's accept or previous reply; a
 * connection waiting for its reply is never closed.  What a request to a
 * callback path means is not this module's business: it hands the request,
 * its app and its id to the push handler (ingest.c) and knows neither the
 * store nor SQL.  /readyz and /metrics ask the status handlers.
 */
#ifndef RECEIVER_HTTP_H
#define RECEIVER_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>

#include "config.h"

struct http;

struct http_handlers {
	/* A request to a callback path; APP is NULL when no app has that path. */
	void (*push)(void *arg, struct evhttp_request *req, const struct app_config *app,
		     const char *request_id);
	/* evhttp answered 413 for a body over max_body_bytes, before any callback. */
	void (*refused)(void *arg, const char *request_id);
	void *push_arg;
	/* /readyz: true when ready; *why says why not (a short static text). */
	bool (*ready)(void *arg, const char **why);
	/* GET /metrics: writes the page; NULL serves no /metrics. */
	void (*metrics)(void *arg, struct evbuffer *out);
	void *status_arg;
};

struct http *http_new(struct event_base *base, const struct config *cfg,
		      const struct http_handlers *handlers);

/* Bind [server] listen.  Returns 0, or -1 with a reason in ERR. */
int http_listen(struct http *h, char *err, size_t errlen);

/* Bind [server] admin_listen, when set.  Returns 0, or -1 with ERR. */
int http_listen_admin(struct http *h, char *err, size_t errlen);

/*
 * Answer REQ with STATUS and TEXT (plain text); X-Request-Id when
 * REQUEST_ID is not empty, Retry-After with a 503.
 */
void http_reply(struct evhttp_request *req, const char *request_id, int status, const char *text);

/*
 * Open connections, the times accepting paused at the cap, connections
 * closed past their request's deadline or idle at the cap, and new ones
 * refused beyond max_connections_per_ip.
 */
void http_metrics(const struct http *h, struct evbuffer *out);

/* Close the listening socket; connections already open are still served. */
void http_stop_accepting(struct http *h);

/* Close every connection and free.  Waiting pushes must be answered first. */
void http_free(struct http *h);

#endif
