/*
 * webhook.c - Standard Webhooks symmetric signatures (webhook.h).
 *
 * Secrets: "whsec_" and standard base64 of 24 to 64 bytes, decoded by a
 * strict decoder of our own (EVP_DecodeBlock skips blanks, keeps the
 * padding's zero bytes in its count and accepts stray bits), so that one
 * key has exactly one accepted spelling and a mistyped secret is refused
 * at start instead of signing with other bytes than the consumer's.  The
 * reference libraries also take a secret without the prefix or without
 * padding; the issue fixes the format, so ours requires both: every
 * secret we accept is one they accept, with the same key bytes.
 *
 * Signatures: one EVP_MAC context (HMAC, SHA-256) re-keyed per key; the
 * signed content "id.ts.body" is fed in pieces, so a body is never
 * copied.  The id is checked first (webhook_id_valid): with a '.' in it
 * the same bytes could be read as another id and timestamp.  Key bytes
 * are only ever in caller-owned struct webhook_key, wiped when freed;
 * OpenSSL wipes its own copy in EVP_MAC_CTX_free.
 */
#include "webhook.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#define MAC_LEN	    32 /* SHA-256 */
#define MAC_B64_LEN 44 /* base64 of 32 bytes, padded */

static const char why_prefix[] = "must start with " WEBHOOK_SECRET_PREFIX;
static const char why_base64[] = "not base64 (A-Z a-z 0-9 + /, padded with = to a multiple of 4)";
static const char why_length[] = "must decode to 24 to 64 bytes";

static int b64_value(unsigned char c);
static int b64_check(const char *s, size_t n, size_t *decoded);
static void b64_decode(const char *s, size_t n, unsigned char *out);
static int sign_one(EVP_MAC_CTX *ctx, const struct webhook_key *key, const char *head, size_t hlen,
		    const char *body, size_t len, char *out);
static int sign_all(const struct webhook_key *keys, size_t n, const char *head, size_t hlen,
		    const char *body, size_t len, char *out);

/* The 6-bit value of a base64 digit, or -1 (also for '='). */
static int
b64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/*
 * 0 when the N characters of S are canonical padded base64, with the
 * decoded length in *decoded: only digits, then at most two '=' ending a
 * multiple of 4, and the bits the padding leaves unused all zero (so that
 * "QR==" is not a second spelling of "QQ==").
 */
static int
b64_check(const char *s, size_t n, size_t *decoded)
{
	size_t pad = 0, digits;
	int last;

	if (n % 4 != 0)
		return -1;
	while (pad < 2 && pad < n && s[n - 1 - pad] == '=')
		pad++;
	digits = n - pad;
	for (size_t i = 0; i < digits; i++)
		if (b64_value((unsigned char)s[i]) < 0)
			return -1;
	if (pad > 0) {
		last = b64_value((unsigned char)s[digits - 1]);
		if ((last & (pad == 1 ? 0x03 : 0x0f)) != 0)
			return -1;
	}
	*decoded = n / 4 * 3 - pad;
	return 0;
}

/* Decode the N characters of S, already checked by b64_check, into OUT. */
static void
b64_decode(const char *s, size_t n, unsigned char *out)
{
	for (size_t i = 0; i < n; i += 4) {
		uint32_t v = 0;
		int got = 0;

		for (size_t j = 0; j < 4; j++) {
			int d = b64_value((unsigned char)s[i + j]);

			v = v << 6 | (uint32_t)(d < 0 ? 0 : d);
			got += d >= 0;
		}
		*out++ = (unsigned char)(v >> 16);
		if (got > 2)
			*out++ = (unsigned char)(v >> 8);
		if (got > 3)
			*out++ = (unsigned char)v;
		OPENSSL_cleanse(&v, sizeof(v)); /* no key bits left on the stack */
	}
}

int
webhook_secret_decode(const char *text, unsigned char *key, size_t cap, size_t *len,
		      const char **why)
{
	const size_t plen = sizeof(WEBHOOK_SECRET_PREFIX) - 1;
	const char *unused;
	size_t n, decoded = 0;

	if (why == NULL)
		why = &unused;
	if (text == NULL || strncmp(text, WEBHOOK_SECRET_PREFIX, plen) != 0) {
		*why = why_prefix;
		return -1;
	}
	text += plen;
	n = strlen(text);
	if (b64_check(text, n, &decoded) < 0) {
		*why = why_base64;
		return -1;
	}
	if (decoded < WEBHOOK_KEY_MIN || decoded > WEBHOOK_KEY_MAX) {
		*why = why_length;
		return -1;
	}
	if (decoded > cap) {
		*why = "key buffer too small";
		return -1;
	}
	b64_decode(text, n, key);
	*len = decoded;
	return 0;
}

int
webhook_key_init(struct webhook_key *key, const char *secret, const char **why)
{
	key->len = 0;
	return webhook_secret_decode(secret, key->bytes, sizeof(key->bytes), &key->len, why);
}

void
webhook_key_wipe(struct webhook_key *key)
{
	OPENSSL_cleanse(key, sizeof(*key));
}

struct webhook_key *
webhook_keys_new(const char *const *secrets, size_t n, size_t *bad, const char **why)
{
	struct webhook_key *keys;
	const char *unused;

	if (why == NULL)
		why = &unused;
	if (n == 0) {
		*why = "no secret";
		return NULL;
	}
	keys = calloc(n, sizeof(*keys));
	if (keys == NULL) {
		*why = "out of memory";
		return NULL;
	}
	for (size_t i = 0; i < n; i++) {
		if (webhook_key_init(&keys[i], secrets[i], why) < 0) {
			if (bad != NULL)
				*bad = i;
			webhook_keys_free(keys, n);
			return NULL;
		}
	}
	return keys;
}

void
webhook_keys_free(struct webhook_key *keys, size_t n)
{
	if (keys == NULL)
		return;
	OPENSSL_cleanse(keys, n * sizeof(*keys));
	free(keys);
}

bool
webhook_id_valid(const char *id)
{
	size_t n = 0;

	if (id == NULL)
		return false;
	for (; id[n] != '\0'; n++) {
		unsigned char c = (unsigned char)id[n];

		if (n >= WEBHOOK_ID_MAX || c < 0x21 || c > 0x7e || c == '.')
			return false;
	}
	return n > 0;
}

/* "v1," + base64 of KEY's MAC over HEAD and BODY: WEBHOOK_SIGNATURE_LEN bytes and a NUL. */
static int
sign_one(EVP_MAC_CTX *ctx, const struct webhook_key *key, const char *head, size_t hlen,
	 const char *body, size_t len, char *out)
{
	unsigned char mac[MAC_LEN];
	size_t mac_len = 0;
	OSSL_PARAM params[2];
	int ok;

	if (key->len < WEBHOOK_KEY_MIN || key->len > WEBHOOK_KEY_MAX)
		return -1;
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, "SHA256", 0);
	params[1] = OSSL_PARAM_construct_end();
	ok = EVP_MAC_init(ctx, key->bytes, key->len, params) == 1 &&
	     EVP_MAC_update(ctx, (const unsigned char *)head, hlen) == 1 &&
	     (len == 0 || EVP_MAC_update(ctx, (const unsigned char *)body, len) == 1) &&
	     EVP_MAC_final(ctx, mac, &mac_len, sizeof(mac)) == 1 && mac_len == MAC_LEN;
	if (ok) {
		memcpy(out, "v1,", 3);
		ok = EVP_EncodeBlock((unsigned char *)out + 3, mac, MAC_LEN) == MAC_B64_LEN;
	}
	OPENSSL_cleanse(mac, sizeof(mac));
	return ok ? 0 : -1;
}

/* Every key's signature into OUT, which has room for WEBHOOK_SIGNATURES_CAP(n). */
static int
sign_all(const struct webhook_key *keys, size_t n, const char *head, size_t hlen, const char *body,
	 size_t len, char *out)
{
	EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
	EVP_MAC_CTX *ctx = mac != NULL ? EVP_MAC_CTX_new(mac) : NULL;
	int rc = ctx != NULL ? 0 : -1;

	for (size_t i = 0; i < n && rc == 0; i++) {
		char *p = out + i * (WEBHOOK_SIGNATURE_LEN + 1);

		rc = sign_one(ctx, &keys[i], head, hlen, body, len, p);
		if (i > 0)
			p[-1] = ' ';
	}
	EVP_MAC_CTX_free(ctx);
	EVP_MAC_free(mac);
	return rc;
}

int
webhook_signature(const struct webhook_key *keys, size_t n, const char *id, long long ts,
		  const char *body, size_t len, char *out, size_t cap)
{
	char head[WEBHOOK_ID_MAX + 24]; /* "id.ts.": an id, '.', 20 digits and a sign, '.' */
	int hlen;

	if (out != NULL && cap > 0)
		out[0] = '\0';
	if (keys == NULL || n == 0 || out == NULL || (body == NULL && len > 0) ||
	    n > SIZE_MAX / (WEBHOOK_SIGNATURE_LEN + 1) || cap < WEBHOOK_SIGNATURES_CAP(n) ||
	    !webhook_id_valid(id))
		return -1;
	hlen = snprintf(head, sizeof(head), "%s.%lld.", id, ts);
	if (hlen < 0 || (size_t)hlen >= sizeof(head))
		return -1;
	if (sign_all(keys, n, head, (size_t)hlen, body, len, out) < 0) {
		out[0] = '\0';
		return -1;
	}
	return 0;
}
