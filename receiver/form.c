/*
 * form.c - strict application/x-www-form-urlencoded decoding.
 *
 * The body is split on '&' into fields; each field is split on its first
 * '=' into name and value, and both are decoded ('+' is a space, %XX a
 * byte).  Anything ambiguous is an error, because the signature is computed
 * over the decoded fields: a form that could be read two ways proves
 * nothing.  The only leniency is one trailing '&', which some HTTP clients
 * append; an empty field anywhere else ("a=1&&b=2") is an error.
 *
 * Memory: a single allocation holds the field array followed by the decoded
 * bytes.  A decoded component is never longer than its encoded form, so
 * LEN bytes plus two terminating NULs per field always suffice, and
 * form_free() is one free().
 */
#include "form.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void set_err(const char **err, const char *msg);
static size_t count_fields(const char *body, size_t len);
static int decode_component(const char *src, size_t n, char *dst, size_t *out_len);
static int decode_field(const char *seg, size_t n, struct form_field *f, char **buf,
			const char **err);
static int is_repeated(const struct form *form, const struct form_field *f);

static void
set_err(const char **err, const char *msg)
{
	if (err != NULL)
		*err = msg;
}

static size_t
count_fields(const char *body, size_t len)
{
	size_t n = 1;

	for (size_t i = 0; i < len; i++)
		if (body[i] == '&')
			n++;
	return n;
}

int
form_hex_digit(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Decode N bytes at SRC into DST (room for N bytes), NUL-terminated. */
static int
decode_component(const char *src, size_t n, char *dst, size_t *out_len)
{
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)src[i];

		if (c == '+') {
			dst[o++] = ' ';
		} else if (c == '%') {
			int hi, lo;

			if (n - i < 3)
				return -1;
			hi = form_hex_digit((unsigned char)src[i + 1]);
			lo = form_hex_digit((unsigned char)src[i + 2]);
			if (hi < 0 || lo < 0)
				return -1;
			dst[o++] = (char)(hi << 4 | lo);
			i += 2;
		} else {
			dst[o++] = (char)c;
		}
	}
	dst[o] = '\0';
	*out_len = o;
	return 0;
}

/* Decode the field SEG (N bytes, no '&') into *f, its bytes at *buf. */
static int
decode_field(const char *seg, size_t n, struct form_field *f, char **buf, const char **err)
{
	const char *eq;
	size_t name_n;

	if (n == 0) {
		set_err(err, "empty field");
		return -1;
	}
	eq = memchr(seg, '=', n);
	if (eq == NULL) {
		set_err(err, "field without '='");
		return -1;
	}
	name_n = (size_t)(eq - seg);
	if (name_n == 0) {
		set_err(err, "empty field name");
		return -1;
	}
	f->name = *buf;
	if (decode_component(seg, name_n, f->name, &f->name_len) < 0)
		goto bad_escape;
	*buf += f->name_len + 1;
	f->value = *buf;
	if (decode_component(eq + 1, n - name_n - 1, f->value, &f->value_len) < 0)
		goto bad_escape;
	*buf += f->value_len + 1;
	return 0;

bad_escape:
	set_err(err, "malformed percent escape");
	return -1;
}

/* Whether F's name is already among FORM's fields (at most 64: linear is fine). */
static int
is_repeated(const struct form *form, const struct form_field *f)
{
	for (size_t i = 0; i < form->n_fields; i++) {
		const struct form_field *g = &form->fields[i];

		if (g->name_len == f->name_len && memcmp(g->name, f->name, f->name_len) == 0)
			return 1;
	}
	return 0;
}

int
form_decode(const char *body, size_t len, struct form *form, const char **err)
{
	size_t n, array_size, pos = 0;
	char *buf;

	form->fields = NULL;
	form->n_fields = 0;
	if (len == 0)
		return 0;
	if (body[len - 1] == '&') {
		if (--len == 0) {
			set_err(err, "empty field");
			return -1;
		}
	}
	n = count_fields(body, len);
	if (n > FORM_MAX_FIELDS) {
		set_err(err, "too many fields");
		return -1;
	}
	array_size = n * sizeof(struct form_field);
	if (len > SIZE_MAX - array_size - 2 * n) {
		set_err(err, "out of memory");
		return -1;
	}
	form->fields = malloc(array_size + len + 2 * n);
	if (form->fields == NULL) {
		set_err(err, "out of memory");
		return -1;
	}
	buf = (char *)form->fields + array_size;
	while (form->n_fields < n) {
		const char *amp = memchr(body + pos, '&', len - pos);
		size_t seg_len = amp != NULL ? (size_t)(amp - (body + pos)) : len - pos;
		struct form_field *f = &form->fields[form->n_fields];

		if (decode_field(body + pos, seg_len, f, &buf, err) < 0)
			goto fail;
		if (is_repeated(form, f)) {
			set_err(err, "repeated field");
			goto fail;
		}
		form->n_fields++;
		pos += seg_len + 1; /* the '&'; past LEN only after the last field */
	}
	return 0;

fail:
	form_free(form);
	return -1;
}

const struct form_field *
form_get(const struct form *form, const char *name)
{
	size_t name_len;

	if (form == NULL || name == NULL)
		return NULL;
	name_len = strlen(name);
	for (size_t i = 0; i < form->n_fields; i++) {
		const struct form_field *f = &form->fields[i];

		if (f->name_len == name_len && memcmp(f->name, name, name_len) == 0)
			return f;
	}
	return NULL;
}

void
form_free(struct form *form)
{
	if (form == NULL)
		return;
	free(form->fields);
	form->fields = NULL;
	form->n_fields = 0;
}
