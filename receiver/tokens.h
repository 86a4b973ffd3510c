/*
 * tokens.h - members' OAuth tokens, encrypted for storage (member_tokens).
 *
 * A 1688 app fetches a buyer's orders with that buyer's access token, and a
 * token gives full access to the buyer's account, so the database only
 * ever holds them sealed: AES-256-GCM (OpenSSL EVP) under the key of
 * `[tokens] key` (64 hex digits, 32 bytes, as `openssl rand -hex 32` prints
 * them), a random 12-byte nonce per value, a 16-byte tag, and associated
 * data naming the value's row and column, so a sealed value copied to
 * another member, another app or the other column does not open.
 *
 * A sealed value (a bytea column of member_tokens, sql/008), version 1:
 *
 *   0x01 | nonce (12 bytes) | ciphertext (as long as the token) | tag (16)
 *
 * and its associated data, fed to GCM before the plaintext:
 *
 *   "receiver member_tokens" 0x00 0x01 |
 *   u16be(len app) app | u16be(len member_id) member_id |
 *   u16be(len column) column            (column: "access_token" or "refresh_token")
 *
 * Pure functions: no database, no event loop, no allocation.  Keys and
 * tokens in the clear live in caller memory (struct tokens_key, struct
 * token_plain) and are wiped with OPENSSL_cleanse after use.  Every
 * failure is an enum status with *why, a static text that never holds a
 * token or the key.
 */
#ifndef RECEIVER_TOKENS_H
#define RECEIVER_TOKENS_H

#include <stdbool.h>
#include <stddef.h>

#include "util.h"

#define TOKENS_KEY_LEN	   32 /* AES-256 */
#define TOKENS_KEY_HEX_LEN 64
#define TOKENS_VERSION	   0x01
#define TOKENS_NONCE_LEN   12
#define TOKENS_TAG_LEN	   16
#define TOKENS_OVERHEAD	   (1 + TOKENS_NONCE_LEN + TOKENS_TAG_LEN)

/* The longest token (1688's are 36-character UUIDs) and member id taken. */
#define TOKENS_TOKEN_MAX  1024
#define TOKENS_MEMBER_MAX 128

/* The buffer a sealed value of the longest token needs. */
#define TOKENS_SEALED_MAX (TOKENS_TOKEN_MAX + TOKENS_OVERHEAD)

/* Which column of member_tokens a value is for: part of what it is bound to. */
enum token_kind {
	TOKEN_ACCESS,  /* access_token */
	TOKEN_REFRESH, /* refresh_token */
};

/* The decoded `[tokens] key`. */
struct tokens_key {
	unsigned char bytes[TOKENS_KEY_LEN];
};

/* A token in the clear, NUL-terminated: on its user's stack, wiped after use. */
struct token_plain {
	char text[TOKENS_TOKEN_MAX + 1];
	size_t len;
};

/* The row a sealed value belongs to: app name and member id (see tokens_member_valid). */
struct token_slot {
	const char *app;
	const char *member_id;
	enum token_kind kind;
};

/*
 * Decode HEX, exactly 64 hex digits (either case), into KEY.  On failure
 * STATUS_PERMANENT, *why says what is wrong without quoting HEX, and KEY
 * holds nothing of it.
 */
enum status tokens_key_parse(struct tokens_key *key, const char *hex, const char **why);

/* Overwrite KEY with zeros: a key is always wiped once its user is done. */
void tokens_key_wipe(struct tokens_key *key);

/*
 * Copy the LEN bytes of TEXT into P: 1 to TOKENS_TOKEN_MAX printable ASCII
 * characters (0x21-0x7e; a token has no spaces, so a stray newline or a
 * pasted tab is refused, not stored).  STATUS_PERMANENT with *why
 * otherwise, and P is left wiped.
 */
enum status tokens_plain_set(struct token_plain *p, const char *text, size_t len, const char **why);

/* Overwrite P, every byte of its buffer, with zeros. */
void tokens_plain_wipe(struct token_plain *p);

/* True when ID can be a member id: 1 to TOKENS_MEMBER_MAX printable ASCII, no space. */
bool tokens_member_valid(const char *id);

/*
 * Seal P for SLOT under KEY into OUT (TOKENS_SEALED_MAX bytes always
 * suffice; CAP its size), *OUTLEN = P->len + TOKENS_OVERHEAD.  Each call
 * draws a fresh nonce.  STATUS_PERMANENT (a slot that is no valid app and
 * member, OUT too small) or STATUS_ERROR (OpenSSL failed), with *why.
 */
enum status tokens_seal(const struct tokens_key *key, const struct token_slot *slot,
			const struct token_plain *p, unsigned char *out, size_t cap, size_t *outlen,
			const char **why);

/*
 * Open the LEN bytes of a sealed value IN for SLOT under KEY into P.
 * STATUS_PERMANENT when it is no sealed value of this format, or does not
 * authenticate (another key, another row or column, altered bytes);
 * STATUS_ERROR when OpenSSL failed.  On failure P is left wiped.
 */
enum status tokens_open(const struct tokens_key *key, const struct token_slot *slot,
			const unsigned char *in, size_t len, struct token_plain *p,
			const char **why);

/* The column a kind is stored in: "access_token" or "refresh_token". */
const char *tokens_column(enum token_kind kind);

#endif
