/*
 * store.c - group commit of deliveries (see store.h).
 *
 * Deliveries queue up while a batch is in flight and all go in the next
 * one, up to [database] max_batch: an idle receiver commits a push at once
 * and a burst shares commits.  A batch is a single statement,
 * SELECT receiver_ingest($1), whose one parameter is a JSON array of the
 * batch's deliveries (sql/001_init.sql turns it into rows).  A statement
 * outside BEGIN is its own transaction, and db.c reports it finished only
 * after the server's ReadyForQuery, which follows the commit: that is the
 * moment the batch's pushes may hear 200.
 *
 * The connection itself (non-blocking libpq, reconnecting, schema check)
 * is db.c's.  When it is down the store refuses work at once, so clients
 * hear 503 instead of waiting.
 *
 * One delivery the server refuses (a value some constraint or index cannot
 * take) would fail every batch it is in, and the pusher's retries would
 * poison the batches after.  So a batch the server refused (STATUS_ERROR,
 * not a lost connection) is not answered: its deliveries go back to the
 * head of the queue as "suspects", and are sent again in batches of half
 * the size, suspects only, the size doubling again after each success; a
 * suspect that fails alone is the one at fault and hears 503 alone, the
 * others commit and hear 200.  One culprit among N costs about 2 log2(N)
 * statements.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "db.h"
#include "log.h"
#include "metrics.h"
#include "store.h"
#include "util.h"

#define INGEST_SQL	"SELECT receiver_ingest($1::jsonb)"
#define MAX_BATCH_BYTES (64 * 1024 * 1024)

TAILQ_HEAD(delivery_list, delivery);

struct store_stats {
	uint64_t batches;
	uint64_t batches_failed;
	uint64_t committed;	     /* deliveries in committed batches */
	uint64_t refused;	     /* submit refused: unavailable or full */
	uint64_t audits_dropped;     /* rejected-request rows not written */
	uint64_t isolated;	     /* deliveries refused alone: answered 503 */
	struct histogram batch_size; /* deliveries per transaction */
	struct histogram commit_ms;  /* sending a batch to its end */
};

struct store {
	struct db *db;
	const struct database_config *cfg;

	struct delivery_list queue; /* waiting for the next batch */
	size_t queued;
	size_t max_pending;
	struct delivery_list batch; /* in the transaction in flight */
	size_t batch_len;
	struct evbuffer *json; /* the batch parameter, reused */
	int64_t batch_sent_us;
	size_t suspects; /* at the queue's head: from batches the server refused */
	size_t split;	 /* while there are suspects: the largest batch of them */

	bool draining;
	void (*drained_cb)(void *);
	void *drained_arg;

	struct store_stats stats;
};

static bool enqueue(struct store *s, struct delivery *d);
static void on_db_up(void *arg);
static void on_db_down(void *arg);
static void kick(struct store *s);
static void send_batch(struct store *s);
static void batch_done(void *arg, enum status st, const PGresult *res, const char *error);
static void fail_list(struct delivery_list *list, size_t *len);
static void fail_queue(struct store *s);
static void requeue(struct store *s, struct delivery_list *list, size_t n);
static void check_drained(struct store *s);
static void put_delivery(struct evbuffer *out, const struct delivery *d);
static void put_event(struct evbuffer *out, const struct delivery *d);
static void put_string(struct evbuffer *out, const char *key, const char *value);
static void put_hex(struct evbuffer *out, const unsigned char *p, size_t len);

struct store *
store_new(struct event_base *base, const struct database_config *cfg, size_t max_pending,
	  int schema_version)
{
	static const struct db_handlers handlers = {on_db_up, on_db_down, NULL};
	struct store *s = calloc(1, sizeof(*s));

	if (s == NULL)
		return NULL;
	s->cfg = cfg;
	s->max_pending = max_pending;
	TAILQ_INIT(&s->queue);
	TAILQ_INIT(&s->batch);
	histogram_init(&s->stats.batch_size, metrics_batch_size_bounds, metrics_batch_size_n);
	histogram_init(&s->stats.commit_ms, metrics_latency_ms_bounds, metrics_latency_ms_n);
	s->json = evbuffer_new();
	s->db = db_new(base, cfg, schema_version, "ingest", &handlers, s);
	if (s->json == NULL || s->db == NULL) {
		store_free(s);
		return NULL;
	}
	return s;
}

void
store_start(struct store *s)
{
	db_start(s->db);
}

int
store_submit(struct store *s, struct delivery *d)
{
	if (!enqueue(s, d)) {
		s->stats.refused++;
		return -1;
	}
	return 0;
}

void
store_audit(struct store *s, struct delivery *d)
{
	if (!enqueue(s, d)) {
		s->stats.audits_dropped++;
		d->done(d, 0);
	}
}

bool
store_ready(const struct store *s)
{
	return !s->draining && db_up(s->db);
}

const char *
store_state_text(const struct store *s)
{
	return s->draining ? "shutting down" : db_state_text(s->db);
}

void
store_metrics(const struct store *store, struct evbuffer *out)
{
	const struct store_stats *s = &store->stats;
	const struct metrics_sample batches[] = {
	    {"result=\"committed\"", (double)(s->batches - s->batches_failed)},
	    {"result=\"failed\"", (double)s->batches_failed}};

	metrics_single(out, "receiver_database_up", "gauge",
		       "1 when the ingest connection is up and the schema current.",
		       store_ready(store) ? 1 : 0);
	metrics_single(out, "receiver_queue_depth", "gauge", "Pushes waiting for a commit.",
		       (double)store->queued);
	metrics_samples(out, "receiver_batches_total", "counter", "Ingest transactions, by result.",
			batches, 2);
	metrics_single(out, "receiver_committed_deliveries_total", "counter",
		       "Deliveries written in committed transactions.", (double)s->committed);
	metrics_single(out, "receiver_refused_total", "counter",
		       "Pushes answered 503: database away or queue full.", (double)s->refused);
	metrics_single(out, "receiver_deliveries_isolated_total", "counter",
		       "Pushes the database refused on their own (found by splitting their batch): "
		       "answered 503 alone.",
		       (double)s->isolated);
	metrics_single(out, "receiver_audits_dropped_total", "counter",
		       "Audit rows of rejected requests that could not be written.",
		       (double)s->audits_dropped);
	metrics_family(out, "receiver_batch_size", "histogram", "Deliveries per transaction.");
	metrics_histogram(out, "receiver_batch_size", NULL, &s->batch_size);
	metrics_family(out, "receiver_commit_milliseconds", "histogram",
		       "From sending a batch to its commit.");
	metrics_histogram(out, "receiver_commit_milliseconds", NULL, &s->commit_ms);
}

void
store_drain(struct store *s, void (*cb)(void *), void *arg)
{
	s->draining = true;
	s->drained_cb = cb;
	s->drained_arg = arg;
	if (!db_up(s->db))
		fail_queue(s);
	check_drained(s);
}

void
store_free(struct store *s)
{
	if (s == NULL)
		return;
	/* Fails the batch in flight through batch_done(). */
	db_free(s->db);
	s->db = NULL;
	fail_list(&s->batch, &s->batch_len);
	fail_queue(s);
	if (s->json != NULL)
		evbuffer_free(s->json);
	free(s);
}

/* Queue D unless the database is away or the queue is full. */
static bool
enqueue(struct store *s, struct delivery *d)
{
	if (!store_ready(s) || s->queued >= s->max_pending)
		return false;
	TAILQ_INSERT_TAIL(&s->queue, d, link);
	s->queued++;
	kick(s);
	return true;
}

static void
on_db_up(void *arg)
{
	kick(arg);
}

/* Nothing waits for a database that is away: every queued push hears 503. */
static void
on_db_down(void *arg)
{
	struct store *s = arg;

	fail_queue(s);
	check_drained(s);
}

/* --- batches ------------------------------------------------------------ */

static void
kick(struct store *s)
{
	if (s->queued > 0 && s->batch_len == 0 && db_idle(s->db))
		send_batch(s);
	else
		check_drained(s);
}

static void
send_batch(struct store *s)
{
	size_t max = s->suspects == 0 ? (size_t)s->cfg->max_batch
				      : (s->split < s->suspects ? s->split : s->suspects);
	const char *param;
	struct delivery *d;

	evbuffer_drain(s->json, evbuffer_get_length(s->json));
	evbuffer_add(s->json, "[", 1);
	/* PostgreSQL refuses a jsonb array over 256 MiB: stay well below. */
	while (s->batch_len < max && evbuffer_get_length(s->json) < MAX_BATCH_BYTES &&
	       (d = TAILQ_FIRST(&s->queue)) != NULL) {
		TAILQ_REMOVE(&s->queue, d, link);
		s->queued--;
		if (s->batch_len > 0)
			evbuffer_add(s->json, ",", 1);
		put_delivery(s->json, d);
		TAILQ_INSERT_TAIL(&s->batch, d, link);
		s->batch_len++;
	}
	evbuffer_add(s->json, "]", 2); /* with the terminating NUL */
	param = (const char *)evbuffer_pullup(s->json, -1);
	if (param == NULL) {
		batch_done(s, STATUS_NOMEM, NULL, "out of memory");
		return;
	}
	s->batch_sent_us = util_mono_us();
	if (db_query(s->db, INGEST_SQL, 1, &param, s->cfg->commit_timeout_ms, batch_done, s) < 0)
		batch_done(s, STATUS_UNAVAILABLE, NULL, "database busy");
}

/*
 * The batch's transaction ended, committed or not.  The next batch is sent
 * before the clients are answered, so the database never idles while work
 * waits.
 */
static void
batch_done(void *arg, enum status st, const PGresult *res, const char *error)
{
	struct store *s = arg;
	struct delivery_list done = TAILQ_HEAD_INITIALIZER(done);
	size_t n = s->batch_len, max = (size_t)s->cfg->max_batch;
	int committed = st == STATUS_OK;
	struct delivery *d;

	(void)res;
	TAILQ_CONCAT(&done, &s->batch, link);
	s->batch_len = 0;
	s->stats.batches++;
	histogram_observe(&s->stats.batch_size, (double)n);
	histogram_observe(&s->stats.commit_ms,
			  (double)(util_mono_us() - s->batch_sent_us) / 1000.0);
	if (!committed)
		s->stats.batches_failed++;
	if (!committed && st == STATUS_ERROR && n > 1) {
		log_event(LOG_WARN, "batch_refused",
			  "batch of %zu refused: %s; retrying in halves to find the delivery at "
			  "fault",
			  n, error);
		s->split = n / 2;
		requeue(s, &done, n);
		kick(s);
		return;
	}
	if (committed) {
		s->stats.committed += n;
		s->split = s->split * 2 < max ? s->split * 2 : max;
	} else if (st == STATUS_ERROR) {
		d = TAILQ_FIRST(&done);
		s->stats.isolated++;
		log_event(LOG_ERROR, "delivery_refused",
			  "request %s (msgId %lld) answered 503 alone: the database refused it: %s",
			  d->request_id, d->has_event ? (long long)d->event.msg_id : -1LL, error);
	} else {
		log_event(LOG_ERROR, "batch_failed", "batch of %zu answered 503: %s", n, error);
	}
	s->suspects = s->suspects > n ? s->suspects - n : 0;
	kick(s);
	while ((d = TAILQ_FIRST(&done)) != NULL) {
		TAILQ_REMOVE(&done, d, link);
		d->done(d, committed);
	}
	check_drained(s);
}

/* LIST (N deliveries) back at the head of the queue, in order, as suspects. */
static void
requeue(struct store *s, struct delivery_list *list, size_t n)
{
	struct delivery *d;

	while ((d = TAILQ_LAST(list, delivery_list)) != NULL) {
		TAILQ_REMOVE(list, d, link);
		TAILQ_INSERT_HEAD(&s->queue, d, link);
	}
	s->queued += n;
	if (s->suspects < n)
		s->suspects = n;
}

/* Every queued push hears 503: the database is away, or we are stopping. */
static void
fail_queue(struct store *s)
{
	fail_list(&s->queue, &s->queued);
	s->suspects = 0;
}

static void
fail_list(struct delivery_list *list, size_t *len)
{
	struct delivery *d;

	while ((d = TAILQ_FIRST(list)) != NULL) {
		TAILQ_REMOVE(list, d, link);
		(*len)--;
		d->done(d, 0);
	}
}

static void
check_drained(struct store *s)
{
	void (*cb)(void *) = s->drained_cb;

	if (!s->draining || cb == NULL || s->queued > 0 || s->batch_len > 0)
		return;
	s->drained_cb = NULL;
	cb(s->drained_arg);
}

/* --- the batch parameter ------------------------------------------------- */

/* One delivery as a JSON object; the field names are receiver_ingest()'s. */
static void
put_delivery(struct evbuffer *out, const struct delivery *d)
{
	evbuffer_add_printf(out, "{\"at\":%lld,\"status\":%d", (long long)d->received_us,
			    d->status);
	if (!d->refused_early)
		evbuffer_add_printf(out, ",\"body_bytes\":%zu", d->body_bytes);
	put_string(out, "rid", d->request_id);
	put_string(out, "app", d->app);
	put_string(out, "method", d->method);
	put_string(out, "path", d->path);
	put_string(out, "remote", d->remote);
	put_string(out, "sig_field", d->signature_field);
	put_string(out, "error", d->error[0] != '\0' ? d->error : NULL);
	if (d->signature_ok >= 0)
		evbuffer_add_printf(out, ",\"sig_ok\":%s", d->signature_ok ? "true" : "false");
	if (d->has_event)
		evbuffer_add_printf(out, ",\"msg_id\":%lld", (long long)d->event.msg_id);
	if (d->body_excerpt != NULL) {
		evbuffer_add(out, ",\"body\":\"", 9);
		put_hex(out, d->body_excerpt, d->body_excerpt_len);
		evbuffer_add(out, "\"", 1);
	}
	if (d->has_event)
		put_event(out, d);
	evbuffer_add(out, "}", 1);
}

static void
put_event(struct evbuffer *out, const struct delivery *d)
{
	const struct trade_event *ev = &d->event;

	evbuffer_add_printf(out, ",\"ev\":{\"msg_id\":%lld", (long long)ev->msg_id);
	put_string(out, "type", ev->type);
	put_string(out, "status", ev->current_status);
	put_string(out, "user_info", ev->user_info);
	put_string(out, "group", ev->topic_group);
	put_string(out, "name", ev->topic_name);
	put_string(out, "send_time", ev->msg_send_time);
	if (ev->has_gmt_born)
		evbuffer_add_printf(out, ",\"gmt_born_ms\":%lld", (long long)ev->gmt_born_ms);
	if (ev->n_order_ids > 0)
		evbuffer_add_printf(out, ",\"order_id\":%lld", (long long)ev->order_ids[0]);
	evbuffer_add(out, ",\"orders\":[", 11);
	for (size_t i = 0; i < ev->n_order_ids; i++)
		evbuffer_add_printf(out, "%s%lld", i ? "," : "", (long long)ev->order_ids[i]);
	/*
	 * The envelope goes in as it came, not re-encoded: message.c proved it
	 * is JSON PostgreSQL accepts, and jsonb keeps every number exactly.
	 */
	evbuffer_add(out, "],\"payload\":", 12);
	evbuffer_add(out, d->message, d->message_len);
	evbuffer_add(out, "}", 1);
}

/* ,"key":"value" (or nothing when VALUE is NULL).  VALUE is valid UTF-8. */
static void
put_string(struct evbuffer *out, const char *key, const char *value)
{
	const char *p, *run;

	if (value == NULL)
		return;
	evbuffer_add_printf(out, ",\"%s\":\"", key);
	for (p = run = value; *p != '\0'; p++) {
		unsigned char c = (unsigned char)*p;

		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		evbuffer_add(out, run, (size_t)(p - run));
		if (c == '"' || c == '\\')
			evbuffer_add_printf(out, "\\%c", c);
		else
			evbuffer_add_printf(out, "\\u%04x", c);
		run = p + 1;
	}
	evbuffer_add(out, run, (size_t)(p - run));
	evbuffer_add(out, "\"", 1);
}

static void
put_hex(struct evbuffer *out, const unsigned char *p, size_t len)
{
	static const char digits[] = "0123456789abcdef";
	char buf[256];
	size_t n = 0;

	for (size_t i = 0; i < len; i++) {
		buf[n++] = digits[p[i] >> 4];
		buf[n++] = digits[p[i] & 15];
		if (n == sizeof(buf)) {
			evbuffer_add(out, buf, n);
			n = 0;
		}
	}
	evbuffer_add(out, buf, n);
}
