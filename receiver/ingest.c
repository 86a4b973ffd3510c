/*
 * ingest.c - a push from request to reply (see ingest.h).
 *
 * Every request to a callback path becomes a struct delivery.  check_push()
 * walks it through the checks in the order the statuses are documented
 * (404, 405, 415, 400, 401, 400); the first failure is answered at once by
 * reject() and only audited, a push that passes all of them is handed to
 * the store and answered from push_done() once its transaction committed
 * (200) or failed (503).  A body over [server] max_body_bytes never gets
 * here: evhttp answers it 413 before any callback runs, and http.c reports
 * it through ingest_refused() so it is audited all the same.
 *
 * Deferred replies: evhttp (2.1) keeps a request whose callback returned
 * without replying.  If the client hangs up meanwhile, evhttp detaches the
 * request from the dead connection instead of freeing it, and the reply we
 * send later simply frees it.  The one thing that would free it under us is
 * evhttp_free(), so shutdown answers every waiting push (store_free) before
 * the HTTP server is freed.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "http.h"
#include "ingest.h"
#include "log.h"
#include "message.h"
#include "metrics.h"
#include "signature.h"
#include "util.h"

#define FORM_CONTENT_TYPE "application/x-www-form-urlencoded"

/* The statuses a callback path can answer, counted per app; 0 is "other". */
static const int status_kinds[] = {200, 400, 401, 404, 405, 413, 415, 500, 503, 0};
#define STATUS_KINDS (sizeof(status_kinds) / sizeof(status_kinds[0]))

struct ingest {
	const struct config *cfg;
	struct store *store;
	struct rate_limit audits; /* [server] max_rejections_per_s: audit rows */
	struct rate_limit logs;	  /* the same, for push_rejected log lines */
	size_t n_rows;		  /* one row per [[app]], in order, then one for no app */
	uint64_t *requests;	  /* [n_rows][STATUS_KINDS] */
	uint64_t signature_failures;
	uint64_t rejections_not_audited; /* over [server] max_rejections_per_s */
	uint64_t rejections_not_logged;
	uint64_t unlogged; /* since the last push_rejected line */
};

static void count(struct ingest *in, int app_index, int status);
static int check_push(struct delivery *d, struct evhttp_request *req, const struct app_config *app);
static void reject(struct ingest *in, struct delivery *d, struct evhttp_request *req, int status);
static void audit(struct ingest *in, struct delivery *d);
static void push_done(struct delivery *d, int committed);
static void audit_done(struct delivery *d, int committed);
static struct delivery *delivery_new(struct ingest *in, struct evhttp_request *req,
				     const struct app_config *app, const char *request_id);
static struct delivery *delivery_alloc(struct ingest *in, const char *request_id);
static void delivery_free(struct delivery *d);
static bool is_form(const char *content_type);
static int fail(struct delivery *d, int status, const char *why);
static void set_error(struct delivery *d, const char *text);
static void copy_printable(char *dst, size_t cap, const char *src);
static const char *method_name(enum evhttp_cmd_type cmd);

struct ingest *
ingest_new(const struct config *cfg, struct store *store)
{
	struct ingest *in = calloc(1, sizeof(*in));

	if (in == NULL)
		return NULL;
	in->cfg = cfg;
	in->store = store;
	in->n_rows = cfg->n_apps + 1;
	in->requests = calloc(in->n_rows * STATUS_KINDS, sizeof(uint64_t));
	if (in->requests == NULL) {
		free(in);
		return NULL;
	}
	rate_limit_init(&in->audits, cfg->server.max_rejections_per_s);
	rate_limit_init(&in->logs, cfg->server.max_rejections_per_s);
	return in;
}

void
ingest_free(struct ingest *in)
{
	if (in == NULL)
		return;
	free(in->requests);
	free(in);
}

void
ingest_request(struct ingest *in, struct evhttp_request *req, const struct app_config *app,
	       const char *request_id)
{
	struct delivery *d = delivery_new(in, req, app, request_id);
	int status;

	if (d == NULL) {
		http_reply(req, request_id, HTTP_INTERNAL, "out of memory\n");
		return;
	}
	status = check_push(d, req, app);
	if (status != HTTP_OK) {
		reject(in, d, req, status);
		return;
	}
	d->status = HTTP_OK;
	d->done = push_done;
	d->owner = req;
	if (store_submit(in->store, d) < 0) {
		count(in, d->app_index, HTTP_SERVUNAVAIL);
		http_reply(req, d->request_id, HTTP_SERVUNAVAIL,
			   "database unavailable, retry later\n");
		delivery_free(d);
	}
}

/*
 * The body and its length are gone by now: the audit row says what is
 * known, that a body was refused before it was read.
 */
void
ingest_refused(struct ingest *in, const char *request_id)
{
	struct delivery *d = delivery_alloc(in, request_id);

	if (d == NULL)
		return;
	d->status = 413;
	d->refused_early = true;
	count(in, -1, 413);
	set_error(d, "body larger than max_body_bytes: refused before it was read");
	audit(in, d);
}

void
ingest_metrics(const struct ingest *in, struct evbuffer *out)
{
	char app[96], labels[160];

	metrics_family(out, "receiver_requests_total", "counter",
		       "Requests to callback paths, by app and HTTP status.");
	for (size_t row = 0; row < in->n_rows; row++) {
		metrics_label(app, sizeof(app),
			      row < in->cfg->n_apps ? in->cfg->apps[row].name : "");
		for (size_t k = 0; k < STATUS_KINDS; k++) {
			uint64_t n = in->requests[row * STATUS_KINDS + k];

			if (n == 0)
				continue;
			if (status_kinds[k] != 0)
				snprintf(labels, sizeof(labels), "app=\"%s\",status=\"%d\"", app,
					 status_kinds[k]);
			else
				snprintf(labels, sizeof(labels), "app=\"%s\",status=\"other\"",
					 app);
			metrics_value(out, "receiver_requests_total", labels, (double)n);
		}
	}
	metrics_single(out, "receiver_signature_failures_total", "counter",
		       "Pushes refused for a missing or wrong signature.",
		       (double)in->signature_failures);
	metrics_single(out, "receiver_rejections_not_logged_total", "counter",
		       "Rejected requests beyond max_rejections_per_s: no push_rejected line.",
		       (double)in->rejections_not_logged);
	metrics_single(out, "receiver_rejections_not_audited_total", "counter",
		       "Rejected requests beyond max_rejections_per_s: answered, not audited.",
		       (double)in->rejections_not_audited);
}

static void
count(struct ingest *in, int app_index, int status)
{
	size_t row = app_index >= 0 ? (size_t)app_index : in->n_rows - 1, kind = 0;

	while (kind < STATUS_KINDS - 1 && status_kinds[kind] != status)
		kind++;
	in->requests[row * STATUS_KINDS + kind]++;
	if (status == 401)
		in->signature_failures++;
}

/* --- a push ------------------------------------------------------------- */

/*
 * Run the checks in their documented order.  Returns HTTP_OK for a genuine
 * push whose event is parsed, else the status to answer, with d->error set.
 */
static int
check_push(struct delivery *d, struct evhttp_request *req, const struct app_config *app)
{
	struct evbuffer *body_buf = evhttp_request_get_input_buffer(req);
	const struct form_field *message;
	const char *why;
	const unsigned char *body;
	enum signature_result sig;
	char perr[sizeof(d->error)];

	if (app == NULL)
		return fail(d, HTTP_NOTFOUND, "unknown path");
	if (evhttp_request_get_command(req) != EVHTTP_REQ_POST)
		return fail(d, HTTP_BADMETHOD, "method not allowed: use POST");
	if (!is_form(evhttp_find_header(evhttp_request_get_input_headers(req), "Content-Type")))
		return fail(d, 415, "content type must be " FORM_CONTENT_TYPE);
	body = evbuffer_pullup(body_buf, -1);
	if (form_decode((const char *)body, d->body_bytes, &d->form, &why) < 0)
		return fail(d, HTTP_BADREQUEST, why);
	message = form_get(&d->form, "message");
	if (message == NULL)
		return fail(d, HTTP_BADREQUEST, "missing field: message");
	sig = signature_verify(&d->form, app, &d->signature_field);
	if (sig == SIGNATURE_ERROR)
		return fail(d, HTTP_INTERNAL, signature_result_text(sig));
	d->signature_ok = sig == SIGNATURE_OK;
	if (sig != SIGNATURE_OK)
		return fail(d, 401, signature_result_text(sig));
	if (message_parse(message->value, message->value_len, &d->event, perr, sizeof(perr)) < 0)
		return fail(d, HTTP_BADREQUEST, perr);
	d->has_event = true;
	d->message = message->value;
	d->message_len = message->value_len;
	return HTTP_OK;
}

/* Answer now; the audit row is written when the database can take it. */
static void
reject(struct ingest *in, struct delivery *d, struct evhttp_request *req, int status)
{
	struct evbuffer *body = evhttp_request_get_input_buffer(req);
	size_t n = d->body_bytes < DELIVERY_BODY_EXCERPT ? d->body_bytes : DELIVERY_BODY_EXCERPT;
	char text[sizeof(d->error) + 1];

	d->status = status;
	count(in, d->app_index, status);
	if (n > 0 && (d->body_excerpt = malloc(n)) != NULL)
		d->body_excerpt_len = (size_t)evbuffer_copyout(body, d->body_excerpt, n);
	if (status == HTTP_BADMETHOD)
		evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "POST");
	snprintf(text, sizeof(text), "%s\n", d->error);
	http_reply(req, d->request_id, status, text);
	/* The parsed form is no longer needed; the excerpt is what is kept. */
	form_free(&d->form);
	d->owner = NULL;
	audit(in, d);
}

/*
 * A rejection, already answered, is logged and audited - each at most
 * [server] max_rejections_per_s times a second, whatever its status (a
 * 413 included): a flood of junk is still answered and counted, but can
 * neither fill the disk with audit rows nor drown the real errors in the
 * log.  The next line that is written says how many were not.
 */
static void
audit(struct ingest *in, struct delivery *d)
{
	char more[64] = "";

	if (!rate_limit_allow(&in->logs)) {
		in->rejections_not_logged++;
		in->unlogged++;
	} else {
		if (in->unlogged > 0)
			snprintf(more, sizeof(more), " (and %llu more not logged)",
				 (unsigned long long)in->unlogged);
		log_event(LOG_INFO, "push_rejected", "request %s app %s: %d %s%s", d->request_id,
			  d->app != NULL ? d->app : "-", d->status, d->error, more);
		in->unlogged = 0;
	}
	d->done = audit_done;
	if (!rate_limit_allow(&in->audits)) {
		in->rejections_not_audited++;
		delivery_free(d);
		return;
	}
	store_audit(in->store, d);
}

static void
push_done(struct delivery *d, int committed)
{
	struct evhttp_request *req = d->owner;

	count(d->ingest, d->app_index, committed ? HTTP_OK : HTTP_SERVUNAVAIL);
	if (committed)
		http_reply(req, d->request_id, HTTP_OK, "success");
	else
		http_reply(req, d->request_id, HTTP_SERVUNAVAIL,
			   "database unavailable, retry later\n");
	delivery_free(d);
}

static void
audit_done(struct delivery *d, int committed)
{
	(void)committed;
	delivery_free(d);
}

static struct delivery *
delivery_new(struct ingest *in, struct evhttp_request *req, const struct app_config *app,
	     const char *request_id)
{
	struct delivery *d = delivery_alloc(in, request_id);
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	const char *uri = evhttp_request_get_uri(req);
	char *peer = NULL;
	ev_uint16_t port = 0;

	if (d == NULL)
		return NULL;
	d->app = app != NULL ? app->name : NULL;
	d->app_index = app != NULL ? (int)(app - in->cfg->apps) : -1;
	d->method = method_name(evhttp_request_get_command(req));
	d->body_bytes = evbuffer_get_length(evhttp_request_get_input_buffer(req));
	copy_printable(d->path, sizeof(d->path), uri);
	if (evcon != NULL)
		evhttp_connection_get_peer(evcon, &peer, &port);
	copy_printable(d->remote, sizeof(d->remote), peer);
	return d;
}

/* What every delivery starts with: its request id and its arrival. */
static struct delivery *
delivery_alloc(struct ingest *in, const char *request_id)
{
	struct delivery *d = calloc(1, sizeof(*d));

	if (d == NULL)
		return NULL;
	snprintf(d->request_id, sizeof(d->request_id), "%s", request_id);
	d->received_us = util_wall_us();
	d->ingest = in;
	d->app_index = -1;
	d->signature_ok = -1;
	return d;
}

static void
delivery_free(struct delivery *d)
{
	form_free(&d->form);
	trade_event_free(&d->event);
	free(d->body_excerpt);
	free(d);
}

/* --- helpers ------------------------------------------------------------ */

/* "application/x-www-form-urlencoded", any case, parameters allowed. */
static bool
is_form(const char *content_type)
{
	size_t n = sizeof(FORM_CONTENT_TYPE) - 1;

	if (content_type == NULL)
		return false;
	while (*content_type == ' ' || *content_type == '\t')
		content_type++;
	if (strncasecmp(content_type, FORM_CONTENT_TYPE, n) != 0)
		return false;
	return content_type[n] == '\0' || content_type[n] == ';' || content_type[n] == ' ' ||
	       content_type[n] == '\t';
}

static int
fail(struct delivery *d, int status, const char *why)
{
	set_error(d, why);
	return status;
}

/* Reasons may quote client bytes (jansson's errors do): keep them ASCII. */
static void
set_error(struct delivery *d, const char *text)
{
	copy_printable(d->error, sizeof(d->error), text);
}

/* SRC (NULL: empty) into DST, non-printable bytes as '?', truncated. */
static void
copy_printable(char *dst, size_t cap, const char *src)
{
	size_t i = 0;

	for (; src != NULL && i + 1 < cap && src[i] != '\0'; i++)
		dst[i] = isprint((unsigned char)src[i]) ? src[i] : '?';
	dst[i] = '\0';
}

static const char *
method_name(enum evhttp_cmd_type cmd)
{
	switch (cmd) {
	case EVHTTP_REQ_GET:
		return "GET";
	case EVHTTP_REQ_POST:
		return "POST";
	case EVHTTP_REQ_HEAD:
		return "HEAD";
	case EVHTTP_REQ_PUT:
		return "PUT";
	case EVHTTP_REQ_DELETE:
		return "DELETE";
	case EVHTTP_REQ_OPTIONS:
		return "OPTIONS";
	case EVHTTP_REQ_TRACE:
		return "TRACE";
	case EVHTTP_REQ_CONNECT:
		return "CONNECT";
	case EVHTTP_REQ_PATCH:
		return "PATCH";
	}
	return "OTHER";
}
