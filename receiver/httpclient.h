/*
 * httpclient.h - a generic non-blocking HTTP(S) client in the event loop.
 *
 * POSTs to one base URL from inside the event loop: evhttp's client over
 * an OpenSSL bufferevent (certificate and host name verified against the
 * system CA store plus an optional CA file), or plain http:// for tests
 * and local sidecars.  Calls beyond max_concurrency wait in a queue, call
 * starts are spaced to stay under max_rps (on the monotonic clock), and
 * answers are limited to max_body_bytes and their headers to 64 KiB
 * (errors "answer over N bytes", "answer headers over 64 KiB").  Every call ends, within
 * timeout_ms, in exactly one callback, always from the event loop, never
 * inside httpclient_post().  It knows no API: what a body means is the
 * caller's (tradeapi.c, the relay).
 */
#ifndef RECEIVER_HTTPCLIENT_H
#define RECEIVER_HTTPCLIENT_H

#include <stddef.h>

#include <event2/event.h>

#include "util.h"

struct httpclient;

struct httpclient_options {
	const char *url;	 /* http(s)://host[:port][/prefix] */
	const char *ca_file;	 /* an extra CA bundle, or "" */
	const char *url_setting; /* the keys that set them, for errors ("upstream.base_url") */
	const char *ca_setting;
	int timeout_ms;	       /* a whole call, connect to last byte */
	int max_concurrency;   /* calls in flight */
	int max_rps;	       /* call starts per second; 0: no limit */
	size_t max_body_bytes; /* larger answers are refused */
};

struct httpclient_answer {
	/*
	 * STATUS_OK: an HTTP answer came, whatever its code.  Otherwise none
	 * came (STATUS_ERROR: refused, closed, TLS; STATUS_TIMEOUT;
	 * STATUS_SHUTDOWN: httpclient_free) and ERROR says why.
	 */
	enum status status;
	int http_status;  /* 0 when no HTTP answer came */
	const char *body; /* NUL-terminated, or NULL */
	size_t body_len;
	char error[256]; /* readable, without the request's body */
	long latency_ms; /* from the call's start; 0 if it never started */
};

/* Called once per call; A and its body are freed after it returns. */
typedef void (*httpclient_fn)(void *arg, const struct httpclient_answer *a);

/* O's strings need not outlive the call. */
struct httpclient *httpclient_new(struct event_base *base, const struct httpclient_options *o,
				  char *err, size_t errlen);

/*
 * POST BODY (LEN bytes, malloc'd: taken, and wiped before it is freed, as
 * it may hold a secret) with CONTENT_TYPE to the base URL's path + PATH.
 * Returns 0 (FN will be called, from the loop), or -1 when out of memory
 * (BODY freed, FN not called).
 */
int httpclient_post(struct httpclient *c, const char *path, const char *content_type, char *body,
		    size_t len, httpclient_fn fn, void *arg);

/* Calls started or waiting. */
size_t httpclient_pending(const struct httpclient *c);

/* Every call still pending ends with STATUS_SHUTDOWN, at once; then free. */
void httpclient_free(struct httpclient *c);

#endif
