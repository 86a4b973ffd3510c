/*
 * gateway.h - the call convention of 1688's own open-platform gateway
 * (gw.open.1688.com), as pure functions: no network, no clock, no state.
 *
 * A call is a POST of a form to <base>/<url path>, where the url path is
 * "param2/1/<namespace>/<api name>/<app key>" (GATEWAY-1688.md s.1.1).  The
 * form carries the API's parameters, the system parameters access_token and
 * _aop_timestamp (ms since the epoch) and _aop_signature: the upper-case hex
 * HMAC-SHA1, keyed with the app secret, of the url path followed by every
 * other parameter's key+value (the raw values, not their form encoding),
 * those strings sorted byte-wise as wholes (s.1.4).  Empty parameters are
 * left out of both the signature and the body (s.1.4 step 5).  Dates are
 * written yyyyMMddHHmmssSSS+hhmm (s.1.5); arrays and objects as JSON texts,
 * which the caller writes.  An answer is classified (s.1.6) into what the
 * caller should do: nothing (ok), back off (throttled), refresh the member's
 * token once (token), retry later (retryable) or give up (permanent).
 *
 * The caller passes the time, so every output is a function of the inputs
 * and the document's worked examples (s.7) are reproduced byte for byte by
 * tests/unit/test_gateway.c.  The string signed and the body hold the access
 * token: both are wiped before they are freed (gateway_wipe_free()), and no
 * text this module writes quotes a secret or a token.
 */
#ifndef RECEIVER_GATEWAY_H
#define RECEIVER_GATEWAY_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "util.h"

/* [upstream] gateway_url's default: the scheme, host and /openapi. */
#define GATEWAY_DEFAULT_BASE "https://gw.open.1688.com/openapi"

/* The request protocols of s.1.1 (API calls) and s.2.1-2.2 (getToken). */
#define GATEWAY_PROTOCOL_PARAM2 "param2"
#define GATEWAY_PROTOCOL_HTTP	"http"

#define GATEWAY_CONTENT_TYPE "application/x-www-form-urlencoded; charset=UTF-8"

/* The parameter names the gateway itself reads (s.1.3). */
#define GATEWAY_SIGNATURE_KEY	 "_aop_signature"
#define GATEWAY_TIMESTAMP_KEY	 "_aop_timestamp"
#define GATEWAY_ACCESS_TOKEN_KEY "access_token"

#define GATEWAY_SIGNATURE_LEN 40 /* hex digits */
#define GATEWAY_DATE_LEN      22 /* yyyyMMddHHmmssSSS+hhmm */

/*
 * An answer's JSON values are limited like the trade API's (tradeapi.c):
 * a page of 50 records is some 22,000 values.
 */
#define GATEWAY_MAX_ANSWER_VALUES 200000

/* One parameter; a NULL or empty VALUE is not sent (s.1.4 step 5). */
struct gateway_param {
	const char *key;
	const char *value;
};

/*
 * "<protocol>/<version>/<ns>/<name>/<app_key>" into OUT (CAP bytes).
 * Every segment must be of A-Z a-z 0-9 . _ - only (nothing that would need
 * escaping in a path), and neither empty, "." nor ".."; VERSION >= 1.  Returns 0, or -1
 * (bad segment, or OUT too small) with OUT empty.
 */
int gateway_api_path(char *out, size_t cap, const char *protocol, const char *ns, const char *name,
		     int version, const char *app_key);

/*
 * BASE + "/" + URL_PATH into OUT (CAP bytes); BASE is an http:// or
 * https:// URL without query or fragment, a trailing '/' ignored.
 * Returns 0, or -1 with OUT empty.
 */
int gateway_url(char *out, size_t cap, const char *base, const char *url_path);

/*
 * The string _aop_signature is computed over: URL_PATH, then key+value of
 * every sent parameter of PARAMS (N of them) but _aop_signature, those
 * strings sorted byte-wise.  *out is malloc'd, NUL-terminated, *len its
 * length; it may hold a token: gateway_wipe_free() it.  STATUS_OK,
 * STATUS_NOMEM, or STATUS_PERMANENT: a NULL or empty key, or a key sent
 * twice (a signature over an ambiguous form proves nothing).
 */
enum status gateway_signed_string(const char *url_path, const struct gateway_param *params,
				  size_t n, char **out, size_t *len);

/* HEX = the signature of that string under SECRET, upper-case hex.  As above. */
enum status gateway_sign(const char *url_path, const struct gateway_param *params, size_t n,
			 const char *secret, char hex[GATEWAY_SIGNATURE_LEN + 1]);

/*
 * The form body: each sent parameter of PARAMS in their order (but any
 * _aop_signature), then _aop_signature=SIGNATURE when it is not NULL.
 * Every byte but A-Z a-z 0-9 - . _ ~ is written %XX, a space '+'.  *body is
 * malloc'd (gateway_wipe_free() it), *len its length.  As above.
 */
enum status gateway_form(const struct gateway_param *params, size_t n, const char *signature,
			 char **body, size_t *len);

/* One signed call, all of its parts. */
struct gateway_call {
	const char *url_path;		    /* gateway_api_path()'s */
	const struct gateway_param *params; /* the API's own */
	size_t n_params;
	const char *access_token; /* NULL: not sent (the push.* APIs need none) */
	int64_t timestamp_ms;	  /* _aop_timestamp, wall-clock ms; < 0: not sent */
	const char *secret;	  /* the app secret */
};

/*
 * CALL's form body: its parameters, access_token, _aop_timestamp, then
 * _aop_signature over them all.  As gateway_form().
 */
enum status gateway_call_body(const struct gateway_call *call, char **body, size_t *len);

/* OPENSSL_cleanse() then free(): for the strings above, which hold tokens. */
void gateway_wipe_free(char *p, size_t len);

/*
 * EPOCH_MS at UTC offset OFFSET_S (a multiple of 60, within +-18 h) as
 * s.1.5 writes dates, "20250901180000000+0800", into OUT.  Returns 0, or -1.
 */
int gateway_date(char out[GATEWAY_DATE_LEN + 1], int64_t epoch_ms, int offset_s);

/* What the caller should do about an answer (s.1.6). */
enum gateway_outcome {
	GATEWAY_OK = 0,
	GATEWAY_THROTTLED, /* gw.QosAppFrequencyLimit, HTTP 429: back off, retry */
	GATEWAY_TOKEN,	   /* the access token is invalid or expired: refresh once, retry once */
	GATEWAY_RETRYABLE, /* no answer, HTTP 5xx, not JSON, a business error: retry as usual */
	GATEWAY_PERMANENT, /* any other gw.* code, another 4xx: retrying cannot fix it */
};

/*
 * The error codes that mean throttling or a bad token.  Which codes the
 * gateway sends is UNCERTAIN (s.1.6: no official list), so they are
 * settings; the lists are NULL-terminated, NULL meaning the defaults
 * below.  REDACT (NULL-terminated, may be NULL) lists the strings no text
 * may quote: the app's secrets and the token sent.
 */
struct gateway_rules {
	const char *const *throttle_codes; /* default: gw.QosAppFrequencyLimit */
	const char *const *token_codes;	   /* default: none beyond the rule below */
	const char *const *redact;
};

/* The defaults: s.1.6 names one throttling code and no token code. */
extern const char *const gateway_default_throttle_codes[];

struct gateway_verdict {
	enum gateway_outcome outcome;
	int http_status;
	/* error_code, else errorCode, as printable ASCII; "" when none */
	char code[64];
	/* "gw.QosAppFrequencyLimit: App call exceeds limited frequency (HTTP 400, request_id ...)"
	 */
	char why[256];
};

/*
 * Classify an answer: HTTP_STATUS (<= 0: none came) and its BODY (LEN
 * bytes).  In order: no answer is retryable; an error_code or errorCode
 * listed as throttling is throttled; one listed as a token error, or
 * containing "token" (any case), or HTTP 401 is token; any other gw.* code
 * is permanent; then HTTP 429 is throttled, 408 and 5xx retryable, any
 * other status but 2xx permanent; a 2xx whose body is no JSON object, or
 * carries an error code or success false (or "false"), is retryable (a
 * business error is retried as today's trade API's are); else ok.  Fills
 * *v (code, why: secret- and token-free, the answer's words as UTF-8 with
 * control bytes as '?') and returns v->outcome.
 */
enum gateway_outcome gateway_classify(int http_status, const char *body, size_t len,
				      const struct gateway_rules *rules, struct gateway_verdict *v);

/*
 * The same for an answer already loaded (ANSWER may be NULL: not a JSON
 * object), so a caller that reads the record too loads it once.
 */
enum gateway_outcome gateway_classify_json(int http_status, json_t *answer,
					   const struct gateway_rules *rules,
					   struct gateway_verdict *v);

/* "ok", "throttled", "token", "retryable", "permanent": for logs and metrics. */
const char *gateway_outcome_name(enum gateway_outcome o);

#endif
