/*
 * fuzz_config.c - libFuzzer target for toml_parse() (receiver/toml.c), the
 * reader under config_load().
 *
 * Only the TOML reader is fuzzed.  config.c has no from-memory entry point
 * (config_load() takes a path; the mapping onto struct config, load_doc(),
 * is static), and writing every input to a file would cost more than the
 * parse.  It would also let the fuzzer read any file or environment
 * variable through "file:" and "env:" values.
 *
 * The input is the file's bytes (not NUL-terminated: libFuzzer's buffer is
 * exactly SIZE bytes, so ASan sees any over-read).
 *
 * Invariants checked (abort() when one fails):
 *  - toml_parse() returns 0 or -1;
 *  - on failure: the document is empty; err.line is between 1 and the
 *    number of lines; err.msg is non-empty printable ASCII; err.key holds
 *    only key-name characters ("app[2].name"), so no string value can have
 *    leaked into it;
 *  - on success: the root table comes first (name "", line 1, not an array
 *    element); every other table has a non-empty bare name shorter than 64
 *    bytes; no name is both a root key and a table, a plain table twice, or
 *    a table and an array of tables; keys are non-empty bare names shorter
 *    than 64 bytes, unique within their table; headers and keys are on
 *    strictly increasing lines, in document order; strings are NUL-terminated
 *    at their length and valid UTF-8; arrays have items when they say so;
 *  - round trip: the document written back as TOML (every string a basic
 *    string, control bytes escaped) parses to an equal document.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "toml.h"

#include "fuzz.h"

/* A growing output buffer for the round trip. */
struct out {
	char *p;
	size_t len, cap;
};

static bool is_bare(const char *s, size_t n);
static void check_string(const struct toml_string *s);
static void check_error(const struct toml_error *err, const char *text, size_t len);
static void check_doc(const struct toml_doc *doc);
static void put(struct out *o, const char *p, size_t n);
static void put_string(struct out *o, const struct toml_string *s);
static void put_value(struct out *o, const struct toml_value *v);
static bool same_string(const struct toml_string *a, const struct toml_string *b);
static bool same_value(const struct toml_value *a, const struct toml_value *b);
static void check_round_trip(const struct toml_doc *doc);

static bool
is_bare(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '-'))
			return false;
	}
	return true;
}

/* Well-formed UTF-8 (NUL allowed: "\u0000" is legal TOML). */
static void
check_string(const struct toml_string *s)
{
	FUZZ_CHECK(s->ptr != NULL);
	FUZZ_CHECK(s->ptr[s->len] == '\0');
	FUZZ_CHECK(fuzz_valid_utf8(s->ptr, s->len));
}

static void
check_error(const struct toml_error *err, const char *text, size_t len)
{
	int lines = 1;

	for (size_t i = 0; i < len; i++)
		lines += text[i] == '\n';
	FUZZ_CHECK(err->line >= 1 && err->line <= lines);
	FUZZ_CHECK(memchr(err->msg, '\0', sizeof(err->msg)) != NULL);
	FUZZ_CHECK(memchr(err->key, '\0', sizeof(err->key)) != NULL);
	FUZZ_CHECK(err->msg[0] != '\0');
	for (const char *p = err->msg; *p != '\0'; p++)
		FUZZ_CHECK((unsigned char)*p >= 0x20 && (unsigned char)*p < 0x7f);
	for (const char *p = err->key; *p != '\0'; p++)
		FUZZ_CHECK(is_bare(p, 1) || strchr(".[]", *p) != NULL);
}

static void
check_doc(const struct toml_doc *doc)
{
	const struct toml_table *root;
	int last = 0; /* the line of the last header or key: each is on its own line */

	FUZZ_CHECK(doc->n_tables >= 1 && doc->tables != NULL);
	root = &doc->tables[0];
	FUZZ_CHECK(strcmp(root->name, "") == 0 && !root->is_array_element && root->line == 1);
	for (size_t t = 0; t < doc->n_tables; t++) {
		const struct toml_table *tab = &doc->tables[t];

		if (t > 0) {
			size_t n = strlen(tab->name);

			FUZZ_CHECK(n > 0 && n < 64 && is_bare(tab->name, n));
			FUZZ_CHECK(tab->line > last);
			last = tab->line;
			for (size_t k = 0; k < root->n_keys; k++)
				FUZZ_CHECK(strcmp(root->keys[k].key, tab->name) != 0);
			for (size_t u = 1; u < t; u++) {
				const struct toml_table *other = &doc->tables[u];

				if (strcmp(other->name, tab->name) == 0)
					FUZZ_CHECK(other->is_array_element &&
						   tab->is_array_element);
			}
		}
		FUZZ_CHECK(tab->n_keys == 0 || tab->keys != NULL);
		for (size_t k = 0; k < tab->n_keys; k++) {
			const struct toml_keyval *kv = &tab->keys[k];
			size_t n = strlen(kv->key);

			FUZZ_CHECK(n > 0 && n < 64 && is_bare(kv->key, n));
			FUZZ_CHECK(kv->line > last);
			last = kv->line;
			for (size_t j = 0; j < k; j++)
				FUZZ_CHECK(strcmp(tab->keys[j].key, kv->key) != 0);
			switch (kv->value.type) {
			case TOML_STRING:
				check_string(&kv->value.str);
				break;
			case TOML_STRING_ARRAY:
				FUZZ_CHECK(kv->value.n_items == 0 || kv->value.items != NULL);
				for (size_t i = 0; i < kv->value.n_items; i++)
					check_string(&kv->value.items[i]);
				break;
			case TOML_INT:
			case TOML_BOOL:
				break;
			default:
				FUZZ_CHECK(!"unknown value type");
			}
		}
	}
}

static void
put(struct out *o, const char *p, size_t n)
{
	if (o->cap - o->len < n) {
		char *grown;

		o->cap = 2 * o->cap + n;
		grown = realloc(o->p, o->cap);
		FUZZ_CHECK(grown != NULL);
		o->p = grown;
	}
	memcpy(o->p + o->len, p, n);
	o->len += n;
}

/* A basic string: '"', '\\' and control bytes escaped, the rest as it is. */
static void
put_string(struct out *o, const struct toml_string *s)
{
	put(o, "\"", 1);
	for (size_t i = 0; i < s->len; i++) {
		unsigned char c = (unsigned char)s->ptr[i];
		char esc[8];

		if (c == '"' || c == '\\') {
			esc[0] = '\\';
			esc[1] = (char)c;
			put(o, esc, 2);
		} else if (c < 0x20 || c == 0x7f) {
			snprintf(esc, sizeof(esc), "\\u%04x", c);
			put(o, esc, 6);
		} else {
			put(o, (const char *)&c, 1);
		}
	}
	put(o, "\"", 1);
}

static void
put_value(struct out *o, const struct toml_value *v)
{
	char num[32];

	switch (v->type) {
	case TOML_STRING:
		put_string(o, &v->str);
		break;
	case TOML_INT:
		put(o, num, (size_t)snprintf(num, sizeof(num), "%" PRId64, v->i));
		break;
	case TOML_BOOL:
		put(o, v->b ? "true" : "false", v->b ? 4 : 5);
		break;
	case TOML_STRING_ARRAY:
		put(o, "[", 1);
		for (size_t i = 0; i < v->n_items; i++) {
			if (i > 0)
				put(o, ", ", 2);
			put_string(o, &v->items[i]);
		}
		put(o, "]", 1);
		break;
	}
}

static bool
same_string(const struct toml_string *a, const struct toml_string *b)
{
	return a->len == b->len && memcmp(a->ptr, b->ptr, a->len) == 0;
}

static bool
same_value(const struct toml_value *a, const struct toml_value *b)
{
	if (a->type != b->type)
		return false;
	switch (a->type) {
	case TOML_STRING:
		return same_string(&a->str, &b->str);
	case TOML_INT:
		return a->i == b->i;
	case TOML_BOOL:
		return a->b == b->b;
	case TOML_STRING_ARRAY:
		if (a->n_items != b->n_items)
			return false;
		for (size_t i = 0; i < a->n_items; i++)
			if (!same_string(&a->items[i], &b->items[i]))
				return false;
		return true;
	}
	return false;
}

static void
check_round_trip(const struct toml_doc *doc)
{
	struct out o = {fuzz_xmalloc(256), 0, 256};
	struct toml_doc again;
	struct toml_error err;

	for (size_t t = 0; t < doc->n_tables; t++) {
		const struct toml_table *tab = &doc->tables[t];

		if (t > 0) {
			put(&o, tab->is_array_element ? "[[" : "[", tab->is_array_element ? 2 : 1);
			put(&o, tab->name, strlen(tab->name));
			put(&o, tab->is_array_element ? "]]\n" : "]\n",
			    tab->is_array_element ? 3 : 2);
		}
		for (size_t k = 0; k < tab->n_keys; k++) {
			put(&o, tab->keys[k].key, strlen(tab->keys[k].key));
			put(&o, " = ", 3);
			put_value(&o, &tab->keys[k].value);
			put(&o, "\n", 1);
		}
	}
	FUZZ_CHECK(toml_parse(o.p, o.len, &again, &err) == 0);
	FUZZ_CHECK(again.n_tables == doc->n_tables);
	for (size_t t = 0; t < doc->n_tables; t++) {
		const struct toml_table *a = &doc->tables[t], *b = &again.tables[t];

		FUZZ_CHECK(strcmp(a->name, b->name) == 0);
		FUZZ_CHECK(a->is_array_element == b->is_array_element);
		FUZZ_CHECK(a->n_keys == b->n_keys);
		for (size_t k = 0; k < a->n_keys; k++) {
			FUZZ_CHECK(strcmp(a->keys[k].key, b->keys[k].key) == 0);
			FUZZ_CHECK(same_value(&a->keys[k].value, &b->keys[k].value));
		}
	}
	toml_free(&again);
	free(o.p);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data;
	struct toml_doc doc;
	struct toml_error err;
	int rc = toml_parse(text, size, &doc, &err);

	FUZZ_CHECK(rc == 0 || rc == -1);
	if (rc < 0) {
		FUZZ_CHECK(doc.tables == NULL && doc.n_tables == 0);
		check_error(&err, text, size);
		toml_free(&doc); /* harmless after a failure, says toml.h */
		return 0;
	}
	check_doc(&doc);
	check_round_trip(&doc);
	toml_free(&doc);
	FUZZ_CHECK(doc.tables == NULL && doc.n_tables == 0);
	return 0;
}
