/*
 * store.h - PostgreSQL from inside the event loop: non-blocking libpq,
 * group commit, reconnect with backoff.
 *
 * Deliveries queue up while a batch is in flight and all go in the next
 * one, so an idle receiver commits a push at once and a burst shares
 * commits.  A push is acknowledged (done(d, 1)) only after PostgreSQL said
 * the transaction committed; when the database is away the store refuses
 * work at once so the client hears 503 instead of waiting.
 */
#ifndef RECEIVER_STORE_H
#define RECEIVER_STORE_H

#include <stdbool.h>
#include <stdint.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "config.h"
#include "delivery.h"

struct store;

/* SCHEMA_VERSION is the lowest schema version this code can write to. */
struct store *store_new(struct event_base *base, const struct database_config *cfg,
			size_t max_pending, int schema_version);

/* Begin connecting (in the background). */
void store_start(struct store *s);

/*
 * Queue an accepted push for the next commit.  Returns 0 when queued (done
 * will be called), -1 when the database is unavailable or the queue is full:
 * the caller answers 503 and still owns D.
 */
int store_submit(struct store *s, struct delivery *d);

/* Write D's audit row when possible; D is owned by the store until done(). */
void store_audit(struct store *s, struct delivery *d);

/* Connected, schema current, accepting work. */
bool store_ready(const struct store *s);

/* Why not ready, for /readyz: a short static text. */
const char *store_state_text(const struct store *s);

/* Batches, commits, refusals, the queue and the commit latency. */
void store_metrics(const struct store *s, struct evbuffer *out);

/*
 * Shut down gently: commit what is queued, then call CB(ARG) once nothing
 * is queued or in flight.  New submits are refused from now on.
 */
void store_drain(struct store *s, void (*cb)(void *), void *arg);

/* Fail everything still waiting (done(d, 0)), close, free. */
void store_free(struct store *s);

#endif
