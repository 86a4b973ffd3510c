/*
 * message.c - the message envelope (PROTOCOL.md sections 3 and 4) as a
 * struct trade_event.
 *
 * The text is parsed by jansson with duplicate keys rejected and integers
 * kept as 64-bit; the fields the tables need are then picked out.  Nothing
 * in the payload but msgId and type is required: an unknown topic, an
 * absent status or an unreadable orderId leave a field empty, they do not
 * lose the message.
 *
 * Numbers get one small scanner, scan_numbers(), that walks the number
 * tokens outside strings.  It serves twice:
 *
 *  - before anything is accepted, it rejects numbers PostgreSQL's numeric
 *    could not store (too many digits, too large an exponent), so that a
 *    message we acknowledge can never make the batch that stores it fail;
 *  - when jansson refuses the text because a number does not fit (an
 *    integer beyond int64 or a real beyond double, anywhere, even in a
 *    field we never read), it writes a copy with exactly those numbers
 *    quoted as strings, which jansson then accepts.  Only numbers in value
 *    position are quoted (it keeps a stack of open containers to tell an
 *    array's ',' from an object's), so quoting can never turn an invalid
 *    text into a valid one: a string is legal exactly where a number is.
 *    The raw text, stored as jsonb, is never changed.
 *
 * Whether a number "does not fit" mirrors jansson's own lexer: an integer
 * (no fraction, no exponent) outside int64, or a real whose strtod() value
 * overflows to infinity.
 */
#include "message.h"

#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SEND_TIME_LEN  19			/* "YYYY-MM-DD HH:MM:SS" */
#define GMT_BORN_LIMIT INT64_C(253402300800000) /* 10000-01-01T00:00:00Z in ms */
#define SCAN_MAX_DEPTH 2048			/* jansson's default parsing depth limit */
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

/* scan_numbers()'s state: the copy being written and the open containers. */
struct scan {
	char *out;  /* NULL when only counting */
	size_t cap; /* bytes at OUT */
	size_t o;
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
static int scan_numbers(const char *text, size_t len, char *out, size_t cap, size_t *n_big);
static bool starts_as_object(const char *text, size_t len);
static void jansson_err(char *err, size_t errlen, const json_error_t *jerr);
static json_t *load_sanitized(const char *text, size_t len, size_t n_big, json_error_t *jerr);
static bool parse_digits(const char *s, size_t n, int64_t *out);
static bool json_int64(const json_t *v, int64_t *out);
static const char *extract_msg_id(const json_t *root, struct trade_event *ev);
static const char *extract_type(const json_t *root, struct trade_event *ev);
static int dup_string(const json_t *obj, const char *key, char **out);
static void extract_gmt_born(const json_t *root, struct trade_event *ev);
static bool is_leap(int year);
static int read_int(const char *s, size_t n);
static bool valid_send_time(const char *s);
static int extract_send_time(const json_t *data, char **out);
static const char *add_order(struct trade_event *ev, const json_t *v);
static const char *add_order_items(struct trade_event *ev, const json_t *model);
static const char *extract_orders(const json_t *data, struct trade_event *ev);
static const char *extract(const json_t *root, struct trade_event *ev);

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

/* PostgreSQL numeric could not take it (MESSAGE_MAX_* are within its limits). */
static bool
beyond_numeric(const struct number *num)
{
	return num->int_len + num->frac_len > MESSAGE_MAX_NUMBER_DIGITS ||
	       num->exponent > MESSAGE_MAX_EXPONENT || num->exponent < -MESSAGE_MAX_EXPONENT;
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
	char buf[MESSAGE_MAX_NUMBER_DIGITS + 32];
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
 * Walk TEXT's number tokens outside strings.  Returns -1 when one is beyond
 * what PostgreSQL stores; otherwise 0 with *N_BIG the count of numbers in
 * value position that jansson cannot hold.  When OUT is not NULL (CAP
 * bytes: LEN + 2 * *N_BIG, as a counting pass found), TEXT is copied into
 * it with those numbers quoted.
 */
static int
scan_numbers(const char *text, size_t len, char *out, size_t cap, size_t *n_big)
{
	struct scan s = {.out = out, .cap = cap};
	size_t i = 0;

	*n_big = 0;
	while (i < len) {
		char c = text[i];

		if (c == '"') {
			size_t end = string_end(text, len, i);

			emit(&s, text + i, end - i);
			i = end;
			s.prev = '"';
		} else if (c == '-' || is_digit(c)) {
			struct number num;
			bool quote;

			lex_number(text + i, len - i, &num);
			if (beyond_numeric(&num))
				return -1;
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
			track_container(&s, c);
			if (!is_json_space(c))
				s.prev = c;
			emit(&s, text + i, 1);
			i++;
		}
	}
	return 0;
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
	if (scan_numbers(text, len, copy, copy_len, &check) < 0 || check != n_big) {
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
message_load_object(const char *text, size_t len, json_t **root, bool *big, char *err,
		    size_t errlen)
{
	json_error_t jerr;
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
	if (scan_numbers(text, len, NULL, 0, &n_big) < 0) {
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

/* 1 to 19 decimal digits whose value fits int64. */
static bool
parse_digits(const char *s, size_t n, int64_t *out)
{
	uint64_t v = 0;

	if (n == 0 || n > 19)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (!is_digit(s[i]))
			return false;
		v = v * 10 + (uint64_t)(s[i] - '0'); /* < 10^19 < 2^64 */
	}
	if (v > INT64_MAX)
		return false;
	*out = (int64_t)v;
	return true;
}

/* A JSON integer, or a string of digits (the wire's ids, or one we quoted). */
static bool
json_int64(const json_t *v, int64_t *out)
{
	if (json_is_integer(v)) {
		*out = (int64_t)json_integer_value(v);
		return true;
	}
	if (json_is_string(v))
		return parse_digits(json_string_value(v), json_string_length(v), out);
	return false;
}

static const char *
extract_msg_id(const json_t *root, struct trade_event *ev)
{
	const json_t *v = json_object_get(root, "msgId");

	if (v == NULL || json_is_null(v))
		return "missing msgId";
	if (!json_int64(v, &ev->msg_id))
		return "msgId is not a 64-bit integer";
	return NULL;
}

static const char *
extract_type(const json_t *root, struct trade_event *ev)
{
	const json_t *v = json_object_get(root, "type");

	if (!json_is_string(v) || json_string_length(v) == 0)
		return "missing type";
	ev->type = strdup(json_string_value(v));
	return ev->type != NULL ? NULL : "out of memory";
}

/* OBJ[KEY] copied if it is a string; anything else counts as absent. */
static int
dup_string(const json_t *obj, const char *key, char **out)
{
	const json_t *v = json_object_get(obj, key);

	if (!json_is_string(v))
		return 0;
	*out = strdup(json_string_value(v));
	return *out != NULL ? 0 : -1;
}

static void
extract_gmt_born(const json_t *root, struct trade_event *ev)
{
	const json_t *v = json_object_get(root, "gmtBorn");
	json_int_t ms;

	if (!json_is_integer(v))
		return;
	ms = json_integer_value(v);
	/* A timestamptz PostgreSQL takes and a human would believe. */
	if (ms >= 0 && ms < GMT_BORN_LIMIT) {
		ev->has_gmt_born = true;
		ev->gmt_born_ms = (int64_t)ms;
	}
}

static bool
is_leap(int year)
{
	return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
}

/* N digits at S, already checked to be digits. */
static int
read_int(const char *s, size_t n)
{
	int v = 0;

	for (size_t i = 0; i < n; i++)
		v = v * 10 + (s[i] - '0');
	return v;
}

/* Exactly "YYYY-MM-DD HH:MM:SS", a real date, year 1 to 9999. */
static bool
valid_send_time(const char *s)
{
	static const char shape[] = "dddd-dd-dd dd:dd:dd";
	static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	int year, month, day, month_days;

	for (size_t i = 0; i < SEND_TIME_LEN; i++)
		if (shape[i] == 'd' ? !is_digit(s[i]) : s[i] != shape[i])
			return false;
	year = read_int(s, 4);
	month = read_int(s + 5, 2);
	day = read_int(s + 8, 2);
	if (year < 1 || month < 1 || month > 12)
		return false;
	month_days = days[month - 1] + (month == 2 && is_leap(year));
	return day >= 1 && day <= month_days && read_int(s + 11, 2) < 24 &&
	       read_int(s + 14, 2) < 60 && read_int(s + 17, 2) < 60;
}

/* data.msgSendTime as ISO 8601 at +08:00; an invalid one is simply left out. */
static int
extract_send_time(const json_t *data, char **out)
{
	const json_t *v = json_object_get(data, "msgSendTime");
	const char *s;

	if (!json_is_string(v) || json_string_length(v) != SEND_TIME_LEN)
		return 0;
	s = json_string_value(v);
	if (!valid_send_time(s))
		return 0;
	*out = malloc(SEND_TIME_LEN + sizeof("+08:00"));
	if (*out == NULL)
		return -1;
	memcpy(*out, s, SEND_TIME_LEN);
	(*out)[10] = 'T';
	memcpy(*out + SEND_TIME_LEN, "+08:00", sizeof("+08:00"));
	return 0;
}

/* Add V as an order id unless it is not one (skipped) or already there. */
static const char *
add_order(struct trade_event *ev, const json_t *v)
{
	size_t n = ev->n_order_ids;
	int64_t id, *grown;

	if (!json_int64(v, &id) || id <= 0)
		return NULL;
	for (size_t i = 0; i < n; i++)
		if (ev->order_ids[i] == id)
			return NULL;
	if (n == MESSAGE_MAX_ORDERS)
		return "too many orders";
	/* The capacity is the next power of two: grow when N reaches it. */
	if ((n & (n - 1)) == 0) {
		grown = realloc(ev->order_ids, (n == 0 ? 1 : 2 * n) * sizeof(*grown));
		if (grown == NULL)
			return "out of memory";
		ev->order_ids = grown;
	}
	ev->order_ids[ev->n_order_ids++] = id;
	return NULL;
}

/* MODEL.orderLogsItems[].orderId, the logistics topics' orders. */
static const char *
add_order_items(struct trade_event *ev, const json_t *model)
{
	const json_t *items = json_object_get(model, "orderLogsItems");
	const char *why = NULL;
	size_t i;
	json_t *item;

	json_array_foreach(items, i, item)
	{
		why = add_order(ev, json_object_get(item, "orderId"));
		if (why != NULL)
			break;
	}
	return why;
}

/* In order of first appearance: data.orderId, batchPay, then logistics. */
static const char *
extract_orders(const json_t *data, struct trade_event *ev)
{
	const json_t *batch = json_object_get(data, "batchPay");
	const char *why = add_order(ev, json_object_get(data, "orderId"));
	size_t i;
	json_t *entry;

	json_array_foreach(batch, i, entry)
	{
		if (why != NULL)
			break;
		why = add_order(ev, json_object_get(entry, "orderId"));
	}
	if (why == NULL)
		why = add_order_items(ev, json_object_get(data, "OrderLogisticsTracingModel"));
	if (why == NULL)
		why = add_order_items(ev, json_object_get(data, "MailNoChangeModel"));
	return why;
}

static const char *
extract(const json_t *root, struct trade_event *ev)
{
	const json_t *data;
	const char *why;

	why = extract_msg_id(root, ev);
	if (why == NULL)
		why = extract_type(root, ev);
	if (why != NULL)
		return why;
	if (dup_string(root, "topicGroup", &ev->topic_group) < 0 ||
	    dup_string(root, "topicName", &ev->topic_name) < 0 ||
	    dup_string(root, "userInfo", &ev->user_info) < 0)
		return "out of memory";
	extract_gmt_born(root, ev);
	data = json_object_get(root, "data");
	/* A data string holding JSON is left alone: parsing it twice buys nothing. */
	if (!json_is_object(data))
		return NULL;
	if (dup_string(data, "currentStatus", &ev->current_status) < 0 ||
	    extract_send_time(data, &ev->msg_send_time) < 0)
		return "out of memory";
	return extract_orders(data, ev);
}

int
message_parse(const char *text, size_t len, struct trade_event *ev, char *err, size_t errlen)
{
	json_t *root = NULL;
	const char *why;

	memset(ev, 0, sizeof(*ev));
	set_err(err, errlen, "");
	if (message_load_object(text, len, &root, &ev->big_numbers, err, errlen) < 0) {
		json_decref(root);
		trade_event_free(ev);
		return -1;
	}
	why = extract(root, ev);
	json_decref(root);
	if (why != NULL) {
		set_err(err, errlen, why);
		trade_event_free(ev);
		return -1;
	}
	return 0;
}

void
trade_event_free(struct trade_event *ev)
{
	if (ev == NULL)
		return;
	free(ev->type);
	free(ev->topic_group);
	free(ev->topic_name);
	free(ev->user_info);
	free(ev->current_status);
	free(ev->msg_send_time);
	free(ev->order_ids);
	memset(ev, 0, sizeof(*ev));
}
