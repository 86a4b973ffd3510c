/*
 * relay.h - the outbox's sender: order events to the user's own services.
 *
 * Every change that commits writes its events and one relay_deliveries row
 * per matching subscriber in the same transaction (sql/007_relay.sql).
 * The relay claims due deliveries (FOR UPDATE SKIP LOCKED, with a lease:
 * any number of receivers share the work), POSTs each to its subscriber
 * as a Standard Webhooks request (webhook-id, -timestamp, -signature),
 * and records the outcome: a 2xx is delivered, a 410 disables the
 * subscriber, anything else is retried with backoff until max_attempts,
 * then dead.  Per subscriber and order, deliveries go out in the order
 * they were recorded (the SQL claim sees to it); subscribers never wait
 * for each other: each has its own client and its own concurrency.
 */
#ifndef RECEIVER_RELAY_H
#define RECEIVER_RELAY_H

#include <stdbool.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "config.h"

struct relay;

struct relay *relay_new(struct event_base *base, const struct config *cfg, int schema_version,
			char *err, size_t errlen);

/* Register the subscribers, then claim and send in the background. */
void relay_start(struct relay *r);

/* Claim no more; requests under way finish. */
void relay_stop(struct relay *r);

/* Deliveries by subscriber and outcome, their latency, disabled subscribers. */
void relay_metrics(const struct relay *r, struct evbuffer *out);

/*
 * `receiver relay --test NAME`: send SUB one relay.test event now, in a
 * loop of its own, and print its answer.  The exit status: 0 for a 2xx.
 */
int relay_test(const struct config *cfg, const struct subscriber_config *sub);

/* Stop at once: requests in flight are abandoned (their leases expire). */
void relay_free(struct relay *r);

#endif
