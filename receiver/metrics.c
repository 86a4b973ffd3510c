/*
 * metrics.c - histograms and the Prometheus text exposition format
 * (see metrics.h).  Format reference: a "# HELP" and a "# TYPE" line per
 * family, then one sample per line; histogram buckets are cumulative and
 * end with le="+Inf", followed by _sum and _count.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "metrics.h"
#include "util.h"

const double metrics_latency_ms_bounds[] = {1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000};
const size_t metrics_latency_ms_n = sizeof(metrics_latency_ms_bounds) / sizeof(double);
const double metrics_batch_size_bounds[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512};
const size_t metrics_batch_size_n = sizeof(metrics_batch_size_bounds) / sizeof(double);

static void format_number(char *buf, size_t cap, double v);

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
metrics_samples(struct evbuffer *out, const char *name, const char *type, const char *help,
		const struct metrics_sample *samples, size_t n)
{
	metrics_family(out, name, type, help);
	for (size_t i = 0; i < n; i++)
		metrics_value(out, name, samples[i].labels, samples[i].value);
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
metrics_build_info(struct evbuffer *out, int schema_version)
{
	char labels[96];

	metrics_family(out, "receiver_build_info", "gauge", "Version and schema of this build.");
	snprintf(labels, sizeof(labels), "version=\"%s\",schema=\"%d\"", RECEIVER_VERSION,
		 schema_version);
	metrics_value(out, "receiver_build_info", labels, 1);
}
