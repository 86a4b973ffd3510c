/*
 * store.c - non-blocking libpq inside the libevent loop (see store.h).
 *
 * The connection is a small explicit state machine, in the manner of Kore's
 * pgsql.c:
 *
 *   DOWN --timer--> CONNECTING --PQconnectPoll ok--> CHECKING --schema ok--> IDLE
 *   IDLE --work queued--> BUSY --results read--> IDLE
 *   any state --error--> DOWN (every waiting push answered 503, retry later)
 *
 * CHECKING runs one query to learn the schema version: a receiver never
 * writes into a schema older than it was built for.  BUSY means one batch
 * is in flight: a single statement, SELECT receiver_ingest($1), whose only
 * parameter is a JSON array of the batch's deliveries (sql/001_init.sql
 * turns it into rows).  One statement is one implicit transaction; the
 * batch counts as committed only once PQgetResult has returned NULL, that
 * is once the server sent ReadyForQuery, which it does after the commit.
 *
 * The socket is watched with one persistent read event while connected
 * (results, notifications and a server that hangs up all arrive that way)
 * and a one-shot write event while libpq has unsent data (PQflush() == 1).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <libpq-fe.h>

#include "log.h"
#include "store.h"

#define RETRY_MIN_MS 100
#define RETRY_MAX_MS 5000

#define INGEST_SQL "SELECT receiver_ingest($1::jsonb)"
#define SCHEMA_SQL "SELECT coalesce(max(version), 0) FROM schema_migrations"

enum store_state {
	STORE_DOWN,
	STORE_CONNECTING,
	STORE_CHECKING,
	STORE_IDLE,
	STORE_BUSY,
};

TAILQ_HEAD(delivery_list, delivery);

struct store {
	struct event_base *base;
	const struct database_config *cfg;
	PGconn *conn;
	enum store_state state;
	const char *why_down; /* static text for /readyz */

	struct event *ev_read;  /* persistent while connected */
	struct event *ev_write; /* one-shot, while libpq has unsent data */
	struct event *ev_timer; /* retry, connect timeout or commit timeout */
	int retry_ms;

	struct delivery_list queue; /* waiting for the next batch */
	size_t queued;
	size_t max_pending;
	struct delivery_list batch; /* in the transaction in flight */
	size_t batch_len;
	bool batch_failed;
	struct evbuffer *json; /* the batch parameter, reused */

	int schema_version; /* needed */
	int schema_found;

	bool draining;
	void (*drained_cb)(void *);
	void *drained_arg;

	struct store_stats stats;
};

static bool enqueue(struct store *s, struct delivery *d);
static void connect_begin(struct store *s);
static void connect_poll(struct store *s);
static void connected(struct store *s);
static void go_down(struct store *s, const char *why);
static void schedule_retry(struct store *s);
static void watch_socket(struct store *s, short what, bool persist);
static void on_socket(evutil_socket_t fd, short what, void *arg);
static void on_timer(evutil_socket_t fd, short what, void *arg);
static void flush_output(struct store *s);
static void read_results(struct store *s);
static void handle_result(struct store *s, PGresult *res);
static void query_finished(struct store *s);
static void kick(struct store *s);
static void send_batch(struct store *s);
static void finish_batch(struct store *s, int committed);
static void fail_list(struct delivery_list *list, size_t *len);
static void check_drained(struct store *s);
static void arm_timer(struct store *s, int ms);
static void json_delivery(struct evbuffer *out, const struct delivery *d);
static void json_event(struct evbuffer *out, const struct delivery *d);
static void json_string(struct evbuffer *out, const char *key, const char *value);
static void json_hex(struct evbuffer *out, const unsigned char *p, size_t len);
static int batch_bucket(size_t n);

struct store *
store_new(struct event_base *base, const struct database_config *cfg, size_t max_pending,
	  int schema_version)
{
	struct store *s = calloc(1, sizeof(*s));

	if (s == NULL)
		return NULL;
	s->base = base;
	s->cfg = cfg;
	s->state = STORE_DOWN;
	s->why_down = "database not connected yet";
	s->max_pending = max_pending;
	s->schema_version = schema_version;
	s->retry_ms = RETRY_MIN_MS;
	TAILQ_INIT(&s->queue);
	TAILQ_INIT(&s->batch);
	s->json = evbuffer_new();
	s->ev_timer = evtimer_new(base, on_timer, s);
	if (s->json == NULL || s->ev_timer == NULL) {
		store_free(s);
		return NULL;
	}
	return s;
}

void
store_start(struct store *s)
{
	connect_begin(s);
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

bool
store_ready(const struct store *s)
{
	return !s->draining && (s->state == STORE_IDLE || s->state == STORE_BUSY);
}

const char *
store_state_text(const struct store *s)
{
	if (s->draining)
		return "shutting down";
	if (store_ready(s))
		return "ready";
	return s->why_down;
}

size_t
store_queue_depth(const struct store *s)
{
	return s->queued;
}

const struct store_stats *
store_get_stats(const struct store *s)
{
	return &s->stats;
}

void
store_drain(struct store *s, void (*cb)(void *), void *arg)
{
	s->draining = true;
	s->drained_cb = cb;
	s->drained_arg = arg;
	if (s->state != STORE_IDLE && s->state != STORE_BUSY)
		fail_list(&s->queue, &s->queued);
	check_drained(s);
}

void
store_free(struct store *s)
{
	if (s == NULL)
		return;
	fail_list(&s->batch, &s->batch_len);
	fail_list(&s->queue, &s->queued);
	if (s->ev_read != NULL)
		event_free(s->ev_read);
	if (s->ev_write != NULL)
		event_free(s->ev_write);
	if (s->ev_timer != NULL)
		event_free(s->ev_timer);
	if (s->conn != NULL)
		PQfinish(s->conn);
	if (s->json != NULL)
		evbuffer_free(s->json);
	free(s);
}

/* --- connection --------------------------------------------------------- */

static void
connect_begin(struct store *s)
{
	s->conn = PQconnectStart(s->cfg->url);
	if (s->conn == NULL) {
		go_down(s, "out of memory");
		return;
	}
	if (PQstatus(s->conn) == CONNECTION_BAD) {
		log_event(LOG_WARN, "db_connect_failed", "%s", PQerrorMessage(s->conn));
		go_down(s, "database unreachable");
		return;
	}
	s->state = STORE_CONNECTING;
	s->why_down = "connecting to the database";
	arm_timer(s, s->cfg->connect_timeout_ms);
	/* PQconnectStart behaves as if the last poll said "writing". */
	watch_socket(s, EV_WRITE, false);
}

static void
connect_poll(struct store *s)
{
	switch (PQconnectPoll(s->conn)) {
	case PGRES_POLLING_READING:
		watch_socket(s, EV_READ, false);
		break;
	case PGRES_POLLING_WRITING:
		watch_socket(s, EV_WRITE, false);
		break;
	case PGRES_POLLING_OK:
		connected(s);
		break;
	case PGRES_POLLING_FAILED:
	default: {
		char msg[256];

		snprintf(msg, sizeof(msg), "%s", PQerrorMessage(s->conn));
		msg[strcspn(msg, "\n")] = '\0';
		log_event(LOG_WARN, "db_connect_failed", "%s", msg);
		go_down(s, "database unreachable");
		break;
	}
	}
}

static void
connected(struct store *s)
{
	if (PQsetnonblocking(s->conn, 1) != 0) {
		go_down(s, "cannot make the connection non-blocking");
		return;
	}
	s->stats.connects++;
	s->state = STORE_CHECKING;
	s->why_down = "checking the schema version";
	watch_socket(s, EV_READ, true);
	if (PQsendQuery(s->conn, SCHEMA_SQL) != 1) {
		go_down(s, "database connection lost");
		return;
	}
	flush_output(s);
}

/*
 * Drop the connection.  Everything in flight or waiting is answered 503 at
 * once: the pusher retries later, and nothing waits unboundedly here.
 */
static void
go_down(struct store *s, const char *why)
{
	bool was_up = s->state == STORE_IDLE || s->state == STORE_BUSY;

	if (s->ev_read != NULL)
		event_del(s->ev_read);
	if (s->ev_write != NULL)
		event_del(s->ev_write);
	event_del(s->ev_timer);
	if (s->conn != NULL) {
		PQfinish(s->conn);
		s->conn = NULL;
	}
	s->state = STORE_DOWN;
	s->why_down = why;
	if (was_up)
		log_event(LOG_ERROR, "db_down", "%s; answering 503 until reconnected", why);
	if (s->batch_len > 0)
		s->stats.batches_failed++;
	fail_list(&s->batch, &s->batch_len);
	fail_list(&s->queue, &s->queued);
	if (s->draining)
		check_drained(s);
	else
		schedule_retry(s);
}

static void
schedule_retry(struct store *s)
{
	/* Full jitter keeps several receivers from reconnecting in lockstep. */
	int ms = s->retry_ms / 2 + (int)((unsigned)random() % (unsigned)(s->retry_ms / 2 + 1));

	arm_timer(s, ms);
	s->retry_ms = s->retry_ms * 2 > RETRY_MAX_MS ? RETRY_MAX_MS : s->retry_ms * 2;
}

static void
watch_socket(struct store *s, short what, bool persist)
{
	evutil_socket_t fd = PQsocket(s->conn);

	if (s->ev_read != NULL) {
		event_free(s->ev_read);
		s->ev_read = NULL;
	}
	if (s->ev_write != NULL) {
		event_free(s->ev_write);
		s->ev_write = NULL;
	}
	if (fd < 0) {
		go_down(s, "database connection has no socket");
		return;
	}
	/* The socket can change while connecting, so events are made afresh. */
	s->ev_read = event_new(s->base, fd, EV_READ | (persist ? EV_PERSIST : 0), on_socket, s);
	s->ev_write = event_new(s->base, fd, EV_WRITE, on_socket, s);
	if (s->ev_read == NULL || s->ev_write == NULL) {
		go_down(s, "out of memory");
		return;
	}
	if (what & EV_READ)
		event_add(s->ev_read, NULL);
	if (what & EV_WRITE)
		event_add(s->ev_write, NULL);
}

static void
on_socket(evutil_socket_t fd, short what, void *arg)
{
	struct store *s = arg;

	(void)fd;
	if (s->state == STORE_CONNECTING) {
		connect_poll(s);
		return;
	}
	if (what & EV_READ) {
		if (PQconsumeInput(s->conn) == 0) {
			char msg[256];

			snprintf(msg, sizeof(msg), "%s", PQerrorMessage(s->conn));
			msg[strcspn(msg, "\n")] = '\0';
			log_event(LOG_WARN, "db_connection_lost", "%s", msg);
			go_down(s, "database connection lost");
			return;
		}
	}
	flush_output(s);
	if (s->state == STORE_DOWN)
		return;
	read_results(s);
}

static void
on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct store *s = arg;

	(void)fd;
	(void)what;
	switch (s->state) {
	case STORE_DOWN:
		connect_begin(s);
		break;
	case STORE_CONNECTING:
	case STORE_CHECKING:
		log_event(LOG_WARN, "db_connect_timeout", "no connection after %d ms",
			  s->cfg->connect_timeout_ms);
		go_down(s, "database connection timed out");
		break;
	case STORE_BUSY:
		/*
		 * The server may still commit; the pushes are then simply
		 * delivered again and recorded once (msgId deduplicates).
		 */
		log_event(LOG_ERROR, "db_commit_timeout", "batch of %zu not committed after %d ms",
			  s->batch_len, s->cfg->commit_timeout_ms);
		go_down(s, "database commit timed out");
		break;
	case STORE_IDLE:
		break;
	}
}

static void
arm_timer(struct store *s, int ms)
{
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};

	evtimer_add(s->ev_timer, &tv);
}

/* --- queries ------------------------------------------------------------ */

static void
flush_output(struct store *s)
{
	int rc = PQflush(s->conn);

	if (rc < 0) {
		go_down(s, "database connection lost");
		return;
	}
	if (rc == 1 && s->ev_write != NULL)
		event_add(s->ev_write, NULL);
}

static void
read_results(struct store *s)
{
	PGnotify *n;

	while ((n = PQnotifies(s->conn)) != NULL)
		PQfreemem(n);
	if (s->state != STORE_CHECKING && s->state != STORE_BUSY)
		return;
	while (PQisBusy(s->conn) == 0) {
		PGresult *res = PQgetResult(s->conn);

		if (res == NULL) {
			query_finished(s);
			return;
		}
		handle_result(s, res);
		PQclear(res);
	}
}

static void
handle_result(struct store *s, PGresult *res)
{
	ExecStatusType st = PQresultStatus(res);
	char msg[256];

	if (st == PGRES_TUPLES_OK) {
		if (s->state == STORE_CHECKING && PQntuples(res) == 1)
			s->schema_found = atoi(PQgetvalue(res, 0, 0));
		return;
	}
	snprintf(msg, sizeof(msg), "%s", PQresultErrorMessage(res));
	msg[strcspn(msg, "\n")] = '\0';
	if (s->state == STORE_CHECKING) {
		s->schema_found = -1;
		log_event(LOG_ERROR, "db_schema_check_failed", "%s", msg);
	} else {
		s->batch_failed = true;
		log_event(LOG_ERROR, "db_batch_failed", "batch of %zu: %s", s->batch_len, msg);
	}
}

static void
query_finished(struct store *s)
{
	if (s->state == STORE_CHECKING) {
		if (s->schema_found < s->schema_version) {
			log_event(LOG_ERROR, "db_schema_outdated",
				  "database schema is at version %d, this receiver needs %d: "
				  "run `receiver migrate`",
				  s->schema_found < 0 ? 0 : s->schema_found, s->schema_version);
			go_down(s, "database schema outdated: run receiver migrate");
			return;
		}
		event_del(s->ev_timer);
		s->state = STORE_IDLE;
		s->retry_ms = RETRY_MIN_MS;
		log_event(LOG_INFO, "db_connected", "schema version %d", s->schema_found);
		kick(s);
		return;
	}
	finish_batch(s, !s->batch_failed);
}

/* --- batches ------------------------------------------------------------ */

static void
kick(struct store *s)
{
	if (s->state == STORE_IDLE && s->queued > 0)
		send_batch(s);
	else
		check_drained(s);
}

static void
send_batch(struct store *s)
{
	size_t max = (size_t)s->cfg->max_batch;
	const char *param;
	struct delivery *d;

	evbuffer_drain(s->json, evbuffer_get_length(s->json));
	evbuffer_add(s->json, "[", 1);
	while (s->batch_len < max && (d = TAILQ_FIRST(&s->queue)) != NULL) {
		TAILQ_REMOVE(&s->queue, d, link);
		s->queued--;
		if (s->batch_len > 0)
			evbuffer_add(s->json, ",", 1);
		json_delivery(s->json, d);
		TAILQ_INSERT_TAIL(&s->batch, d, link);
		s->batch_len++;
	}
	evbuffer_add(s->json, "]", 2); /* with the terminating NUL */
	param = (const char *)evbuffer_pullup(s->json, -1);
	s->batch_failed = false;
	s->state = STORE_BUSY;
	if (param == NULL || PQsendQueryParams(s->conn, INGEST_SQL, 1, NULL, &param, NULL, NULL,
					       0) != 1) {
		go_down(s, "database connection lost");
		return;
	}
	arm_timer(s, s->cfg->commit_timeout_ms);
	flush_output(s);
}

/*
 * The batch's transaction ended.  The next batch is sent before the clients
 * are answered, so the database is never idle while work waits.
 */
static void
finish_batch(struct store *s, int committed)
{
	struct delivery_list done = TAILQ_HEAD_INITIALIZER(done);
	size_t n = s->batch_len;
	struct delivery *d;

	event_del(s->ev_timer);
	TAILQ_CONCAT(&done, &s->batch, link);
	s->batch_len = 0;
	s->stats.batches++;
	s->stats.batch_size[batch_bucket(n)]++;
	if (committed)
		s->stats.committed += n;
	else
		s->stats.batches_failed++;
	s->state = STORE_IDLE;
	kick(s);
	while ((d = TAILQ_FIRST(&done)) != NULL) {
		TAILQ_REMOVE(&done, d, link);
		d->done(d, committed);
	}
	check_drained(s);
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

static int
batch_bucket(size_t n)
{
	int b = 0;

	while (n > 1 && b < STORE_BATCH_BUCKETS - 1) {
		n >>= 1;
		b++;
	}
	return b;
}

/* --- the batch parameter ------------------------------------------------- */

/* One delivery as a JSON object; the field names are receiver_ingest()'s. */
static void
json_delivery(struct evbuffer *out, const struct delivery *d)
{
	evbuffer_add_printf(out, "{\"at\":%lld,\"status\":%d,\"body_bytes\":%zu",
			    (long long)d->received_us, d->status, d->body_bytes);
	json_string(out, "rid", d->request_id);
	json_string(out, "app", d->app);
	json_string(out, "method", d->method);
	json_string(out, "path", d->path);
	json_string(out, "remote", d->remote);
	json_string(out, "sig_field", d->signature_field);
	json_string(out, "error", d->error[0] != '\0' ? d->error : NULL);
	if (d->signature_ok >= 0)
		evbuffer_add_printf(out, ",\"sig_ok\":%s", d->signature_ok ? "true" : "false");
	if (d->has_event)
		evbuffer_add_printf(out, ",\"msg_id\":%lld", (long long)d->event.msg_id);
	if (d->body_excerpt != NULL) {
		evbuffer_add(out, ",\"body\":\"", 9);
		json_hex(out, d->body_excerpt, d->body_excerpt_len);
		evbuffer_add(out, "\"", 1);
	}
	if (d->has_event)
		json_event(out, d);
	evbuffer_add(out, "}", 1);
}

static void
json_event(struct evbuffer *out, const struct delivery *d)
{
	const struct trade_event *ev = &d->event;

	evbuffer_add_printf(out, ",\"ev\":{\"msg_id\":%lld", (long long)ev->msg_id);
	json_string(out, "type", ev->type);
	json_string(out, "status", ev->current_status);
	json_string(out, "user_info", ev->user_info);
	json_string(out, "group", ev->topic_group);
	json_string(out, "name", ev->topic_name);
	json_string(out, "send_time", ev->msg_send_time);
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
json_string(struct evbuffer *out, const char *key, const char *value)
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
json_hex(struct evbuffer *out, const unsigned char *p, size_t len)
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
