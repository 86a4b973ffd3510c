/*
 * signature.c - the HMAC-SHA1 push signature (PROTOCOL.md section 2).
 *
 * The canonical string is built once per request, in the app's mode: either
 * every field but the signature fields, sorted by name in byte order and
 * concatenated as name+value, or the bare `message` value.  Both signature
 * field names are always left out of the sorted form, since neither can be
 * part of what was signed.  Each accepted secret (the current one and any
 * still valid during a rotation) is tried in turn; every comparison runs
 * with CRYPTO_memcmp and none stops the loop early, so neither the timing
 * nor the order of secrets tells a forger anything.  MACs computed from a
 * secret are wiped with OPENSSL_cleanse once compared.
 */
#include "signature.h"

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

static bool field_named(const struct form_field *f, const char *name);
static bool is_signature_name(const struct form_field *f, const char *sig_field);
static int compare_names(const void *a, const void *b);
static char *canonical_sorted(const struct form *form, const char *sig_field, size_t *len);
static char *canonical_message(const struct form *form, size_t *len);
static bool decode_hex_mac(const struct form_field *f, unsigned char mac[SIGNATURE_MAC_LEN]);
static const struct form_field *find_signature(const struct form *form, const char **field,
					       enum signature_result *r);
static int check_secret(const char *secret, const char *data, size_t len,
			const unsigned char expected[SIGNATURE_MAC_LEN], bool *matched);

static bool
field_named(const struct form_field *f, const char *name)
{
	size_t n = strlen(name);

	return f->name_len == n && memcmp(f->name, name, n) == 0;
}

static bool
is_signature_name(const struct form_field *f, const char *sig_field)
{
	return field_named(f, SIGNATURE_FIELD_AOP) || field_named(f, SIGNATURE_FIELD_DJ) ||
	       (sig_field != NULL && field_named(f, sig_field));
}

/* Byte order, a name sorting before every longer name it is a prefix of. */
static int
compare_names(const void *a, const void *b)
{
	const struct form_field *x = *(const struct form_field *const *)a;
	const struct form_field *y = *(const struct form_field *const *)b;
	size_t n = x->name_len < y->name_len ? x->name_len : y->name_len;
	int c = memcmp(x->name, y->name, n);

	if (c != 0)
		return c;
	return (x->name_len > y->name_len) - (x->name_len < y->name_len);
}

static char *
canonical_sorted(const struct form *form, const char *sig_field, size_t *len)
{
	const struct form_field **sorted;
	size_t n = 0, total = 0;
	char *out, *p;

	/* +1: malloc(0) may return NULL, which would read as out of memory. */
	sorted = malloc((form->n_fields + 1) * sizeof(*sorted));
	if (sorted == NULL)
		return NULL;
	for (size_t i = 0; i < form->n_fields; i++) {
		const struct form_field *f = &form->fields[i];
		size_t add;

		if (is_signature_name(f, sig_field))
			continue;
		/* Not reachable from one decoded body, but a caller could build any form. */
		add = f->name_len + f->value_len;
		if (add < f->name_len || add >= SIZE_MAX - total) {
			free(sorted);
			return NULL;
		}
		sorted[n++] = f;
		total += add;
	}
	qsort(sorted, n, sizeof(*sorted), compare_names);
	out = malloc(total + 1);
	if (out != NULL) {
		p = out;
		for (size_t i = 0; i < n; i++) {
			memcpy(p, sorted[i]->name, sorted[i]->name_len);
			p += sorted[i]->name_len;
			memcpy(p, sorted[i]->value, sorted[i]->value_len);
			p += sorted[i]->value_len;
		}
		*p = '\0';
		*len = total;
	}
	free(sorted);
	return out;
}

static char *
canonical_message(const struct form *form, size_t *len)
{
	const struct form_field *f = form_get(form, "message");
	char *out;

	if (f == NULL)
		return NULL;
	out = malloc(f->value_len + 1);
	if (out == NULL)
		return NULL;
	memcpy(out, f->value, f->value_len);
	out[f->value_len] = '\0';
	*len = f->value_len;
	return out;
}

char *
signature_canonical(const struct form *form, const char *sig_field, enum signature_mode mode,
		    size_t *len)
{
	if (mode == SIGNATURE_MESSAGE_ONLY)
		return canonical_message(form, len);
	return canonical_sorted(form, sig_field, len);
}

int
signature_mac(const char *secret, size_t secret_len, const void *data, size_t len,
	      unsigned char mac[SIGNATURE_MAC_LEN])
{
	unsigned int mac_len = 0;

	if (secret_len > INT_MAX)
		return -1;
	/* OpenSSL may treat a NULL key or data as an error even when empty. */
	if (HMAC(EVP_sha1(), secret != NULL ? secret : "", (int)secret_len,
		 data != NULL ? data : (const void *)"", len, mac, &mac_len) == NULL)
		return -1;
	return mac_len == SIGNATURE_MAC_LEN ? 0 : -1;
}

void
signature_hex(const unsigned char mac[SIGNATURE_MAC_LEN], char *hex)
{
	static const char digits[] = "0123456789ABCDEF";

	for (size_t i = 0; i < SIGNATURE_MAC_LEN; i++) {
		hex[2 * i] = digits[mac[i] >> 4];
		hex[2 * i + 1] = digits[mac[i] & 0x0f];
	}
	hex[SIGNATURE_HEX_LEN] = '\0';
}

/* Exactly 40 hex digits, either case; anything else is malformed. */
static bool
decode_hex_mac(const struct form_field *f, unsigned char mac[SIGNATURE_MAC_LEN])
{
	if (f->value_len != SIGNATURE_HEX_LEN)
		return false;
	for (size_t i = 0; i < SIGNATURE_MAC_LEN; i++) {
		int hi = form_hex_digit((unsigned char)f->value[2 * i]);
		int lo = form_hex_digit((unsigned char)f->value[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return false;
		mac[i] = (unsigned char)(hi << 4 | lo);
	}
	return true;
}

/* The one signature field of FORM; otherwise NULL with *r saying why. */
static const struct form_field *
find_signature(const struct form *form, const char **field, enum signature_result *r)
{
	const struct form_field *aop = form_get(form, SIGNATURE_FIELD_AOP);
	const struct form_field *dj = form_get(form, SIGNATURE_FIELD_DJ);

	if (aop != NULL && dj != NULL) {
		*r = SIGNATURE_AMBIGUOUS;
		return NULL;
	}
	if (aop == NULL && dj == NULL) {
		*r = SIGNATURE_MISSING;
		return NULL;
	}
	*field = aop != NULL ? SIGNATURE_FIELD_AOP : SIGNATURE_FIELD_DJ;
	return aop != NULL ? aop : dj;
}

/* Sets *matched when SECRET signs DATA as EXPECTED; never clears it. */
static int
check_secret(const char *secret, const char *data, size_t len,
	     const unsigned char expected[SIGNATURE_MAC_LEN], bool *matched)
{
	unsigned char mac[SIGNATURE_MAC_LEN];
	int rc = 0;

	if (secret == NULL)
		return 0;
	if (signature_mac(secret, strlen(secret), data, len, mac) < 0)
		rc = -1;
	else if (CRYPTO_memcmp(mac, expected, SIGNATURE_MAC_LEN) == 0)
		*matched = true;
	OPENSSL_cleanse(mac, sizeof(mac));
	return rc;
}

enum signature_result
signature_verify(const struct form *form, const struct app_config *app, const char **field)
{
	const char *unused_field;
	enum signature_result r = SIGNATURE_ERROR;
	const struct form_field *sig;
	unsigned char expected[SIGNATURE_MAC_LEN];
	bool matched = false, failed = false;
	char *data;
	size_t len = 0;

	if (field == NULL)
		field = &unused_field;
	*field = NULL;
	sig = find_signature(form, field, &r);
	if (sig == NULL)
		return r;
	if (!decode_hex_mac(sig, expected))
		return SIGNATURE_MALFORMED;
	/* Message-only mode and no message: nothing was signed, so nothing matches. */
	if (app->signature_mode == SIGNATURE_MESSAGE_ONLY && form_get(form, "message") == NULL)
		return SIGNATURE_MISMATCH;
	data = signature_canonical(form, *field, app->signature_mode, &len);
	if (data == NULL)
		return SIGNATURE_ERROR;
	if (check_secret(app->app_secret, data, len, expected, &matched) < 0)
		failed = true;
	for (size_t i = 0; i < app->n_previous_secrets; i++)
		if (check_secret(app->previous_secrets[i], data, len, expected, &matched) < 0)
			failed = true;
	free(data);
	if (matched)
		return SIGNATURE_OK;
	return failed ? SIGNATURE_ERROR : SIGNATURE_MISMATCH;
}

const char *
signature_result_text(enum signature_result r)
{
	switch (r) {
	case SIGNATURE_OK:
		return "ok";
	case SIGNATURE_MISSING:
		return "missing signature";
	case SIGNATURE_AMBIGUOUS:
		return "both _aop_signature and _dj_signature present";
	case SIGNATURE_MALFORMED:
		return "malformed signature";
	case SIGNATURE_MISMATCH:
		return "bad signature";
	case SIGNATURE_ERROR:
		break;
	}
	return "signature check failed";
}
