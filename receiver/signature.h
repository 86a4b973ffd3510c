/*
 * signature.h - the HMAC-SHA1 push signature of PROTOCOL.md section 2.
 *
 * The canonical string is either every form field except the signature
 * field, sorted by name (byte order), concatenated as name+value, or the bare
 * `message` value.  The MAC is HMAC-SHA1 keyed with the app secret, sent as
 * 40 hex digits (either case).  Verification tries every secret an app
 * accepts and compares with CRYPTO_memcmp, so timing reveals nothing about
 * how much of a forged signature was right.
 */
#ifndef RECEIVER_SIGNATURE_H
#define RECEIVER_SIGNATURE_H

#include <stddef.h>

#include "config.h"
#include "form.h"

#define SIGNATURE_MAC_LEN 20
#define SIGNATURE_HEX_LEN 40

/* The two field names a signature can arrive in. */
#define SIGNATURE_FIELD_AOP "_aop_signature"
#define SIGNATURE_FIELD_DJ  "_dj_signature"

enum signature_result {
	SIGNATURE_OK = 0,
	SIGNATURE_MISSING,   /* neither signature field present */
	SIGNATURE_AMBIGUOUS, /* both present */
	SIGNATURE_MALFORMED, /* not 40 hex digits */
	SIGNATURE_MISMATCH,  /* no accepted secret produces it */
	SIGNATURE_ERROR,     /* out of memory or OpenSSL failure */
};

/*
 * Build the canonical string of FORM for MODE, leaving out SIG_FIELD (may
 * be NULL).  Returns a malloc'd buffer and its length in *len, or NULL when
 * out of memory or (MESSAGE_ONLY) when there is no `message` field.
 */
char *signature_canonical(const struct form *form, const char *sig_field, enum signature_mode mode,
			  size_t *len);

/* HMAC-SHA1 of DATA keyed with SECRET.  Returns 0 or -1. */
int signature_mac(const char *secret, size_t secret_len, const void *data, size_t len,
		  unsigned char mac[SIGNATURE_MAC_LEN]);

/* Upper-case hex of MAC into HEX (SIGNATURE_HEX_LEN + 1 bytes, NUL-terminated). */
void signature_hex(const unsigned char mac[SIGNATURE_MAC_LEN], char *hex);

/*
 * Verify FORM against every secret of APP (app_secret and each of
 * previous_secrets).  *field is set to the name of the signature field used
 * (a static string) or NULL.
 */
enum signature_result signature_verify(const struct form *form, const struct app_config *app,
				       const char **field);

/* Short text for a result, for replies and audit rows ("bad signature", ...). */
const char *signature_result_text(enum signature_result r);

#endif
