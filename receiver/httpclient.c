/*
 * httpclient.c - the generic non-blocking HTTP(S) client (see httpclient.h).
 *
 * Each call gets its own evhttp connection (over a fresh TLS session for
 * https://): at the handful of calls per second the trade API allows, a
 * pool would save little and cost a reconnect state machine.  A call is,
 * in order: queued -> started when a concurrency slot is free and the rate
 * limit allows -> finished by evhttp's callback or by our deadline,
 * whichever comes first -> reported once -> its connection freed on the
 * next loop turn (evhttp still uses it while it runs our callback).  A call
 * that cannot even start is reported from its timer too, so no callback
 * ever runs inside httpclient_post().
 *
 * A peer cannot make us hold more than it may: the answer's headers are
 * capped at MAX_HEADER_BYTES and its body at max_body_bytes (evhttp stops
 * reading there).  evhttp reports both as bare error codes, so the call
 * counts the bytes that came (an input buffer callback) and notes when the
 * headers ended, to say which limit it was.  The request body may hold a
 * secret: it goes to evhttp by reference, and its cleanup callback wipes
 * it, so no copy of it is ever freed unwiped.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/dns.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "httpclient.h"
#include "util.h"

/* An API's answer headers are a few hundred bytes; 64 KiB is far beyond. */
#define MAX_HEADER_BYTES (64 * 1024)

enum call_state {
	CALL_QUEUED,  /* in c->queue */
	CALL_RUNNING, /* in c->running */
	CALL_CLOSING, /* reported; in c->closing until its connection is freed */
};

struct call {
	TAILQ_ENTRY(call) link;
	enum call_state state;
	struct httpclient *c;
	char *path;
	const char *content_type; /* static */
	char *body;		  /* may hold a secret; NULL once evhttp has it (wipe_body) */
	size_t body_len;
	httpclient_fn fn;
	void *arg;

	struct evhttp_connection *evcon;
	struct evhttp_request *req;
	struct bufferevent *bev;
	struct event *timer; /* the deadline while running, then the close */
	enum evhttp_request_error http_error;
	bool has_http_error;
	bool start_failed; /* reported by the timer, at once */
	int64_t started_us;
	size_t received;       /* answer bytes that came, headers and body */
	size_t header_bytes;   /* of them, the headers' (once headers_done) */
	bool headers_done;     /* evhttp has read all the answer's headers */
	bool declared_too_big; /* its Content-Length is beyond max_body_bytes */
};

TAILQ_HEAD(call_list, call);

struct httpclient {
	struct event_base *base;
	struct evdns_base *dns;
	bool https;
	SSL_CTX *ssl_ctx;
	char host[256];
	int port;
	char prefix[256]; /* the base URL's path, without a trailing '/' */
	int timeout_ms;
	size_t max_concurrency;
	int max_rps;
	size_t max_body_bytes;

	struct call_list queue;
	struct call_list running;
	struct call_list closing;
	size_t queued;
	size_t n_running;
	int64_t next_start_us; /* rate limit, monotonic: no call starts before this */
	struct event *ev_dispatch;
};

static int parse_url(struct httpclient *c, const struct httpclient_options *o, char *err,
		     size_t errlen);
static int make_ssl_ctx(struct httpclient *c, const struct httpclient_options *o, char *err,
			size_t errlen);
static void dispatch(struct httpclient *c);
static void on_dispatch(evutil_socket_t fd, short what, void *arg);
static int start(struct call *call);
static void on_answer(struct evhttp_request *req, void *arg);
static void on_http_error(enum evhttp_request_error error, void *arg);
static int give_body(struct call *call);
static void wipe_body(const void *data, size_t len, void *arg);
static void on_input(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg);
static int on_headers(struct evhttp_request *req, void *arg);
static void on_timer(evutil_socket_t fd, short what, void *arg);
static void finish(struct call *call, struct httpclient_answer *a);
static void read_answer(struct call *call, struct evhttp_request *req, struct httpclient_answer *a);
static void no_answer_reason(struct call *call, struct httpclient_answer *a);
static void limit_reason(const struct call *call, char *buf, size_t len);
static void abandon(struct call *call);
static void call_free(struct call *call);

struct httpclient *
httpclient_new(struct event_base *base, const struct httpclient_options *o, char *err,
	       size_t errlen)
{
	struct httpclient *c = calloc(1, sizeof(*c));

	if (c == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	c->base = base;
	c->timeout_ms = o->timeout_ms;
	c->max_concurrency = (size_t)o->max_concurrency;
	c->max_rps = o->max_rps;
	c->max_body_bytes = o->max_body_bytes;
	TAILQ_INIT(&c->queue);
	TAILQ_INIT(&c->running);
	TAILQ_INIT(&c->closing);
	if (parse_url(c, o, err, errlen) < 0 || make_ssl_ctx(c, o, err, errlen) < 0)
		goto fail;
	c->dns = evdns_base_new(base, EVDNS_BASE_INITIALIZE_NAMESERVERS);
	if (c->dns == NULL) /* no resolv.conf: names cannot be resolved, IPs still work */
		c->dns = evdns_base_new(base, 0);
	c->ev_dispatch = evtimer_new(base, on_dispatch, c);
	if (c->dns == NULL || c->ev_dispatch == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	return c;
fail:
	httpclient_free(c);
	return NULL;
}

int
httpclient_post(struct httpclient *c, const char *path, const char *content_type, char *body,
		size_t len, httpclient_fn fn, void *arg)
{
	struct call *call = calloc(1, sizeof(*call));

	if (call == NULL) {
		OPENSSL_cleanse(body, len);
		free(body);
		return -1;
	}
	call->body = body;
	call->body_len = len;
	call->path = malloc(strlen(c->prefix) + strlen(path) + 1);
	call->timer = evtimer_new(c->base, on_timer, call);
	if (call->path == NULL || call->timer == NULL) {
		call_free(call);
		return -1;
	}
	strcpy(stpcpy(call->path, c->prefix), path);
	call->content_type = content_type;
	call->c = c;
	call->fn = fn;
	call->arg = arg;
	call->state = CALL_QUEUED;
	TAILQ_INSERT_TAIL(&c->queue, call, link);
	c->queued++;
	dispatch(c);
	return 0;
}

size_t
httpclient_pending(const struct httpclient *c)
{
	return c->queued + c->n_running;
}

void
httpclient_free(struct httpclient *c)
{
	struct call *call;

	if (c == NULL)
		return;
	while ((call = TAILQ_FIRST(&c->queue)) != NULL ||
	       (call = TAILQ_FIRST(&c->running)) != NULL) {
		struct httpclient_answer a = {.status = STATUS_SHUTDOWN};

		abandon(call);
		snprintf(a.error, sizeof(a.error), "shutting down");
		finish(call, &a);
	}
	while ((call = TAILQ_FIRST(&c->closing)) != NULL) {
		TAILQ_REMOVE(&c->closing, call, link);
		call_free(call);
	}
	if (c->ev_dispatch != NULL)
		event_free(c->ev_dispatch);
	if (c->dns != NULL)
		evdns_base_free(c->dns, 0);
	if (c->ssl_ctx != NULL)
		SSL_CTX_free(c->ssl_ctx);
	free(c);
}

/* --- setup -------------------------------------------------------------- */

static int
parse_url(struct httpclient *c, const struct httpclient_options *o, char *err, size_t errlen)
{
	struct evhttp_uri *uri = evhttp_uri_parse(o->url);
	const char *scheme, *host, *path;
	int rc = -1;

	if (uri == NULL || (scheme = evhttp_uri_get_scheme(uri)) == NULL ||
	    (host = evhttp_uri_get_host(uri)) == NULL || *host == '\0' ||
	    (strcmp(scheme, "https") != 0 && strcmp(scheme, "http") != 0)) {
		snprintf(err, errlen, "%s: expected http(s)://host[:port][/path]", o->url_setting);
		goto out;
	}
	snprintf(c->host, sizeof(c->host), "%s", host);
	c->port = evhttp_uri_get_port(uri);
	if (c->port <= 0)
		c->port = strcmp(scheme, "https") == 0 ? 443 : 80;
	path = evhttp_uri_get_path(uri);
	snprintf(c->prefix, sizeof(c->prefix), "%s", path != NULL ? path : "");
	while (c->prefix[0] != '\0' && c->prefix[strlen(c->prefix) - 1] == '/')
		c->prefix[strlen(c->prefix) - 1] = '\0';
	c->https = strcmp(scheme, "https") == 0;
	rc = 0;
out:
	if (uri != NULL)
		evhttp_uri_free(uri);
	return rc;
}

static int
make_ssl_ctx(struct httpclient *c, const struct httpclient_options *o, char *err, size_t errlen)
{
	const char *ca_file = o->ca_file;

	if (!c->https)
		return 0;
	c->ssl_ctx = SSL_CTX_new(TLS_client_method());
	if (c->ssl_ctx == NULL) {
		snprintf(err, errlen, "cannot create a TLS context");
		return -1;
	}
	SSL_CTX_set_min_proto_version(c->ssl_ctx, TLS1_2_VERSION);
	/* A server that closes without close_notify has still answered or not. */
	SSL_CTX_set_options(c->ssl_ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
	SSL_CTX_set_verify(c->ssl_ctx, SSL_VERIFY_PEER, NULL);
	if (SSL_CTX_set_default_verify_paths(c->ssl_ctx) != 1) {
		snprintf(err, errlen, "cannot load the system CA store");
		return -1;
	}
	if (ca_file != NULL && *ca_file != '\0' &&
	    SSL_CTX_load_verify_locations(c->ssl_ctx, ca_file, NULL) != 1) {
		snprintf(err, errlen, "%s: cannot load %s", o->ca_setting, ca_file);
		return -1;
	}
	return 0;
}

/* --- running calls ------------------------------------------------------ */

static void
dispatch(struct httpclient *c)
{
	struct call *call;

	while ((call = TAILQ_FIRST(&c->queue)) != NULL && c->n_running < c->max_concurrency) {
		int64_t now = util_mono_us();

		if (c->max_rps > 0 && now < c->next_start_us) {
			struct timeval tv = util_tv_us(c->next_start_us - now);

			evtimer_add(c->ev_dispatch, &tv);
			return;
		}
		if (c->max_rps > 0)
			c->next_start_us = now + 1000000 / c->max_rps;
		TAILQ_REMOVE(&c->queue, call, link);
		c->queued--;
		TAILQ_INSERT_TAIL(&c->running, call, link);
		c->n_running++;
		call->state = CALL_RUNNING;
		if (start(call) < 0) {
			static const struct timeval now_tv = {0, 0};

			/* Reported from the loop: the caller may be inside httpclient_post(). */
			call->start_failed = true;
			evtimer_add(call->timer, &now_tv);
		}
	}
}

static void
on_dispatch(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	dispatch(arg);
}

static int
start(struct call *call)
{
	struct httpclient *c = call->c;
	struct timeval tv = util_tv_ms(c->timeout_ms);
	struct evkeyvalq *headers;
	SSL *ssl = NULL;

	call->started_us = util_mono_us();
	if (c->https) {
		ssl = SSL_new(c->ssl_ctx);
		if (ssl == NULL)
			return -1;
		SSL_set_tlsext_host_name(ssl, c->host);
		SSL_set1_host(ssl, c->host); /* verify the certificate names this host */
		call->bev =
		    bufferevent_openssl_socket_new(c->base, -1, ssl, BUFFEREVENT_SSL_CONNECTING,
						   BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
		if (call->bev == NULL) {
			SSL_free(ssl);
			return -1;
		}
		bufferevent_openssl_set_allow_dirty_shutdown(call->bev, 1);
	} else {
		call->bev = bufferevent_socket_new(c->base, -1, BEV_OPT_CLOSE_ON_FREE);
		if (call->bev == NULL)
			return -1;
	}
	call->evcon = evhttp_connection_base_bufferevent_new(c->base, c->dns, call->bev, c->host,
							     (ev_uint16_t)c->port);
	if (call->evcon == NULL) {
		bufferevent_free(call->bev);
		call->bev = NULL;
		return -1;
	}
	evhttp_connection_set_timeout_tv(call->evcon, &tv);
	evhttp_connection_set_retries(call->evcon, 0);
	evhttp_connection_set_max_headers_size(call->evcon, MAX_HEADER_BYTES);
	evhttp_connection_set_max_body_size(call->evcon, (ev_ssize_t)c->max_body_bytes);
	if (evbuffer_add_cb(bufferevent_get_input(call->bev), on_input, call) == NULL)
		return -1;
	call->req = evhttp_request_new(on_answer, call);
	if (call->req == NULL)
		return -1;
	evhttp_request_set_error_cb(call->req, on_http_error);
	evhttp_request_set_header_cb(call->req, on_headers);
	headers = evhttp_request_get_output_headers(call->req);
	evhttp_add_header(headers, "Host", c->host);
	evhttp_add_header(headers, "Content-Type", call->content_type);
	evhttp_add_header(headers, "Accept", "application/json");
	evhttp_add_header(headers, "Connection", "close");
	if (give_body(call) < 0) {
		evhttp_request_free(call->req);
		call->req = NULL;
		return -1;
	}
	evtimer_add(call->timer, &tv);
	if (evhttp_make_request(call->evcon, call->req, EVHTTP_REQ_POST, call->path) != 0) {
		call->req = NULL; /* evhttp freed it */
		return -1;
	}
	return 0;
}

/*
 * Hand the body to the request's output buffer by reference: evhttp moves
 * it to the connection and writes it from where it is, and wipe_body runs
 * when it is written or the connection freed.  A copy (evbuffer_add) would
 * be freed unwiped.
 */
static int
give_body(struct call *call)
{
	struct evbuffer *out = evhttp_request_get_output_buffer(call->req);

	if (evbuffer_add_reference(out, call->body, call->body_len, wipe_body, NULL) < 0)
		return -1;
	call->body = NULL; /* the buffer's now */
	return 0;
}

static void
wipe_body(const void *data, size_t len, void *arg)
{
	(void)arg;
	OPENSSL_cleanse((void *)data, len);
	free((void *)data);
}

/* Every byte of the answer passes through the connection's input buffer. */
static void
on_input(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
	struct call *call = arg;

	(void)buf;
	call->received += info->n_added;
}

/* The headers are read: what is left in the input buffer is body already. */
static int
on_headers(struct evhttp_request *req, void *arg)
{
	struct call *call = arg;
	const char *length =
	    evhttp_find_header(evhttp_request_get_input_headers(req), "Content-Length");

	call->headers_done = true;
	call->header_bytes = call->received - evbuffer_get_length(bufferevent_get_input(call->bev));
	call->declared_too_big = length != NULL && strtoull(length, NULL, 10) >
						       (unsigned long long)call->c->max_body_bytes;
	return 0;
}

static void
on_http_error(enum evhttp_request_error error, void *arg)
{
	struct call *call = arg;

	call->http_error = error;
	call->has_http_error = true;
}

/* evhttp's callback: an answer, or (REQ NULL or status 0) none. */
static void
on_answer(struct evhttp_request *req, void *arg)
{
	struct call *call = arg;
	struct httpclient_answer a = {0};

	call->req = NULL; /* evhttp frees it after we return */
	read_answer(call, req, &a);
	finish(call, &a);
}

/*
 * The call's timer: while running it is the deadline (or, for a call that
 * could not start, the report of that); once reported it fires at once to
 * free the connection outside evhttp's callbacks.
 */
static void
on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct call *call = arg;
	struct httpclient_answer a = {0};

	(void)fd;
	(void)what;
	if (call->state != CALL_RUNNING) {
		TAILQ_REMOVE(&call->c->closing, call, link);
		call_free(call);
		return;
	}
	abandon(call);
	if (call->start_failed) {
		a.status = STATUS_ERROR;
		snprintf(a.error, sizeof(a.error), "cannot start a request");
	} else {
		a.status = STATUS_TIMEOUT;
		snprintf(a.error, sizeof(a.error), "timed out after %d ms", call->c->timeout_ms);
	}
	finish(call, &a);
}

static void
finish(struct call *call, struct httpclient_answer *a)
{
	static const struct timeval now = {0, 0};
	struct httpclient *c = call->c;
	bool was_running = call->state == CALL_RUNNING;

	a->latency_ms = was_running ? (long)((util_mono_us() - call->started_us) / 1000) : 0;
	if (was_running) {
		TAILQ_REMOVE(&c->running, call, link);
		c->n_running--;
	} else {
		TAILQ_REMOVE(&c->queue, call, link);
		c->queued--;
	}
	call->fn(call->arg, a);
	free((char *)a->body);
	call->state = CALL_CLOSING;
	TAILQ_INSERT_TAIL(&c->closing, call, link);
	evtimer_add(call->timer, &now);
	if (was_running)
		dispatch(c);
}

/* --- reading the answer ------------------------------------------------- */

static void
read_answer(struct call *call, struct evhttp_request *req, struct httpclient_answer *a)
{
	struct evbuffer *in;
	char *body;

	a->http_status = req != NULL ? evhttp_request_get_response_code(req) : 0;
	if (a->http_status == 0) {
		no_answer_reason(call, a);
		return;
	}
	in = evhttp_request_get_input_buffer(req);
	a->body_len = evbuffer_get_length(in);
	body = malloc(a->body_len + 1);
	if (body == NULL) {
		a->status = STATUS_NOMEM;
		snprintf(a->error, sizeof(a->error), "out of memory");
		return;
	}
	evbuffer_copyout(in, body, a->body_len);
	body[a->body_len] = '\0';
	a->body = body;
	a->status = STATUS_OK;
}

static void
no_answer_reason(struct call *call, struct httpclient_answer *a)
{
	const struct httpclient *c = call->c;
	unsigned long ssl_err = call->bev != NULL ? bufferevent_get_openssl_error(call->bev) : 0;
	SSL *ssl = call->bev != NULL && c->https ? bufferevent_openssl_get_ssl(call->bev) : NULL;
	long verify = ssl != NULL ? SSL_get_verify_result(ssl) : X509_V_OK;

	a->status = STATUS_ERROR;
	if (verify != X509_V_OK) {
		snprintf(a->error, sizeof(a->error), "TLS: certificate of %.100s rejected: %.100s",
			 c->host, X509_verify_cert_error_string(verify));
	} else if (ssl_err != 0) {
		char buf[160];

		ERR_error_string_n(ssl_err, buf, sizeof(buf));
		snprintf(a->error, sizeof(a->error), "TLS: %s", buf);
	} else if (call->has_http_error && call->http_error == EVREQ_HTTP_TIMEOUT) {
		a->status = STATUS_TIMEOUT;
		snprintf(a->error, sizeof(a->error), "timed out after %d ms", c->timeout_ms);
	} else if (call->has_http_error && (call->http_error == EVREQ_HTTP_INVALID_HEADER ||
					    call->http_error == EVREQ_HTTP_DATA_TOO_LONG)) {
		limit_reason(call, a->error, sizeof(a->error));
	} else {
		snprintf(a->error, sizeof(a->error), "no answer from %.100s:%d (%s)", c->host,
			 c->port,
			 call->has_http_error && call->http_error == EVREQ_HTTP_EOF
			     ? "connection refused or closed"
			     : "connection failed");
	}
}

/*
 * evhttp says INVALID_HEADER for headers over the limit or malformed, and
 * DATA_TOO_LONG for a body over the limit or badly chunked: the bytes tell.
 */
static void
limit_reason(const struct call *call, char *buf, size_t len)
{
	size_t max = call->c->max_body_bytes;

	if (call->http_error == EVREQ_HTTP_INVALID_HEADER) {
		if (!call->headers_done && call->received > MAX_HEADER_BYTES)
			snprintf(buf, len, "answer headers over %d KiB", MAX_HEADER_BYTES / 1024);
		else
			snprintf(buf, len, "answer with malformed headers");
	} else if (call->declared_too_big || call->received - call->header_bytes > max) {
		snprintf(buf, len, "answer over %zu bytes", max);
	} else {
		snprintf(buf, len, "answer with a malformed body");
	}
}

/* --- cleanup ------------------------------------------------------------ */

/*
 * Drop a call still waiting for its answer.  The connection is freed
 * rather than the request cancelled: evhttp_cancel_request() leaves a
 * read callback that is already queued in place, and libevent aborts when
 * it then finds the connection reset.  Freeing the connection frees its
 * request without calling on_answer().  Never called from evhttp's own
 * callbacks: only from our timer and from httpclient_free().
 */
static void
abandon(struct call *call)
{
	if (call->evcon != NULL)
		evhttp_connection_free(call->evcon);
	call->evcon = NULL;
	call->bev = NULL;
	call->req = NULL;
}

/* Free the call and its connection (which frees its bufferevent and SSL). */
static void
call_free(struct call *call)
{
	if (call->evcon != NULL)
		evhttp_connection_free(call->evcon);
	else if (call->bev != NULL)
		bufferevent_free(call->bev);
	if (call->timer != NULL)
		event_free(call->timer);
	if (call->body != NULL) {
		OPENSSL_cleanse(call->body, call->body_len);
		free(call->body);
	}
	free(call->path);
	free(call);
}
