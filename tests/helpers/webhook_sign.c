/*
 * webhook_sign.c - the relay's signing code (receiver/webhook.c) on the
 * command line, so the integration tests can check it against the
 * reference library (tests/relay/verify.js, tests/relay/consumer.js).
 *
 *   webhook_sign ID TIMESTAMP SECRET [SECRET...] < BODY
 *
 * Reads the body from standard input as bytes, decodes every secret
 * ("whsec_..." only) and prints the `webhook-signature` header value,
 * one signature per secret in the order given, and a newline.  Exit 0;
 * 2 on bad usage or a malformed secret ("webhook_sign: secret N: WHY",
 * N counting from 1, never the secret itself); 1 when signing fails
 * (an id webhook_id_valid refuses).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "webhook.h"

static char *read_all(FILE *f, size_t *len);
static int parse_ts(const char *s, long long *ts);

/* Standard input to the end, malloc'd (NULL when out of memory or unreadable). */
static char *
read_all(FILE *f, size_t *len)
{
	size_t cap = 4096, n = 0, got;
	char *buf = malloc(cap), *bigger;

	while (buf != NULL && (got = fread(buf + n, 1, cap - n, f)) > 0) {
		n += got;
		if (n == cap) {
			bigger = realloc(buf, cap * 2);
			if (bigger == NULL)
				free(buf);
			buf = bigger;
			cap *= 2;
		}
	}
	if (buf != NULL && ferror(f)) {
		free(buf);
		buf = NULL;
	}
	*len = n;
	return buf;
}

static int
parse_ts(const char *s, long long *ts)
{
	char *end;

	errno = 0;
	*ts = strtoll(s, &end, 10);
	return errno == 0 && end != s && *end == '\0' ? 0 : -1;
}

int
main(int argc, char **argv)
{
	struct webhook_key *keys;
	size_t n, bad = 0, len = 0;
	const char *why = NULL;
	long long ts;
	char *body, *out;
	int rc = 0;

	if (argc < 4 || parse_ts(argv[2], &ts) < 0) {
		fprintf(stderr, "usage: webhook_sign ID TIMESTAMP SECRET [SECRET...] < BODY\n");
		return 2;
	}
	n = (size_t)argc - 3;
	keys = webhook_keys_new((const char *const *)argv + 3, n, &bad, &why);
	if (keys == NULL) {
		fprintf(stderr, "webhook_sign: secret %zu: %s\n", bad + 1, why);
		return 2;
	}
	body = read_all(stdin, &len);
	out = malloc(WEBHOOK_SIGNATURES_CAP(n));
	if (body == NULL || out == NULL) {
		fprintf(stderr, "webhook_sign: cannot read the body\n");
		rc = 1;
	} else if (webhook_signature(keys, n, argv[1], ts, body, len, out,
				     WEBHOOK_SIGNATURES_CAP(n)) < 0) {
		fprintf(stderr, "webhook_sign: cannot sign (is the id valid?)\n");
		rc = 1;
	} else {
		printf("%s\n", out);
	}
	webhook_keys_free(keys, n);
	free(body);
	free(out);
	return rc;
}
