/*
 * rate.c - a constant-rate HTTP load driver for the benchmark (tests/bench).
 *
 *   rate -u http://HOST:PORT/PATH -f BODIES [-r REQ_PER_S] [-d SECONDS]
 *        [-c CONNECTIONS] [-o ACKED_FILE]
 *
 * wrk sends a request as soon as the previous one on its connection is
 * answered, so a slow server slows the load down and its stalls hide in
 * the numbers (coordinated omission).  This driver instead POSTs the lines
 * of BODIES (one form body per line, from gen; each sent once) on a fixed
 * schedule, request i at start + i / RATE, over CONNECTIONS keep-alive
 * connections (libevent's HTTP client, one event loop), each request to the
 * connection with the fewest outstanding.  A request's latency runs from its
 * SCHEDULED send time to its complete response, so time spent waiting for
 * a free connection or for a late timer counts.
 *
 * It prints a line "RATE key=value ..." (p50/p99/max latency in ms, the
 * count of 200s, of other statuses and of failures, and how late the sends
 * were) and, with -o, writes the msgId of every push answered 200, one per
 * line, so run.sh can check each is in trade_events.  Exit status 0 when
 * every request was answered (whatever the status), 1 otherwise.
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#define GRACE_S 10 /* how long to wait for answers after the last send */

struct conn {
	struct evhttp_connection *evcon;
	int outstanding;
};

struct pending {
	struct driver *drv;
	struct conn *conn;
	size_t index;
};

struct driver {
	struct event_base *base;
	struct event *tick;
	struct event *deadline;
	struct conn *conns;
	int n_conns;
	char host[256];
	int port;
	char path[1024];

	char **bodies;
	size_t *body_lens;
	size_t n_bodies;

	double rate;
	size_t total;  /* requests to send */
	size_t sent;   /* requests handed to a connection */
	size_t done;   /* answered or failed */
	size_t ok;     /* answered 200 */
	size_t non200; /* answered something else */
	size_t failed; /* no answer (connection error, timeout) */
	int64_t start_us;
	int64_t max_lag_us; /* how much later than scheduled a request was sent */
	double *latency_ms; /* per answered request, from the scheduled send; else -1 */
	FILE *acked;
};

static int64_t
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int64_t
scheduled_us(const struct driver *drv, size_t i)
{
	return drv->start_us + (int64_t)((double)i * 1e6 / drv->rate);
}

static void
usage(void)
{
	fprintf(stderr, "usage: rate -u http://HOST:PORT/PATH -f BODIES [-r REQ_PER_S] "
			"[-d SECONDS] [-c CONNECTIONS] [-o ACKED_FILE]\n");
	exit(2);
}

static void
parse_url(struct driver *drv, const char *url)
{
	const char *p, *colon, *slash;

	if (strncmp(url, "http://", 7) != 0)
		usage();
	p = url + 7;
	slash = strchr(p, '/');
	if (slash == NULL)
		slash = p + strlen(p);
	colon = memchr(p, ':', (size_t)(slash - p));
	if (colon == NULL || (size_t)(colon - p) >= sizeof(drv->host) ||
	    strlen(slash) >= sizeof(drv->path))
		usage();
	memcpy(drv->host, p, (size_t)(colon - p));
	drv->host[colon - p] = '\0';
	drv->port = atoi(colon + 1);
	if (drv->port <= 0 || drv->port > 65535)
		usage();
	snprintf(drv->path, sizeof(drv->path), "%s", *slash != '\0' ? slash : "/");
}

static void
load_bodies(struct driver *drv, const char *file, size_t want)
{
	FILE *f = fopen(file, "r");
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;

	if (f == NULL) {
		fprintf(stderr, "rate: %s: %s\n", file, strerror(errno));
		exit(1);
	}
	drv->bodies = calloc(want, sizeof(*drv->bodies));
	drv->body_lens = calloc(want, sizeof(*drv->body_lens));
	if (drv->bodies == NULL || drv->body_lens == NULL)
		exit(1);
	while (drv->n_bodies < want && (len = getline(&line, &cap, f)) > 0) {
		if (line[len - 1] == '\n')
			line[--len] = '\0';
		drv->bodies[drv->n_bodies] = strdup(line);
		if (drv->bodies[drv->n_bodies] == NULL)
			exit(1);
		drv->body_lens[drv->n_bodies++] = (size_t)len;
	}
	free(line);
	fclose(f);
	if (drv->n_bodies < want) {
		fprintf(stderr, "rate: %s has %zu bodies, %zu needed\n", file, drv->n_bodies, want);
		exit(1);
	}
}

/* The msgId in a body from gen ("...%22msgId%22%3A<digits>..."), or -1. */
static long long
body_msg_id(const char *body)
{
	static const char key[] = "%22msgId%22%3A";
	const char *p = strstr(body, key);

	return p != NULL ? strtoll(p + sizeof(key) - 1, NULL, 10) : -1;
}

static void
finish_one(struct driver *drv)
{
	if (++drv->done == drv->total)
		event_base_loopbreak(drv->base);
}

static void
on_response(struct evhttp_request *req, void *arg)
{
	struct pending *p = arg;
	struct driver *drv = p->drv;
	int status = req != NULL ? evhttp_request_get_response_code(req) : 0;

	if (status > 0)
		drv->latency_ms[p->index] =
		    (double)(now_us() - scheduled_us(drv, p->index)) / 1000.0;
	p->conn->outstanding--;
	if (status == HTTP_OK) {
		drv->ok++;
		if (drv->acked != NULL)
			fprintf(drv->acked, "%lld\n", body_msg_id(drv->bodies[p->index]));
	} else if (status > 0) {
		drv->non200++;
	} else {
		drv->failed++;
	}
	free(p);
	finish_one(drv);
}

static void
send_one(struct driver *drv, size_t i)
{
	struct conn *c = &drv->conns[0];
	struct pending *p;
	struct evhttp_request *req;
	struct evkeyvalq *headers;
	int64_t lag = now_us() - scheduled_us(drv, i);

	for (int k = 1; k < drv->n_conns; k++)
		if (drv->conns[k].outstanding < c->outstanding)
			c = &drv->conns[k];
	if (lag > drv->max_lag_us)
		drv->max_lag_us = lag;
	p = malloc(sizeof(*p));
	req = p != NULL ? evhttp_request_new(on_response, p) : NULL;
	if (req == NULL) {
		fprintf(stderr, "rate: out of memory\n");
		exit(1);
	}
	p->drv = drv;
	p->conn = c;
	p->index = i;
	headers = evhttp_request_get_output_headers(req);
	evhttp_add_header(headers, "Host", drv->host);
	evhttp_add_header(headers, "Content-Type", "application/x-www-form-urlencoded");
	evbuffer_add(evhttp_request_get_output_buffer(req), drv->bodies[i], drv->body_lens[i]);
	c->outstanding++;
	drv->sent++;
	/* On failure evhttp freed req without calling on_response(). */
	if (evhttp_make_request(c->evcon, req, EVHTTP_REQ_POST, drv->path) < 0) {
		c->outstanding--;
		drv->failed++;
		free(p);
		finish_one(drv);
	}
}

/* Send everything that is due, then sleep until the next one is. */
static void
on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct driver *drv = arg;
	int64_t now = now_us(), wait;
	struct timeval tv;

	(void)fd;
	(void)what;
	while (drv->sent < drv->total && scheduled_us(drv, drv->sent) <= now)
		send_one(drv, drv->sent);
	if (drv->sent == drv->total) {
		struct timeval grace = {GRACE_S, 0};

		evtimer_add(drv->deadline, &grace);
		return;
	}
	wait = scheduled_us(drv, drv->sent) - now_us();
	if (wait < 0)
		wait = 0;
	tv.tv_sec = (time_t)(wait / 1000000);
	tv.tv_usec = (suseconds_t)(wait % 1000000);
	evtimer_add(drv->tick, &tv);
}

static void
on_deadline(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	event_base_loopbreak(((struct driver *)arg)->base);
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double
percentile(const double *sorted, size_t n, double pct)
{
	size_t rank;

	if (n == 0)
		return 0;
	rank = (size_t)ceil(pct / 100.0 * (double)n);
	return sorted[rank > 0 ? rank - 1 : 0];
}

int
main(int argc, char **argv)
{
	struct driver drv = {.rate = 2000, .n_conns = 32};
	struct event_config *ecfg;
	const char *url = NULL, *file = NULL, *acked = NULL;
	double seconds = 10, *answered;
	size_t n_answered = 0;
	int opt;

	while ((opt = getopt(argc, argv, "u:f:r:d:c:o:")) != -1) {
		switch (opt) {
		case 'u':
			url = optarg;
			break;
		case 'f':
			file = optarg;
			break;
		case 'r':
			drv.rate = atof(optarg);
			break;
		case 'd':
			seconds = atof(optarg);
			break;
		case 'c':
			drv.n_conns = atoi(optarg);
			break;
		case 'o':
			acked = optarg;
			break;
		default:
			usage();
		}
	}
	if (url == NULL || file == NULL || optind != argc || drv.rate <= 0 || seconds <= 0 ||
	    drv.n_conns <= 0 || drv.n_conns > 10000)
		usage();
	parse_url(&drv, url);
	drv.total = (size_t)(drv.rate * seconds);
	if (drv.total == 0)
		usage();
	load_bodies(&drv, file, drv.total);
	drv.latency_ms = malloc(drv.total * sizeof(double));
	drv.conns = calloc((size_t)drv.n_conns, sizeof(*drv.conns));
	if (drv.latency_ms == NULL || drv.conns == NULL)
		return 1;
	for (size_t i = 0; i < drv.total; i++)
		drv.latency_ms[i] = -1;
	if (acked != NULL && (drv.acked = fopen(acked, "w")) == NULL) {
		fprintf(stderr, "rate: %s: %s\n", acked, strerror(errno));
		return 1;
	}

	/* Precise timers: the schedule is in microseconds, epoll's in ms. */
	ecfg = event_config_new();
	if (ecfg == NULL)
		return 1;
	event_config_set_flag(ecfg, EVENT_BASE_FLAG_PRECISE_TIMER);
	drv.base = event_base_new_with_config(ecfg);
	event_config_free(ecfg);
	if (drv.base == NULL)
		return 1;
	for (int k = 0; k < drv.n_conns; k++) {
		drv.conns[k].evcon =
		    evhttp_connection_base_new(drv.base, NULL, drv.host, (ev_uint16_t)drv.port);
		if (drv.conns[k].evcon == NULL)
			return 1;
		evhttp_connection_set_timeout(drv.conns[k].evcon, GRACE_S);
	}
	drv.tick = evtimer_new(drv.base, on_tick, &drv);
	drv.deadline = evtimer_new(drv.base, on_deadline, &drv);
	if (drv.tick == NULL || drv.deadline == NULL)
		return 1;
	drv.start_us = now_us();
	on_tick(-1, 0, &drv);
	event_base_dispatch(drv.base);

	/* Only answered requests have a latency; the rest are counted apart. */
	answered = malloc(drv.total * sizeof(double));
	if (answered == NULL)
		return 1;
	for (size_t i = 0; i < drv.total; i++)
		if (drv.latency_ms[i] >= 0)
			answered[n_answered++] = drv.latency_ms[i];
	qsort(answered, n_answered, sizeof(double), cmp_double);
	printf("RATE target_rps=%.0f seconds=%.1f connections=%d sent=%zu answered=%zu ok=%zu "
	       "non200=%zu failed=%zu unanswered=%zu p50_ms=%.2f p99_ms=%.2f max_ms=%.2f "
	       "max_send_lag_ms=%.2f\n",
	       drv.rate, seconds, drv.n_conns, drv.sent, drv.ok + drv.non200, drv.ok, drv.non200,
	       drv.failed, drv.total - drv.done, percentile(answered, n_answered, 50),
	       percentile(answered, n_answered, 99),
	       n_answered > 0 ? answered[n_answered - 1] : 0.0, (double)drv.max_lag_us / 1000.0);
	if (drv.acked != NULL && fclose(drv.acked) != 0) {
		fprintf(stderr, "rate: %s: write failed\n", acked);
		return 1;
	}
	for (int k = 0; k < drv.n_conns; k++)
		evhttp_connection_free(drv.conns[k].evcon);
	event_free(drv.tick);
	event_free(drv.deadline);
	event_base_free(drv.base);
	for (size_t i = 0; i < drv.n_bodies; i++)
		free(drv.bodies[i]);
	free(drv.bodies);
	free(drv.body_lens);
	free(drv.latency_ms);
	free(answered);
	return drv.done == drv.total && drv.failed == 0 ? 0 : 1;
}
