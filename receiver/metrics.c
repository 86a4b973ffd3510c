/*
 * metrics.c - histograms and the Prometheus text exposition format
 * (see metrics.h).  Format reference: a "# HELP" and a "# TYPE" line per
 * family, then one sample per line; histogram buckets are cumulative and
 * end with le="+Inf", followed by _sum and _count.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "http.h"
#include "metrics.h"
#include "reconcile.h"
#include "store.h"
#include "upstream.h"
#include "util.h"

const double metrics_latency_ms_bounds[] = {1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000};
const size_t metrics_latency_ms_n = sizeof(metrics_latency_ms_bounds) / sizeof(double);
const double metrics_batch_size_bounds[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512};
const size_t metrics_batch_size_n = sizeof(metrics_batch_size_bounds) / sizeof(double);

static void format_number(char *buf, size_t cap, double v);
static void render_http(struct evbuffer *out, const struct metrics_sources *src);
static void render_store(struct evbuffer *out, const struct metrics_sources *src);
static void render_reconcile(struct evbuffer *out, const struct reconcile_stats *r,
			     const struct upstream_stats *u);

void
histogram_init(struct histogram *h, const double *bounds, size_t n_bounds)
{
	memset(h, 0, sizeof(*h));
	h->bounds = bounds;
	h->n_bounds = n_bounds < HISTOGRAM_MAX_BUCKETS ? n_bounds : HISTOGRAM_MAX_BUCKETS - 1;
}

void
histogram_observe(struct histogram *h, double value)
{
	size_t i = 0;

	while (i < h->n_bounds && value > h->bounds[i])
		i++;
	h->buckets[i]++;
	h->sum += value;
	h->count++;
}

void
metrics_family(struct evbuffer *out, const char *name, const char *type, const char *help)
{
	evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void
metrics_single(struct evbuffer *out, const char *name, const char *type, const char *help,
	       double value)
{
	metrics_family(out, name, type, help);
	metrics_value(out, name, NULL, value);
}

void
metrics_value(struct evbuffer *out, const char *name, const char *labels, double value)
{
	char num[64];

	format_number(num, sizeof(num), value);
	if (labels != NULL && *labels != '\0')
		evbuffer_add_printf(out, "%s{%s} %s\n", name, labels, num);
	else
		evbuffer_add_printf(out, "%s %s\n", name, num);
}

void
metrics_histogram(struct evbuffer *out, const char *name, const char *labels,
		  const struct histogram *h)
{
	const char *sep = labels != NULL && *labels != '\0' ? "," : "";
	uint64_t cumulative = 0;
	char le[64], sum[64];

	if (labels == NULL)
		labels = "";
	for (size_t i = 0; i < h->n_bounds; i++) {
		cumulative += h->buckets[i];
		format_number(le, sizeof(le), h->bounds[i]);
		evbuffer_add_printf(out, "%s_bucket{%s%sle=\"%s\"} %llu\n", name, labels, sep, le,
				    (unsigned long long)cumulative);
	}
	cumulative += h->buckets[h->n_bounds];
	evbuffer_add_printf(out, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels, sep,
			    (unsigned long long)cumulative);
	format_number(sum, sizeof(sum), h->sum);
	if (*labels != '\0') {
		evbuffer_add_printf(out, "%s_sum{%s} %s\n%s_count{%s} %llu\n", name, labels, sum,
				    name, labels, (unsigned long long)h->count);
	} else {
		evbuffer_add_printf(out, "%s_sum %s\n%s_count %llu\n", name, sum, name,
				    (unsigned long long)h->count);
	}
}

void
metrics_label(char *dst, size_t cap, const char *value)
{
	size_t n = 0;

	for (; *value != '\0' && n + 3 < cap; value++) {
		if (*value == '\\' || *value == '"') {
			dst[n++] = '\\';
			dst[n++] = *value;
		} else if (*value == '\n') {
			dst[n++] = '\\';
			dst[n++] = 'n';
		} else {
			dst[n++] = *value;
		}
	}
	dst[n] = '\0';
}

/* Integers without a fraction, others with enough digits to round-trip. */
static void
format_number(char *buf, size_t cap, double v)
{
	if (isfinite(v) && v == floor(v) && fabs(v) < 1e15)
		snprintf(buf, cap, "%.0f", v);
	else
		snprintf(buf, cap, "%.17g", v);
}

void
metrics_render(struct evbuffer *out, const struct metrics_sources *src)
{
	char labels[96];

	metrics_family(out, "receiver_build_info", "gauge", "Version and schema of this build.");
	snprintf(labels, sizeof(labels), "version=\"%s\",schema=\"%d\"", RECEIVER_VERSION,
		 src->schema_version);
	metrics_value(out, "receiver_build_info", labels, 1);
	render_http(out, src);
	render_store(out, src);
	if (src->reconcile != NULL && src->upstream != NULL)
		render_reconcile(out, src->reconcile, src->upstream);
}

static void
render_http(struct evbuffer *out, const struct metrics_sources *src)
{
	const struct http_stats *h = src->http;
	char app[96], labels[160];

	metrics_family(out, "receiver_requests_total", "counter",
		       "Requests to callback paths, by app and HTTP status.");
	for (size_t row = 0; row < h->n_rows; row++) {
		metrics_label(app, sizeof(app),
			      row < src->cfg->n_apps ? src->cfg->apps[row].name : "");
		for (size_t k = 0; k < HTTP_STATUS_KINDS; k++) {
			uint64_t n = h->requests[row * HTTP_STATUS_KINDS + k];

			if (n == 0)
				continue;
			if (http_status_kinds[k] != 0)
				snprintf(labels, sizeof(labels), "app=\"%s\",status=\"%d\"", app,
					 http_status_kinds[k]);
			else
				snprintf(labels, sizeof(labels), "app=\"%s\",status=\"other\"",
					 app);
			metrics_value(out, "receiver_requests_total", labels, (double)n);
		}
	}
	metrics_single(out, "receiver_signature_failures_total", "counter",
		       "Pushes refused for a missing or wrong signature.",
		       (double)h->signature_failures);
	metrics_single(out, "receiver_open_connections", "gauge",
		       "Connections open on the main listener.", (double)h->open_connections);
	metrics_single(out, "receiver_connection_cap_reached_total", "counter",
		       "Times accepting paused at max_connections.",
		       (double)h->connection_cap_reached);
	metrics_single(out, "receiver_rejections_not_audited_total", "counter",
		       "Rejected requests beyond max_rejections_per_s: answered, not audited.",
		       (double)h->rejections_not_audited);
}

static void
render_store(struct evbuffer *out, const struct metrics_sources *src)
{
	const struct store_stats *s = src->store;

	metrics_single(out, "receiver_database_up", "gauge",
		       "1 when the ingest connection is up and the schema current.",
		       src->db_ready ? 1 : 0);
	metrics_single(out, "receiver_queue_depth", "gauge", "Pushes waiting for a commit.",
		       (double)src->queue_depth);
	metrics_family(out, "receiver_batches_total", "counter", "Ingest transactions, by result.");
	metrics_value(out, "receiver_batches_total", "result=\"committed\"",
		      (double)(s->batches - s->batches_failed));
	metrics_value(out, "receiver_batches_total", "result=\"failed\"",
		      (double)s->batches_failed);
	metrics_single(out, "receiver_committed_deliveries_total", "counter",
		       "Deliveries written in committed transactions.", (double)s->committed);
	metrics_single(out, "receiver_refused_total", "counter",
		       "Pushes answered 503: database away or queue full.", (double)s->refused);
	metrics_single(out, "receiver_audits_dropped_total", "counter",
		       "Audit rows of rejected requests that could not be written.",
		       (double)s->audits_dropped);
	metrics_family(out, "receiver_batch_size", "histogram", "Deliveries per transaction.");
	metrics_histogram(out, "receiver_batch_size", NULL, &s->batch_size);
	metrics_family(out, "receiver_commit_milliseconds", "histogram",
		       "From sending a batch to its commit.");
	metrics_histogram(out, "receiver_commit_milliseconds", NULL, &s->commit_ms);
}

static void
render_reconcile(struct evbuffer *out, const struct reconcile_stats *r,
		 const struct upstream_stats *u)
{
	if (r->jobs_known) {
		metrics_family(out, "receiver_reconcile_jobs", "gauge",
			       "Reconcile jobs in the database, by state.");
		metrics_value(out, "receiver_reconcile_jobs", "state=\"pending\"",
			      (double)r->jobs_pending);
		metrics_value(out, "receiver_reconcile_jobs", "state=\"dead\"",
			      (double)r->jobs_dead);
	}
	metrics_family(out, "receiver_reconcile_fetches_total", "counter",
		       "Jobs claimed, applied, failed and gone dead in this process.");
	metrics_value(out, "receiver_reconcile_fetches_total", "result=\"claimed\"",
		      (double)r->claimed);
	metrics_value(out, "receiver_reconcile_fetches_total", "result=\"applied\"",
		      (double)r->fetched);
	metrics_value(out, "receiver_reconcile_fetches_total", "result=\"failed\"",
		      (double)r->failed);
	metrics_value(out, "receiver_reconcile_fetches_total", "result=\"dead\"", (double)r->dead);
	metrics_single(out, "receiver_order_status_changes_total", "counter",
		       "Status changes recorded in order_changes by this process.",
		       (double)r->changed);
	metrics_family(out, "receiver_upstream_calls_total", "counter",
		       "Trade API calls, by outcome.");
	metrics_value(out, "receiver_upstream_calls_total", "outcome=\"ok\"", (double)u->ok);
	metrics_value(out, "receiver_upstream_calls_total", "outcome=\"timeout\"",
		      (double)u->timeouts);
	metrics_value(out, "receiver_upstream_calls_total", "outcome=\"credentials\"",
		      (double)u->permanent);
	metrics_value(out, "receiver_upstream_calls_total", "outcome=\"error\"",
		      (double)(u->failed - u->timeouts - u->permanent));
	metrics_family(out, "receiver_upstream_call_milliseconds", "histogram",
		       "Trade API call latency.");
	metrics_histogram(out, "receiver_upstream_call_milliseconds", NULL, &u->latency_ms);
	metrics_single(out, "receiver_sweeps_total", "counter", "Sweeps started by this process.",
		       (double)r->sweeps);
	metrics_single(out, "receiver_sweep_running", "gauge", "1 while a sweep runs here.",
		       r->sweeping ? 1 : 0);
	metrics_single(out, "receiver_sweep_page", "gauge", "The page the sweep is on.",
		       (double)r->sweep_page);
	metrics_single(out, "receiver_sweep_orders_total", "counter",
		       "Order records seen by sweeps.", (double)r->sweep_orders);
}
