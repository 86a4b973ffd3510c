/*
 * webhook.h - Standard Webhooks symmetric signatures, for the relay.
 *
 * The Standard Webhooks specification (github standard-webhooks/
 * standard-webhooks, spec/standard-webhooks.md) signs "id.timestamp.body"
 * with HMAC-SHA256, keyed with the bytes of a secret that is shown to
 * people as "whsec_" + base64 of 24 to 64 random bytes.  The header
 * `webhook-signature` holds "v1," + base64 of the MAC, once per key,
 * space-separated, so a consumer keeps verifying while a secret rotates.
 * Pure functions: no network, no event loop; keys live in caller memory
 * and are wiped with OPENSSL_cleanse when freed.  Functions return 0, or
 * -1 on failure (with *why, where given, a static reason that never
 * quotes the secret).
 */
#ifndef RECEIVER_WEBHOOK_H
#define RECEIVER_WEBHOOK_H

#include <stdbool.h>
#include <stddef.h>

#define WEBHOOK_SECRET_PREFIX "whsec_"
#define WEBHOOK_KEY_MIN	      24 /* bytes of a decoded secret, per the specification */
#define WEBHOOK_KEY_MAX	      64

/* "v1," + base64 of a 32-byte HMAC-SHA256: one signature, without a NUL. */
#define WEBHOOK_SIGNATURE_LEN 47

/* The buffer for the header value of N (>= 1) keys: signatures, spaces, NUL. */
#define WEBHOOK_SIGNATURES_CAP(n) ((size_t)(n) * (WEBHOOK_SIGNATURE_LEN + 1))

/* A webhook id is 1 to WEBHOOK_ID_MAX bytes (see webhook_id_valid). */
#define WEBHOOK_ID_MAX 255

/* One decoded secret. */
struct webhook_key {
	unsigned char bytes[WEBHOOK_KEY_MAX];
	size_t len;
};

/*
 * Decode TEXT, "whsec_" + standard base64 (RFC 4648 section 4: A-Z a-z 0-9
 * + /, '=' padding to a multiple of 4, unused bits zero) of 24 to 64 bytes,
 * into KEY (CAP bytes; WEBHOOK_KEY_MAX always suffices) and *LEN.  On
 * failure *why is one of "must start with whsec_", "not base64 (...)",
 * "must decode to 24 to 64 bytes" or "key buffer too small", and KEY holds
 * nothing of the secret.
 */
int webhook_secret_decode(const char *text, unsigned char *key, size_t cap, size_t *len,
			  const char **why);

/* webhook_secret_decode of SECRET into KEY. */
int webhook_key_init(struct webhook_key *key, const char *secret, const char **why);

/* Overwrite KEY with zeros (OPENSSL_cleanse): a key is always wiped after use. */
void webhook_key_wipe(struct webhook_key *key);

/*
 * The keys of N secrets (N >= 1; the current one first, then those still
 * valid during a rotation), malloc'd; free with webhook_keys_free.  NULL
 * when out of memory (*why "out of memory") or when a secret is malformed:
 * then *bad is its index and *why says why.  BAD may be NULL.
 */
struct webhook_key *webhook_keys_new(const char *const *secrets, size_t n, size_t *bad,
				     const char **why);

/* Wipe and free the N keys of webhook_keys_new (KEYS may be NULL). */
void webhook_keys_free(struct webhook_key *keys, size_t n);

/*
 * True when ID can be a webhook id: 1 to WEBHOOK_ID_MAX bytes of printable
 * ASCII (0x21-0x7e, so it is a valid header value) and no '.', since a '.'
 * in the id would let "id.timestamp.body" be split another way (the
 * specification's warning).
 */
bool webhook_id_valid(const char *id);

/*
 * The `webhook-signature` header value for the N (>= 1) KEYS over ID (see
 * webhook_id_valid), TS (Unix seconds of the attempt) and the LEN bytes of
 * BODY: "v1,<base64 HMAC-SHA256(key, ID.TS.BODY)>" per key, in KEYS' order,
 * separated by one space, NUL-terminated in OUT (CAP bytes; at least
 * WEBHOOK_SIGNATURES_CAP(n)).  Returns 0, or -1 (an invalid id, N == 0, CAP
 * too small, an OpenSSL failure) with OUT an empty string when CAP > 0.
 */
int webhook_signature(const struct webhook_key *keys, size_t n, const char *id, long long ts,
		      const char *body, size_t len, char *out, size_t cap);

#endif
