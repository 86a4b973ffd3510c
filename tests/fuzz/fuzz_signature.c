/*
 * fuzz_signature.c - libFuzzer target for signature_canonical() and
 * signature_verify() (receiver/signature.c), on forms from form_decode().
 *
 * The input is a request body; bodies that do not decode are skipped
 * (fuzz_form covers those).  The app has two secrets, a current one and a
 * previous one still accepted during a rotation.
 *
 * Invariants checked (abort() when one fails):
 *  - sorted_fields canonical string: never NULL; NUL-terminated; as long as
 *    the name+value bytes of every field but _aop_signature, _dj_signature
 *    and the named signature field; the same bytes whatever the order of
 *    the fields (checked on the fields reversed in memory, and on the body
 *    re-encoded in reverse order and decoded again);
 *  - message canonical string: NULL exactly when there is no `message`
 *    field, else that field's value;
 *  - signature_verify() in both modes agrees with an independent oracle:
 *    AMBIGUOUS when both signature fields are present, MISSING when neither
 *    is, MALFORMED unless the value is 40 hex digits, OK exactly when the
 *    HMAC-SHA1 of the canonical string under one of the two secrets equals
 *    the value (either case), else MISMATCH; never ERROR; *field names the
 *    signature field used, and only when there is one;
 *  - signing the form ourselves (either secret, either field name, either
 *    hex case, fields re-encoded in reverse order) verifies as OK, and the
 *    same signature with one hex digit changed as MISMATCH.
 */
#include <ctype.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "config.h"
#include "form.h"
#include "signature.h"

#include "fuzz.h"

/* The previous secret is PROTOCOL.md's, so that the vector seeds verify. */
#define SECRET_CURRENT	"fuzz-current-secret"
#define SECRET_PREVIOUS "demo-app-secret"

static bool is_signature_field(const struct form_field *f);
static bool same_bytes(const char *a, size_t a_len, const char *b, size_t b_len);
static void check_sorted(const struct form *form);
static void check_message_only(const struct form *form);
static enum signature_result oracle(const struct form *form, const struct app_config *app,
				    const char **field);
static void check_verify(const struct form *form, struct app_config *app);
static void check_self_signed(const struct form *form, struct app_config *app, const uint8_t *data,
			      size_t size);

static bool
is_signature_field(const struct form_field *f)
{
	return (f->name_len == strlen(SIGNATURE_FIELD_AOP) &&
		memcmp(f->name, SIGNATURE_FIELD_AOP, f->name_len) == 0) ||
	       (f->name_len == strlen(SIGNATURE_FIELD_DJ) &&
		memcmp(f->name, SIGNATURE_FIELD_DJ, f->name_len) == 0);
}

static bool
same_bytes(const char *a, size_t a_len, const char *b, size_t b_len)
{
	return a_len == b_len && memcmp(a, b, a_len) == 0;
}

static void
check_sorted(const struct form *form)
{
	struct form reversed, decoded;
	size_t len, len2, expected = 0, body_len;
	char *canon, *canon2, *body;
	const char *err = NULL;

	canon = signature_canonical(form, NULL, SIGNATURE_SORTED_FIELDS, &len);
	FUZZ_CHECK(canon != NULL);
	FUZZ_CHECK(canon[len] == '\0');
	for (size_t i = 0; i < form->n_fields; i++)
		if (!is_signature_field(&form->fields[i]))
			expected += form->fields[i].name_len + form->fields[i].value_len;
	FUZZ_CHECK(len == expected);

	/* Naming a field as the signature field leaves it out as well. */
	if (form->n_fields > 0 && !is_signature_field(&form->fields[0]) &&
	    memchr(form->fields[0].name, '\0', form->fields[0].name_len) == NULL) {
		const struct form_field *f = &form->fields[0];

		canon2 = signature_canonical(form, f->name, SIGNATURE_SORTED_FIELDS, &len2);
		FUZZ_CHECK(canon2 != NULL);
		FUZZ_CHECK(len2 == len - f->name_len - f->value_len);
		free(canon2);
	}

	/* The same fields in reverse order, in memory. */
	reversed.n_fields = form->n_fields;
	reversed.fields = fuzz_xmalloc(form->n_fields * sizeof(*reversed.fields));
	for (size_t i = 0; i < form->n_fields; i++)
		reversed.fields[i] = form->fields[form->n_fields - 1 - i];
	canon2 = signature_canonical(&reversed, NULL, SIGNATURE_SORTED_FIELDS, &len2);
	FUZZ_CHECK(canon2 != NULL && same_bytes(canon, len, canon2, len2));
	free(canon2);
	free(reversed.fields);

	/* And on the wire: re-encoded in reverse order, decoded again. */
	body = fuzz_form_encode(form, 1, &body_len);
	FUZZ_CHECK(form_decode(body, body_len, &decoded, &err) == 0);
	canon2 = signature_canonical(&decoded, NULL, SIGNATURE_SORTED_FIELDS, &len2);
	FUZZ_CHECK(canon2 != NULL && same_bytes(canon, len, canon2, len2));
	free(canon2);
	form_free(&decoded);
	free(body);
	free(canon);
}

static void
check_message_only(const struct form *form)
{
	const struct form_field *message = form_get(form, "message");
	size_t len = 0;
	char *canon = signature_canonical(form, NULL, SIGNATURE_MESSAGE_ONLY, &len);

	if (message == NULL) {
		FUZZ_CHECK(canon == NULL);
		return;
	}
	FUZZ_CHECK(canon != NULL);
	FUZZ_CHECK(same_bytes(canon, len, message->value, message->value_len));
	FUZZ_CHECK(canon[len] == '\0');
	free(canon);
}

/* What signature_verify() must answer, worked out independently. */
static enum signature_result
oracle(const struct form *form, const struct app_config *app, const char **field)
{
	const struct form_field *aop = form_get(form, SIGNATURE_FIELD_AOP);
	const struct form_field *dj = form_get(form, SIGNATURE_FIELD_DJ);
	const struct form_field *sig;
	const char *secrets[2] = {app->app_secret, app->previous_secrets[0]};
	char upper[SIGNATURE_HEX_LEN + 1], hex[SIGNATURE_HEX_LEN + 1];
	unsigned char mac[SIGNATURE_MAC_LEN];
	enum signature_result r = SIGNATURE_MISMATCH;
	char *canon;
	size_t len;

	*field = NULL;
	if (aop != NULL && dj != NULL)
		return SIGNATURE_AMBIGUOUS;
	if (aop == NULL && dj == NULL)
		return SIGNATURE_MISSING;
	sig = aop != NULL ? aop : dj;
	*field = aop != NULL ? SIGNATURE_FIELD_AOP : SIGNATURE_FIELD_DJ;
	if (sig->value_len != SIGNATURE_HEX_LEN)
		return SIGNATURE_MALFORMED;
	for (size_t i = 0; i < SIGNATURE_HEX_LEN; i++) {
		if (!isxdigit((unsigned char)sig->value[i]))
			return SIGNATURE_MALFORMED;
		upper[i] = (char)toupper((unsigned char)sig->value[i]);
	}
	upper[SIGNATURE_HEX_LEN] = '\0';
	canon = signature_canonical(form, *field, app->signature_mode, &len);
	if (canon == NULL) {
		/* Only message mode without a message: nothing was signed. */
		FUZZ_CHECK(app->signature_mode == SIGNATURE_MESSAGE_ONLY);
		return SIGNATURE_MISMATCH;
	}
	for (size_t i = 0; i < 2; i++) {
		FUZZ_CHECK(signature_mac(secrets[i], strlen(secrets[i]), canon, len, mac) == 0);
		signature_hex(mac, hex);
		if (strcmp(hex, upper) == 0)
			r = SIGNATURE_OK;
	}
	free(canon);
	return r;
}

static void
check_verify(const struct form *form, struct app_config *app)
{
	const char *field = "unset", *want_field;
	enum signature_result want = oracle(form, app, &want_field);
	enum signature_result got = signature_verify(form, app, &field);

	FUZZ_CHECK(got == want);
	FUZZ_CHECK(field == want_field ||
		   (field != NULL && want_field != NULL && strcmp(field, want_field) == 0));
	FUZZ_CHECK(signature_result_text(got) != NULL);
	/* A NULL field pointer is allowed and changes nothing. */
	FUZZ_CHECK(signature_verify(form, app, NULL) == got);
}

/*
 * Sign FORM (its signature fields dropped) with a secret of APP and check
 * that the signed body verifies, and that a one-digit change does not.
 * The input's first bytes choose the secret, field name, case and digit.
 */
static void
check_self_signed(const struct form *form, struct app_config *app, const uint8_t *data, size_t size)
{
	uint8_t pick = size > 0 ? data[0] : 0, digit = size > 1 ? data[1] : 0;
	const char *secret = pick & 1 ? app->previous_secrets[0] : app->app_secret;
	const char *sig_name = pick & 2 ? SIGNATURE_FIELD_DJ : SIGNATURE_FIELD_AOP;
	unsigned char mac[SIGNATURE_MAC_LEN];
	char hex[SIGNATURE_HEX_LEN + 1];
	struct form signed_form = {0}, decoded;
	const char *err = NULL, *field = NULL;
	size_t len, body_len, n = 0;
	char *canon, *body;
	size_t at;

	signed_form.fields = fuzz_xmalloc((form->n_fields + 1) * sizeof(*signed_form.fields));
	for (size_t i = 0; i < form->n_fields; i++)
		if (!is_signature_field(&form->fields[i]))
			signed_form.fields[n++] = form->fields[i];
	signed_form.n_fields = n;
	canon = signature_canonical(&signed_form, NULL, app->signature_mode, &len);
	if (canon == NULL || n + 1 > FORM_MAX_FIELDS) {
		/* Message mode and no message, or no room for one more field. */
		FUZZ_CHECK(canon != NULL || app->signature_mode == SIGNATURE_MESSAGE_ONLY);
		free(canon);
		free(signed_form.fields);
		return;
	}
	FUZZ_CHECK(signature_mac(secret, strlen(secret), canon, len, mac) == 0);
	free(canon);
	signature_hex(mac, hex);
	if (pick & 4)
		for (size_t i = 0; i < SIGNATURE_HEX_LEN; i++)
			hex[i] = (char)tolower((unsigned char)hex[i]);
	signed_form.fields[n] = (struct form_field){
	    .name = (char *)sig_name,
	    .name_len = strlen(sig_name),
	    .value = hex,
	    .value_len = SIGNATURE_HEX_LEN,
	};
	signed_form.n_fields = n + 1;

	body = fuzz_form_encode(&signed_form, 1, &body_len);
	FUZZ_CHECK(form_decode(body, body_len, &decoded, &err) == 0);
	FUZZ_CHECK(signature_verify(&decoded, app, &field) == SIGNATURE_OK);
	FUZZ_CHECK(field != NULL && strcmp(field, sig_name) == 0);
	form_free(&decoded);
	free(body);

	/* One hex digit changed (to another hex digit): no secret signs that. */
	at = digit % SIGNATURE_HEX_LEN;
	hex[at] = hex[at] == '0' ? '1' : '0';
	FUZZ_CHECK(signature_verify(&signed_form, app, &field) == SIGNATURE_MISMATCH);
	free(signed_form.fields);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char current[] = SECRET_CURRENT, previous[] = SECRET_PREVIOUS;
	char *previous_secrets[] = {previous};
	struct app_config app = {
	    .name = "fuzz",
	    .path = "/fuzz",
	    .app_key = "fuzz-key",
	    .app_secret = current,
	    .previous_secrets = previous_secrets,
	    .n_previous_secrets = 1,
	};
	struct form form;
	const char *err = NULL;

	if (form_decode((const char *)data, size, &form, &err) < 0)
		return 0;
	check_sorted(&form);
	check_message_only(&form);
	app.signature_mode = SIGNATURE_SORTED_FIELDS;
	check_verify(&form, &app);
	check_self_signed(&form, &app, data, size);
	app.signature_mode = SIGNATURE_MESSAGE_ONLY;
	check_verify(&form, &app);
	check_self_signed(&form, &app, data, size);
	form_free(&form);
	return 0;
}
