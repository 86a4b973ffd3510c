/*
 * fuzz_gateway.c - libFuzzer target for the 1688 gateway's answer
 * classifier and its form bodies (receiver/gateway.c).
 *
 * The input's first two bytes choose the HTTP status (big-endian, so the
 * seeds can name 200, 400, 401, 500 ...; a value above 999 is taken as "no
 * answer", 0); the rest is the answer's body.  The same rest is also read as
 * a form, to check the bodies gateway_form() writes from the other side.
 *
 * Invariants checked (abort() when one fails):
 *  - gateway_classify(): an outcome of the enum; code and why NUL-terminated
 *    in their arrays; why well-formed UTF-8 without control bytes, code
 *    printable ASCII; neither quotes the secret or the token of the rules'
 *    redact list; ok exactly with an empty why, and only for a 2xx; no
 *    answer is retryable; the same again, and the same from
 *    gateway_classify_json() on the text loaded by json.c;
 *  - for a body that decodes as a form without NUL bytes: gateway_form()
 *    of its fields decodes to the same fields that have a value, in order,
 *    plus _aop_signature last; gateway_sign() over those fields gives the
 *    same signature as over the originals, and differs with the secret
 *    changed.
 */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "form.h"
#include "gateway.h"
#include "json.h"

#include "fuzz.h"

#define SECRET "fuzz-secret-0123"
#define TOKEN  "0a1b2c3d-4e5f-6789-abcd-ef0123456789"

static void check_text(const char *s, size_t cap, bool ascii);
static void check_classify(int status, const char *body, size_t len);
static bool has_nul(const struct form *form);
static void check_form(const char *body, size_t len);

/* NUL within CAP; no control byte; ASCII only or well-formed UTF-8; no secret. */
static void
check_text(const char *s, size_t cap, bool ascii)
{
	size_t n = strnlen(s, cap);

	FUZZ_CHECK(n < cap);
	FUZZ_CHECK(fuzz_valid_utf8(s, n));
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		FUZZ_CHECK(c >= 0x20 && c != 0x7f);
		FUZZ_CHECK(!ascii || c < 0x7f);
	}
	FUZZ_CHECK(strstr(s, SECRET) == NULL && strstr(s, TOKEN) == NULL);
}

static void
check_classify(int status, const char *body, size_t len)
{
	static const char *const redact[] = {SECRET, TOKEN, NULL};
	const struct gateway_rules rules = {NULL, NULL, redact};
	struct gateway_verdict v, again;
	json_t *root = NULL;
	bool big = false;
	char err[64];
	enum gateway_outcome o = gateway_classify(status, body, len, &rules, &v);

	FUZZ_CHECK(o == v.outcome && o >= GATEWAY_OK && o <= GATEWAY_PERMANENT);
	FUZZ_CHECK(v.http_status == status);
	check_text(v.code, sizeof(v.code), true);
	check_text(v.why, sizeof(v.why), false);
	FUZZ_CHECK((o == GATEWAY_OK) == (v.why[0] == '\0'));
	FUZZ_CHECK(o != GATEWAY_OK || (status >= 200 && status <= 299));
	FUZZ_CHECK(status > 0 || o == GATEWAY_RETRYABLE);
	FUZZ_CHECK(gateway_outcome_name(o) != NULL);

	gateway_classify(status, body, len, &rules, &again);
	FUZZ_CHECK(again.outcome == o && strcmp(again.why, v.why) == 0 &&
		   strcmp(again.code, v.code) == 0);
	if (json_load_object_max(body, len, GATEWAY_MAX_ANSWER_VALUES, &root, &big, err,
				 sizeof(err)) < 0) {
		json_decref(root);
		root = NULL;
	}
	gateway_classify_json(status, status > 0 ? root : NULL, &rules, &again);
	FUZZ_CHECK(again.outcome == o && strcmp(again.why, v.why) == 0 &&
		   strcmp(again.code, v.code) == 0);
	json_decref(root);
}

static bool
has_nul(const struct form *form)
{
	for (size_t i = 0; i < form->n_fields; i++)
		if (strlen(form->fields[i].name) != form->fields[i].name_len ||
		    strlen(form->fields[i].value) != form->fields[i].value_len)
			return true;
	return false;
}

static void
check_form(const char *body, size_t len)
{
	struct gateway_param params[FORM_MAX_FIELDS + 1], back[FORM_MAX_FIELDS + 1];
	char hex[GATEWAY_SIGNATURE_LEN + 1], hex2[GATEWAY_SIGNATURE_LEN + 1];
	struct form form, decoded;
	const char *err = NULL;
	size_t n = 0, k = 0, out_len;
	char *out;

	if (form_decode(body, len, &form, &err) < 0)
		return;
	if (has_nul(&form)) {
		form_free(&form);
		return;
	}
	for (size_t i = 0; i < form.n_fields; i++)
		params[n++] = (struct gateway_param){form.fields[i].name, form.fields[i].value};
	FUZZ_CHECK(gateway_sign("param2/1/ns/api/1", params, n, SECRET, hex) == STATUS_OK);
	FUZZ_CHECK(gateway_form(params, n, hex, &out, &out_len) == STATUS_OK);
	FUZZ_CHECK(strlen(out) == out_len);
	FUZZ_CHECK(form_decode(out, out_len, &decoded, &err) == 0);
	for (size_t i = 0; i < n; i++) {
		if (params[i].value[0] == '\0' || strcmp(params[i].key, "_aop_signature") == 0)
			continue;
		FUZZ_CHECK(k < decoded.n_fields);
		FUZZ_CHECK(strcmp(decoded.fields[k].name, params[i].key) == 0);
		FUZZ_CHECK(strcmp(decoded.fields[k].value, params[i].value) == 0);
		back[k] = (struct gateway_param){decoded.fields[k].name, decoded.fields[k].value};
		k++;
	}
	FUZZ_CHECK(k + 1 == decoded.n_fields);
	FUZZ_CHECK(strcmp(decoded.fields[k].name, "_aop_signature") == 0);
	FUZZ_CHECK(strcmp(decoded.fields[k].value, hex) == 0);
	FUZZ_CHECK(gateway_sign("param2/1/ns/api/1", back, k, SECRET, hex2) == STATUS_OK);
	FUZZ_CHECK(strcmp(hex, hex2) == 0);
	FUZZ_CHECK(gateway_sign("param2/1/ns/api/1", back, k, SECRET "!", hex2) == STATUS_OK);
	FUZZ_CHECK(strcmp(hex, hex2) != 0);
	form_free(&decoded);
	gateway_wipe_free(out, out_len);
	form_free(&form);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int status;

	if (size < 2)
		return 0;
	status = data[0] << 8 | data[1];
	if (status > 999)
		status = 0;
	check_classify(status, (const char *)data + 2, size - 2);
	check_form((const char *)data + 2, size - 2);
	return 0;
}
