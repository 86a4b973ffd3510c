/*
 * test_webhook.c - Standard Webhooks signatures (receiver/webhook.c)
 * against the reference libraries' test vectors, HMAC-SHA256 computed
 * another way, rotation, webhook ids, and every malformed secret.
 *
 * The specification's own example (spec/standard-webhooks.md, "Webhook
 * headers": id msg_2KWPBgLlAfxdpx2AI54pPJ85f4W, timestamp 1674087231,
 * v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4=) names no secret, so it
 * is no vector.  The vectors below are the reference libraries' (github
 * standard-webhooks/standard-webhooks at b2fa7b8, libraries/).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "check.h"
#include "webhook.h"

/*
 * Vector A: libraries/javascript/src/webhook.test.ts "sign function works"
 * and libraries/python/tests/test_webhooks.py test_sign_function (also in
 * the PHP and Ruby tests).
 */
#define A_SECRET    "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
#define A_ID	    "msg_p5jXN8AQM9LWM0D4loKWxJek"
#define A_TS	    1614265330LL
#define A_BODY	    "{\"test\": 2432232314}"
#define A_SIGNATURE "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
/* A's key bytes, as the JavaScript library's base64 decoder gives them. */
#define A_KEY_HEX "31f290f6bf06298aab4f08d43c3f082cf648a362da2da4b0"

/* Vector B: libraries/rust/src/lib.rs test_sign. */
#define B_SECRET    "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"
#define B_ID	    "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk"
#define B_TS	    1649367553LL
#define B_BODY	    "{\"email\":\"test@example.com\",\"username\":\"test_user\"}"
#define B_SIGNATURE "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw="

static struct webhook_key key_of(const char *secret);
static int sign1(const char *secret, const char *id, long long ts, const char *body, size_t len,
		 char *out);
static void hex(const unsigned char *b, size_t n, char *out);
static void secret_of(const unsigned char *bytes, size_t n, char *out);
static void oneshot(const struct webhook_key *k, const char *id, long long ts, const char *body,
		    size_t len, char *out);
static const char *decode_why(const char *secret);

static struct webhook_key
key_of(const char *secret)
{
	struct webhook_key k;
	const char *why = NULL;

	if (webhook_key_init(&k, secret, &why) < 0) {
		fprintf(stderr, "test secret refused: %s\n", why);
		abort();
	}
	return k;
}

/* The one-key header of SECRET into OUT (WEBHOOK_SIGNATURES_CAP(1) bytes). */
static int
sign1(const char *secret, const char *id, long long ts, const char *body, size_t len, char *out)
{
	struct webhook_key k = key_of(secret);
	int rc = webhook_signature(&k, 1, id, ts, body, len, out, WEBHOOK_SIGNATURES_CAP(1));

	webhook_key_wipe(&k);
	return rc;
}

static void
hex(const unsigned char *b, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", b[i]);
	out[2 * n] = '\0';
}

/* "whsec_" + base64 of BYTES by OpenSSL's encoder, not ours. */
static void
secret_of(const unsigned char *bytes, size_t n, char *out)
{
	memcpy(out, WEBHOOK_SECRET_PREFIX, 6);
	EVP_EncodeBlock((unsigned char *)out + 6, bytes, (int)n);
}

/* The expected signature another way: one-shot HMAC() over the joined string. */
static void
oneshot(const struct webhook_key *k, const char *id, long long ts, const char *body, size_t len,
	char *out)
{
	int head = snprintf(NULL, 0, "%s.%lld.", id, ts);
	char *msg = malloc((size_t)head + len + 1);
	unsigned char mac[32];
	unsigned int mac_len = 0;

	if (msg == NULL)
		abort();
	snprintf(msg, (size_t)head + 1, "%s.%lld.", id, ts);
	if (len > 0)
		memcpy(msg + head, body, len);
	if (HMAC(EVP_sha256(), k->bytes, (int)k->len, (unsigned char *)msg, (size_t)head + len, mac,
		 &mac_len) == NULL ||
	    mac_len != 32)
		abort();
	memcpy(out, "v1,", 3);
	EVP_EncodeBlock((unsigned char *)out + 3, mac, 32);
	free(msg);
}

/* The reason SECRET is refused, or NULL when it is accepted. */
static const char *
decode_why(const char *secret)
{
	unsigned char key[WEBHOOK_KEY_MAX];
	size_t len = 0;
	const char *why = NULL;

	memset(key, 0xaa, sizeof(key));
	if (webhook_secret_decode(secret, key, sizeof(key), &len, &why) == 0)
		return NULL;
	/* A refused secret leaves nothing of itself in the buffer. */
	for (size_t i = 0; i < sizeof(key); i++)
		CHECK(key[i] == 0xaa);
	CHECK(why != NULL);
	return why;
}

static void
test_reference_vectors(void)
{
	char out[WEBHOOK_SIGNATURES_CAP(1)];

	CHECK_INT(sign1(A_SECRET, A_ID, A_TS, A_BODY, strlen(A_BODY), out), 0);
	CHECK_STR(out, A_SIGNATURE);
	CHECK_INT(strlen(out), WEBHOOK_SIGNATURE_LEN);
	CHECK_INT(sign1(B_SECRET, B_ID, B_TS, B_BODY, strlen(B_BODY), out), 0);
	CHECK_STR(out, B_SIGNATURE);
	/* Any change of id, timestamp or body changes the signature. */
	CHECK_INT(sign1(A_SECRET, A_ID, A_TS + 1, A_BODY, strlen(A_BODY), out), 0);
	CHECK(strcmp(out, A_SIGNATURE) != 0);
	CHECK_INT(
	    sign1(A_SECRET, "msg_p5jXN8AQM9LWM0D4loKWxJeK", A_TS, A_BODY, strlen(A_BODY), out), 0);
	CHECK(strcmp(out, A_SIGNATURE) != 0);
	CHECK_INT(sign1(A_SECRET, A_ID, A_TS, A_BODY, strlen(A_BODY) - 1, out), 0);
	CHECK(strcmp(out, A_SIGNATURE) != 0);
}

static void
test_key_bytes(void)
{
	struct webhook_key k = key_of(A_SECRET);
	char h[2 * WEBHOOK_KEY_MAX + 1];

	CHECK_INT(k.len, 24);
	hex(k.bytes, k.len, h);
	CHECK_STR(h, A_KEY_HEX);
	webhook_key_wipe(&k);
	CHECK_INT(k.len, 0);
	for (size_t i = 0; i < sizeof(k.bytes); i++)
		CHECK(k.bytes[i] == 0);
}

/* Every length 24..64 (all three paddings), encoded by OpenSSL, decodes to its bytes. */
static void
test_every_length_round_trips(void)
{
	unsigned char bytes[WEBHOOK_KEY_MAX];
	char secret[8 + 4 * WEBHOOK_KEY_MAX / 3 + 4];

	for (size_t i = 0; i < sizeof(bytes); i++)
		bytes[i] = (unsigned char)(0xff - 7 * i);
	for (size_t n = WEBHOOK_KEY_MIN; n <= WEBHOOK_KEY_MAX; n++) {
		struct webhook_key k;
		const char *why = NULL;

		secret_of(bytes, n, secret);
		CHECK_INT(webhook_key_init(&k, secret, &why), 0);
		CHECK_INT(k.len, n);
		CHECK(memcmp(k.bytes, bytes, n) == 0);
	}
	secret_of(bytes, WEBHOOK_KEY_MIN - 1, secret);
	CHECK_STR(decode_why(secret), "must decode to 24 to 64 bytes");
	secret_of(bytes, WEBHOOK_KEY_MAX - 1, secret); /* 63 bytes: no padding */
	strcat(secret, "AAAA");			       /* 66 */
	CHECK_STR(decode_why(secret), "must decode to 24 to 64 bytes");
}

static void
test_malformed_secrets(void)
{
	static const char *const not_base64[] = {
	    "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS",	/* unpadded (31 digits) */
	    "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n", /* a newline from a file */
	    "whsec_ MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
	    "whsec_MfKQ9r8GKYqrTwjUPD8ILPZ Io2LaLaSw",
	    "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLa!w",
	    "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLa-w", /* base64url is not standard base64 */
	    "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLa_w",
	    "whsec_MfKQ9r8GKYqr=wjUPD8ILPZIo2LaLaSw", /* '=' inside */
	    "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwAA=====",
	    "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwA===", /* three '=' */
	    "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwAR==", /* stray bits under the padding */
	    "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwAAB=",
	};
	const char *why;

	/* The reference libraries take a bare base64 secret; the format does not. */
	CHECK_STR(decode_why("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"), "must start with whsec_");
	CHECK_STR(decode_why("WHSEC_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"), "must start with whsec_");
	CHECK_STR(decode_why("whsec"), "must start with whsec_");
	CHECK_STR(decode_why(""), "must start with whsec_");
	CHECK_STR(decode_why(NULL), "must start with whsec_");
	CHECK_STR(decode_why("whsec_"), "must decode to 24 to 64 bytes");
	CHECK_STR(decode_why("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaQ="), /* 23 bytes */
		  "must decode to 24 to 64 bytes");
	for (size_t i = 0; i < sizeof(not_base64) / sizeof(not_base64[0]); i++) {
		why = decode_why(not_base64[i]);
		CHECK(why != NULL && strncmp(why, "not base64", 10) == 0);
		if (why == NULL || strncmp(why, "not base64", 10) != 0)
			fprintf(stderr, "  secret #%zu: %s\n", i, why ? why : "accepted");
	}
	/* Canonical padding is accepted: 25 and 26 bytes. */
	CHECK(decode_why("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwAA==") == NULL);
	CHECK(decode_why("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwAAA=") == NULL);
}

static void
test_small_buffer(void)
{
	unsigned char key[WEBHOOK_KEY_MIN];
	size_t len = 99;
	const char *why = NULL;

	CHECK_INT(webhook_secret_decode(A_SECRET, key, sizeof(key), &len, &why), 0);
	CHECK_INT(len, 24);
	CHECK_INT(webhook_secret_decode("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwAA==", key,
					sizeof(key), &len, &why),
		  -1);
	CHECK_STR(why, "key buffer too small");
	CHECK_INT(webhook_secret_decode("nope", key, sizeof(key), &len, NULL), -1);
}

/* Two keys: two signatures, in order, each the one its key alone gives. */
static void
test_rotation(void)
{
	const char *secrets[] = {B_SECRET, A_SECRET};
	struct webhook_key *keys = webhook_keys_new(secrets, 2, NULL, NULL);
	char out[WEBHOOK_SIGNATURES_CAP(2)];
	char want[2 * WEBHOOK_SIGNATURE_LEN + 2];

	CHECK(keys != NULL);
	if (keys == NULL)
		return;
	CHECK_INT(webhook_signature(keys, 2, A_ID, A_TS, A_BODY, strlen(A_BODY), out, sizeof(out)),
		  0);
	CHECK_INT(strlen(out), 2 * WEBHOOK_SIGNATURE_LEN + 1);
	CHECK(sign1(B_SECRET, A_ID, A_TS, A_BODY, strlen(A_BODY), want) == 0);
	strcat(want, " " A_SIGNATURE);
	CHECK_STR(out, want);
	/* One byte short of the room for two: refused, nothing written. */
	CHECK_INT(
	    webhook_signature(keys, 2, A_ID, A_TS, A_BODY, strlen(A_BODY), out, sizeof(out) - 1),
	    -1);
	CHECK_STR(out, "");
	webhook_keys_free(keys, 2);
}

static void
test_keys_new_refusals(void)
{
	const char *secrets[] = {A_SECRET, "whsec_QUJD", B_SECRET};
	size_t bad = 99;
	const char *why = NULL;

	CHECK(webhook_keys_new(secrets, 3, &bad, &why) == NULL);
	CHECK_INT(bad, 1);
	CHECK_STR(why, "must decode to 24 to 64 bytes");
	CHECK(webhook_keys_new(secrets, 0, &bad, &why) == NULL);
	CHECK_STR(why, "no secret");
	webhook_keys_free(NULL, 0);
}

/* Bodies with NUL bytes, empty, and large: the same as one-shot HMAC over "id.ts.body". */
static void
test_matches_oneshot_hmac(void)
{
	static const char nul_body[] = "{\"a\":\"\0\"}\0tail";
	size_t big_len = 1 << 20;
	char *big = malloc(big_len);
	struct webhook_key k = key_of(B_SECRET);
	char out[WEBHOOK_SIGNATURES_CAP(1)], want[WEBHOOK_SIGNATURES_CAP(1)];

	if (big == NULL)
		abort();
	for (size_t i = 0; i < big_len; i++)
		big[i] = (char)(i * 31 + 7);
	CHECK_INT(
	    webhook_signature(&k, 1, "evt_1", 0, nul_body, sizeof(nul_body), out, sizeof(out)), 0);
	oneshot(&k, "evt_1", 0, nul_body, sizeof(nul_body), want);
	CHECK_STR(out, want);
	CHECK_INT(webhook_signature(&k, 1, "evt_2", -5, NULL, 0, out, sizeof(out)), 0);
	oneshot(&k, "evt_2", -5, "", 0, want);
	CHECK_STR(out, want);
	CHECK_INT(webhook_signature(&k, 1, "evt_9223372036854775807", 9223372036854775807LL, big,
				    big_len, out, sizeof(out)),
		  0);
	oneshot(&k, "evt_9223372036854775807", 9223372036854775807LL, big, big_len, want);
	CHECK_STR(out, want);
	webhook_key_wipe(&k);
	free(big);
}

static void
test_signature_refusals(void)
{
	struct webhook_key k = key_of(A_SECRET), empty = {{0}, 0};
	char out[WEBHOOK_SIGNATURES_CAP(1)];
	char long_id[WEBHOOK_ID_MAX + 2];

	/* "a.1" + ts 2 and "a" + ts "1.2"...: a '.' would make the signed string ambiguous. */
	CHECK_INT(webhook_signature(&k, 1, "msg.1", A_TS, A_BODY, 3, out, sizeof(out)), -1);
	CHECK_STR(out, "");
	CHECK_INT(webhook_signature(&k, 1, "", A_TS, A_BODY, 3, out, sizeof(out)), -1);
	CHECK_INT(webhook_signature(&k, 1, NULL, A_TS, A_BODY, 3, out, sizeof(out)), -1);
	CHECK_INT(webhook_signature(&k, 0, A_ID, A_TS, A_BODY, 3, out, sizeof(out)), -1);
	CHECK_INT(webhook_signature(NULL, 1, A_ID, A_TS, A_BODY, 3, out, sizeof(out)), -1);
	CHECK_INT(webhook_signature(&k, 1, A_ID, A_TS, NULL, 3, out, sizeof(out)), -1);
	CHECK_INT(webhook_signature(&k, 1, A_ID, A_TS, A_BODY, 3, out, sizeof(out) - 1), -1);
	CHECK_INT(webhook_signature(&empty, 1, A_ID, A_TS, A_BODY, 3, out, sizeof(out)), -1);
	CHECK_STR(out, "");
	memset(long_id, 'x', WEBHOOK_ID_MAX);
	long_id[WEBHOOK_ID_MAX] = '\0';
	CHECK_INT(webhook_signature(&k, 1, long_id, A_TS, A_BODY, 3, out, sizeof(out)), 0);
	strcpy(long_id + WEBHOOK_ID_MAX, "x");
	CHECK_INT(webhook_signature(&k, 1, long_id, A_TS, A_BODY, 3, out, sizeof(out)), -1);
	webhook_key_wipe(&k);
}

static void
test_id_valid(void)
{
	CHECK(webhook_id_valid(A_ID));
	CHECK(webhook_id_valid("evt_12345"));
	CHECK(webhook_id_valid("!~"));
	CHECK(!webhook_id_valid(NULL));
	CHECK(!webhook_id_valid(""));
	CHECK(!webhook_id_valid("evt.1"));
	CHECK(!webhook_id_valid("."));
	CHECK(!webhook_id_valid("evt 1"));
	CHECK(!webhook_id_valid("evt_1\r\nx-injected: 1"));
	CHECK(!webhook_id_valid("evt_\t1"));
	CHECK(!webhook_id_valid("evt_\x7f"));
	CHECK(!webhook_id_valid("evt_\xc3\xa9"));
}

CHECK_MAIN("webhook", CHECK_TEST(test_reference_vectors), CHECK_TEST(test_key_bytes),
	   CHECK_TEST(test_every_length_round_trips), CHECK_TEST(test_malformed_secrets),
	   CHECK_TEST(test_small_buffer), CHECK_TEST(test_rotation),
	   CHECK_TEST(test_keys_new_refusals), CHECK_TEST(test_matches_oneshot_hmac),
	   CHECK_TEST(test_signature_refusals), CHECK_TEST(test_id_valid))
