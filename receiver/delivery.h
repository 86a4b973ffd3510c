/*
 * delivery.h - one request to a callback path, through its whole life.
 *
 * ingest.c creates a delivery when a request arrives, fills in what it
 * learns (app, signature, the parsed event, or why it was rejected) and
 * hands it to the store: accepted pushes wait for their commit
 * (store_submit), rejected ones are only audited (store_audit).  The store
 * writes it and calls done(); the owner answers the client, if any is still
 * waiting, and frees it.  store.c sees the data, never the HTTP request
 * behind `owner`.
 */
#ifndef RECEIVER_DELIVERY_H
#define RECEIVER_DELIVERY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

struct ingest;

#include "form.h"
#include "message.h"

/* Rejected bodies are kept only this long, so junk cannot fill the disk. */
#define DELIVERY_BODY_EXCERPT 4096

struct delivery {
	TAILQ_ENTRY(delivery) link; /* in the store's queue or batch */

	/* Called once by the store: committed is 1 when the row is durable. */
	void (*done)(struct delivery *d, int committed);
	void *owner;	       /* the HTTP request still waiting for an answer, or NULL */
	struct ingest *ingest; /* the module that made it (opaque here) */

	char request_id[32];
	int64_t received_us; /* wall clock, microseconds since the epoch */
	const char *app;     /* the app's name (owned by the config), or NULL */
	int app_index;	     /* its place in the config's apps, or -1 */
	const char *method;  /* static string */
	char path[256];	     /* printable ASCII, truncated */
	char remote[64];

	int status;		     /* the HTTP status given or to be given */
	int signature_ok;	     /* -1: not checked, 0: bad, 1: good */
	const char *signature_field; /* static string or NULL */
	char error[200];	     /* empty when fine */

	bool refused_early;	     /* answered by evhttp itself: no body seen */
	size_t body_bytes;	     /* length of the whole body */
	unsigned char *body_excerpt; /* rejected requests only */
	size_t body_excerpt_len;

	struct form form;    /* the decoded body; owns the message text */
	const char *message; /* the `message` field inside form */
	size_t message_len;
	bool has_event;
	struct trade_event event;
};

#endif
