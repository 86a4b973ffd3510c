/*
 * tradeapi.h - the trade API (PROTOCOL.md section 5): what to ask, how to
 * ask it, and what the answer means.
 *
 * The reconciler asks for an order, or a page of orders created in a
 * window, and gets the order record (or a JSON array of them) exactly as
 * the API wrote it, or an error status with a readable reason.  Paths,
 * request bodies, credentials, the answer's shape and its error codes all
 * live here, so the 1688 gateway can come in beside dajisaas without the
 * reconciler noticing.  Calls go through one httpclient, which enforces
 * [upstream]'s TLS verification, timeout, concurrency and rate limits.
 * App keys and secrets are put in the request body here and nowhere else,
 * never logged, and redacted from every error that quotes the API.
 */
#ifndef RECEIVER_TRADEAPI_H
#define RECEIVER_TRADEAPI_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "config.h"
#include "util.h"

struct tradeapi;

struct tradeapi_result {
	/*
	 * STATUS_OK with RECORD; else STATUS_ERROR (worth retrying),
	 * STATUS_TIMEOUT, STATUS_PERMANENT (bad credentials: retrying cannot
	 * fix it), STATUS_NOMEM or STATUS_SHUTDOWN, and ERROR says why.
	 */
	enum status status;
	/*
	 * An order: its record; a page: a JSON array of records.  The API's
	 * own bytes (every number exact), NUL-terminated; NULL unless OK.
	 */
	const char *record;
	const char *source; /* which call it came from, for order_snapshots.source */
	char error[256];    /* readable, secret-free */
};

/* Called once per request, from the event loop; R is freed afterwards. */
typedef void (*tradeapi_fn)(void *arg, const struct tradeapi_result *r);

struct tradeapi *tradeapi_new(struct event_base *base, const struct upstream_config *cfg, char *err,
			      size_t errlen);

/* ORDER_ID's record, fetched with APP's credentials.  0, or -1: out of memory. */
int tradeapi_get_order(struct tradeapi *t, const struct app_config *app, int64_t order_id,
		       tradeapi_fn fn, void *arg);

/*
 * Page PAGE (from 1) of PAGE_SIZE of APP's orders created in [SINCE, UNTIL].
 * 0, or -1: out of memory.
 */
int tradeapi_list_orders(struct tradeapi *t, const struct app_config *app, time_t since,
			 time_t until, int page, int page_size, tradeapi_fn fn, void *arg);

/* Requests started or waiting. */
size_t tradeapi_pending(const struct tradeapi *t);

/* Calls by outcome and their latency. */
void tradeapi_metrics(const struct tradeapi *t, struct evbuffer *out);

/* Every request still pending ends with STATUS_SHUTDOWN, at once; then free. */
void tradeapi_free(struct tradeapi *t);

#endif
