/*
 * form.h - application/x-www-form-urlencoded bodies.
 *
 * The pusher sends `message` and a signature field as a form.  Decoding is
 * strict: a malformed %-escape, a field without '=', an empty name or a name
 * that occurs twice is an error, because a signature over an ambiguous form
 * proves nothing.  Values are kept with their lengths (they may hold any
 * byte, NUL included); names and values are also NUL-terminated for
 * convenience.
 */
#ifndef RECEIVER_FORM_H
#define RECEIVER_FORM_H

#include <stddef.h>

#define FORM_MAX_FIELDS 64

struct form_field {
	char *name;
	size_t name_len;
	char *value;
	size_t value_len;
};

struct form {
	struct form_field *fields;
	size_t n_fields;
};

/*
 * Decode BODY (LEN bytes) into *form.  Returns 0, or -1 with *err pointing
 * at a short static reason ("malformed percent escape in field 'x'" style
 * reasons are static strings without field names: "malformed percent escape",
 * "repeated field", "field without '='", "empty field name",
 * "too many fields", "empty field", "out of memory").  An empty body is a form with no
 * fields.  On error *form is empty.
 */
int form_decode(const char *body, size_t len, struct form *form, const char **err);

/* The field called NAME, or NULL. */
const struct form_field *form_get(const struct form *form, const char *name);

void form_free(struct form *form);

/* The value of hex digit C (either case), or -1. */
int form_hex_digit(unsigned char c);

#endif
