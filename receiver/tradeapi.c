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

#define PATH_BUYER_VIEW	 "/alibaba/trade/get/buyerView"
#define PATH_ORDER_LIST	 "/alibaba/trade/getBuyerOrderList"
#define MAX_ANSWER_BYTES (16 * 1024 * 1024)

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
};

struct tradeapi {
	struct httpclient *client;
	uint64_t ok, failed, timeouts, permanent;
	struct histogram latency_ms;
};

static int post(struct tradeapi *t, const struct app_config *app, const char *path, json_t *params,
		struct request *rq);
static void on_answer(void *arg, const struct httpclient_answer *a);
static void judge(const struct request *rq, const struct httpclient_answer *a,
		  struct tradeapi_result *r, char **record);
static int judge_code(json_t *answer, struct tradeapi_result *r);
static int check_order(const struct request *rq, json_t *answer, struct tradeapi_result *r);
static char *cut(const char *body, size_t len, const char *const *path, size_t depth);
static void count(struct tradeapi *t, const struct tradeapi_result *r, long latency_ms);
static void api_time(time_t t, char *buf, size_t len);
static bool looks_like_credentials(const char *message);
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
	struct request *rq = calloc(1, sizeof(*rq));
	char id[24];

	if (rq == NULL)
		return -1;
	*rq = (struct request){t, REQ_ORDER, order_id, fn, arg};
	snprintf(id, sizeof(id), "%lld", (long long)order_id);
	return post(t, app, PATH_BUYER_VIEW,
		    json_pack("{s:s, s:s}", "webSite", "1688", "orderId", id), rq);
}

int
tradeapi_list_orders(struct tradeapi *t, const struct app_config *app, time_t since, time_t until,
		     int page, int page_size, tradeapi_fn fn, void *arg)
{
	struct request *rq = calloc(1, sizeof(*rq));
	char start[32], end[32];

	if (rq == NULL)
		return -1;
	*rq = (struct request){t, REQ_PAGE, 0, fn, arg};
	api_time(since, start, sizeof(start));
	api_time(until, end, sizeof(end));
	return post(t, app, PATH_ORDER_LIST,
		    json_pack("{s:s, s:s, s:s, s:s, s:s, s:i, s:i}", "createStartTime", start,
			      "createEndTime", end, "orderStatus", "", "outOrderId", "",
			      "productName", "", "page", page, "pageSize", page_size),
		    rq);
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

/*
 * PARAMS (stolen) plus APP's appKey and appSecret, as JSON, to PATH.  The
 * object held the secret too: it is overwritten before it is freed, and
 * the client wipes the body.
 */
static int
post(struct tradeapi *t, const struct app_config *app, const char *path, json_t *params,
     struct request *rq)
{
	char *body;

	if (params == NULL) {
		free(rq);
		return -1;
	}
	json_object_set_new(params, "appKey", json_string(app->app_key));
	json_object_set_new(params, "appSecret", json_string(app->app_secret));
	body = json_dumps(params, JSON_COMPACT);
	json_object_set_new(params, "appSecret", json_string(""));
	json_decref(params);
	if (body == NULL || httpclient_post(t->client, path, "application/json", body, strlen(body),
					    on_answer, rq) < 0) {
		free(rq); /* the client took BODY, or there was none */
		return -1;
	}
	return 0;
}

static void
on_answer(void *arg, const struct httpclient_answer *a)
{
	struct request *rq = arg;
	struct tradeapi_result r = {.status = a->status};
	char *record = NULL;

	snprintf(r.error, sizeof(r.error), "%s", a->error);
	if (a->status == STATUS_OK)
		judge(rq, a, &r, &record);
	r.record = record;
	r.source = rq->kind == REQ_ORDER ? "buyerView" : "list";
	count(rq->t, &r, a->latency_ms);
	rq->fn(rq->arg, &r);
	free(record);
	free(rq);
}

/* An HTTP answer came: is it the record (or page) asked for? */
static void
judge(const struct request *rq, const struct httpclient_answer *a, struct tradeapi_result *r,
      char **record)
{
	static const char *const order_path[] = {"data"};
	static const char *const page_path[] = {"data", "result"};
	json_t *answer = NULL;
	char jerr[128];
	bool big = false;

	r->status = STATUS_ERROR;
	if (json_load_object(a->body, a->body_len, &answer, &big, jerr, sizeof(jerr)) < 0) {
		json_decref(answer);
		answer = NULL;
	}
	if (a->http_status != 200) {
		snprintf(r->error, sizeof(r->error), "HTTP %d from the trade API", a->http_status);
		if (a->http_status == 401 || a->http_status == 403)
			r->status = STATUS_PERMANENT;
	} else if (answer == NULL) {
		snprintf(r->error, sizeof(r->error),
			 "the trade API answered something not JSON (%s)", jerr);
	} else if (judge_code(answer, r) == 0 &&
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
judge_code(json_t *answer, struct tradeapi_result *r)
{
	json_t *code = json_object_get(answer, "code");
	const char *message = json_string_value(json_object_get(answer, "message"));
	bool permanent;
	char text[160];

	if (json_is_integer(code) && json_integer_value(code) == 200)
		return 0;
	/* The API's message is shown, but only as printable ASCII. */
	snprintf(text, sizeof(text), "%s", message != NULL ? message : "no message");
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

static bool
contains_nocase(const char *haystack, const char *needle)
{
	size_t n = strlen(needle);

	for (; *haystack != '\0'; haystack++)
		if (strncasecmp(haystack, needle, n) == 0)
			return true;
	return false;
}
