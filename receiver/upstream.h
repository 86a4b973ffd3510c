/*
 * upstream.h - the trade API client (PROTOCOL.md section 5).
 *
 * POSTs JSON to [upstream] base_url from inside the event loop: evhttp's
 * client over an OpenSSL bufferevent (certificate and host name verified
 * against the system CA store plus [upstream] ca_file), or plain http://
 * for tests.  Calls beyond [upstream] max_concurrency wait in a queue, and
 * call starts are spaced to stay under max_rps.  Every call ends, within
 * timeout_ms, in exactly one callback.  The app's key and secret are added
 * to the body here and nowhere else, and never logged.
 */
#ifndef RECEIVER_UPSTREAM_H
#define RECEIVER_UPSTREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <jansson.h>

#include "config.h"
#include "metrics.h"

struct upstream;

struct upstream_result {
	bool ok;	 /* HTTP 200, a JSON object, and code == 200 */
	int http_status; /* 0 when no HTTP answer came */
	char *body;	 /* the raw answer, NUL-terminated, or NULL */
	size_t body_len;
	json_t *json;	 /* the answer parsed, or NULL when it is not JSON */
	bool permanent;	 /* retrying cannot fix it: bad credentials */
	char error[256]; /* readable, secret-free reason when !ok */
	long latency_ms;
};

/* Called once per call; R and its contents are freed after it returns. */
typedef void (*upstream_fn)(void *arg, struct upstream_result *r);

struct upstream_stats {
	uint64_t calls; /* started */
	uint64_t ok, failed, timeouts, permanent;
	struct histogram latency_ms;
};

struct upstream *upstream_new(struct event_base *base, const struct upstream_config *cfg, char *err,
			      size_t errlen);

/*
 * POST PARAMS (a JSON object, stolen) plus APP's appKey and appSecret to
 * base_url + PATH.  Returns 0 (FN will be called) or -1 when out of memory.
 */
int upstream_post(struct upstream *u, const struct app_config *app, const char *path,
		  json_t *params, upstream_fn fn, void *arg);

/* Calls started or waiting. */
size_t upstream_pending(const struct upstream *u);
/* Calls by outcome and their latency. */
void upstream_metrics(const struct upstream *u, struct evbuffer *out);

/* Every call still pending ends with "shutting down"; then free. */
void upstream_free(struct upstream *u);

#endif
