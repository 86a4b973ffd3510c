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

#include <event2/event.h>

#include "config.h"
#include "store.h"

struct http;

struct http *http_new(struct event_base *base, const struct config *cfg, struct store *store);

/* Bind [server] listen.  Returns 0, or -1 with a reason in ERR. */
int http_listen(struct http *h, char *err, size_t errlen);

/* Close the listening socket; connections already open are still served. */
void http_stop_accepting(struct http *h);

/* Close every connection and free.  Waiting pushes must be answered first. */
void http_free(struct http *h);

#endif
