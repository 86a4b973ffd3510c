/*
 * json.c - JSON texts loaded exactly as PostgreSQL will store them (json.h).
 *
 * The text is parsed by jansson with duplicate keys rejected and integers
 * kept as 64-bit.  Numbers get one small scanner, scan_numbers(), that
 * walks the number tokens outside strings.  It serves twice:
 *
 *  - before anything is accepted, it rejects numbers PostgreSQL's numeric
 *    could not store (too many digits, too large an exponent), so that a
 *    text we accept can never make the statement that stores it fail;
 *  - when jansson refuses the text because a number does not fit (an
 *    integer beyond int64 or a real beyond double, anywhere, even in a
 *    field we never read), it writes a copy with exactly those numbers
 *    quoted as strings, which jansson then accepts.  Only numbers in value
 *    position are quoted (it keeps a stack of open containers to tell an
 *    array's ',' from an object's), so quoting can never turn an invalid
 *    text into a valid one: a string is legal exactly where a number is.
 *    The raw text, stored as jsonb, is never changed;
 *  - it counts the values (containers, strings - keys among them -, numbers
 *    and literals) and stops at the first beyond the caller's limit, before
 *    jansson builds anything: a tree costs jansson from 16 bytes (a literal)
 *    to some 230 (an empty object) per value, so a short hostile text of
 *    tiny values would otherwise cost hundreds of times its size.
 *
 * Whether a number "does not fit" mirrors jansson's own lexer: an integer
 * (no fraction, no exponent) outside int64, or a real whose strtod() value
 * overflows to infinity.
 *
 * json_member() finds the bytes of one member's value in the raw text, so
 * a part of an answer (an order record) can be stored exactly as it came
 * rather than re-encoded from jansson's tree, which would lose the numbers
 * jansson could not hold.
 */
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

#define SCAN_MAX_DEPTH 2048   /* jansson's default parsing depth limit */
#define EXPONENT_CAP   100000 /* far beyond any limit; keeps the sum from overflowing */

/* One number token as the JSON grammar reads it. */
struct number {
	size_t len;	 /* bytes consumed, at least 1 */
	bool valid;	 /* a complete JSON number */
	bool is_int;	 /* no fraction and no exponent */
	bool negative;	 /* leading '-' */
	size_t int_len;	 /* digits before '.', starting after the '-' */
	size_t frac_len; /* digits after '.' */
	long exponent;	 /* saturated at +-EXPONENT_CAP */
};

/* What scan_numbers() found wrong, if anything. */
enum scan_result {
	SCAN_OK,
	SCAN_BEYOND_NUMERIC, /* a number PostgreSQL could not store */
	SCAN_TOO_MANY,	     /* more values than allowed */
};

/* scan_numbers()'s state: the copy being written and the open containers. */
struct scan {
	char *out;  /* NULL when only counting */
	size_t cap; /* bytes at OUT */
	size_t o;
	size_t values;	   /* seen so far */
	size_t max_values; /* allowed */
	size_t depth;
	unsigned char arrays[SCAN_MAX_DEPTH / 8]; /* bit d: container at depth d is an array */
	char prev;				  /* last significant byte outside strings */
};

static void set_err(char *err, size_t errlen, const char *msg);
static bool is_digit(char c);
static bool is_json_space(char c);
static size_t lex_digits(const char *p, size_t n);
static void lex_number(const char *p, size_t n, struct number *num);
static bool beyond_numeric(const struct number *num);
static bool int_overflows(const char *digits, size_t n, bool negative);
static bool real_overflows(const char *p, const struct number *num);
static bool beyond_jansson(const char *p, const struct number *num);
static size_t string_end(const char *text, size_t len, size_t i);
static void emit(struct scan *s, const char *p, size_t n);
static bool in_value_position(const struct scan *s);
static void track_container(struct scan *s, char c);
static bool is_letter(char c);
static bool count_value(struct scan *s);
static enum scan_result scan_numbers(const char *text, size_t len, size_t max_values, char *out,
				     size_t cap, size_t *n_big);
static bool starts_as_object(const char *text, size_t len);
static void jansson_err(char *err, size_t errlen, const json_error_t *jerr);
static json_t *load_sanitized(const char *text, size_t len, size_t n_big, json_error_t *jerr);
static size_t skip_space(const char *text, size_t len, size_t i);
static size_t value_end(const char *text, size_t len, size_t i);
static size_t object_member(const char *text, size_t len, size_t i, const char *key,
			    size_t *vstart);

static void
set_err(char *err, size_t errlen, const char *msg)
{
	if (err != NULL && errlen > 0)
		snprintf(err, errlen, "%s", msg);
}

static bool
is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool
is_json_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static bool
is_letter(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* One more value; false once there are more than allowed. */
static bool
count_value(struct scan *s)
{
	return ++s->values <= s->max_values;
}

static size_t
lex_digits(const char *p, size_t n)
{
	size_t i = 0;

	while (i < n && is_digit(p[i]))
		i++;
	return i;
}

/*
 * Read the number token at P (N > 0 bytes, starting with '-' or a digit)
 * the way jansson's lexer does.  An incomplete token ("-", "1.", "1e") is
 * consumed as far as it goes and marked invalid: jansson rejects it.
 */
static void
lex_number(const char *p, size_t n, struct number *num)
{
	size_t i, k;
	bool minus;

	memset(num, 0, sizeof(*num));
	num->negative = p[0] == '-';
	i = num->negative;
	/* A leading zero stands alone: "012" is "0" followed by another token. */
	num->int_len = i < n && p[i] == '0' ? 1 : lex_digits(p + i, n - i);
	i += num->int_len;
	num->len = i;
	if (num->int_len == 0)
		return; /* a lone '-': len is 1 */
	num->is_int = true;
	if (i < n && p[i] == '.') {
		num->is_int = false;
		num->frac_len = lex_digits(p + i + 1, n - i - 1);
		i += 1 + num->frac_len;
		num->len = i;
		if (num->frac_len == 0)
			return;
	}
	if (i < n && (p[i] == 'e' || p[i] == 'E')) {
		num->is_int = false;
		i++;
		minus = i < n && p[i] == '-';
		if (i < n && (p[i] == '+' || p[i] == '-'))
			i++;
		k = lex_digits(p + i, n - i);
		for (size_t j = i; j < i + k && num->exponent < EXPONENT_CAP; j++)
			num->exponent = num->exponent * 10 + (p[j] - '0');
		if (minus)
			num->exponent = -num->exponent;
		i += k;
		num->len = i;
		if (k == 0)
			return;
	}
	num->valid = true;
}

/* PostgreSQL numeric could not take it (JSON_MAX_* are within its limits). */
static bool
beyond_numeric(const struct number *num)
{
	return num->int_len + num->frac_len > JSON_MAX_NUMBER_DIGITS ||
	       num->exponent > JSON_MAX_EXPONENT || num->exponent < -JSON_MAX_EXPONENT;
}

/* Outside int64: JSON has no leading zeros, so length then digits decide. */
static bool
int_overflows(const char *digits, size_t n, bool negative)
{
	const char *limit = negative ? "9223372036854775808" : "9223372036854775807";
	size_t limit_len = strlen(limit);

	if (n != limit_len)
		return n > limit_len;
	return memcmp(digits, limit, n) > 0;
}

/*
 * strtod() would overflow to infinity.  The digits are rewritten without
 * the '.' (exponent adjusted) so that the locale's decimal point cannot
 * matter; the caller has bounded the digits and the exponent.
 */
static bool
real_overflows(const char *p, const struct number *num)
{
	char buf[JSON_MAX_NUMBER_DIGITS + 32];
	const char *digits = p + num->negative;
	long exponent = num->exponent - (long)num->frac_len;
	double v;

	/* Below 10^300 nothing overflows a double: skip the work. */
	if ((long)num->int_len + num->exponent < 300)
		return false;
	memcpy(buf, digits, num->int_len);
	memcpy(buf + num->int_len, digits + num->int_len + 1, num->frac_len);
	snprintf(buf + num->int_len + num->frac_len, 32, "e%ld", exponent);
	v = strtod(buf, NULL);
	return v == HUGE_VAL;
}

static bool
beyond_jansson(const char *p, const struct number *num)
{
	if (!num->valid)
		return false;
	if (num->is_int)
		return int_overflows(p + num->negative, num->int_len, num->negative);
	return real_overflows(p, num);
}

/* Index just past the string opening at TEXT[I], or LEN if unterminated. */
static size_t
string_end(const char *text, size_t len, size_t i)
{
	for (i++; i < len; i++) {
		if (text[i] == '\\')
			i++; /* the escaped byte, even a '"' */
		else if (text[i] == '"')
			return i + 1;
	}
	return len;
}

/* Bounded although the counting pass sized OUT exactly: cheap insurance. */
static void
emit(struct scan *s, const char *p, size_t n)
{
	if (s->out != NULL && s->o <= s->cap && n <= s->cap - s->o)
		memcpy(s->out + s->o, p, n);
	s->o += n;
}

/*
 * A string is legal here exactly where a number is.  Beyond the tracked
 * depth jansson stops before reaching the number, so no quoting is needed.
 */
static bool
in_value_position(const struct scan *s)
{
	size_t top;

	if (s->depth == 0 || s->depth > SCAN_MAX_DEPTH)
		return false;
	top = s->depth - 1;
	if (s->prev == ':' || s->prev == '[')
		return true;
	return s->prev == ',' && (s->arrays[top / 8] >> (top % 8) & 1);
}

static void
track_container(struct scan *s, char c)
{
	if (c == '{' || c == '[') {
		if (s->depth < SCAN_MAX_DEPTH) {
			unsigned char bit = (unsigned char)(1u << (s->depth % 8));

			if (c == '[')
				s->arrays[s->depth / 8] |= bit;
			else
				s->arrays[s->depth / 8] &= (unsigned char)~bit;
		}
		s->depth++;
	} else if ((c == '}' || c == ']') && s->depth > 0) {
		s->depth--;
	}
}

/*
 * Walk TEXT's number tokens outside strings, counting its values (a run of
 * letters after a byte that is no letter is one literal: exact for a valid
 * text; an invalid one jansson refuses anyway).  SCAN_BEYOND_NUMERIC when
 * a number is beyond what PostgreSQL stores, SCAN_TOO_MANY at the first
 * value beyond MAX_VALUES; otherwise SCAN_OK with *N_BIG the count of
 * numbers in value position that jansson cannot hold.  When OUT is not NULL (CAP bytes:
 * LEN + 2 * *N_BIG, as a counting pass found), TEXT is copied into it with
 * those numbers quoted.
 */
static enum scan_result
scan_numbers(const char *text, size_t len, size_t max_values, char *out, size_t cap, size_t *n_big)
{
	struct scan s = {.out = out, .cap = cap, .max_values = max_values};
	size_t i = 0;

	*n_big = 0;
	while (i < len) {
		char c = text[i];

		if (c == '"') {
			size_t end = string_end(text, len, i);

			if (!count_value(&s))
				return SCAN_TOO_MANY;
			emit(&s, text + i, end - i);
			i = end;
			s.prev = '"';
		} else if (c == '-' || is_digit(c)) {
			struct number num;
			bool quote;

			lex_number(text + i, len - i, &num);
			if (beyond_numeric(&num))
				return SCAN_BEYOND_NUMERIC;
			if (!count_value(&s))
				return SCAN_TOO_MANY;
			quote = in_value_position(&s) && beyond_jansson(text + i, &num);
			if (quote)
				emit(&s, "\"", 1);
			emit(&s, text + i, num.len);
			if (quote)
				emit(&s, "\"", 1);
			*n_big += quote;
			i += num.len;
			s.prev = '0';
		} else {
			if ((c == '{' || c == '[' || (is_letter(c) && !is_letter(s.prev))) &&
			    !count_value(&s))
				return SCAN_TOO_MANY;
			track_container(&s, c);
			if (!is_json_space(c))
				s.prev = c;
			emit(&s, text + i, 1);
			i++;
		}
	}
	return SCAN_OK;
}

/* Only an object is an envelope; saying so beats jansson's "'[' or '{' expected". */
static bool
starts_as_object(const char *text, size_t len)
{
	size_t i = 0;

	while (i < len && is_json_space(text[i]))
		i++;
	return i < len && text[i] == '{';
}

/*
 * jansson's reason, with any byte that is not printable ASCII replaced: its
 * "near '...'" context can quote invalid UTF-8, which must not reach a log
 * line or a PostgreSQL text column.
 */
static void
jansson_err(char *err, size_t errlen, const json_error_t *jerr)
{
	char text[sizeof(jerr->text)];
	size_t i;

	for (i = 0; i < sizeof(text) - 1 && jerr->text[i] != '\0'; i++) {
		unsigned char c = (unsigned char)jerr->text[i];

		text[i] = c >= 0x20 && c < 0x7f ? (char)c : '?';
	}
	text[i] = '\0';
	if (err == NULL || errlen == 0)
		return;
	if (jerr->line > 0)
		snprintf(err, errlen, "invalid JSON: %s (line %d, column %d)", text, jerr->line,
			 jerr->column);
	else
		snprintf(err, errlen, "invalid JSON: %s", text);
}

static json_t *
load_sanitized(const char *text, size_t len, size_t n_big, json_error_t *jerr)
{
	size_t copy_len, check;
	char *copy;
	json_t *root;

	/* n_big <= len, so this only fails for absurd lengths. */
	if (len > (SIZE_MAX - 1) / 3) {
		snprintf(jerr->text, sizeof(jerr->text), "text too long");
		jerr->line = -1;
		return NULL;
	}
	copy_len = len + 2 * n_big;
	copy = malloc(copy_len);
	if (copy == NULL) {
		snprintf(jerr->text, sizeof(jerr->text), "out of memory");
		jerr->line = -1;
		return NULL;
	}
	if (scan_numbers(text, len, SIZE_MAX, copy, copy_len, &check) != SCAN_OK ||
	    check != n_big) {
		/* Cannot happen: the same scan already succeeded on the same text. */
		free(copy);
		snprintf(jerr->text, sizeof(jerr->text), "number scan disagrees");
		jerr->line = -1;
		return NULL;
	}
	root = json_loadb(copy, copy_len, JSON_REJECT_DUPLICATES, jerr);
	free(copy);
	return root;
}

int
json_load_object(const char *text, size_t len, json_t **root, bool *big, char *err, size_t errlen)
{
	return json_load_object_max(text, len, JSON_MAX_VALUES, root, big, err, errlen);
}

int
json_load_object_max(const char *text, size_t len, size_t max_values, json_t **root, bool *big,
		     char *err, size_t errlen)
{
	json_error_t jerr;
	enum scan_result scanned;
	size_t n_big;

	if (text == NULL || !starts_as_object(text, len)) {
		set_err(err, errlen, "not a JSON object");
		return -1;
	}
	/*
	 * JSON has no place for a raw NUL byte, but jansson silently drops one
	 * that directly follows a number or a literal ("1\0,") and accepts the
	 * text.  PostgreSQL gets the text as a C string: it would see it cut
	 * short and fail the whole batch.
	 */
	if (memchr(text, '\0', len) != NULL) {
		set_err(err, errlen, "invalid JSON: NUL byte");
		return -1;
	}
	scanned = scan_numbers(text, len, max_values, NULL, 0, &n_big);
	if (scanned == SCAN_TOO_MANY) {
		if (err != NULL && errlen > 0)
			snprintf(err, errlen, "more than %zu JSON values", max_values);
		return JSON_TOO_MANY_VALUES;
	}
	if (scanned == SCAN_BEYOND_NUMERIC) {
		set_err(err, errlen, "number out of range");
		return -1;
	}
	*root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	if (*root == NULL && n_big > 0 && json_error_code(&jerr) == json_error_numeric_overflow) {
		*root = load_sanitized(text, len, n_big, &jerr);
		*big = true;
	}
	if (*root == NULL) {
		jansson_err(err, errlen, &jerr);
		return -1;
	}
	if (!json_is_object(*root)) {
		set_err(err, errlen, "not a JSON object");
		return -1;
	}
	return 0;
}

/* --- finding a member in the raw text ------------------------------------ */

static size_t
skip_space(const char *text, size_t len, size_t i)
{
	while (i < len && is_json_space(text[i]))
		i++;
	return i;
}

/* The end of the value starting at I (a valid text), or LEN. */
static size_t
value_end(const char *text, size_t len, size_t i)
{
	size_t depth = 0;

	if (i >= len)
		return len;
	if (text[i] == '"')
		return string_end(text, len, i);
	if (text[i] != '{' && text[i] != '[') {
		while (i < len && text[i] != ',' && text[i] != '}' && text[i] != ']' &&
		       !is_json_space(text[i]))
			i++;
		return i;
	}
	for (; i < len; i++) {
		if (text[i] == '"') {
			i = string_end(text, len, i) - 1;
		} else if (text[i] == '{' || text[i] == '[') {
			depth++;
		} else if ((text[i] == '}' || text[i] == ']') && --depth == 0) {
			return i + 1;
		}
	}
	return len;
}

/*
 * In the object starting at I, the member KEY (written without escapes):
 * returns the end of its value and sets *vstart, or returns 0.
 */
static size_t
object_member(const char *text, size_t len, size_t i, const char *key, size_t *vstart)
{
	size_t klen = strlen(key);

	if (i >= len || text[i] != '{')
		return 0;
	for (i = skip_space(text, len, i + 1); i < len && text[i] == '"';) {
		size_t kend = string_end(text, len, i), v;
		bool match = kend - i == klen + 2 && memcmp(text + i + 1, key, klen) == 0;

		i = skip_space(text, len, kend);
		if (i >= len || text[i] != ':')
			return 0;
		v = skip_space(text, len, i + 1);
		i = value_end(text, len, v);
		if (match && i > v && i <= len) {
			*vstart = v;
			return i;
		}
		i = skip_space(text, len, i);
		if (i >= len || text[i] != ',')
			return 0;
		i = skip_space(text, len, i + 1);
	}
	return 0;
}

int
json_member(const char *text, size_t len, const char *const *path, size_t depth, size_t *start,
	    size_t *vlen)
{
	size_t i = skip_space(text, len, 0), end = 0;

	for (size_t d = 0; d < depth; d++) {
		end = object_member(text, len, i, path[d], &i);
		if (end == 0)
			return -1;
	}
	if (depth == 0)
		return -1;
	*start = i;
	*vlen = end - i;
	return 0;
}
