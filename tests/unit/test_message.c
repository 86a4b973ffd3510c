/*
 * test_message.c - message_parse() over every topic shape of PROTOCOL.md
 * section 4, the envelope's rules, and the numbers jansson cannot hold.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "json.h"
#include "message.h"

#define ORDER_BIG INT64_C(2908059205527363456)

static int parse(const char *json, struct trade_event *ev);
static const char *parse_err(const char *json);
static int64_t order_at(const struct trade_event *ev, size_t i);
static char *build_batch(int n_orders);
static char *with_number(const char *number);

static char err[256];

static int
parse(const char *json, struct trade_event *ev)
{
	err[0] = '\0';
	return message_parse(json, strlen(json), ev, err, sizeof(err));
}

/* The reason JSON is refused, or "accepted"; also checks *ev is left empty. */
static const char *
parse_err(const char *json)
{
	struct trade_event ev;

	memset(&ev, 0x5a, sizeof(ev));
	if (parse(json, &ev) == 0) {
		trade_event_free(&ev);
		return "accepted";
	}
	CHECK(ev.type == NULL && ev.order_ids == NULL && ev.n_order_ids == 0 && ev.msg_id == 0);
	return err;
}

static int64_t
order_at(const struct trade_event *ev, size_t i)
{
	return i < ev->n_order_ids ? ev->order_ids[i] : -1;
}

/* An ORDER_BATCH_PAY message naming N_ORDERS distinct orders. */
static char *
build_batch(int n_orders)
{
	size_t cap = 128 + (size_t)n_orders * 64, n;
	char *s = malloc(cap);

	if (s == NULL)
		abort();
	n = (size_t)snprintf(s, cap,
			     "{\"msgId\":7,\"type\":\"ORDER_BATCH_PAY\",\"data\":{\"batchPay\":[");
	for (int i = 0; i < n_orders; i++)
		n += (size_t)snprintf(s + n, cap - n,
				      "%s{\"orderId\":\"%d\",\"status\":\"successed\"}",
				      i ? "," : "", 1000000 + i);
	snprintf(s + n, cap - n, "]}}");
	return s;
}

/* A message whose unrelated field "x" holds NUMBER. */
static char *
with_number(const char *number)
{
	size_t cap = strlen(number) + 128;
	char *s = malloc(cap);

	if (s == NULL)
		abort();
	snprintf(s, cap, "{\"msgId\":1,\"type\":\"T\",\"x\":%s,\"data\":{\"orderId\":5}}", number);
	return s;
}

static void
test_order_pay_vector(void)
{
	static const char json[] =
	    "{\"data\":{\"buyerMemberId\":\"b2b-2217533334e9c00\",\"currentStatus\":"
	    "\"waitsellersend\",\"orderId\":2908059205527363456,\"sellerMemberId\":"
	    "\"b2b-292931333434e\",\"msgSendTime\":\"2025-09-02 17:58:02\"},\"gmtBorn\":"
	    "1756807082000,\"msgId\":130000000001,\"type\":\"ORDER_BUYER_VIEW_ORDER_PAY\","
	    "\"userInfo\":\"b2b-2217533334e9c00\"}";
	struct trade_event ev;

	CHECK_INT(parse(json, &ev), 0);
	CHECK_STR(err, "");
	CHECK_INT(ev.msg_id, INT64_C(130000000001));
	CHECK_STR(ev.type, "ORDER_BUYER_VIEW_ORDER_PAY");
	CHECK_STR(ev.user_info, "b2b-2217533334e9c00");
	CHECK_STR(ev.current_status, "waitsellersend");
	CHECK(ev.has_gmt_born);
	CHECK_INT(ev.gmt_born_ms, INT64_C(1756807082000));
	CHECK_STR(ev.msg_send_time, "2025-09-02T17:58:02+08:00");
	CHECK_INT(ev.n_order_ids, 1);
	CHECK_INT(order_at(&ev, 0), ORDER_BIG);
	CHECK(ev.topic_group == NULL && ev.topic_name == NULL);
	CHECK(!ev.big_numbers);
	trade_event_free(&ev);
	CHECK(ev.type == NULL && ev.order_ids == NULL && ev.n_order_ids == 0);
}

static void
test_order_buyer_view_topics(void)
{
	static const char *const topics[][2] = {
	    {"ORDER_BUYER_VIEW_BUYER_MAKE", "waitbuyerpay"},
	    {"ORDER_BUYER_VIEW_ANNOUNCE_SENDGOODS", "waitbuyerreceive"},
	    {"ORDER_BUYER_VIEW_ORDER_COMFIRM_RECEIVEGOODS", "confirm_goods_and_has_subsidy"},
	    {"ORDER_BUYER_VIEW_ORDER_SUCCESS", "success"},
	    {"ORDER_BUYER_VIEW_ORDER_BUYER_REFUND_IN_SALES", "refundsuccess"},
	};

	for (size_t i = 0; i < sizeof(topics) / sizeof(topics[0]); i++) {
		char json[512];
		struct trade_event ev;

		/* No sellerMemberId; refund fields present: neither matters. */
		snprintf(json, sizeof(json),
			 "{\"msgId\":%zu,\"type\":\"%s\",\"topicGroup\":\"ORDER\",\"topicName\":"
			 "\"%s\",\"gmtBorn\":1527679458000,\"data\":{\"orderId\":%lld,"
			 "\"currentStatus\":\"%s\",\"msgSendTime\":\"2018-05-30 19:24:18\","
			 "\"buyerMemberId\":\"b2b-1\",\"refundAction\":\"x\",\"operator\":\"y\"}}",
			 i + 1, topics[i][0], topics[i][0] + strlen("ORDER_"), (long long)ORDER_BIG,
			 topics[i][1]);
		CHECK_INT(parse(json, &ev), 0);
		CHECK_INT(ev.msg_id, i + 1);
		CHECK_STR(ev.type, topics[i][0]);
		CHECK_STR(ev.topic_group, "ORDER");
		CHECK_STR(ev.topic_name, topics[i][0] + strlen("ORDER_"));
		CHECK_STR(ev.current_status, topics[i][1]);
		CHECK_STR(ev.msg_send_time, "2018-05-30T19:24:18+08:00");
		CHECK_INT(ev.n_order_ids, 1);
		CHECK_INT(order_at(&ev, 0), ORDER_BIG);
		trade_event_free(&ev);
	}
}

static void
test_batch_pay(void)
{
	static const char json[] =
	    "{\"msgId\":\"130000000002\",\"type\":\"ORDER_BATCH_PAY\",\"data\":{\"batchPay\":["
	    "{\"orderId\":\"558880835194545941\",\"status\":\"successed\"},"
	    "{\"orderId\":\"558880835194545942\",\"status\":\"ACCOUNT_BALANCE_NOT_ENOUGH\"},"
	    "{\"orderId\":558880835194545943,\"status\":\"ACCOUNT_FROZEN\"},"
	    "{\"orderId\":\"558880835194545941\",\"status\":\"successed\"},"
	    "{\"status\":\"PARAM_ILLEGAL\"},\"junk\",7]}}";
	struct trade_event ev;

	CHECK_INT(parse(json, &ev), 0);
	CHECK_INT(ev.msg_id, INT64_C(130000000002));
	CHECK_INT(ev.n_order_ids, 3);
	CHECK_INT(order_at(&ev, 0), INT64_C(558880835194545941));
	CHECK_INT(order_at(&ev, 1), INT64_C(558880835194545942));
	CHECK_INT(order_at(&ev, 2), INT64_C(558880835194545943));
	CHECK(ev.current_status == NULL);
	CHECK(ev.msg_send_time == NULL);
	CHECK(!ev.has_gmt_born);
	trade_event_free(&ev);
}

static void
test_logistics_trace(void)
{
	static const char json[] =
	    "{\"msgId\":3,\"type\":\"LOGISTICS_BUYER_VIEW_TRACE\",\"data\":{"
	    "\"OrderLogisticsTracingModel\":{\"logisticsId\":\"LP1\",\"cpCode\":\"YTO\","
	    "\"mailNo\":\"YT1\",\"statusChanged\":\"TRANSPORT\",\"changeTime\":"
	    "\"2025-09-03 08:00:00\",\"orderLogsItems\":["
	    "{\"orderId\":2908059205527363456,\"orderEntryId\":2908059205528363456},"
	    "{\"orderId\":\"2908059205527363457\",\"orderEntryId\":1},"
	    "{\"orderId\":2908059205527363456,\"orderEntryId\":2}]}}}";
	struct trade_event ev;

	CHECK_INT(parse(json, &ev), 0);
	CHECK_STR(ev.type, "LOGISTICS_BUYER_VIEW_TRACE");
	CHECK_INT(ev.n_order_ids, 2);
	CHECK_INT(order_at(&ev, 0), ORDER_BIG);
	CHECK_INT(order_at(&ev, 1), ORDER_BIG + 1);
	trade_event_free(&ev);
}

static void
test_logistics_mail_no_change(void)
{
	static const char json[] =
	    "{\"msgId\":4,\"type\":\"LOGISTICS_MAIL_NO_CHANGE\",\"data\":{"
	    "\"MailNoChangeModel\":{\"logisticsId\":\"LP1\",\"oldMailNo\":\"A\","
	    "\"newMailNo\":\"B\",\"orderLogsItems\":["
	    "{\"orderId\":\"11\",\"orderEntryId\":\"12\"},{\"orderId\":13}]}}}";
	struct trade_event ev;

	CHECK_INT(parse(json, &ev), 0);
	CHECK_INT(ev.n_order_ids, 2);
	CHECK_INT(order_at(&ev, 0), 11);
	CHECK_INT(order_at(&ev, 1), 13);
	trade_event_free(&ev);
}

static void
test_product_topic_names_no_order(void)
{
	static const char json[] =
	    "{\"msgId\":5,\"type\":\"PRODUCT_RELATION_VIEW_PRODUCT_DELETE\","
	    "\"data\":{\"productIds\":\"1,2\",\"memberId\":\"b2b-1\",\"status\":\"DELETE\"}}";
	struct trade_event ev;

	CHECK_INT(parse(json, &ev), 0);
	CHECK_STR(ev.type, "PRODUCT_RELATION_VIEW_PRODUCT_DELETE");
	CHECK_INT(ev.n_order_ids, 0);
	CHECK(ev.order_ids == NULL);
	trade_event_free(&ev);
}

static void
test_unknown_topic(void)
{
	struct trade_event ev;

	CHECK_INT(parse("{\"msgId\":6,\"type\":\"BRAND_NEW_TOPIC\",\"data\":{\"orderId\":\"42\","
			"\"whatever\":[1,{\"orderId\":43}]}}",
			&ev),
		  0);
	CHECK_STR(ev.type, "BRAND_NEW_TOPIC");
	CHECK_INT(ev.n_order_ids, 1);
	CHECK_INT(order_at(&ev, 0), 42);
	trade_event_free(&ev);
	/* No data at all, data not an object, extra envelope fields: all fine. */
	CHECK_STR(parse_err("{\"msgId\":6,\"type\":\"X\"}"), "accepted");
	CHECK_STR(parse_err("{\"msgId\":6,\"type\":\"X\",\"data\":[1]}"), "accepted");
	CHECK_STR(parse_err("{\"msgId\":6,\"type\":\"X\",\"appKey\":\"k\",\"extraInfo\":{}}"),
		  "accepted");
	/* data as a string holding JSON is not parsed again. */
	CHECK_INT(parse("{\"msgId\":6,\"type\":\"X\",\"data\":\"{\\\"orderId\\\":1}\"}", &ev), 0);
	CHECK_INT(ev.n_order_ids, 0);
	trade_event_free(&ev);
}

static void
test_msg_id_forms(void)
{
	struct trade_event ev;

	CHECK_INT(parse("{\"msgId\":\"9223372036854775807\",\"type\":\"T\"}", &ev), 0);
	CHECK_INT(ev.msg_id, INT64_MAX);
	trade_event_free(&ev);
	CHECK_INT(parse("{\"msgId\":9223372036854775807,\"type\":\"T\"}", &ev), 0);
	CHECK_INT(ev.msg_id, INT64_MAX);
	CHECK(!ev.big_numbers);
	trade_event_free(&ev);
	CHECK_INT(parse("{\"type\":\"T\",\"msgId\":\"0130000000001\"}", &ev), 0);
	CHECK_INT(ev.msg_id, INT64_C(130000000001));
	trade_event_free(&ev);

	CHECK_STR(parse_err("{\"type\":\"T\"}"), "missing msgId");
	CHECK_STR(parse_err("{\"msgId\":null,\"type\":\"T\"}"), "missing msgId");
	CHECK_STR(parse_err("{\"msgId\":9223372036854775808,\"type\":\"T\"}"),
		  "msgId is not a 64-bit integer");
	CHECK_STR(parse_err("{\"msgId\":-9223372036854775809,\"type\":\"T\"}"),
		  "msgId is not a 64-bit integer");
	CHECK_STR(parse_err("{\"msgId\":\"9223372036854775808\",\"type\":\"T\"}"),
		  "msgId is not a 64-bit integer");
	CHECK_STR(parse_err("{\"msgId\":\"12345678901234567890\",\"type\":\"T\"}"),
		  "msgId is not a 64-bit integer");
	CHECK_STR(parse_err("{\"msgId\":1.5,\"type\":\"T\"}"), "msgId is not a 64-bit integer");
	CHECK_STR(parse_err("{\"msgId\":1e400,\"type\":\"T\"}"), "msgId is not a 64-bit integer");
	CHECK_STR(parse_err("{\"msgId\":\"\",\"type\":\"T\"}"), "msgId is not a 64-bit integer");
	CHECK_STR(parse_err("{\"msgId\":\"12a\",\"type\":\"T\"}"), "msgId is not a 64-bit integer");
	CHECK_STR(parse_err("{\"msgId\":\"-1\",\"type\":\"T\"}"), "msgId is not a 64-bit integer");
	CHECK_STR(parse_err("{\"msgId\":true,\"type\":\"T\"}"), "msgId is not a 64-bit integer");
}

static void
test_type_required(void)
{
	CHECK_STR(parse_err("{\"msgId\":1}"), "missing type");
	CHECK_STR(parse_err("{\"msgId\":1,\"type\":\"\"}"), "missing type");
	CHECK_STR(parse_err("{\"msgId\":1,\"type\":5}"), "missing type");
	CHECK_STR(parse_err("{\"msgId\":1,\"type\":null}"), "missing type");
}

static void
test_optional_strings_of_other_types(void)
{
	struct trade_event ev;

	CHECK_INT(parse("{\"msgId\":1,\"type\":\"T\",\"userInfo\":5,\"topicGroup\":null,"
			"\"topicName\":[],\"data\":{\"currentStatus\":1}}",
			&ev),
		  0);
	CHECK(ev.user_info == NULL && ev.topic_group == NULL && ev.topic_name == NULL);
	CHECK(ev.current_status == NULL);
	trade_event_free(&ev);
}

static void
test_not_an_object(void)
{
	CHECK_STR(parse_err("[{\"msgId\":1,\"type\":\"T\"}]"), "not a JSON object");
	CHECK_STR(parse_err("  \"x\""), "not a JSON object");
	CHECK_STR(parse_err("123"), "not a JSON object");
	CHECK_STR(parse_err("99999999999999999999999"), "not a JSON object");
	CHECK_STR(parse_err(""), "not a JSON object");
	CHECK_STR(parse_err(" \n"), "not a JSON object");
	CHECK_STR(parse_err("null"), "not a JSON object");
}

static void
test_invalid_json(void)
{
	CHECK(strncmp(parse_err("{\"msgId\":1,\"type\":\"T\""), "invalid JSON: ", 14) == 0);
	CHECK(strncmp(parse_err("{\"msgId\":1,\"type\":\"T\"} x"), "invalid JSON: ", 14) == 0);
	CHECK(strncmp(parse_err("{\"msgId\":1,\"type\":\"T\",}"), "invalid JSON: ", 14) == 0);
	CHECK(strncmp(parse_err("{\"msgId\":01,\"type\":\"T\"}"), "invalid JSON: ", 14) == 0);
	/* Two msgIds are an attack, not data. */
	CHECK(strncmp(parse_err("{\"msgId\":1,\"type\":\"T\",\"msgId\":2}"),
		      "invalid JSON: ", 14) == 0);
	CHECK(strstr(err, "duplicate") != NULL);
}

static void
test_invalid_utf8_and_nul(void)
{
	const char *e;

	e = parse_err("{\"msgId\":1,\"type\":\"T\xff\xfe\"}");
	CHECK(strncmp(e, "invalid JSON: ", 14) == 0);
	for (const char *p = e; *p != '\0'; p++)
		CHECK(*p >= 0x20 && *p < 0x7f);
	e = parse_err("{\"msgId\":1,\"type\":\"T\",\"u\":\"\xe4\xb8\"}");
	CHECK(strncmp(e, "invalid JSON: ", 14) == 0);
	e = parse_err("{\"msgId\":1,\"type\":\"T\",\"v\":\"a\\u0000b\"}");
	CHECK(strncmp(e, "invalid JSON: ", 14) == 0);
	e = parse_err("{\"msgId\":1,\"type\":\"T\",\"a\\u0000\":1}");
	CHECK(strncmp(e, "invalid JSON: ", 14) == 0);
	/* A raw NUL byte inside the text, passed by length. */
	{
		static const char raw[] = "{\"msgId\":1,\"type\":\"T\0\"}";
		struct trade_event ev;

		CHECK_INT(message_parse(raw, sizeof(raw) - 1, &ev, err, sizeof(err)), -1);
		CHECK(strncmp(err, "invalid JSON: ", 14) == 0);
	}
	/* Valid UTF-8 is of course fine. */
	CHECK_STR(parse_err("{\"msgId\":1,\"type\":\"T\",\"u\":\"\xe4\xb8\xad\"}"), "accepted");
}

/*
 * Found by tests/fuzz/fuzz_message: jansson drops a raw NUL byte right
 * after a number or a literal and accepts the text, which PostgreSQL (given
 * it as a C string) would then see cut short, failing the whole batch.
 */
static void
test_raw_nul_after_token(void)
{
	/* Each text with its length, the NUL byte included. */
	static const struct {
		const char *text;
		size_t len;
	} cases[] = {
#define TEXT(s) {s, sizeof(s) - 1}
	    TEXT("{\"msgId\":1\0,\"type\":\"T\"}"),
	    TEXT("{\"msgId\":1,\"type\":\"T\",\"ok\":true\0}"),
	    TEXT("{\"msgId\":1,\"type\":\"T\",\"x\":[1,2e3\0]}"),
	    TEXT("{\"msgId\":1,\"type\":\"T\",\"x\":99999999999999999999\0}"),
#undef TEXT
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *text = cases[i].text;
		size_t len = cases[i].len;
		struct trade_event ev;
		json_t *root = NULL;
		bool big = false;

		CHECK(memchr(text, '\0', len) != NULL);
		CHECK_INT(message_parse(text, len, &ev, err, sizeof(err)), -1);
		CHECK_STR(err, "invalid JSON: NUL byte");
		CHECK(ev.type == NULL);
		trade_event_free(&ev); /* only has work to do when the check failed */
		CHECK_INT(json_load_object(text, len, &root, &big, err, sizeof(err)), -1);
		CHECK_STR(err, "invalid JSON: NUL byte");
		CHECK(root == NULL);
		json_decref(root);
	}
}

static void
test_big_number_elsewhere(void)
{
	struct trade_event ev;
	char *json = with_number("123456789012345678901234567890");

	CHECK_INT(parse(json, &ev), 0);
	CHECK(ev.big_numbers);
	CHECK_INT(ev.msg_id, 1);
	CHECK_INT(order_at(&ev, 0), 5);
	trade_event_free(&ev);
	free(json);

	/* In arrays and nested objects, negative, and reals beyond double. */
	CHECK_INT(parse("{\"a\":[1,99999999999999999999999,{\"k\":-99999999999999999999999}],"
			"\"r\":1e400,\"s\":-2.5E+309,\"msgId\":130000000001,\"type\":\"T\","
			"\"data\":{\"orderId\":2908059205527363456,\"amount\":47.30}}",
			&ev),
		  0);
	CHECK(ev.big_numbers);
	CHECK_INT(ev.msg_id, INT64_C(130000000001));
	CHECK_INT(order_at(&ev, 0), ORDER_BIG);
	trade_event_free(&ev);

	/* The edges: int64's limits and double's largest value fit. */
	CHECK_INT(parse("{\"a\":[9223372036854775807,-9223372036854775808,1.7976931348623157e308,"
			"1e-400],\"msgId\":1,\"type\":\"T\"}",
			&ev),
		  0);
	CHECK(!ev.big_numbers);
	trade_event_free(&ev);
	CHECK_INT(parse("{\"a\":9223372036854775808,\"msgId\":1,\"type\":\"T\"}", &ev), 0);
	CHECK(ev.big_numbers);
	trade_event_free(&ev);
	CHECK_INT(parse("{\"a\":1.7976931348623159e308,\"msgId\":1,\"type\":\"T\"}", &ev), 0);
	CHECK(ev.big_numbers);
	trade_event_free(&ev);
}

static void
test_big_number_ids(void)
{
	struct trade_event ev;

	/* A quoted (too big) orderId is skipped; the message is still kept. */
	CHECK_INT(parse("{\"msgId\":1,\"type\":\"T\",\"data\":{\"orderId\":99999999999999999999,"
			"\"batchPay\":[{\"orderId\":\"99999999999999999999\"},{\"orderId\":8}]}}",
			&ev),
		  0);
	CHECK(ev.big_numbers);
	CHECK_INT(ev.n_order_ids, 1);
	CHECK_INT(order_at(&ev, 0), 8);
	trade_event_free(&ev);
}

static void
test_strings_untouched_by_sanitizer(void)
{
	struct trade_event ev;

	/* Digits in strings, alone: jansson is happy, nothing is big. */
	CHECK_INT(parse("{\"note\":\"99999999999999999999999\",\"msgId\":1,\"type\":\"T\"}", &ev),
		  0);
	CHECK(!ev.big_numbers);
	trade_event_free(&ev);
	/*
	 * With a real big number elsewhere.  Escaped quotes and backslashes in
	 * strings must not end them early: if the scanner lost track, it would
	 * quote the digits inside "note" or "k" and the copy would not parse.
	 */
	CHECK_INT(
	    parse("{\"note\":\"99999999999999999999999\",\"k\":\"a\\\":99999999999999999999999"
		  "\\\"\",\"l\":[\"\\\"\",\"[99999999999999999999999\"],\"b\":\"\\\\\","
		  "\"x\":99999999999999999999999,\"msgId\":\"77\",\"type\":\"T\","
		  "\"99999999999999999999999\":\"v\"}",
		  &ev),
	    0);
	CHECK(ev.big_numbers);
	CHECK_INT(ev.msg_id, 77);
	trade_event_free(&ev);
	/* Long digit strings are not numbers either. */
	{
		char *json = malloc(4200);

		if (json == NULL)
			abort();
		strcpy(json, "{\"msgId\":1,\"type\":\"T\",\"s\":\"");
		memset(json + strlen(json), '9', 4000);
		strcpy(json + strlen("{\"msgId\":1,\"type\":\"T\",\"s\":\"") + 4000, "\"}");
		CHECK_STR(parse_err(json), "accepted");
		free(json);
	}
}

static void
test_quoting_never_repairs_invalid_json(void)
{
	/*
	 * A big number as a key is invalid JSON; quoting it would make it valid.
	 * Each text also holds a legitimately big value, so the sanitized copy
	 * is made and parsed: only the value is quoted there.
	 */
	static const char *const texts[] = {
	    "{\"msgId\":1,\"type\":\"T\",\"b\":99999999999999999999999,"
	    "99999999999999999999999:1}",
	    "{\"msgId\":1,\"type\":\"T\",\"o\":{\"b\":[99999999999999999999999],"
	    "99999999999999999999999:2}}",
	    "{\"msgId\":1,\"type\":\"T\",\"a\":[99999999999999999999999 99999999999999999999999]}",
	    "{\"msgId\":1,\"type\":\"T\",\"a\":[99999999999999999999999,"
	    "099999999999999999999999]}",
	    "{\"msgId\":1,\"type\":\"T\",\"a\":[99999999999999999999999]]",
	    "{\"msgId\":1,\"type\":\"T\",\"a\":99999999999999999999999\"}",
	};

	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		const char *e = parse_err(texts[i]);

		if (strncmp(e, "invalid JSON: ", 14) != 0)
			fprintf(stderr, "text %zu: %s\n", i, e);
		CHECK(strncmp(e, "invalid JSON: ", 14) == 0);
	}
}

static void
test_number_out_of_range(void)
{
	char digits[1100];
	char *json;

	memset(digits, '7', 1001);
	digits[1001] = '\0';
	json = with_number(digits);
	CHECK_STR(parse_err(json), "number out of range");
	free(json);
	digits[1000] = '\0'; /* 1000 digits: PostgreSQL takes it, jansson does not */
	json = with_number(digits);
	CHECK_STR(parse_err(json), "accepted");
	free(json);
	/* Digits count on both sides of the point. */
	memset(digits, '1', 1002); /* 1001 digits and a point */
	digits[500] = '.';
	digits[1002] = '\0';
	json = with_number(digits);
	CHECK_STR(parse_err(json), "number out of range");
	free(json);
	CHECK_STR(parse_err("{\"msgId\":1,\"type\":\"T\",\"x\":1e1001}"), "number out of range");
	CHECK_STR(parse_err("{\"msgId\":1,\"type\":\"T\",\"x\":1E-1001}"), "number out of range");
	CHECK_STR(parse_err("{\"msgId\":1,\"type\":\"T\",\"x\":[1e99999999999999999999999]}"),
		  "number out of range");
	CHECK_STR(parse_err("{\"msgId\":1,\"type\":\"T\",\"x\":1e1000}"), "accepted");
	CHECK_STR(parse_err("{\"msgId\":1,\"type\":\"T\",\"x\":1e-1000}"), "accepted");
	CHECK_STR(parse_err("{\"msgId\":1,\"type\":\"T\",\"x\":1e+0000000000000000000000001000}"),
		  "accepted");
}

static void
test_gmt_born_range(void)
{
	static const struct {
		const char *value;
		int has;
	} cases[] = {
	    {"0", 1},
	    {"253402300799999", 1},
	    {"253402300800000", 0},
	    {"-1", 0},
	    {"\"1756807082000\"", 0},
	    {"1756807082000.0", 0},
	    {"99999999999999999999", 0},
	    {"null", 0},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char json[128];
		struct trade_event ev;

		snprintf(json, sizeof(json), "{\"msgId\":1,\"type\":\"T\",\"gmtBorn\":%s}",
			 cases[i].value);
		CHECK_INT(parse(json, &ev), 0);
		if (ev.has_gmt_born != cases[i].has)
			fprintf(stderr, "gmtBorn %s\n", cases[i].value);
		CHECK_INT(ev.has_gmt_born, cases[i].has);
		trade_event_free(&ev);
	}
}

static void
test_msg_send_time(void)
{
	static const struct {
		const char *value;
		const char *want;
	} cases[] = {
	    {"\"2024-02-29 00:00:00\"", "2024-02-29T00:00:00+08:00"},
	    {"\"2000-02-29 23:59:59\"", "2000-02-29T23:59:59+08:00"},
	    {"\"2025-12-31 12:30:45\"", "2025-12-31T12:30:45+08:00"},
	    {"\"0001-01-01 00:00:00\"", "0001-01-01T00:00:00+08:00"},
	    {"\"2025-02-29 00:00:00\"", NULL},
	    {"\"1900-02-29 00:00:00\"", NULL},
	    {"\"2025-04-31 00:00:00\"", NULL},
	    {"\"2025-13-01 00:00:00\"", NULL},
	    {"\"2025-00-01 00:00:00\"", NULL},
	    {"\"2025-01-00 00:00:00\"", NULL},
	    {"\"0000-01-01 00:00:00\"", NULL},
	    {"\"2025-01-01 24:00:00\"", NULL},
	    {"\"2025-01-01 23:60:00\"", NULL},
	    {"\"2025-01-01 23:59:60\"", NULL},
	    {"\"2025-09-02T17:58:02\"", NULL},
	    {"\"2025-9-02 17:58:02\"", NULL},
	    {"\"2025-09-02 17:58:02 \"", NULL},
	    {"\"2025-09-02 17:58\"", NULL},
	    {"\"2025-09-02 1a:58:02\"", NULL},
	    {"\"\"", NULL},
	    {"20250902175802", NULL},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char json[160];
		struct trade_event ev;

		snprintf(json, sizeof(json),
			 "{\"msgId\":1,\"type\":\"T\",\"data\":{\"msgSendTime\":%s,\"orderId\":3}}",
			 cases[i].value);
		CHECK_INT(parse(json, &ev), 0);
		if (cases[i].want != NULL) {
			CHECK_STR(ev.msg_send_time, cases[i].want);
		} else {
			if (ev.msg_send_time != NULL)
				fprintf(stderr, "msgSendTime %s accepted\n", cases[i].value);
			CHECK(ev.msg_send_time == NULL);
		}
		/* The message is kept either way. */
		CHECK_INT(order_at(&ev, 0), 3);
		trade_event_free(&ev);
	}
}

static void
test_invalid_order_ids_skipped(void)
{
	struct trade_event ev;

	CHECK_INT(
	    parse("{\"msgId\":1,\"type\":\"ORDER_BATCH_PAY\",\"data\":{\"orderId\":\"abc\","
		  "\"batchPay\":[{\"orderId\":1.5},{\"orderId\":-5},{\"orderId\":0},"
		  "{\"orderId\":\"0\"},{\"orderId\":\"-5\"},{\"orderId\":\"\"},"
		  "{\"orderId\":\" 12\"},{\"orderId\":\"12345678901234567890\"},"
		  "{\"orderId\":\"9223372036854775808\"},{\"orderId\":null},"
		  "{\"orderId\":true},{\"orderId\":{}},{\"orderId\":\"9223372036854775807\"}]}}",
		  &ev),
	    0);
	CHECK_INT(ev.n_order_ids, 1);
	CHECK_INT(order_at(&ev, 0), INT64_MAX);
	trade_event_free(&ev);
}

static void
test_orders_deduplicated_across_sources(void)
{
	struct trade_event ev;

	CHECK_INT(
	    parse(
		"{\"msgId\":1,\"type\":\"T\",\"data\":{\"orderId\":\"21\",\"batchPay\":["
		"{\"orderId\":22},{\"orderId\":21}],\"OrderLogisticsTracingModel\":{"
		"\"orderLogsItems\":[{\"orderId\":23},{\"orderId\":\"22\"}]},"
		"\"MailNoChangeModel\":{\"orderLogsItems\":[{\"orderId\":21},{\"orderId\":24}]}}}",
		&ev),
	    0);
	CHECK_INT(ev.n_order_ids, 4);
	CHECK_INT(order_at(&ev, 0), 21);
	CHECK_INT(order_at(&ev, 1), 22);
	CHECK_INT(order_at(&ev, 2), 23);
	CHECK_INT(order_at(&ev, 3), 24);
	trade_event_free(&ev);
}

static void
test_too_many_orders(void)
{
	struct trade_event ev;
	char *json = build_batch(MESSAGE_MAX_ORDERS);

	CHECK_INT(parse(json, &ev), 0);
	CHECK_INT(ev.n_order_ids, MESSAGE_MAX_ORDERS);
	CHECK_INT(order_at(&ev, MESSAGE_MAX_ORDERS - 1), 1000000 + MESSAGE_MAX_ORDERS - 1);
	trade_event_free(&ev);
	free(json);
	json = build_batch(MESSAGE_MAX_ORDERS + 1);
	CHECK_STR(parse_err(json), "too many orders");
	free(json);
}

static void
test_text_by_length(void)
{
	/* Not NUL-terminated: only LEN bytes are the message. */
	static const char text[] = "{\"msgId\":9,\"type\":\"T\"}GARBAGE";
	struct trade_event ev;

	CHECK_INT(message_parse(text, strlen(text) - 7, &ev, err, sizeof(err)), 0);
	CHECK_INT(ev.msg_id, 9);
	trade_event_free(&ev);
	CHECK_INT(message_parse(text, strlen(text), &ev, err, sizeof(err)), -1);
	/* A short error buffer truncates but stays a string. */
	{
		char small[8];

		CHECK_INT(message_parse("[]", 2, &ev, small, sizeof(small)), -1);
		CHECK_STR(small, "not a J");
	}
}

static void
test_free_zeroed(void)
{
	struct trade_event ev;

	memset(&ev, 0, sizeof(ev));
	trade_event_free(&ev);
	trade_event_free(&ev);
	CHECK(ev.type == NULL && ev.n_order_ids == 0);
}

/* Strings an index or a batch could choke on are refused: a clear 400. */
static void
test_field_lengths_are_bounded(void)
{
	char json[4096], pad[MESSAGE_MAX_FIELD_BYTES + 2];
	struct trade_event ev;
	char wide[3 * 171 + 1] = "";

	memset(pad, 'T', sizeof(pad) - 1);
	pad[MESSAGE_MAX_FIELD_BYTES] = '\0'; /* exactly the limit: fine */
	snprintf(json, sizeof(json), "{\"msgId\":1,\"type\":\"%s\",\"data\":{}}", pad);
	CHECK_INT(parse(json, &ev), 0);
	CHECK_INT(strlen(ev.type), MESSAGE_MAX_FIELD_BYTES);
	trade_event_free(&ev);
	pad[MESSAGE_MAX_FIELD_BYTES] = 'T'; /* one byte more */
	pad[MESSAGE_MAX_FIELD_BYTES + 1] = '\0';
	snprintf(json, sizeof(json), "{\"msgId\":1,\"type\":\"%s\"}", pad);
	CHECK_STR(parse_err(json), "type longer than 512 bytes");
	snprintf(json, sizeof(json), "{\"msgId\":1,\"type\":\"X\",\"userInfo\":\"%s\"}", pad);
	CHECK_STR(parse_err(json), "userInfo longer than 512 bytes");
	snprintf(json, sizeof(json), "{\"msgId\":1,\"type\":\"X\",\"topicGroup\":\"%s\"}", pad);
	CHECK_STR(parse_err(json), "topicGroup longer than 512 bytes");
	snprintf(json, sizeof(json), "{\"msgId\":1,\"type\":\"X\",\"topicName\":\"%s\"}", pad);
	CHECK_STR(parse_err(json), "topicName longer than 512 bytes");
	snprintf(json, sizeof(json),
		 "{\"msgId\":1,\"type\":\"X\",\"data\":{\"currentStatus\":\"%s\"}}", pad);
	CHECK_STR(parse_err(json), "data.currentStatus longer than 512 bytes");
	/* Bytes, not characters: 171 three-byte characters are 513 bytes. */
	for (int i = 0; i < 171; i++)
		strcat(wide, "\xe4\xb8\xad");
	snprintf(json, sizeof(json), "{\"msgId\":1,\"type\":\"%s\"}", wide);
	CHECK_STR(parse_err(json), "type longer than 512 bytes");
	/* ... also when written as escapes. */
	strcpy(json, "{\"msgId\":1,\"type\":\"");
	for (int i = 0; i < 171; i++)
		strcat(json, "\\u4e2d");
	strcat(json, "\"}");
	CHECK_STR(parse_err(json), "type longer than 512 bytes");
}

CHECK_MAIN("message", CHECK_TEST(test_field_lengths_are_bounded), CHECK_TEST(test_order_pay_vector),
	   CHECK_TEST(test_order_buyer_view_topics), CHECK_TEST(test_batch_pay),
	   CHECK_TEST(test_logistics_trace), CHECK_TEST(test_logistics_mail_no_change),
	   CHECK_TEST(test_product_topic_names_no_order), CHECK_TEST(test_unknown_topic),
	   CHECK_TEST(test_msg_id_forms), CHECK_TEST(test_type_required),
	   CHECK_TEST(test_optional_strings_of_other_types), CHECK_TEST(test_not_an_object),
	   CHECK_TEST(test_invalid_json), CHECK_TEST(test_invalid_utf8_and_nul),
	   CHECK_TEST(test_raw_nul_after_token), CHECK_TEST(test_big_number_elsewhere),
	   CHECK_TEST(test_big_number_ids), CHECK_TEST(test_strings_untouched_by_sanitizer),
	   CHECK_TEST(test_quoting_never_repairs_invalid_json),
	   CHECK_TEST(test_number_out_of_range), CHECK_TEST(test_gmt_born_range),
	   CHECK_TEST(test_msg_send_time), CHECK_TEST(test_invalid_order_ids_skipped),
	   CHECK_TEST(test_orders_deduplicated_across_sources), CHECK_TEST(test_too_many_orders),
	   CHECK_TEST(test_text_by_length), CHECK_TEST(test_free_zeroed))
