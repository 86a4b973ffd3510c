/*
 * sink.c - the relay benchmark's consumer (tests/bench/relay.sh).
 *
 *   sink PORT OUT
 *
 * A bare evhttp server on 127.0.0.1:PORT, one event loop: every POST is
 * answered 200 at once, and its arrival (CLOCK_REALTIME, microseconds:
 * the clock PostgreSQL's commit timestamps use, so relay.sh can subtract
 * them) and its webhook-id header are appended to a table in memory.  It
 * does NOT verify signatures: the integration tests do that, with the
 * reference library, and here it would make the consumer the bottleneck.
 * The time is taken when evhttp hands over the whole request, just before
 * the answer is written: the moment the consumer says 2xx.
 *
 * A GET answers the count of POSTs so far (relay.sh polls it to see a
 * drain finish).  SIGTERM or SIGINT: writes OUT, one line per POST,
 * "webhook-id<TAB>arrival_us", in arrival order, and exits 0.
 */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>

#define ID_MAX 63 /* evt_ + a bigint fits easily */

struct arrival {
	int64_t at_us;
	char id[ID_MAX + 1];
};

struct sink {
	struct arrival *rows;
	size_t n, cap;
	unsigned long long no_id; /* POSTs without a webhook-id */
	struct evbuffer *out;
};

static int64_t
wall_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Appends a row; false when memory runs out (the POST is then answered 500). */
static int
record(struct sink *s, int64_t at, const char *id)
{
	if (s->n == s->cap) {
		size_t cap = s->cap > 0 ? s->cap * 2 : 65536;
		struct arrival *rows = realloc(s->rows, cap * sizeof(*rows));

		if (rows == NULL)
			return 0;
		s->rows = rows;
		s->cap = cap;
	}
	s->rows[s->n].at_us = at;
	snprintf(s->rows[s->n].id, sizeof(s->rows[s->n].id), "%s", id);
	s->n++;
	return 1;
}

static void
on_request(struct evhttp_request *req, void *arg)
{
	struct sink *s = arg;
	int64_t at = wall_us();
	const char *id;

	if (evhttp_request_get_command(req) != EVHTTP_REQ_POST) {
		evbuffer_add_printf(s->out, "%zu\n", s->n);
		evhttp_send_reply(req, HTTP_OK, NULL, s->out);
		return;
	}
	id = evhttp_find_header(evhttp_request_get_input_headers(req), "webhook-id");
	if (id == NULL) {
		s->no_id++;
		id = "-";
	}
	if (!record(s, at, id)) {
		evhttp_send_error(req, HTTP_INTERNAL, NULL);
		return;
	}
	evhttp_send_reply(req, HTTP_OK, NULL, NULL);
}

static void
on_signal(evutil_socket_t sig, short what, void *arg)
{
	(void)sig;
	(void)what;
	event_base_loopbreak(arg);
}

static int
write_rows(const struct sink *s, const char *path)
{
	FILE *f = fopen(path, "w");

	if (f == NULL) {
		fprintf(stderr, "sink: %s: %s\n", path, strerror(errno));
		return 1;
	}
	for (size_t i = 0; i < s->n; i++)
		fprintf(f, "%s\t%lld\n", s->rows[i].id, (long long)s->rows[i].at_us);
	if (fclose(f) != 0) {
		fprintf(stderr, "sink: %s: write failed\n", path);
		return 1;
	}
	return 0;
}

int
main(int argc, char **argv)
{
	struct sink s = {0};
	struct event_base *base;
	struct evhttp *http;
	struct event *term, *intr;
	int port, rc;

	if (argc != 3 || (port = atoi(argv[1])) <= 0 || port > 65535) {
		fprintf(stderr, "usage: sink PORT OUT\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	base = event_base_new();
	http = base != NULL ? evhttp_new(base) : NULL;
	s.out = evbuffer_new();
	if (http == NULL || s.out == NULL) {
		fprintf(stderr, "sink: out of memory\n");
		return 1;
	}
	evhttp_set_max_body_size(http, 1 << 20);
	evhttp_set_timeout(http, 60);
	evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_POST);
	evhttp_set_default_content_type(http, "text/plain; charset=utf-8");
	evhttp_set_gencb(http, on_request, &s);
	if (evhttp_bind_socket(http, "127.0.0.1", (ev_uint16_t)port) < 0) {
		fprintf(stderr, "sink: cannot listen on 127.0.0.1:%d\n", port);
		return 1;
	}
	term = evsignal_new(base, SIGTERM, on_signal, base);
	intr = evsignal_new(base, SIGINT, on_signal, base);
	if (term == NULL || intr == NULL || evsignal_add(term, NULL) < 0 ||
	    evsignal_add(intr, NULL) < 0) {
		fprintf(stderr, "sink: cannot handle signals\n");
		return 1;
	}
	event_base_dispatch(base);
	rc = write_rows(&s, argv[2]);
	fprintf(stderr, "sink: %zu POSTs (%llu without a webhook-id)\n", s.n, s.no_id);
	event_free(term);
	event_free(intr);
	evhttp_free(http);
	evbuffer_free(s.out);
	event_base_free(base);
	free(s.rows);
	return rc;
}
