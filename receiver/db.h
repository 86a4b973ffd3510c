/*
 * db.h - one PostgreSQL connection driven by the event loop.
 *
 * libpq in non-blocking mode with its socket in the libevent loop: the
 * connection is made with PQconnectStartParams/PQconnectPoll, pinning the
 * session settings the receiver's promises rest on, checked for them, for
 * the database's encoding and for the schema version the code needs, and
 * remade with backoff whenever it is lost.  One query runs at a time; its
 * callback gets the final result once the server has finished the query
 * (ReadyForQuery), which for a statement outside BEGIN means: after its
 * transaction committed.  LISTEN channels are re-issued on every new
 * connection and notifications delivered as they arrive.  The event loop
 * never waits on the database.
 */
#ifndef RECEIVER_DB_H
#define RECEIVER_DB_H

#include <stdbool.h>
#include <stddef.h>

#include <event2/event.h>
#include <libpq-fe.h>

#include "config.h"
#include "util.h"

struct db;

struct db_handlers {
	/* The connection is usable: connected and the schema is current. */
	void (*up)(void *arg);
	/* The connection was lost or could not be made; a retry is scheduled. */
	void (*down)(void *arg);
	/* A NOTIFY on a channel passed to db_listen(). */
	void (*notify)(void *arg, const char *channel, const char *payload);
};

/*
 * Called once per query, never before db_query() returned.  ST is
 * STATUS_OK with RES the query's last result and ERROR NULL when it
 * succeeded; otherwise RES is NULL, ST says what happened (STATUS_ERROR:
 * the server refused it; STATUS_UNAVAILABLE: the connection was lost;
 * STATUS_TIMEOUT; STATUS_SHUTDOWN: db_free()) and ERROR says why, for
 * people.  RES is cleared afterwards.
 */
typedef void (*db_result_fn)(void *arg, enum status st, const PGresult *res, const char *error);

/* NAME labels log lines ("ingest", "reconcile"); HANDLERS may be NULL. */
struct db *db_new(struct event_base *base, const struct database_config *cfg, int schema_version,
		  const char *name, const struct db_handlers *handlers, void *arg);

/* Start connecting; reconnects on its own from now on. */
void db_start(struct db *db);

/* LISTEN on CHANNEL now (if up) and after every reconnect.  At most 4. */
void db_listen(struct db *db, const char *channel);

/* Up and no query in flight: db_query() would be accepted. */
bool db_idle(const struct db *db);
bool db_up(const struct db *db);

/* Why not up, for /readyz: a short text DB owns, to copy before the next loop turn. */
const char *db_state_text(const struct db *db);

/*
 * Send SQL with NPARAMS text parameters.  Returns 0 when sent (FN will be
 * called exactly once, from the event loop, possibly with an error), -1
 * when not idle.  TIMEOUT_MS bounds the whole query: past it the
 * connection is reset and FN gets STATUS_TIMEOUT.
 */
int db_query(struct db *db, const char *sql, int nparams, const char *const *params, int timeout_ms,
	     db_result_fn fn, void *arg);

/* Close and free; a query in flight gets STATUS_SHUTDOWN, at once. */
void db_free(struct db *db);

/*
 * A blocking connection to CONNINFO, with the settings every connection of
 * the receiver pins (db.c: synchronous_commit on, client_encoding UTF8):
 * for command-line tools only.  Check it with PQstatus(); PQfinish() it.
 */
PGconn *db_connect_blocking(const char *conninfo);

/*
 * Message text is stored as UTF-8, and jsonb turns a \u escape beyond
 * ASCII into a character only in a UTF8 database: true, with a one-line
 * reason naming SERVER_ENCODING in WHY, when the database is in another.
 */
bool db_encoding_refused(const char *server_encoding, char *why, size_t cap);

/* What to do about it, for the log and `receiver migrate`. */
#define DB_ENCODING_HINT "message text is stored as UTF-8: create the database with ENCODING 'UTF8'"

#endif
