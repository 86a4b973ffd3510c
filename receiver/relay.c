/*
 * relay.c - claim outbox deliveries and send them (see relay.h).
 *
 * Each [[subscriber]] has its own HTTP client (its own keep-alive
 * connections, its own max_concurrency) and claims for itself, so a
 * subscriber that hangs or fails only ever holds its own slots.  All
 * database steps share one connection of the relay's own, through a dbq.
 *
 * A delivery's life: claimed (receiver_relay_claim: due, the subscriber
 * enabled, no earlier delivery of the same order still pending for it;
 * a lease so no other receiver takes it) -> POST, signed at this attempt's
 * time with every secret of the subscriber -> one of
 * receiver_relay_delivered (2xx), receiver_relay_gone (410: the subscriber
 * is disabled until `receiver relay --enable`), receiver_relay_failed
 * (due again after a backoff - at least the Retry-After of a 429 or 503 -
 * or dead after max_attempts).  If this process dies on the way, the lease
 * runs out and the delivery is claimed again: the consumer may see an
 * event twice, always with the same webhook-id.
 *
 * Woken by NOTIFY relay_deliveries (every commit that writes deliveries
 * sends one) and by a timer, for retries coming due.
 */
#include <inttypes.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dbq.h"
#include "httpclient.h"
#include "log.h"
#include "metrics.h"
#include "relay.h"
#include "util.h"
#include "webhook.h"

#define TICK_MS		 1000  /* look for due deliveries at least this often */
#define COUNT_S		 5     /* refresh the pending and dead gauges */
#define LEASE_MARGIN_MS	 10000 /* beyond the request's own timeout */
#define MAX_ANSWER_BYTES 65536 /* a consumer's answer is read, not kept */
#define MAX_SECRETS	 9     /* secret + previous_secrets signed with */
#define TEST_BODY_MAX	 512   /* relay.test: a timestamp and a name */

#define SQL_SYNC      "SELECT receiver_relay_sync_subscriber($1, $2::text[], $3::text[])"
#define SQL_CLAIM     "SELECT id, event_id, attempts, body FROM receiver_relay_claim($1, $2, $3)"
#define SQL_DELIVERED "SELECT receiver_relay_delivered($1, $2, $3)"
#define SQL_FAILED    "SELECT receiver_relay_failed($1, $2, $3, $4, $5, $6)"
#define SQL_GONE      "SELECT receiver_relay_gone($1, $2, $3, $4)"
#define SQL_COUNTS                                                                                 \
	"SELECT s.name, s.enabled, count(d.id) FILTER (WHERE d.state = 'pending'), "               \
	"count(d.id) FILTER (WHERE d.state = 'dead') FROM relay_subscribers s "                    \
	"LEFT JOIN relay_deliveries d ON d.subscriber = s.name GROUP BY s.name, s.enabled"

struct relay;

/* One [[subscriber]]: its client, its slots and its counts. */
struct sub {
	struct relay *r;
	const struct subscriber_config *cfg;
	struct httpclient *client;
	size_t busy; /* deliveries claimed and not yet recorded */
	bool claiming;
	bool known; /* the gauges below were read */
	bool enabled;
	int64_t pending, dead;
	uint64_t delivered, failed, gone, died;
	struct histogram latency_ms;
};

/* One claimed delivery, from its claim to its recorded outcome. */
struct attempt {
	struct sub *s;
	char id[24];
	char attempts[16];
	char event_id[WEBHOOK_ID_MAX + 1];
	char *body;
	size_t body_len;
	int64_t started_us;
};

struct relay {
	const struct config *cfg;
	struct dbq *q;
	struct sub *subs;
	size_t n_subs;
	struct event *ev_tick;
	bool background;
	bool counting;
	int64_t next_count;
};

static void on_db_up(void *arg);
static void on_notify(void *arg, const char *channel, const char *payload);
static void on_tick(evutil_socket_t fd, short what, void *arg);
static void sync_subscribers(struct relay *r);
static void synced(void *owner, void *ctx, enum status st, const PGresult *res, const char *error);
static void claim_all(struct relay *r);
static void claim(struct sub *s);
static void claimed(void *owner, void *ctx, enum status st, const PGresult *res, const char *error);
static void send_attempt(struct attempt *at);
static void post(struct httpclient *client, struct attempt *at, const char *ts,
		 const char *signature);
static void answered(void *arg, const struct httpclient_answer *a);
static void record_failure(struct attempt *at, const struct httpclient_answer *a);
static void recorded(void *owner, void *ctx, enum status st, const PGresult *res,
		     const char *error);
static void attempt_end(struct attempt *at);
static void count(struct relay *r);
static void counted(void *owner, void *ctx, enum status st, const PGresult *res, const char *error);
static void text_array(char *out, size_t cap, char *const *items, size_t n);
static struct httpclient *client_new(struct event_base *base, const struct config *cfg,
				     const struct subscriber_config *sc, char *err, size_t errlen);
static int sign(const struct subscriber_config *sc, const char *id, long long ts, const char *body,
		size_t len, char *out, size_t cap);
static void test_answered(void *arg, const struct httpclient_answer *a);

struct relay *
relay_new(struct event_base *base, const struct config *cfg, int schema_version, char *err,
	  size_t errlen)
{
	static const struct db_handlers handlers = {on_db_up, NULL, on_notify};
	struct relay *r = calloc(1, sizeof(*r));

	if (r == NULL || (r->subs = calloc(cfg->n_subscribers + 1, sizeof(*r->subs))) == NULL) {
		free(r);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	r->cfg = cfg;
	for (size_t i = 0; i < cfg->n_subscribers; i++) {
		struct sub *s = &r->subs[r->n_subs];

		s->r = r;
		s->cfg = &cfg->subscribers[i];
		histogram_init(&s->latency_ms, metrics_latency_ms_bounds, metrics_latency_ms_n);
		s->client = client_new(base, cfg, s->cfg, err, errlen);
		if (s->client == NULL) {
			relay_free(r);
			return NULL;
		}
		r->n_subs++;
	}
	r->q = dbq_new(base, &cfg->database, schema_version, "relay", &handlers, r);
	r->ev_tick = event_new(base, -1, EV_PERSIST, on_tick, r);
	if (r->q == NULL || r->ev_tick == NULL) {
		snprintf(err, errlen, "out of memory");
		relay_free(r);
		return NULL;
	}
	return r;
}

void
relay_start(struct relay *r)
{
	struct timeval tick = util_tv_ms(TICK_MS);

	r->background = true;
	dbq_listen(r->q, "relay_deliveries");
	dbq_start(r->q);
	event_add(r->ev_tick, &tick);
}

void
relay_stop(struct relay *r)
{
	r->background = false;
	event_del(r->ev_tick);
}

void
relay_free(struct relay *r)
{
	if (r == NULL)
		return;
	r->background = false;
	/* Abandoned requests end with STATUS_SHUTDOWN: their leases run out. */
	for (size_t i = 0; i < r->n_subs; i++)
		httpclient_free(r->subs[i].client);
	dbq_free(r->q);
	if (r->ev_tick != NULL)
		event_free(r->ev_tick);
	free(r->subs);
	free(r);
}

void
relay_metrics(const struct relay *r, struct evbuffer *out)
{
	static const char *const outcomes[] = {"delivered", "failed", "gone", "dead"};
	char name[96], labels[192];

	metrics_family(out, "receiver_relay_deliveries_total", "counter",
		       "Webhook attempts by subscriber and outcome, in this process.");
	for (size_t i = 0; i < r->n_subs; i++) {
		const struct sub *s = &r->subs[i];
		const uint64_t n[] = {s->delivered, s->failed, s->gone, s->died};

		metrics_label(name, sizeof(name), s->cfg->name);
		for (size_t k = 0; k < 4; k++) {
			snprintf(labels, sizeof(labels), "subscriber=\"%s\",outcome=\"%s\"", name,
				 outcomes[k]);
			metrics_value(out, "receiver_relay_deliveries_total", labels, (double)n[k]);
		}
	}
	metrics_family(out, "receiver_relay_request_milliseconds", "histogram",
		       "From sending a webhook to its answer, by subscriber.");
	for (size_t i = 0; i < r->n_subs; i++) {
		metrics_label(name, sizeof(name), r->subs[i].cfg->name);
		snprintf(labels, sizeof(labels), "subscriber=\"%s\"", name);
		metrics_histogram(out, "receiver_relay_request_milliseconds", labels,
				  &r->subs[i].latency_ms);
	}
	metrics_family(out, "receiver_relay_deliveries", "gauge",
		       "Deliveries in the database by subscriber and state.");
	for (size_t i = 0; i < r->n_subs; i++) {
		const struct sub *s = &r->subs[i];

		if (!s->known)
			continue;
		metrics_label(name, sizeof(name), s->cfg->name);
		snprintf(labels, sizeof(labels), "subscriber=\"%s\",state=\"pending\"", name);
		metrics_value(out, "receiver_relay_deliveries", labels, (double)s->pending);
		snprintf(labels, sizeof(labels), "subscriber=\"%s\",state=\"dead\"", name);
		metrics_value(out, "receiver_relay_deliveries", labels, (double)s->dead);
	}
	metrics_family(out, "receiver_relay_subscriber_disabled", "gauge",
		       "1 for a subscriber disabled by a 410 until `receiver relay --enable`.");
	for (size_t i = 0; i < r->n_subs; i++) {
		if (!r->subs[i].known)
			continue;
		metrics_label(name, sizeof(name), r->subs[i].cfg->name);
		snprintf(labels, sizeof(labels), "subscriber=\"%s\"", name);
		metrics_value(out, "receiver_relay_subscriber_disabled", labels,
			      r->subs[i].enabled ? 0 : 1);
	}
}

/* --- the database ------------------------------------------------------- */

/* Every (re)connect: the subscribers as this configuration has them. */
static void
on_db_up(void *arg)
{
	sync_subscribers(arg);
}

static void
on_notify(void *arg, const char *channel, const char *payload)
{
	(void)channel;
	(void)payload;
	claim_all(arg);
}

static void
on_tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	claim_all(arg);
	count(arg);
}

static void
sync_subscribers(struct relay *r)
{
	for (size_t i = 0; i < r->n_subs; i++) {
		const struct subscriber_config *sc = r->subs[i].cfg;
		char events[512], apps[1024];

		text_array(events, sizeof(events), sc->events, sc->n_events);
		text_array(apps, sizeof(apps), sc->apps, sc->n_apps);
		dbq_add(r->q, SQL_SYNC, synced, &r->subs[i], 3, sc->name, events, apps);
	}
}

static void
synced(void *owner, void *ctx, enum status st, const PGresult *res, const char *error)
{
	struct sub *s = ctx;

	(void)owner;
	(void)res;
	if (st != STATUS_OK) {
		log_event(LOG_WARN, "relay_sync_failed", "subscriber %s: %s", s->cfg->name, error);
		return;
	}
	claim(s);
}

/* '{a,b}': names and event types hold no quote, comma or brace (config.c). */
static void
text_array(char *out, size_t cap, char *const *items, size_t n)
{
	size_t used = (size_t)snprintf(out, cap, "{");

	for (size_t i = 0; i < n && used < cap; i++)
		used +=
		    (size_t)snprintf(out + used, cap - used, "%s%s", i > 0 ? "," : "", items[i]);
	if (used < cap)
		snprintf(out + used, cap - used, "}");
}

/* --- claiming ----------------------------------------------------------- */

static void
claim_all(struct relay *r)
{
	for (size_t i = 0; i < r->n_subs; i++)
		claim(&r->subs[i]);
}

/* As many due deliveries as this subscriber has free slots. */
static void
claim(struct sub *s)
{
	size_t slots = (size_t)s->cfg->max_concurrency;
	char limit[24], lease[24];

	if (!s->r->background || s->claiming || s->busy >= slots || !dbq_up(s->r->q))
		return;
	snprintf(limit, sizeof(limit), "%zu", slots - s->busy);
	snprintf(lease, sizeof(lease), "%d", s->cfg->timeout_ms + LEASE_MARGIN_MS);
	s->claiming = true;
	dbq_add(s->r->q, SQL_CLAIM, claimed, s, 3, s->cfg->name, limit, lease);
}

static void
claimed(void *owner, void *ctx, enum status st, const PGresult *res, const char *error)
{
	struct sub *s = ctx;
	int n;

	(void)owner;
	s->claiming = false;
	if (st != STATUS_OK) {
		if (st != STATUS_SHUTDOWN)
			log_event(LOG_WARN, "relay_claim_failed", "subscriber %s: %s", s->cfg->name,
				  error);
		return;
	}
	n = PQntuples(res);
	for (int i = 0; i < n; i++) {
		struct attempt *at = calloc(1, sizeof(*at));
		const char *body = PQgetvalue(res, i, 3);

		if (at == NULL || (at->body = strdup(body)) == NULL) {
			free(at);
			break; /* the lease brings it back */
		}
		at->s = s;
		at->body_len = strlen(body);
		snprintf(at->id, sizeof(at->id), "%s", PQgetvalue(res, i, 0));
		snprintf(at->event_id, sizeof(at->event_id), "%s", PQgetvalue(res, i, 1));
		snprintf(at->attempts, sizeof(at->attempts), "%s", PQgetvalue(res, i, 2));
		s->busy++;
		send_attempt(at);
	}
	/* A full claim may mean more are due. */
	if (n > 0)
		claim(s);
}

/* --- sending ------------------------------------------------------------ */

/* Signed now, with every secret the subscriber has (a rotation under way). */
static void
send_attempt(struct attempt *at)
{
	char ts[24], signature[WEBHOOK_SIGNATURES_CAP(MAX_SECRETS)];
	long long now = (long long)(util_wall_us() / 1000000);

	snprintf(ts, sizeof(ts), "%lld", now);
	if (sign(at->s->cfg, at->event_id, now, at->body, at->body_len, signature,
		 sizeof(signature)) < 0) {
		const struct httpclient_answer a = {.status = STATUS_ERROR,
						    .error = "cannot sign the event"};

		answered(at, &a);
		return;
	}
	post(at->s->client, at, ts, signature);
}

/* The signed request, through the subscriber's client; ANSWERED hears of it. */
static void
post(struct httpclient *client, struct attempt *at, const char *ts, const char *signature)
{
	const struct httpclient_header headers[] = {{"webhook-id", at->event_id},
						    {"webhook-timestamp", ts},
						    {"webhook-signature", signature}};
	const struct httpclient_request rq = {.path = "",
					      .content_type = "application/json",
					      .body = at->body,
					      .body_len = at->body_len,
					      .headers = headers,
					      .n_headers = 3};
	enum status st;

	at->body = NULL; /* the client takes it */
	at->started_us = util_mono_us();
	st = httpclient_send(client, &rq, answered, at);
	if (st != STATUS_OK) {
		const struct httpclient_answer a = {.status = st,
						    .error = "cannot send the request"};

		answered(at, &a);
	}
}

static void
answered(void *arg, const struct httpclient_answer *a)
{
	struct attempt *at = arg;
	struct sub *s = at->s;
	char status[16];

	if (a->status == STATUS_SHUTDOWN) {
		attempt_end(at); /* not a failure: the lease brings it back */
		return;
	}
	if (at->started_us != 0)
		histogram_observe(&s->latency_ms,
				  (double)(util_mono_us() - at->started_us) / 1000.0);
	snprintf(status, sizeof(status), "%d", a->http_status);
	if (a->status == STATUS_OK && a->http_status >= 200 && a->http_status < 300) {
		s->delivered++;
		dbq_add(s->r->q, SQL_DELIVERED, recorded, at, 3, at->id, at->attempts, status);
		return;
	}
	if (a->status == STATUS_OK && a->http_status == 410) {
		s->gone++;
		log_event(LOG_WARN, "relay_subscriber_gone",
			  "subscriber %s answered 410 Gone: disabled until `receiver relay "
			  "--enable %s`",
			  s->cfg->name, s->cfg->name);
		dbq_add(s->r->q, SQL_GONE, recorded, at, 4, at->id, at->attempts, s->cfg->name,
			"410 Gone");
		return;
	}
	record_failure(at, a);
}

/* Due again after a backoff (at least a Retry-After), or dead. */
static void
record_failure(struct attempt *at, const struct httpclient_answer *a)
{
	const struct relay_config *rc = &at->s->r->cfg->relay;
	long retry = util_backoff_ms(rc->backoff_min_ms, rc->backoff_max_ms, atoi(at->attempts));
	char status[16], why[300], wait[24], max[16];
	bool answered_http = a->status == STATUS_OK;

	if (answered_http && (a->http_status == 429 || a->http_status == 503) &&
	    a->retry_after_s >= 0 && (long)a->retry_after_s * 1000 > retry)
		retry = (long)a->retry_after_s * 1000;
	snprintf(status, sizeof(status), "%d", a->http_status);
	if (answered_http)
		snprintf(why, sizeof(why), "HTTP %d", a->http_status);
	else
		snprintf(why, sizeof(why), "%s", a->error);
	snprintf(wait, sizeof(wait), "%ld", retry);
	snprintf(max, sizeof(max), "%d", rc->max_attempts);
	at->s->failed++;
	log_event(LOG_WARN, "relay_failed", "subscriber %s, event %s (attempt %s): %s",
		  at->s->cfg->name, at->event_id, at->attempts, why);
	dbq_add(at->s->r->q, SQL_FAILED, recorded, at, 6, at->id, at->attempts,
		answered_http ? status : NULL, why, wait, max);
}

static void
recorded(void *owner, void *ctx, enum status st, const PGresult *res, const char *error)
{
	struct attempt *at = ctx;

	(void)owner;
	if (st == STATUS_OK && PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "dead") == 0) {
		at->s->died++;
		log_event(LOG_ERROR, "relay_dead",
			  "subscriber %s, event %s: gave up after %s attempts", at->s->cfg->name,
			  at->event_id, at->attempts);
	} else if (st != STATUS_OK && st != STATUS_SHUTDOWN) {
		log_event(LOG_WARN, "relay_outcome_not_recorded",
			  "subscriber %s, event %s: %s (its lease expires)", at->s->cfg->name,
			  at->event_id, error);
	}
	attempt_end(at);
}

static void
attempt_end(struct attempt *at)
{
	struct sub *s = at->s;

	s->busy--;
	free(at->body);
	free(at);
	claim(s);
}

/* --- gauges ------------------------------------------------------------- */

static void
count(struct relay *r)
{
	int64_t now = util_mono_us();

	if (r->counting || now < r->next_count || !dbq_up(r->q))
		return;
	r->next_count = now + COUNT_S * 1000000LL;
	r->counting = true;
	dbq_add(r->q, SQL_COUNTS, counted, NULL, 0);
}

static void
counted(void *owner, void *ctx, enum status st, const PGresult *res, const char *error)
{
	struct relay *r = owner;

	(void)ctx;
	(void)error;
	r->counting = false;
	if (st != STATUS_OK)
		return;
	for (int i = 0; i < PQntuples(res); i++) {
		for (size_t k = 0; k < r->n_subs; k++) {
			struct sub *s = &r->subs[k];

			if (strcmp(s->cfg->name, PQgetvalue(res, i, 0)) != 0)
				continue;
			s->known = true;
			s->enabled = strcmp(PQgetvalue(res, i, 1), "t") == 0;
			s->pending = strtoll(PQgetvalue(res, i, 2), NULL, 10);
			s->dead = strtoll(PQgetvalue(res, i, 3), NULL, 10);
		}
	}
}

/* --- shared by the relay and `relay --test` -------------------------------- */

/* A keep-alive client for SC: no rate limit, answers read and dropped. */
static struct httpclient *
client_new(struct event_base *base, const struct config *cfg, const struct subscriber_config *sc,
	   char *err, size_t errlen)
{
	char setting[96];
	struct httpclient_options o = {.url = sc->url,
				       .ca_file = "",
				       .url_setting = setting,
				       .ca_setting = setting,
				       .timeout_ms = sc->timeout_ms,
				       .max_concurrency = sc->max_concurrency,
				       .max_rps = 0,
				       .max_body_bytes = MAX_ANSWER_BYTES,
				       .keep_alive = true};

	snprintf(setting, sizeof(setting), "subscriber[%zu].url",
		 (size_t)(sc - cfg->subscribers) + 1);
	return httpclient_new(base, &o, err, errlen);
}

/* The webhook-signature value: one signature per secret of SC. */
static int
sign(const struct subscriber_config *sc, const char *id, long long ts, const char *body, size_t len,
     char *out, size_t cap)
{
	const char *secrets[MAX_SECRETS];
	struct webhook_key *keys;
	const char *why = NULL;
	size_t n = 0, bad = 0;
	int rc;

	secrets[n++] = sc->secret;
	for (size_t i = 0; i < sc->n_previous_secrets && n < MAX_SECRETS; i++)
		secrets[n++] = sc->previous_secrets[i];
	keys = webhook_keys_new(secrets, n, &bad, &why);
	if (keys == NULL) {
		log_event(LOG_ERROR, "relay_secret_invalid", "subscriber %s: secret %zu: %s",
			  sc->name, bad + 1, why != NULL ? why : "invalid");
		return -1;
	}
	rc = webhook_signature(keys, n, id, ts, body, len, out, cap);
	webhook_keys_free(keys, n);
	return rc;
}

struct test_call {
	struct event_base *base;
	int http_status;
	char error[256];
};

int
relay_test(const struct config *cfg, const struct subscriber_config *sc)
{
	struct test_call t = {.base = event_base_new()};
	struct httpclient *client = NULL;
	char err[256] = "out of memory", id[48], ts[24], when[40], *body = NULL;
	char signature[WEBHOOK_SIGNATURES_CAP(MAX_SECRETS)];
	int64_t wall = util_wall_us();
	time_t secs = (time_t)(wall / 1000000);
	struct tm tm;
	int n;

	gmtime_r(&secs, &tm);
	n = (int)strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(when + n, sizeof(when) - (size_t)n, ".%06lldZ", (long long)(wall % 1000000));
	snprintf(id, sizeof(id), "evt_test_%lld", (long long)wall);
	snprintf(ts, sizeof(ts), "%lld", (long long)secs);
	if (t.base != NULL)
		client = client_new(t.base, cfg, sc, err, sizeof(err));
	if (client != NULL && (body = malloc(TEST_BODY_MAX)) != NULL &&
	    snprintf(
		body, TEST_BODY_MAX,
		"{\"type\":\"relay.test\",\"timestamp\":\"%s\",\"data\":{\"subscriber\":\"%s\"}}",
		when, sc->name) < TEST_BODY_MAX &&
	    sign(sc, id, (long long)secs, body, strlen(body), signature, sizeof(signature)) == 0) {
		const struct httpclient_header headers[] = {{"webhook-id", id},
							    {"webhook-timestamp", ts},
							    {"webhook-signature", signature}};
		const struct httpclient_request rq = {.path = "",
						      .content_type = "application/json",
						      .body = body,
						      .body_len = strlen(body),
						      .headers = headers,
						      .n_headers = 3};

		body = NULL;
		if (httpclient_send(client, &rq, test_answered, &t) == STATUS_OK)
			event_base_dispatch(t.base);
		else
			snprintf(t.error, sizeof(t.error), "cannot send the request");
	} else if (client != NULL) {
		snprintf(t.error, sizeof(t.error), "cannot sign the event");
	} else {
		snprintf(t.error, sizeof(t.error), "%s", err);
	}
	free(body);
	httpclient_free(client);
	if (t.base != NULL)
		event_base_free(t.base);
	if (t.http_status != 0)
		printf("subscriber %s answered HTTP %d to relay.test %s\n", sc->name, t.http_status,
		       id);
	else
		fprintf(stderr, "receiver: relay: subscriber %s: %s\n", sc->name, t.error);
	return t.http_status >= 200 && t.http_status < 300 ? 0 : 1;
}

static void
test_answered(void *arg, const struct httpclient_answer *a)
{
	struct test_call *t = arg;

	t->http_status = a->status == STATUS_OK ? a->http_status : 0;
	snprintf(t->error, sizeof(t->error), "%s", a->error);
	event_base_loopbreak(t->base);
}
