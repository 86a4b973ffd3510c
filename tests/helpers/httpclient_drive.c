/*
 * httpclient_drive.c - drives receiver/httpclient.c directly, for
 * tests/integration/test_httpclient.py.
 *
 *   httpclient_drive --url URL [--ca-file FILE] [--keep-alive] [--idle-ms N]
 *                    [--concurrency N] [--rps N] [--timeout-ms N] [--max-body N] < SCRIPT
 *
 * SCRIPT is JSON lines, one step each, run in order in one event loop:
 *   {"call": REQ}     send REQ and wait for its answer; the next step runs
 *                     inside that answer's callback, as a caller that sends
 *                     its next call from there would
 *   {"submit": REQ}   send REQ and go on at once
 *   {"wait": true}    wait until every call sent has been answered
 *   {"sleep_ms": N}   let the loop run N ms
 *   {"stats": true}   print {"stats": {...}}
 *   {"free": true}    httpclient_free() (pending calls end "shutdown"), from
 *                     a timer, never inside a callback; later calls refused
 * REQ is {"path": "/p", "body": "...", "content_type": "...", "headers":
 * [["name", "value"], ...]}, every member optional.
 *
 * Each answer is one JSON line on stdout: {"call": I (0-based, in script
 * order), "status": "ok"|"error"|"timeout"|"nomem"|"shutdown",
 * "http_status", "body", "error", "retry_after_s", "latency_ms"}; a call
 * httpclient_send() refused is {"call": I, "refused": "permanent"|...}.
 * At the end the stats line, httpclient_free(), exit 0.  Exit 2 on bad
 * usage or a bad script.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <jansson.h>

#include "httpclient.h"
#include "util.h"

enum action {
	ACT_RESUME, /* after a sleep: the next step */
	ACT_FREE,   /* httpclient_free(), then the next step */
	ACT_END,    /* the stats, httpclient_free(), leave the loop */
};

struct driver {
	struct event_base *base;
	struct httpclient *client;
	json_t *steps;
	size_t next;	     /* the next step */
	size_t sent;	     /* requests met so far: the next one's number */
	size_t outstanding;  /* sent, not answered */
	long waiting_for;    /* the call a "call" step waits for, or -1 */
	bool waiting_all;    /* a "wait" step */
	bool freeing;	     /* inside httpclient_free(): answers only printed */
	struct event *timer; /* does ACTION */
	enum action action;
};

struct pending {
	struct driver *d;
	size_t i;
};

static void run(struct driver *d);

static const char *
status_name(enum status st)
{
	switch (st) {
	case STATUS_OK:
		return "ok";
	case STATUS_TIMEOUT:
		return "timeout";
	case STATUS_NOMEM:
		return "nomem";
	case STATUS_SHUTDOWN:
		return "shutdown";
	case STATUS_PERMANENT:
		return "permanent";
	default:
		return "error";
	}
}

static void
print_json(json_t *j)
{
	char *s = json_dumps(j, JSON_COMPACT);

	if (s != NULL)
		printf("%s\n", s);
	fflush(stdout);
	free(s);
	json_decref(j);
}

static void
print_stats(struct driver *d)
{
	struct httpclient_stats s = {0};

	if (d->client != NULL)
		httpclient_stats(d->client, &s);
	print_json(json_pack("{s:{s:I,s:I,s:I,s:I,s:I}}", "stats", "opened",
			     (json_int_t)s.connections_opened, "reused",
			     (json_int_t)s.connections_reused, "resent", (json_int_t)s.resent,
			     "idle", (json_int_t)s.idle, "pending",
			     (json_int_t)(d->client != NULL ? httpclient_pending(d->client) : 0)));
}

static void
on_answer(void *arg, const struct httpclient_answer *a)
{
	struct pending *p = arg;
	struct driver *d = p->d;
	size_t i = p->i;
	json_t *body = a->body != NULL ? json_stringn(a->body, a->body_len) : json_null();

	free(p);
	print_json(json_pack("{s:I,s:s,s:i,s:o,s:s,s:i,s:I}", "call", (json_int_t)i, "status",
			     status_name(a->status), "http_status", a->http_status, "body",
			     body != NULL ? body : json_null(), "error", a->error, "retry_after_s",
			     a->retry_after_s, "latency_ms", (json_int_t)a->latency_ms));
	d->outstanding--;
	if (d->freeing)
		return;
	if (d->waiting_for == (long)i) {
		d->waiting_for = -1;
		run(d);
	} else if (d->waiting_all && d->outstanding == 0) {
		d->waiting_all = false;
		run(d);
	}
}

/* The script's ["name", "value"] pairs; NULL (and *n 0) for none. */
static struct httpclient_header *
headers_of(json_t *list, size_t *n)
{
	struct httpclient_header *h;
	size_t i;

	*n = json_array_size(list);
	if (*n == 0)
		return NULL;
	h = calloc(*n, sizeof(*h));
	if (h == NULL) {
		*n = 0;
		return NULL;
	}
	for (i = 0; i < *n; i++) {
		h[i].name = json_string_value(json_array_get(json_array_get(list, i), 0));
		h[i].value = json_string_value(json_array_get(json_array_get(list, i), 1));
	}
	return h;
}

static const char *
member(json_t *req, const char *key, const char *dflt)
{
	const char *s = json_string_value(json_object_get(req, key));

	return s != NULL ? s : dflt;
}

/* Send REQ; 0, or -1 when it was refused (and that printed). */
static int
send_req(struct driver *d, json_t *req)
{
	struct pending *p = malloc(sizeof(*p));
	struct httpclient_request r = {.path = member(req, "path", "/"),
				       .content_type =
					   member(req, "content_type", "application/json"),
				       .body = strdup(member(req, "body", ""))};
	enum status st = STATUS_NOMEM;

	r.body_len = r.body != NULL ? strlen(r.body) : 0;
	r.headers = headers_of(json_object_get(req, "headers"), &r.n_headers);
	if (p != NULL && r.body != NULL && d->client != NULL) {
		p->d = d;
		p->i = d->sent;
		st = httpclient_send(d->client, &r, on_answer, p);
	} else {
		free(r.body);
	}
	free((void *)r.headers);
	if (st != STATUS_OK) {
		print_json(json_pack("{s:I,s:s}", "call", (json_int_t)d->sent, "refused",
				     d->client == NULL ? "freed" : status_name(st)));
		free(p);
		d->sent++;
		return -1;
	}
	d->sent++;
	d->outstanding++;
	return 0;
}

static void
later(struct driver *d, enum action action, long ms)
{
	struct timeval tv = util_tv_ms(ms);

	d->action = action;
	evtimer_add(d->timer, &tv);
}

/* Steps from the next one until one has to wait. */
static void
run(struct driver *d)
{
	while (d->next < json_array_size(d->steps)) {
		json_t *step = json_array_get(d->steps, d->next++), *v;

		if ((v = json_object_get(step, "call")) != NULL) {
			long i = (long)d->sent;

			if (send_req(d, v) == 0) {
				d->waiting_for = i;
				return;
			}
		} else if ((v = json_object_get(step, "submit")) != NULL) {
			send_req(d, v);
		} else if (json_object_get(step, "wait") != NULL) {
			if (d->outstanding > 0) {
				d->waiting_all = true;
				return;
			}
		} else if ((v = json_object_get(step, "sleep_ms")) != NULL) {
			later(d, ACT_RESUME, (long)json_integer_value(v));
			return;
		} else if (json_object_get(step, "stats") != NULL) {
			print_stats(d);
		} else if (json_object_get(step, "free") != NULL) {
			later(d, ACT_FREE, 0);
			return;
		}
	}
	later(d, ACT_END, 0);
}

static void
free_client(struct driver *d)
{
	d->freeing = true;
	httpclient_free(d->client);
	d->client = NULL;
	d->freeing = false;
}

static void
on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct driver *d = arg;

	(void)fd;
	(void)what;
	switch (d->action) {
	case ACT_RESUME:
		run(d);
		break;
	case ACT_FREE:
		free_client(d);
		run(d);
		break;
	case ACT_END:
		print_stats(d);
		free_client(d);
		event_base_loopexit(d->base, NULL);
		break;
	}
}

static json_t *
read_script(FILE *in)
{
	json_t *steps = json_array();
	char *line = NULL;
	size_t cap = 0;

	while (steps != NULL && getline(&line, &cap, in) > 0) {
		json_error_t e;
		json_t *step;

		if (line[strspn(line, " \t\r\n")] == '\0')
			continue;
		step = json_loads(line, 0, &e);
		if (!json_is_object(step)) {
			fprintf(stderr, "httpclient_drive: bad step: %.200s\n", line);
			json_decref(step);
			json_decref(steps);
			steps = NULL;
			break;
		}
		json_array_append_new(steps, step);
	}
	free(line);
	return steps;
}

static int
parse_args(int argc, char **argv, struct httpclient_options *o)
{
	int i;

	for (i = 1; i < argc; i++) {
		const char *arg = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;

		if (strcmp(arg, "--keep-alive") == 0) {
			o->keep_alive = true;
			continue;
		}
		if (val == NULL)
			return -1;
		i++;
		if (strcmp(arg, "--url") == 0)
			o->url = val;
		else if (strcmp(arg, "--ca-file") == 0)
			o->ca_file = val;
		else if (strcmp(arg, "--idle-ms") == 0)
			o->idle_ms = atoi(val);
		else if (strcmp(arg, "--concurrency") == 0)
			o->max_concurrency = atoi(val);
		else if (strcmp(arg, "--rps") == 0)
			o->max_rps = atoi(val);
		else if (strcmp(arg, "--timeout-ms") == 0)
			o->timeout_ms = atoi(val);
		else if (strcmp(arg, "--max-body") == 0)
			o->max_body_bytes = (size_t)atol(val);
		else
			return -1;
	}
	return o->url != NULL ? 0 : -1;
}

int
main(int argc, char **argv)
{
	struct httpclient_options o = {.ca_file = "",
				       .url_setting = "--url",
				       .ca_setting = "--ca-file",
				       .timeout_ms = 5000,
				       .max_concurrency = 4,
				       .max_body_bytes = 1 << 20};
	struct driver d = {.waiting_for = -1};
	char err[256];

	signal(SIGPIPE, SIG_IGN); /* a peer that hangs up is an error, not our death */
	if (parse_args(argc, argv, &o) < 0 || (d.steps = read_script(stdin)) == NULL) {
		fprintf(stderr, "usage: httpclient_drive --url URL [--ca-file F] [--keep-alive] "
				"[--idle-ms N] [--concurrency N] [--rps N] [--timeout-ms N] "
				"[--max-body N] < SCRIPT\n");
		return 2;
	}
	d.base = event_base_new();
	d.timer = d.base != NULL ? evtimer_new(d.base, on_timer, &d) : NULL;
	d.client = d.timer != NULL ? httpclient_new(d.base, &o, err, sizeof(err)) : NULL;
	if (d.client == NULL) {
		fprintf(stderr, "httpclient_drive: %s\n", d.timer != NULL ? err : "out of memory");
		return 2;
	}
	run(&d);
	event_base_dispatch(d.base);
	event_free(d.timer);
	event_base_free(d.base);
	json_decref(d.steps);
	return 0;
}
