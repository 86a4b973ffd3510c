/*
 * fake_api.c - a fake dajisaas trade API (PROTOCOL.md section 5) for the
 * integration tests.
 *
 *   fake_api --fixture PATH [--host 127.0.0.1] [--port N (0: any free one)]
 *            [--tls-cert FILE --tls-key FILE] [--app-key K --app-secret S]
 *
 * One evhttp server on one event loop, plain HTTP or, with a certificate,
 * HTTPS only (TLS 1.2+).  Once bound it prints "listening on PORT"; on
 * SIGTERM or SIGINT it frees everything and exits 0.
 *
 * Orders: the tests upsert them with POST /_control/orders (id, status,
 * modifyTime, createTime, optionally extra baseInfo fields); every other
 * field of a record is a deep copy of the fixture's data.result[0].
 * buyerView answers one record; getBuyerOrderList filters them by
 * createTime window and status, sorts them by createTime then id, and
 * pages them.  Both check appKey/appSecret in the body.
 *
 * Faults: POST /_control/faults appends to a list; each trade call consumes
 * the first fault that matches its endpoint and order (count defaults to 1,
 * -1 is for ever).  A call's answer is decided when it arrives, faults
 * included, then sent at once, or after the fault's delay_ms (any kind;
 * "slow" is the right answer, 1000 ms late by default), or never ("hang":
 * held until the client hangs up), or replaced by closing the connection
 * ("close", without a TLS close_notify).  "wrongid" is the right answer
 * with id + 1; "creds" does not count as a rejected credential.
 *
 * Hostile answers: "hugeheaders" answers "HTTP/1.1 200 OK" and then header
 * lines, never their end: BYTES of them (default 100 MB), as fast as the
 * client reads, then closes; the stream takes the connection's bufferevent
 * from evhttp.  "manynumbers" is a 200 OK for the order asked, of BYTES
 * (default 16,000,000, just under the receiver's old 16 MiB cap) of small
 * numbers: {"code":200,"data":{"baseInfo":{"id":ID},"x":[1,1,...]}}.
 * "echo" is code 500 with the message "bad request: " + the request body
 * as it came, appSecret and all; with AT, padded or cut at the front so
 * that the appSecret's value starts at byte AT of the message (to put it
 * across the receiver's cut, or within it).
 *
 * A call not answered at once is a struct pending, with a close callback on
 * its connection.  When the client hangs up first, evhttp detaches the
 * request from the dying connection and leaves it to us: the callback frees
 * it.  When we answer or close first, we clear the callback beforehand.  At
 * shutdown the callbacks are cleared and evhttp_free() frees the
 * connections with their requests still attached.
 *
 * GET /_control/stats reports the trade calls (POSTs to a path ending in a
 * trade endpoint, faulted or not; buyerView per well-formed orderId); a call
 * is in progress from its arrival until its answer is sent or its
 * connection closed.  POST /_control/reset forgets the orders, the faults
 * and the counters, but not the calls still in progress.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#define MAX_BODY_BYTES	  (1024 * 1024)
#define SERVER_TIMEOUT_S  600
#define DEFAULT_PAGE_SIZE 20
#define DEFAULT_SLOW_MS	  1000
#define MAX_DELAY_MS	  3600000
#define BUYER_VIEW_PATH	  "/alibaba/trade/get/buyerView"
#define LIST_PATH	  "/alibaba/trade/getBuyerOrderList"
#define CONTROL_PREFIX	  "/_control/"
#define JSON_TYPE	  "application/json;charset=UTF-8"
#define TEXT_TYPE	  "text/plain; charset=utf-8"
#define ID_LEN		  24
#define HUGEHEADERS_BYTES 100000000L
#define MANYNUMBERS_BYTES 16000000L
#define MAX_FAULT_BYTES	  1000000000L
#define STREAM_CHUNK	  (256 * 1024)
#define ECHO_PREFIX	  "bad request: "

enum endpoint { EP_ANY, EP_BUYER_VIEW, EP_LIST };

enum fault_kind {
	FAULT_NONE,
	FAULT_HTTP500,
	FAULT_HTTP503,
	FAULT_NOTJSON,
	FAULT_CODE,
	FAULT_WRONGID,
	FAULT_CREDS,
	FAULT_HANG,
	FAULT_SLOW,
	FAULT_CLOSE,
	FAULT_HUGEHEADERS,
	FAULT_MANYNUMBERS,
	FAULT_ECHO,
};

static const char *const fault_names[] = {
    [FAULT_HTTP500] = "http500",
    [FAULT_HTTP503] = "http503",
    [FAULT_NOTJSON] = "notjson",
    [FAULT_CODE] = "code",
    [FAULT_WRONGID] = "wrongid",
    [FAULT_CREDS] = "creds",
    [FAULT_HANG] = "hang",
    [FAULT_SLOW] = "slow",
    [FAULT_CLOSE] = "close",
    [FAULT_HUGEHEADERS] = "hugeheaders",
    [FAULT_MANYNUMBERS] = "manynumbers",
    [FAULT_ECHO] = "echo",
};

struct options {
	const char *fixture;
	const char *host;
	int port;
	const char *tls_cert;
	const char *tls_key;
	const char *app_key;
	const char *app_secret;
};

struct fault {
	TAILQ_ENTRY(fault) link;
	enum fault_kind kind;
	long count; /* calls left; -1: forever */
	enum endpoint endpoint;
	bool has_order;
	int64_t order;
	long delay_ms;
	long bytes; /* hugeheaders, manynumbers: how much to send */
	long at;    /* echo: where the secret starts in the message; -1: unpadded */
};

TAILQ_HEAD(fault_list, fault);

/* One trade call as it arrived. */
struct call {
	enum endpoint ep;
	json_t *params; /* the body, or NULL when it is not JSON */
	bool has_id;	/* buyerView with a well-formed orderId */
	int64_t id;
	const char *raw; /* the body as it came (not NUL-terminated) */
	size_t raw_len;
};

/* What a call is answered (status 0: nothing, for hang and close). */
struct answer {
	int status;
	char *body;
	const char *content_type;
};

/* A call answered later, or never. */
struct pending {
	TAILQ_ENTRY(pending) link;
	struct fake *f;
	struct evhttp_request *req;
	struct event *timer; /* NULL: held until the client hangs up */
	bool close;	     /* when the timer fires, close instead of answering */
	long stream;	     /* > 0: when the timer fires, stream this many header bytes */
	long header_no;	     /* header lines streamed so far */
	struct answer answer;
};

TAILQ_HEAD(pending_list, pending);

struct fake {
	struct options opt;
	struct event_base *base;
	struct evhttp *http;
	SSL_CTX *ssl_ctx;
	struct event *ev_sigterm;
	struct event *ev_sigint;
	json_t *fixture; /* the whole file */
	json_t *record;	 /* borrowed: its data.result[0] */
	json_t *orders;	 /* id -> {"status","modifyTime","createTime"[,"baseInfo"]} */
	struct fault_list faults;
	struct pending_list pending;
	int64_t started_ms; /* monotonic */
	unsigned long long trace_seq;
	/* statistics, cleared by /_control/reset */
	json_t *buyer_view_calls; /* id -> count */
	json_t *call_times;	  /* ms since start, one per trade call */
	json_int_t list_calls;
	json_int_t calls;
	json_int_t rejected_credentials;
	json_int_t concurrent;
	json_int_t max_concurrent;
};

struct row {
	int64_t created_ms;
	int64_t id;
	json_t *order;
};

static int parse_args(struct options *o, int argc, char **argv);
static int fake_init(struct fake *f);
static int load_fixture(struct fake *f);
static int make_ssl_ctx(struct fake *f);
static struct bufferevent *make_bev(struct event_base *base, void *arg);
static int fake_listen(struct fake *f);
static void fake_free(struct fake *f);
static void on_signal(evutil_socket_t sig, short what, void *arg);
static void on_request(struct evhttp_request *req, void *arg);

static void trade_call(struct fake *f, struct evhttp_request *req, enum endpoint ep);
static void call_arrived(struct fake *f);
static void count_call(struct fake *f, const struct call *c);
static struct fault take_fault(struct fake *f, const struct call *c);
static void decide(struct fake *f, const struct call *c, const struct fault *ft, struct answer *a);
static void answer_call(struct fake *f, const struct call *c, bool wrongid, struct answer *a);
static bool credentials_ok(const struct fake *f, json_t *params);
static void buyer_view(struct fake *f, const struct call *c, bool wrongid, struct answer *a);
static void order_list(struct fake *f, const struct call *c, bool wrongid, struct answer *a);
static struct row *matching_orders(struct fake *f, int64_t start, int64_t end, const char *status,
				   size_t *n);
static int cmp_rows(const void *a, const void *b);
static json_t *make_record(struct fake *f, int64_t id, json_t *order);
static void api_ok(struct fake *f, struct answer *a, json_t *data);
static void api_error(struct fake *f, struct answer *a, int code, const char *message);
static void set_text(struct answer *a, int status, const char *text, const char *type);
static void set_json(struct answer *a, json_t *env);

static void defer(struct fake *f, struct evhttp_request *req, const struct fault *ft,
		  struct answer *a);
static void watch_hangup(struct evhttp_connection *evcon, struct pending *p);
static void on_pending_timer(evutil_socket_t fd, short what, void *arg);
static void on_connection_close(struct evhttp_connection *evcon, void *arg);
static void pending_drop(struct pending *p);
static void stream_start(struct pending *p);
static void stream_more(struct pending *p);
static void on_stream_write(struct bufferevent *bev, void *arg);
static void on_stream_event(struct bufferevent *bev, short what, void *arg);
static void stream_end(struct pending *p);
static void many_numbers(const struct call *c, long bytes, struct answer *a);
static void echo(struct fake *f, const struct call *c, long at, struct answer *a);
static void answer_now(struct fake *f, struct evhttp_request *req, struct answer *a);

static void control(struct fake *f, struct evhttp_request *req, const char *what);
static void control_orders(struct fake *f, struct evhttp_request *req);
static int stage_order(struct fake *f, json_t *staged, json_t *item, char *err, size_t errlen);
static json_t *default_order(struct fake *f);
static void control_faults(struct fake *f, struct evhttp_request *req);
static int parse_fault(json_t *item, struct fault *ft, char *err, size_t errlen);
static void control_reset(struct fake *f);
static json_t *stats_json(struct fake *f);
static void free_faults(struct fault_list *list);

static json_t *read_json(struct evhttp_request *req);
static void reply(struct evhttp_request *req, int status, const char *type, const char *body);
static void reply_json(struct evhttp_request *req, int status, json_t *body);
static void reply_control_error(struct evhttp_request *req, int status, const char *why);
static const char *reason(int status);
static bool order_id_of(json_t *v, int64_t *out);
static void id_key(int64_t id, char key[ID_LEN]);
static bool int_param(json_t *v, long dflt, long *out);
static bool window_bound(json_t *v, int64_t dflt, int64_t *out);
static bool iso_to_ms(const char *s, int64_t *out);
static bool compact_to_ms(const char *s, int64_t *out);
static bool digits(const char **p, int n, int *out);
static bool offset_minutes(const char **p, int *out);
static bool civil_to_ms(int y, int mo, int d, int h, int mi, int s, int ms, int off, int64_t *out);
static int64_t days_from_civil(int64_t y, int m, int d);
static bool ends_with(const char *s, const char *suffix);
static int64_t clock_ms(clockid_t which);

int
main(int argc, char **argv)
{
	struct fake f;
	int rc = 1;

	memset(&f, 0, sizeof(f));
	TAILQ_INIT(&f.faults);
	TAILQ_INIT(&f.pending);
	if (parse_args(&f.opt, argc, argv) < 0) {
		fprintf(stderr,
			"usage: fake_api --fixture PATH [--host H] [--port N] "
			"[--tls-cert FILE --tls-key FILE] [--app-key K] [--app-secret S]\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	if (fake_init(&f) == 0 && fake_listen(&f) == 0) {
		event_base_dispatch(f.base);
		rc = 0;
	}
	fake_free(&f);
	return rc;
}

static int
parse_args(struct options *o, int argc, char **argv)
{
	o->host = "127.0.0.1";
	o->app_key = "demo-app-key";
	o->app_secret = "demo-app-secret";
	for (int i = 1; i < argc; i++) {
		const char *name = argv[i], *value = i + 1 < argc ? argv[i + 1] : NULL;
		char *end;

		if (value == NULL)
			return -1;
		i++;
		if (strcmp(name, "--fixture") == 0)
			o->fixture = value;
		else if (strcmp(name, "--host") == 0)
			o->host = value;
		else if (strcmp(name, "--tls-cert") == 0)
			o->tls_cert = value;
		else if (strcmp(name, "--tls-key") == 0)
			o->tls_key = value;
		else if (strcmp(name, "--app-key") == 0)
			o->app_key = value;
		else if (strcmp(name, "--app-secret") == 0)
			o->app_secret = value;
		else if (strcmp(name, "--port") == 0) {
			errno = 0;
			o->port = (int)strtol(value, &end, 10);
			if (errno != 0 || *end != '\0' || o->port < 0 || o->port > 65535)
				return -1;
		} else
			return -1;
	}
	if (o->fixture == NULL || (o->tls_cert == NULL) != (o->tls_key == NULL))
		return -1;
	return 0;
}

/* --- setup and teardown ------------------------------------------------- */

static int
fake_init(struct fake *f)
{
	f->started_ms = clock_ms(CLOCK_MONOTONIC);
	if (load_fixture(f) < 0)
		return -1;
	f->orders = json_object();
	f->buyer_view_calls = json_object();
	f->call_times = json_array();
	f->base = event_base_new();
	if (f->orders == NULL || f->buyer_view_calls == NULL || f->call_times == NULL ||
	    f->base == NULL || (f->http = evhttp_new(f->base)) == NULL) {
		fprintf(stderr, "fake_api: out of memory\n");
		return -1;
	}
	evhttp_set_max_body_size(f->http, MAX_BODY_BYTES);
	evhttp_set_timeout(f->http, SERVER_TIMEOUT_S);
	evhttp_set_default_content_type(f->http, TEXT_TYPE);
	evhttp_set_gencb(f->http, on_request, f);
	if (f->opt.tls_cert != NULL && make_ssl_ctx(f) < 0)
		return -1;
	f->ev_sigterm = evsignal_new(f->base, SIGTERM, on_signal, f);
	f->ev_sigint = evsignal_new(f->base, SIGINT, on_signal, f);
	if (f->ev_sigterm == NULL || f->ev_sigint == NULL)
		return -1;
	evsignal_add(f->ev_sigterm, NULL);
	evsignal_add(f->ev_sigint, NULL);
	return 0;
}

/* The fixture is a getBuyerOrderList answer: data.result[0] is the template record. */
static int
load_fixture(struct fake *f)
{
	json_error_t err;

	f->fixture = json_load_file(f->opt.fixture, 0, &err);
	if (f->fixture == NULL) {
		fprintf(stderr, "fake_api: %s:%d: %s\n", f->opt.fixture, err.line, err.text);
		return -1;
	}
	f->record =
	    json_array_get(json_object_get(json_object_get(f->fixture, "data"), "result"), 0);
	if (!json_is_object(f->record) || !json_is_object(json_object_get(f->record, "baseInfo"))) {
		fprintf(stderr, "fake_api: %s: no data.result[0].baseInfo\n", f->opt.fixture);
		return -1;
	}
	return 0;
}

static int
make_ssl_ctx(struct fake *f)
{
	char buf[256];

	f->ssl_ctx = SSL_CTX_new(TLS_server_method());
	if (f->ssl_ctx == NULL || SSL_CTX_set_min_proto_version(f->ssl_ctx, TLS1_2_VERSION) != 1 ||
	    SSL_CTX_use_certificate_chain_file(f->ssl_ctx, f->opt.tls_cert) != 1 ||
	    SSL_CTX_use_PrivateKey_file(f->ssl_ctx, f->opt.tls_key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(f->ssl_ctx) != 1) {
		ERR_error_string_n(ERR_get_error(), buf, sizeof(buf));
		fprintf(stderr, "fake_api: TLS setup with %s and %s: %s\n", f->opt.tls_cert,
			f->opt.tls_key, buf);
		return -1;
	}
	evhttp_set_bevcb(f->http, make_bev, f);
	return 0;
}

/* evhttp's hook for each accepted connection: a TLS server session. */
static struct bufferevent *
make_bev(struct event_base *base, void *arg)
{
	struct fake *f = arg;
	SSL *ssl = SSL_new(f->ssl_ctx);
	struct bufferevent *bev;

	if (ssl == NULL)
		return NULL;
	bev = bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING,
					     BEV_OPT_CLOSE_ON_FREE);
	if (bev == NULL)
		SSL_free(ssl);
	return bev;
}

static int
fake_listen(struct fake *f)
{
	struct evhttp_bound_socket *bound;
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	int port;

	bound = evhttp_bind_socket_with_handle(f->http, f->opt.host, (ev_uint16_t)f->opt.port);
	if (bound == NULL) {
		fprintf(stderr, "fake_api: cannot listen on %s:%d: %s\n", f->opt.host, f->opt.port,
			evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
		return -1;
	}
	if (getsockname(evhttp_bound_socket_get_fd(bound), (struct sockaddr *)&ss, &len) != 0) {
		fprintf(stderr, "fake_api: getsockname: %s\n", strerror(errno));
		return -1;
	}
	if (ss.ss_family == AF_INET6)
		port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	else
		port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
	printf("listening on %d\n", port);
	fflush(stdout);
	return 0;
}

/*
 * Deferred calls first: their close callbacks are cleared, so evhttp_free()
 * frees their connections and requests without calling back into us.
 */
static void
fake_free(struct fake *f)
{
	struct pending *p;

	while ((p = TAILQ_FIRST(&f->pending)) != NULL) {
		struct evhttp_request *req = p->req;
		bool detached = evhttp_request_get_connection(req) == NULL;

		pending_drop(p);
		if (detached) /* cannot happen: the close callback frees those */
			evhttp_request_free(req);
	}
	if (f->http != NULL)
		evhttp_free(f->http);
	free_faults(&f->faults);
	json_decref(f->fixture);
	json_decref(f->orders);
	json_decref(f->buyer_view_calls);
	json_decref(f->call_times);
	if (f->ev_sigterm != NULL)
		event_free(f->ev_sigterm);
	if (f->ev_sigint != NULL)
		event_free(f->ev_sigint);
	if (f->ssl_ctx != NULL)
		SSL_CTX_free(f->ssl_ctx);
	if (f->base != NULL)
		event_base_free(f->base);
	libevent_global_shutdown();
	memset(f, 0, sizeof(*f));
}

static void
on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct fake *f = arg;

	(void)sig;
	(void)what;
	event_base_loopbreak(f->base);
}

static void
on_request(struct evhttp_request *req, void *arg)
{
	struct fake *f = arg;
	const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));

	if (path == NULL)
		path = "/";
	if (strncmp(path, CONTROL_PREFIX, strlen(CONTROL_PREFIX)) == 0)
		control(f, req, path + strlen(CONTROL_PREFIX));
	else if (ends_with(path, BUYER_VIEW_PATH))
		trade_call(f, req, EP_BUYER_VIEW);
	else if (ends_with(path, LIST_PATH))
		trade_call(f, req, EP_LIST);
	else
		reply(req, HTTP_NOTFOUND, TEXT_TYPE, "not found\n");
}

/* --- trade calls -------------------------------------------------------- */

static void
trade_call(struct fake *f, struct evhttp_request *req, enum endpoint ep)
{
	struct call c = {.ep = ep};
	struct answer a = {0};
	struct fault ft;

	if (evhttp_request_get_command(req) != EVHTTP_REQ_POST) {
		reply(req, HTTP_BADMETHOD, TEXT_TYPE, "POST only\n");
		return;
	}
	call_arrived(f);
	c.params = read_json(req);
	c.raw = (const char *)evbuffer_pullup(evhttp_request_get_input_buffer(req), -1);
	c.raw_len = evbuffer_get_length(evhttp_request_get_input_buffer(req));
	c.has_id = ep == EP_BUYER_VIEW && order_id_of(json_object_get(c.params, "orderId"), &c.id);
	count_call(f, &c);
	ft = take_fault(f, &c);
	decide(f, &c, &ft, &a);
	json_decref(c.params);
	if (ft.kind == FAULT_HANG || ft.kind == FAULT_CLOSE || ft.kind == FAULT_HUGEHEADERS ||
	    ft.delay_ms > 0)
		defer(f, req, &ft, &a);
	else
		answer_now(f, req, &a);
}

static void
call_arrived(struct fake *f)
{
	f->calls++;
	f->concurrent++;
	if (f->concurrent > f->max_concurrent)
		f->max_concurrent = f->concurrent;
	json_array_append_new(f->call_times,
			      json_integer(clock_ms(CLOCK_MONOTONIC) - f->started_ms));
}

static void
count_call(struct fake *f, const struct call *c)
{
	char key[ID_LEN];
	json_t *n;

	if (c->ep == EP_LIST) {
		f->list_calls++;
		return;
	}
	if (!c->has_id)
		return;
	id_key(c->id, key);
	n = json_object_get(f->buyer_view_calls, key);
	json_object_set_new(f->buyer_view_calls, key,
			    json_integer(n != NULL ? json_integer_value(n) + 1 : 1));
}

/* Consume the first fault that matches C; kind FAULT_NONE when none does. */
static struct fault
take_fault(struct fake *f, const struct call *c)
{
	struct fault none = {.kind = FAULT_NONE}, *ft, copy;

	TAILQ_FOREACH(ft, &f->faults, link)
	{
		if (ft->endpoint != EP_ANY && ft->endpoint != c->ep)
			continue;
		if (ft->has_order && (!c->has_id || ft->order != c->id))
			continue;
		copy = *ft;
		if (ft->count > 0 && --ft->count == 0) {
			TAILQ_REMOVE(&f->faults, ft, link);
			free(ft);
		}
		return copy;
	}
	return none;
}

static void
decide(struct fake *f, const struct call *c, const struct fault *ft, struct answer *a)
{
	switch (ft->kind) {
	case FAULT_HTTP500:
		set_text(a, HTTP_INTERNAL, "internal error", TEXT_TYPE);
		break;
	case FAULT_HTTP503:
		set_text(a, HTTP_SERVUNAVAIL, "service unavailable", TEXT_TYPE);
		break;
	case FAULT_NOTJSON:
		set_text(a, HTTP_OK, "<html>oops</html>", "text/html");
		break;
	case FAULT_CODE:
		api_error(f, a, 500, "system busy");
		break;
	case FAULT_CREDS:
		api_error(f, a, 401, "invalid appKey or appSecret");
		break;
	case FAULT_MANYNUMBERS:
		many_numbers(c, ft->bytes, a);
		break;
	case FAULT_ECHO:
		echo(f, c, ft->at, a);
		break;
	case FAULT_HANG:
	case FAULT_CLOSE:
	case FAULT_HUGEHEADERS:
		break;
	case FAULT_NONE:
	case FAULT_SLOW:
	case FAULT_WRONGID:
		answer_call(f, c, ft->kind == FAULT_WRONGID, a);
		break;
	}
}

/* The answer the real API would give (WRONGID: for the id next to the one asked). */
static void
answer_call(struct fake *f, const struct call *c, bool wrongid, struct answer *a)
{
	if (!json_is_object(c->params)) {
		api_error(f, a, 400, "the request body is not a JSON object");
		return;
	}
	if (!credentials_ok(f, c->params)) {
		f->rejected_credentials++;
		api_error(f, a, 401, "invalid appKey or appSecret");
		return;
	}
	if (c->ep == EP_BUYER_VIEW)
		buyer_view(f, c, wrongid, a);
	else
		order_list(f, c, wrongid, a);
}

/* A 200 OK for the order asked, of BYTES (at least its frame) of small numbers. */
static void
many_numbers(const struct call *c, long bytes, struct answer *a)
{
	char head[128];
	int n = snprintf(head, sizeof(head),
			 "{\"code\":200,\"data\":{\"baseInfo\":{\"id\":%lld},\"x\":[1",
			 (long long)(c->has_id ? c->id : 1));
	size_t len = (size_t)n, total = bytes > n + 3 ? (size_t)bytes : (size_t)n + 3;
	char *body = malloc(total + 1);

	if (body == NULL) {
		set_text(a, HTTP_INTERNAL, "out of memory", TEXT_TYPE);
		return;
	}
	memcpy(body, head, len);
	for (; len + 2 + 3 <= total; len += 2)
		memcpy(body + len, ",1", 2);
	memset(body + len, ' ', total - 3 - len); /* at most one byte short of ",1" */
	memcpy(body + total - 3, "]}}", 4);
	a->status = HTTP_OK;
	a->content_type = JSON_TYPE;
	a->body = body;
}

/*
 * Code 500, "bad request: " + the request body; with AT >= 0, 'x's added
 * before the body, or its first bytes dropped, so that the appSecret's
 * value starts at byte AT of the message.
 */
static void
echo(struct fake *f, const struct call *c, long at, struct answer *a)
{
	static const char key[] = "\"appSecret\":\"";
	size_t k = strlen(ECHO_PREFIX), pad = 0, skip = 0, n;
	char *message;

	for (size_t i = 0; at >= 0 && i + sizeof(key) - 1 <= c->raw_len; i++) {
		if (memcmp(c->raw + i, key, sizeof(key) - 1) == 0) {
			size_t v = k + i + sizeof(key) - 1; /* where the value would start */

			pad = (size_t)at > v ? (size_t)at - v : 0;
			skip = v > (size_t)at ? v - (size_t)at : 0;
			skip = skip < i ? skip : i;
			break;
		}
	}
	n = k + pad + c->raw_len - skip;
	message = malloc(n + 1);
	if (message == NULL) {
		set_text(a, HTTP_INTERNAL, "out of memory", TEXT_TYPE);
		return;
	}
	memcpy(message, ECHO_PREFIX, k);
	memset(message + k, 'x', pad);
	if (c->raw_len > 0)
		memcpy(message + k + pad, c->raw + skip, c->raw_len - skip);
	message[n] = '\0';
	api_error(f, a, 500, message);
	free(message);
}

static bool
credentials_ok(const struct fake *f, json_t *params)
{
	const char *key = json_string_value(json_object_get(params, "appKey"));
	const char *secret = json_string_value(json_object_get(params, "appSecret"));

	return key != NULL && secret != NULL && strcmp(key, f->opt.app_key) == 0 &&
	       strcmp(secret, f->opt.app_secret) == 0;
}

static void
buyer_view(struct fake *f, const struct call *c, bool wrongid, struct answer *a)
{
	char key[ID_LEN];
	json_t *order;

	if (!c->has_id) {
		api_error(f, a, 400, "orderId: expected a decimal order id");
		return;
	}
	id_key(c->id, key);
	order = json_object_get(f->orders, key);
	if (order == NULL) {
		api_error(f, a, 500, "order not found");
		return;
	}
	api_ok(f, a, make_record(f, wrongid ? (c->id < INT64_MAX ? c->id + 1 : 1) : c->id, order));
}

static void
order_list(struct fake *f, const struct call *c, bool wrongid, struct answer *a)
{
	json_t *p = c->params, *result;
	const char *status = json_string_value(json_object_get(p, "orderStatus"));
	int64_t start, end;
	long page, page_size;
	size_t n, first, last;
	struct row *rows;

	if (!window_bound(json_object_get(p, "createStartTime"), INT64_MIN, &start) ||
	    !window_bound(json_object_get(p, "createEndTime"), INT64_MAX, &end)) {
		api_error(f, a, 400,
			  "createStartTime/createEndTime: expected yyyyMMddHHmmssSSS+zzzz");
		return;
	}
	if (!int_param(json_object_get(p, "page"), 1, &page) ||
	    !int_param(json_object_get(p, "pageSize"), DEFAULT_PAGE_SIZE, &page_size) || page < 1 ||
	    page_size < 1) {
		api_error(f, a, 400, "page/pageSize: expected positive integers");
		return;
	}
	rows = matching_orders(f, start, end, status, &n);
	first = (unsigned long)(page - 1) > n / (unsigned long)page_size
		    ? n
		    : (size_t)(page - 1) * (size_t)page_size;
	last = n - first < (size_t)page_size ? n : first + (size_t)page_size;
	result = json_array();
	for (size_t i = first; i < last; i++) {
		int64_t id = rows[i].id;

		json_array_append_new(
		    result, make_record(f, wrongid && id < INT64_MAX ? id + 1 : id, rows[i].order));
	}
	free(rows);
	api_ok(f, a,
	       json_pack("{s:o,s:I,s:n,s:n}", "result", result, "totalRecord", (json_int_t)n,
			 "errorCode", "errorMessage"));
}

/* The orders created in [START, END] (with STATUS, unless empty), sorted. */
static struct row *
matching_orders(struct fake *f, int64_t start, int64_t end, const char *status, size_t *n)
{
	struct row *rows = calloc(json_object_size(f->orders) + 1, sizeof(*rows));
	const char *key;
	json_t *order;

	*n = 0;
	if (rows == NULL)
		return NULL;
	json_object_foreach(f->orders, key, order)
	{
		const char *st = json_string_value(json_object_get(order, "status"));
		const char *created = json_string_value(json_object_get(order, "createTime"));
		struct row r = {.order = order};

		if (created == NULL || !iso_to_ms(created, &r.created_ms) || r.created_ms < start ||
		    r.created_ms > end)
			continue;
		if (status != NULL && *status != '\0' && (st == NULL || strcmp(st, status) != 0))
			continue;
		r.id = strtoll(key, NULL, 10);
		rows[(*n)++] = r;
	}
	qsort(rows, *n, sizeof(*rows), cmp_rows);
	return rows;
}

static int
cmp_rows(const void *a, const void *b)
{
	const struct row *x = a, *y = b;

	if (x->created_ms != y->created_ms)
		return x->created_ms < y->created_ms ? -1 : 1;
	return x->id < y->id ? -1 : x->id > y->id;
}

/* The fixture's record with ORDER's fields and ID (a JSON integer, exact). */
static json_t *
make_record(struct fake *f, int64_t id, json_t *order)
{
	json_t *rec = json_deep_copy(f->record), *base;
	char key[ID_LEN];

	if (rec == NULL)
		return NULL;
	base = json_object_get(rec, "baseInfo");
	id_key(id, key);
	json_object_update(base, json_object_get(order, "baseInfo"));
	json_object_set_new(base, "id", json_integer(id));
	json_object_set_new(base, "idOfStr", json_string(key));
	json_object_set(base, "status", json_object_get(order, "status"));
	json_object_set(base, "modifyTime", json_object_get(order, "modifyTime"));
	json_object_set(base, "createTime", json_object_get(order, "createTime"));
	return rec;
}

/* {"code":200,"message":"success","data":DATA (stolen),"timestamp","traceId"} */
static void
api_ok(struct fake *f, struct answer *a, json_t *data)
{
	char trace[32];
	json_t *env;

	if (data == NULL) {
		api_error(f, a, 500, "out of memory");
		return;
	}
	snprintf(trace, sizeof(trace), "fake-%llu", ++f->trace_seq);
	env = json_pack("{s:i,s:s,s:o,s:I,s:s}", "code", 200, "message", "success", "data", data,
			"timestamp", (json_int_t)clock_ms(CLOCK_REALTIME), "traceId", trace);
	set_json(a, env);
}

/* HTTP 200 with {"code":CODE,"message":MESSAGE,"data":null,...}, as the API does. */
static void
api_error(struct fake *f, struct answer *a, int code, const char *message)
{
	char trace[32];
	json_t *env;

	snprintf(trace, sizeof(trace), "fake-%llu", ++f->trace_seq);
	env = json_pack("{s:i,s:s,s:n,s:I,s:s}", "code", code, "message", message, "data",
			"timestamp", (json_int_t)clock_ms(CLOCK_REALTIME), "traceId", trace);
	set_json(a, env);
}

/* HTTP 200 with ENV (stolen) as its body; decimals printed as written. */
static void
set_json(struct answer *a, json_t *env)
{
	a->status = HTTP_OK;
	a->content_type = JSON_TYPE;
	a->body = env != NULL ? json_dumps(env, JSON_COMPACT | JSON_REAL_PRECISION(15)) : NULL;
	json_decref(env);
	if (a->body == NULL)
		set_text(a, HTTP_INTERNAL, "out of memory", TEXT_TYPE);
}

static void
set_text(struct answer *a, int status, const char *text, const char *type)
{
	a->status = status;
	a->body = strdup(text);
	a->content_type = type;
}

/* --- deferred calls ----------------------------------------------------- */

static void
defer(struct fake *f, struct evhttp_request *req, const struct fault *ft, struct answer *a)
{
	struct pending *p = calloc(1, sizeof(*p));
	long ms = ft->kind == FAULT_HANG ? 0 : ft->delay_ms;
	struct timeval tv = {ms / 1000, (suseconds_t)(ms % 1000) * 1000};

	if (p != NULL && ft->kind != FAULT_HANG)
		p->timer = evtimer_new(f->base, on_pending_timer, p);
	if (p == NULL || (ft->kind != FAULT_HANG && p->timer == NULL)) {
		free(p);
		free(a->body);
		set_text(a, HTTP_INTERNAL, "out of memory", TEXT_TYPE);
		answer_now(f, req, a);
		return;
	}
	p->f = f;
	p->req = req;
	p->close = ft->kind == FAULT_CLOSE;
	p->stream = ft->kind == FAULT_HUGEHEADERS ? ft->bytes : 0;
	p->answer = *a;
	TAILQ_INSERT_TAIL(&f->pending, p, link);
	watch_hangup(evhttp_request_get_connection(req), p);
	if (p->timer != NULL)
		evtimer_add(p->timer, &tv);
}

/*
 * evhttp stops reading once it has a request, so on its own it would notice
 * a client hanging up only when we answer.  Read on, as evhttp itself does
 * while it writes an answer: no read callback (bytes the client might send
 * just wait in the buffer), evhttp's own event callback, which turns EOF or
 * a timeout into freeing the connection and so into on_connection_close().
 * Answering later sets evhttp's callbacks back.
 */
static void
watch_hangup(struct evhttp_connection *evcon, struct pending *p)
{
	struct bufferevent *bev = evhttp_connection_get_bufferevent(evcon);
	bufferevent_data_cb write_cb;
	bufferevent_event_cb event_cb;
	void *cb_arg;

	evhttp_connection_set_closecb(evcon, on_connection_close, p);
	bufferevent_getcb(bev, NULL, &write_cb, &event_cb, &cb_arg);
	bufferevent_setcb(bev, NULL, write_cb, event_cb, cb_arg);
	bufferevent_enable(bev, EV_READ);
}

static void
on_pending_timer(evutil_socket_t fd, short what, void *arg)
{
	struct pending *p = arg;
	struct fake *f = p->f;
	struct evhttp_request *req = p->req;
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	struct answer a = p->answer;

	(void)fd;
	(void)what;
	if (p->stream > 0) {
		stream_start(p);
		return;
	}
	p->answer.body = NULL;
	if (p->close) {
		pending_drop(p);
		free(a.body);
		f->concurrent--;
		evhttp_connection_free(evcon); /* frees REQ too: it is still attached */
		return;
	}
	pending_drop(p);
	answer_now(f, req, &a);
}

/*
 * The client hung up (or the server timed the connection out) before we
 * answered: evhttp has detached the request and leaves it to us.
 */
static void
on_connection_close(struct evhttp_connection *evcon, void *arg)
{
	struct pending *p = arg;
	struct fake *f = p->f;
	struct evhttp_request *req = p->req;
	bool ours = evhttp_request_get_connection(req) == NULL;

	(void)evcon;
	pending_drop(p);
	f->concurrent--;
	if (ours)
		evhttp_request_free(req);
}

/* Forget P (not its request); its connection no longer calls back. */
static void
pending_drop(struct pending *p)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(p->req);

	if (evcon != NULL)
		evhttp_connection_set_closecb(evcon, NULL, NULL);
	TAILQ_REMOVE(&p->f->pending, p, link);
	if (p->timer != NULL)
		event_free(p->timer);
	free(p->answer.body);
	free(p);
}

/*
 * "hugeheaders": the connection's bufferevent is taken from evhttp (its
 * callbacks become ours) and fed a status line, then header lines, a chunk
 * whenever the client has read the last; at the end, or when the client
 * hangs up, the connection is freed with its request, as "close" does.
 */
static void
stream_start(struct pending *p)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(p->req);
	struct bufferevent *bev = evhttp_connection_get_bufferevent(evcon);
	static const char status[] = "HTTP/1.1 200 OK\r\nContent-Type: " JSON_TYPE "\r\n";

	evhttp_connection_set_closecb(evcon, NULL, NULL);
	bufferevent_setcb(bev, NULL, on_stream_write, on_stream_event, p);
	bufferevent_setwatermark(bev, EV_WRITE, 0, 0);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
	bufferevent_write(bev, status, sizeof(status) - 1);
	stream_more(p);
}

static void
stream_more(struct pending *p)
{
	static const char value[] = "a header line of about a hundred bytes, one of very many, "
				    "never ending the headers";
	struct bufferevent *bev =
	    evhttp_connection_get_bufferevent(evhttp_request_get_connection(p->req));
	struct evbuffer *chunk = evbuffer_new();

	if (chunk == NULL) {
		stream_end(p);
		return;
	}
	while (p->stream > 0 && evbuffer_get_length(chunk) < STREAM_CHUNK) {
		int n = evbuffer_add_printf(chunk, "X-Filler-%08ld: %s\r\n", p->header_no++, value);

		p->stream = n > 0 && n < p->stream ? p->stream - n : 0;
	}
	bufferevent_write_buffer(bev, chunk);
	evbuffer_free(chunk);
}

/* The client read everything so far: more, or, when all is sent, the end. */
static void
on_stream_write(struct bufferevent *bev, void *arg)
{
	struct pending *p = arg;

	(void)bev;
	if (p->stream > 0)
		stream_more(p);
	else
		stream_end(p);
}

static void
on_stream_event(struct bufferevent *bev, short what, void *arg)
{
	(void)bev;
	(void)what;
	stream_end(arg);
}

static void
stream_end(struct pending *p)
{
	struct fake *f = p->f;
	struct evhttp_connection *evcon = evhttp_request_get_connection(p->req);

	pending_drop(p);
	f->concurrent--;
	evhttp_connection_free(evcon); /* frees the request too: it is still attached */
}

static void
answer_now(struct fake *f, struct evhttp_request *req, struct answer *a)
{
	f->concurrent--;
	reply(req, a->status != 0 ? a->status : HTTP_INTERNAL,
	      a->content_type != NULL ? a->content_type : TEXT_TYPE,
	      a->body != NULL ? a->body : "out of memory");
	free(a->body);
	a->body = NULL;
}

/* --- control endpoints -------------------------------------------------- */

static void
control(struct fake *f, struct evhttp_request *req, const char *what)
{
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);

	if (strcmp(what, "stats") == 0 && cmd == EVHTTP_REQ_GET) {
		reply_json(req, HTTP_OK, stats_json(f));
		return;
	}
	if (cmd != EVHTTP_REQ_POST) {
		reply_control_error(req, HTTP_BADMETHOD, "method not allowed");
		return;
	}
	if (strcmp(what, "orders") == 0) {
		control_orders(f, req);
	} else if (strcmp(what, "faults") == 0) {
		control_faults(f, req);
	} else if (strcmp(what, "reset") == 0) {
		control_reset(f);
		reply_json(req, HTTP_OK, json_pack("{s:b}", "ok", 1));
	} else {
		reply_control_error(req, HTTP_NOTFOUND, "no such control endpoint");
	}
}

/* All or nothing: each order is checked and staged before any is stored. */
static void
control_orders(struct fake *f, struct evhttp_request *req)
{
	json_t *body = read_json(req), *list = json_object_get(body, "orders"), *staged, *item;
	char err[256];
	size_t i;

	if (!json_is_array(list)) {
		json_decref(body);
		reply_control_error(req, HTTP_BADREQUEST, "expected {\"orders\":[...]}");
		return;
	}
	staged = json_object();
	json_array_foreach(list, i, item)
	{
		if (stage_order(f, staged, item, err, sizeof(err)) < 0) {
			json_decref(staged);
			json_decref(body);
			reply_control_error(req, HTTP_BADREQUEST, err);
			return;
		}
	}
	json_object_update(f->orders, staged);
	json_decref(staged);
	json_decref(body);
	reply_json(
	    req, HTTP_OK,
	    json_pack("{s:b,s:I}", "ok", 1, "orders", (json_int_t)json_object_size(f->orders)));
}

static int
stage_order(struct fake *f, json_t *staged, json_t *item, char *err, size_t errlen)
{
	static const char *const times[] = {"modifyTime", "createTime"};
	json_t *prev, *entry, *v;
	char key[ID_LEN];
	int64_t id, ms;

	if (!json_is_object(item) || !order_id_of(json_object_get(item, "id"), &id)) {
		snprintf(err, errlen, "each order needs an \"id\": a decimal order id");
		return -1;
	}
	id_key(id, key);
	prev = json_object_get(staged, key);
	if (prev == NULL)
		prev = json_object_get(f->orders, key);
	entry = prev != NULL ? json_deep_copy(prev) : default_order(f);
	if (entry == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	json_object_set_new(staged, key, entry);
	if ((v = json_object_get(item, "status")) != NULL) {
		if (!json_is_string(v)) {
			snprintf(err, errlen, "order %s: status must be a string", key);
			return -1;
		}
		json_object_set(entry, "status", v);
	}
	for (size_t i = 0; i < sizeof(times) / sizeof(times[0]); i++) {
		if ((v = json_object_get(item, times[i])) == NULL)
			continue;
		if (!json_is_string(v) || !iso_to_ms(json_string_value(v), &ms)) {
			snprintf(err, errlen, "order %s: %s: expected ISO 8601 with offset", key,
				 times[i]);
			return -1;
		}
		json_object_set(entry, times[i], v);
	}
	if ((v = json_object_get(item, "baseInfo")) != NULL) {
		if (!json_is_object(v)) {
			snprintf(err, errlen, "order %s: baseInfo must be an object", key);
			return -1;
		}
		json_object_set(entry, "baseInfo", v);
	}
	return 0;
}

/* A new order starts with the fixture's status and times. */
static json_t *
default_order(struct fake *f)
{
	json_t *base = json_object_get(f->record, "baseInfo");

	return json_pack("{s:O?,s:O?,s:O?}", "status", json_object_get(base, "status"),
			 "modifyTime", json_object_get(base, "modifyTime"), "createTime",
			 json_object_get(base, "createTime"));
}

static void
control_faults(struct fake *f, struct evhttp_request *req)
{
	json_t *body = read_json(req), *list = json_object_get(body, "faults"), *item;
	struct fault_list staged = TAILQ_HEAD_INITIALIZER(staged);
	char err[256];
	size_t i;

	if (!json_is_array(list)) {
		json_decref(body);
		reply_control_error(req, HTTP_BADREQUEST, "expected {\"faults\":[...]}");
		return;
	}
	json_array_foreach(list, i, item)
	{
		struct fault *ft = calloc(1, sizeof(*ft));

		if (ft == NULL || parse_fault(item, ft, err, sizeof(err)) < 0) {
			if (ft == NULL)
				snprintf(err, sizeof(err), "out of memory");
			free(ft);
			free_faults(&staged);
			json_decref(body);
			reply_control_error(req, HTTP_BADREQUEST, err);
			return;
		}
		TAILQ_INSERT_TAIL(&staged, ft, link);
	}
	json_decref(body);
	TAILQ_CONCAT(&f->faults, &staged, link);
	reply_json(req, HTTP_OK, json_pack("{s:b}", "ok", 1));
}

static int
parse_fault(json_t *item, struct fault *ft, char *err, size_t errlen)
{
	const char *kind = json_string_value(json_object_get(item, "kind"));
	const char *endpoint = json_string_value(json_object_get(item, "endpoint"));
	json_t *order = json_object_get(item, "order");
	long count, delay;

	for (size_t k = 1; kind != NULL && k < sizeof(fault_names) / sizeof(fault_names[0]); k++)
		if (strcmp(kind, fault_names[k]) == 0)
			ft->kind = (enum fault_kind)k;
	if (ft->kind == FAULT_NONE) {
		snprintf(err, errlen,
			 "kind: expected http500, http503, notjson, code, wrongid, "
			 "creds, hang, slow, close, hugeheaders, manynumbers or echo");
		return -1;
	}
	if (!int_param(json_object_get(item, "bytes"),
		       ft->kind == FAULT_HUGEHEADERS ? HUGEHEADERS_BYTES : MANYNUMBERS_BYTES,
		       &ft->bytes) ||
	    ft->bytes < 1 || ft->bytes > MAX_FAULT_BYTES) {
		snprintf(err, errlen, "bytes: expected 1 to %ld", MAX_FAULT_BYTES);
		return -1;
	}
	if (!int_param(json_object_get(item, "at"), -1, &ft->at) || ft->at < -1 ||
	    ft->at > MAX_BODY_BYTES) {
		snprintf(err, errlen, "at: expected 0 to %d", MAX_BODY_BYTES);
		return -1;
	}
	if (!int_param(json_object_get(item, "count"), 1, &count) || count == 0 || count < -1) {
		snprintf(err, errlen, "count: expected a positive integer, or -1 for ever");
		return -1;
	}
	if (!int_param(json_object_get(item, "delay_ms"),
		       ft->kind == FAULT_SLOW ? DEFAULT_SLOW_MS : 0, &delay) ||
	    delay < 0 || delay > MAX_DELAY_MS) {
		snprintf(err, errlen, "delay_ms: expected 0 to %d", MAX_DELAY_MS);
		return -1;
	}
	if (order != NULL && !json_is_null(order) && !order_id_of(order, &ft->order)) {
		snprintf(err, errlen, "order: expected a decimal order id");
		return -1;
	}
	if (endpoint != NULL && strcmp(endpoint, "buyerView") == 0)
		ft->endpoint = EP_BUYER_VIEW;
	else if (endpoint != NULL && strcmp(endpoint, "list") == 0)
		ft->endpoint = EP_LIST;
	else if (json_object_get(item, "endpoint") != NULL &&
		 !json_is_null(json_object_get(item, "endpoint"))) {
		snprintf(err, errlen, "endpoint: expected buyerView or list");
		return -1;
	}
	ft->has_order = order != NULL && !json_is_null(order);
	ft->count = count;
	ft->delay_ms = delay;
	return 0;
}

/* Calls still in progress stay counted in "concurrent". */
static void
control_reset(struct fake *f)
{
	json_object_clear(f->orders);
	free_faults(&f->faults);
	json_object_clear(f->buyer_view_calls);
	json_array_clear(f->call_times);
	f->list_calls = 0;
	f->calls = 0;
	f->rejected_credentials = 0;
	f->max_concurrent = f->concurrent;
}

static json_t *
stats_json(struct fake *f)
{
	return json_pack("{s:O,s:I,s:I,s:I,s:I,s:I,s:O}", "buyerView", f->buyer_view_calls, "list",
			 f->list_calls, "calls", f->calls, "concurrent", f->concurrent,
			 "max_concurrent", f->max_concurrent, "rejected_credentials",
			 f->rejected_credentials, "call_times_ms", f->call_times);
}

static void
free_faults(struct fault_list *list)
{
	struct fault *ft;

	while ((ft = TAILQ_FIRST(list)) != NULL) {
		TAILQ_REMOVE(list, ft, link);
		free(ft);
	}
}

/* --- HTTP helpers ------------------------------------------------------- */

static json_t *
read_json(struct evhttp_request *req)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(in);
	unsigned char *data = evbuffer_pullup(in, -1);
	json_error_t err;

	if (data == NULL)
		return NULL;
	return json_loadb((const char *)data, len, 0, &err);
}

static void
reply(struct evhttp_request *req, int status, const char *type, const char *body)
{
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", type);
	evbuffer_add(evhttp_request_get_output_buffer(req), body, strlen(body));
	evhttp_send_reply(req, status, reason(status), NULL);
}

/* BODY is stolen; NULL (out of memory) is answered 500. */
static void
reply_json(struct evhttp_request *req, int status, json_t *body)
{
	char *text = body != NULL ? json_dumps(body, JSON_COMPACT | JSON_REAL_PRECISION(15)) : NULL;

	json_decref(body);
	if (text == NULL) {
		reply(req, HTTP_INTERNAL, TEXT_TYPE, "out of memory\n");
		return;
	}
	reply(req, status, JSON_TYPE, text);
	free(text);
}

static void
reply_control_error(struct evhttp_request *req, int status, const char *why)
{
	reply_json(req, status, json_pack("{s:b,s:s}", "ok", 0, "error", why));
}

static const char *
reason(int status)
{
	switch (status) {
	case HTTP_OK:
		return "OK";
	case HTTP_BADREQUEST:
		return "Bad Request";
	case HTTP_NOTFOUND:
		return "Not Found";
	case HTTP_BADMETHOD:
		return "Method Not Allowed";
	case HTTP_INTERNAL:
		return "Internal Server Error";
	case HTTP_SERVUNAVAIL:
		return "Service Unavailable";
	default:
		return "Unknown";
	}
}

/* --- values ------------------------------------------------------------- */

/* A positive order id: a JSON integer, or a string of decimal digits. */
static bool
order_id_of(json_t *v, int64_t *out)
{
	const char *s = json_string_value(v);
	long long n;
	char *end;

	if (json_is_integer(v)) {
		*out = json_integer_value(v);
		return *out > 0;
	}
	if (s == NULL || !isdigit((unsigned char)s[0]))
		return false;
	errno = 0;
	n = strtoll(s, &end, 10);
	if (errno != 0 || *end != '\0' || n <= 0)
		return false;
	*out = n;
	return true;
}

static void
id_key(int64_t id, char key[ID_LEN])
{
	snprintf(key, ID_LEN, "%lld", (long long)id);
}

/* An integer, or a string of one; DFLT when absent or null. */
static bool
int_param(json_t *v, long dflt, long *out)
{
	const char *s = json_string_value(v);
	char *end;

	if (v == NULL || json_is_null(v)) {
		*out = dflt;
		return true;
	}
	if (json_is_integer(v)) {
		*out = (long)json_integer_value(v);
		return true;
	}
	if (s == NULL || *s == '\0')
		return false;
	errno = 0;
	*out = strtol(s, &end, 10);
	return errno == 0 && *end == '\0';
}

/* A window bound "yyyyMMddHHmmssSSS+zzzz"; DFLT when absent, null or empty. */
static bool
window_bound(json_t *v, int64_t dflt, int64_t *out)
{
	const char *s = json_string_value(v);

	if (v == NULL || json_is_null(v) || (s != NULL && *s == '\0')) {
		*out = dflt;
		return true;
	}
	return s != NULL && compact_to_ms(s, out);
}

/* "2025-09-02T09:56:37.000+00:00" (or a space for T, no fraction, Z, +0000). */
static bool
iso_to_ms(const char *s, int64_t *out)
{
	int y, mo, d, h, mi, sec, ms = 0, off, scale = 100;
	const char *p = s;

	if (!digits(&p, 4, &y) || *p++ != '-' || !digits(&p, 2, &mo) || *p++ != '-' ||
	    !digits(&p, 2, &d) || (*p != 'T' && *p != ' '))
		return false;
	p++;
	if (!digits(&p, 2, &h) || *p++ != ':' || !digits(&p, 2, &mi) || *p++ != ':' ||
	    !digits(&p, 2, &sec))
		return false;
	if (*p == '.') {
		if (!isdigit((unsigned char)*++p))
			return false;
		for (; isdigit((unsigned char)*p); p++, scale /= 10)
			ms += (*p - '0') * scale;
	}
	return offset_minutes(&p, &off) && *p == '\0' &&
	       civil_to_ms(y, mo, d, h, mi, sec, ms, off, out);
}

/* "20250702211113000+0800" */
static bool
compact_to_ms(const char *s, int64_t *out)
{
	int y, mo, d, h, mi, sec, ms, off;
	const char *p = s;

	return digits(&p, 4, &y) && digits(&p, 2, &mo) && digits(&p, 2, &d) && digits(&p, 2, &h) &&
	       digits(&p, 2, &mi) && digits(&p, 2, &sec) && digits(&p, 3, &ms) &&
	       offset_minutes(&p, &off) && *p == '\0' &&
	       civil_to_ms(y, mo, d, h, mi, sec, ms, off, out);
}

static bool
digits(const char **p, int n, int *out)
{
	*out = 0;
	for (int i = 0; i < n; i++, (*p)++) {
		if (!isdigit((unsigned char)**p))
			return false;
		*out = *out * 10 + (**p - '0');
	}
	return true;
}

/* "Z", "+08:00" or "+0800" -> minutes east of UTC. */
static bool
offset_minutes(const char **p, int *out)
{
	int sign, h, m;

	if (**p == 'Z') {
		(*p)++;
		*out = 0;
		return true;
	}
	if (**p != '+' && **p != '-')
		return false;
	sign = *(*p)++ == '-' ? -1 : 1;
	if (!digits(p, 2, &h))
		return false;
	if (**p == ':')
		(*p)++;
	if (!digits(p, 2, &m) || h > 23 || m > 59)
		return false;
	*out = sign * (h * 60 + m);
	return true;
}

static bool
civil_to_ms(int y, int mo, int d, int h, int mi, int s, int ms, int off, int64_t *out)
{
	if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 60)
		return false;
	*out = (((days_from_civil(y, mo, d) * 24 + h) * 60 + mi) * 60 + s) * 1000 + ms -
	       (int64_t)off * 60000;
	return true;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm). */
static int64_t
days_from_civil(int64_t y, int m, int d)
{
	int64_t era, yoe, doy;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	return era * 146097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719468;
}

static bool
ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);

	return n >= k && strcmp(s + n - k, suffix) == 0;
}

static int64_t
clock_ms(clockid_t which)
{
	struct timespec ts;

	clock_gettime(which, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
