/*
 * reconcile.c - refetch announced orders and apply them (see reconcile.h).
 *
 * Two resources are shared by all work: the trade API (tradeapi.c, whose
 * client enforces the concurrency cap and the rate limit) and this module's
 * own database connection (db.c; its own so that fetching never delays an
 * ingest commit).  The connection runs one query at a time, so every
 * database step is an `op` in a FIFO queue, run as soon as the connection
 * is idle.
 *
 * A job's life: claimed (receiver_claim_jobs sets a lease, so no other
 * receiver takes it) -> the order's record from the trade API -> either
 * receiver_finish_job (apply
 * the record, retire the job unless a message asked again meanwhile) or
 * receiver_job_failed (due again after a backoff with jitter, or dead).
 * If this process dies mid-way, the lease simply runs out and the job is
 * claimed again: nothing lives only in this process's memory.
 *
 * A sweep: claim the app's sweep (receiver_claim_sweep, so one receiver
 * sweeps each interval) -> the app's orders from the trade API page by
 * page -> receiver_apply_records for each page -> receiver_finish_sweep.
 * This module knows neither the API's paths nor its bodies nor its
 * answers: it gets records, or an error status, from tradeapi.c.
 *
 * All status logic (modifyTime guard, snapshots, order_changes, NOTIFY)
 * is in SQL, in receiver_apply_order: jobs, sweeps and the command line
 * cannot disagree about it.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include "dbq.h"
#include "log.h"
#include "metrics.h"
#include "reconcile.h"
#include "tradeapi.h"
#include "util.h"

#define TICK_MS		1000 /* look for due jobs at least this often */
#define SWEEP_CHECK_S	30   /* look for a due sweep at most this often */
#define SWEEP_PAGE_SIZE 50
#define SWEEP_MAX_PAGES 10000 /* 500,000 orders: a runaway guard, not a limit */
#define LEASE_MARGIN_MS 10000
#define COUNT_JOBS_S	5 /* refresh the job counts for /metrics */

#define SQL_CLAIM "SELECT order_id, app, generation, attempts FROM receiver_claim_jobs($1, $2)"
#define SQL_FINISH                                                                                 \
	"SELECT outcome, old_status, new_status FROM receiver_finish_job($1, $2, $3, $4, $5)"
#define SQL_FAILED "SELECT receiver_job_failed($1, $2, $3, $4, $5, $6)"
#define SQL_APPLY_ONE                                                                              \
	"SELECT outcome, old_status, new_status FROM "                                             \
	"receiver_apply_order($1, $2, $3::jsonb, 'command')"
#define SQL_JOB_COUNTS                                                                             \
	"SELECT count(*) FILTER (WHERE state = 'pending'), count(*) FILTER (WHERE state = "        \
	"'dead') FROM reconcile_jobs"
#define SQL_SWEEP_CLAIM "SELECT receiver_claim_sweep($1, $2)"
#define SQL_SWEEP_PAGE                                                                             \
	"SELECT applied, unchanged, stale, unusable FROM receiver_apply_records($1, $2, $3)"
#define SQL_SWEEP_END "SELECT receiver_finish_sweep($1, $2, $3)"

struct reconciler;

struct reconcile_stats {
	uint64_t claimed;
	uint64_t fetched; /* answers applied */
	uint64_t failed;  /* fetches or applies that failed */
	uint64_t dead;	  /* jobs that went dead */
	uint64_t changed; /* status changes recorded */
	uint64_t sweeps;
	uint64_t sweep_pages;
	uint64_t sweep_orders;
	bool sweeping;	      /* a sweep is under way in this process */
	int sweep_page;	      /* its current page */
	bool jobs_known;      /* the two counts below have been read */
	int64_t jobs_pending; /* in the whole database, refreshed every few seconds */
	int64_t jobs_dead;
};

/* An order being fetched: a claimed job, or a command-line fetch. */
struct job {
	struct reconciler *r;
	int64_t order_id;
	char order_text[24];
	const struct app_config *app;
	long long generation; /* -1: not a job (command line) */
	int attempts;
	reconcile_done_fn fn; /* command line only */
	void *fn_arg;
};

struct sweep {
	struct reconciler *r;
	const struct app_config *app;
	time_t since, until;
	int page;
	long seen;
	bool background;
	char error[256];
	reconcile_done_fn fn;
	void *fn_arg;
};

struct reconciler {
	struct event_base *base;
	const struct config *cfg;
	struct dbq *q; /* this module's own connection, one step at a time */
	struct tradeapi *api;
	struct event *ev_tick;
	bool background;
	bool stopping; /* no new work; what is abandoned is no failure */

	bool claiming;
	size_t jobs_running;
	struct sweep *sweep;	  /* the one sweep under way, or NULL */
	int64_t next_sweep_check; /* monotonic, microseconds */
	int64_t next_count;
	bool counting;
	size_t sweep_app; /* which app the background sweep looks at next */

	struct reconcile_stats stats;
};

static void on_db_up(void *arg);
static void on_notify(void *arg, const char *channel, const char *payload);
static void on_tick(evutil_socket_t fd, short what, void *arg);
static void claim(struct reconciler *r);
static void claimed(void *owner, void *ctx, enum status st, const PGresult *res, const char *error);
static void job_fetch(struct job *job);
static void job_answer(void *arg, const struct tradeapi_result *res);
static void job_failed(struct job *job, const char *why, bool permanent);
static void job_finished(void *owner, void *ctx, enum status st, const PGresult *res,
			 const char *error);
static void job_fail_recorded(void *owner, void *ctx, enum status st, const PGresult *res,
			      const char *error);
static void job_end(struct job *job, bool ok, const char *text);
static long lease_for(const struct config *cfg, size_t ahead);
static void count_jobs(struct reconciler *r);
static void jobs_counted(void *owner, void *ctx, enum status st, const PGresult *res,
			 const char *error);
static void sweep_check(struct reconciler *r);
static void sweep_claimed(void *owner, void *ctx, enum status st, const PGresult *res,
			  const char *error);
static void sweep_page(struct sweep *sw);
static void sweep_answer(void *arg, const struct tradeapi_result *res);
static void sweep_applied(void *owner, void *ctx, enum status st, const PGresult *res,
			  const char *error);
static void sweep_end(struct sweep *sw, const char *error);
static void sweep_recorded(void *owner, void *ctx, enum status st, const PGresult *res,
			   const char *error);

struct reconciler *
reconciler_new(struct event_base *base, const struct config *cfg, int schema_version, char *err,
	       size_t errlen)
{
	static const struct db_handlers handlers = {on_db_up, NULL, on_notify};
	struct reconciler *r = calloc(1, sizeof(*r));

	if (r == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	r->base = base;
	r->cfg = cfg;
	r->api = tradeapi_new(base, &cfg->upstream, err, errlen);
	if (r->api == NULL) {
		free(r);
		return NULL;
	}
	r->q = dbq_new(base, &cfg->database, schema_version, "reconcile", &handlers, r);
	r->ev_tick = event_new(base, -1, EV_PERSIST, on_tick, r);
	if (r->q == NULL || r->ev_tick == NULL) {
		snprintf(err, errlen, "out of memory");
		reconciler_free(r);
		return NULL;
	}
	dbq_start(r->q);
	return r;
}

void
reconciler_start(struct reconciler *r)
{
	struct timeval tick = util_tv_ms(TICK_MS);

	r->background = true;
	dbq_listen(r->q, "reconcile_jobs");
	event_add(r->ev_tick, &tick);
	if (r->cfg->reconcile.sweep_interval_s > 0)
		r->next_sweep_check = util_mono_us() + 5000000; /* let the daemon settle first */
}

void
reconciler_fetch(struct reconciler *r, const struct app_config *app, int64_t order_id,
		 reconcile_done_fn fn, void *arg)
{
	struct job *job = calloc(1, sizeof(*job));

	if (job == NULL) {
		fn(arg, false, "out of memory");
		return;
	}
	job->r = r;
	job->order_id = order_id;
	snprintf(job->order_text, sizeof(job->order_text), "%lld", (long long)order_id);
	job->app = app;
	job->generation = -1;
	job->fn = fn;
	job->fn_arg = arg;
	r->jobs_running++;
	job_fetch(job);
}

void
reconciler_sweep(struct reconciler *r, const struct app_config *app, time_t since, time_t until,
		 reconcile_done_fn fn, void *arg)
{
	struct sweep *sw = calloc(1, sizeof(*sw));

	if (sw == NULL || r->sweep != NULL) {
		free(sw);
		fn(arg, false, sw == NULL ? "out of memory" : "a sweep is already under way");
		return;
	}
	sw->r = r;
	sw->app = app;
	sw->since = since;
	sw->until = until;
	sw->page = 1;
	sw->fn = fn;
	sw->fn_arg = arg;
	r->sweep = sw;
	sweep_page(sw);
}

void
reconciler_metrics(const struct reconciler *rc, struct evbuffer *out)
{
	const struct reconcile_stats *r = &rc->stats;
	const struct metrics_sample jobs[] = {{"state=\"pending\"", (double)r->jobs_pending},
					      {"state=\"dead\"", (double)r->jobs_dead}};
	const struct metrics_sample fetches[] = {{"result=\"claimed\"", (double)r->claimed},
						 {"result=\"applied\"", (double)r->fetched},
						 {"result=\"failed\"", (double)r->failed},
						 {"result=\"dead\"", (double)r->dead}};

	if (r->jobs_known)
		metrics_samples(out, "receiver_reconcile_jobs", "gauge",
				"Reconcile jobs in the database, by state.", jobs, 2);
	metrics_samples(out, "receiver_reconcile_fetches_total", "counter",
			"Jobs claimed, applied, failed and gone dead in this process.", fetches, 4);
	metrics_single(out, "receiver_order_status_changes_total", "counter",
		       "Status changes recorded in order_changes by this process.",
		       (double)r->changed);
	tradeapi_metrics(rc->api, out);
	metrics_single(out, "receiver_sweeps_total", "counter", "Sweeps started by this process.",
		       (double)r->sweeps);
	metrics_single(out, "receiver_sweep_running", "gauge", "1 while a sweep runs here.",
		       r->sweeping ? 1 : 0);
	metrics_single(out, "receiver_sweep_page", "gauge", "The page the sweep is on.",
		       (double)r->sweep_page);
	metrics_single(out, "receiver_sweep_orders_total", "counter",
		       "Order records seen by sweeps.", (double)r->sweep_orders);
}

void
reconciler_stop(struct reconciler *r)
{
	r->background = false;
	event_del(r->ev_tick);
}

void
reconciler_free(struct reconciler *r)
{
	if (r == NULL)
		return;
	r->background = false;
	r->stopping = true;
	/* Abandoned calls report STATUS_SHUTDOWN; their jobs' leases expire. */
	tradeapi_free(r->api);
	r->api = NULL;
	dbq_free(r->q); /* its steps report STATUS_SHUTDOWN */
	r->q = NULL;
	if (r->ev_tick != NULL)
		event_free(r->ev_tick);
	free(r->sweep);
	free(r);
}

/* --- the database ------------------------------------------------------- */

static void
on_db_up(void *arg)
{
	struct reconciler *r = arg;

	if (r->background)
		claim(r);
}

static void
on_notify(void *arg, const char *channel, const char *payload)
{
	(void)channel;
	(void)payload;
	claim(arg);
}

static void
on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct reconciler *r = arg;

	(void)fd;
	(void)what;
	claim(r);
	count_jobs(r);
	if (r->cfg->reconcile.sweep_interval_s > 0 && r->sweep == NULL &&
	    util_mono_us() >= r->next_sweep_check)
		sweep_check(r);
}

/* --- jobs --------------------------------------------------------------- */

/* Claim as many due jobs as there are free fetch slots. */
static void
claim(struct reconciler *r)
{
	const struct config *cfg = r->cfg;
	size_t slots = (size_t)cfg->upstream.max_concurrency;
	char limit[24], lease[24];
	long lease_ms;

	if (!r->background || r->stopping || r->claiming || !dbq_up(r->q) ||
	    r->jobs_running >= slots)
		return;
	slots -= r->jobs_running;
	lease_ms = lease_for(cfg, tradeapi_pending(r->api) + slots);
	snprintf(limit, sizeof(limit), "%zu", slots);
	snprintf(lease, sizeof(lease), "%ld", lease_ms);
	r->claiming = true;
	dbq_add(r->q, SQL_CLAIM, claimed, NULL, 2, limit, lease);
}

static void
claimed(void *owner, void *ctx, enum status st, const PGresult *res, const char *error)
{
	struct reconciler *r = owner;
	(void)ctx;
	r->claiming = false;
	if (st != STATUS_OK) {
		log_event(LOG_WARN, "claim_failed", "cannot claim reconcile jobs: %s", error);
		return;
	}
	for (int i = 0; i < PQntuples(res); i++) {
		struct job *job = calloc(1, sizeof(*job));
		const char *app = PQgetvalue(res, i, 1);

		if (job == NULL)
			break; /* the lease brings it back */
		job->r = r;
		job->order_id = strtoll(PQgetvalue(res, i, 0), NULL, 10);
		snprintf(job->order_text, sizeof(job->order_text), "%s", PQgetvalue(res, i, 0));
		job->generation = strtoll(PQgetvalue(res, i, 2), NULL, 10);
		job->attempts = atoi(PQgetvalue(res, i, 3));
		job->app = config_app_by_name(r->cfg, app);
		r->jobs_running++;
		r->stats.claimed++;
		if (job->app == NULL) {
			char why[128];

			snprintf(why, sizeof(why), "no [[app]] named '%.60s' in the configuration",
				 app);
			job_failed(job, why, true);
			continue;
		}
		job_fetch(job);
	}
	/* A full claim may mean more are due. */
	if (PQntuples(res) > 0)
		claim(r);
}

static void
job_fetch(struct job *job)
{
	if (tradeapi_get_order(job->r->api, job->app, job->order_id, job_answer, job) < 0)
		job_failed(job, "out of memory", false);
}

static void
job_answer(void *arg, const struct tradeapi_result *res)
{
	struct job *job = arg;
	struct reconciler *r = job->r;
	char gen[24];

	/* Abandoned at shutdown: not a failure; the lease brings the job back. */
	if (res->status == STATUS_SHUTDOWN) {
		job_end(job, false, "shutting down");
		return;
	}
	if (res->status != STATUS_OK) {
		job_failed(job, res->error, res->status == STATUS_PERMANENT);
		return;
	}
	if (job->generation < 0) {
		dbq_add(r->q, SQL_APPLY_ONE, job_finished, job, 3, job->order_text, job->app->name,
			res->record);
		return;
	}
	snprintf(gen, sizeof(gen), "%lld", job->generation);
	dbq_add(r->q, SQL_FINISH, job_finished, job, 5, job->order_text, job->app->name, gen,
		res->record, res->source);
}

static void
job_finished(void *owner, void *ctx, enum status st, const PGresult *res, const char *error)
{
	struct reconciler *r = owner;
	struct job *job = ctx;
	char text[256];

	if (res == NULL || PQntuples(res) != 1) {
		char why[256];

		snprintf(why, sizeof(why), "cannot apply the record: %s",
			 error != NULL ? error : "no result");
		if (st == STATUS_SHUTDOWN)
			job_end(job, false, error);
		else
			job_failed(job, why, false);
		return;
	}
	r->stats.fetched++;
	if (strcmp(PQgetvalue(res, 0, 0), "applied") == 0) {
		r->stats.changed++;
		log_event(LOG_INFO, "order_status_changed", "order %s: %s -> %s", job->order_text,
			  PQgetisnull(res, 0, 1) ? "(new)" : PQgetvalue(res, 0, 1),
			  PQgetvalue(res, 0, 2));
	}
	snprintf(text, sizeof(text), "%s: %s (%s)", job->order_text,
		 PQgetisnull(res, 0, 2) ? "(no status)" : PQgetvalue(res, 0, 2),
		 PQgetvalue(res, 0, 0));
	job_end(job, true, text);
}

/* Record the failure: due again after a backoff, or dead. */
static void
job_failed(struct job *job, const char *why, bool permanent)
{
	const struct reconcile_config *rc = &job->r->cfg->reconcile;
	char gen[24], retry[16], max[16];

	job->r->stats.failed++;
	if (job->generation < 0)
		log_event(LOG_WARN, "fetch_failed", "order %s: %s", job->order_text, why);
	else
		log_event(permanent ? LOG_ERROR : LOG_WARN, "fetch_failed",
			  "order %s (attempt %d): %s%s", job->order_text, job->attempts, why,
			  permanent ? " - retrying cannot fix this" : "");
	if (job->generation < 0 || job->r->q == NULL) {
		char text[320];

		snprintf(text, sizeof(text), "%s: %s", job->order_text, why);
		job_end(job, false, text);
		return;
	}
	snprintf(gen, sizeof(gen), "%lld", job->generation);
	snprintf(retry, sizeof(retry), "%d",
		 (int)util_backoff_ms(rc->backoff_min_ms, rc->backoff_max_ms, job->attempts));
	snprintf(max, sizeof(max), "%d", rc->max_attempts);
	dbq_add(job->r->q, SQL_FAILED, job_fail_recorded, job, 6, job->order_text, gen, why, retry,
		max, permanent ? "true" : "false");
}

static void
job_fail_recorded(void *owner, void *ctx, enum status st, const PGresult *res, const char *error)
{
	struct reconciler *r = owner;
	struct job *job = ctx;

	if (st == STATUS_OK && PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "dead") == 0) {
		r->stats.dead++;
		log_event(LOG_ERROR, "job_dead", "order %s: gave up after %d attempts",
			  job->order_text, job->attempts);
	} else if (st != STATUS_OK) {
		log_event(LOG_WARN, "job_failure_not_recorded", "order %s: %s (its lease expires)",
			  job->order_text, error);
	}
	job_end(job, false, NULL);
}

static void
job_end(struct job *job, bool ok, const char *text)
{
	struct reconciler *r = job->r;

	r->jobs_running--;
	if (job->fn != NULL)
		job->fn(job->fn_arg, ok, text != NULL ? text : "failed");
	free(job);
	if (!r->stopping)
		claim(r);
}

/*
 * How long a claimed job may take: the last of AHEAD calls (every call
 * queued or running in the client, this claim's included) starts only when
 * the rate limit and the concurrency cap let it - at worst after each
 * earlier wave of max_concurrency calls timed out - and may then take
 * timeout_ms itself.  Past the lease another receiver may claim the job,
 * so the lease must never run out before the fetch has ended.
 */
static long
lease_for(const struct config *cfg, size_t ahead)
{
	const struct upstream_config *u = &cfg->upstream;
	long waves = (long)(ahead / (size_t)u->max_concurrency) + 1;

	return (long)ahead * 1000 / u->max_rps + (waves + 1) * (long)u->timeout_ms +
	       LEASE_MARGIN_MS;
}

/* The job counts /metrics shows: one cheap query every few seconds. */
static void
count_jobs(struct reconciler *r)
{
	int64_t now = util_mono_us();

	if (r->counting || now < r->next_count || !dbq_up(r->q))
		return;
	r->next_count = now + COUNT_JOBS_S * 1000000LL;
	r->counting = true;
	dbq_add(r->q, SQL_JOB_COUNTS, jobs_counted, NULL, 0);
}

static void
jobs_counted(void *owner, void *ctx, enum status st, const PGresult *res, const char *error)
{
	struct reconciler *r = owner;
	(void)ctx;
	(void)error;
	r->counting = false;
	if (st != STATUS_OK || PQntuples(res) != 1)
		return;
	r->stats.jobs_known = true;
	r->stats.jobs_pending = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	r->stats.jobs_dead = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
}

/* --- sweeps ------------------------------------------------------------- */

/* Try to claim the sweep of the next app; one app per check. */
static void
sweep_check(struct reconciler *r)
{
	const struct app_config *app;
	char interval[16];

	r->next_sweep_check =
	    util_mono_us() + 1000000LL * (r->cfg->reconcile.sweep_interval_s < SWEEP_CHECK_S
					      ? r->cfg->reconcile.sweep_interval_s
					      : SWEEP_CHECK_S);
	if (!dbq_up(r->q) || r->cfg->n_apps == 0)
		return;
	app = &r->cfg->apps[r->sweep_app++ % r->cfg->n_apps];
	snprintf(interval, sizeof(interval), "%d", r->cfg->reconcile.sweep_interval_s);
	dbq_add(r->q, SQL_SWEEP_CLAIM, sweep_claimed, (void *)app, 2, app->name, interval);
}

static void
sweep_claimed(void *owner, void *ctx, enum status st, const PGresult *res, const char *error)
{
	struct reconciler *r = owner;
	const struct app_config *app = ctx;
	struct sweep *sw;

	(void)error;
	if (st != STATUS_OK || PQntuples(res) != 1 || strcmp(PQgetvalue(res, 0, 0), "t") != 0 ||
	    r->sweep != NULL)
		return;
	sw = calloc(1, sizeof(*sw));
	if (sw == NULL)
		return;
	sw->r = r;
	sw->app = app;
	sw->until = time(NULL);
	sw->since = sw->until - r->cfg->reconcile.sweep_window_s;
	sw->page = 1;
	sw->background = true;
	r->sweep = sw;
	r->stats.sweeps++;
	log_event(LOG_INFO, "sweep_started", "app %s: orders created in the last %d s", app->name,
		  r->cfg->reconcile.sweep_window_s);
	sweep_page(sw);
}

static void
sweep_page(struct sweep *sw)
{
	sw->r->stats.sweeping = true;
	sw->r->stats.sweep_page = sw->page;
	if (tradeapi_list_orders(sw->r->api, sw->app, sw->since, sw->until, sw->page,
				 SWEEP_PAGE_SIZE, sweep_answer, sw) < 0)
		sweep_end(sw, "out of memory");
}

static void
sweep_answer(void *arg, const struct tradeapi_result *res)
{
	struct sweep *sw = arg;

	if (res->status == STATUS_SHUTDOWN) {
		sweep_end(sw, "shutting down");
		return;
	}
	if (res->status != STATUS_OK) {
		sweep_end(sw, res->error);
		return;
	}
	sw->r->stats.sweep_pages++;
	dbq_add(sw->r->q, SQL_SWEEP_PAGE, sweep_applied, sw, 3, sw->app->name, res->record,
		res->source);
}

static void
sweep_applied(void *owner, void *ctx, enum status st, const PGresult *res, const char *error)
{
	struct reconciler *r = owner;
	struct sweep *sw = ctx;
	long n;

	if (st != STATUS_OK || PQntuples(res) != 1) {
		sweep_end(sw, error != NULL ? error : "no result");
		return;
	}
	n = atol(PQgetvalue(res, 0, 0)) + atol(PQgetvalue(res, 0, 1)) +
	    atol(PQgetvalue(res, 0, 2)) + atol(PQgetvalue(res, 0, 3));
	sw->seen += n;
	r->stats.sweep_orders += (uint64_t)n;
	if (n < SWEEP_PAGE_SIZE || sw->page >= SWEEP_MAX_PAGES) {
		sweep_end(sw, NULL);
		return;
	}
	sw->page++;
	sweep_page(sw);
}

static void
sweep_end(struct sweep *sw, const char *error)
{
	struct reconciler *r = sw->r;
	char seen[24], text[320];

	r->stats.sweeping = false;
	snprintf(sw->error, sizeof(sw->error), "%s", error != NULL ? error : "");
	if (error != NULL)
		log_event(LOG_WARN, "sweep_failed", "app %s, page %d: %s", sw->app->name, sw->page,
			  error);
	else
		log_event(LOG_INFO, "sweep_done", "app %s: %ld orders in %d page(s)", sw->app->name,
			  sw->seen, sw->page);
	if (!sw->background) {
		snprintf(text, sizeof(text), "%ld orders seen in %d page(s)%s%s", sw->seen,
			 sw->page, error != NULL ? "; stopped: " : "", error != NULL ? error : "");
		r->sweep = NULL;
		sw->fn(sw->fn_arg, error == NULL, text);
		free(sw);
		return;
	}
	snprintf(seen, sizeof(seen), "%ld", sw->seen);
	if (r->stopping) {
		sweep_recorded(r, sw, STATUS_SHUTDOWN, NULL, "shutting down");
		return;
	}
	dbq_add(r->q, SQL_SWEEP_END, sweep_recorded, sw, 3, sw->app->name, seen, sw->error);
}

static void
sweep_recorded(void *owner, void *ctx, enum status st, const PGresult *res, const char *error)
{
	struct reconciler *r = owner;
	(void)st;
	(void)res;
	(void)error;
	if (r->sweep == ctx)
		r->sweep = NULL;
	free(ctx);
}
