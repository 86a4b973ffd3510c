/*
 * dbq.h - a queue of queries on one database connection of their own.
 *
 * A db (db.c) runs one query at a time.  Work that needs many small steps
 * (the reconciler's claims, applies and failures; the relay's claims and
 * outcomes) queues each step here; the queue runs them in order, one at a
 * time, as soon as the connection is idle.  When the connection is lost,
 * every step still waiting fails with STATUS_UNAVAILABLE (its owner
 * decides what that means: a lease simply runs out); dbq_free() fails
 * them with STATUS_SHUTDOWN.  The owner's handlers hear the connection
 * come up, go down and its notifications, after the queue did its part.
 */
#ifndef RECEIVER_DBQ_H
#define RECEIVER_DBQ_H

#include <stdbool.h>

#include <event2/event.h>
#include <libpq-fe.h>

#include "config.h"
#include "db.h"
#include "util.h"

#define DBQ_MAX_PARAMS 8

struct dbq;

/* A step's end: OWNER is dbq_new's, CTX the step's; as db_result_fn otherwise. */
typedef void (*dbq_fn)(void *owner, void *ctx, enum status st, const PGresult *res,
		       const char *error);

struct dbq *dbq_new(struct event_base *base, const struct database_config *cfg, int schema_version,
		    const char *name, const struct db_handlers *handlers, void *owner);

/* Start connecting; LISTEN on CHANNEL after every connect (db_listen). */
void dbq_start(struct dbq *q);
void dbq_listen(struct dbq *q, const char *channel);

bool dbq_up(const struct dbq *q);

/*
 * Queue SQL with NPARAMS (at most DBQ_MAX_PARAMS) text parameters, copied;
 * NULL is SQL NULL.  FN is called once: from the loop when the step ran,
 * or at once with STATUS_NOMEM when it could not even be queued.
 */
void dbq_add(struct dbq *q, const char *sql, dbq_fn fn, void *ctx, int nparams, ...);

/* Close; the step running and every step waiting get STATUS_SHUTDOWN. */
void dbq_free(struct dbq *q);

#endif
