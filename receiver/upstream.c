/*
 * upstream.c - the trade API client (see upstream.h).
 *
 * Each call gets its own evhttp connection (over a fresh TLS session for
 * https://): at the handful of calls per second the API allows, a pool
 * would save little and cost a reconnect state machine.  A call is, in
 * order: queued -> started when a concurrency slot is free and the rate
 * limit allows -> finished by evhttp's callback or by our deadline,
 * whichever comes first -> reported once -> its connection freed on the
 * next loop turn (evhttp still uses it while it runs our callback).
 *
 * Errors are classified for the reconciler: no answer (refused, TLS,
 * timeout), HTTP status, not JSON, or the API's own code != 200.  Bad
 * credentials are "permanent": retrying cannot fix them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
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

#include "log.h"
#include "message.h"
#include "upstream.h"
#include "util.h"

#define MAX_ANSWER_BYTES (16 * 1024 * 1024)

enum call_state {
	CALL_QUEUED,  /* in u->queue */
	CALL_RUNNING, /* in u->running */
	CALL_CLOSING, /* reported; in u->closing until its connection is freed */
};

struct call {
	TAILQ_ENTRY(call) link;
	enum call_state state;
	struct upstream *u;
	char *path;
	char *body; /* holds the secret: cleansed before it is freed */
	size_t body_len;
	upstream_fn fn;
	void *arg;

	struct evhttp_connection *evcon;
	struct evhttp_request *req;
	struct bufferevent *bev;
	struct event *timer; /* the deadline while running, then the close */
	enum evhttp_request_error http_error;
	bool has_http_error;
	int64_t started_us;
};

TAILQ_HEAD(call_list, call);

struct upstream {
	struct event_base *base;
	const struct upstream_config *cfg;
	struct evdns_base *dns;
	bool https;
	SSL_CTX *ssl_ctx;
	char host[256];
	int port;
	char prefix[256]; /* base_url's path, without a trailing '/' */

	struct call_list queue;
	struct call_list running;
	struct call_list closing;
	size_t queued;
	size_t n_running;
	int64_t next_start_us; /* rate limit: no call starts before this */
	struct event *ev_dispatch;

	struct upstream_stats stats;
};

static int parse_base_url(struct upstream *u, char *err, size_t errlen);
static int make_ssl_ctx(struct upstream *u, char *err, size_t errlen);
static void dispatch(struct upstream *u);
static void on_dispatch(evutil_socket_t fd, short what, void *arg);
static int start(struct call *c);
static void on_answer(struct evhttp_request *req, void *arg);
static void on_http_error(enum evhttp_request_error error, void *arg);
static void on_timer(evutil_socket_t fd, short what, void *arg);
static void deadline(struct call *c);
static void finish(struct call *c, struct upstream_result *r);
static void classify(struct call *c, struct evhttp_request *req, struct upstream_result *r);
static void judge_answer(struct upstream_result *r);
static void no_answer_reason(struct call *c, struct upstream_result *r);
static void abandon(struct call *c);
static void call_free(struct call *c);
static bool looks_like_credentials(const char *message);
static bool contains_nocase(const char *haystack, const char *needle);

struct upstream *
upstream_new(struct event_base *base, const struct upstream_config *cfg, char *err, size_t errlen)
{
	struct upstream *u = calloc(1, sizeof(*u));

	if (u == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	u->base = base;
	u->cfg = cfg;
	TAILQ_INIT(&u->queue);
	TAILQ_INIT(&u->running);
	TAILQ_INIT(&u->closing);
	histogram_init(&u->stats.latency_ms, metrics_latency_ms_bounds, metrics_latency_ms_n);
	if (parse_base_url(u, err, errlen) < 0 || make_ssl_ctx(u, err, errlen) < 0)
		goto fail;
	u->dns = evdns_base_new(base, EVDNS_BASE_INITIALIZE_NAMESERVERS);
	if (u->dns == NULL) /* no resolv.conf: names cannot be resolved, IPs still work */
		u->dns = evdns_base_new(base, 0);
	u->ev_dispatch = evtimer_new(base, on_dispatch, u);
	if (u->dns == NULL || u->ev_dispatch == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	return u;
fail:
	upstream_free(u);
	return NULL;
}

int
upstream_post(struct upstream *u, const struct app_config *app, const char *path, json_t *params,
	      upstream_fn fn, void *arg)
{
	struct call *c = calloc(1, sizeof(*c));

	if (c == NULL || params == NULL) {
		free(c);
		json_decref(params);
		return -1;
	}
	json_object_set_new(params, "appKey", json_string(app->app_key));
	json_object_set_new(params, "appSecret", json_string(app->app_secret));
	c->body = json_dumps(params, JSON_COMPACT);
	/* The object held the secret too: overwrite it before it is freed. */
	json_object_set_new(params, "appSecret", json_string(""));
	json_decref(params);
	c->path = malloc(strlen(u->prefix) + strlen(path) + 1);
	if (c->body == NULL || c->path == NULL) {
		call_free(c);
		return -1;
	}
	strcpy(stpcpy(c->path, u->prefix), path);
	c->body_len = strlen(c->body);
	c->u = u;
	c->fn = fn;
	c->arg = arg;
	c->timer = evtimer_new(u->base, on_timer, c);
	if (c->timer == NULL) {
		call_free(c);
		return -1;
	}
	c->state = CALL_QUEUED;
	TAILQ_INSERT_TAIL(&u->queue, c, link);
	u->queued++;
	dispatch(u);
	return 0;
}

size_t
upstream_pending(const struct upstream *u)
{
	return u->queued + u->n_running;
}

void
upstream_metrics(const struct upstream *up, struct evbuffer *out)
{
	const struct upstream_stats *u = &up->stats;

	metrics_family(out, "receiver_upstream_calls_total", "counter",
		       "Trade API calls, by outcome.");
	metrics_value(out, "receiver_upstream_calls_total", "outcome=\"ok\"", (double)u->ok);
	metrics_value(out, "receiver_upstream_calls_total", "outcome=\"timeout\"",
		      (double)u->timeouts);
	metrics_value(out, "receiver_upstream_calls_total", "outcome=\"credentials\"",
		      (double)u->permanent);
	metrics_value(out, "receiver_upstream_calls_total", "outcome=\"error\"",
		      (double)(u->failed - u->timeouts - u->permanent));
	metrics_family(out, "receiver_upstream_call_milliseconds", "histogram",
		       "Trade API call latency.");
	metrics_histogram(out, "receiver_upstream_call_milliseconds", NULL, &u->latency_ms);
}

void
upstream_free(struct upstream *u)
{
	struct call *c;

	if (u == NULL)
		return;
	while ((c = TAILQ_FIRST(&u->queue)) != NULL || (c = TAILQ_FIRST(&u->running)) != NULL) {
		struct upstream_result r = {0};

		abandon(c);
		snprintf(r.error, sizeof(r.error), "shutting down");
		finish(c, &r);
	}
	while ((c = TAILQ_FIRST(&u->closing)) != NULL) {
		TAILQ_REMOVE(&u->closing, c, link);
		call_free(c);
	}
	if (u->ev_dispatch != NULL)
		event_free(u->ev_dispatch);
	if (u->dns != NULL)
		evdns_base_free(u->dns, 0);
	if (u->ssl_ctx != NULL)
		SSL_CTX_free(u->ssl_ctx);
	free(u);
}

/* --- setup -------------------------------------------------------------- */

static int
parse_base_url(struct upstream *u, char *err, size_t errlen)
{
	struct evhttp_uri *uri = evhttp_uri_parse(u->cfg->base_url);
	const char *scheme, *host, *path;
	int rc = -1;

	if (uri == NULL || (scheme = evhttp_uri_get_scheme(uri)) == NULL ||
	    (host = evhttp_uri_get_host(uri)) == NULL || *host == '\0' ||
	    (strcmp(scheme, "https") != 0 && strcmp(scheme, "http") != 0)) {
		snprintf(err, errlen, "upstream.base_url: expected http(s)://host[:port][/path]");
		goto out;
	}
	snprintf(u->host, sizeof(u->host), "%s", host);
	u->port = evhttp_uri_get_port(uri);
	if (u->port <= 0)
		u->port = strcmp(scheme, "https") == 0 ? 443 : 80;
	path = evhttp_uri_get_path(uri);
	snprintf(u->prefix, sizeof(u->prefix), "%s", path != NULL ? path : "");
	while (u->prefix[0] != '\0' && u->prefix[strlen(u->prefix) - 1] == '/')
		u->prefix[strlen(u->prefix) - 1] = '\0';
	u->https = strcmp(scheme, "https") == 0;
	rc = 0;
out:
	if (uri != NULL)
		evhttp_uri_free(uri);
	return rc;
}

static int
make_ssl_ctx(struct upstream *u, char *err, size_t errlen)
{
	const char *ca = u->cfg->ca_file;

	if (!u->https)
		return 0;
	u->ssl_ctx = SSL_CTX_new(TLS_client_method());
	if (u->ssl_ctx == NULL) {
		snprintf(err, errlen, "cannot create a TLS context");
		return -1;
	}
	SSL_CTX_set_min_proto_version(u->ssl_ctx, TLS1_2_VERSION);
	/* A server that closes without close_notify has still answered or not. */
	SSL_CTX_set_options(u->ssl_ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
	SSL_CTX_set_verify(u->ssl_ctx, SSL_VERIFY_PEER, NULL);
	if (SSL_CTX_set_default_verify_paths(u->ssl_ctx) != 1) {
		snprintf(err, errlen, "cannot load the system CA store");
		return -1;
	}
	if (ca != NULL && *ca != '\0' && SSL_CTX_load_verify_locations(u->ssl_ctx, ca, NULL) != 1) {
		snprintf(err, errlen, "upstream.ca_file: cannot load %s", ca);
		return -1;
	}
	return 0;
}

/* --- running calls ------------------------------------------------------ */

static void
dispatch(struct upstream *u)
{
	struct call *c;

	while ((c = TAILQ_FIRST(&u->queue)) != NULL &&
	       u->n_running < (size_t)u->cfg->max_concurrency) {
		int64_t now = util_mono_us();

		if (now < u->next_start_us) {
			struct timeval tv = util_tv_us(u->next_start_us - now);

			evtimer_add(u->ev_dispatch, &tv);
			return;
		}
		u->next_start_us = now + 1000000 / u->cfg->max_rps;
		TAILQ_REMOVE(&u->queue, c, link);
		u->queued--;
		TAILQ_INSERT_TAIL(&u->running, c, link);
		u->n_running++;
		c->state = CALL_RUNNING;
		u->stats.calls++;
		if (start(c) < 0) {
			struct upstream_result r = {0};

			snprintf(r.error, sizeof(r.error), "cannot start a request");
			finish(c, &r);
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
start(struct call *c)
{
	struct upstream *u = c->u;
	struct timeval tv = util_tv_ms(u->cfg->timeout_ms);
	struct evkeyvalq *headers;
	SSL *ssl = NULL;

	c->started_us = util_mono_us();
	if (u->https) {
		ssl = SSL_new(u->ssl_ctx);
		if (ssl == NULL)
			return -1;
		SSL_set_tlsext_host_name(ssl, u->host);
		SSL_set1_host(ssl, u->host); /* verify the certificate names this host */
		c->bev =
		    bufferevent_openssl_socket_new(u->base, -1, ssl, BUFFEREVENT_SSL_CONNECTING,
						   BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
		if (c->bev == NULL) {
			SSL_free(ssl);
			return -1;
		}
		bufferevent_openssl_set_allow_dirty_shutdown(c->bev, 1);
	} else {
		c->bev = bufferevent_socket_new(u->base, -1, BEV_OPT_CLOSE_ON_FREE);
		if (c->bev == NULL)
			return -1;
	}
	c->evcon = evhttp_connection_base_bufferevent_new(u->base, u->dns, c->bev, u->host,
							  (ev_uint16_t)u->port);
	if (c->evcon == NULL) {
		bufferevent_free(c->bev);
		c->bev = NULL;
		return -1;
	}
	evhttp_connection_set_timeout_tv(c->evcon, &tv);
	evhttp_connection_set_retries(c->evcon, 0);
	evhttp_connection_set_max_body_size(c->evcon, MAX_ANSWER_BYTES);
	c->req = evhttp_request_new(on_answer, c);
	if (c->req == NULL)
		return -1;
	evhttp_request_set_error_cb(c->req, on_http_error);
	headers = evhttp_request_get_output_headers(c->req);
	evhttp_add_header(headers, "Host", u->host);
	evhttp_add_header(headers, "Content-Type", "application/json");
	evhttp_add_header(headers, "Accept", "application/json");
	evhttp_add_header(headers, "Connection", "close");
	evbuffer_add(evhttp_request_get_output_buffer(c->req), c->body, c->body_len);
	evtimer_add(c->timer, &tv);
	if (evhttp_make_request(c->evcon, c->req, EVHTTP_REQ_POST, c->path) != 0) {
		c->req = NULL; /* evhttp freed it */
		return -1;
	}
	return 0;
}

static void
on_http_error(enum evhttp_request_error error, void *arg)
{
	struct call *c = arg;

	c->http_error = error;
	c->has_http_error = true;
}

/* evhttp's callback: an answer, or (REQ NULL or status 0) none. */
static void
on_answer(struct evhttp_request *req, void *arg)
{
	struct call *c = arg;
	struct upstream_result r = {0};

	c->req = NULL; /* evhttp frees it after we return */
	classify(c, req, &r);
	finish(c, &r);
}

/*
 * The call's timer: while running it is the deadline; once reported it
 * fires at once to free the connection outside evhttp's callbacks.
 */
static void
on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct call *c = arg;

	(void)fd;
	(void)what;
	if (c->state == CALL_RUNNING) {
		deadline(c);
		return;
	}
	TAILQ_REMOVE(&c->u->closing, c, link);
	call_free(c);
}

static void
deadline(struct call *c)
{
	struct upstream_result r = {0};

	abandon(c);
	c->u->stats.timeouts++;
	snprintf(r.error, sizeof(r.error), "timed out after %d ms", c->u->cfg->timeout_ms);
	finish(c, &r);
}

static void
finish(struct call *c, struct upstream_result *r)
{
	static const struct timeval now = {0, 0};
	struct upstream *u = c->u;
	bool was_running = c->state == CALL_RUNNING;

	r->latency_ms = was_running ? (long)((util_mono_us() - c->started_us) / 1000) : 0;
	if (was_running) {
		TAILQ_REMOVE(&u->running, c, link);
		u->n_running--;
		histogram_observe(&u->stats.latency_ms, (double)r->latency_ms);
		if (r->ok)
			u->stats.ok++;
		else
			u->stats.failed++;
		if (r->permanent)
			u->stats.permanent++;
	} else {
		TAILQ_REMOVE(&u->queue, c, link);
		u->queued--;
	}
	c->fn(c->arg, r);
	free(r->body);
	json_decref(r->json);
	c->state = CALL_CLOSING;
	TAILQ_INSERT_TAIL(&u->closing, c, link);
	evtimer_add(c->timer, &now);
	if (was_running)
		dispatch(u);
}

/* --- reading the answer ------------------------------------------------- */

static void
classify(struct call *c, struct evhttp_request *req, struct upstream_result *r)
{
	struct evbuffer *in;
	char jerr[128];
	bool big = false;

	r->http_status = req != NULL ? evhttp_request_get_response_code(req) : 0;
	if (r->http_status == 0) {
		no_answer_reason(c, r);
		return;
	}
	in = evhttp_request_get_input_buffer(req);
	r->body_len = evbuffer_get_length(in);
	r->body = malloc(r->body_len + 1);
	if (r->body == NULL) {
		snprintf(r->error, sizeof(r->error), "out of memory");
		return;
	}
	evbuffer_copyout(in, r->body, r->body_len);
	r->body[r->body_len] = '\0';
	if (message_load_object(r->body, r->body_len, &r->json, &big, jerr, sizeof(jerr)) < 0)
		r->json = NULL;
	if (r->http_status != 200) {
		snprintf(r->error, sizeof(r->error), "HTTP %d from the trade API", r->http_status);
		r->permanent = r->http_status == 401 || r->http_status == 403;
		return;
	}
	if (r->json == NULL || !json_is_object(r->json)) {
		snprintf(r->error, sizeof(r->error),
			 "the trade API answered something not JSON (%s)",
			 r->json == NULL ? jerr : "not an object");
		return;
	}
	judge_answer(r);
}

/* {"code":200,...} is success; any other code is an error with a message. */
static void
judge_answer(struct upstream_result *r)
{
	json_t *code = json_object_get(r->json, "code");
	const char *message = json_string_value(json_object_get(r->json, "message"));
	char text[160];
	size_t i;

	if (json_is_integer(code) && json_integer_value(code) == 200) {
		r->ok = true;
		return;
	}
	/* The API's message is shown, but only as printable ASCII. */
	snprintf(text, sizeof(text), "%s", message != NULL ? message : "no message");
	for (i = 0; text[i] != '\0'; i++)
		if ((unsigned char)text[i] < 0x20 || (unsigned char)text[i] > 0x7e)
			text[i] = '?';
	r->permanent = (json_is_integer(code) &&
			(json_integer_value(code) == 401 || json_integer_value(code) == 403)) ||
		       looks_like_credentials(message);
	if (json_is_integer(code))
		snprintf(r->error, sizeof(r->error), "%strade API code %lld: %s",
			 r->permanent ? "bad credentials (not retried): " : "",
			 (long long)json_integer_value(code), text);
	else
		snprintf(r->error, sizeof(r->error), "trade API answer has no code: %s", text);
}

static void
no_answer_reason(struct call *c, struct upstream_result *r)
{
	unsigned long ssl_err = c->bev != NULL ? bufferevent_get_openssl_error(c->bev) : 0;
	SSL *ssl = c->bev != NULL && c->u->https ? bufferevent_openssl_get_ssl(c->bev) : NULL;
	long verify = ssl != NULL ? SSL_get_verify_result(ssl) : X509_V_OK;

	if (verify != X509_V_OK) {
		snprintf(r->error, sizeof(r->error), "TLS: certificate of %.100s rejected: %.100s",
			 c->u->host, X509_verify_cert_error_string(verify));
	} else if (ssl_err != 0) {
		char buf[160];

		ERR_error_string_n(ssl_err, buf, sizeof(buf));
		snprintf(r->error, sizeof(r->error), "TLS: %s", buf);
	} else if (c->has_http_error && c->http_error == EVREQ_HTTP_TIMEOUT) {
		c->u->stats.timeouts++;
		snprintf(r->error, sizeof(r->error), "timed out after %d ms",
			 c->u->cfg->timeout_ms);
	} else {
		snprintf(r->error, sizeof(r->error), "no answer from %.100s:%d (%s)", c->u->host,
			 c->u->port,
			 c->has_http_error && c->http_error == EVREQ_HTTP_EOF
			     ? "connection refused or closed"
			     : "connection failed");
	}
}

static bool
looks_like_credentials(const char *message)
{
	static const char *const words[] = {"appkey",		"appsecret",  "app key",
					    "app secret",	"credential", "unauthori",
					    "permission denied"};

	if (message == NULL)
		return false;
	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
		if (contains_nocase(message, words[i]))
			return true;
	return false;
}

static bool
contains_nocase(const char *haystack, const char *needle)
{
	size_t n = strlen(needle);

	for (; *haystack != '\0'; haystack++)
		if (strncasecmp(haystack, needle, n) == 0)
			return true;
	return false;
}

/* --- cleanup ------------------------------------------------------------ */

/*
 * Drop a call still waiting for its answer.  The connection is freed
 * rather than the request cancelled: evhttp_cancel_request() leaves a
 * read callback that is already queued in place, and libevent aborts when
 * it then finds the connection reset.  Freeing the connection frees its
 * request without calling on_answer().  Never called from evhttp's own
 * callbacks: only from our timer and from upstream_free().
 */
static void
abandon(struct call *c)
{
	if (c->evcon != NULL)
		evhttp_connection_free(c->evcon);
	c->evcon = NULL;
	c->bev = NULL;
	c->req = NULL;
}

/* Free the call and its connection (which frees its bufferevent and SSL). */
static void
call_free(struct call *c)
{
	if (c->evcon != NULL)
		evhttp_connection_free(c->evcon);
	else if (c->bev != NULL)
		bufferevent_free(c->bev);
	if (c->timer != NULL)
		event_free(c->timer);
	if (c->body != NULL) {
		OPENSSL_cleanse(c->body, c->body_len);
		free(c->body);
	}
	free(c->path);
	free(c);
}
