/*
 * test_gateway.c - the 1688 gateway's call convention (receiver/gateway.c)
 * against the worked examples of GATEWAY-1688.md (the issue 13 fact sheet,
 * kept outside the repository; the facts used are copied here with their
 * section): paths, the string signed, signatures and bodies byte for byte,
 * the official vector of open.1688.com's "API签名规则" page, the signing
 * rules (byte order of key+value, empty parameters left out, raw values
 * signed, form-encoded bodies), dates, and the classifier on each answer
 * shape s.1.6 documents.
 *
 * Every expected signature is also recomputed here with OpenSSL's HMAC()
 * over the expected signed string, so a typo in a constant, in the string
 * or in the code fails, and tampering with any part of a call (a key, a
 * value, the secret, the app key) is checked to change the signature.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "check.h"
#include "form.h"
#include "gateway.h"

/* s.7: the made-up credentials of the worked examples. */
#define APP_KEY "1234567"
#define SECRET	"demoSecret123"
#define TOKEN	"0a1b2c3d-4e5f-6789-abcd-ef0123456789"
#define TS_MS	1756807082000LL
#define TS	"1756807082000"

/* s.7.1, get.buyerView of order 2257164624870311973. */
#define BV_PATH "param2/1/com.alibaba.trade/alibaba.trade.get.buyerView/" APP_KEY
#define BV_URL	"https://gw.open.1688.com/openapi/" BV_PATH
#define BV_SIGNED                                                                                  \
	BV_PATH "_aop_timestamp" TS "access_token" TOKEN "orderId2257164624870311973webSite1688"
#define BV_SIG		"F2D6D3AED4ADB0C9F6B15B198FA93B170B48609E"
#define BV_SIGNED_NO_TS BV_PATH "access_token" TOKEN "orderId2257164624870311973webSite1688"
#define BV_SIG_NO_TS	"B43A04B3B5CCA233E5E574E3494B8600BDA70EF8"
#define BV_BODY                                                                                    \
	"webSite=1688&orderId=2257164624870311973&access_token=" TOKEN "&_aop_timestamp=" TS       \
	"&_aop_signature=" BV_SIG

/* s.7.2, push.cursor.messageList for one member, no token. */
#define CUR_PATH "param2/1/cn.alibaba.open/push.cursor.messageList/" APP_KEY
#define CUR_SIGNED                                                                                 \
	CUR_PATH "_aop_timestamp" TS "createEndTime20250902180000000+0800"                         \
		 "createStartTime20250901180000000+0800quantity200typeORDER_BUYER_VIEW_ORDER_PAY"  \
		 "userInfob2b-2217533334e9c00"
#define CUR_SIG "1B0F48EE9AB922729E452E74CFD8E917AA956CBD"
/* "In the body, +0800 is sent as %2B0800"; the body order is ours (any is fine). */
#define CUR_BODY                                                                                   \
	"createStartTime=20250901180000000%2B0800&createEndTime=20250902180000000%2B0800"          \
	"&quantity=200&type=ORDER_BUYER_VIEW_ORDER_PAY&userInfo=b2b-2217533334e9c00"               \
	"&_aop_timestamp=" TS "&_aop_signature=" CUR_SIG

/* s.7.3, the table's first two rows. */
#define CONF_PATH   "param2/1/cn.alibaba.open/push.message.confirm/" APP_KEY
#define CONF_SIGNED CONF_PATH "_aop_timestamp" TS "msgIdList[130000000001,130000000002]"
#define CONF_SIG    "704077E3F9026A2EC3E85941B729BE0DDD7443D8"
#define LIST_PATH   "param2/1/com.alibaba.trade/alibaba.trade.getBuyerOrderList/" APP_KEY
#define LIST_SIGNED                                                                                \
	LIST_PATH "_aop_timestamp" TS "access_token" TOKEN                                         \
		  "modifyEndTime20250902180000000+0800modifyStartTime20250902170000000+0800"       \
		  "page1pageSize20"
#define LIST_SIG "DA855AE625E04362F7AC794337CB17791EFD89C4"

/* s.1.4 and s.7.3: the official vector (S1), secret test123. */
#define S1_PATH	  "param2/1/system/currentTime/1000000"
#define S1_SECRET "test123"
#define S1_SIGNED S1_PATH "a1b2"
#define S1_SIG	  "33E54F4F7B989E3E0E912D3FBD2F1A03CA7CCE88"

#define N(a) (sizeof(a) / sizeof((a)[0]))

static void hmac_hex(const char *secret, const char *data, size_t len, char out[41]);
static char *signed_of(const char *path, const struct gateway_param *p, size_t n);
static char *sign_of(const char *path, const struct gateway_param *p, size_t n, const char *secret,
		     char hex[41]);
static char *call_body(const struct gateway_call *c);
static void check_call(const char *path, const struct gateway_param *p, size_t n, const char *token,
		       const char *want_signed, const char *want_sig);
static struct gateway_verdict classify(int status, const char *body,
				       const struct gateway_rules *rules);
static int valid_utf8(const char *s);
static uint32_t next_random(uint32_t *state);

/* HMAC-SHA1, upper-case hex, through OpenSSL directly: the oracle. */
static void
hmac_hex(const char *secret, const char *data, size_t len, char out[41])
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int n = 0;

	HMAC(EVP_sha1(), secret, (int)strlen(secret), (const unsigned char *)data, len, mac, &n);
	for (unsigned int i = 0; i < n && i < 20; i++)
		snprintf(out + 2 * i, 3, "%02X", mac[i]);
	out[40] = '\0';
}

/* gateway_signed_string() or NULL (not STATUS_OK); malloc'd. */
static char *
signed_of(const char *path, const struct gateway_param *p, size_t n)
{
	char *s = NULL;
	size_t len = 0;

	if (gateway_signed_string(path, p, n, &s, &len) != STATUS_OK)
		return NULL;
	CHECK_INT(len, strlen(s));
	return s;
}

/* gateway_sign() into HEX; returns HEX, or NULL when it failed. */
static char *
sign_of(const char *path, const struct gateway_param *p, size_t n, const char *secret, char hex[41])
{
	memset(hex, 'x', 41);
	if (gateway_sign(path, p, n, secret, hex) != STATUS_OK) {
		CHECK_STR(hex, "");
		return NULL;
	}
	CHECK_INT(strlen(hex), GATEWAY_SIGNATURE_LEN);
	return hex;
}

static char *
call_body(const struct gateway_call *c)
{
	char *body = NULL;
	size_t len = 0;

	if (gateway_call_body(c, &body, &len) != STATUS_OK) {
		CHECK(body == NULL);
		return NULL;
	}
	CHECK_INT(len, strlen(body));
	return body;
}

/*
 * PATH and P (N, plus access_token TOKEN when not NULL and _aop_timestamp
 * TS) are signed over WANT_SIGNED as WANT_SIG, which the oracle agrees with.
 */
static void
check_call(const char *path, const struct gateway_param *p, size_t n, const char *token,
	   const char *want_signed, const char *want_sig)
{
	struct gateway_param all[16];
	char hex[41], oracle[41];
	size_t k = 0;
	char *s;

	for (size_t i = 0; i < n; i++)
		all[k++] = p[i];
	if (token != NULL)
		all[k++] = (struct gateway_param){"access_token", token};
	all[k++] = (struct gateway_param){"_aop_timestamp", TS};
	hmac_hex(SECRET, want_signed, strlen(want_signed), oracle);
	CHECK_STR(oracle, want_sig);
	s = signed_of(path, all, k);
	CHECK_STR(s, want_signed);
	free(s);
	CHECK_STR(sign_of(path, all, k, SECRET, hex), want_sig);
}

static void
test_api_paths(void)
{
	char path[128], url[256];

	/* s.1.1 and the request line of s.7.1. */
	CHECK_INT(gateway_api_path(path, sizeof(path), GATEWAY_PROTOCOL_PARAM2, "com.alibaba.trade",
				   "alibaba.trade.get.buyerView", 1, APP_KEY),
		  0);
	CHECK_STR(path, BV_PATH);
	CHECK_INT(gateway_url(url, sizeof(url), GATEWAY_DEFAULT_BASE, path), 0);
	CHECK_STR(url, BV_URL);
	CHECK_INT(gateway_url(url, sizeof(url), GATEWAY_DEFAULT_BASE "//", path), 0);
	CHECK_STR(url, BV_URL);
	/* s.5.1's URL; s.2.1's getToken (protocol http). */
	CHECK_INT(gateway_api_path(path, sizeof(path), "param2", "cn.alibaba.open",
				   "push.cursor.messageList", 1, APP_KEY),
		  0);
	CHECK_STR(path, CUR_PATH);
	CHECK_INT(gateway_api_path(path, sizeof(path), GATEWAY_PROTOCOL_HTTP, "system.oauth2",
				   "getToken", 1, APP_KEY),
		  0);
	CHECK_INT(gateway_url(url, sizeof(url), GATEWAY_DEFAULT_BASE, path), 0);
	CHECK_STR(url, "https://gw.open.1688.com/openapi/http/1/system.oauth2/getToken/1234567");
	/* A fake gateway for the tests is plain http on a port. */
	CHECK_INT(gateway_url(url, sizeof(url), "http://127.0.0.1:18082/openapi", "param2/1/a/b/c"),
		  0);
	CHECK_STR(url, "http://127.0.0.1:18082/openapi/param2/1/a/b/c");
	CHECK_INT(gateway_api_path(path, sizeof(path), "param2", "ns", "api", 12, "7"), 0);
	CHECK_STR(path, "param2/12/ns/api/7");
}

static void
test_api_path_refusals(void)
{
	static const char *const bad[] = {"",	"a/b", "a?b", "a b", "a%2Fb",
					  "..", ".",   "a#",  "中",  "a\tb"};
	char path[128], url[64];

	for (size_t i = 0; i < N(bad); i++) {
		strcpy(path, "junk");
		CHECK_INT(gateway_api_path(path, sizeof(path), "param2", bad[i], "api", 1, "1"),
			  -1);
		CHECK_STR(path, "");
		CHECK_INT(gateway_api_path(path, sizeof(path), "param2", "ns", bad[i], 1, "1"), -1);
		CHECK_INT(gateway_api_path(path, sizeof(path), "param2", "ns", "api", 1, bad[i]),
			  -1);
		CHECK_INT(gateway_api_path(path, sizeof(path), bad[i], "ns", "api", 1, "1"), -1);
	}
	CHECK_INT(gateway_api_path(path, sizeof(path), "param2", NULL, "api", 1, "1"), -1);
	CHECK_INT(gateway_api_path(path, sizeof(path), "param2", "ns", "api", 0, "1"), -1);
	CHECK_INT(gateway_api_path(path, sizeof(path), "param2", "ns", "api", -1, "1"), -1);
	/* "param2/1/ns/api/1" is 17 bytes: 18 fit, 17 do not. */
	CHECK_INT(gateway_api_path(path, 18, "param2", "ns", "api", 1, "1"), 0);
	CHECK_INT(gateway_api_path(path, 17, "param2", "ns", "api", 1, "1"), -1);
	CHECK_STR(path, "");
	CHECK_INT(gateway_api_path(path, 0, "param2", "ns", "api", 1, "1"), -1);

	CHECK_INT(gateway_url(url, sizeof(url), "gw.open.1688.com/openapi", "p/1"), -1);
	CHECK_INT(gateway_url(url, sizeof(url), "ftp://gw.open.1688.com", "p/1"), -1);
	CHECK_INT(gateway_url(url, sizeof(url), "https://", "p/1"), -1);
	CHECK_INT(gateway_url(url, sizeof(url), "https:///openapi", "p/1"), -1);
	CHECK_INT(gateway_url(url, sizeof(url), "https://h/openapi?x=1", "p/1"), -1);
	CHECK_INT(gateway_url(url, sizeof(url), "https://h/open api", "p/1"), -1);
	CHECK_INT(gateway_url(url, sizeof(url), "https://h/a#b", "p/1"), -1);
	CHECK_INT(gateway_url(url, sizeof(url), "https://h", "/p/1"), -1);
	CHECK_INT(gateway_url(url, sizeof(url), "https://h", ""), -1);
	CHECK_INT(gateway_url(url, sizeof(url), NULL, "p/1"), -1);
	/* "https://h/p/1" is 13 bytes. */
	CHECK_INT(gateway_url(url, 14, "https://h", "p/1"), 0);
	CHECK_STR(url, "https://h/p/1");
	CHECK_INT(gateway_url(url, 13, "https://h", "p/1"), -1);
	CHECK_STR(url, "");
}

/* s.1.4: the official vector, parameters given as b=2&a=1. */
static void
test_official_vector(void)
{
	const struct gateway_param p[] = {{"b", "2"}, {"a", "1"}};
	char hex[41], oracle[41];
	char *s = signed_of(S1_PATH, p, N(p));

	hmac_hex(S1_SECRET, S1_SIGNED, strlen(S1_SIGNED), oracle);
	CHECK_STR(oracle, S1_SIG);
	CHECK_STR(s, S1_SIGNED);
	free(s);
	CHECK_STR(sign_of(S1_PATH, p, N(p), S1_SECRET, hex), S1_SIG);
}

/* s.7.1: the string signed, the signature with and without the timestamp, the body. */
static void
test_example_buyer_view(void)
{
	const struct gateway_param p[] = {{"webSite", "1688"}, {"orderId", "2257164624870311973"}};
	struct gateway_call c = {BV_PATH, p, N(p), TOKEN, TS_MS, SECRET};
	char *body;

	check_call(BV_PATH, p, N(p), TOKEN, BV_SIGNED, BV_SIG);
	body = call_body(&c);
	CHECK_STR(body, BV_BODY);
	free(body);

	c.timestamp_ms = -1;
	body = call_body(&c);
	CHECK(body != NULL && strstr(body, "_aop_timestamp") == NULL);
	CHECK(body != NULL && strstr(body, "&_aop_signature=" BV_SIG_NO_TS) != NULL);
	free(body);
	{
		const struct gateway_param q[] = {{"webSite", "1688"},
						  {"orderId", "2257164624870311973"},
						  {"access_token", TOKEN}};
		char hex[41], oracle[41], *s = signed_of(BV_PATH, q, N(q));

		hmac_hex(SECRET, BV_SIGNED_NO_TS, strlen(BV_SIGNED_NO_TS), oracle);
		CHECK_STR(oracle, BV_SIG_NO_TS);
		CHECK_STR(s, BV_SIGNED_NO_TS);
		CHECK_STR(sign_of(BV_PATH, q, N(q), SECRET, hex), BV_SIG_NO_TS);
		free(s);
	}
}

/* s.7.2: dates written by gateway_date(), no token, '+' as %2B in the body only. */
static void
test_example_cursor(void)
{
	char start[GATEWAY_DATE_LEN + 1], end[GATEWAY_DATE_LEN + 1];
	const struct gateway_param p[] = {{"createStartTime", start},
					  {"createEndTime", end},
					  {"quantity", "200"},
					  {"type", "ORDER_BUYER_VIEW_ORDER_PAY"},
					  {"userInfo", "b2b-2217533334e9c00"}};
	struct gateway_call c = {CUR_PATH, p, N(p), NULL, TS_MS, SECRET};
	char *body;

	/* 2025-09-01T10:00:00Z and a day later, in Shanghai. */
	CHECK_INT(gateway_date(start, 1756720800000LL, SHANGHAI_OFFSET_S), 0);
	CHECK_INT(gateway_date(end, 1756720800000LL + 86400000LL, SHANGHAI_OFFSET_S), 0);
	CHECK_STR(start, "20250901180000000+0800");
	CHECK_STR(end, "20250902180000000+0800");
	check_call(CUR_PATH, p, N(p), NULL, CUR_SIGNED, CUR_SIG);
	body = call_body(&c);
	CHECK_STR(body, CUR_BODY);
	CHECK(body != NULL && strchr(body, '+') == NULL);
	free(body);
}

/* s.7.3: push.message.confirm (a JSON-valued parameter, s.1.5) and getBuyerOrderList. */
static void
test_example_table(void)
{
	const struct gateway_param conf[] = {{"msgIdList", "[130000000001,130000000002]"}};
	const struct gateway_param list[] = {{"modifyStartTime", "20250902170000000+0800"},
					     {"modifyEndTime", "20250902180000000+0800"},
					     {"page", "1"},
					     {"pageSize", "20"}};
	struct gateway_call c = {CONF_PATH, conf, N(conf), NULL, TS_MS, SECRET};
	char when[GATEWAY_DATE_LEN + 1];
	char *body;

	check_call(CONF_PATH, conf, N(conf), NULL, CONF_SIGNED, CONF_SIG);
	body = call_body(&c);
	CHECK_STR(body, "msgIdList=%5B130000000001%2C130000000002%5D&_aop_timestamp=" TS
			"&_aop_signature=" CONF_SIG);
	free(body);
	check_call(LIST_PATH, list, N(list), TOKEN, LIST_SIGNED, LIST_SIG);
	CHECK_INT(gateway_date(when, 1756803600000LL, SHANGHAI_OFFSET_S), 0);
	CHECK_STR(when, list[0].value);
}

/*
 * s.1.4 step 3: the joined key+value strings in byte order.  a=z, ab=1
 * gives "ab1az" (sorting by key would give "azab1"); capitals (0x41-0x5A)
 * before '_' (0x5F) before lower case; the input order does not matter.
 */
static void
test_sort_order(void)
{
	const struct gateway_param prefix[] = {{"a", "z"}, {"ab", "1"}};
	const struct gateway_param cases[] = {{"b", "1"}, {"_x", "2"}, {"B", "3"}, {"A", "4"}};
	struct gateway_param perm[N(cases)];
	char hex[41], oracle[41], by_key[41];
	char *s = signed_of("p", prefix, N(prefix));

	CHECK_STR(s, "pab1az");
	free(s);
	hmac_hex(SECRET, "pab1az", 6, oracle);
	hmac_hex(SECRET, "pazab1", 6, by_key);
	CHECK_STR(sign_of("p", prefix, N(prefix), SECRET, hex), oracle);
	CHECK(strcmp(hex, by_key) != 0);

	/* Every rotation and the reverse of the four give the same string. */
	for (size_t r = 0; r < 2 * N(cases); r++) {
		for (size_t i = 0; i < N(cases); i++)
			perm[i] = r < N(cases) ? cases[(i + r) % N(cases)]
					       : cases[N(cases) - 1 - (i + r) % N(cases)];
		s = signed_of("p", perm, N(perm));
		CHECK_STR(s, "pA4B3_x2b1");
		free(s);
	}
	/* k1=a and k=1b join to "k1a" and "k1b": the value decides (by key: "k1bk1a"). */
	{
		const struct gateway_param q[] = {{"k1", "a"}, {"k", "1b"}};

		s = signed_of("", q, N(q));
		CHECK_STR(s, "k1ak1b");
		free(s);
	}
}

/* s.1.4 step 5: an empty or NULL value is neither signed nor sent. */
static void
test_empty_values(void)
{
	const struct gateway_param with[] = {
	    {"webSite", "1688"}, {"outOrderId", ""}, {"orderId", "1"}, {"includeFields", NULL}};
	const struct gateway_param without[] = {{"webSite", "1688"}, {"orderId", "1"}};
	char a[41], b[41], want[128];
	char *s = signed_of("p", with, N(with)), *body = NULL;
	size_t len;

	CHECK_STR(s, "porderId1webSite1688");
	free(s);
	CHECK_STR(sign_of("p", with, N(with), SECRET, a),
		  sign_of("p", without, N(without), SECRET, b));
	CHECK_INT(gateway_form(with, N(with), a, &body, &len), STATUS_OK);
	snprintf(want, sizeof(want), "webSite=1688&orderId=1&_aop_signature=%s", a);
	CHECK_STR(body, want);
	free(body);
	CHECK_INT(gateway_form(with, N(with), NULL, &body, &len), STATUS_OK);
	CHECK_STR(body, "webSite=1688&orderId=1");
	free(body);
	/* Nothing at all to send: an empty body, signed over the path alone. */
	CHECK_INT(gateway_form(with + 1, 1, NULL, &body, &len), STATUS_OK);
	CHECK_STR(body, "");
	CHECK_INT(len, 0);
	free(body);
	s = signed_of("param2/1/a/b/1", NULL, 0);
	CHECK_STR(s, "param2/1/a/b/1");
	free(s);
}

/*
 * UTF-8 and the form's special bytes: the signature covers the raw bytes
 * (not their %XX), the body encodes them, and form.c decodes the body back
 * to exactly what was signed.
 */
static void
test_raw_values_signed(void)
{
	const char *text = "中文 a+b&c=d%e/f~g.h_i-j*k\"'\n";
	const struct gateway_param p[] = {{"productName", text}, {"k y", "v"}};
	char hex[41], oracle[41], encoded_oracle[41];
	const char *want_signed = "pk yvproductName中文 a+b&c=d%e/f~g.h_i-j*k\"'\n";
	const char *encoded = "%E4%B8%AD%E6%96%87+a%2Bb%26c%3Dd%25e%2Ff~g.h_i-j%2Ak%22%27%0A";
	char want_body[256], encoded_signed[256];
	char *s = signed_of("p", p, N(p)), *body = NULL;
	struct form form;
	const char *err = NULL;
	size_t len;

	CHECK_STR(s, want_signed);
	free(s);
	hmac_hex(SECRET, want_signed, strlen(want_signed), oracle);
	snprintf(want_body, sizeof(want_body), "productName=%s&k+y=v&_aop_signature=", encoded);
	snprintf(encoded_signed, sizeof(encoded_signed), "pk+yvproductName%s", encoded);
	hmac_hex(SECRET, encoded_signed, strlen(encoded_signed), encoded_oracle);
	CHECK_STR(sign_of("p", p, N(p), SECRET, hex), oracle);
	CHECK(strcmp(hex, encoded_oracle) != 0);
	CHECK_INT(gateway_form(p, N(p), hex, &body, &len), STATUS_OK);
	CHECK(body != NULL && strncmp(body, want_body, strlen(want_body)) == 0);
	CHECK(body != NULL && strcmp(body + strlen(want_body), oracle) == 0);
	CHECK_INT(form_decode(body, len, &form, &err), 0);
	CHECK_INT(form.n_fields, 3);
	CHECK(form_get(&form, "productName") != NULL &&
	      strcmp(form_get(&form, "productName")->value, text) == 0);
	CHECK(form_get(&form, "k y") != NULL && strcmp(form_get(&form, "k y")->value, "v") == 0);
	form_free(&form);
	gateway_wipe_free(body, len);
}

/*
 * What a gateway does with a body (the tests' fake will): decode it, sign
 * every field but _aop_signature, compare.  Random parameters, any bytes
 * but NUL, round-trip; one changed byte anywhere changes the signature.
 */
static void
test_verify_round_trip(void)
{
	uint32_t seed = 13;

	for (int round = 0; round < 300; round++) {
		char keys[6][24], values[6][24], hex[41], again[41], tampered[41];
		struct gateway_param p[6], decoded[10];
		size_t n = 1 + next_random(&seed) % 6, len = 0, m = 0;
		struct gateway_call c;
		const char *err = NULL, *sent = NULL;
		struct form form;
		char *body;

		for (size_t i = 0; i < n; i++) {
			size_t vl = next_random(&seed) % sizeof(values[i]);

			/* Distinct keys: the index, then random letters. */
			snprintf(keys[i], sizeof(keys[i]), "%c%c%zu",
				 (char)('A' + next_random(&seed) % 58),
				 (char)('a' + next_random(&seed) % 26), i);
			for (size_t j = 0; j < vl; j++)
				values[i][j] = (char)(1 + next_random(&seed) % 255);
			values[i][vl] = '\0';
			p[i] = (struct gateway_param){keys[i], values[i]};
		}
		c = (struct gateway_call){
		    "param2/1/ns/api/" APP_KEY, p, n, TOKEN, TS_MS + round, SECRET};
		if (gateway_call_body(&c, &body, &len) != STATUS_OK) {
			CHECK(0);
			continue;
		}
		CHECK_INT(form_decode(body, len, &form, &err), 0);
		for (size_t i = 0; i < form.n_fields && m < N(decoded); i++) {
			if (strcmp(form.fields[i].name, "_aop_signature") == 0)
				sent = form.fields[i].value;
			decoded[m++] =
			    (struct gateway_param){form.fields[i].name, form.fields[i].value};
		}
		CHECK(sent != NULL);
		CHECK(sign_of(c.url_path, decoded, m, SECRET, again) != NULL);
		CHECK(sent != NULL && strcmp(sent, again) == 0);
		/* The same call signed by hand agrees. */
		{
			struct gateway_param all[8];
			char stamp[24];

			memcpy(all, p, n * sizeof(*p));
			snprintf(stamp, sizeof(stamp), "%lld", TS_MS + round);
			all[n] = (struct gateway_param){"access_token", TOKEN};
			all[n + 1] = (struct gateway_param){"_aop_timestamp", stamp};
			CHECK_STR(sign_of(c.url_path, all, n + 2, SECRET, hex), again);
		}
		/* One byte of one field changed: another signature. */
		for (size_t i = 0; i < form.n_fields; i++) {
			struct form_field *f = &form.fields[i];

			if (f->value == sent || f->value_len == 0)
				continue;
			f->value[0] = (char)(f->value[0] == 'x' ? 'y' : 'x');
			CHECK(sign_of(c.url_path, decoded, m, SECRET, tampered) != NULL);
			CHECK(strcmp(tampered, again) != 0);
			f->value[0] = (char)(f->value[0] == 'x' ? 'y' : 'x');
			break;
		}
		form_free(&form);
		gateway_wipe_free(body, len);
	}
}

/* Each part of a call is signed: a key, a value, the secret, the path, the token, the time. */
static void
test_tampering_changes_signature(void)
{
	const struct gateway_param good[] = {{"webSite", "1688"},
					     {"orderId", "2257164624870311973"},
					     {"access_token", TOKEN},
					     {"_aop_timestamp", TS}};
	const struct gateway_param variants[][4] = {
	    {{"website", "1688"}, good[1], good[2], good[3]},
	    {good[0], {"orderId", "2257164624870311974"}, good[2], good[3]},
	    {good[0], good[1], {"access_token", "0a1b2c3d-4e5f-6789-abcd-ef0123456788"}, good[3]},
	    {good[0], good[1], good[2], {"_aop_timestamp", "1756807082001"}},
	    {good[0], good[1], good[2], {"_aop_timestamp_", TS}},
	};
	char base[41], hex[41];

	CHECK_STR(sign_of(BV_PATH, good, 4, SECRET, base), BV_SIG);
	for (size_t i = 0; i < N(variants); i++) {
		CHECK(sign_of(BV_PATH, variants[i], 4, SECRET, hex) != NULL);
		CHECK(strcmp(hex, BV_SIG) != 0);
	}
	CHECK(sign_of(BV_PATH, good, 4, "demoSecret124", hex) != NULL && strcmp(hex, BV_SIG) != 0);
	CHECK(sign_of("param2/1/com.alibaba.trade/alibaba.trade.get.buyerView/1234568", good, 4,
		      SECRET, hex) != NULL &&
	      strcmp(hex, BV_SIG) != 0);
	/* Only the path from the protocol on is signed: with /openapi/ it differs. */
	CHECK(sign_of("openapi/" BV_PATH, good, 4, SECRET, hex) != NULL &&
	      strcmp(hex, BV_SIG) != 0);
	/* The empty secret is a key like any other, and not the right one. */
	CHECK(sign_of(BV_PATH, good, 4, "", hex) != NULL && strcmp(hex, BV_SIG) != 0);
}

/* A key sent twice, a missing key, no secret: refused, nothing written. */
static void
test_refusals(void)
{
	const struct gateway_param twice[] = {{"a", "1"}, {"b", "2"}, {"a", "3"}};
	const struct gateway_param twice_empty[] = {{"a", "1"}, {"a", ""}};
	const struct gateway_param no_key[] = {{"a", "1"}, {NULL, "2"}};
	const struct gateway_param empty_key[] = {{"", "2"}};
	const struct gateway_param has_token[] = {{"access_token", "other"}};
	const struct gateway_param has_sig[] = {{"a", "1"}, {"_aop_signature", "ABC"}};
	struct gateway_call c = {"p", has_token, 1, TOKEN, TS_MS, SECRET};
	char hex[41], plain[41], *body = (char *)"unset", *s = (char *)"unset";
	size_t len = 99;

	CHECK_INT(gateway_signed_string("p", twice, N(twice), &s, &len), STATUS_PERMANENT);
	CHECK(s == NULL);
	CHECK_INT(len, 0);
	CHECK_INT(gateway_sign("p", twice_empty, N(twice_empty), SECRET, hex), STATUS_PERMANENT);
	CHECK_STR(hex, "");
	CHECK_INT(gateway_sign("p", no_key, N(no_key), SECRET, hex), STATUS_PERMANENT);
	CHECK_INT(gateway_sign("p", empty_key, N(empty_key), SECRET, hex), STATUS_PERMANENT);
	CHECK_INT(gateway_sign("p", twice, 2, NULL, hex), STATUS_PERMANENT);
	CHECK_INT(gateway_sign(NULL, twice, 2, SECRET, hex), STATUS_PERMANENT);
	CHECK_INT(gateway_form(twice, N(twice), NULL, &body, &len), STATUS_PERMANENT);
	CHECK(body == NULL);
	CHECK_INT(gateway_form(no_key, N(no_key), NULL, &body, &len), STATUS_PERMANENT);
	/* The call's own access_token and one among its parameters: which is meant? */
	CHECK_INT(gateway_call_body(&c, &body, &len), STATUS_PERMANENT);
	CHECK(body == NULL);
	c.access_token = NULL;
	c.params = (const struct gateway_param[]){{"_aop_timestamp", "1"}};
	CHECK_INT(gateway_call_body(&c, &body, &len), STATUS_PERMANENT);
	c.timestamp_ms = -1;
	CHECK_INT(gateway_call_body(&c, &body, &len), STATUS_OK);
	free(body);

	/* An _aop_signature among the parameters is neither signed nor sent twice. */
	CHECK_STR(sign_of("p", has_sig, 2, SECRET, hex), sign_of("p", has_sig, 1, SECRET, plain));
	CHECK_INT(gateway_form(has_sig, 2, hex, &body, &len), STATUS_OK);
	CHECK(body != NULL && strstr(body, "ABC") == NULL &&
	      strstr(body, "_aop_signature=") == strrchr(body, '&') + 1);
	free(body);
}

/* s.1.5: yyyyMMddHHmmssSSS+hhmm at any offset; S4's native sample; refusals. */
static void
test_dates(void)
{
	char d[GATEWAY_DATE_LEN + 1];

	CHECK_INT(gateway_date(d, 1505369828000LL, -7 * 3600), 0);
	CHECK_STR(d, "20170913231708000-0700");
	CHECK_INT(gateway_date(d, 1533215473000LL, SHANGHAI_OFFSET_S), 0);
	CHECK_STR(d, "20180802211113000+0800");
	CHECK_INT(gateway_date(d, TS_MS + 123, 0), 0);
	CHECK_STR(d, "20250902095802123+0000");
	CHECK_INT(gateway_date(d, TS_MS, 5 * 3600 + 45 * 60), 0);
	CHECK_STR(d, "20250902154302000+0545");
	CHECK_INT(gateway_date(d, -1, 0), 0);
	CHECK_STR(d, "19691231235959999+0000");
	CHECK_INT(gateway_date(d, 0, -3600), 0);
	CHECK_STR(d, "19691231230000000-0100");
	CHECK_INT(gateway_date(d, 0, 30), -1);
	CHECK_STR(d, "");
	CHECK_INT(gateway_date(d, 0, 19 * 3600), -1);
	CHECK_INT(gateway_date(d, 253402300800000LL, 0), -1); /* year 10000 */
	CHECK_INT(gateway_date(d, 253402300799999LL, 0), 0);
	CHECK_STR(d, "99991231235959999+0000");
	CHECK_INT(gateway_date(d, INT64_MAX, 0), -1);
	CHECK_INT(gateway_date(d, INT64_MIN, 0), -1);
}

static struct gateway_verdict
classify(int status, const char *body, const struct gateway_rules *rules)
{
	struct gateway_verdict v, again;
	json_t *root = NULL;
	json_error_t jerr;

	memset(&v, 'x', sizeof(v));
	CHECK_INT(gateway_classify(status, body, body != NULL ? strlen(body) : 0, rules, &v),
		  v.outcome);
	CHECK_INT(v.http_status, status);
	CHECK(strlen(v.why) < sizeof(v.why) && strlen(v.code) < sizeof(v.code));
	CHECK(valid_utf8(v.why));
	CHECK((v.outcome == GATEWAY_OK) == (v.why[0] == '\0'));
	CHECK(strcmp(gateway_outcome_name(v.outcome), "") != 0);
	/* The loaded-once entry point agrees. */
	if (body != NULL)
		root = json_loads(body, JSON_REJECT_DUPLICATES, &jerr);
	gateway_classify_json(status, root, rules, &again);
	CHECK_INT(again.outcome, v.outcome);
	CHECK_STR(again.why, v.why);
	CHECK_STR(again.code, v.code);
	json_decref(root);
	return v;
}

/* s.1.6 and s.3-4: the answers that are a success. */
static void
test_classify_success(void)
{
	static const char *const ok[] = {
	    "{\"result\":{\"baseInfo\":{\"id\":1}}}", /* s.3: the doc's own sample */
	    "{\"result\":{},\"success\":\"true\",\"errorCode\":\"\",\"errorMessage\":\"\"}",
	    "{\"result\":{},\"success\":true}",
	    "{\"result\":[],\"totalRecord\":537}", /* s.4 */
	    "{\"pushMessagePage\":{\"datas\":[],\"totalCount\":0}}",
	    "{\"isSuccess\":true}", /* s.5.3 */
	    "{\"result\":{},\"errorCode\":null,\"errorCode_\":\"x\"}",
	};

	for (size_t i = 0; i < N(ok); i++) {
		struct gateway_verdict v = classify(200, ok[i], NULL);

		CHECK_INT(v.outcome, GATEWAY_OK);
		CHECK_STR(v.code, "");
	}
	CHECK_INT(classify(204, "{}", NULL).outcome, GATEWAY_OK);
	CHECK_STR(gateway_outcome_name(GATEWAY_OK), "ok");
}

/* s.1.6: the gateway's own errors (HTTP 4xx/5xx, snake case), the codes seen in the wild. */
static void
test_classify_gateway_errors(void)
{
	struct gateway_verdict v;

	v = classify(400,
		     "{\"error_code\":\"gw.QosAppFrequencyLimit\",\"error_message\":\"App call "
		     "exceeds limited frequency\",\"exception\":\"x\",\"request_id\":\"21041a8b\"}",
		     NULL);
	CHECK_INT(v.outcome, GATEWAY_THROTTLED);
	CHECK_STR(v.code, "gw.QosAppFrequencyLimit");
	CHECK_STR(v.why, "gw.QosAppFrequencyLimit: App call exceeds limited frequency (HTTP 400) "
			 "request_id 21041a8b");
	CHECK_STR(gateway_outcome_name(v.outcome), "throttled");

	v = classify(400,
		     "{\"error_code\":\"gw.APIACLDecline\",\"error_message\":\"AppKey is not "
		     "allowed(acl)\",\"request_id\":\"r1\"}",
		     NULL);
	CHECK_INT(v.outcome, GATEWAY_PERMANENT);
	CHECK_STR(v.why, "gw.APIACLDecline: AppKey is not allowed(acl) (HTTP 400) request_id r1");
	CHECK_STR(gateway_outcome_name(v.outcome), "permanent");

	/* A gw.* code is not retried even with a 5xx (rule 1 is for the others). */
	v = classify(500, "{\"error_code\":\"gw.SignatureInvalid\",\"error_message\":\"x\"}", NULL);
	CHECK_INT(v.outcome, GATEWAY_PERMANENT);
	CHECK_STR(v.code, "gw.SignatureInvalid");
	v = classify(400,
		     "{\"error_code\":\"gw.NoUsageLeftError\",\"error_message\":\"SLA bill has no "
		     "usage left\",\"exception\":\"java.lang.Exception: secret stack\"}",
		     NULL);
	CHECK_INT(v.outcome, GATEWAY_PERMANENT);
	CHECK(strstr(v.why, "SLA bill has no usage left") != NULL);
	CHECK(strstr(v.why, "stack") == NULL); /* the exception is not quoted */
	CHECK_INT(classify(400, "{\"error_code\":\"gw.AppKeyNotFound\"}", NULL).outcome,
		  GATEWAY_PERMANENT);
	CHECK_STR(classify(400, "{\"error_code\":\"gw.AppKeyNotFound\"}", NULL).why,
		  "gw.AppKeyNotFound (HTTP 400)");

	/* Not gw.*: the status decides (rule 1). */
	v = classify(503, "{\"error_code\":\"isp.unavailable\",\"error_message\":\"busy\"}", NULL);
	CHECK_INT(v.outcome, GATEWAY_RETRYABLE);
	CHECK_STR(v.why, "isp.unavailable: busy (HTTP 503)");
	CHECK_STR(gateway_outcome_name(v.outcome), "retryable");
	CHECK_INT(classify(400, "{\"error_code\":\"isv.bad-param\"}", NULL).outcome,
		  GATEWAY_PERMANENT);
	CHECK_STR(classify(502, "<html>Bad Gateway</html>", NULL).why, "HTTP 502 from the gateway");
	CHECK_INT(classify(502, "<html>Bad Gateway</html>", NULL).outcome, GATEWAY_RETRYABLE);
	CHECK_INT(classify(404, "<html>Not Found</html>", NULL).outcome, GATEWAY_PERMANENT);
	CHECK_INT(classify(408, "", NULL).outcome, GATEWAY_RETRYABLE);
	CHECK_INT(classify(429, "", NULL).outcome, GATEWAY_THROTTLED);
	CHECK_INT(classify(302, "", NULL).outcome, GATEWAY_PERMANENT);
	CHECK_INT(classify(0, NULL, NULL).outcome, GATEWAY_RETRYABLE);
	CHECK_STR(classify(0, NULL, NULL).why, "no answer from the gateway");
	CHECK_INT(classify(-1, "{\"result\":{}}", NULL).outcome, GATEWAY_RETRYABLE);
	/* An integer code is a code too. */
	v = classify(400, "{\"error_code\":400,\"error_message\":\"bad\"}", NULL);
	CHECK_STR(v.code, "400");
	CHECK_INT(v.outcome, GATEWAY_PERMANENT);
}

/* s.1.6 UNCERTAIN: HTTP 401 or a code that mentions a token; more codes as a setting. */
static void
test_classify_token_errors(void)
{
	static const char *const token_codes[] = {"gw.Custom", NULL};
	static const char *const throttle_codes[] = {"gw.QosApiFrequencyLimit", NULL};
	const struct gateway_rules rules = {throttle_codes, token_codes, NULL};
	struct gateway_verdict v;

	v = classify(401,
		     "{\"error_code\":\"401\",\"error_message\":\"Request need user "
		     "authorized\"}",
		     NULL);
	CHECK_INT(v.outcome, GATEWAY_TOKEN);
	CHECK_STR(gateway_outcome_name(v.outcome), "token");
	CHECK_INT(classify(401, "", NULL).outcome, GATEWAY_TOKEN);
	CHECK_INT(classify(400, "{\"error_code\":\"gw.InvalidAccessToken\"}", NULL).outcome,
		  GATEWAY_TOKEN);
	CHECK_INT(classify(400, "{\"error_code\":\"gw.TOKEN_EXPIRED\"}", NULL).outcome,
		  GATEWAY_TOKEN);
	CHECK_INT(classify(200, "{\"errorCode\":\"tokenExpired\",\"success\":false}", NULL).outcome,
		  GATEWAY_TOKEN);
	/* A message that mentions a token does not make a token error of another code. */
	CHECK_INT(
	    classify(400, "{\"error_code\":\"gw.APIACLDecline\",\"error_message\":\"token\"}", NULL)
		.outcome,
	    GATEWAY_PERMANENT);
	/* Settings: a listed token code; other throttling codes (replacing the default). */
	CHECK_INT(classify(400, "{\"error_code\":\"gw.Custom\"}", NULL).outcome, GATEWAY_PERMANENT);
	CHECK_INT(classify(400, "{\"error_code\":\"gw.Custom\"}", &rules).outcome, GATEWAY_TOKEN);
	CHECK_INT(classify(400, "{\"error_code\":\"gw.QosApiFrequencyLimit\"}", &rules).outcome,
		  GATEWAY_THROTTLED);
	CHECK_INT(classify(400, "{\"error_code\":\"gw.QosApiFrequencyLimit\"}", NULL).outcome,
		  GATEWAY_PERMANENT);
	CHECK_INT(classify(400, "{\"error_code\":\"gw.QosAppFrequencyLimit\"}", &rules).outcome,
		  GATEWAY_PERMANENT);
	/* Throttling wins over a 401. */
	CHECK_INT(classify(401, "{\"error_code\":\"gw.QosAppFrequencyLimit\"}", NULL).outcome,
		  GATEWAY_THROTTLED);
}

/* s.1.6: business answers, HTTP 200, camel case; retried like today's API's. */
static void
test_classify_business_errors(void)
{
	struct gateway_verdict v;

	v = classify(200,
		     "{\"success\":\"false\",\"errorCode\":\"ORDER_NOT_EXIST\","
		     "\"errorMessage\":\"订单不存在\"}",
		     NULL);
	CHECK_INT(v.outcome, GATEWAY_RETRYABLE);
	CHECK_STR(v.code, "ORDER_NOT_EXIST");
	CHECK_STR(v.why, "ORDER_NOT_EXIST: 订单不存在 (HTTP 200)");
	v = classify(200, "{\"result\":{},\"success\":false,\"errorMsg\":\"no\"}", NULL);
	CHECK_INT(v.outcome, GATEWAY_RETRYABLE);
	CHECK_STR(v.why, "success false: no (HTTP 200)");
	CHECK_INT(classify(200, "{\"success\":\"false\"}", NULL).outcome, GATEWAY_RETRYABLE);
	v = classify(200, "{\"result\":[],\"errorCode\":\"x\",\"extErrorMessage\":\"ext\"}", NULL);
	CHECK_INT(v.outcome, GATEWAY_RETRYABLE);
	CHECK_STR(v.why, "x: ext (HTTP 200)");
	CHECK_STR(classify(200, "{\"errorCode\":\"e\",\"errorInfo\":\"info\"}", NULL).why,
		  "e: info (HTTP 200)");
	/* error_code wins over errorCode, error_message over errorMessage. */
	v = classify(200,
		     "{\"errorCode\":\"b\",\"error_code\":\"a\",\"errorMessage\":\"mb\","
		     "\"error_message\":\"ma\"}",
		     NULL);
	CHECK_STR(v.code, "a");
	CHECK_STR(v.why, "a: ma (HTTP 200)");
	CHECK_INT(classify(200, "{\"errorCode\":7}", NULL).outcome, GATEWAY_RETRYABLE);
	/* Not a JSON object. */
	v = classify(200, "<html>", NULL);
	CHECK_INT(v.outcome, GATEWAY_RETRYABLE);
	CHECK_STR(v.why, "the gateway's answer is not a JSON object (HTTP 200)");
	CHECK_INT(classify(200, "[{\"result\":{}}]", NULL).outcome, GATEWAY_RETRYABLE);
	CHECK_INT(classify(200, "", NULL).outcome, GATEWAY_RETRYABLE);
	CHECK_INT(classify(200, "{\"a\":1,\"a\":2}", NULL).outcome, GATEWAY_RETRYABLE);
}

/* No secret, no token, no prefix of either, no control byte, no split UTF-8 in a text. */
static void
test_classify_text_is_safe(void)
{
	static const char *const redact[] = {SECRET, TOKEN, NULL};
	const struct gateway_rules rules = {NULL, NULL, redact};
	char body[2048], pad[300];
	struct gateway_verdict v;

	snprintf(body, sizeof(body),
		 "{\"error_code\":\"gw.SignatureInvalid\",\"error_message\":\"signed with %s, "
		 "token %s\\n\\u0001end\",\"request_id\":\"%s\"}",
		 SECRET, TOKEN, TOKEN);
	v = classify(500, body, &rules);
	CHECK_STR(v.why, "gw.SignatureInvalid: signed with [redacted], token [redacted]??end "
			 "(HTTP 500) request_id [redacted]");
	/* Without the list the same text would show them: the check above can fail. */
	v = classify(500, body, NULL);
	CHECK(strstr(v.why, SECRET) != NULL);

	/* A token straddling the cut: not one byte of it. */
	for (size_t at = 200; at < 260; at++) {
		memset(pad, 'p', at);
		pad[at] = '\0';
		snprintf(body, sizeof(body), "{\"error_code\":\"c\",\"error_message\":\"%s%s\"}",
			 pad, TOKEN);
		v = classify(400, body, &rules);
		CHECK(strstr(v.why, "0a1b") == NULL);
	}
	/* A code holding the token is redacted as well. */
	v = classify(400, "{\"error_code\":\"" TOKEN "\"}", &rules);
	CHECK_STR(v.code, "[redacted]");
	/* A long Chinese message is cut between characters. */
	{
		size_t o = (size_t)snprintf(body, sizeof(body),
					    "{\"errorCode\":\"e\",\"errorMessage\":\"");

		for (int i = 0; i < 200; i++)
			o += (size_t)snprintf(body + o, sizeof(body) - o, "订");
		snprintf(body + o, sizeof(body) - o, "\"}");
		v = classify(200, body, NULL);
		CHECK(strlen(v.why) > 200);
	}
	/* A code beyond 63 bytes is cut, and non-ASCII in it is '?'. */
	memset(pad, 'c', 100);
	pad[100] = '\0';
	snprintf(body, sizeof(body), "{\"error_code\":\"%s\"}", pad);
	CHECK_INT(strlen(classify(400, body, NULL).code), 63);
	CHECK_STR(classify(400, "{\"error_code\":\"gw.é\"}", NULL).code, "gw.??");
}

/* Well-formed UTF-8 (no truncated sequence): enough for these texts. */
static int
valid_utf8(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	while (*p != '\0') {
		size_t k = *p < 0x80 ? 0 : *p >= 0xf0 ? 3 : *p >= 0xe0 ? 2 : *p >= 0xc2 ? 1 : 9;

		if (k == 9)
			return 0;
		for (size_t j = 1; j <= k; j++)
			if ((p[j] & 0xc0) != 0x80)
				return 0;
		p += k + 1;
	}
	return 1;
}

/* xorshift32: the same sequence every run. */
static uint32_t
next_random(uint32_t *state)
{
	uint32_t x = *state;

	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	*state = x;
	return x;
}

CHECK_MAIN("gateway", CHECK_TEST(test_api_paths), CHECK_TEST(test_api_path_refusals),
	   CHECK_TEST(test_official_vector), CHECK_TEST(test_example_buyer_view),
	   CHECK_TEST(test_example_cursor), CHECK_TEST(test_example_table),
	   CHECK_TEST(test_sort_order), CHECK_TEST(test_empty_values),
	   CHECK_TEST(test_raw_values_signed), CHECK_TEST(test_verify_round_trip),
	   CHECK_TEST(test_tampering_changes_signature), CHECK_TEST(test_refusals),
	   CHECK_TEST(test_dates), CHECK_TEST(test_classify_success),
	   CHECK_TEST(test_classify_gateway_errors), CHECK_TEST(test_classify_token_errors),
	   CHECK_TEST(test_classify_business_errors), CHECK_TEST(test_classify_text_is_safe))
