/*
 * fuzz_message.c - libFuzzer target for message_parse() and
 * json_load_object() (receiver/json.c).
 *
 * The input is a `message` value as decoded from the form: any bytes, not
 * NUL-terminated (libFuzzer's buffer is exactly SIZE bytes, so ASan sees
 * any over-read).
 *
 * Invariants checked (abort() when one fails):
 *  - message_parse() returns 0 or -1;
 *  - on success: type is non-NULL and non-empty; every string is valid
 *    UTF-8 (store.c copies them into JSON unchecked); order ids are
 *    positive and distinct, at most MESSAGE_MAX_ORDERS, and order_ids is
 *    non-NULL when there are any; gmt_born_ms lies in 1970..9999 when
 *    has_gmt_born and is 0 otherwise; msg_send_time is NULL or exactly
 *    "YYYY-MM-DDTHH:MM:SS+08:00";
 *  - on failure: err is non-empty printable ASCII and *ev is all zero;
 *  - an accepted text, stored as it is and handed to PostgreSQL as a C
 *    string, is valid UTF-8 without a NUL byte;
 *  - json_load_object() agrees: when it fails, message_parse() fails
 *    with the same reason, and *root is left NULL; when it succeeds, *root
 *    is an object and message_parse() either succeeds (with the same
 *    big_numbers) or fails for a reason about the envelope, not the JSON;
 *  - an independent oracle for the big-number rewrite: jansson itself
 *    locates each number it cannot hold (the error position), the number
 *    is quoted only if a plain 0 is accepted in its place, and the text is
 *    loaded again (a text with a raw NUL byte is never valid JSON, whatever
 *    jansson says).  json_load_object() must accept exactly the texts
 *    the oracle accepts (within the digit and exponent limits it enforces
 *    first), produce an equal tree, and set big exactly when the oracle
 *    quoted something;
 *  - its count of values is exact: an accepted text of V values (keys
 *    included, counted in jansson's tree) loads with json_load_object_max()
 *    at a limit of V, and is refused with JSON_TOO_MANY_VALUES at V - 1;
 *  - json_member() on an accepted text finds each key's value (and each
 *    key's one level down) within the text, and what it cuts out reads
 *    back equal to jansson's own value; it may miss a key written with
 *    escapes, never find a wrong one.
 */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include <jansson.h>

#include "json.h"
#include "message.h"

#include "fuzz.h"

/* The oracle gives up (checks nothing) beyond this many quoted numbers. */
#define ORACLE_MAX_QUOTES 64

static bool valid_str(const char *s);
static bool printable_ascii(const char *s);
static bool is_json_number(const char *p, size_t n);
static size_t number_start(const char *text, size_t end);
static int oracle_load(const char *text, size_t len, json_t **root, size_t *n_quoted);
static void check_event(const struct trade_event *ev);
static void check_oracle(const char *text, size_t len, int rc, json_t *root, bool big);

/*
 * N bytes of well-formed UTF-8 without NUL: no overlong forms, surrogates
 * or code points past U+10FFFF.  What PostgreSQL takes as text.
 */
/* A NUL-terminated string as fuzz_valid_utf8() sees it; NULL counts as valid. */
static bool
valid_str(const char *s)
{
	return s == NULL || fuzz_valid_utf8(s, strlen(s));
}

/* Within what an index entry can hold (NULL: absent). */
static bool
short_str(const char *s)
{
	return s == NULL || strlen(s) <= MESSAGE_MAX_FIELD_BYTES;
}

static bool
printable_ascii(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
			return false;
	return true;
}

/* Whether the N bytes at P are exactly one JSON number (RFC 8259 grammar). */
static bool
is_json_number(const char *p, size_t n)
{
	size_t i = 0, k;

	if (i < n && p[i] == '-')
		i++;
	if (i < n && p[i] == '0') {
		i++;
	} else {
		for (k = i; i < n && p[i] >= '0' && p[i] <= '9'; i++)
			;
		if (i == k || p[k] == '0')
			return false;
	}
	if (i < n && p[i] == '.') {
		for (k = ++i; i < n && p[i] >= '0' && p[i] <= '9'; i++)
			;
		if (i == k)
			return false;
	}
	if (i < n && (p[i] == 'e' || p[i] == 'E')) {
		i++;
		if (i < n && (p[i] == '+' || p[i] == '-'))
			i++;
		for (k = i; i < n && p[i] >= '0' && p[i] <= '9'; i++)
			;
		if (i == k)
			return false;
	}
	return i == n;
}

/*
 * The start of the number token jansson just read, ending at END.  What
 * precedes it may end in number-like bytes too ("true1e999": jansson lexes
 * the next token before the parser looks at it), so take the longest run
 * of such bytes and then the first start that makes a whole number.
 */
static size_t
number_start(const char *text, size_t end)
{
	size_t start = end;

	while (start > 0 && strchr("0123456789+-.eE", text[start - 1]) != NULL &&
	       text[start - 1] != '\0')
		start--;
	while (start < end && !is_json_number(text + start, end - start))
		start++;
	return start;
}

/*
 * Load TEXT as json_load_object() should, using jansson to find the
 * numbers.  Returns 1 with *root set, 0 when the text is refused, -1 when
 * the oracle gave up.
 */
static int
oracle_load(const char *text, size_t len, json_t **root, size_t *n_quoted)
{
	char *copy = fuzz_xmalloc(len);
	json_error_t jerr;
	int result = -1;

	memcpy(copy, text, len);
	*n_quoted = 0;
	/*
	 * No raw NUL byte is valid JSON, though jansson drops one right after
	 * a number or a literal (and its error positions then skip it).
	 */
	if (memchr(text, '\0', len) != NULL) {
		free(copy);
		return 0;
	}
	while (*n_quoted <= ORACLE_MAX_QUOTES) {
		size_t end, start;
		char *trial, *quoted;
		json_t *probe;

		*root = json_loadb(copy, len, JSON_REJECT_DUPLICATES, &jerr);
		if (*root != NULL) {
			result = 1;
			break;
		}
		if (json_error_code(&jerr) != json_error_numeric_overflow) {
			result = 0;
			break;
		}
		end = (size_t)jerr.position;
		FUZZ_CHECK(end <= len);
		start = number_start(copy, end);
		FUZZ_CHECK(start < end);

		/* A 0 where the number was: does the error move past it? */
		trial = fuzz_xmalloc(len);
		memcpy(trial, copy, len);
		trial[start] = '0';
		memset(trial + start + 1, ' ', end - start - 1);
		probe = json_loadb(trial, len, JSON_REJECT_DUPLICATES, &jerr);
		free(trial);
		if (probe == NULL && (size_t)jerr.position <= end) {
			result = 0; /* no number is allowed here: not a value */
			break;
		}
		json_decref(probe);

		quoted = fuzz_xmalloc(len + 2);
		memcpy(quoted, copy, start);
		quoted[start] = '"';
		memcpy(quoted + start + 1, copy + start, end - start);
		quoted[end + 1] = '"';
		memcpy(quoted + end + 2, copy + end, len - end);
		free(copy);
		copy = quoted;
		len += 2;
		++*n_quoted;
	}
	free(copy);
	return result;
}

static void
check_event(const struct trade_event *ev)
{
	static const char shape[] = "dddd-dd-ddTdd:dd:dd+08:00";

	FUZZ_CHECK(ev->type != NULL && ev->type[0] != '\0');
	FUZZ_CHECK(valid_str(ev->type) && valid_str(ev->topic_group) && valid_str(ev->topic_name) &&
		   valid_str(ev->user_info) && valid_str(ev->current_status));
	FUZZ_CHECK(short_str(ev->type) && short_str(ev->topic_group) && short_str(ev->topic_name) &&
		   short_str(ev->user_info) && short_str(ev->current_status));
	FUZZ_CHECK(ev->n_order_ids <= MESSAGE_MAX_ORDERS);
	FUZZ_CHECK(ev->n_order_ids == 0 || ev->order_ids != NULL);
	for (size_t i = 0; i < ev->n_order_ids; i++) {
		FUZZ_CHECK(ev->order_ids[i] > 0);
		for (size_t j = 0; j < i; j++)
			FUZZ_CHECK(ev->order_ids[i] != ev->order_ids[j]);
	}
	if (ev->has_gmt_born)
		FUZZ_CHECK(ev->gmt_born_ms >= 0 && ev->gmt_born_ms < INT64_C(253402300800000));
	else
		FUZZ_CHECK(ev->gmt_born_ms == 0);
	if (ev->msg_send_time != NULL) {
		FUZZ_CHECK(strlen(ev->msg_send_time) == sizeof(shape) - 1);
		for (size_t i = 0; i < sizeof(shape) - 1; i++) {
			char c = ev->msg_send_time[i];

			FUZZ_CHECK(shape[i] == 'd' ? c >= '0' && c <= '9' : c == shape[i]);
		}
	}
}

static void
check_oracle(const char *text, size_t len, int rc, json_t *root, bool big)
{
	json_t *want = NULL;
	size_t n_quoted;
	int oracle = oracle_load(text, len, &want, &n_quoted);

	if (oracle < 0)
		return;
	FUZZ_CHECK((rc == 0) == (oracle == 1));
	if (rc == 0) {
		FUZZ_CHECK(json_equal(root, want));
		FUZZ_CHECK(big == (n_quoted > 0));
	}
	json_decref(want);
}

/*
 * json_member() on a text json_load_object() accepted: whatever it finds
 * for a key of ROOT, one level down too, lies inside the text and is that
 * very value (jansson reads the cut bytes back equal).  A key written with
 * escapes may be not found; it must never be found wrong.
 */
static void
check_members(const char *text, size_t size, json_t *root)
{
	const char *key, *inner;
	json_t *value, *sub;

	json_object_foreach(root, key, value)
	{
		const char *path[2] = {key, NULL};
		size_t start, n;

		if (json_member(text, size, path, 1, &start, &n) == 0) {
			json_t *cut;

			FUZZ_CHECK(start < size && n > 0 && n <= size - start);
			cut = json_loadb(text + start, n, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES,
					 NULL);
			FUZZ_CHECK(cut != NULL && json_equal(cut, value));
			json_decref(cut);
		}
		if (!json_is_object(value))
			continue;
		json_object_foreach(value, inner, sub)
		{
			path[1] = inner;
			if (json_member(text, size, path, 2, &start, &n) == 0) {
				json_t *cut =
				    json_loadb(text + start, n,
					       JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, NULL);

				FUZZ_CHECK(cut != NULL && json_equal(cut, sub));
				json_decref(cut);
			}
		}
	}
}

/* Values in V's tree, each key counted as one. */
static size_t
tree_values(json_t *v)
{
	const char *key;
	json_t *sub;
	size_t i, n = 1;

	if (json_is_object(v)) {
		json_object_foreach(v, key, sub) {
			n += 1 + tree_values(sub);
		}
	} else if (json_is_array(v)) {
		json_array_foreach(v, i, sub) {
			n += tree_values(sub);
		}
	}
	return n;
}

static void
check_value_limit(const char *text, size_t size, json_t *root)
{
	size_t values = tree_values(root);
	json_t *again = NULL;
	bool big = false;
	char err[64];

	FUZZ_CHECK(json_load_object_max(text, size, values, &again, &big, err, sizeof(err)) == 0);
	json_decref(again);
	again = NULL;
	FUZZ_CHECK(json_load_object_max(text, size, values - 1, &again, &big, err, sizeof(err)) ==
		   JSON_TOO_MANY_VALUES);
	FUZZ_CHECK(again == NULL);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data;
	char load_err[256] = "", err[256] = "";
	json_t *root = NULL;
	bool big = false;
	struct trade_event ev, zero;
	int load_rc, rc;

	load_rc = json_load_object(text, size, &root, &big, load_err, sizeof(load_err));
	FUZZ_CHECK(load_rc == 0 || load_rc == -1 || load_rc == JSON_TOO_MANY_VALUES);
	if (load_rc < 0) {
		FUZZ_CHECK(root == NULL);
		FUZZ_CHECK(load_err[0] != '\0' && printable_ascii(load_err));
	} else {
		FUZZ_CHECK(json_is_object(root));
		/* Stored as it is, passed to PostgreSQL as a C string. */
		FUZZ_CHECK(fuzz_valid_utf8(text, size));
		if (!big) /* jansson could not read a cut holding a quoted number back */
			check_members(text, size, root);
		check_value_limit(text, size, root);
	}
	/* Its own limits come first; past them the oracle decides validity. */
	if (strcmp(load_err, "number out of range") != 0 &&
	    strcmp(load_err, "not a JSON object") != 0 && load_rc != JSON_TOO_MANY_VALUES)
		check_oracle(text, size, load_rc, root, big);

	memset(&ev, 0x5a, sizeof(ev));
	rc = message_parse(text, size, &ev, err, sizeof(err));
	FUZZ_CHECK(rc == 0 || rc == -1);
	if (rc == 0) {
		FUZZ_CHECK(load_rc == 0);
		FUZZ_CHECK(ev.big_numbers == big);
		check_event(&ev);
		trade_event_free(&ev);
	} else {
		memset(&zero, 0, sizeof(zero));
		FUZZ_CHECK(memcmp(&ev, &zero, sizeof(ev)) == 0);
		FUZZ_CHECK(err[0] != '\0' && printable_ascii(err));
		if (load_rc < 0)
			FUZZ_CHECK(strcmp(err, load_err) == 0);
		else
			FUZZ_CHECK(strncmp(err, "invalid JSON", 12) != 0 &&
				   strcmp(err, "not a JSON object") != 0 &&
				   strcmp(err, "number out of range") != 0);
	}
	json_decref(root);
	return 0;
}
