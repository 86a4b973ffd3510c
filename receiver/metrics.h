/*
 * metrics.h - counters and histograms, and their Prometheus text format.
 *
 * Each module counts in its own struct and writes its own families with
 * the writers below (ingest_metrics, store_metrics, ...); nothing here is
 * shared or global, and this module knows none of them.  A histogram is a
 * fixed set of upper bounds with a count per bucket, a sum and a total,
 * exactly what the exposition format wants.
 */
#ifndef RECEIVER_METRICS_H
#define RECEIVER_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include <event2/buffer.h>

#define HISTOGRAM_MAX_BUCKETS 16

struct histogram {
	const double *bounds; /* ascending upper bounds, +Inf implied */
	size_t n_bounds;
	uint64_t buckets[HISTOGRAM_MAX_BUCKETS]; /* not cumulative; last is +Inf */
	double sum;
	uint64_t count;
};

/* Bounds used across the receiver. */
extern const double metrics_latency_ms_bounds[];
extern const size_t metrics_latency_ms_n;
extern const double metrics_batch_size_bounds[];
extern const size_t metrics_batch_size_n;

void histogram_init(struct histogram *h, const double *bounds, size_t n_bounds);
void histogram_observe(struct histogram *h, double value);

/* Exposition-format writers: one metric family at a time. */
void metrics_family(struct evbuffer *out, const char *name, const char *type, const char *help);
void metrics_value(struct evbuffer *out, const char *name, const char *labels, double value);
/* A family of samples, one per label set ("result=\"ok\""). */
struct metrics_sample {
	const char *labels;
	double value;
};
void metrics_samples(struct evbuffer *out, const char *name, const char *type, const char *help,
		     const struct metrics_sample *samples, size_t n);
/* A family of one unlabelled sample. */
void metrics_single(struct evbuffer *out, const char *name, const char *type, const char *help,
		    double value);
void metrics_histogram(struct evbuffer *out, const char *name, const char *labels,
		       const struct histogram *h);

/* Escape a label value (backslash, quote, newline) into DST. */
void metrics_label(char *dst, size_t cap, const char *value);

/* receiver_build_info: this build's version and schema. */
void metrics_build_info(struct evbuffer *out, int schema_version);

#endif
