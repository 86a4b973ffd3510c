/*
 * httpclient.c - the generic non-blocking HTTP(S) client (see httpclient.h).
 *
 * A call is, in order: queued -> started when a concurrency slot is free
 * and the rate limit allows -> sent on a connection -> finished by evhttp's
 * callback or by our deadline, whichever comes first -> reported once ->
 * freed on the next loop turn (evhttp still uses its connection while it
 * runs our callback).  A call that cannot even start is reported from its
 * timer too, so no callback ever runs inside httpclient_send().
 *
 * Connections (struct conn): each is an evhttp connection over its own
 * bufferevent (with its own SSL for https://), used as a whole and never
 * reconnected: evhttp would reconnect a closed one over the same SSL
 * object, which cannot carry a second session.  evhttp's close callback
 * (on_close) marks a connection it reset, whoever closed it, as closed.
 * Without keep_alive a call opens one, says "Connection: close", and frees
 * it with itself.  With keep_alive a call gives its connection back
 * (give_back) when the answer was read whole, HTTP/1.1, framed (a length,
 * chunks, or a 204/304), neither side said "Connection: close", nothing
 * came beyond it, and the server's Keep-Alive timeout, if it announced
 * one, leaves it time; it does so before its callback runs, so a call the
 * callback makes can take the connection at once.  Idle connections wait
 * in c->idle, newest first; evhttp watches them (anything read or a close
 * resets them: on_close moves them to c->dying), and their timer closes
 * them after idle_ms.  A call takes the newest whose socket, peeked
 * without blocking, shows neither data nor EOF: a server that has just
 * closed one is noticed before evhttp's callback runs.  Busy plus idle
 * connections are never more than max_concurrency: a new one is opened
 * only when no idle one is left.  Connections are freed only from our own
 * timers and httpclient_free(), never inside evhttp's callbacks: a failed
 * or timed-out call's with the call, a dying one on the next loop turn.
 *
 * Even so a server may close an idle connection as our call goes out on
 * it.  Such a call fails at the connection (EOF, reset) before a byte of
 * an answer came: it is sent once more, on a fresh connection, within the
 * same deadline (resend).  So the body must outlive its first sending: it
 * is shared (struct body) between the call and the evbuffer chains that
 * reference it, and the call keeps its share only while it runs on a
 * reused connection; otherwise, and so always without keep_alive, the body
 * is wiped as soon as evhttp has written it.
 *
 * A peer cannot make us hold more than it may: the answer's headers are
 * capped at MAX_HEADER_BYTES and its body at max_body_bytes (evhttp stops
 * reading there).  evhttp reports both as bare error codes, so the call
 * counts the bytes that came (an input buffer callback) and notes when the
 * headers ended, to say which limit it was.  The request body may hold a
 * secret: it goes to evhttp by reference, and its cleanup callback wipes
 * it once no one holds it, so no copy of it is ever freed unwiped.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/dns.h>
#include <event2/http.h>
#include <event2/http_struct.h>
#include <event2/keyvalq_struct.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "httpclient.h"
#include "util.h"

/* An API's answer headers are a few hundred bytes; 64 KiB is far beyond. */
#define MAX_HEADER_BYTES (64 * 1024)

/* How long an idle connection waits for a call when the options do not say. */
#define DEFAULT_IDLE_MS 60000

/*
 * We close an idle connection this long before the server said it would
 * (Keep-Alive: timeout=N), so that we do not send on it as it closes.
 */
#define KEEP_ALIVE_MARGIN_MS 1000

/* Headers the client writes itself, or that would change how evhttp reads the answer. */
static const char *const reserved_headers[] = {
    "Host",	  "Content-Type", "Content-Length", "Transfer-Encoding",
    "Connection", "Keep-Alive",	  "Accept",	    "Expect",
    "TE",	  "Trailer",	  "Upgrade",
};

enum call_state {
	CALL_QUEUED,  /* in c->queue */
	CALL_RUNNING, /* in c->running */
	CALL_CLOSING, /* reported; in c->closing until it is freed */
};

enum conn_state {
	CONN_BUSY,  /* carrying conn->call */
	CONN_IDLE,  /* in c->idle */
	CONN_DYING, /* in c->dying until it is freed, on the next loop turn */
};

/* A request body, shared by its call and the evbuffer chains that reference it. */
struct body {
	char *bytes; /* may hold a secret: wiped before it is freed */
	size_t len;
	unsigned refs;
};

struct conn {
	TAILQ_ENTRY(conn) link; /* in c->idle or c->dying */
	enum conn_state state;
	struct httpclient *c;
	struct evhttp_connection *evcon;
	struct bufferevent *bev;
	struct call *call;   /* while busy */
	struct event *timer; /* idle: its expiry; dying: its free */
	bool closed;	     /* evhttp reset it: never used again */
};

struct call {
	TAILQ_ENTRY(call) link;
	enum call_state state;
	struct httpclient *c;
	char *path;
	char *fields; /* the content type, then each extra header's name and value, NUL-ended */
	size_t n_headers;
	struct body *body; /* the call's share while it may be sent again, else NULL */
	httpclient_fn fn;
	void *arg;

	struct conn *conn;
	struct evhttp_request *req;
	struct event *timer; /* the deadline while running, then the close */
	enum evhttp_request_error http_error;
	bool has_http_error;
	bool start_failed;     /* reported by the timer, at once */
	bool on_reused;	       /* this attempt went out on an idle connection */
	long keep_ms;	       /* after the answer, its connection may idle this long; 0: not */
	int64_t started_us;    /* of the call, not of a resend */
	size_t received;       /* answer bytes that came, headers and body */
	size_t header_bytes;   /* of them, the headers' (once headers_done) */
	bool headers_done;     /* evhttp has read all the answer's headers */
	bool declared_too_big; /* its Content-Length is beyond max_body_bytes */
};

TAILQ_HEAD(call_list, call);
TAILQ_HEAD(conn_list, conn);

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
	bool keep_alive;
	long idle_ms;

	struct call_list queue;
	struct call_list running;
	struct call_list closing;
	size_t queued;
	size_t n_running;
	int64_t next_start_us; /* rate limit, monotonic: no call starts before this */
	struct event *ev_dispatch;

	struct conn_list idle; /* newest first */
	struct conn_list dying;
	size_t n_idle;
	struct httpclient_stats stats; /* its idle is n_idle, filled in when asked */
};

static int parse_url(struct httpclient *c, const struct httpclient_options *o, char *err,
		     size_t errlen);
static int make_ssl_ctx(struct httpclient *c, const struct httpclient_options *o, char *err,
			size_t errlen);
static enum status copy_fields(struct call *call, const struct httpclient_request *r);
static bool header_ok(const struct httpclient_header *h);
static bool value_ok(const char *value);
static void dispatch(struct httpclient *c);
static void on_dispatch(evutil_socket_t fd, short what, void *arg);
static int start(struct call *call);
static int send_on(struct call *call, struct conn *conn);
static int add_headers(struct call *call);
static struct conn *conn_open(struct httpclient *c);
static struct bufferevent *new_bufferevent(struct httpclient *c);
static struct conn *take_idle(struct httpclient *c);
static bool conn_alive(const struct conn *conn);
static void give_back(struct call *call);
static void doom(struct conn *conn);
static void on_close(struct evhttp_connection *evcon, void *arg);
static void on_conn_timer(evutil_socket_t fd, short what, void *arg);
static struct body *body_new(char *bytes, size_t len);
static int give_body(struct call *call);
static void wipe_body(const void *data, size_t len, void *arg);
static void body_release(struct body *b);
static void body_drop(struct call *call);
static void on_input(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg);
static int on_headers(struct evhttp_request *req, void *arg);
static void on_http_error(enum evhttp_request_error error, void *arg);
static void on_answer(struct evhttp_request *req, void *arg);
static bool may_resend(const struct call *call);
static void resend(struct call *call);
static void on_timer(evutil_socket_t fd, short what, void *arg);
static void finish(struct call *call, struct httpclient_answer *a);
static void read_answer(struct call *call, struct evhttp_request *req, struct httpclient_answer *a);
static long keep_for(const struct call *call, struct evhttp_request *req);
static int retry_after(struct evhttp_request *req, int http_status);
static int keep_alive_timeout_s(struct evhttp_request *req);
static int seconds(const char *s, const char **end);
static void no_answer_reason(struct call *call, struct httpclient_answer *a);
static void limit_reason(const struct call *call, char *buf, size_t len);
static void abandon(struct call *call);
static void call_free(struct call *call);
static void conn_free(struct conn *conn);

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
	c->keep_alive = o->keep_alive;
	c->idle_ms = o->idle_ms > 0 ? o->idle_ms : DEFAULT_IDLE_MS;
	TAILQ_INIT(&c->queue);
	TAILQ_INIT(&c->running);
	TAILQ_INIT(&c->closing);
	TAILQ_INIT(&c->idle);
	TAILQ_INIT(&c->dying);
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

enum status
httpclient_send(struct httpclient *c, const struct httpclient_request *r, httpclient_fn fn,
		void *arg)
{
	struct body *body = body_new(r->body, r->body_len);
	struct call *call;
	enum status st;

	if (body == NULL)
		return STATUS_NOMEM;
	call = calloc(1, sizeof(*call));
	if (call == NULL) {
		body_release(body);
		return STATUS_NOMEM;
	}
	call->body = body;
	st = copy_fields(call, r);
	call->path = malloc(strlen(c->prefix) + strlen(r->path) + 2);
	call->timer = evtimer_new(c->base, on_timer, call);
	if (st == STATUS_OK && (call->path == NULL || call->timer == NULL))
		st = STATUS_NOMEM;
	if (st != STATUS_OK) {
		call_free(call);
		return st;
	}
	strcpy(stpcpy(call->path, c->prefix), r->path);
	if (call->path[0] == '\0') /* "http://host:port" or ".../": the root */
		strcpy(call->path, "/");
	call->c = c;
	call->fn = fn;
	call->arg = arg;
	call->state = CALL_QUEUED;
	TAILQ_INSERT_TAIL(&c->queue, call, link);
	c->queued++;
	dispatch(c);
	return STATUS_OK;
}

int
httpclient_post(struct httpclient *c, const char *path, const char *content_type, char *body,
		size_t len, httpclient_fn fn, void *arg)
{
	const struct httpclient_request r = {
	    .path = path, .content_type = content_type, .body = body, .body_len = len};

	return httpclient_send(c, &r, fn, arg) == STATUS_OK ? 0 : -1;
}

size_t
httpclient_pending(const struct httpclient *c)
{
	return c->queued + c->n_running;
}

void
httpclient_stats(const struct httpclient *c, struct httpclient_stats *s)
{
	*s = c->stats;
	s->idle = c->n_idle;
}

void
httpclient_free(struct httpclient *c)
{
	struct call *call;
	struct conn *conn;

	if (c == NULL)
		return;
	while ((call = TAILQ_FIRST(&c->queue)) != NULL ||
	       (call = TAILQ_FIRST(&c->running)) != NULL) {
		struct httpclient_answer a = {.status = STATUS_SHUTDOWN, .retry_after_s = -1};

		abandon(call);
		snprintf(a.error, sizeof(a.error), "shutting down");
		finish(call, &a);
	}
	while ((call = TAILQ_FIRST(&c->closing)) != NULL) {
		TAILQ_REMOVE(&c->closing, call, link);
		call_free(call);
	}
	while ((conn = TAILQ_FIRST(&c->idle)) != NULL || (conn = TAILQ_FIRST(&c->dying)) != NULL) {
		TAILQ_REMOVE(conn->state == CONN_IDLE ? &c->idle : &c->dying, conn, link);
		conn_free(conn);
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

/*
 * R's content type and extra headers, checked, into one block: the caller
 * computes them per attempt and need not keep them.
 */
static enum status
copy_fields(struct call *call, const struct httpclient_request *r)
{
	size_t len = strlen(r->content_type) + 1, i;
	char *p;

	if (!value_ok(r->content_type))
		return STATUS_PERMANENT;
	for (i = 0; i < r->n_headers; i++) {
		if (!header_ok(&r->headers[i]))
			return STATUS_PERMANENT;
		len += strlen(r->headers[i].name) + strlen(r->headers[i].value) + 2;
	}
	call->fields = malloc(len);
	if (call->fields == NULL)
		return STATUS_NOMEM;
	p = stpcpy(call->fields, r->content_type) + 1;
	for (i = 0; i < r->n_headers; i++) {
		p = stpcpy(p, r->headers[i].name) + 1;
		p = stpcpy(p, r->headers[i].value) + 1;
	}
	call->n_headers = r->n_headers;
	return STATUS_OK;
}

/* A token name (RFC 9110 5.6.2) not in reserved_headers, and a value_ok() value. */
static bool
header_ok(const struct httpclient_header *h)
{
	size_t i;

	if (h->name == NULL || h->value == NULL || h->name[0] == '\0' || !value_ok(h->value))
		return false;
	for (i = 0; h->name[i] != '\0'; i++)
		if (!isalnum((unsigned char)h->name[i]) &&
		    strchr("!#$%&'*+-.^_`|~", h->name[i]) == NULL)
			return false;
	for (i = 0; i < sizeof(reserved_headers) / sizeof(reserved_headers[0]); i++)
		if (strcasecmp(h->name, reserved_headers[i]) == 0)
			return false;
	return true;
}

/* No control character but a tab: a CR or LF would start a header of its own. */
static bool
value_ok(const char *value)
{
	const unsigned char *p;

	for (p = (const unsigned char *)value; *p != '\0'; p++)
		if ((*p < 0x20 && *p != '\t') || *p == 0x7f)
			return false;
	return true;
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

			/* Reported from the loop: the caller may be inside httpclient_send(). */
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

/* The call's deadline starts, then its first sending, on an idle connection if there is one. */
static int
start(struct call *call)
{
	struct timeval tv = util_tv_ms(call->c->timeout_ms);

	call->started_us = util_mono_us();
	evtimer_add(call->timer, &tv);
	return send_on(call, take_idle(call->c));
}

/* Send CALL on CONN, an idle connection, or on a new one when CONN is NULL. */
static int
send_on(struct call *call, struct conn *conn)
{
	struct httpclient *c = call->c;

	call->on_reused = conn != NULL;
	if (conn == NULL && (conn = conn_open(c)) == NULL)
		return -1;
	if (call->on_reused) {
		struct timeval tv = util_tv_ms(c->timeout_ms);

		c->stats.connections_reused++;
		evhttp_connection_set_timeout_tv(conn->evcon, &tv); /* it had the idle one */
	}
	conn->state = CONN_BUSY;
	conn->call = call;
	call->conn = conn;
	call->req = evhttp_request_new(on_answer, call);
	if (call->req == NULL)
		return -1;
	evhttp_request_set_error_cb(call->req, on_http_error);
	evhttp_request_set_header_cb(call->req, on_headers);
	if (add_headers(call) < 0 || give_body(call) < 0) {
		evhttp_request_free(call->req);
		call->req = NULL;
		return -1;
	}
	if (evhttp_make_request(conn->evcon, call->req, EVHTTP_REQ_POST, call->path) != 0) {
		call->req = NULL; /* evhttp freed it */
		return -1;
	}
	return 0;
}

static int
add_headers(struct call *call)
{
	struct evkeyvalq *headers = evhttp_request_get_output_headers(call->req);
	const char *name = call->fields + strlen(call->fields) + 1;
	int rc = 0;
	size_t i;

	rc |= evhttp_add_header(headers, "Host", call->c->host);
	rc |= evhttp_add_header(headers, "Content-Type", call->fields);
	rc |= evhttp_add_header(headers, "Accept", "application/json");
	if (!call->c->keep_alive)
		rc |= evhttp_add_header(headers, "Connection", "close");
	for (i = 0; i < call->n_headers; i++) {
		const char *value = name + strlen(name) + 1;

		rc |= evhttp_add_header(headers, name, value);
		name = value + strlen(value) + 1;
	}
	return rc == 0 ? 0 : -1;
}

/* --- connections -------------------------------------------------------- */

static struct conn *
conn_open(struct httpclient *c)
{
	struct timeval tv = util_tv_ms(c->timeout_ms);
	struct conn *conn = calloc(1, sizeof(*conn));

	if (conn == NULL)
		return NULL;
	conn->c = c;
	conn->timer = evtimer_new(c->base, on_conn_timer, conn);
	conn->bev = new_bufferevent(c);
	if (conn->timer == NULL || conn->bev == NULL)
		goto fail;
	conn->evcon = evhttp_connection_base_bufferevent_new(c->base, c->dns, conn->bev, c->host,
							     (ev_uint16_t)c->port);
	if (conn->evcon == NULL)
		goto fail;
	evhttp_connection_set_timeout_tv(conn->evcon, &tv);
	evhttp_connection_set_retries(conn->evcon, 0);
	evhttp_connection_set_max_headers_size(conn->evcon, MAX_HEADER_BYTES);
	evhttp_connection_set_max_body_size(conn->evcon, (ev_ssize_t)c->max_body_bytes);
	evhttp_connection_set_closecb(conn->evcon, on_close, conn);
	if (evbuffer_add_cb(bufferevent_get_input(conn->bev), on_input, conn) == NULL)
		goto fail;
	c->stats.connections_opened++;
	return conn;
fail:
	conn_free(conn);
	return NULL;
}

static struct bufferevent *
new_bufferevent(struct httpclient *c)
{
	struct bufferevent *bev;
	SSL *ssl;

	if (!c->https)
		return bufferevent_socket_new(c->base, -1, BEV_OPT_CLOSE_ON_FREE);
	ssl = SSL_new(c->ssl_ctx);
	if (ssl == NULL)
		return NULL;
	SSL_set_tlsext_host_name(ssl, c->host);
	SSL_set1_host(ssl, c->host); /* verify the certificate names this host */
	bev = bufferevent_openssl_socket_new(c->base, -1, ssl, BUFFEREVENT_SSL_CONNECTING,
					     BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (bev == NULL) {
		SSL_free(ssl);
		return NULL;
	}
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	return bev;
}

/* The newest idle connection still alive; the dead ones met on the way die. */
static struct conn *
take_idle(struct httpclient *c)
{
	struct conn *conn;

	while ((conn = TAILQ_FIRST(&c->idle)) != NULL) {
		if (!conn_alive(conn)) {
			doom(conn);
			continue;
		}
		TAILQ_REMOVE(&c->idle, conn, link);
		c->n_idle--;
		evtimer_del(conn->timer);
		return conn;
	}
	return NULL;
}

/*
 * An idle connection's socket must have nothing to read: EOF or an error
 * means the server closed it, data that it is out of step.  evhttp would
 * notice too, but only when its callback runs, perhaps after our call.
 */
static bool
conn_alive(const struct conn *conn)
{
	evutil_socket_t fd = bufferevent_getfd(conn->bev);
	char byte;

	if (conn->closed || fd < 0)
		return false;
	return recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT) < 0 &&
	       (errno == EAGAIN || errno == EWOULDBLOCK);
}

/* The call's answer left its connection fit for another: to the idle list. */
static void
give_back(struct call *call)
{
	struct conn *conn = call->conn;
	struct httpclient *c = call->c;
	struct timeval idle = util_tv_ms(call->keep_ms);
	/* evhttp's read timeout watches the idle connection too: ours comes first. */
	struct timeval backstop = util_tv_ms(call->keep_ms + KEEP_ALIVE_MARGIN_MS);

	call->conn = NULL;
	conn->call = NULL;
	conn->state = CONN_IDLE;
	TAILQ_INSERT_HEAD(&c->idle, conn, link);
	c->n_idle++;
	evhttp_connection_set_timeout_tv(conn->evcon, &backstop);
	evtimer_add(conn->timer, &idle);
}

/* CONN, idle or busy no more, is freed on the next loop turn. */
static void
doom(struct conn *conn)
{
	static const struct timeval now = {0, 0};
	struct httpclient *c = conn->c;

	if (conn->state == CONN_IDLE) {
		TAILQ_REMOVE(&c->idle, conn, link);
		c->n_idle--;
	}
	conn->state = CONN_DYING;
	TAILQ_INSERT_TAIL(&c->dying, conn, link);
	evtimer_add(conn->timer, &now);
}

/*
 * evhttp resets the connection: the server closed it or sent something
 * while it was idle, an answer or our request said "Connection: close",
 * or a call on it failed.  evhttp goes on using it after we return.
 */
static void
on_close(struct evhttp_connection *evcon, void *arg)
{
	struct conn *conn = arg;

	(void)evcon;
	conn->closed = true;
	if (conn->state == CONN_IDLE)
		doom(conn);
}

/* An idle connection's time is up, or a dying one's free is due. */
static void
on_conn_timer(evutil_socket_t fd, short what, void *arg)
{
	struct conn *conn = arg;
	struct httpclient *c = conn->c;

	(void)fd;
	(void)what;
	if (conn->state == CONN_IDLE) {
		TAILQ_REMOVE(&c->idle, conn, link);
		c->n_idle--;
	} else {
		TAILQ_REMOVE(&c->dying, conn, link);
	}
	conn_free(conn);
}

/* --- the request body --------------------------------------------------- */

/* BYTES, taken: wiped and freed when this fails, or once no one holds it. */
static struct body *
body_new(char *bytes, size_t len)
{
	struct body *b = malloc(sizeof(*b));

	if (b == NULL) {
		OPENSSL_cleanse(bytes, len);
		free(bytes);
		return NULL;
	}
	b->bytes = bytes;
	b->len = len;
	b->refs = 1; /* the call's */
	return b;
}

/*
 * Hand the body to the request's output buffer by reference: evhttp moves
 * it to the connection and writes it from where it is, and wipe_body runs
 * when it is written or the connection freed.  A copy (evbuffer_add) would
 * be freed unwiped.  Unless the call may have to send it again, the
 * buffer's reference is the only one from now on.
 */
static int
give_body(struct call *call)
{
	struct evbuffer *out = evhttp_request_get_output_buffer(call->req);
	struct body *b = call->body;

	if (b->len > 0) {
		if (evbuffer_add_reference(out, b->bytes, b->len, wipe_body, b) < 0)
			return -1;
		b->refs++;
	}
	if (!call->on_reused)
		body_drop(call);
	return 0;
}

static void
wipe_body(const void *data, size_t len, void *arg)
{
	(void)data;
	(void)len;
	body_release(arg);
}

static void
body_release(struct body *b)
{
	if (--b->refs > 0)
		return;
	OPENSSL_cleanse(b->bytes, b->len);
	free(b->bytes);
	free(b);
}

/* The call lets go of its share of the body, if it still has one. */
static void
body_drop(struct call *call)
{
	if (call->body != NULL)
		body_release(call->body);
	call->body = NULL;
}

/* --- evhttp's callbacks ------------------------------------------------- */

/* Every byte of the answer passes through the connection's input buffer. */
static void
on_input(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
	struct conn *conn = arg;

	(void)buf;
	if (conn->call != NULL)
		conn->call->received += info->n_added;
}

/* The headers are read: what is left in the input buffer is body already. */
static int
on_headers(struct evhttp_request *req, void *arg)
{
	struct call *call = arg;
	const char *length =
	    evhttp_find_header(evhttp_request_get_input_headers(req), "Content-Length");

	call->headers_done = true;
	call->header_bytes =
	    call->received - evbuffer_get_length(bufferevent_get_input(call->conn->bev));
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
	struct httpclient_answer a = {.retry_after_s = -1};

	call->req = NULL; /* evhttp frees it after we return */
	read_answer(call, req, &a);
	if (a.http_status == 0 && may_resend(call)) {
		resend(call);
		return;
	}
	if (a.status == STATUS_OK)
		call->keep_ms = keep_for(call, req);
	finish(call, &a);
}

/*
 * A reused connection that failed at the connection (closed, reset)
 * before any byte of an answer came had been closed by the server: not
 * the server's answer to this call.  Not after a limit or the deadline.
 */
static bool
may_resend(const struct call *call)
{
	return call->on_reused && call->received == 0 && call->has_http_error &&
	       call->http_error == EVREQ_HTTP_EOF;
}

/* The same call again on a fresh connection, within the same deadline. */
static void
resend(struct call *call)
{
	static const struct timeval now = {0, 0};
	struct conn *stale = call->conn;

	stale->call = NULL;
	call->conn = NULL;
	doom(stale);
	call->c->stats.resent++;
	call->received = 0;
	call->header_bytes = 0;
	call->headers_done = false;
	call->declared_too_big = false;
	call->has_http_error = false;
	if (send_on(call, NULL) < 0) {
		call->start_failed = true;
		evtimer_add(call->timer, &now);
	}
}

/*
 * The call's timer: while running it is the deadline (or, for a call that
 * could not start, the report of that); once reported it fires at once to
 * free the call, and its connection if it kept one, outside evhttp's
 * callbacks.
 */
static void
on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct call *call = arg;
	struct httpclient_answer a = {.retry_after_s = -1};

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
	body_drop(call); /* it is never sent again */
	if (call->keep_ms > 0)
		give_back(call); /* before FN: a call FN makes may take it */
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
	a->retry_after_s = retry_after(req, a->http_status);
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

/*
 * How long the call's connection may wait for another call after this
 * answer (whole, read); 0: it may not (see the file comment).
 */
static long
keep_for(const struct call *call, struct evhttp_request *req)
{
	const struct httpclient *c = call->c;
	const struct evkeyvalq *headers = evhttp_request_get_input_headers(req);
	const char *te = evhttp_find_header(headers, "Transfer-Encoding");
	int code = evhttp_request_get_response_code(req);
	bool framed = evhttp_find_header(headers, "Content-Length") != NULL ||
		      (te != NULL && strcasecmp(te, "chunked") == 0) || code == 204 || code == 304;
	int hint = keep_alive_timeout_s(req);
	long ms = c->idle_ms;

	if (!c->keep_alive || call->conn->closed || req->major != 1 || req->minor < 1 || !framed ||
	    evbuffer_get_length(bufferevent_get_input(call->conn->bev)) > 0)
		return 0;
	if (hint >= 0 && (long)hint * 1000 - KEEP_ALIVE_MARGIN_MS < ms)
		ms = (long)hint * 1000 - KEEP_ALIVE_MARGIN_MS;
	return ms > 0 ? ms : 0;
}

/* A 429's or 503's Retry-After in delta-seconds, or -1 (an HTTP-date too). */
static int
retry_after(struct evhttp_request *req, int http_status)
{
	const char *v = evhttp_find_header(evhttp_request_get_input_headers(req), "Retry-After");
	const char *end;
	int s;

	if ((http_status != 429 && http_status != 503) || v == NULL)
		return -1;
	s = seconds(v + strspn(v, " \t"), &end);
	return end[strspn(end, " \t")] == '\0' ? s : -1;
}

/* "Keep-Alive: timeout=N, max=M" (Node, Apache): N, or -1. */
static int
keep_alive_timeout_s(struct evhttp_request *req)
{
	const char *v = evhttp_find_header(evhttp_request_get_input_headers(req), "Keep-Alive");
	const char *p, *end;

	for (p = v; p != NULL && *p != '\0'; p++)
		if ((p == v || p[-1] == ',' || p[-1] == ' ') && strncasecmp(p, "timeout=", 8) == 0)
			return seconds(p + 8, &end);
	return -1;
}

/* The digits S starts with, as seconds cut to INT_MAX, or -1 for none; *END after them. */
static int
seconds(const char *s, const char **end)
{
	long long n = 0;
	const char *p;

	for (p = s; *p >= '0' && *p <= '9'; p++)
		if (n <= INT_MAX)
			n = n * 10 + (*p - '0');
	*end = p;
	if (p == s)
		return -1;
	return n > INT_MAX ? INT_MAX : (int)n;
}

static void
no_answer_reason(struct call *call, struct httpclient_answer *a)
{
	const struct httpclient *c = call->c;
	struct bufferevent *bev = call->conn != NULL ? call->conn->bev : NULL;
	unsigned long ssl_err = bev != NULL ? bufferevent_get_openssl_error(bev) : 0;
	SSL *ssl = bev != NULL && c->https ? bufferevent_openssl_get_ssl(bev) : NULL;
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
	if (call->conn != NULL)
		conn_free(call->conn);
	call->conn = NULL;
	call->req = NULL;
}

/* Free the call and the connection it still has, if any. */
static void
call_free(struct call *call)
{
	if (call->conn != NULL)
		conn_free(call->conn);
	if (call->timer != NULL)
		event_free(call->timer);
	body_drop(call);
	free(call->fields);
	free(call->path);
	free(call);
}

/* Free the connection (its bufferevent and SSL with it); off every list already. */
static void
conn_free(struct conn *conn)
{
	if (conn->evcon != NULL) {
		/* evhttp_connection_free() calls it: nothing may be done to CONN now. */
		evhttp_connection_set_closecb(conn->evcon, NULL, NULL);
		evhttp_connection_free(conn->evcon);
	} else if (conn->bev != NULL) {
		bufferevent_free(conn->bev);
	}
	if (conn->timer != NULL)
		event_free(conn->timer);
	free(conn);
}
