/*
 * message.h - the message envelope (PROTOCOL.md section 3 and 4) as a
 * trade event.
 *
 * message_parse() reads the envelope with jansson (duplicate keys rejected,
 * integers as 64-bit, never through a double) and extracts what the tables
 * need: msgId, type, the orders the payload names (ORDER_BUYER_VIEW_* topics'
 * orderId, ORDER_BATCH_PAY's string ids, the logistics topics'
 * orderLogsItems), currentStatus, gmtBorn and msgSendTime.  Unknown topics
 * are fine: they just name no orders unless data.orderId is present.
 *
 * jansson refuses a text holding an integer beyond 64 bits anywhere, even in
 * a field we do not use.  Such a genuine message must not be lost, so the
 * parser then retries on a copy in which each out-of-range number is quoted
 * as a string; the raw text, which PostgreSQL stores exactly as jsonb, is
 * never changed.  Numbers PostgreSQL could not store (more than
 * JSON_MAX_NUMBER_DIGITS digits, or an exponent beyond
 * JSON_MAX_EXPONENT: json.h) are an error, so no accepted message can make a
 * batch fail.
 */
#ifndef RECEIVER_MESSAGE_H
#define RECEIVER_MESSAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#define MESSAGE_MAX_ORDERS 1000
/*
 * type, topicGroup, topicName, userInfo and data.currentStatus longer than
 * this (in bytes, as UTF-8) are an error: genuine ones are a few dozen
 * bytes, and trade_events.type is indexed (a btree entry holds ~2.7 KB),
 * so a longer one could fail the whole batch it is in.
 */
#define MESSAGE_MAX_FIELD_BYTES 512

struct trade_event {
	int64_t msg_id;
	char *type;	      /* never NULL after a successful parse */
	char *topic_group;    /* NULL when absent */
	char *topic_name;     /* NULL when absent */
	char *user_info;      /* NULL when absent */
	char *current_status; /* data.currentStatus, NULL when absent */
	bool has_gmt_born;
	int64_t gmt_born_ms; /* epoch milliseconds, within year 1970..9999 */
	char *msg_send_time; /* "YYYY-MM-DDTHH:MM:SS+08:00" or NULL */
	int64_t *order_ids;  /* distinct, in order of first appearance */
	size_t n_order_ids;
	bool big_numbers; /* the text holds numbers jansson could not hold */
};

/*
 * Parse TEXT (LEN bytes, need not be NUL-terminated) into *ev.  Returns 0,
 * or -1 with a short reason in ERR ("not a JSON object", "missing msgId",
 * "msgId is not a 64-bit integer", "missing type", "invalid JSON: ...").
 * On error *ev is empty.
 */
int message_parse(const char *text, size_t len, struct trade_event *ev, char *err, size_t errlen);

void trade_event_free(struct trade_event *ev);

#endif
