/*
 * test_form.c - form_decode(): what decodes, how, and every refusal.
 */
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "form.h"

static int decode(const char *body, struct form *form, const char **err);
static const char *decode_err(const char *body);

/* Decode the NUL-terminated BODY; *err is reset so a stale reason cannot pass. */
static int
decode(const char *body, struct form *form, const char **err)
{
	*err = NULL;
	return form_decode(body, strlen(body), form, err);
}

/* The reason BODY is refused, or "accepted"; also checks the form is left empty. */
static const char *
decode_err(const char *body)
{
	struct form form = {(struct form_field *)&form, 99};
	const char *err = NULL;
	int rc = decode(body, &form, &err);

	if (rc == 0) {
		form_free(&form);
		return "accepted";
	}
	CHECK_INT(rc, -1);
	CHECK(form.fields == NULL);
	CHECK_INT(form.n_fields, 0);
	return err;
}

static void
test_plain_fields(void)
{
	struct form form;
	const char *err;
	const struct form_field *f;

	CHECK_INT(decode("message=hello&_aop_signature=ABC", &form, &err), 0);
	CHECK_INT(form.n_fields, 2);
	CHECK_STR(form.fields[0].name, "message");
	CHECK_INT(form.fields[0].name_len, 7);
	CHECK_STR(form.fields[0].value, "hello");
	CHECK_INT(form.fields[0].value_len, 5);
	f = form_get(&form, "_aop_signature");
	CHECK(f != NULL);
	if (f != NULL)
		CHECK_STR(f->value, "ABC");
	CHECK(form_get(&form, "missing") == NULL);
	/* Exact names only: neither a prefix nor an extension matches. */
	CHECK(form_get(&form, "messag") == NULL);
	CHECK(form_get(&form, "messages") == NULL);
	form_free(&form);
	CHECK(form.fields == NULL);
	CHECK_INT(form.n_fields, 0);
}

static void
test_empty_value_and_equals_in_value(void)
{
	struct form form;
	const char *err;

	CHECK_INT(decode("a=&b=x=y==", &form, &err), 0);
	CHECK_INT(form.n_fields, 2);
	CHECK_STR(form.fields[0].value, "");
	CHECK_INT(form.fields[0].value_len, 0);
	CHECK_STR(form.fields[1].name, "b");
	CHECK_STR(form.fields[1].value, "x=y==");
	form_free(&form);
}

static void
test_plus_and_percent_space(void)
{
	struct form form;
	const char *err;

	CHECK_INT(decode("a=one+two%20three&b+c=%2B", &form, &err), 0);
	CHECK_STR(form.fields[0].value, "one two three");
	CHECK_STR(form.fields[1].name, "b c");
	CHECK_STR(form.fields[1].value, "+");
	form_free(&form);
}

static void
test_utf8_and_hex_case(void)
{
	struct form form;
	const char *err;

	CHECK_INT(decode("zh=%E4%B8%AD%e6%96%87&mixed=%c3%A9%2f%2F", &form, &err), 0);
	CHECK_STR(form.fields[0].value, "\xe4\xb8\xad\xe6\x96\x87"); /* 中文 */
	CHECK_INT(form.fields[0].value_len, 6);
	CHECK_STR(form.fields[1].value, "\xc3\xa9//");
	form_free(&form);
}

static void
test_nul_inside_value(void)
{
	struct form form;
	const char *err;

	CHECK_INT(decode("v=a%00b&n=%00", &form, &err), 0);
	CHECK_INT(form.fields[0].value_len, 3);
	CHECK(memcmp(form.fields[0].value, "a\0b", 4) == 0); /* and NUL-terminated */
	CHECK_INT(form.fields[1].value_len, 1);
	CHECK(form.fields[1].value[0] == '\0' && form.fields[1].value[1] == '\0');
	form_free(&form);
}

static void
test_not_nul_terminated_input(void)
{
	/* The body is used by length: the bytes after it must not be read. */
	static const char body[] = "a=1&b=2XXXX";
	struct form form;
	const char *err = NULL;

	CHECK_INT(form_decode(body, 7, &form, &err), 0);
	CHECK_INT(form.n_fields, 2);
	CHECK_STR(form.fields[1].value, "2");
	form_free(&form);
	/* A '%' cut off by the length is malformed even if hex follows in memory. */
	CHECK_INT(form_decode("a=%4142", 4, &form, &err), -1);
	CHECK_STR(err, "malformed percent escape");
}

static void
test_empty_body(void)
{
	struct form form = {(struct form_field *)&form, 99};
	const char *err = NULL;

	CHECK_INT(form_decode("", 0, &form, &err), 0);
	CHECK_INT(form.n_fields, 0);
	CHECK(form.fields == NULL);
	CHECK(form_get(&form, "message") == NULL);
	form_free(&form);
}

static void
test_malformed_percent(void)
{
	CHECK_STR(decode_err("a=%"), "malformed percent escape");
	CHECK_STR(decode_err("a=%4"), "malformed percent escape");
	CHECK_STR(decode_err("a=%4G"), "malformed percent escape");
	CHECK_STR(decode_err("a=%G4"), "malformed percent escape");
	CHECK_STR(decode_err("a=%%41"), "malformed percent escape");
	CHECK_STR(decode_err("a=ok&b=x%"), "malformed percent escape");
	CHECK_STR(decode_err("%zz=1"), "malformed percent escape");
	/* The escape may not swallow the '&' that ends its field. */
	CHECK_STR(decode_err("a=%4&b=1"), "malformed percent escape");
}

static void
test_field_without_equals(void)
{
	CHECK_STR(decode_err("a"), "field without '='");
	CHECK_STR(decode_err("a=1&b"), "field without '='");
	CHECK_STR(decode_err("a%3D1=2&b"), "field without '='");
}

static void
test_empty_name(void)
{
	CHECK_STR(decode_err("=1"), "empty field name");
	CHECK_STR(decode_err("a=1&=2"), "empty field name");
	CHECK_STR(decode_err("="), "empty field name");
}

static void
test_empty_fields(void)
{
	struct form form;
	const char *err;

	/* One trailing '&' is tolerated... */
	CHECK_INT(decode("a=1&b=2&", &form, &err), 0);
	CHECK_INT(form.n_fields, 2);
	if (form.n_fields == 2)
		CHECK_STR(form.fields[1].value, "2");
	form_free(&form);
	/* ...an empty field anywhere else is not. */
	CHECK_STR(decode_err("a=1&&b=2"), "empty field");
	CHECK_STR(decode_err("&a=1"), "empty field");
	CHECK_STR(decode_err("a=1&&"), "empty field");
	CHECK_STR(decode_err("&"), "empty field");
	CHECK_STR(decode_err("&&"), "empty field");
}

static void
test_repeated_field(void)
{
	CHECK_STR(decode_err("a=1&a=2"), "repeated field");
	CHECK_STR(decode_err("a=1&a=1"), "repeated field");
	/* Names are compared decoded. */
	CHECK_STR(decode_err("ab=1&%61b=2"), "repeated field");
	CHECK_STR(decode_err("a+b=1&a%20b=2"), "repeated field");
	CHECK_STR(decode_err("a=1&A=2"), "accepted");
	CHECK_STR(decode_err("a=1&ab=2"), "accepted");
}

static void
test_too_many_fields(void)
{
	char body[FORM_MAX_FIELDS * 8 + 16];
	size_t n = 0;
	struct form form;
	const char *err;

	for (int i = 0; i < FORM_MAX_FIELDS; i++)
		n += (size_t)snprintf(body + n, sizeof(body) - n, "%sf%d=%d", i ? "&" : "", i, i);
	CHECK_INT(decode(body, &form, &err), 0);
	CHECK_INT(form.n_fields, FORM_MAX_FIELDS);
	CHECK(form_get(&form, "f63") != NULL);
	form_free(&form);
	snprintf(body + n, sizeof(body) - n, "&f%d=x", FORM_MAX_FIELDS);
	CHECK_STR(decode_err(body), "too many fields");
}

CHECK_MAIN("form", CHECK_TEST(test_plain_fields), CHECK_TEST(test_empty_value_and_equals_in_value),
	   CHECK_TEST(test_plus_and_percent_space), CHECK_TEST(test_utf8_and_hex_case),
	   CHECK_TEST(test_nul_inside_value), CHECK_TEST(test_not_nul_terminated_input),
	   CHECK_TEST(test_empty_body), CHECK_TEST(test_malformed_percent),
	   CHECK_TEST(test_field_without_equals), CHECK_TEST(test_empty_name),
	   CHECK_TEST(test_empty_fields), CHECK_TEST(test_repeated_field),
	   CHECK_TEST(test_too_many_fields))
