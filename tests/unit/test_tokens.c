/*
 * test_tokens.c - sealing members' tokens (receiver/tokens.c): a round
 * trip, the format decrypted independently with OpenSSL's EVP calls and
 * associated data built here from tokens.h's description, every flipped
 * bit refused, a value under another row's or column's associated data or
 * another key refused, the key parser's refusals (which never quote the
 * key) and the wiping of keys and plaintexts.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "check.h"
#include "tokens.h"

/* Made-up keys: bytes 0x00..0x1f, and another. */
#define KEY_HEX	  "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
#define OTHER_HEX "DEADBEEFdeadbeef00112233445566778899AABBCCDDEEFF0123456789abcdef"
#define TOKEN	  "f14da3b8-2c0b-4a5e-9b3e-6f1f3c1f9d07"
#define REFRESH	  "479f9564-1e2f-4c7a-8d6b-2a9e8e0c4b11"

static struct tokens_key key_of(const char *hex);
static struct token_plain plain_of(const char *text);
static size_t seal(const struct tokens_key *k, const struct token_slot *slot, const char *text,
		   unsigned char *out);
static bool all_zero(const void *p, size_t n);
static bool contains(const void *hay, size_t n, const char *needle);
static size_t build_aad(unsigned char *aad, const char *app, const char *member,
			const char *column);
static int evp_open(const unsigned char *key, const unsigned char *in, size_t len,
		    const unsigned char *aad, size_t aad_len, unsigned char *out);

static const struct token_slot SHOP_A = {"shop", "b2b-2248544159", TOKEN_ACCESS};

static struct tokens_key
key_of(const char *hex)
{
	struct tokens_key k;
	const char *why = NULL;

	if (tokens_key_parse(&k, hex, &why) != STATUS_OK) {
		fprintf(stderr, "test key refused: %s\n", why);
		abort();
	}
	return k;
}

static struct token_plain
plain_of(const char *text)
{
	struct token_plain p;
	const char *why = NULL;

	if (tokens_plain_set(&p, text, strlen(text), &why) != STATUS_OK) {
		fprintf(stderr, "test token refused: %s\n", why);
		abort();
	}
	return p;
}

/* TEXT sealed for SLOT into OUT (TOKENS_SEALED_MAX); its length. */
static size_t
seal(const struct tokens_key *k, const struct token_slot *slot, const char *text,
     unsigned char *out)
{
	struct token_plain p = plain_of(text);
	const char *why = NULL;
	size_t len = 0;

	if (tokens_seal(k, slot, &p, out, TOKENS_SEALED_MAX, &len, &why) != STATUS_OK) {
		fprintf(stderr, "seal failed: %s\n", why);
		abort();
	}
	tokens_plain_wipe(&p);
	return len;
}

static bool
all_zero(const void *p, size_t n)
{
	const unsigned char *b = p;

	for (size_t i = 0; i < n; i++)
		if (b[i] != 0)
			return false;
	return true;
}

static bool
contains(const void *hay, size_t n, const char *needle)
{
	size_t k = strlen(needle);

	for (size_t i = 0; i + k <= n; i++)
		if (memcmp((const char *)hay + i, needle, k) == 0)
			return true;
	return false;
}

/* The associated data exactly as tokens.h describes it, built byte by byte. */
static size_t
build_aad(unsigned char *aad, const char *app, const char *member, const char *column)
{
	const char *parts[] = {app, member, column};
	size_t n = 0;

	memcpy(aad, "receiver member_tokens\0\x01", 24);
	n = 24;
	for (size_t i = 0; i < 3; i++) {
		size_t len = strlen(parts[i]);

		aad[n++] = (unsigned char)(len >> 8);
		aad[n++] = (unsigned char)len;
		memcpy(aad + n, parts[i], len);
		n += len;
	}
	return n;
}

/* AES-256-GCM decryption of the documented layout: the plaintext's length, or -1. */
static int
evp_open(const unsigned char *key, const unsigned char *in, size_t len, const unsigned char *aad,
	 size_t aad_len, unsigned char *out)
{
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	unsigned char tag[16];
	int n = 0, fin = 0, ok;

	memcpy(tag, in + len - 16, 16);
	ok = ctx != NULL && in[0] == 0x01 &&
	     EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) == 1 &&
	     EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, 12, NULL) == 1 &&
	     EVP_DecryptInit_ex(ctx, NULL, NULL, key, in + 1) == 1 &&
	     EVP_DecryptUpdate(ctx, NULL, &n, aad, (int)aad_len) == 1 &&
	     EVP_DecryptUpdate(ctx, out, &n, in + 13, (int)(len - 29)) == 1 &&
	     EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, 16, tag) == 1 &&
	     EVP_DecryptFinal_ex(ctx, out + n, &fin) == 1;
	EVP_CIPHER_CTX_free(ctx);
	return ok ? n + fin : -1;
}

static void
test_round_trip(void)
{
	struct tokens_key k = key_of(KEY_HEX);
	struct token_slot refresh = {"shop", "b2b-2248544159", TOKEN_REFRESH};
	unsigned char a[TOKENS_SEALED_MAX], b[TOKENS_SEALED_MAX];
	size_t alen = seal(&k, &SHOP_A, TOKEN, a), blen = seal(&k, &refresh, REFRESH, b);
	struct token_plain p;
	const char *why = NULL;

	CHECK_INT(alen, strlen(TOKEN) + 29);
	CHECK_INT(blen, strlen(REFRESH) + 29);
	CHECK_INT(a[0], 0x01);
	CHECK(!contains(a, alen, TOKEN));
	CHECK_INT(tokens_open(&k, &SHOP_A, a, alen, &p, &why), STATUS_OK);
	CHECK_STR(p.text, TOKEN);
	CHECK_INT(p.len, strlen(TOKEN));
	CHECK_INT(tokens_open(&k, &refresh, b, blen, &p, &why), STATUS_OK);
	CHECK_STR(p.text, REFRESH);
	tokens_plain_wipe(&p);
	tokens_key_wipe(&k);
}

/* A fresh nonce each time: the same token sealed twice shares no nonce. */
static void
test_fresh_nonce(void)
{
	struct tokens_key k = key_of(KEY_HEX);
	unsigned char a[TOKENS_SEALED_MAX], b[TOKENS_SEALED_MAX];
	size_t alen = seal(&k, &SHOP_A, TOKEN, a), blen = seal(&k, &SHOP_A, TOKEN, b);

	CHECK_INT(alen, blen);
	CHECK(memcmp(a + 1, b + 1, TOKENS_NONCE_LEN) != 0);
	CHECK(memcmp(a + 13, b + 13, alen - 13) != 0);
	tokens_key_wipe(&k);
}

/* OpenSSL alone, with the layout and associated data of tokens.h, opens it. */
static void
test_format_is_documented_gcm(void)
{
	struct tokens_key k = key_of(KEY_HEX);
	unsigned char sealed[TOKENS_SEALED_MAX], aad[256], out[TOKENS_SEALED_MAX];
	size_t len = seal(&k, &SHOP_A, TOKEN, sealed);
	size_t aad_len = build_aad(aad, "shop", "b2b-2248544159", "access_token");
	int n = evp_open(k.bytes, sealed, len, aad, aad_len, out);

	CHECK_INT(n, strlen(TOKEN));
	CHECK(n > 0 && memcmp(out, TOKEN, (size_t)n) == 0);
	/* The same bytes under the other column's associated data: refused. */
	aad_len = build_aad(aad, "shop", "b2b-2248544159", "refresh_token");
	CHECK_INT(evp_open(k.bytes, sealed, len, aad, aad_len, out), -1);
	tokens_key_wipe(&k);
}

/* Every single bit: version, nonce, ciphertext, tag. */
static void
test_every_flipped_bit_is_refused(void)
{
	struct tokens_key k = key_of(KEY_HEX);
	unsigned char sealed[TOKENS_SEALED_MAX];
	size_t len = seal(&k, &SHOP_A, TOKEN, sealed);
	int refused = 0;

	for (size_t i = 0; i < len; i++) {
		for (int bit = 0; bit < 8; bit++) {
			struct token_plain p;
			const char *why = NULL;

			sealed[i] ^= (unsigned char)(1u << bit);
			if (tokens_open(&k, &SHOP_A, sealed, len, &p, &why) == STATUS_PERMANENT &&
			    all_zero(&p, sizeof(p)) && why != NULL)
				refused++;
			sealed[i] ^= (unsigned char)(1u << bit);
		}
	}
	CHECK_INT(refused, (long long)len * 8);
	{
		struct token_plain p;
		const char *why = NULL;

		CHECK_INT(tokens_open(&k, &SHOP_A, sealed, len, &p, &why), STATUS_OK);
		tokens_plain_wipe(&p);
	}
	tokens_key_wipe(&k);
}

/* Moved to another member, app or column, it does not open. */
static void
test_other_row_or_column_is_refused(void)
{
	struct tokens_key k = key_of(KEY_HEX);
	const struct token_slot others[] = {
	    {"shop", "b2b-2248544158", TOKEN_ACCESS},
	    {"shop", "b2b-2248544159x", TOKEN_ACCESS},
	    {"dj", "b2b-2248544159", TOKEN_ACCESS},
	    {"shop", "b2b-2248544159", TOKEN_REFRESH},
	    /* The same bytes framed otherwise: lengths are in the associated data. */
	    {"shopb", "2b-2248544159", TOKEN_ACCESS},
	};
	unsigned char sealed[TOKENS_SEALED_MAX];
	size_t len = seal(&k, &SHOP_A, TOKEN, sealed);

	for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++) {
		struct token_plain p;
		const char *why = NULL;

		CHECK_INT(tokens_open(&k, &others[i], sealed, len, &p, &why), STATUS_PERMANENT);
		CHECK(all_zero(&p, sizeof(p)));
		CHECK(why != NULL && strstr(why, TOKEN) == NULL);
	}
	tokens_key_wipe(&k);
}

static void
test_wrong_key_is_refused(void)
{
	struct tokens_key k = key_of(KEY_HEX), other = key_of(OTHER_HEX);
	unsigned char sealed[TOKENS_SEALED_MAX];
	size_t len = seal(&k, &SHOP_A, TOKEN, sealed);
	struct token_plain p;
	const char *why = NULL;

	CHECK_INT(tokens_open(&other, &SHOP_A, sealed, len, &p, &why), STATUS_PERMANENT);
	CHECK(all_zero(&p, sizeof(p)));
	tokens_key_wipe(&k);
	tokens_key_wipe(&other);
}

/* Too short, too long, another version: no sealed value, and said so. */
static void
test_malformed_values_are_refused(void)
{
	struct tokens_key k = key_of(KEY_HEX);
	unsigned char sealed[TOKENS_SEALED_MAX + 1];
	size_t len = seal(&k, &SHOP_A, TOKEN, sealed);
	struct token_plain p;
	const char *why = NULL;

	CHECK_INT(tokens_open(&k, &SHOP_A, sealed, TOKENS_OVERHEAD, &p, &why), STATUS_PERMANENT);
	CHECK_INT(tokens_open(&k, &SHOP_A, sealed, len - 1, &p, &why), STATUS_PERMANENT);
	CHECK_INT(tokens_open(&k, &SHOP_A, sealed, TOKENS_SEALED_MAX + 1, &p, &why),
		  STATUS_PERMANENT);
	sealed[0] = 0x02;
	CHECK_INT(tokens_open(&k, &SHOP_A, sealed, len, &p, &why), STATUS_PERMANENT);
	CHECK(all_zero(&p, sizeof(p)));
	tokens_key_wipe(&k);
}

static void
test_key_parse(void)
{
	struct tokens_key k = key_of(KEY_HEX), upper = key_of(OTHER_HEX);

	for (size_t i = 0; i < TOKENS_KEY_LEN; i++)
		CHECK_INT(k.bytes[i], i);
	CHECK_INT(upper.bytes[0], 0xde);
	CHECK_INT(upper.bytes[4], 0xde);
	CHECK_INT(upper.bytes[31], 0xef);
	tokens_key_wipe(&k);
	CHECK(all_zero(&k, sizeof(k)));
	tokens_key_wipe(&upper);
}

/* 63 and 65 digits, a non-hex digit anywhere, empty: refused, never quoted. */
static void
test_key_parse_refusals(void)
{
	char bad[8][80];
	size_t n = 0;

	snprintf(bad[n++], 80, "%.63s", OTHER_HEX);
	snprintf(bad[n++], 80, "%s0", OTHER_HEX);
	snprintf(bad[n++], 80, "%.63sg", OTHER_HEX);
	snprintf(bad[n++], 80, "x%.63s", OTHER_HEX + 1);
	snprintf(bad[n++], 80, "%.31s %.32s", OTHER_HEX, OTHER_HEX + 32);
	snprintf(bad[n++], 80, "0x%.62s", OTHER_HEX);
	snprintf(bad[n++], 80, "%s", "");
	snprintf(bad[n++], 80, "%s\n", OTHER_HEX);
	for (size_t i = 0; i < n; i++) {
		struct tokens_key k;
		const char *why = NULL;

		memset(&k, 0xa5, sizeof(k));
		CHECK_INT(tokens_key_parse(&k, bad[i], &why), STATUS_PERMANENT);
		CHECK(why != NULL && strstr(why, "hex digits") != NULL);
		/* Not a piece of the value: its first 8 or its last 8 characters. */
		CHECK(why != NULL && strstr(why, "DEADBEEF") == NULL &&
		      strstr(why, "89abcdef") == NULL);
		/* A refusal half-way through leaves no byte of it behind. */
		CHECK(all_zero(&k, sizeof(k)));
	}
}

static void
test_plain_wipe(void)
{
	struct tokens_key k = key_of(KEY_HEX);
	unsigned char sealed[TOKENS_SEALED_MAX];
	size_t len = seal(&k, &SHOP_A, TOKEN, sealed);
	struct token_plain p;
	const char *why = NULL;

	CHECK_INT(tokens_open(&k, &SHOP_A, sealed, len, &p, &why), STATUS_OK);
	CHECK_STR(p.text, TOKEN);
	tokens_plain_wipe(&p);
	CHECK_INT(p.len, 0);
	CHECK(all_zero(p.text, sizeof(p.text)));
	CHECK(!contains(&p, sizeof(p), "f14da3b8"));
	tokens_key_wipe(&k);
}

static void
test_plain_set_refusals(void)
{
	static const char *const bad[] = {"",	     "tok en",	"token\n",
					  "tok\ten", "tok\x7f", "tok\xc3\xa9"};
	char big[TOKENS_TOKEN_MAX + 2];
	struct token_plain p;
	const char *why = NULL;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&p, 0xa5, sizeof(p));
		CHECK_INT(tokens_plain_set(&p, bad[i], strlen(bad[i]), &why), STATUS_PERMANENT);
		CHECK(all_zero(&p, sizeof(p)));
	}
	memset(big, 'x', sizeof(big));
	CHECK_INT(tokens_plain_set(&p, big, TOKENS_TOKEN_MAX + 1, &why), STATUS_PERMANENT);
	CHECK_INT(tokens_plain_set(&p, big, TOKENS_TOKEN_MAX, &why), STATUS_OK);
	CHECK_INT(p.len, TOKENS_TOKEN_MAX);
	CHECK_INT(p.text[TOKENS_TOKEN_MAX], '\0');
	tokens_plain_wipe(&p);
}

/* The longest token seals and opens in the buffers tokens.h sizes. */
static void
test_longest_token(void)
{
	struct tokens_key k = key_of(KEY_HEX);
	char big[TOKENS_TOKEN_MAX + 1];
	unsigned char sealed[TOKENS_SEALED_MAX];
	struct token_plain p;
	const char *why = NULL;
	size_t len;

	memset(big, 'y', TOKENS_TOKEN_MAX);
	big[TOKENS_TOKEN_MAX] = '\0';
	len = seal(&k, &SHOP_A, big, sealed);
	CHECK_INT(len, TOKENS_SEALED_MAX);
	CHECK_INT(tokens_open(&k, &SHOP_A, sealed, len, &p, &why), STATUS_OK);
	CHECK_STR(p.text, big);
	tokens_plain_wipe(&p);
	tokens_key_wipe(&k);
}

static void
test_seal_refusals(void)
{
	struct tokens_key k = key_of(KEY_HEX);
	struct token_plain p = plain_of(TOKEN), empty;
	const struct token_slot no_member = {"shop", "", TOKEN_ACCESS};
	const struct token_slot no_app = {"", "b2b-1", TOKEN_ACCESS};
	const struct token_slot spaced = {"shop", "b2b 1", TOKEN_ACCESS};
	unsigned char out[TOKENS_SEALED_MAX];
	const char *why = NULL;
	size_t len = 0;

	tokens_plain_wipe(&empty);
	CHECK_INT(tokens_seal(&k, &no_member, &p, out, sizeof(out), &len, &why), STATUS_PERMANENT);
	CHECK_INT(tokens_seal(&k, &no_app, &p, out, sizeof(out), &len, &why), STATUS_PERMANENT);
	CHECK_INT(tokens_seal(&k, &spaced, &p, out, sizeof(out), &len, &why), STATUS_PERMANENT);
	CHECK_INT(tokens_seal(&k, &SHOP_A, &empty, out, sizeof(out), &len, &why), STATUS_PERMANENT);
	CHECK_INT(tokens_seal(&k, &SHOP_A, &p, out, strlen(TOKEN) + 28, &len, &why),
		  STATUS_PERMANENT);
	CHECK_INT(len, 0);
	CHECK_INT(tokens_seal(&k, &SHOP_A, &p, out, strlen(TOKEN) + 29, &len, &why), STATUS_OK);
	CHECK_INT(len, strlen(TOKEN) + 29);
	tokens_plain_wipe(&p);
	tokens_key_wipe(&k);
}

static void
test_member_valid(void)
{
	char longest[TOKENS_MEMBER_MAX + 2];

	CHECK(tokens_member_valid("b2b-2248544159"));
	CHECK(tokens_member_valid("b2b-2217533334e9c00"));
	CHECK(!tokens_member_valid(""));
	CHECK(!tokens_member_valid("b2b 1"));
	CHECK(!tokens_member_valid("b2b-1\n"));
	CHECK(!tokens_member_valid("b2b-\xc3\xa9"));
	memset(longest, 'm', TOKENS_MEMBER_MAX);
	longest[TOKENS_MEMBER_MAX] = '\0';
	CHECK(tokens_member_valid(longest));
	strcat(longest, "m");
	CHECK(!tokens_member_valid(longest));
	CHECK_STR(tokens_column(TOKEN_ACCESS), "access_token");
	CHECK_STR(tokens_column(TOKEN_REFRESH), "refresh_token");
}

CHECK_MAIN("tokens", CHECK_TEST(test_round_trip), CHECK_TEST(test_fresh_nonce),
	   CHECK_TEST(test_format_is_documented_gcm), CHECK_TEST(test_every_flipped_bit_is_refused),
	   CHECK_TEST(test_other_row_or_column_is_refused), CHECK_TEST(test_wrong_key_is_refused),
	   CHECK_TEST(test_malformed_values_are_refused), CHECK_TEST(test_key_parse),
	   CHECK_TEST(test_key_parse_refusals), CHECK_TEST(test_plain_wipe),
	   CHECK_TEST(test_plain_set_refusals), CHECK_TEST(test_longest_token),
	   CHECK_TEST(test_seal_refusals), CHECK_TEST(test_member_valid))
