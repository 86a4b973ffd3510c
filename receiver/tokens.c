/*
 * tokens.c - seal and open members' tokens (see tokens.h for the format).
 *
 * AES-256-GCM through OpenSSL's EVP interface.  The nonce is 12 random
 * bytes (RAND_bytes) per sealed value: with random nonces one key may
 * seal about 2^32 values before a repeat becomes a real risk (NIST SP
 * 800-38D), and a receiver seals two values per refresh, a few a day per
 * member.  The associated data is fed in pieces (GCM takes any number of
 * AAD updates before the data), each string with its length before it, so
 * no two rows can produce the same associated data ("ab"+"c" vs "a"+"bc").
 * The version byte is in the associated data too: a value cannot be
 * relabelled as another format.
 *
 * The key's hex digits are read with form.c's form_hex_digit (the push
 * side's parsers are the outbound side's to use).  Nothing here allocates: the key, the cipher
 * context's key schedule (EVP_CIPHER_CTX_free cleanses it) and the plaintext all live where the
 * caller put them, and every path out wipes what it held.
 */
#include "tokens.h"

#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "form.h"

/* The associated data starts with these bytes, NUL included, then the version. */
static const char aad_label[] = "receiver member_tokens";

static bool printable(const char *s, size_t len);
static bool slot_valid(const struct token_slot *slot);
static int aad_piece(EVP_CIPHER_CTX *ctx, bool enc, const void *bytes, size_t len);
static int aad_string(EVP_CIPHER_CTX *ctx, bool enc, const char *s);
static int feed_aad(EVP_CIPHER_CTX *ctx, bool enc, const struct token_slot *slot);
static enum status seal_with(EVP_CIPHER_CTX *ctx, const struct tokens_key *key,
			     const struct token_slot *slot, const struct token_plain *p,
			     unsigned char *out, const char **why);
static enum status open_with(EVP_CIPHER_CTX *ctx, const struct tokens_key *key,
			     const struct token_slot *slot, const unsigned char *in, size_t len,
			     struct token_plain *p, const char **why);

enum status
tokens_key_parse(struct tokens_key *key, const char *hex, const char **why)
{
	size_t len = strnlen(hex, TOKENS_KEY_HEX_LEN + 1);

	tokens_key_wipe(key);
	if (len != TOKENS_KEY_HEX_LEN) {
		*why = "must be 64 hex digits (32 bytes, as `openssl rand -hex 32` prints them)";
		return STATUS_PERMANENT;
	}
	for (size_t i = 0; i < TOKENS_KEY_LEN; i++) {
		int hi = form_hex_digit((unsigned char)hex[2 * i]);
		int lo = form_hex_digit((unsigned char)hex[2 * i + 1]);

		if (hi < 0 || lo < 0) {
			tokens_key_wipe(key);
			*why = "must be hex digits only (0-9, a-f)";
			return STATUS_PERMANENT;
		}
		key->bytes[i] = (unsigned char)(hi << 4 | lo);
	}
	return STATUS_OK;
}

void
tokens_key_wipe(struct tokens_key *key)
{
	OPENSSL_cleanse(key, sizeof(*key));
}

static bool
printable(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
			return false;
	return true;
}

enum status
tokens_plain_set(struct token_plain *p, const char *text, size_t len, const char **why)
{
	tokens_plain_wipe(p);
	if (len == 0 || len > TOKENS_TOKEN_MAX) {
		*why = "a token is 1 to 1024 characters";
		return STATUS_PERMANENT;
	}
	if (!printable(text, len)) {
		*why = "a token is printable ASCII without spaces";
		return STATUS_PERMANENT;
	}
	memcpy(p->text, text, len);
	p->text[len] = '\0';
	p->len = len;
	return STATUS_OK;
}

void
tokens_plain_wipe(struct token_plain *p)
{
	OPENSSL_cleanse(p, sizeof(*p));
}

bool
tokens_member_valid(const char *id)
{
	size_t len = strnlen(id, TOKENS_MEMBER_MAX + 1);

	return len > 0 && len <= TOKENS_MEMBER_MAX && printable(id, len);
}

const char *
tokens_column(enum token_kind kind)
{
	return kind == TOKEN_ACCESS ? "access_token" : "refresh_token";
}

/* An app name longer than a u16 could not be framed; config.c takes any length. */
static bool
slot_valid(const struct token_slot *slot)
{
	return slot->app != NULL && slot->app[0] != '\0' && strlen(slot->app) <= 0xffff &&
	       slot->member_id != NULL && tokens_member_valid(slot->member_id) &&
	       (slot->kind == TOKEN_ACCESS || slot->kind == TOKEN_REFRESH);
}

/* One piece of associated data; 1, or 0 when OpenSSL failed. */
static int
aad_piece(EVP_CIPHER_CTX *ctx, bool enc, const void *bytes, size_t len)
{
	int outl;

	return enc ? EVP_EncryptUpdate(ctx, NULL, &outl, bytes, (int)len)
		   : EVP_DecryptUpdate(ctx, NULL, &outl, bytes, (int)len);
}

static int
aad_string(EVP_CIPHER_CTX *ctx, bool enc, const char *s)
{
	size_t len = strlen(s);
	const unsigned char frame[2] = {(unsigned char)(len >> 8), (unsigned char)len};

	return aad_piece(ctx, enc, frame, 2) && aad_piece(ctx, enc, s, len);
}

static int
feed_aad(EVP_CIPHER_CTX *ctx, bool enc, const struct token_slot *slot)
{
	const unsigned char version = TOKENS_VERSION;

	return aad_piece(ctx, enc, aad_label, sizeof(aad_label)) &&
	       aad_piece(ctx, enc, &version, 1) && aad_string(ctx, enc, slot->app) &&
	       aad_string(ctx, enc, slot->member_id) &&
	       aad_string(ctx, enc, tokens_column(slot->kind));
}

enum status
tokens_seal(const struct tokens_key *key, const struct token_slot *slot,
	    const struct token_plain *p, unsigned char *out, size_t cap, size_t *outlen,
	    const char **why)
{
	EVP_CIPHER_CTX *ctx;
	enum status st;

	if (!slot_valid(slot)) {
		*why = "no valid app and member id to bind the token to";
		return STATUS_PERMANENT;
	}
	if (p->len == 0 || p->len > TOKENS_TOKEN_MAX || cap < p->len + TOKENS_OVERHEAD) {
		*why = "no token, or no room for it sealed";
		return STATUS_PERMANENT;
	}
	ctx = EVP_CIPHER_CTX_new();
	if (ctx == NULL) {
		*why = "out of memory";
		return STATUS_NOMEM;
	}
	st = seal_with(ctx, key, slot, p, out, why);
	EVP_CIPHER_CTX_free(ctx);
	if (st != STATUS_OK)
		OPENSSL_cleanse(out, p->len + TOKENS_OVERHEAD);
	else
		*outlen = p->len + TOKENS_OVERHEAD;
	return st;
}

static enum status
seal_with(EVP_CIPHER_CTX *ctx, const struct tokens_key *key, const struct token_slot *slot,
	  const struct token_plain *p, unsigned char *out, const char **why)
{
	unsigned char *nonce = out + 1, *ct = nonce + TOKENS_NONCE_LEN, *tag = ct + p->len;
	int n = 0, fin = 0;

	out[0] = TOKENS_VERSION;
	if (RAND_bytes(nonce, TOKENS_NONCE_LEN) != 1) {
		*why = "no random bytes for a nonce";
		return STATUS_ERROR;
	}
	if (EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, TOKENS_NONCE_LEN, NULL) != 1 ||
	    EVP_EncryptInit_ex(ctx, NULL, NULL, key->bytes, nonce) != 1 ||
	    !feed_aad(ctx, true, slot) ||
	    EVP_EncryptUpdate(ctx, ct, &n, (const unsigned char *)p->text, (int)p->len) != 1 ||
	    EVP_EncryptFinal_ex(ctx, ct + n, &fin) != 1 || (size_t)(n + fin) != p->len ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, TOKENS_TAG_LEN, tag) != 1) {
		*why = "encryption failed (OpenSSL)";
		return STATUS_ERROR;
	}
	return STATUS_OK;
}

enum status
tokens_open(const struct tokens_key *key, const struct token_slot *slot, const unsigned char *in,
	    size_t len, struct token_plain *p, const char **why)
{
	EVP_CIPHER_CTX *ctx;
	enum status st;

	tokens_plain_wipe(p);
	if (!slot_valid(slot)) {
		*why = "no valid app and member id the token is bound to";
		return STATUS_PERMANENT;
	}
	if (len <= TOKENS_OVERHEAD || len > TOKENS_SEALED_MAX || in[0] != TOKENS_VERSION) {
		*why = "not a sealed token (unknown version or length)";
		return STATUS_PERMANENT;
	}
	ctx = EVP_CIPHER_CTX_new();
	if (ctx == NULL) {
		*why = "out of memory";
		return STATUS_NOMEM;
	}
	st = open_with(ctx, key, slot, in, len, p, why);
	EVP_CIPHER_CTX_free(ctx);
	if (st != STATUS_OK)
		tokens_plain_wipe(p);
	return st;
}

/* GCM releases the plaintext before the tag is checked: P is wiped on a bad tag. */
static enum status
open_with(EVP_CIPHER_CTX *ctx, const struct tokens_key *key, const struct token_slot *slot,
	  const unsigned char *in, size_t len, struct token_plain *p, const char **why)
{
	const unsigned char *nonce = in + 1, *ct = nonce + TOKENS_NONCE_LEN;
	size_t ct_len = len - TOKENS_OVERHEAD;
	/* The ctrl takes a non-const pointer, though it only reads the tag. */
	unsigned char tag[TOKENS_TAG_LEN];
	int n = 0, fin = 0;

	memcpy(tag, ct + ct_len, TOKENS_TAG_LEN);
	if (EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, TOKENS_NONCE_LEN, NULL) != 1 ||
	    EVP_DecryptInit_ex(ctx, NULL, NULL, key->bytes, nonce) != 1 ||
	    !feed_aad(ctx, false, slot) ||
	    EVP_DecryptUpdate(ctx, (unsigned char *)p->text, &n, ct, (int)ct_len) != 1 ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, TOKENS_TAG_LEN, tag) != 1) {
		*why = "decryption failed (OpenSSL)";
		return STATUS_ERROR;
	}
	if (EVP_DecryptFinal_ex(ctx, (unsigned char *)p->text + n, &fin) != 1) {
		*why = "the sealed token does not authenticate (another key, another row or "
		       "column, or altered)";
		return STATUS_PERMANENT;
	}
	p->len = (size_t)(n + fin);
	p->text[p->len] = '\0';
	return STATUS_OK;
}
