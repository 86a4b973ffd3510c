/*
 * gateway.c - the 1688 gateway's call convention (see gateway.h,
 * GATEWAY-1688.md s.1).
 *
 * Signing: the parameters sent (key set, value non-empty, not
 * _aop_signature) are checked for a missing or repeated key, then sorted
 * by their joined key+value bytes - the official order of s.1.4 step 3,
 * which differs from sorting by key when one key is a prefix of another
 * (a=z, ab=1 gives "ab1az", by key "azab1") - and appended to the url path.
 * The HMAC and its hex are signature.c's, the push signature's, which is
 * the same HMAC-SHA1 in upper-case hex.  The values signed are the raw
 * ones: the body encodes them afterwards.
 *
 * The body is written in two passes over the same code (count, then copy),
 * so its length is exact and nothing is re-allocated: a buffer holding a
 * token is never moved, and gateway_wipe_free() wipes every copy there was.
 *
 * Classifying: the answer is loaded with json.c's loader (bounded values,
 * duplicate keys refused); the gateway's error fields are snake case
 * (error_code, error_message, request_id: s.1.6, with HTTP 4xx/5xx), an
 * API's own camel case (errorCode, errorMessage, success: with HTTP 200).
 * The rules are gateway.h's, in its order.  Whatever the answer says goes
 * into a verdict's text only through put_quoted(), which replaces each
 * string to redact wherever it starts in the whole source (before any cut,
 * so no prefix of a secret survives truncation), writes control bytes as
 * '?' and cuts only between UTF-8 sequences.
 */
#include "gateway.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/crypto.h>

#include "json.h"
#include "signature.h"

#define REDACTED "[redacted]"

const char *const gateway_default_throttle_codes[] = {"gw.QosAppFrequencyLimit", NULL};

/* A parameter that is sent, with its lengths. */
struct entry {
	const char *key;
	size_t key_len;
	const char *value;
	size_t value_len;
};

/* The sent parameters of a call, sorted for the signature. */
struct entries {
	struct entry *e;
	size_t n;
	size_t joined_len; /* the sum of key_len + value_len */
};

/* A bounded text being written; FULL once something did not fit. */
struct text {
	char *buf;
	size_t cap;
	size_t n;
	bool full;
};

static bool segment_ok(const char *s);
static bool is_sent(const struct gateway_param *p);
static int compare_keys(const void *a, const void *b);
static unsigned char joined_byte(const struct entry *e, size_t i);
static int compare_joined(const void *a, const void *b);
static enum status collect(const struct gateway_param *params, size_t n, struct entries *out);
static size_t encode(char *out, const char *s, size_t n);
static size_t put_pair(char *out, const char *key, const char *value, bool first);
static void text_init(struct text *t, char *buf, size_t cap);
static void put(struct text *t, const char *s, size_t n);
static void putf(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static const char *redacted_at(const char *s, const char *const *redact);
static void put_quoted(struct text *t, const char *src, const struct gateway_rules *rules);
static bool listed(const char *code, const char *const *list);
static bool mentions_token(const char *code);
static void code_of(json_t *answer, const struct gateway_rules *rules, struct gateway_verdict *v);
static const char *message_of(json_t *answer);
static bool says_failure(json_t *answer);
static enum gateway_outcome judge(int http_status, json_t *answer, const char *code,
				  const struct gateway_rules *rules);
static void explain(json_t *answer, const struct gateway_rules *rules, struct gateway_verdict *v);

/* A path segment that needs no escaping and cannot climb: A-Z a-z 0-9 . _ - */
static bool
segment_ok(const char *s)
{
	if (s == NULL || *s == '\0' || strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
		return false;
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-'))
			return false;
	}
	return true;
}

int
gateway_api_path(char *out, size_t cap, const char *protocol, const char *ns, const char *name,
		 int version, const char *app_key)
{
	int n;

	if (cap == 0)
		return -1;
	out[0] = '\0';
	if (!segment_ok(protocol) || !segment_ok(ns) || !segment_ok(name) || !segment_ok(app_key) ||
	    version < 1)
		return -1;
	n = snprintf(out, cap, "%s/%d/%s/%s/%s", protocol, version, ns, name, app_key);
	if (n < 0 || (size_t)n >= cap) {
		out[0] = '\0';
		return -1;
	}
	return 0;
}

int
gateway_url(char *out, size_t cap, const char *base, const char *url_path)
{
	size_t scheme, len;
	int n;

	if (cap == 0)
		return -1;
	out[0] = '\0';
	if (base == NULL || url_path == NULL || url_path[0] == '\0' || url_path[0] == '/')
		return -1;
	scheme = strncmp(base, "https://", 8) == 0 ? 8 : strncmp(base, "http://", 7) == 0 ? 7 : 0;
	len = strlen(base);
	while (len > scheme && base[len - 1] == '/')
		len--;
	if (scheme == 0 || len == scheme || base[scheme] == '/')
		return -1;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)base[i] <= ' ' || base[i] == '?' || base[i] == '#' ||
		    base[i] == 0x7f)
			return -1;
	n = snprintf(out, cap, "%.*s/%s", (int)len, base, url_path);
	if (n < 0 || (size_t)n >= cap) {
		out[0] = '\0';
		return -1;
	}
	return 0;
}

/* Sent: it has a value (s.1.4 step 5), and it is not the signature itself. */
static bool
is_sent(const struct gateway_param *p)
{
	return p->value != NULL && p->value[0] != '\0' &&
	       strcmp(p->key, GATEWAY_SIGNATURE_KEY) != 0;
}

static int
compare_keys(const void *a, const void *b)
{
	const struct gateway_param *x = *(const struct gateway_param *const *)a;
	const struct gateway_param *y = *(const struct gateway_param *const *)b;

	return strcmp(x->key, y->key);
}

static unsigned char
joined_byte(const struct entry *e, size_t i)
{
	return (unsigned char)(i < e->key_len ? e->key[i] : e->value[i - e->key_len]);
}

/* Byte order of key+value as one string, a prefix before what it begins. */
static int
compare_joined(const void *a, const void *b)
{
	const struct entry *x = a, *y = b;
	size_t lx = x->key_len + x->value_len, ly = y->key_len + y->value_len;
	size_t n = lx < ly ? lx : ly;

	for (size_t i = 0; i < n; i++) {
		unsigned char cx = joined_byte(x, i), cy = joined_byte(y, i);

		if (cx != cy)
			return cx < cy ? -1 : 1;
	}
	return (lx > ly) - (lx < ly);
}

/*
 * The sent parameters of PARAMS, sorted by joined key+value, in *out
 * (out->e malloc'd).  Every key, sent or not, must be set and unique.
 */
static enum status
collect(const struct gateway_param *params, size_t n, struct entries *out)
{
	const struct gateway_param **by_key;
	enum status st = STATUS_OK;

	*out = (struct entries){0};
	if (n > SIZE_MAX / sizeof(*out->e) - 1)
		return STATUS_NOMEM;
	for (size_t i = 0; i < n; i++)
		if (params[i].key == NULL || params[i].key[0] == '\0')
			return STATUS_PERMANENT;
	/* +1: malloc(0) may return NULL, which would read as out of memory. */
	by_key = malloc((n + 1) * sizeof(*by_key));
	out->e = malloc((n + 1) * sizeof(*out->e));
	if (by_key == NULL || out->e == NULL) {
		st = STATUS_NOMEM;
		goto done;
	}
	for (size_t i = 0; i < n; i++)
		by_key[i] = &params[i];
	qsort(by_key, n, sizeof(*by_key), compare_keys);
	for (size_t i = 1; i < n; i++)
		if (strcmp(by_key[i - 1]->key, by_key[i]->key) == 0)
			st = STATUS_PERMANENT;
	for (size_t i = 0; i < n && st == STATUS_OK; i++) {
		struct entry e;

		if (!is_sent(&params[i]))
			continue;
		e = (struct entry){params[i].key, strlen(params[i].key), params[i].value,
				   strlen(params[i].value)};
		/* Room for the url path and for every byte encoded as %XX. */
		if (e.key_len + e.value_len > SIZE_MAX / 4 - out->joined_len) {
			st = STATUS_NOMEM;
			break;
		}
		out->e[out->n++] = e;
		out->joined_len += e.key_len + e.value_len;
	}
	qsort(out->e, out->n, sizeof(*out->e), compare_joined);
done:
	free(by_key);
	if (st != STATUS_OK) {
		free(out->e);
		*out = (struct entries){0};
	}
	return st;
}

enum status
gateway_signed_string(const char *url_path, const struct gateway_param *params, size_t n,
		      char **out, size_t *len)
{
	struct entries s;
	size_t path_len, total;
	enum status st;
	char *p;

	*out = NULL;
	*len = 0;
	if (url_path == NULL)
		return STATUS_PERMANENT;
	st = collect(params, n, &s);
	if (st != STATUS_OK)
		return st;
	path_len = strlen(url_path);
	total = path_len + s.joined_len;
	p = malloc(total + 1);
	if (p == NULL) {
		free(s.e);
		return STATUS_NOMEM;
	}
	memcpy(p, url_path, path_len);
	*out = p;
	p += path_len;
	for (size_t i = 0; i < s.n; i++) {
		memcpy(p, s.e[i].key, s.e[i].key_len);
		memcpy(p + s.e[i].key_len, s.e[i].value, s.e[i].value_len);
		p += s.e[i].key_len + s.e[i].value_len;
	}
	*p = '\0';
	*len = total;
	free(s.e);
	return STATUS_OK;
}

enum status
gateway_sign(const char *url_path, const struct gateway_param *params, size_t n, const char *secret,
	     char hex[GATEWAY_SIGNATURE_LEN + 1])
{
	unsigned char mac[SIGNATURE_MAC_LEN];
	enum status st;
	char *data;
	size_t len;

	hex[0] = '\0';
	if (secret == NULL)
		return STATUS_PERMANENT;
	st = gateway_signed_string(url_path, params, n, &data, &len);
	if (st != STATUS_OK)
		return st;
	if (signature_mac(secret, strlen(secret), data, len, mac) < 0)
		st = STATUS_ERROR;
	else
		signature_hex(mac, hex);
	gateway_wipe_free(data, len);
	return st;
}

/* N bytes of S form-encoded at OUT (NULL: only counted); their length. */
static size_t
encode(char *out, const char *s, size_t n)
{
	static const char digits[] = "0123456789ABCDEF";
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		bool keep = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			    (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' || c == '~';

		if (keep || c == ' ') {
			if (out != NULL)
				out[o] = keep ? (char)c : '+';
			o++;
		} else {
			if (out != NULL) {
				out[o] = '%';
				out[o + 1] = digits[c >> 4];
				out[o + 2] = digits[c & 15];
			}
			o += 3;
		}
	}
	return o;
}

/* "[&]key=value" at OUT (NULL: only counted); its length. */
static size_t
put_pair(char *out, const char *key, const char *value, bool first)
{
	size_t o = 0;

	if (!first) {
		if (out != NULL)
			out[o] = '&';
		o++;
	}
	o += encode(out != NULL ? out + o : NULL, key, strlen(key));
	if (out != NULL)
		out[o] = '=';
	o++;
	o += encode(out != NULL ? out + o : NULL, value, strlen(value));
	return o;
}

enum status
gateway_form(const struct gateway_param *params, size_t n, const char *signature, char **body,
	     size_t *len)
{
	struct entries check;
	enum status st;
	char *out = NULL;

	*body = NULL;
	*len = 0;
	/* The same refusals as the signature's: what is sent is what was signed. */
	st = collect(params, n, &check);
	free(check.e);
	if (st != STATUS_OK)
		return st;
	/* Pass 0 counts, pass 1 writes into exactly that much. */
	for (int pass = 0; pass < 2; pass++) {
		size_t o = 0;

		for (size_t i = 0; i < n; i++)
			if (is_sent(&params[i]))
				o += put_pair(out != NULL ? out + o : NULL, params[i].key,
					      params[i].value, o == 0);
		if (signature != NULL)
			o += put_pair(out != NULL ? out + o : NULL, GATEWAY_SIGNATURE_KEY,
				      signature, o == 0);
		if (pass == 0 && (out = malloc(o + 1)) == NULL)
			return STATUS_NOMEM;
		out[o] = '\0';
		*len = o;
	}
	*body = out;
	return STATUS_OK;
}

enum status
gateway_call_body(const struct gateway_call *call, char **body, size_t *len)
{
	char hex[GATEWAY_SIGNATURE_LEN + 1], stamp[24];
	struct gateway_param *all;
	size_t n = 0;
	enum status st;

	*body = NULL;
	*len = 0;
	if (call->n_params > SIZE_MAX / sizeof(*all) - 2)
		return STATUS_NOMEM;
	all = malloc((call->n_params + 2) * sizeof(*all));
	if (all == NULL)
		return STATUS_NOMEM;
	for (size_t i = 0; i < call->n_params; i++)
		all[n++] = call->params[i];
	if (call->access_token != NULL)
		all[n++] = (struct gateway_param){GATEWAY_ACCESS_TOKEN_KEY, call->access_token};
	if (call->timestamp_ms >= 0) {
		snprintf(stamp, sizeof(stamp), "%lld", (long long)call->timestamp_ms);
		all[n++] = (struct gateway_param){GATEWAY_TIMESTAMP_KEY, stamp};
	}
	st = gateway_sign(call->url_path, all, n, call->secret, hex);
	if (st == STATUS_OK)
		st = gateway_form(all, n, hex, body, len);
	free(all);
	return st;
}

void
gateway_wipe_free(char *p, size_t len)
{
	if (p == NULL)
		return;
	OPENSSL_cleanse(p, len);
	free(p);
}

int
gateway_date(char out[GATEWAY_DATE_LEN + 1], int64_t epoch_ms, int offset_s)
{
	int64_t sec = epoch_ms / 1000, ms = epoch_ms % 1000;
	int off = offset_s < 0 ? -offset_s : offset_s;
	char buf[64];
	struct tm tm;
	time_t t;
	int n;

	out[0] = '\0';
	if (offset_s % 60 != 0 || off > 18 * 3600)
		return -1;
	if (ms < 0) {
		ms += 1000;
		sec--;
	}
	t = (time_t)(sec + offset_s);
	/* Four digits of year, as the format has. */
	if (gmtime_r(&t, &tm) == NULL || tm.tm_year + 1900 < 0 || tm.tm_year + 1900 > 9999)
		return -1;
	n = snprintf(buf, sizeof(buf), "%04d%02d%02d%02d%02d%02d%03d%c%02d%02d", tm.tm_year + 1900,
		     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)ms,
		     offset_s < 0 ? '-' : '+', off / 3600, off / 60 % 60);
	if (n != GATEWAY_DATE_LEN)
		return -1;
	memcpy(out, buf, GATEWAY_DATE_LEN + 1);
	return 0;
}

static void
text_init(struct text *t, char *buf, size_t cap)
{
	*t = (struct text){buf, cap, 0, false};
	buf[0] = '\0';
}

/* N bytes of our own text, all or none. */
static void
put(struct text *t, const char *s, size_t n)
{
	if (t->full || n >= t->cap - t->n) {
		t->full = true;
		return;
	}
	memcpy(t->buf + t->n, s, n);
	t->n += n;
	t->buf[t->n] = '\0';
}

static void
putf(struct text *t, const char *fmt, ...)
{
	char tmp[128];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n >= 0)
		put(t, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

/* The string of REDACT that starts at S, or NULL. */
static const char *
redacted_at(const char *s, const char *const *redact)
{
	for (size_t i = 0; redact != NULL && redact[i] != NULL; i++) {
		size_t n = strlen(redact[i]);

		if (n > 0 && strncmp(s, redact[i], n) == 0)
			return redact[i];
	}
	return NULL;
}

/* SRC (the answer's words, valid UTF-8 from jansson): redacted, controls as '?'. */
static void
put_quoted(struct text *t, const char *src, const struct gateway_rules *rules)
{
	const char *const *redact = rules != NULL ? rules->redact : NULL;

	for (size_t i = 0; src[i] != '\0' && !t->full;) {
		const char *r = redacted_at(src + i, redact);
		unsigned char c = (unsigned char)src[i];
		size_t k = 1;

		if (r != NULL) {
			put(t, REDACTED, strlen(REDACTED));
			i += strlen(r);
			continue;
		}
		/* A whole UTF-8 sequence at a time, so a cut never splits one. */
		if (c >= 0xc0)
			while (k < 4 && ((unsigned char)src[i + k] & 0xc0) == 0x80)
				k++;
		if (c < 0x20 || c == 0x7f || (c >= 0x80 && c < 0xc0))
			put(t, "?", 1);
		else
			put(t, src + i, k);
		i += k;
	}
}

static bool
listed(const char *code, const char *const *list)
{
	for (size_t i = 0; list != NULL && list[i] != NULL; i++)
		if (strcmp(code, list[i]) == 0)
			return true;
	return false;
}

/* "token" in CODE, in any case: strcasestr() is a GNU extension. */
static bool
mentions_token(const char *code)
{
	for (; *code != '\0'; code++)
		if (strncasecmp(code, "token", 5) == 0)
			return true;
	return false;
}

/* error_code, else errorCode: a non-empty string or a non-zero integer. */
static void
code_of(json_t *answer, const struct gateway_rules *rules, struct gateway_verdict *v)
{
	static const char *const keys[] = {"error_code", "errorCode"};
	struct text t;

	text_init(&t, v->code, sizeof(v->code));
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]) && t.n == 0; i++) {
		json_t *c = json_object_get(answer, keys[i]);

		if (json_is_string(c))
			put_quoted(&t, json_string_value(c), rules);
		else if (json_is_integer(c) && json_integer_value(c) != 0)
			putf(&t, "%lld", (long long)json_integer_value(c));
	}
	/* A code is matched against lists: printable ASCII only. */
	for (size_t i = 0; i < t.n; i++)
		if ((unsigned char)v->code[i] > 0x7e)
			v->code[i] = '?';
}

/* The first message field s.1.6 names that the answer has. */
static const char *
message_of(json_t *answer)
{
	static const char *const keys[] = {"error_message", "errorMessage", "errorMsg", "errorInfo",
					   "extErrorMessage"};

	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		const char *m = json_string_value(json_object_get(answer, keys[i]));

		if (m != NULL && m[0] != '\0')
			return m;
	}
	return NULL;
}

/* success: false or "false" (the docs type it String, go1688 takes both). */
static bool
says_failure(json_t *answer)
{
	json_t *s = json_object_get(answer, "success");

	return json_is_false(s) ||
	       (json_is_string(s) && strcmp(json_string_value(s), "false") == 0);
}

static enum gateway_outcome
judge(int http_status, json_t *answer, const char *code, const struct gateway_rules *rules)
{
	const char *const *throttle = rules != NULL && rules->throttle_codes != NULL
					  ? rules->throttle_codes
					  : gateway_default_throttle_codes;

	if (http_status <= 0)
		return GATEWAY_RETRYABLE;
	if (code[0] != '\0' && listed(code, throttle))
		return GATEWAY_THROTTLED;
	/* No source names the token code (s.1.6, UNCERTAIN): its suggested rule. */
	if ((code[0] != '\0' &&
	     (listed(code, rules != NULL ? rules->token_codes : NULL) || mentions_token(code))) ||
	    http_status == 401)
		return GATEWAY_TOKEN;
	if (strncmp(code, "gw.", 3) == 0)
		return GATEWAY_PERMANENT;
	if (http_status == 429)
		return GATEWAY_THROTTLED;
	if (http_status == 408 || http_status >= 500)
		return GATEWAY_RETRYABLE;
	if (http_status < 200 || http_status > 299)
		return GATEWAY_PERMANENT;
	if (answer == NULL || code[0] != '\0' || says_failure(answer))
		return GATEWAY_RETRYABLE;
	return GATEWAY_OK;
}

/* v->why for a failure: what went wrong, the message, the status, the request id. */
static void
explain(json_t *answer, const struct gateway_rules *rules, struct gateway_verdict *v)
{
	const char *message = message_of(answer);
	const char *request_id = json_string_value(json_object_get(answer, "request_id"));
	bool ok_status = v->http_status >= 200 && v->http_status <= 299;
	struct text t;

	text_init(&t, v->why, sizeof(v->why));
	if (v->http_status <= 0) {
		putf(&t, "no answer from the gateway");
		return;
	}
	if (v->code[0] != '\0')
		putf(&t, "%s", v->code);
	else if (!ok_status)
		putf(&t, "HTTP %d from the gateway", v->http_status);
	else if (answer == NULL)
		putf(&t, "the gateway's answer is not a JSON object");
	else
		putf(&t, "success false");
	if (message != NULL) {
		putf(&t, ": ");
		put_quoted(&t, message, rules);
	}
	if (v->code[0] != '\0' || ok_status)
		putf(&t, " (HTTP %d)", v->http_status);
	if (request_id != NULL && request_id[0] != '\0') {
		putf(&t, " request_id ");
		put_quoted(&t, request_id, rules);
	}
}

enum gateway_outcome
gateway_classify_json(int http_status, json_t *answer, const struct gateway_rules *rules,
		      struct gateway_verdict *v)
{
	*v = (struct gateway_verdict){.http_status = http_status};
	if (!json_is_object(answer))
		answer = NULL;
	if (http_status > 0)
		code_of(answer, rules, v);
	v->outcome = judge(http_status, answer, v->code, rules);
	if (v->outcome != GATEWAY_OK)
		explain(answer, rules, v);
	return v->outcome;
}

enum gateway_outcome
gateway_classify(int http_status, const char *body, size_t len, const struct gateway_rules *rules,
		 struct gateway_verdict *v)
{
	json_t *answer = NULL;
	enum gateway_outcome o;
	char err[160];
	bool big = false;

	if (http_status <= 0 || body == NULL ||
	    json_load_object_max(body, len, GATEWAY_MAX_ANSWER_VALUES, &answer, &big, err,
				 sizeof(err)) < 0) {
		json_decref(answer);
		answer = NULL;
	}
	o = gateway_classify_json(http_status, answer, rules, v);
	json_decref(answer);
	return o;
}

const char *
gateway_outcome_name(enum gateway_outcome o)
{
	switch (o) {
	case GATEWAY_OK:
		return "ok";
	case GATEWAY_THROTTLED:
		return "throttled";
	case GATEWAY_TOKEN:
		return "token";
	case GATEWAY_RETRYABLE:
		return "retryable";
	case GATEWAY_PERMANENT:
		break;
	}
	return "permanent";
}
