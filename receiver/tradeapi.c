/*
 * tradeapi.c - the dajisaas trade API (see tradeapi.h, PROTOCOL.md s.5).
 *
 * Every call is a POST of a JSON object to base_url + path, carrying the
 * app's appKey and appSecret beside the call's own parameters; every answer
 * is a JSON object whose `code` is 200 on success, with the payload under
 * `data`.  An answer is judged in order: an HTTP answer at all (else the
 * client's reason), HTTP 200, JSON, code 200, then the payload itself: for
 * get/buyerView, data.baseInfo.id must be the order asked for; for
 * getBuyerOrderList, data.result is the page (absent: an empty page).  The
 * record handed on is cut from the raw answer (json_member), never
 * re-encoded, so numbers jansson cannot hold stay exact.
 *
 * Bad credentials are STATUS_PERMANENT: an HTTP 401 or 403, a code 401 or
 * 403, or a message that speaks of the app key or secret.
 *
 * A hostile or broken API gets only bounded memory: the client refuses an
 * answer over MAX_ANSWER_BYTES (and headers over 64 KiB), and json.c
 * refuses one of more than MAX_ANSWER_VALUES values before jansson builds
 * a tree of it.
 *
 * The secret: the request body is written by hand (make_body), once, into
 * the buffer the client wipes after sending, because jansson's
 * json_string() and json_dumps() leave copies in memory they free unwiped.
 * The API's own words (its message, the JSON error quoting its text) reach
 * an error only through copy_redacted(), which replaces each of the app's
 * secrets - the one sent, app_secret and previous_secrets - with
 * "[redacted]", matched on the whole text before anything is cut short.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "httpclient.h"
#include "json.h"
#include "metrics.h"
#include "tradeapi.h"

#define PATH_BUYER_VIEW "/alibaba/trade/get/buyerView"
#define PATH_ORDER_LIST "/alibaba/trade/getBuyerOrderList"
#define REDACTED	"[redacted]"

/*
 * The largest answer is a page of the sweep's 50 records.  One real record
 * (tests/fixtures/getBuyerOrderList.response.json) is 5.4 KB compact, 11 KB
 * pretty-printed, and 437 JSON values with its keys: a page is some 0.6 MB
 * and 22,000 values.  The limits leave a margin of 7 and 9 for orders of
 * many more items.  At them an answer costs at most its 4 MiB two or three
 * times (the client's buffer, its copy, the record cut from it) plus
 * jansson's tree: 8.5 MB of numbers or, for the dearest values (empty
 * objects), some 47 MB.
 */
#define MAX_ANSWER_BYTES  (4 * 1024 * 1024)
#define MAX_ANSWER_VALUES 200000

/* What a request asks for, and so how its answer is read. */
enum request_kind {
	REQ_ORDER,
	REQ_PAGE,
};

struct request {
	struct tradeapi *t;
	enum request_kind kind;
	int64_t order_id;
	tradeapi_fn fn;
	void *arg;
	const struct app_config *app; /* its secrets are redacted from errors */
	char *secret; /* the one sent (a SIGHUP may replace app's): wiped when freed */
};

/* One member of a request body: a string, or (STR NULL) the integer NUM. */
struct param {
	const char *key;
	const char *str;
	long long num;
};

/* make_body()'s output: counting only while OUT is NULL. */
struct writer {
	char *out;
	size_t n;
};

struct tradeapi {
	struct httpclient *client;
	uint64_t ok, failed, timeouts, permanent;
	struct histogram latency_ms;
};

static struct request *request_new(struct tradeapi *t, const struct app_config *app,
				   enum request_kind kind, int64_t order_id, tradeapi_fn fn,
				   void *arg);
static void request_free(struct request *rq);
static int post(struct tradeapi *t, const char *path, const struct param *params, size_t n,
		struct request *rq);
static char *make_body(const struct param *params, size_t n, const struct app_config *app,
		       size_t *len);
static void write_body(struct writer *w, const struct param *params, size_t n,
		       const struct app_config *app);
static void put(struct writer *w, const char *bytes, size_t n);
static void put_string(struct writer *w, const char *s);
static void on_answer(void *arg, const struct httpclient_answer *a);
static void judge(const struct request *rq, const struct httpclient_answer *a,
		  struct tradeapi_result *r, char **record);
static int judge_code(const struct request *rq, json_t *answer, struct tradeapi_result *r);
static int check_order(const struct request *rq, json_t *answer, struct tradeapi_result *r);
static char *cut(const char *body, size_t len, const char *const *path, size_t depth);
static void count(struct tradeapi *t, const struct tradeapi_result *r, long latency_ms);
static void api_time(time_t t, char *buf, size_t len);
static bool looks_like_credentials(const char *message);
static void copy_redacted(const struct request *rq, const char *in, char *out, size_t cap);
static size_t secret_at(const struct request *rq, const char *p);
static size_t match(const char *p, const char *secret);
static bool contains_nocase(const char *haystack, const char *needle);

struct tradeapi *
tradeapi_new(struct event_base *base, const struct upstream_config *cfg, char *err, size_t errlen)
{
	const struct httpclient_options o = {.url = cfg->base_url,
					     .ca_file = cfg->ca_file,
					     .url_setting = "upstream.base_url",
					     .ca_setting = "upstream.ca_file",
					     .timeout_ms = cfg->timeout_ms,
					     .max_concurrency = cfg->max_concurrency,
					     .max_rps = cfg->max_rps,
					     .max_body_bytes = MAX_ANSWER_BYTES};
	struct tradeapi *t = calloc(1, sizeof(*t));

	if (t == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	histogram_init(&t->latency_ms, metrics_latency_ms_bounds, metrics_latency_ms_n);
	t->client = httpclient_new(base, &o, err, errlen);
	if (t->client == NULL) {
		free(t);
		return NULL;
	}
	return t;
}

int
tradeapi_get_order(struct tradeapi *t, const struct app_config *app, int64_t order_id,
		   tradeapi_fn fn, void *arg)
{
	struct request *rq = request_new(t, app, REQ_ORDER, order_id, fn, arg);
	char id[24];

	if (rq == NULL)
		return -1;
	snprintf(id, sizeof(id), "%lld", (long long)order_id);
	return post(t, PATH_BUYER_VIEW,
		    (const struct param[]){{"webSite", "1688", 0}, {"orderId", id, 0}}, 2, rq);
}

int
tradeapi_list_orders(struct tradeapi *t, const struct app_config *app, time_t since, time_t until,
		     int page, int page_size, tradeapi_fn fn, void *arg)
{
	struct request *rq = request_new(t, app, REQ_PAGE, 0, fn, arg);
	char start[32], end[32];

	if (rq == NULL)
		return -1;
	api_time(since, start, sizeof(start));
	api_time(until, end, sizeof(end));
	return post(t, PATH_ORDER_LIST,
		    (const struct param[]){{"createStartTime", start, 0},
					   {"createEndTime", end, 0},
					   {"orderStatus", "", 0},
					   {"outOrderId", "", 0},
					   {"productName", "", 0},
					   {"page", NULL, page},
					   {"pageSize", NULL, page_size}},
		    7, rq);
}

size_t
tradeapi_pending(const struct tradeapi *t)
{
	return httpclient_pending(t->client);
}

void
tradeapi_metrics(const struct tradeapi *t, struct evbuffer *out)
{
	const struct metrics_sample calls[] = {
	    {"outcome=\"ok\"", (double)t->ok},
	    {"outcome=\"timeout\"", (double)t->timeouts},
	    {"outcome=\"credentials\"", (double)t->permanent},
	    {"outcome=\"error\"", (double)(t->failed - t->timeouts - t->permanent)}};

	metrics_samples(out, "receiver_upstream_calls_total", "counter",
			"Trade API calls, by outcome.", calls, 4);
	metrics_family(out, "receiver_upstream_call_milliseconds", "histogram",
		       "Trade API call latency.");
	metrics_histogram(out, "receiver_upstream_call_milliseconds", NULL, &t->latency_ms);
}

void
tradeapi_free(struct tradeapi *t)
{
	if (t == NULL)
		return;
	httpclient_free(t->client); /* each request pending hears STATUS_SHUTDOWN */
	free(t);
}

static struct request *
request_new(struct tradeapi *t, const struct app_config *app, enum request_kind kind,
	    int64_t order_id, tradeapi_fn fn, void *arg)
{
	struct request *rq = calloc(1, sizeof(*rq));

	if (rq == NULL)
		return NULL;
	*rq = (struct request){.t = t,
			       .kind = kind,
			       .order_id = order_id,
			       .fn = fn,
			       .arg = arg,
			       .app = app,
			       .secret = strdup(app->app_secret)};
	if (rq->secret == NULL) {
		free(rq);
		return NULL;
	}
	return rq;
}

static void
request_free(struct request *rq)
{
	OPENSSL_cleanse(rq->secret, strlen(rq->secret));
	free(rq->secret);
	free(rq);
}

/* PARAMS plus the app's appKey and appSecret, as a JSON object, to PATH. */
static int
post(struct tradeapi *t, const char *path, const struct param *params, size_t n, struct request *rq)
{
	size_t len;
	char *body = make_body(params, n, rq->app, &len);

	if (body == NULL ||
	    httpclient_post(t->client, path, "application/json", body, len, on_answer, rq) < 0) {
		request_free(rq); /* the client took BODY, or there was none */
		return -1;
	}
	return 0;
}

/* Sized by a counting pass, then written: the one copy of the secret. */
static char *
make_body(const struct param *params, size_t n, const struct app_config *app, size_t *len)
{
	struct writer w = {0};

	write_body(&w, params, n, app);
	w.out = malloc(w.n + 1);
	if (w.out == NULL)
		return NULL;
	*len = w.n;
	w.n = 0;
	write_body(&w, params, n, app);
	w.out[w.n] = '\0';
	return w.out;
}

static void
write_body(struct writer *w, const struct param *params, size_t n, const struct app_config *app)
{
	const struct param credentials[] = {{"appKey", app->app_key, 0},
					    {"appSecret", app->app_secret, 0}};

	put(w, "{", 1);
	for (size_t i = 0; i < n + 2; i++) {
		const struct param *p = i < n ? &params[i] : &credentials[i - n];

		if (i > 0)
			put(w, ",", 1);
		put_string(w, p->key);
		put(w, ":", 1);
		if (p->str != NULL) {
			put_string(w, p->str);
		} else {
			char num[24];

			put(w, num, (size_t)snprintf(num, sizeof(num), "%lld", p->num));
		}
	}
	put(w, "}", 1);
}

static void
put(struct writer *w, const char *bytes, size_t n)
{
	if (w->out != NULL)
		memcpy(w->out + w->n, bytes, n);
	w->n += n;
}

/* S as a JSON string: '"', '\\' and control bytes escaped, the rest as it is. */
static void
put_string(struct writer *w, const char *s)
{
	put(w, "\"", 1);
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;
		char esc[8];

		if (c == '"' || c == '\\')
			put(w, (const char[]){'\\', (char)c}, 2);
		else if (c < 0x20)
			put(w, esc, (size_t)snprintf(esc, sizeof(esc), "\\u%04x", c));
		else
			put(w, s, 1);
	}
	put(w, "\"", 1);
}

static void
on_answer(void *arg, const struct httpclient_answer *a)
{
	struct request *rq = arg;
	struct tradeapi_result r = {.status = a->status};
	char *record = NULL, composed[sizeof(r.error)];

	snprintf(composed, sizeof(composed), "%s", a->error);
	if (a->status == STATUS_OK)
		judge(rq, a, &r, &record);
	if (r.error[0] != '\0')
		memcpy(composed, r.error, sizeof(composed));
	/* Its parts were redacted before they were joined; the whole, too. */
	copy_redacted(rq, composed, r.error, sizeof(r.error));
	r.record = record;
	r.source = rq->kind == REQ_ORDER ? "buyerView" : "list";
	count(rq->t, &r, a->latency_ms);
	rq->fn(rq->arg, &r);
	free(record);
	request_free(rq);
}

/* An HTTP answer came: is it the record (or page) asked for? */
static void
judge(const struct request *rq, const struct httpclient_answer *a, struct tradeapi_result *r,
      char **record)
{
	static const char *const order_path[] = {"data"};
	static const char *const page_path[] = {"data", "result"};
	json_t *answer = NULL;
	char jerr[256], why[160];
	bool big = false;
	int loaded;

	r->status = STATUS_ERROR;
	/* jansson's reason may quote the answer: it is the API's text too. */
	loaded = json_load_object_max(a->body, a->body_len, MAX_ANSWER_VALUES, &answer, &big, jerr,
				      sizeof(jerr));
	if (loaded < 0) {
		json_decref(answer);
		answer = NULL;
		copy_redacted(rq, jerr, why, sizeof(why));
	}
	if (a->http_status != 200) {
		snprintf(r->error, sizeof(r->error), "HTTP %d from the trade API", a->http_status);
		if (a->http_status == 401 || a->http_status == 403)
			r->status = STATUS_PERMANENT;
	} else if (loaded == JSON_TOO_MANY_VALUES) {
		snprintf(r->error, sizeof(r->error), "answer has %s", why);
	} else if (answer == NULL) {
		snprintf(r->error, sizeof(r->error),
			 "the trade API answered something not JSON (%s)", why);
	} else if (judge_code(rq, answer, r) == 0 &&
		   (rq->kind == REQ_PAGE || check_order(rq, answer, r) == 0)) {
		if (rq->kind == REQ_ORDER) {
			*record = cut(a->body, a->body_len, order_path, 1);
		} else {
			json_t *list = json_object_get(json_object_get(answer, "data"), "result");

			*record = json_is_array(list) ? cut(a->body, a->body_len, page_path, 2)
						      : strdup("[]");
		}
		r->status = *record != NULL ? STATUS_OK : STATUS_NOMEM;
		if (*record == NULL)
			snprintf(r->error, sizeof(r->error), "out of memory");
	}
	json_decref(answer);
}

/* {"code":200,...} is success; any other code is an error with a message. */
static int
judge_code(const struct request *rq, json_t *answer, struct tradeapi_result *r)
{
	json_t *code = json_object_get(answer, "code");
	const char *message = json_string_value(json_object_get(answer, "message"));
	bool permanent;
	char text[160];

	if (json_is_integer(code) && json_integer_value(code) == 200)
		return 0;
	/* The API's message is shown, secret-free and only as printable ASCII. */
	copy_redacted(rq, message != NULL ? message : "no message", text, sizeof(text));
	for (size_t i = 0; text[i] != '\0'; i++)
		if ((unsigned char)text[i] < 0x20 || (unsigned char)text[i] > 0x7e)
			text[i] = '?';
	permanent = (json_is_integer(code) &&
		     (json_integer_value(code) == 401 || json_integer_value(code) == 403)) ||
		    looks_like_credentials(message);
	if (permanent)
		r->status = STATUS_PERMANENT;
	if (json_is_integer(code))
		snprintf(r->error, sizeof(r->error), "%strade API code %lld: %s",
			 permanent ? "bad credentials (not retried): " : "",
			 (long long)json_integer_value(code), text);
	else
		snprintf(r->error, sizeof(r->error), "trade API answer has no code: %s", text);
	return -1;
}

/* The answer must carry the record of the order asked for, nothing else. */
static int
check_order(const struct request *rq, json_t *answer, struct tradeapi_result *r)
{
	json_t *id =
	    json_object_get(json_object_get(json_object_get(answer, "data"), "baseInfo"), "id");
	long long got;

	if (id == NULL) {
		snprintf(r->error, sizeof(r->error),
			 "the trade API's answer has no data.baseInfo.id");
		return -1;
	}
	if (json_is_integer(id))
		got = json_integer_value(id);
	else if (json_is_string(id))
		got = strtoll(json_string_value(id), NULL, 10);
	else
		got = -1;
	if (got != rq->order_id) {
		snprintf(r->error, sizeof(r->error),
			 "wrong order: asked for %lld, the record is for %lld",
			 (long long)rq->order_id, got);
		return -1;
	}
	return 0;
}

/* The value at PATH in BODY, copied exactly as the API wrote it. */
static char *
cut(const char *body, size_t len, const char *const *path, size_t depth)
{
	size_t start, n;

	if (json_member(body, len, path, depth, &start, &n) < 0)
		return NULL;
	return strndup(body + start, n);
}

static void
count(struct tradeapi *t, const struct tradeapi_result *r, long latency_ms)
{
	if (r->status == STATUS_SHUTDOWN)
		return;
	histogram_observe(&t->latency_ms, (double)latency_ms);
	if (r->status == STATUS_OK) {
		t->ok++;
		return;
	}
	t->failed++;
	if (r->status == STATUS_TIMEOUT)
		t->timeouts++;
	if (r->status == STATUS_PERMANENT)
		t->permanent++;
}

/* "yyyyMMddHHmmssSSS+0800", in Shanghai time, as the list call wants. */
static void
api_time(time_t t, char *buf, size_t len)
{
	time_t local = t + SHANGHAI_OFFSET_S;
	struct tm tm;

	gmtime_r(&local, &tm);
	strftime(buf, len, "%Y%m%d%H%M%S000+0800", &tm);
}

static bool
looks_like_credentials(const char *message)
{
	static const char *const words[] = {"appkey",		"appsecret",  "app key",
					    "app secret",	"credential", "unauthori",
					    "permission denied"};

	if (message == NULL)
		return false;
	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
		if (contains_nocase(message, words[i]))
			return true;
	return false;
}

/*
 * IN into OUT (CAP > 0 bytes, cut short if need be) with each secret of
 * RQ's app replaced by "[redacted]".  Matched on IN whole, so cutting can
 * leave a "[redacted]" short, never a secret's beginning.
 */
static void
copy_redacted(const struct request *rq, const char *in, char *out, size_t cap)
{
	size_t o = 0;

	while (*in != '\0' && o + 1 < cap) {
		size_t n = secret_at(rq, in);

		if (n == 0) {
			out[o++] = *in++;
			continue;
		}
		for (const char *r = REDACTED; *r != '\0' && o + 1 < cap; r++)
			out[o++] = *r;
		in += n;
	}
	out[o] = '\0';
}

/* The length of the longest of RQ's secrets that P starts with, or 0. */
static size_t
secret_at(const struct request *rq, const char *p)
{
	const struct app_config *app = rq->app;
	size_t best = match(p, rq->secret);

	if (match(p, app->app_secret) > best)
		best = match(p, app->app_secret);
	for (size_t i = 0; i < app->n_previous_secrets; i++)
		if (match(p, app->previous_secrets[i]) > best)
			best = match(p, app->previous_secrets[i]);
	return best;
}

static size_t
match(const char *p, const char *secret)
{
	size_t n = secret != NULL ? strlen(secret) : 0;

	return n > 0 && strncmp(p, secret, n) == 0 ? n : 0;
}

static bool
contains_nocase(const char *haystack, const char *needle)
{
	size_t n = strlen(needle);

	for (; *haystack != '\0'; haystack++)
		if (strncasecmp(haystack, needle, n) == 0)
			return true;
	return false;
}
