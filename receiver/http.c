/*
 * http.c - routes, limits and replies (see http.h).
 *
 * Every request to a path that is not /healthz or /readyz becomes a
 * struct delivery.  check_push() walks it through the checks in the order
 * the statuses are documented (405, 415, 413, 400, 401, 400); the first
 * failure is answered at once and only audited, a push that passes all of
 * them is handed to the store and answered from push_done() once its
 * transaction committed (200) or failed (503).
 *
 * evhttp itself enforces the body and header limits: it answers 413 for a
 * body over [server] max_body_bytes before any callback of ours runs, which
 * keeps a huge body from ever being buffered.  libevent 2.1 has no hook
 * before the body is read, so to audit those 413s each connection's output
 * is watched for a reply that starts with a 413 status line (watch_replies).
 *
 * Deferred replies: evhttp (2.1) keeps a request whose callback returned
 * without replying.  If the client hangs up meanwhile, evhttp detaches the
 * request from the dead connection instead of freeing it, and the reply we
 * send later simply frees it.  The one thing that would free it under us is
 * evhttp_free(), so shutdown answers every waiting push first.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/bufferevent_ssl.h>
#include <event2/listener.h>
#include <openssl/ssl.h>

#include "http.h"
#include "log.h"
#include "message.h"
#include "signature.h"
#include "util.h"

#define FORM_CONTENT_TYPE "application/x-www-form-urlencoded"
#define MAX_HEADERS_BYTES 16384
#define RETRY_AFTER_S	  "5"
#define LISTEN_BACKLOG	  1024
#define CONN_SWEEP_MS	  200

const int http_status_kinds[HTTP_STATUS_KINDS] = {200, 400, 401, 404, 405, 413, 415, 500, 503, 0};

struct http {
	struct event_base *base;
	const struct config *cfg;
	struct store *store;
	struct evhttp *evhttp;
	struct evhttp_bound_socket *bound;
	struct evconnlistener *listener; /* bound's, while accepting */
	struct event *ev_resume;	 /* releases closed connections, resumes accepting */
	struct bufferevent **conns;	 /* every open connection's, one reference each */
	size_t n_conns, cap_conns;
	struct evhttp *admin; /* [server] admin_listen, or NULL */
	SSL_CTX *ssl_ctx;     /* [server] tls_cert, or NULL */
	double audit_tokens;  /* rejections that may still be audited */
	int64_t audit_refilled_us;
	unsigned int id_prefix; /* makes request ids unique across restarts */
	unsigned long long next_id;
	struct http_stats stats;
	http_metrics_fn metrics_fn;
	void *metrics_arg;
};

static void on_request(struct evhttp_request *req, void *arg);
static void on_admin_request(struct evhttp_request *req, void *arg);
static evutil_socket_t open_listener(const char *addr, bool reuseport, char *err, size_t errlen);
static void on_accept_error(struct evconnlistener *listener, void *arg);
static void on_accept_resume(evutil_socket_t fd, short what, void *arg);
static void track_connection(struct http *h, struct bufferevent *bev);
static void release_closed_connections(struct http *h);
static struct bufferevent *on_connection(struct event_base *base, void *arg);
static int make_tls(struct http *h, char *err, size_t errlen);
static bool audit_allowed(struct http *h);
static void watch_replies(struct evbuffer *out, const struct evbuffer_cb_info *info, void *arg);
static void serve_health(struct http *h, struct evhttp_request *req, const char *path);
static void serve_metrics(struct http *h, struct evhttp_request *req);
static void count(struct http *h, int app_index, int status);
static struct delivery *delivery_new(struct http *h, struct evhttp_request *req,
				     const struct app_config *app);
static struct delivery *delivery_alloc(struct http *h);
static void delivery_free(struct delivery *d);
static int check_push(struct delivery *d, struct evhttp_request *req, const struct app_config *app);
static void reject(struct http *h, struct delivery *d, struct evhttp_request *req, int status,
		   const char *why);
static void push_done(struct delivery *d, int committed);
static void audit_done(struct delivery *d, int committed);
static void reply(struct evhttp_request *req, const char *request_id, int status, const char *text);
static bool is_form(const char *content_type);
static int fail(struct delivery *d, int status, const char *why);
static void set_error(struct delivery *d, const char *text);
static void copy_printable(char *dst, size_t cap, const char *src);
static const char *method_name(enum evhttp_cmd_type cmd);

struct http *
http_new(struct event_base *base, const struct config *cfg, struct store *store)
{
	struct http *h = calloc(1, sizeof(*h));
	int64_t wall = util_wall_us();

	if (h == NULL)
		return NULL;
	h->base = base;
	h->cfg = cfg;
	h->store = store;
	h->evhttp = evhttp_new(base);
	h->stats.n_rows = cfg->n_apps + 1;
	h->stats.requests = calloc(h->stats.n_rows * HTTP_STATUS_KINDS, sizeof(uint64_t));
	if (h->evhttp == NULL || h->stats.requests == NULL) {
		if (h->evhttp != NULL)
			evhttp_free(h->evhttp);
		free(h->stats.requests);
		free(h);
		return NULL;
	}
	h->id_prefix = (unsigned int)(wall / 1000000) ^ ((unsigned int)(wall % 1000000) << 12) ^
		       ((unsigned int)getpid() << 20);
	h->audit_tokens = cfg->server.max_rejections_per_s; /* a full bucket to start */
	h->audit_refilled_us = util_mono_us();
	evhttp_set_max_body_size(h->evhttp, (ev_ssize_t)cfg->server.max_body_bytes);
	evhttp_set_max_headers_size(h->evhttp, MAX_HEADERS_BYTES);
	evhttp_set_timeout(h->evhttp, cfg->server.request_timeout_s);
	/* Every method reaches on_request, so a wrong one is answered 405, audited. */
	evhttp_set_allowed_methods(h->evhttp, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
						  EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
						  EVHTTP_REQ_OPTIONS | EVHTTP_REQ_TRACE |
						  EVHTTP_REQ_CONNECT | EVHTTP_REQ_PATCH);
	evhttp_set_default_content_type(h->evhttp, "text/plain; charset=utf-8");
	evhttp_set_gencb(h->evhttp, on_request, h);
	evhttp_set_bevcb(h->evhttp, on_connection, h);
	return h;
}

/*
 * The listening socket is made here rather than by evhttp so that several
 * worker processes can each bind the same port (SO_REUSEPORT: the kernel
 * spreads connections across them), and so that running out of file
 * descriptors pauses accepting instead of spinning (on_accept_error).
 */
int
http_listen(struct http *h, char *err, size_t errlen)
{
	struct timeval sweep = util_tv_ms(CONN_SWEEP_MS);
	evutil_socket_t fd;

	if (make_tls(h, err, errlen) < 0)
		return -1;
	fd = open_listener(h->cfg->server.listen, h->cfg->server.workers > 1, err, errlen);
	if (fd < 0)
		return -1;
	h->bound = evhttp_accept_socket_with_handle(h->evhttp, fd);
	if (h->bound == NULL) {
		snprintf(err, errlen, "cannot listen on %s", h->cfg->server.listen);
		close(fd);
		return -1;
	}
	h->listener = evhttp_bound_socket_get_listener(h->bound);
	evconnlistener_set_error_cb(h->listener, on_accept_error);
	h->ev_resume = event_new(h->base, -1, EV_PERSIST, on_accept_resume, h);
	if (h->ev_resume == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	event_add(h->ev_resume, &sweep);
	return 0;
}

/*
 * [server] admin_listen: /metrics, /healthz and /readyz on their own
 * address (then /metrics is not served on the public one), so monitoring
 * needs no hole in the proxy.
 */
int
http_listen_admin(struct http *h, char *err, size_t errlen)
{
	evutil_socket_t fd;

	if (h->cfg->server.admin_listen[0] == '\0')
		return 0;
	fd = open_listener(h->cfg->server.admin_listen, false, err, errlen);
	if (fd < 0)
		return -1;
	h->admin = evhttp_new(h->base);
	if (h->admin == NULL || evhttp_accept_socket(h->admin, fd) != 0) {
		snprintf(err, errlen, "cannot listen on %s", h->cfg->server.admin_listen);
		close(fd);
		return -1;
	}
	evhttp_set_timeout(h->admin, h->cfg->server.request_timeout_s);
	evhttp_set_allowed_methods(h->admin, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD);
	evhttp_set_gencb(h->admin, on_admin_request, h);
	return 0;
}

/* A non-blocking listening socket bound to ADDR ("host:port", "[v6]:port"). */
static evutil_socket_t
open_listener(const char *addr, bool reuseport, char *err, size_t errlen)
{
	struct addrinfo hints = {0}, *ai = NULL;
	const char *port, *why;
	char host[256];
	evutil_socket_t fd;
	int one = 1, rc;

	if (util_split_hostport(addr, host, sizeof(host), &port, &why) < 0) {
		snprintf(err, errlen, "%s: %s", addr, why);
		return -1;
	}
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	rc = getaddrinfo(host, port, &hints, &ai);
	if (rc != 0) {
		snprintf(err, errlen, "cannot listen on %s: %s", addr, gai_strerror(rc));
		return -1;
	}
	fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0) ||
	    bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, LISTEN_BACKLOG) < 0) {
		snprintf(err, errlen, "cannot listen on %s: %s", addr, strerror(errno));
		if (fd >= 0)
			close(fd);
		fd = -1;
	}
	freeaddrinfo(ai);
	return fd;
}

/*
 * accept() failed, most likely out of file descriptors.  Pause accepting,
 * so that the connections we have can finish and free some, instead of
 * being called again at once, forever; on_accept_resume() resumes within a
 * second.  (The argument is evhttp's, so only the listener is at hand.)
 */
static void
on_accept_error(struct evconnlistener *listener, void *arg)
{
	(void)arg;
	evconnlistener_disable(listener);
	log_event(LOG_WARN, "accept_failed", "%s; pausing accepting for a second",
		  evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
}

/*
 * Every CONN_SWEEP_MS: let go of the connections evhttp has closed, then
 * accept again if below [server] max_connections (and after an accept
 * error: the pause lasts until here).
 */
static void
on_accept_resume(evutil_socket_t fd, short what, void *arg)
{
	struct http *h = arg;

	(void)fd;
	(void)what;
	release_closed_connections(h);
	if (h->listener != NULL && h->n_conns < (size_t)h->cfg->server.max_connections)
		evconnlistener_enable(h->listener);
}

/*
 * The connection cap.  libevent 2.1's evhttp says when a connection opens
 * (it asks on_connection for its bufferevent) but not when it closes.  So
 * each bufferevent is kept with a reference of ours: when evhttp frees the
 * connection, it clears the bufferevent's callbacks and drops its own
 * reference (the client has its FIN by then), and release_closed_
 * connections() notices and drops ours, which closes the socket.  At the
 * cap the listener is disabled: new connections wait in the kernel's
 * backlog, not in our memory.
 */
static void
track_connection(struct http *h, struct bufferevent *bev)
{
	if (h->n_conns == h->cap_conns) {
		size_t cap = h->cap_conns != 0 ? h->cap_conns * 2 : 64;
		struct bufferevent **more = realloc(h->conns, cap * sizeof(*more));

		if (more == NULL)
			return; /* untracked: evhttp alone closes it, uncounted */
		h->conns = more;
		h->cap_conns = cap;
	}
	bufferevent_incref(bev);
	h->conns[h->n_conns++] = bev;
	h->stats.open_connections = h->n_conns;
	if (h->n_conns >= (size_t)h->cfg->server.max_connections && h->listener != NULL) {
		evconnlistener_disable(h->listener);
		h->stats.connection_cap_reached++;
	}
}

static void
release_closed_connections(struct http *h)
{
	for (size_t i = 0; i < h->n_conns;) {
		bufferevent_data_cb rd, wr;
		bufferevent_event_cb ev;

		bufferevent_getcb(h->conns[i], &rd, &wr, &ev, NULL);
		if (rd != NULL || wr != NULL || ev != NULL) {
			i++;
			continue;
		}
		bufferevent_decref(h->conns[i]);
		h->conns[i] = h->conns[--h->n_conns];
	}
	h->stats.open_connections = h->n_conns;
}

void
http_stop_accepting(struct http *h)
{
	if (h->bound != NULL) {
		evhttp_del_accept_socket(h->evhttp, h->bound);
		h->bound = NULL;
		h->listener = NULL;
	}
}

void
http_set_metrics(struct http *h, http_metrics_fn fn, void *arg)
{
	h->metrics_fn = fn;
	h->metrics_arg = arg;
}

const struct http_stats *
http_get_stats(const struct http *h)
{
	return &h->stats;
}

void
http_free(struct http *h)
{
	if (h == NULL)
		return;
	if (h->ev_resume != NULL)
		event_free(h->ev_resume);
	if (h->admin != NULL)
		evhttp_free(h->admin);
	evhttp_free(h->evhttp);
	/* evhttp freed every connection: ours are the last references. */
	release_closed_connections(h);
	free(h->conns);
	if (h->ssl_ctx != NULL)
		SSL_CTX_free(h->ssl_ctx);
	free(h->stats.requests);
	free(h);
}

/* --- routing ------------------------------------------------------------ */

static void
on_request(struct evhttp_request *req, void *arg)
{
	struct http *h = arg;
	const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
	const struct app_config *app;
	struct delivery *d;
	int status;

	if (path == NULL || *path == '\0')
		path = "/";
	if (strcmp(path, "/healthz") == 0 || strcmp(path, "/readyz") == 0) {
		serve_health(h, req, path);
		return;
	}
	if (strcmp(path, "/metrics") == 0 && h->metrics_fn != NULL && h->admin == NULL) {
		serve_metrics(h, req);
		return;
	}
	app = config_app_by_path(h->cfg, path);
	d = delivery_new(h, req, app);
	if (d == NULL) {
		reply(req, "", HTTP_INTERNAL, "out of memory\n");
		return;
	}
	status = check_push(d, req, app);
	if (status != HTTP_OK) {
		reject(h, d, req, status, d->error);
		return;
	}
	d->status = HTTP_OK;
	d->done = push_done;
	d->owner = req;
	if (store_submit(h->store, d) < 0) {
		count(h, d->app_index, HTTP_SERVUNAVAIL);
		reply(req, d->request_id, HTTP_SERVUNAVAIL, "database unavailable, retry later\n");
		delivery_free(d);
	}
}

/* The admin listener: health and metrics, nothing else. */
static void
on_admin_request(struct evhttp_request *req, void *arg)
{
	struct http *h = arg;
	const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));

	if (path != NULL && (strcmp(path, "/healthz") == 0 || strcmp(path, "/readyz") == 0))
		serve_health(h, req, path);
	else if (path != NULL && strcmp(path, "/metrics") == 0 && h->metrics_fn != NULL)
		serve_metrics(h, req);
	else
		reply(req, "", HTTP_NOTFOUND, "not found\n");
}

static void
serve_health(struct http *h, struct evhttp_request *req, const char *path)
{
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	char text[128];

	if (cmd != EVHTTP_REQ_GET && cmd != EVHTTP_REQ_HEAD) {
		evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "GET, HEAD");
		reply(req, "", HTTP_BADMETHOD, "method not allowed\n");
		return;
	}
	if (strcmp(path, "/healthz") == 0) {
		reply(req, "", HTTP_OK, "ok\n");
		return;
	}
	snprintf(text, sizeof(text), "%s\n", store_state_text(h->store));
	reply(req, "", store_ready(h->store) ? HTTP_OK : HTTP_SERVUNAVAIL, text);
}

static void
serve_metrics(struct http *h, struct evhttp_request *req)
{
	struct evbuffer *body = evbuffer_new();

	if (body == NULL) {
		reply(req, "", HTTP_INTERNAL, "out of memory\n");
		return;
	}
	h->metrics_fn(body, h->metrics_arg);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
			  "text/plain; version=0.0.4; charset=utf-8");
	evhttp_send_reply(req, HTTP_OK, NULL, body);
	evbuffer_free(body);
}

static void
count(struct http *h, int app_index, int status)
{
	size_t row = app_index >= 0 ? (size_t)app_index : h->stats.n_rows - 1, kind = 0;

	while (kind < HTTP_STATUS_KINDS - 1 && http_status_kinds[kind] != status)
		kind++;
	h->stats.requests[row * HTTP_STATUS_KINDS + kind]++;
	if (status == 401)
		h->stats.signature_failures++;
}

/* A new connection: the bufferevent evhttp would make, plus our watch. */
static struct bufferevent *
on_connection(struct event_base *base, void *arg)
{
	struct http *h = arg;
	struct bufferevent *bev;

	if (h->ssl_ctx != NULL) {
		SSL *ssl = SSL_new(h->ssl_ctx);

		if (ssl == NULL)
			return NULL;
		bev = bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING,
						     BEV_OPT_CLOSE_ON_FREE);
		if (bev == NULL)
			SSL_free(ssl);
	} else {
		bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
	}
	/* For TLS this is the plaintext side: the replies as evhttp wrote them. */
	if (bev != NULL) {
		evbuffer_add_cb(bufferevent_get_output(bev), watch_replies, h);
		track_connection(h, bev);
	}
	return bev;
}

/* [server] tls_cert and tls_key: TLS 1.2 or newer, straight on our port. */
static int
make_tls(struct http *h, char *err, size_t errlen)
{
	const struct server_config *sc = &h->cfg->server;

	if (sc->tls_cert[0] == '\0')
		return 0;
	h->ssl_ctx = SSL_CTX_new(TLS_server_method());
	if (h->ssl_ctx == NULL) {
		snprintf(err, errlen, "cannot create a TLS context");
		return -1;
	}
	SSL_CTX_set_min_proto_version(h->ssl_ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(h->ssl_ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
	if (SSL_CTX_use_certificate_chain_file(h->ssl_ctx, sc->tls_cert) != 1) {
		snprintf(err, errlen, "server.tls_cert: cannot load %s", sc->tls_cert);
		return -1;
	}
	if (SSL_CTX_use_PrivateKey_file(h->ssl_ctx, sc->tls_key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(h->ssl_ctx) != 1) {
		snprintf(err, errlen,
			 "server.tls_key: cannot load %s, or it does not match tls_cert",
			 sc->tls_key);
		return -1;
	}
	return 0;
}

/*
 * Called whenever evhttp adds to a connection's output.  A reply begins
 * with its status line added to an empty buffer; only evhttp itself ever
 * answers 413 (check_push has no such status), so a 413 seen here is a
 * body refused before any callback of ours ran.  Its path and length are
 * gone by then: the audit row says what is known.
 */
static void
watch_replies(struct evbuffer *out, const struct evbuffer_cb_info *info, void *arg)
{
	static const char status_413[] = " 413 ";
	struct http *h = arg;
	char line[16];
	struct delivery *d;

	if (info->orig_size != 0 || info->n_added < sizeof(line) ||
	    evbuffer_copyout(out, line, sizeof(line)) != (ev_ssize_t)sizeof(line) ||
	    memcmp(line, "HTTP/1.", 7) != 0 || memcmp(line + 8, status_413, 5) != 0)
		return;
	d = delivery_alloc(h);
	if (d == NULL)
		return;
	d->status = 413;
	d->refused_early = true;
	count(h, -1, 413);
	set_error(d, "body larger than max_body_bytes: refused before it was read");
	d->done = audit_done;
	log_event(LOG_INFO, "push_rejected", "request %s: 413 %s", d->request_id, d->error);
	store_audit(h->store, d);
}

/* --- a push ------------------------------------------------------------- */

/*
 * Run the checks in their documented order.  Returns HTTP_OK for a genuine
 * push whose event is parsed, else the status to answer, with d->error set.
 */
static int
check_push(struct delivery *d, struct evhttp_request *req, const struct app_config *app)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	const struct form_field *message;
	const char *why;
	const unsigned char *body;
	enum signature_result sig;
	char perr[sizeof(d->error)];

	if (app == NULL)
		return fail(d, HTTP_NOTFOUND, "unknown path");
	if (evhttp_request_get_command(req) != EVHTTP_REQ_POST)
		return fail(d, HTTP_BADMETHOD, "method not allowed: use POST");
	if (!is_form(evhttp_find_header(evhttp_request_get_input_headers(req), "Content-Type")))
		return fail(d, 415, "content type must be " FORM_CONTENT_TYPE);
	body = evbuffer_pullup(in, -1);
	if (form_decode((const char *)body, d->body_bytes, &d->form, &why) < 0)
		return fail(d, HTTP_BADREQUEST, why);
	message = form_get(&d->form, "message");
	if (message == NULL)
		return fail(d, HTTP_BADREQUEST, "missing field: message");
	sig = signature_verify(&d->form, app, &d->signature_field);
	if (sig == SIGNATURE_ERROR)
		return fail(d, HTTP_INTERNAL, signature_result_text(sig));
	d->signature_ok = sig == SIGNATURE_OK;
	if (sig != SIGNATURE_OK)
		return fail(d, 401, signature_result_text(sig));
	if (message_parse(message->value, message->value_len, &d->event, perr, sizeof(perr)) < 0)
		return fail(d, HTTP_BADREQUEST, perr);
	d->has_event = true;
	d->message = message->value;
	d->message_len = message->value_len;
	return HTTP_OK;
}

/* Answer now; the audit row is written when the database can take it. */
static void
reject(struct http *h, struct delivery *d, struct evhttp_request *req, int status, const char *why)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t n = d->body_bytes < DELIVERY_BODY_EXCERPT ? d->body_bytes : DELIVERY_BODY_EXCERPT;
	char text[sizeof(d->error) + 1];

	d->status = status;
	count(h, d->app_index, status);
	if (n > 0 && (d->body_excerpt = malloc(n)) != NULL)
		d->body_excerpt_len = (size_t)evbuffer_copyout(in, d->body_excerpt, n);
	if (status == HTTP_BADMETHOD)
		evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "POST");
	snprintf(text, sizeof(text), "%s\n", why);
	reply(req, d->request_id, status, text);
	log_event(LOG_INFO, "push_rejected", "request %s app %s: %d %s", d->request_id,
		  d->app != NULL ? d->app : "-", status, why);
	/* The parsed form is no longer needed; the excerpt is what is kept. */
	form_free(&d->form);
	d->done = audit_done;
	d->owner = NULL;
	if (!audit_allowed(h)) {
		h->stats.rejections_not_audited++;
		delivery_free(d);
		return;
	}
	store_audit(h->store, d);
}

/*
 * A token bucket of [server] max_rejections_per_s: a flood of junk is
 * still answered, and counted, but cannot fill the disk with audit rows.
 */
static bool
audit_allowed(struct http *h)
{
	double rate = h->cfg->server.max_rejections_per_s;
	int64_t now = util_mono_us();

	if (rate <= 0)
		return true;
	h->audit_tokens += rate * (double)(now - h->audit_refilled_us) / 1e6;
	if (h->audit_tokens > rate)
		h->audit_tokens = rate;
	h->audit_refilled_us = now;
	if (h->audit_tokens < 1)
		return false;
	h->audit_tokens -= 1;
	return true;
}

static void
push_done(struct delivery *d, int committed)
{
	struct evhttp_request *req = d->owner;
	struct http *h = d->http;

	count(h, d->app_index, committed ? HTTP_OK : HTTP_SERVUNAVAIL);
	if (committed)
		reply(req, d->request_id, HTTP_OK, "success");
	else
		reply(req, d->request_id, HTTP_SERVUNAVAIL, "database unavailable, retry later\n");
	delivery_free(d);
}

static void
audit_done(struct delivery *d, int committed)
{
	(void)committed;
	delivery_free(d);
}

static struct delivery *
delivery_new(struct http *h, struct evhttp_request *req, const struct app_config *app)
{
	struct delivery *d = delivery_alloc(h);
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	const char *uri = evhttp_request_get_uri(req);
	char *peer = NULL;
	ev_uint16_t port = 0;

	if (d == NULL)
		return NULL;
	d->app = app != NULL ? app->name : NULL;
	d->app_index = app != NULL ? (int)(app - h->cfg->apps) : -1;
	d->method = method_name(evhttp_request_get_command(req));
	d->body_bytes = evbuffer_get_length(evhttp_request_get_input_buffer(req));
	copy_printable(d->path, sizeof(d->path), uri);
	if (evcon != NULL)
		evhttp_connection_get_peer(evcon, &peer, &port);
	copy_printable(d->remote, sizeof(d->remote), peer);
	return d;
}

/* What every delivery starts with: its request id and its arrival. */
static struct delivery *
delivery_alloc(struct http *h)
{
	struct delivery *d = calloc(1, sizeof(*d));

	if (d == NULL)
		return NULL;
	snprintf(d->request_id, sizeof(d->request_id), "%08x-%llu", h->id_prefix, ++h->next_id);
	d->received_us = util_wall_us();
	d->http = h;
	d->app_index = -1;
	d->signature_ok = -1;
	return d;
}

static void
delivery_free(struct delivery *d)
{
	form_free(&d->form);
	trade_event_free(&d->event);
	free(d->body_excerpt);
	free(d);
}

/* --- helpers ------------------------------------------------------------ */

static void
reply(struct evhttp_request *req, const char *request_id, int status, const char *text)
{
	struct evbuffer *body = evbuffer_new();
	struct evkeyvalq *headers = evhttp_request_get_output_headers(req);

	if (request_id[0] != '\0')
		evhttp_add_header(headers, "X-Request-Id", request_id);
	if (status == HTTP_SERVUNAVAIL)
		evhttp_add_header(headers, "Retry-After", RETRY_AFTER_S);
	if (body != NULL)
		evbuffer_add(body, text, strlen(text));
	evhttp_send_reply(req, status, NULL, body);
	if (body != NULL)
		evbuffer_free(body);
}

/* "application/x-www-form-urlencoded", any case, parameters allowed. */
static bool
is_form(const char *content_type)
{
	size_t n = sizeof(FORM_CONTENT_TYPE) - 1;

	if (content_type == NULL)
		return false;
	while (*content_type == ' ' || *content_type == '\t')
		content_type++;
	if (strncasecmp(content_type, FORM_CONTENT_TYPE, n) != 0)
		return false;
	return content_type[n] == '\0' || content_type[n] == ';' || content_type[n] == ' ' ||
	       content_type[n] == '\t';
}

static int
fail(struct delivery *d, int status, const char *why)
{
	set_error(d, why);
	return status;
}

/* Reasons may quote client bytes (jansson's errors do): keep them ASCII. */
static void
set_error(struct delivery *d, const char *text)
{
	copy_printable(d->error, sizeof(d->error), text);
}

/* SRC (NULL: empty) into DST, non-printable bytes as '?', truncated. */
static void
copy_printable(char *dst, size_t cap, const char *src)
{
	size_t i = 0;

	for (; src != NULL && i + 1 < cap && src[i] != '\0'; i++)
		dst[i] = isprint((unsigned char)src[i]) ? src[i] : '?';
	dst[i] = '\0';
}

static const char *
method_name(enum evhttp_cmd_type cmd)
{
	switch (cmd) {
	case EVHTTP_REQ_GET:
		return "GET";
	case EVHTTP_REQ_POST:
		return "POST";
	case EVHTTP_REQ_HEAD:
		return "HEAD";
	case EVHTTP_REQ_PUT:
		return "PUT";
	case EVHTTP_REQ_DELETE:
		return "DELETE";
	case EVHTTP_REQ_OPTIONS:
		return "OPTIONS";
	case EVHTTP_REQ_TRACE:
		return "TRACE";
	case EVHTTP_REQ_CONNECT:
		return "CONNECT";
	case EVHTTP_REQ_PATCH:
		return "PATCH";
	}
	return "OTHER";
}
