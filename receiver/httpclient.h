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
 * inside httpclient_send().  It knows no API: what a body means is the
 * caller's (tradeapi.c, the relay).
 *
 * Connections: without keep_alive each call has its own and says
 * "Connection: close".  With keep_alive a connection whose answer came
 * whole (HTTP/1.1, framed, no "Connection: close") waits idle for the next
 * call, at most idle_ms (or the server's Keep-Alive timeout less a
 * second); at most max_concurrency are open, busy and idle together.  A
 * call that fails or times out never gives its connection back.  A call
 * sent on a reused connection that turns out closed before any byte of
 * an answer came is sent once more on a fresh one: the server may then
 * have received it twice, which a keep_alive caller must tolerate (the
 * relay's webhook-id) - it would have retried the failure anyway.
 */
#ifndef RECEIVER_HTTPCLIENT_H
#define RECEIVER_HTTPCLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>

#include "util.h"

struct httpclient;

struct httpclient_options {
	const char *url;	 /* http(s)://host[:port][/prefix] */
	const char *ca_file;	 /* an extra CA bundle, or "" */
	const char *url_setting; /* the keys that set them, for errors ("upstream.base_url") */
	const char *ca_setting;
	int timeout_ms;	       /* a whole call, connect to last byte */
	int max_concurrency;   /* calls in flight, and with keep_alive connections open */
	int max_rps;	       /* call starts per second; 0: no limit */
	size_t max_body_bytes; /* larger answers are refused */
	bool keep_alive;       /* reuse connections; false: one per call, "Connection: close" */
	int idle_ms;	       /* keep_alive: an idle connection is closed after it; 0: 60 s */
};

/* One extra request header: a token NAME, a VALUE without control characters. */
struct httpclient_header {
	const char *name;
	const char *value;
};

/* What httpclient_send() sends; everything but BODY is copied at once. */
struct httpclient_request {
	const char *path;	  /* appended to the base URL's path */
	const char *content_type; /* e.g. "application/json" */
	char *body;		  /* malloc'd, taken: wiped before it is freed */
	size_t body_len;
	const struct httpclient_header *headers; /* N_HEADERS extra headers, or NULL */
	size_t n_headers;
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
	/*
	 * A 429 or 503 answer's Retry-After in seconds (delta-seconds, values
	 * beyond INT_MAX cut to it); -1 for every other answer, and when it is
	 * absent or not delta-seconds (an HTTP-date counts as absent).
	 */
	int retry_after_s;
};

/* Counters since httpclient_new(), and the idle connections now. */
struct httpclient_stats {
	uint64_t connections_opened; /* new connections started */
	uint64_t connections_reused; /* calls sent on an idle connection */
	uint64_t resent;	     /* calls sent again after a reused connection was closed */
	size_t idle;		     /* connections waiting for a call */
};

/* Called once per call; A and its body are freed after it returns. */
typedef void (*httpclient_fn)(void *arg, const struct httpclient_answer *a);

/* O's strings need not outlive the call. */
struct httpclient *httpclient_new(struct event_base *base, const struct httpclient_options *o,
				  char *err, size_t errlen);

/*
 * POST R->body (taken, and wiped before it is freed, as it may hold a
 * secret) with R->content_type and R->headers to the base URL's path +
 * R->path.  Header values are copied by evhttp and freed unwiped: no
 * secret in a header.  Returns STATUS_OK (FN will be called, from the
 * loop), STATUS_NOMEM, or STATUS_PERMANENT for a header that is not a
 * token or holds a control character, or that the client sets itself
 * (Host, Content-Type, Content-Length, Connection, ...); on either error
 * the body is freed and FN not called.
 */
enum status httpclient_send(struct httpclient *c, const struct httpclient_request *r,
			    httpclient_fn fn, void *arg);

/*
 * httpclient_send() without extra headers.  Returns 0, or -1 (BODY freed,
 * FN not called).
 */
int httpclient_post(struct httpclient *c, const char *path, const char *content_type, char *body,
		    size_t len, httpclient_fn fn, void *arg);

/* Calls started or waiting. */
size_t httpclient_pending(const struct httpclient *c);

void httpclient_stats(const struct httpclient *c, struct httpclient_stats *s);

/*
 * Every call still pending ends with STATUS_SHUTDOWN, at once; then free,
 * idle connections too.  Not from inside an httpclient_fn.
 */
void httpclient_free(struct httpclient *c);

#endif
