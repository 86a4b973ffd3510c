/*
 * fuzz_form.c - libFuzzer target for form_decode() (receiver/form.c).
 *
 * The input is a request body as it comes off the wire (not NUL-terminated:
 * libFuzzer's buffer is exactly SIZE bytes, so ASan sees any over-read).
 *
 * Invariants checked (abort() when one fails):
 *  - the result is 0 or -1;
 *  - on failure: *err is one of the reasons form.h lists, and the form is
 *    empty (fields NULL, n_fields 0) whatever it held before;
 *  - on success: n_fields <= FORM_MAX_FIELDS, and is the number of
 *    '&'-separated fields (one trailing '&' allowed); an empty body has no
 *    fields; every name is non-empty; names and values are NUL-terminated
 *    at their lengths; no two names are equal; form_get() finds each field
 *    by its name (names without a NUL byte); decoded bytes never exceed the
 *    body's length;
 *  - round trip: the fields %-encoded again (fuzz_form_encode) decode to
 *    the same fields, byte for byte, in the same order.
 */
#include <stdint.h>
#include <string.h>

#include "form.h"

#include "fuzz.h"

static void check_failure(const struct form *form, const char *err);
static void check_form(const struct form *form, const char *body, size_t len);
static void check_round_trip(const struct form *form);

/* The reasons form.h promises; anything else is a new, undocumented one. */
static void
check_failure(const struct form *form, const char *err)
{
	static const char *const reasons[] = {
	    "malformed percent escape", "repeated field", "field without '='", "empty field name",
	    "too many fields",		"empty field",	  "out of memory",
	};
	int known = 0;

	FUZZ_CHECK(form->fields == NULL && form->n_fields == 0);
	FUZZ_CHECK(err != NULL);
	for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++)
		known |= strcmp(err, reasons[i]) == 0;
	FUZZ_CHECK(known);
}

static void
check_form(const struct form *form, const char *body, size_t len)
{
	size_t expected = 0, decoded = 0;

	if (len > 0) {
		size_t n = body[len - 1] == '&' ? len - 1 : len;

		expected = 1;
		for (size_t i = 0; i < n; i++)
			expected += body[i] == '&';
	}
	FUZZ_CHECK(form->n_fields == expected);
	FUZZ_CHECK(form->n_fields <= FORM_MAX_FIELDS);
	FUZZ_CHECK(form->n_fields == 0 || form->fields != NULL);
	for (size_t i = 0; i < form->n_fields; i++) {
		const struct form_field *f = &form->fields[i];

		FUZZ_CHECK(f->name != NULL && f->value != NULL);
		FUZZ_CHECK(f->name_len > 0);
		FUZZ_CHECK(f->name[f->name_len] == '\0');
		FUZZ_CHECK(f->value[f->value_len] == '\0');
		for (size_t j = 0; j < i; j++) {
			const struct form_field *g = &form->fields[j];

			FUZZ_CHECK(g->name_len != f->name_len ||
				   memcmp(g->name, f->name, f->name_len) != 0);
		}
		if (memchr(f->name, '\0', f->name_len) == NULL)
			FUZZ_CHECK(form_get(form, f->name) == f);
		decoded += f->name_len + f->value_len;
	}
	FUZZ_CHECK(decoded <= len);
}

static void
check_round_trip(const struct form *form)
{
	struct form again;
	const char *err = NULL;
	size_t len;
	char *body = fuzz_form_encode(form, 0, &len);

	FUZZ_CHECK(form_decode(body, len, &again, &err) == 0);
	FUZZ_CHECK(again.n_fields == form->n_fields);
	for (size_t i = 0; i < form->n_fields; i++) {
		const struct form_field *f = &form->fields[i], *g = &again.fields[i];

		FUZZ_CHECK(g->name_len == f->name_len && g->value_len == f->value_len);
		FUZZ_CHECK(memcmp(g->name, f->name, f->name_len) == 0);
		FUZZ_CHECK(memcmp(g->value, f->value, f->value_len) == 0);
	}
	form_free(&again);
	free(body);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *body = (const char *)data;
	/* Garbage in *form beforehand: form_decode must not depend on it. */
	struct form form = {(struct form_field *)&form, 99};
	const char *err = NULL;
	int rc = form_decode(body, size, &form, &err);

	FUZZ_CHECK(rc == 0 || rc == -1);
	if (rc < 0) {
		check_failure(&form, err);
		return 0;
	}
	check_form(&form, body, size);
	check_round_trip(&form);
	form_free(&form);
	FUZZ_CHECK(form.fields == NULL && form.n_fields == 0);
	return 0;
}
