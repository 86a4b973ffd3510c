/*
 * test_signature.c - canonical strings, the MAC and verification against
 * PROTOCOL.md's test vector, secret rotation, and every refusal.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "form.h"
#include "signature.h"

#define SECRET	       "demo-app-secret"
#define VECTOR_SORTED  "B7921195E2E67B30BDF6B945BB94E391BBE2DD27"
#define VECTOR_MESSAGE "AFE11C4900A096A77DFD8441287A515099677DBF"

static const char vector_message[] =
    "{\"data\":{\"buyerMemberId\":\"b2b-2217533334e9c00\",\"currentStatus\":"
    "\"waitsellersend\",\"orderId\":2908059205527363456,\"sellerMemberId\":"
    "\"b2b-292931333434e\",\"msgSendTime\":\"2025-09-02 17:58:02\"},\"gmtBorn\":"
    "1756807082000,\"msgId\":130000000001,\"type\":\"ORDER_BUYER_VIEW_ORDER_PAY\","
    "\"userInfo\":\"b2b-2217533334e9c00\"}";

static char *url_encode(const char *s);
static char *vector_body(const char *sig_field, const char *sig);
static int decode_str(const char *body, struct form *form);
static struct app_config app(enum signature_mode mode, char *secret);
static enum signature_result verify_body(const char *body, const struct app_config *a,
					 const char **field);
static char *canonical_of(const char *body, const char *sig_field, size_t *len);

/* Form-encode S the way a pusher might: unreserved bytes kept, ' ' as '+'. */
static char *
url_encode(const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	char *out = malloc(3 * strlen(s) + 1), *o = out;

	if (out == NULL)
		abort();
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '_' || c == '.' || c == '~') {
			*o++ = (char)c;
		} else if (c == ' ') {
			*o++ = '+';
		} else {
			*o++ = '%';
			*o++ = hex[c >> 4];
			*o++ = hex[c & 15];
		}
	}
	*o = '\0';
	return out;
}

/* "message=<vector, encoded>&SIG_FIELD=SIG" (SIG_FIELD may be NULL). */
static char *
vector_body(const char *sig_field, const char *sig)
{
	char *enc = url_encode(vector_message);
	size_t n = strlen(enc) + 128;
	char *body = malloc(n);

	if (body == NULL)
		abort();
	if (sig_field != NULL)
		snprintf(body, n, "message=%s&%s=%s", enc, sig_field, sig);
	else
		snprintf(body, n, "message=%s", enc);
	free(enc);
	return body;
}

static int
decode_str(const char *body, struct form *form)
{
	const char *err = NULL;
	int rc = form_decode(body, strlen(body), form, &err);

	if (rc != 0)
		fprintf(stderr, "form_decode: %s\n", err != NULL ? err : "?");
	return rc;
}

static struct app_config
app(enum signature_mode mode, char *secret)
{
	struct app_config a = {
	    .name = "test",
	    .path = "/1688/messages",
	    .app_key = "key",
	    .app_secret = secret,
	    .signature_mode = mode,
	};
	return a;
}

static enum signature_result
verify_body(const char *body, const struct app_config *a, const char **field)
{
	struct form form;
	enum signature_result r;

	if (decode_str(body, &form) != 0)
		return SIGNATURE_ERROR;
	r = signature_verify(&form, a, field);
	form_free(&form);
	return r;
}

/* The sorted canonical string of BODY, NUL-terminated, or NULL. */
static char *
canonical_of(const char *body, const char *sig_field, size_t *len)
{
	struct form form;
	char *c;

	if (decode_str(body, &form) != 0)
		return NULL;
	c = signature_canonical(&form, sig_field, SIGNATURE_SORTED_FIELDS, len);
	form_free(&form);
	return c;
}

static void
test_vector_mac(void)
{
	size_t n = strlen("message") + strlen(vector_message);
	char *data = malloc(n + 1);
	unsigned char mac[SIGNATURE_MAC_LEN];
	char hex[SIGNATURE_HEX_LEN + 1];

	if (data == NULL)
		abort();
	snprintf(data, n + 1, "message%s", vector_message);
	CHECK_INT(signature_mac(SECRET, strlen(SECRET), data, n, mac), 0);
	signature_hex(mac, hex);
	CHECK_STR(hex, VECTOR_SORTED);
	CHECK_INT(
	    signature_mac(SECRET, strlen(SECRET), vector_message, strlen(vector_message), mac), 0);
	signature_hex(mac, hex);
	CHECK_STR(hex, VECTOR_MESSAGE);
	free(data);
}

static void
test_vector_canonical_from_form(void)
{
	char *body = vector_body(SIGNATURE_FIELD_AOP, VECTOR_SORTED);
	struct form form;
	size_t len = 0;
	char *c;
	unsigned char mac[SIGNATURE_MAC_LEN];
	char hex[SIGNATURE_HEX_LEN + 1];

	CHECK_INT(decode_str(body, &form), 0);
	c = signature_canonical(&form, SIGNATURE_FIELD_AOP, SIGNATURE_SORTED_FIELDS, &len);
	CHECK(c != NULL);
	if (c != NULL) {
		CHECK_INT(len, strlen("message") + strlen(vector_message));
		CHECK(strncmp(c, "message", 7) == 0 && strcmp(c + 7, vector_message) == 0);
		CHECK_INT(signature_mac(SECRET, strlen(SECRET), c, len, mac), 0);
		signature_hex(mac, hex);
		CHECK_STR(hex, VECTOR_SORTED);
		free(c);
	}
	c = signature_canonical(&form, SIGNATURE_FIELD_AOP, SIGNATURE_MESSAGE_ONLY, &len);
	CHECK(c != NULL);
	if (c != NULL) {
		CHECK_INT(len, strlen(vector_message));
		CHECK_STR(c, vector_message);
		free(c);
	}
	form_free(&form);
	free(body);
}

static void
test_verify_vector_both_modes(void)
{
	struct app_config sorted = app(SIGNATURE_SORTED_FIELDS, SECRET);
	struct app_config message = app(SIGNATURE_MESSAGE_ONLY, SECRET);
	const char *field = NULL;
	char *body;

	body = vector_body(SIGNATURE_FIELD_AOP, VECTOR_SORTED);
	CHECK_INT(verify_body(body, &sorted, &field), SIGNATURE_OK);
	CHECK_STR(field, SIGNATURE_FIELD_AOP);
	/* The other mode's signature is not this mode's. */
	CHECK_INT(verify_body(body, &message, &field), SIGNATURE_MISMATCH);
	free(body);

	body = vector_body(SIGNATURE_FIELD_DJ, VECTOR_MESSAGE);
	CHECK_INT(verify_body(body, &message, &field), SIGNATURE_OK);
	CHECK_STR(field, SIGNATURE_FIELD_DJ);
	CHECK_INT(verify_body(body, &sorted, &field), SIGNATURE_MISMATCH);
	free(body);

	/* Either signature field works in either mode. */
	body = vector_body(SIGNATURE_FIELD_DJ, VECTOR_SORTED);
	CHECK_INT(verify_body(body, &sorted, NULL), SIGNATURE_OK);
	free(body);
}

static void
test_lowercase_hex_accepted(void)
{
	struct app_config a = app(SIGNATURE_SORTED_FIELDS, SECRET);
	char lower[] = VECTOR_SORTED;
	char mixed[] = VECTOR_SORTED;
	char *body;

	for (char *p = lower; *p != '\0'; p++)
		if (*p >= 'A' && *p <= 'F')
			*p = (char)(*p - 'A' + 'a');
	for (char *p = mixed; *p != '\0'; p += 2)
		if (*p >= 'A' && *p <= 'F')
			*p = (char)(*p - 'A' + 'a');
	body = vector_body(SIGNATURE_FIELD_AOP, lower);
	CHECK_INT(verify_body(body, &a, NULL), SIGNATURE_OK);
	free(body);
	body = vector_body(SIGNATURE_FIELD_AOP, mixed);
	CHECK_INT(verify_body(body, &a, NULL), SIGNATURE_OK);
	free(body);
}

static void
test_wrong_secret_and_tampering(void)
{
	struct app_config wrong = app(SIGNATURE_SORTED_FIELDS, "demo-app-secreT");
	struct app_config right = app(SIGNATURE_SORTED_FIELDS, SECRET);
	char *body = vector_body(SIGNATURE_FIELD_AOP, VECTOR_SORTED);
	char flipped[] = VECTOR_SORTED;

	CHECK_INT(verify_body(body, &wrong, NULL), SIGNATURE_MISMATCH);
	free(body);
	flipped[39] = flipped[39] == '7' ? '8' : '7';
	body = vector_body(SIGNATURE_FIELD_AOP, flipped);
	CHECK_INT(verify_body(body, &right, NULL), SIGNATURE_MISMATCH);
	free(body);
	/* An extra field is signed too: adding one breaks the signature. */
	body = vector_body(SIGNATURE_FIELD_AOP, VECTOR_SORTED);
	{
		size_t n = strlen(body) + 8;
		char *more = malloc(n);

		if (more == NULL)
			abort();
		snprintf(more, n, "%s&x=1", body);
		CHECK_INT(verify_body(more, &right, NULL), SIGNATURE_MISMATCH);
		free(more);
	}
	free(body);
}

static void
test_rotation(void)
{
	char *old_only[] = {SECRET};
	char *several[] = {"older", SECRET, "oldest"};
	struct app_config a = app(SIGNATURE_SORTED_FIELDS, "new-secret");
	char *body = vector_body(SIGNATURE_FIELD_AOP, VECTOR_SORTED);

	CHECK_INT(verify_body(body, &a, NULL), SIGNATURE_MISMATCH);
	a.previous_secrets = old_only;
	a.n_previous_secrets = 1;
	CHECK_INT(verify_body(body, &a, NULL), SIGNATURE_OK);
	a.previous_secrets = several;
	a.n_previous_secrets = 3;
	CHECK_INT(verify_body(body, &a, NULL), SIGNATURE_OK);
	/* Only the first N previous secrets count. */
	a.n_previous_secrets = 1;
	CHECK_INT(verify_body(body, &a, NULL), SIGNATURE_MISMATCH);
	free(body);
}

static void
test_missing_and_ambiguous(void)
{
	struct app_config a = app(SIGNATURE_SORTED_FIELDS, SECRET);
	const char *field = "stale";
	char *body = vector_body(NULL, NULL);
	size_t n = strlen(body) + 256;
	char *both = malloc(n);

	if (both == NULL)
		abort();
	CHECK_INT(verify_body(body, &a, &field), SIGNATURE_MISSING);
	CHECK(field == NULL);
	CHECK_INT(verify_body("", &a, NULL), SIGNATURE_MISSING);
	/* Similar names are not signature fields. */
	CHECK_INT(verify_body("message=x&aop_signature=" VECTOR_SORTED, &a, NULL),
		  SIGNATURE_MISSING);
	snprintf(both, n, "%s&_aop_signature=%s&_dj_signature=%s", body, VECTOR_SORTED,
		 VECTOR_SORTED);
	field = "stale";
	CHECK_INT(verify_body(both, &a, &field), SIGNATURE_AMBIGUOUS);
	CHECK(field == NULL);
	free(both);
	free(body);
}

static void
test_malformed(void)
{
	struct app_config a = app(SIGNATURE_SORTED_FIELDS, SECRET);
	char *body;

	body = vector_body(SIGNATURE_FIELD_AOP, "B7921195E2E67B30BDF6B945BB94E391BBE2DD2");
	CHECK_INT(verify_body(body, &a, NULL), SIGNATURE_MALFORMED); /* 39 digits */
	free(body);
	body = vector_body(SIGNATURE_FIELD_AOP, "B7921195E2E67B30BDF6B945BB94E391BBE2DD270");
	CHECK_INT(verify_body(body, &a, NULL), SIGNATURE_MALFORMED); /* 41 digits */
	free(body);
	body = vector_body(SIGNATURE_FIELD_AOP, "G7921195E2E67B30BDF6B945BB94E391BBE2DD27");
	CHECK_INT(verify_body(body, &a, NULL), SIGNATURE_MALFORMED); /* not hex */
	free(body);
	body = vector_body(SIGNATURE_FIELD_AOP, "B7921195E2E67B30BDF6B945BB94E391BBE2DD2+");
	CHECK_INT(verify_body(body, &a, NULL), SIGNATURE_MALFORMED); /* a space */
	free(body);
	body = vector_body(SIGNATURE_FIELD_AOP, "");
	CHECK_INT(verify_body(body, &a, NULL), SIGNATURE_MALFORMED);
	free(body);
}

static void
test_message_only_without_message(void)
{
	struct app_config a = app(SIGNATURE_MESSAGE_ONLY, SECRET);
	struct form form;
	size_t len = 7;

	CHECK_INT(decode_str("other=1", &form), 0);
	CHECK(signature_canonical(&form, NULL, SIGNATURE_MESSAGE_ONLY, &len) == NULL);
	form_free(&form);
	CHECK_INT(verify_body("other=1&_aop_signature=" VECTOR_MESSAGE, &a, NULL),
		  SIGNATURE_MISMATCH);
}

static void
test_canonical_order_independent(void)
{
	size_t la = 0, lb = 0;
	char *a = canonical_of("b=2&a=1", NULL, &la);
	char *b = canonical_of("a=1&b=2", NULL, &lb);

	CHECK_STR(a, "a1b2");
	CHECK_STR(b, "a1b2");
	CHECK_INT(la, 4);
	CHECK_INT(lb, 4);
	free(a);
	free(b);
}

static void
test_canonical_name_sorting(void)
{
	size_t len = 0;
	/* Byte order: "Z" < "_" < "a" < "a_" < "ab" < "b"; a prefix sorts first. */
	char *c = canonical_of("b=5&ab=4&a_=3&a=2&Z=1&_=0", NULL, &len);

	CHECK_STR(c, "Z1_0a2a_3ab4b5");
	free(c);
	c = canonical_of("aa=2&a=1&aaa=3", NULL, &len);
	CHECK_STR(c, "a1aa2aaa3");
	free(c);
	/* Non-ASCII names sort as unsigned bytes, after ASCII. */
	c = canonical_of("%E4=1&z=2", NULL, &len);
	CHECK_STR(c, "z2\xe4"
		     "1");
	free(c);
}

static void
test_canonical_leaves_out_signatures(void)
{
	size_t len = 99;
	char *c;

	c = canonical_of("m=1&_aop_signature=x&_dj_signature=y&k=2", NULL, &len);
	CHECK_STR(c, "k2m1");
	free(c);
	c = canonical_of("m=1&custom_sig=x", "custom_sig", &len);
	CHECK_STR(c, "m1");
	free(c);
	c = canonical_of("", NULL, &len);
	CHECK_STR(c, "");
	CHECK_INT(len, 0);
	free(c);
	/* Values keep their bytes, NUL included, and the length says so. */
	c = canonical_of("v=a%00b", NULL, &len);
	CHECK_INT(len, 4);
	CHECK(c != NULL && memcmp(c, "va\0b", 4) == 0);
	free(c);
}

static void
test_verify_extra_fields(void)
{
	/* A signed form with more fields than `message`, sent in another order. */
	struct app_config a = app(SIGNATURE_SORTED_FIELDS, "k");
	unsigned char mac[SIGNATURE_MAC_LEN];
	char hex[SIGNATURE_HEX_LEN + 1], body[128];

	CHECK_INT(signature_mac("k", 1, "a1message{}zz ", 14, mac), 0);
	signature_hex(mac, hex);
	snprintf(body, sizeof(body), "zz=+&_aop_signature=%s&message=%%7B%%7D&a=1", hex);
	CHECK_INT(verify_body(body, &a, NULL), SIGNATURE_OK);
	snprintf(body, sizeof(body), "zz=+&_aop_signature=%s&message=%%7B%%7D&a=2", hex);
	CHECK_INT(verify_body(body, &a, NULL), SIGNATURE_MISMATCH);
}

static void
test_result_text(void)
{
	CHECK_STR(signature_result_text(SIGNATURE_OK), "ok");
	CHECK_STR(signature_result_text(SIGNATURE_MISSING), "missing signature");
	CHECK_STR(signature_result_text(SIGNATURE_AMBIGUOUS),
		  "both _aop_signature and _dj_signature present");
	CHECK_STR(signature_result_text(SIGNATURE_MALFORMED), "malformed signature");
	CHECK_STR(signature_result_text(SIGNATURE_MISMATCH), "bad signature");
	CHECK_STR(signature_result_text(SIGNATURE_ERROR), "signature check failed");
}

CHECK_MAIN("signature", CHECK_TEST(test_vector_mac), CHECK_TEST(test_vector_canonical_from_form),
	   CHECK_TEST(test_verify_vector_both_modes), CHECK_TEST(test_lowercase_hex_accepted),
	   CHECK_TEST(test_wrong_secret_and_tampering), CHECK_TEST(test_rotation),
	   CHECK_TEST(test_missing_and_ambiguous), CHECK_TEST(test_malformed),
	   CHECK_TEST(test_message_only_without_message),
	   CHECK_TEST(test_canonical_order_independent), CHECK_TEST(test_canonical_name_sorting),
	   CHECK_TEST(test_canonical_leaves_out_signatures), CHECK_TEST(test_verify_extra_fields),
	   CHECK_TEST(test_result_text))
