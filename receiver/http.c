/*
 * http.c - the network side of the receiver (see http.h).
 *
 * Listeners (the main one and [server] admin_listen), native TLS, the
 * connection cap and the accept pause, routing, request ids and replies.
 * What a callback path's request means is ingest.c's business: this file
 * hands it over with its app and id and never sees the store.
 *
 * evhttp itself enforces the body and header limits: it answers 413 for a
 * body over [server] max_body_bytes before any callback of ours runs, which
 * keeps a huge body from ever being buffered.  libevent 2.1 has no hook
 * before the body is read, so each connection's output is watched for a
 * reply that starts with a 413 status line (watch_replies), and the push
 * handler's `refused` is told, so that those are audited too.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
#include "metrics.h"
#include "util.h"

#define MAX_HEADERS_BYTES 16384
#define RETRY_AFTER_S	  "5"
#define LISTEN_BACKLOG	  1024
#define CONN_SWEEP_MS	  200

struct http {
	struct event_base *base;
	const struct config *cfg;
	struct http_handlers handlers;
	struct evhttp *evhttp;
	struct evhttp_bound_socket *bound;
	struct evconnlistener *listener; /* bound's, while accepting */
	struct event *ev_resume;	 /* releases closed connections, resumes accepting */
	struct bufferevent **conns;	 /* every open connection's, one reference each */
	size_t n_conns, cap_conns;
	struct evhttp *admin;	/* [server] admin_listen, or NULL */
	SSL_CTX *ssl_ctx;	/* [server] tls_cert, or NULL */
	unsigned int id_prefix; /* makes request ids unique across restarts */
	unsigned long long next_id;
	size_t open_connections;
	uint64_t connection_cap_reached; /* times accepting paused at max_connections */
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
static void watch_replies(struct evbuffer *out, const struct evbuffer_cb_info *info, void *arg);
static void serve_health(struct http *h, struct evhttp_request *req, const char *path);
static void serve_metrics(struct http *h, struct evhttp_request *req);
static void next_request_id(struct http *h, char *buf, size_t cap);

struct http *
http_new(struct event_base *base, const struct config *cfg, const struct http_handlers *handlers)
{
	struct http *h = calloc(1, sizeof(*h));
	int64_t wall = util_wall_us();

	if (h == NULL)
		return NULL;
	h->base = base;
	h->cfg = cfg;
	h->handlers = *handlers;
	h->evhttp = evhttp_new(base);
	if (h->evhttp == NULL) {
		free(h);
		return NULL;
	}
	h->id_prefix = (unsigned int)(wall / 1000000) ^ ((unsigned int)(wall % 1000000) << 12) ^
		       ((unsigned int)getpid() << 20);
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
	h->open_connections = h->n_conns;
	if (h->n_conns >= (size_t)h->cfg->server.max_connections && h->listener != NULL) {
		evconnlistener_disable(h->listener);
		h->connection_cap_reached++;
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
	h->open_connections = h->n_conns;
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
http_metrics(const struct http *h, struct evbuffer *out)
{
	metrics_single(out, "receiver_open_connections", "gauge",
		       "Connections open on the main listener.", (double)h->open_connections);
	metrics_single(out, "receiver_connection_cap_reached_total", "counter",
		       "Times accepting paused at max_connections.",
		       (double)h->connection_cap_reached);
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
	free(h);
}

/* --- routing ------------------------------------------------------------ */

static void
on_request(struct evhttp_request *req, void *arg)
{
	struct http *h = arg;
	const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
	char request_id[32];

	if (path == NULL || *path == '\0')
		path = "/";
	if (strcmp(path, "/healthz") == 0 || strcmp(path, "/readyz") == 0) {
		serve_health(h, req, path);
		return;
	}
	if (strcmp(path, "/metrics") == 0 && h->handlers.metrics != NULL && h->admin == NULL) {
		serve_metrics(h, req);
		return;
	}
	next_request_id(h, request_id, sizeof(request_id));
	h->handlers.push(h->handlers.push_arg, req, config_app_by_path(h->cfg, path), request_id);
}

/* The admin listener: health and metrics, nothing else. */
static void
on_admin_request(struct evhttp_request *req, void *arg)
{
	struct http *h = arg;
	const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));

	if (path != NULL && (strcmp(path, "/healthz") == 0 || strcmp(path, "/readyz") == 0))
		serve_health(h, req, path);
	else if (path != NULL && strcmp(path, "/metrics") == 0 && h->handlers.metrics != NULL)
		serve_metrics(h, req);
	else
		http_reply(req, "", HTTP_NOTFOUND, "not found\n");
}

static void
serve_health(struct http *h, struct evhttp_request *req, const char *path)
{
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	const char *why = "ready";
	char text[128];
	bool ready;

	if (cmd != EVHTTP_REQ_GET && cmd != EVHTTP_REQ_HEAD) {
		evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "GET, HEAD");
		http_reply(req, "", HTTP_BADMETHOD, "method not allowed\n");
		return;
	}
	if (strcmp(path, "/healthz") == 0) {
		http_reply(req, "", HTTP_OK, "ok\n");
		return;
	}
	ready = h->handlers.ready(h->handlers.status_arg, &why);
	snprintf(text, sizeof(text), "%s\n", why);
	http_reply(req, "", ready ? HTTP_OK : HTTP_SERVUNAVAIL, text);
}

static void
serve_metrics(struct http *h, struct evhttp_request *req)
{
	struct evbuffer *body = evbuffer_new();

	if (body == NULL) {
		http_reply(req, "", HTTP_INTERNAL, "out of memory\n");
		return;
	}
	h->handlers.metrics(h->handlers.status_arg, body);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
			  "text/plain; version=0.0.4; charset=utf-8");
	evhttp_send_reply(req, HTTP_OK, NULL, body);
	evbuffer_free(body);
}

/* Unique per process and across restarts (the prefix mixes time and pid). */
static void
next_request_id(struct http *h, char *buf, size_t cap)
{
	snprintf(buf, cap, "%08x-%llu", h->id_prefix, ++h->next_id);
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
 * answers 413 (ingest.c has no such status), so a 413 seen here is a body
 * refused before any callback of ours ran.
 */
static void
watch_replies(struct evbuffer *out, const struct evbuffer_cb_info *info, void *arg)
{
	static const char status_413[] = " 413 ";
	struct http *h = arg;
	char line[16], request_id[32];

	if (info->orig_size != 0 || info->n_added < sizeof(line) ||
	    evbuffer_copyout(out, line, sizeof(line)) != (ev_ssize_t)sizeof(line) ||
	    memcmp(line, "HTTP/1.", 7) != 0 || memcmp(line + 8, status_413, 5) != 0)
		return;
	next_request_id(h, request_id, sizeof(request_id));
	h->handlers.refused(h->handlers.push_arg, request_id);
}

/* --- helpers ------------------------------------------------------------ */

void
http_reply(struct evhttp_request *req, const char *request_id, int status, const char *text)
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
