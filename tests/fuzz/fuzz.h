/*
 * fuzz.h - what the libFuzzer targets in tests/fuzz/ share.
 *
 * FUZZ_CHECK states an invariant: when it does not hold, the target prints
 * where and what, then abort()s, which libFuzzer reports as a crash and
 * saves the input.  fuzz_form_encode() writes a struct form back as a body,
 * for the round trips that check decoding from the other side.
 */
#ifndef RECEIVER_FUZZ_H
#define RECEIVER_FUZZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "form.h"

#define FUZZ_CHECK(cond)                                                                           \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "%s:%d: invariant violated: %s\n", __FILE__, __LINE__,     \
				#cond);                                                            \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

/* libFuzzer's entry point; declared for -Wmissing-prototypes. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static inline void *
fuzz_xmalloc(size_t n)
{
	void *p = malloc(n != 0 ? n : 1);

	if (p == NULL)
		abort();
	return p;
}

/* Append N bytes at P to OUT, %-encoding every byte that is not unreserved. */
static inline char *
fuzz_encode_bytes(char *out, const char *p, size_t n)
{
	static const char hex[] = "0123456789ABCDEF";

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];

		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '_' || c == '.' || c == '~') {
			*out++ = (char)c;
		} else if (c == ' ') {
			*out++ = '+';
		} else {
			*out++ = '%';
			*out++ = hex[c >> 4];
			*out++ = hex[c & 15];
		}
	}
	return out;
}

/*
 * FORM as a malloc'd body, its fields in order (REVERSE: last first), and
 * its length in *len.  Decoding the result must give FORM back.
 */
static inline char *
fuzz_form_encode(const struct form *form, int reverse, size_t *len)
{
	size_t cap = 1;
	char *body, *o;

	for (size_t i = 0; i < form->n_fields; i++)
		cap += 3 * (form->fields[i].name_len + form->fields[i].value_len) + 2;
	body = o = fuzz_xmalloc(cap);
	for (size_t k = 0; k < form->n_fields; k++) {
		const struct form_field *f = &form->fields[reverse ? form->n_fields - 1 - k : k];

		if (k > 0)
			*o++ = '&';
		o = fuzz_encode_bytes(o, f->name, f->name_len);
		*o++ = '=';
		o = fuzz_encode_bytes(o, f->value, f->value_len);
	}
	*len = (size_t)(o - body);
	return body;
}

/* Well-formed UTF-8: shortest forms, no surrogates, at most U+10FFFF. */
static inline bool
fuzz_valid_utf8(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;

	for (size_t i = 0; i < n;) {
		unsigned long cp, min;
		size_t k;

		if (p[i] < 0x80) {
			i++;
			continue;
		}
		if (p[i] >= 0xc2 && p[i] <= 0xdf)
			k = 1, cp = p[i] & 0x1f, min = 0x80;
		else if (p[i] >= 0xe0 && p[i] <= 0xef)
			k = 2, cp = p[i] & 0x0f, min = 0x800;
		else if (p[i] >= 0xf0 && p[i] <= 0xf4)
			k = 3, cp = p[i] & 0x07, min = 0x10000;
		else
			return false;
		if (n - i - 1 < k)
			return false;
		for (size_t j = 1; j <= k; j++) {
			if ((p[i + j] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (p[i + j] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += k + 1;
	}
	return true;
}

#endif
