/*
 * json.h - JSON texts that PostgreSQL will store exactly as they are.
 *
 * json_load_object() reads a JSON object with jansson the way every input
 * of the receiver must be read: duplicate keys are an error (two msgIds are
 * an attack, not data), integers stay 64-bit (never through a double),
 * a raw NUL byte is an error, and numbers PostgreSQL could not store (more
 * than JSON_MAX_NUMBER_DIGITS digits, or an exponent beyond
 * JSON_MAX_EXPONENT) are an error, so no accepted text can make the
 * statement that stores it fail.  jansson refuses a text holding an
 * integer beyond 64 bits anywhere, even in a field nobody reads: such a
 * text is still loaded, from a copy in which each such number is quoted as
 * a string (then *big is set).  The raw text is never changed.
 *
 * A text with more than a limit of values is refused before jansson builds
 * anything: jansson's tree costs 16 to some 230 bytes per value (an empty
 * object is the dearest), so the limit, not the text's length, bounds the
 * memory a load may take.  Every string counts, object keys included.
 */
#ifndef RECEIVER_JSON_H
#define RECEIVER_JSON_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#define JSON_MAX_NUMBER_DIGITS 1000
#define JSON_MAX_EXPONENT      1000

/*
 * json_load_object()'s limit, for push envelopes (read only once their
 * signature is verified): a message naming MESSAGE_MAX_ORDERS orders holds
 * some 10^4 values, a hundredth of it; a text of tiny values reaching it
 * costs jansson at most some 230 MB instead of gigabytes.
 */
#define JSON_MAX_VALUES 1000000

/* json_load_object_max()'s answer to a text of more than its limit of values. */
#define JSON_TOO_MANY_VALUES (-2)

/*
 * Load TEXT (LEN bytes, need not be NUL-terminated) as a JSON object.
 * Returns 0 with *root set, or -1 with a short reason in ERR ("not a JSON
 * object", "number out of range", "invalid JSON: ..."), or
 * JSON_TOO_MANY_VALUES (below).
 */
int json_load_object(const char *text, size_t len, json_t **root, bool *big, char *err,
		     size_t errlen);

/*
 * The same with at most MAX_VALUES values: beyond them, JSON_TOO_MANY_VALUES
 * ("more than N JSON values"), *root untouched.  json_load_object() is this
 * with JSON_MAX_VALUES.
 */
int json_load_object_max(const char *text, size_t len, size_t max_values, json_t **root, bool *big,
			 char *err, size_t errlen);

/*
 * In a text json_load_object() accepted, the bytes of the value at PATH
 * (DEPTH keys through nested objects, e.g. {"data", "result"}): *start and
 * *vlen, exactly as written.  Returns 0, or -1 when a key is missing (or
 * written with escapes) or a value on the way is not an object.
 */
int json_member(const char *text, size_t len, const char *const *path, size_t depth, size_t *start,
		size_t *vlen);

#endif
