/*
 * dbq.c - a FIFO of queries on one connection (see dbq.h).
 *
 * A step is queued with copies of its parameters, run when the connection
 * is idle and nothing else runs, and freed after its callback.  The db's
 * handlers are ours: up runs the queue, down fails what waits; then the
 * owner's handler runs, so an owner that queues again from its `up`
 * finds the queue already moving.
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include "dbq.h"

#define QUERY_TIMEOUT_MS 30000

struct step {
	TAILQ_ENTRY(step) link;
	struct dbq *q;
	const char *sql;
	char *params[DBQ_MAX_PARAMS];
	int nparams;
	dbq_fn fn;
	void *ctx;
};

TAILQ_HEAD(step_list, step);

struct dbq {
	struct db *db;
	struct db_handlers owner_handlers;
	void *owner;
	struct step_list steps;
	struct step *running;
	bool freeing;
};

static void on_up(void *arg);
static void on_down(void *arg);
static void on_notify(void *arg, const char *channel, const char *payload);
static void run(struct dbq *q);
static void step_done(void *arg, enum status st, const PGresult *res, const char *error);
static void fail_waiting(struct dbq *q, enum status st, const char *why);
static void step_free(struct step *s);

struct dbq *
dbq_new(struct event_base *base, const struct database_config *cfg, int schema_version,
	const char *name, const struct db_handlers *handlers, void *owner)
{
	static const struct db_handlers ours = {on_up, on_down, on_notify};
	struct dbq *q = calloc(1, sizeof(*q));

	if (q == NULL)
		return NULL;
	if (handlers != NULL)
		q->owner_handlers = *handlers;
	q->owner = owner;
	TAILQ_INIT(&q->steps);
	q->db = db_new(base, cfg, schema_version, name, &ours, q);
	if (q->db == NULL) {
		free(q);
		return NULL;
	}
	return q;
}

void
dbq_start(struct dbq *q)
{
	db_start(q->db);
}

void
dbq_listen(struct dbq *q, const char *channel)
{
	db_listen(q->db, channel);
}

bool
dbq_up(const struct dbq *q)
{
	return db_up(q->db);
}

void
dbq_add(struct dbq *q, const char *sql, dbq_fn fn, void *ctx, int nparams, ...)
{
	struct step *s = calloc(1, sizeof(*s));
	bool copied = s != NULL && nparams <= DBQ_MAX_PARAMS;
	va_list ap;

	if (copied) {
		*s = (struct step){.q = q, .sql = sql, .fn = fn, .ctx = ctx, .nparams = nparams};
		va_start(ap, nparams);
		for (int i = 0; i < nparams; i++) {
			const char *p = va_arg(ap, const char *);

			/* A failed copy must not turn into an SQL NULL. */
			s->params[i] = p != NULL ? strdup(p) : NULL;
			if (p != NULL && s->params[i] == NULL)
				copied = false;
		}
		va_end(ap);
	}
	if (!copied) {
		if (s != NULL)
			step_free(s);
		fn(q->owner, ctx, STATUS_NOMEM, NULL, "out of memory");
		return;
	}
	TAILQ_INSERT_TAIL(&q->steps, s, link);
	run(q);
}

void
dbq_free(struct dbq *q)
{
	if (q == NULL)
		return;
	q->freeing = true;
	db_free(q->db); /* the running step hears STATUS_SHUTDOWN */
	fail_waiting(q, STATUS_SHUTDOWN, "shutting down");
	free(q);
}

static void
on_up(void *arg)
{
	struct dbq *q = arg;

	run(q);
	if (q->owner_handlers.up != NULL)
		q->owner_handlers.up(q->owner);
}

/* Waiting steps fail now; the owner decides what that means. */
static void
on_down(void *arg)
{
	struct dbq *q = arg;

	fail_waiting(q, STATUS_UNAVAILABLE, "database unavailable");
	if (q->owner_handlers.down != NULL)
		q->owner_handlers.down(q->owner);
}

static void
on_notify(void *arg, const char *channel, const char *payload)
{
	struct dbq *q = arg;

	if (q->owner_handlers.notify != NULL)
		q->owner_handlers.notify(q->owner, channel, payload);
}

static void
run(struct dbq *q)
{
	struct step *s = TAILQ_FIRST(&q->steps);

	if (s == NULL || q->running != NULL || q->freeing || !db_idle(q->db))
		return;
	TAILQ_REMOVE(&q->steps, s, link);
	q->running = s;
	if (db_query(q->db, s->sql, s->nparams, (const char *const *)s->params, QUERY_TIMEOUT_MS,
		     step_done, s) < 0) {
		q->running = NULL;
		s->fn(q->owner, s->ctx, STATUS_ERROR, NULL, "database busy");
		step_free(s);
	}
}

static void
step_done(void *arg, enum status st, const PGresult *res, const char *error)
{
	struct step *s = arg;
	struct dbq *q = s->q;

	q->running = NULL;
	s->fn(q->owner, s->ctx, st, res, error);
	step_free(s);
	run(q);
}

static void
fail_waiting(struct dbq *q, enum status st, const char *why)
{
	struct step *s;

	while ((s = TAILQ_FIRST(&q->steps)) != NULL) {
		TAILQ_REMOVE(&q->steps, s, link);
		s->fn(q->owner, s->ctx, st, NULL, why);
		step_free(s);
	}
}

static void
step_free(struct step *s)
{
	for (int i = 0; i < s->nparams; i++)
		free(s->params[i]);
	free(s);
}
