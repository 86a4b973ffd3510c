/*
 * gen.c - pre-generates signed pushes for the benchmark (tests/bench/run.sh).
 *
 *   gen SECRET FIRST_MSGID COUNT NFILES PREFIX
 *
 * Writes COUNT form bodies, one per line, spread round-robin over the files
 * PREFIX.0 .. PREFIX.<NFILES-1> (one file per wrk thread, so no two threads
 * ever send the same push).  Body i is
 *
 *   message=<url-encoded envelope>&_aop_signature=<HMAC-SHA1, upper hex>
 *
 * exactly as the platform sends it (PROTOCOL.md section 2, the sorted-field
 * convention: HMAC over "message" + <envelope>), with msgId FIRST_MSGID + i
 * and an order id of its own, so every body is a new trade_events row and a
 * new reconcile_jobs row.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#define MAX_FILES  64
#define ORDER_BASE 2908059205527363456LL

static void
usage(void)
{
	fprintf(stderr, "usage: gen SECRET FIRST_MSGID COUNT NFILES PREFIX\n");
	exit(2);
}

static long long
parse_num(const char *s, long long min, long long max)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
		usage();
	return v;
}

/* Percent-encode everything but the RFC 3986 unreserved characters. */
static size_t
url_encode(const char *src, size_t n, char *dst)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)src[i];

		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '_' || c == '.' || c == '~') {
			dst[o++] = (char)c;
		} else {
			dst[o++] = '%';
			dst[o++] = hex[c >> 4];
			dst[o++] = hex[c & 15];
		}
	}
	return o;
}

int
main(int argc, char **argv)
{
	static const char hex[] = "0123456789ABCDEF";
	FILE *out[MAX_FILES];
	const char *secret;
	long long first, count, nfiles;
	char path[4096];

	if (argc != 6)
		usage();
	secret = argv[1];
	first = parse_num(argv[2], 1, INT64_MAX / 2);
	count = parse_num(argv[3], 1, 100000000);
	nfiles = parse_num(argv[4], 1, MAX_FILES);
	for (long long f = 0; f < nfiles; f++) {
		snprintf(path, sizeof(path), "%s.%lld", argv[5], f);
		out[f] = fopen(path, "w");
		if (out[f] == NULL) {
			fprintf(stderr, "gen: %s: %s\n", path, strerror(errno));
			return 1;
		}
		setvbuf(out[f], NULL, _IOFBF, 1 << 20);
	}
	for (long long i = 0; i < count; i++) {
		char canon[1024], body[4096];
		unsigned char mac[EVP_MAX_MD_SIZE];
		unsigned int mac_len = 0;
		size_t n;
		int len;

		/* The canonical string: "message" followed by the envelope. */
		len = snprintf(canon, sizeof(canon),
			       "message{\"data\":{\"buyerMemberId\":\"b2b-2217533334e9c00\","
			       "\"currentStatus\":\"waitsellersend\",\"orderId\":%lld,"
			       "\"sellerMemberId\":\"b2b-292931333434e\","
			       "\"msgSendTime\":\"2025-09-02 17:58:02\"},"
			       "\"gmtBorn\":1756807082000,\"msgId\":%lld,"
			       "\"type\":\"ORDER_BUYER_VIEW_ORDER_PAY\","
			       "\"userInfo\":\"b2b-2217533334e9c00\"}",
			       ORDER_BASE + i, first + i);
		if (len < 0 || (size_t)len >= sizeof(canon))
			return 1;
		if (HMAC(EVP_sha1(), secret, (int)strlen(secret), (const unsigned char *)canon,
			 (size_t)len, mac, &mac_len) == NULL ||
		    mac_len != 20) {
			fprintf(stderr, "gen: HMAC failed\n");
			return 1;
		}
		memcpy(body, "message=", 8);
		n = 8 + url_encode(canon + 7, (size_t)len - 7, body + 8);
		memcpy(body + n, "&_aop_signature=", 16);
		n += 16;
		for (unsigned int k = 0; k < mac_len; k++) {
			body[n++] = hex[mac[k] >> 4];
			body[n++] = hex[mac[k] & 15];
		}
		body[n++] = '\n';
		fwrite(body, 1, n, out[i % nfiles]);
	}
	for (long long f = 0; f < nfiles; f++) {
		if (fclose(out[f]) != 0) {
			fprintf(stderr, "gen: write failed: %s\n", strerror(errno));
			return 1;
		}
	}
	return 0;
}
