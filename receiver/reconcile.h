/*
 * reconcile.h - keep `orders` true by refetching orders from the trade API.
 *
 * In the daemon the reconciler claims due reconcile_jobs rows (woken by
 * NOTIFY reconcile_jobs and by a timer), fetches each order with
 * get/buyerView and applies the record, retrying failures with backoff;
 * every [reconcile] sweep_interval_s it pages through getBuyerOrderList
 * for one app at a time and applies what it finds.  The command line uses
 * the same machinery for one-off fetches and sweeps.
 */
#ifndef RECEIVER_RECONCILE_H
#define RECEIVER_RECONCILE_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "config.h"

struct reconciler;

/* Called when one-off work ends: OK, and a line to show the user. */
typedef void (*reconcile_done_fn)(void *arg, bool ok, const char *text);

struct reconciler *reconciler_new(struct event_base *base, const struct config *cfg,
				  int schema_version, char *err, size_t errlen);

/* Daemon mode: claim jobs and sweep, in the background, until freed. */
void reconciler_start(struct reconciler *r);

/*
 * One-off work (command line): connect, then fetch and apply one order, or
 * sweep APP's orders created in [since, until].  FN is called once.
 */
void reconciler_fetch(struct reconciler *r, const struct app_config *app, int64_t order_id,
		      reconcile_done_fn fn, void *arg);
void reconciler_sweep(struct reconciler *r, const struct app_config *app, time_t since,
		      time_t until, reconcile_done_fn fn, void *arg);

/* Jobs, fetches, sweeps and the trade API's calls. */
void reconciler_metrics(const struct reconciler *r, struct evbuffer *out);

/* Claim no more jobs and start no more sweeps; work under way goes on. */
void reconciler_stop(struct reconciler *r);

/* Stop at once: calls in flight are abandoned (their leases expire). */
void reconciler_free(struct reconciler *r);

#endif
