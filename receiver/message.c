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
 * Loading is json.c's (json_load_object): numbers PostgreSQL could not
 * store are refused, numbers jansson cannot hold are kept, so a message
 * we acknowledge can never make the batch that stores it fail.
 */
#include "json.h"
#include "message.h"

#include <ctype.h>
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

_Static_assert(MESSAGE_MAX_FIELD_BYTES == 512, "the reasons below say 512 bytes");

#define SEND_TIME_LEN  19			/* "YYYY-MM-DD HH:MM:SS" */
#define GMT_BORN_LIMIT INT64_C(253402300800000) /* 10000-01-01T00:00:00Z in ms */

/* 1 to 19 decimal digits whose value fits int64. */
static bool
parse_digits(const char *s, size_t n, int64_t *out)
{
	uint64_t v = 0;

	if (n == 0 || n > 19)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (!isdigit((unsigned char)s[i]))
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
	if (json_string_length(v) > MESSAGE_MAX_FIELD_BYTES)
		return "type longer than 512 bytes";
	ev->type = strdup(json_string_value(v));
	return ev->type != NULL ? NULL : "out of memory";
}

/*
 * OBJ[KEY] copied if it is a string; anything else counts as absent.
 * Returns NULL, or why not: TOO_LONG beyond MESSAGE_MAX_FIELD_BYTES, or
 * out of memory.
 */
static const char *
dup_string(const json_t *obj, const char *key, const char *too_long, char **out)
{
	const json_t *v = json_object_get(obj, key);

	if (!json_is_string(v))
		return NULL;
	if (json_string_length(v) > MESSAGE_MAX_FIELD_BYTES)
		return too_long;
	*out = strdup(json_string_value(v));
	return *out != NULL ? NULL : "out of memory";
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
		if (shape[i] == 'd' ? !isdigit((unsigned char)s[i]) : s[i] != shape[i])
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
	if ((why = dup_string(root, "topicGroup", "topicGroup longer than 512 bytes",
			      &ev->topic_group)) != NULL ||
	    (why = dup_string(root, "topicName", "topicName longer than 512 bytes",
			      &ev->topic_name)) != NULL ||
	    (why = dup_string(root, "userInfo", "userInfo longer than 512 bytes",
			      &ev->user_info)) != NULL)
		return why;
	extract_gmt_born(root, ev);
	data = json_object_get(root, "data");
	/* A data string holding JSON is left alone: parsing it twice buys nothing. */
	if (!json_is_object(data))
		return NULL;
	why = dup_string(data, "currentStatus", "data.currentStatus longer than 512 bytes",
			 &ev->current_status);
	if (why != NULL)
		return why;
	if (extract_send_time(data, &ev->msg_send_time) < 0)
		return "out of memory";
	return extract_orders(data, ev);
}

int
message_parse(const char *text, size_t len, struct trade_event *ev, char *err, size_t errlen)
{
	json_t *root = NULL;
	const char *why;

	memset(ev, 0, sizeof(*ev));
	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (json_load_object(text, len, &root, &ev->big_numbers, err, errlen) < 0) {
		json_decref(root);
		trade_event_free(ev);
		return -1;
	}
	why = extract(root, ev);
	json_decref(root);
	if (why != NULL) {
		if (err != NULL && errlen > 0)
			snprintf(err, errlen, "%s", why);
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
