/*
 * http.c - the network side of the receiver (see http.h).
 *
 * Listeners (the main one and [server] admin_listen), native TLS, the
 * connection limits, routing, request ids and replies.  What a callback
 * path's request means is ingest.c's business: this file hands it over with
 * its app and id and never sees the store.
 *
 * evhttp itself enforces the body and header limits: it answers 413 for a
 * body over [server] max_body_bytes (over nothing on the admin listener,
 * whose routes take no body) before any callback of ours runs, which keeps
 * a huge body from ever being buffered.  libevent 2.1 has no hook before
 * the body is read, so each main connection's output is watched for a
 * reply that starts with a 413 status line (watch_replies), and the push
 * handler's `refused` is told, so that those are audited too.
 *
 * Connections.  evhttp's timeout is an idle one (every byte read restarts
 * it), so a client trickling its header a byte a second would hold its
 * connection forever, and max_connections of them the whole listener.  So
 * both listeners keep a struct conn beside each of evhttp's connections:
 * its request must have fully arrived (evhttp called on_request) within
 * request_timeout_s of the accept, or of the end of the previous reply on a
 * keep-alive connection, or the sweep closes it.  The loop turn after an
 * accept (on_admit), at max_connections the connection idle longest
 * (replied, nothing of another request since) is closed to make room
 * rather than accepting pausing, and a new connection beyond [server]
 * max_connections_per_ip from its address is closed before it is read
 * from (evhttp gives a new connection its socket only after on_connection).
 * From the request callback until its reply has been sent (a push waiting
 * for its commit) a connection is never closed here.  Closing tells the
 * bufferevent EOF, as if the client had closed: evhttp frees the
 * connection its ordinary way.  Each bufferevent reads at most a request's
 * worth ahead (a read watermark): evhttp reads on while it writes a reply,
 * to see a close, and a connection it freed reads on until we release it.
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

/* One open connection, beside evhttp's own (which tells nothing of its life). */
struct conn {
	struct listener *l;
	struct bufferevent *bev; /* holds one reference of ours */
	int64_t deadline_us;	 /* unless answering: its request must be in by then */
	bool answering;		 /* the request callback ran; the reply is not sent yet */
	bool idle;		 /* replied, and no byte of another request since */
	bool admitted;		 /* checked against max_connections_per_ip */
	unsigned char peer_len;	 /* bytes of peer: 4 (IPv4), 16 (IPv6), 0 unknown */
	unsigned char peer[16];
};

/* The main listener or the admin one, and its open connections. */
struct listener {
	struct http *h;
	struct evhttp *evhttp; /* NULL: not configured */
	struct evhttp_bound_socket *bound;
	struct evconnlistener *listener; /* bound's, while accepting */
	struct conn **conns;
	size_t n_conns, cap_conns;
};

struct http {
	struct event_base *base;
	const struct config *cfg;
	struct http_handlers handlers;
	struct listener main, admin; /* admin: [server] admin_listen */
	struct event *ev_sweep;	     /* deadlines, closed connections, resuming accepting */
	struct event *ev_admit;	     /* the turn after an accept: the cap, per-IP limit */
	SSL_CTX *ssl_ctx;	     /* [server] tls_cert, or NULL */
	unsigned int id_prefix;	     /* makes request ids unique across restarts */
	unsigned long long next_id;
	uint64_t connection_cap_reached; /* times accepting paused at max_connections */
	uint64_t closed_deadline;	 /* closed: the request not in by its deadline */
	uint64_t closed_idle;		 /* closed: idle, to make room at the cap */
	uint64_t refused_per_ip;	 /* closed at once: beyond max_connections_per_ip */
};

static void on_request(struct evhttp_request *req, void *arg);
static void on_admin_request(struct evhttp_request *req, void *arg);
static struct evhttp *new_evhttp(struct listener *l, ev_ssize_t max_body,
				 void (*cb)(struct evhttp_request *, void *));
static int bind_listener(struct listener *l, const char *addr, bool reuseport, char *err,
			 size_t errlen);
static evutil_socket_t open_listener(const char *addr, bool reuseport, char *err, size_t errlen);
static void on_accept_error(struct evconnlistener *listener, void *arg);
static void on_sweep(evutil_socket_t fd, short what, void *arg);
static void sweep(struct listener *l);
static bool past_deadline(const struct listener *l, struct conn *c);
static bool beyond_per_ip(const struct listener *l, struct conn *c);
static void close_where(struct listener *l,
			bool (*should_close)(const struct listener *, struct conn *), uint64_t *n);
static void resume_accepting(struct listener *l);
static void track_connection(struct listener *l, struct bufferevent *bev);
static void shed_idle(struct listener *l);
static size_t find_idle(const struct listener *l);
static void on_admit(evutil_socket_t fd, short what, void *arg);
static void admit(struct listener *l);
static void read_peer(struct conn *c);
static size_t count_peer(const struct listener *l, const struct conn *c);
static void close_connection(struct listener *l, size_t i);
static void untrack(struct listener *l, size_t i);
static void release_closed_connections(struct listener *l);
static size_t read_limit(const struct listener *l);
static bool freed_by_evhttp(struct bufferevent *bev);
static void free_listener(struct listener *l);
static void request_received(struct listener *l, struct evhttp_request *req);
static void on_replied(struct evhttp_request *req, void *arg);
static void watch_requests(struct evbuffer *in, const struct evbuffer_cb_info *info, void *arg);
static int64_t request_deadline(const struct http *h);
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
	h->main.h = h;
	h->admin.h = h;
	h->main.evhttp = new_evhttp(&h->main, (ev_ssize_t)cfg->server.max_body_bytes, on_request);
	h->ev_admit = event_new(base, -1, 0, on_admit, h);
	if (h->main.evhttp == NULL || h->ev_admit == NULL) {
		http_free(h);
		return NULL;
	}
	h->id_prefix = (unsigned int)(wall / 1000000) ^ ((unsigned int)(wall % 1000000) << 12) ^
		       ((unsigned int)getpid() << 20);
	/* Every method reaches on_request, so a wrong one is answered 405, audited. */
	evhttp_set_allowed_methods(h->main.evhttp,
				   EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
				       EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS |
				       EVHTTP_REQ_TRACE | EVHTTP_REQ_CONNECT | EVHTTP_REQ_PATCH);
	return h;
}

/* An evhttp with the limits both listeners share; L's requests go to CB. */
static struct evhttp *
new_evhttp(struct listener *l, ev_ssize_t max_body, void (*cb)(struct evhttp_request *, void *))
{
	struct evhttp *e = evhttp_new(l->h->base);

	if (e == NULL)
		return NULL;
	evhttp_set_max_body_size(e, max_body);
	evhttp_set_max_headers_size(e, MAX_HEADERS_BYTES);
	evhttp_set_timeout(e, l->h->cfg->server.request_timeout_s);
	evhttp_set_default_content_type(e, "text/plain; charset=utf-8");
	evhttp_set_gencb(e, cb, l);
	evhttp_set_bevcb(e, on_connection, l);
	return e;
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
	struct timeval every = util_tv_ms(CONN_SWEEP_MS);

	if (make_tls(h, err, errlen) < 0 ||
	    bind_listener(&h->main, h->cfg->server.listen, h->cfg->server.workers > 1, err,
			  errlen) < 0)
		return -1;
	h->ev_sweep = event_new(h->base, -1, EV_PERSIST, on_sweep, h);
	if (h->ev_sweep == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	event_add(h->ev_sweep, &every);
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
	if (h->cfg->server.admin_listen[0] == '\0')
		return 0;
	/* The same limits and connection handling; a body (GET and HEAD need none)
	 * is refused 413 as soon as its headers announce one. */
	h->admin.evhttp = new_evhttp(&h->admin, 0, on_admin_request);
	if (h->admin.evhttp == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	evhttp_set_allowed_methods(h->admin.evhttp, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD);
	return bind_listener(&h->admin, h->cfg->server.admin_listen, false, err, errlen);
}

/* Listen on ADDR for L: accepting can then be paused (the cap, EMFILE). */
static int
bind_listener(struct listener *l, const char *addr, bool reuseport, char *err, size_t errlen)
{
	evutil_socket_t fd = open_listener(addr, reuseport, err, errlen);

	if (fd < 0)
		return -1;
	l->bound = evhttp_accept_socket_with_handle(l->evhttp, fd);
	if (l->bound == NULL) {
		snprintf(err, errlen, "cannot listen on %s", addr);
		close(fd);
		return -1;
	}
	l->listener = evhttp_bound_socket_get_listener(l->bound);
	evconnlistener_set_error_cb(l->listener, on_accept_error);
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
 * being called again at once, forever; the sweep resumes it within
 * CONN_SWEEP_MS.  (The argument is evhttp's, so only the listener is at hand.)
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
 * Every CONN_SWEEP_MS, on each listener: let go of the connections evhttp
 * has closed, close those whose request is past its deadline, then accept
 * again if there is room (also after an accept error: the pause lasts
 * until here).
 */
static void
on_sweep(evutil_socket_t fd, short what, void *arg)
{
	struct http *h = arg;

	(void)fd;
	(void)what;
	sweep(&h->main);
	sweep(&h->admin);
}

static void
sweep(struct listener *l)
{
	release_closed_connections(l);
	close_where(l, past_deadline, &l->h->closed_deadline);
	shed_idle(l);
	resume_accepting(l);
}

/* Its request is not in by its deadline (none runs while answering). */
static bool
past_deadline(const struct listener *l, struct conn *c)
{
	(void)l;
	return !c->answering && util_mono_us() >= c->deadline_us;
}

/* Accept while below the cap, or while an idle connection can make room. */
static void
resume_accepting(struct listener *l)
{
	if (l->listener != NULL &&
	    (l->n_conns < (size_t)l->h->cfg->server.max_connections || find_idle(l) < l->n_conns))
		evconnlistener_enable(l->listener);
}

/*
 * The connection limits.  libevent 2.1's evhttp says when a connection
 * opens (it asks on_connection for its bufferevent) but not when it
 * closes.  So each bufferevent is kept with a reference of ours: when
 * evhttp frees the connection, it clears the bufferevent's callbacks and
 * drops its own reference (the client has its FIN by then), and release_
 * closed_connections() notices and drops ours, which closes the socket.
 * At the cap the listener is disabled: new connections wait in the
 * kernel's backlog, not in our memory, unless an idle connection can be
 * closed to make room (on_admit, the next loop turn).
 */
static void
track_connection(struct listener *l, struct bufferevent *bev)
{
	struct http *h = l->h;
	size_t max = (size_t)h->cfg->server.max_connections;
	struct conn *c;

	if (l->n_conns == l->cap_conns) {
		size_t cap = l->cap_conns != 0 ? l->cap_conns * 2 : 64;
		struct conn **more = realloc(l->conns, cap * sizeof(*more));

		if (more == NULL)
			return; /* untracked: evhttp alone closes it, uncounted */
		l->conns = more;
		l->cap_conns = cap;
	}
	c = calloc(1, sizeof(*c));
	if (c == NULL || evbuffer_add_cb(bufferevent_get_input(bev), watch_requests, c) == NULL) {
		free(c);
		return;
	}
	c->l = l;
	c->bev = bev;
	c->deadline_us = request_deadline(h);
	bufferevent_incref(bev);
	/* evhttp reads while it writes a reply (to see a close), and so does a
	 * bufferevent of a connection it has freed until we release it: never
	 * more than its biggest request. */
	bufferevent_setwatermark(bev, EV_READ, 0, read_limit(l));
	l->conns[l->n_conns++] = c;
	if (l->n_conns >= max && l->listener != NULL) {
		evconnlistener_disable(l->listener); /* on_admit resumes if an idle one goes */
		if (find_idle(l) == l->n_conns)
			h->connection_cap_reached++;
	}
	if (h->cfg->server.max_connections_per_ip > 0 || l->n_conns >= max)
		event_active(h->ev_admit, EV_TIMEOUT, 0);
}

/* The most a request needs buffered at once: its headers, or its body. */
static size_t
read_limit(const struct listener *l)
{
	size_t body = l == &l->h->main ? l->h->cfg->server.max_body_bytes : 0;

	return body + 2 * MAX_HEADERS_BYTES;
}

/*
 * Over the cap (by the one just accepted): close the connection idle
 * longest.  None may be idle any more (one began a request after accepting
 * resumed): then this one stays, and accepting pauses until there is room.
 */
static void
shed_idle(struct listener *l)
{
	size_t i;

	while (l->n_conns > (size_t)l->h->cfg->server.max_connections &&
	       (i = find_idle(l)) < l->n_conns) {
		close_connection(l, i);
		l->h->closed_idle++;
	}
}

/* The connection idle longest (its deadline the nearest), or n_conns: none. */
static size_t
find_idle(const struct listener *l)
{
	size_t best = l->n_conns;

	for (size_t i = 0; i < l->n_conns; i++)
		if (l->conns[i]->idle &&
		    (best == l->n_conns || l->conns[i]->deadline_us < l->conns[best]->deadline_us))
			best = i;
	return best;
}

/*
 * The loop turn after accepting (evhttp gives a new connection its socket
 * only after on_connection returns, and reads from it only after epoll
 * says so, later): at the cap, close an idle connection to make room; close
 * each new connection beyond [server] max_connections_per_ip from its
 * address; then accept again if there is room.
 */
static void
on_admit(evutil_socket_t fd, short what, void *arg)
{
	struct http *h = arg;

	(void)fd;
	(void)what;
	admit(&h->main);
	admit(&h->admin);
}

static void
admit(struct listener *l)
{
	release_closed_connections(l); /* closed ones do not count */
	shed_idle(l);
	if (l->h->cfg->server.max_connections_per_ip > 0)
		close_where(l, beyond_per_ip, &l->h->refused_per_ip);
	resume_accepting(l);
}

/* C is new, and its address has max_connections_per_ip others already. */
static bool
beyond_per_ip(const struct listener *l, struct conn *c)
{
	if (c->admitted)
		return false;
	c->admitted = true;
	read_peer(c);
	return c->peer_len != 0 &&
	       count_peer(l, c) > (size_t)l->h->cfg->server.max_connections_per_ip;
}

static void
read_peer(struct conn *c)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	evutil_socket_t fd = bufferevent_getfd(c->bev);

	if (fd < 0 || getpeername(fd, (struct sockaddr *)&ss, &len) != 0)
		return;
	if (ss.ss_family == AF_INET) {
		memcpy(c->peer, &((const struct sockaddr_in *)&ss)->sin_addr, 4);
		c->peer_len = 4;
	} else if (ss.ss_family == AF_INET6) {
		memcpy(c->peer, &((const struct sockaddr_in6 *)&ss)->sin6_addr, 16);
		c->peer_len = 16;
	}
}

/* Admitted connections from C's address, C included. */
static size_t
count_peer(const struct listener *l, const struct conn *c)
{
	size_t n = 0;

	for (size_t i = 0; i < l->n_conns; i++) {
		const struct conn *o = l->conns[i];

		n += o->admitted && o->peer_len == c->peer_len &&
		     memcmp(o->peer, c->peer, c->peer_len) == 0;
	}
	return n;
}

/* Close each connection of L that SHOULD_CLOSE picks, counting them in *N. */
static void
close_where(struct listener *l, bool (*should_close)(const struct listener *, struct conn *),
	    uint64_t *n)
{
	for (size_t i = 0; i < l->n_conns;) {
		if (!should_close(l, l->conns[i])) {
			i++;
			continue;
		}
		close_connection(l, i); /* moves the last one to I */
		(*n)++;
	}
}

/*
 * Close connection I, which is reading (never one whose reply is due): it
 * is told EOF, as if the client had closed it, and evhttp frees it its
 * ordinary way (no request of it was handed out); untrack() then drops the
 * last reference, which closes the socket.
 */
static void
close_connection(struct listener *l, size_t i)
{
	bufferevent_trigger_event(l->conns[i]->bev, BEV_EVENT_READING | BEV_EVENT_EOF, 0);
	untrack(l, i);
}

/* Forget connection I (the last one takes its place) and drop our reference. */
static void
untrack(struct listener *l, size_t i)
{
	struct conn *c = l->conns[i];

	evbuffer_remove_cb(bufferevent_get_input(c->bev), watch_requests, c);
	bufferevent_decref(c->bev);
	free(c);
	l->conns[i] = l->conns[--l->n_conns];
}

static void
release_closed_connections(struct listener *l)
{
	for (size_t i = 0; i < l->n_conns;) {
		if (freed_by_evhttp(l->conns[i]->bev))
			untrack(l, i);
		else
			i++;
	}
}

/* evhttp clears a bufferevent's callbacks when it frees its connection. */
static bool
freed_by_evhttp(struct bufferevent *bev)
{
	bufferevent_data_cb rd, wr;
	bufferevent_event_cb ev;

	bufferevent_getcb(bev, &rd, &wr, &ev, NULL);
	return rd == NULL && wr == NULL && ev == NULL;
}

/*
 * evhttp has the whole request: no deadline until its reply has been sent
 * (a push may wait for its commit), then the next request's runs.
 */
static void
request_received(struct listener *l, struct evhttp_request *req)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	struct bufferevent *bev = evcon != NULL ? evhttp_connection_get_bufferevent(evcon) : NULL;

	for (size_t i = 0; bev != NULL && i < l->n_conns; i++) {
		if (l->conns[i]->bev == bev) {
			l->conns[i]->answering = true;
			l->conns[i]->idle = false;
			evhttp_request_set_on_complete_cb(req, on_replied, l->conns[i]);
			return;
		}
	}
}

/* The reply is sent: the next request's deadline runs from now. */
static void
on_replied(struct evhttp_request *req, void *arg)
{
	struct conn *c = arg;

	(void)req;
	c->answering = false;
	c->deadline_us = request_deadline(c->l->h);
	c->idle = evbuffer_get_length(bufferevent_get_input(c->bev)) == 0;
}

/*
 * Bytes came in: the connection is not idle.  Or evhttp has freed it (its
 * callbacks are gone) and our reference kept it reading: stop that.
 */
static void
watch_requests(struct evbuffer *in, const struct evbuffer_cb_info *info, void *arg)
{
	struct conn *c = arg;

	(void)in;
	if (info->n_added == 0)
		return;
	c->idle = false;
	if (freed_by_evhttp(c->bev))
		bufferevent_disable(c->bev, EV_READ | EV_WRITE);
}

static int64_t
request_deadline(const struct http *h)
{
	return util_mono_us() + (int64_t)h->cfg->server.request_timeout_s * 1000000;
}

void
http_stop_accepting(struct http *h)
{
	if (h->main.bound != NULL) {
		evhttp_del_accept_socket(h->main.evhttp, h->main.bound);
		h->main.bound = NULL;
		h->main.listener = NULL;
	}
}

void
http_metrics(const struct http *h, struct evbuffer *out)
{
	const struct metrics_sample closed[] = {
	    {"reason=\"deadline\"", (double)h->closed_deadline},
	    {"reason=\"idle_at_cap\"", (double)h->closed_idle},
	};
	const struct metrics_sample refused[] = {
	    {"reason=\"per_ip\"", (double)h->refused_per_ip},
	};

	metrics_single(out, "receiver_open_connections", "gauge",
		       "Connections open on the main listener.", (double)h->main.n_conns);
	metrics_single(out, "receiver_connection_cap_reached_total", "counter",
		       "Times accepting paused at max_connections.",
		       (double)h->connection_cap_reached);
	metrics_samples(out, "receiver_connections_closed_total", "counter",
			"Connections closed by the receiver (either listener): the request not"
			" in by its deadline, or idle at max_connections.",
			closed, sizeof(closed) / sizeof(closed[0]));
	metrics_samples(out, "receiver_connections_refused_total", "counter",
			"New connections closed at once (either listener): beyond"
			" max_connections_per_ip.",
			refused, sizeof(refused) / sizeof(refused[0]));
}

void
http_free(struct http *h)
{
	if (h == NULL)
		return;
	if (h->ev_sweep != NULL)
		event_free(h->ev_sweep);
	if (h->ev_admit != NULL)
		event_free(h->ev_admit);
	free_listener(&h->admin);
	free_listener(&h->main);
	if (h->ssl_ctx != NULL)
		SSL_CTX_free(h->ssl_ctx);
	free(h);
}

static void
free_listener(struct listener *l)
{
	if (l->evhttp != NULL)
		evhttp_free(l->evhttp);
	/* evhttp freed every connection: ours are the last references. */
	while (l->n_conns > 0)
		untrack(l, l->n_conns - 1);
	free(l->conns);
}

/* --- routing ------------------------------------------------------------ */

static void
on_request(struct evhttp_request *req, void *arg)
{
	struct http *h = ((struct listener *)arg)->h;
	const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
	char request_id[32];

	request_received(arg, req);
	if (path == NULL || *path == '\0')
		path = "/";
	if (strcmp(path, "/healthz") == 0 || strcmp(path, "/readyz") == 0) {
		serve_health(h, req, path);
		return;
	}
	if (strcmp(path, "/metrics") == 0 && h->handlers.metrics != NULL &&
	    h->admin.evhttp == NULL) {
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
	struct http *h = ((struct listener *)arg)->h;
	const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));

	request_received(arg, req);
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

/* A new connection: the bufferevent evhttp would make, plus our watches. */
static struct bufferevent *
on_connection(struct event_base *base, void *arg)
{
	struct listener *l = arg;
	struct http *h = l->h;
	struct bufferevent *bev;

	if (l == &h->main && h->ssl_ctx != NULL) {
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
	if (bev != NULL && l == &h->main)
		evbuffer_add_cb(bufferevent_get_output(bev), watch_replies, h);
	if (bev != NULL)
		track_connection(l, bev);
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
