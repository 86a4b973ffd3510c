/*
 * baseline.c - the benchmark's ceiling: a bare evhttp server (tests/bench).
 *
 *   baseline PORT
 *
 * Listens on 127.0.0.1:PORT with the receiver's evhttp settings (body and
 * header limits, timeout), reads each request's body into one contiguous
 * buffer and answers 200 "success", without verifying or storing anything:
 * what libevent's HTTP server alone does on this machine, on one event loop
 * like the receiver.  SIGTERM or SIGINT: exit 0.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>

static unsigned long long requests, body_bytes;

static void
on_request(struct evhttp_request *req, void *arg)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	struct evbuffer *out = arg;
	size_t n = evbuffer_get_length(in);

	/* Read the body as the receiver does (one contiguous copy), then drop it. */
	if (n > 0 && evbuffer_pullup(in, -1) == NULL) {
		evhttp_send_error(req, HTTP_INTERNAL, NULL);
		return;
	}
	requests++;
	body_bytes += n;
	evbuffer_add(out, "success", 7);
	evhttp_send_reply(req, HTTP_OK, NULL, out);
}

static void
on_signal(evutil_socket_t sig, short what, void *arg)
{
	(void)sig;
	(void)what;
	event_base_loopbreak(arg);
}

int
main(int argc, char **argv)
{
	struct event_base *base;
	struct evhttp *http;
	struct evbuffer *out;
	struct event *term, *intr;
	int port;

	if (argc != 2 || (port = atoi(argv[1])) <= 0 || port > 65535) {
		fprintf(stderr, "usage: baseline PORT\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	base = event_base_new();
	http = base != NULL ? evhttp_new(base) : NULL;
	out = evbuffer_new();
	if (http == NULL || out == NULL) {
		fprintf(stderr, "baseline: out of memory\n");
		return 1;
	}
	evhttp_set_max_body_size(http, 262144);
	evhttp_set_max_headers_size(http, 16384);
	evhttp_set_timeout(http, 10);
	evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_POST);
	evhttp_set_default_content_type(http, "text/plain; charset=utf-8");
	evhttp_set_gencb(http, on_request, out);
	if (evhttp_bind_socket(http, "127.0.0.1", (ev_uint16_t)port) < 0) {
		fprintf(stderr, "baseline: cannot listen on 127.0.0.1:%d\n", port);
		return 1;
	}
	term = evsignal_new(base, SIGTERM, on_signal, base);
	intr = evsignal_new(base, SIGINT, on_signal, base);
	if (term == NULL || intr == NULL || evsignal_add(term, NULL) < 0 ||
	    evsignal_add(intr, NULL) < 0) {
		fprintf(stderr, "baseline: cannot handle signals\n");
		return 1;
	}
	event_base_dispatch(base);
	fprintf(stderr, "baseline: %llu requests, %llu body bytes\n", requests, body_bytes);
	event_free(term);
	event_free(intr);
	evhttp_free(http);
	evbuffer_free(out);
	event_base_free(base);
	return 0;
}
