/*
 * toml.c - a small strict TOML reader (see toml.h for the subset).
 *
 * How it works: one pass checks that the whole text is valid UTF-8 without
 * NUL bytes, so the parser proper can treat every byte >= 0x80 as an
 * already-valid part of a character.  Then a hand-written recursive-descent
 * parser walks the text line by line: each line is blank, a comment, a
 * table header or one key/value pair (an array of strings may run over
 * several lines).  Values go straight into the tree; the tree is freed,
 * wiping strings, on any error, so a caller never sees half a document.
 *
 * Strictness is the point: a configuration mistake must stop the daemon
 * with a line number, not be read as something nearby.  So whatever TOML
 * feature we do not implement is reported as unsupported instead of being
 * skipped or guessed at.
 */
#include "toml.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct parser {
	const char *p;
	const char *end;
	int line;
	struct toml_doc *doc;
	size_t cur; /* the table new keys go into */
	struct toml_error *err;
};

static int fail(struct parser *ps, const char *msg);
static int fail_key(struct parser *ps, int line, const char *key, const char *msg);
static int check_text(const char *text, size_t len, struct toml_error *err);
static bool is_bare_key_char(char c);
static bool is_control(unsigned char c);
static void skip_ws(struct parser *ps);
static int skip_comment(struct parser *ps);
static int end_of_line(struct parser *ps);
static int skip_ws_newlines_comments(struct parser *ps);
static size_t bare_key(struct parser *ps);
static int add_table(struct parser *ps, const char *name, size_t len, bool array, int line);
static int parse_header(struct parser *ps);
static int parse_keyval(struct parser *ps);
static int parse_value(struct parser *ps, struct toml_value *v);
static int parse_basic_string(struct parser *ps, struct toml_string *out);
static int parse_literal_string(struct parser *ps, struct toml_string *out);
static int parse_string_array(struct parser *ps, struct toml_value *v);
static int parse_integer(struct parser *ps, const char *tok, size_t n, int64_t *out);
static int hex_escape(struct parser *ps, int digits, unsigned long *cp);
static size_t put_utf8(char *out, unsigned long cp);
static void format_key(struct parser *ps, size_t table, const char *key, char *buf, size_t buflen);
static void free_string(struct toml_string *s);
static void free_value(struct toml_value *v);
static void *grow(void *old, size_t n, size_t size);

static int
fail(struct parser *ps, const char *msg)
{
	ps->err->line = ps->line;
	ps->err->key[0] = '\0';
	snprintf(ps->err->msg, sizeof(ps->err->msg), "%s", msg);
	return -1;
}

static int
fail_key(struct parser *ps, int line, const char *key, const char *msg)
{
	ps->err->line = line;
	snprintf(ps->err->key, sizeof(ps->err->key), "%s", key);
	snprintf(ps->err->msg, sizeof(ps->err->msg), "%s", msg);
	return -1;
}

/*
 * TOML documents must be UTF-8.  Checking it once here, including overlong
 * forms and surrogates, keeps every later byte loop simple.
 */
static int
check_text(const char *text, size_t len, struct toml_error *err)
{
	const unsigned char *s = (const unsigned char *)text;
	int line = 1;

	for (size_t i = 0; i < len;) {
		unsigned char c = s[i];
		size_t n;
		unsigned long cp, min;

		if (c == '\n') {
			line++;
		}
		if (c == 0) {
			err->line = line;
			err->key[0] = '\0';
			snprintf(err->msg, sizeof(err->msg), "NUL byte in file");
			return -1;
		}
		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			n = 1, cp = c & 0x1f, min = 0x80;
		} else if (c >= 0xe0 && c <= 0xef) {
			n = 2, cp = c & 0x0f, min = 0x800;
		} else if (c >= 0xf0 && c <= 0xf4) {
			n = 3, cp = c & 0x07, min = 0x10000;
		} else {
			goto bad;
		}
		if (len - i - 1 < n) {
			goto bad;
		}
		for (size_t k = 1; k <= n; k++) {
			if ((s[i + k] & 0xc0) != 0x80) {
				goto bad;
			}
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
			goto bad;
		}
		i += n + 1;
	}
	return 0;
bad:
	err->line = line;
	err->key[0] = '\0';
	snprintf(err->msg, sizeof(err->msg), "invalid UTF-8");
	return -1;
}

static bool
is_bare_key_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '-';
}

/* TOML allows tab but no other control character in strings and comments. */
static bool
is_control(unsigned char c)
{
	return (c < 0x20 && c != '\t') || c == 0x7f;
}

static void
skip_ws(struct parser *ps)
{
	while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t')) {
		ps->p++;
	}
}

/* At '#': skip to the end of the line, leaving the newline in place. */
static int
skip_comment(struct parser *ps)
{
	while (ps->p < ps->end && *ps->p != '\n') {
		unsigned char c = (unsigned char)*ps->p;

		if (c == '\r' && ps->p + 1 < ps->end && ps->p[1] == '\n') {
			break;
		}
		if (is_control(c)) {
			return fail(ps, "control character in comment");
		}
		ps->p++;
	}
	return 0;
}

/* After a header or a value: only whitespace and a comment may follow. */
static int
end_of_line(struct parser *ps)
{
	skip_ws(ps);
	if (ps->p < ps->end && *ps->p == '#' && skip_comment(ps) < 0) {
		return -1;
	}
	if (ps->p == ps->end) {
		return 0;
	}
	if (*ps->p == '\n') {
		ps->p++;
		ps->line++;
		return 0;
	}
	if (*ps->p == '\r' && ps->p + 1 < ps->end && ps->p[1] == '\n') {
		ps->p += 2;
		ps->line++;
		return 0;
	}
	if (*ps->p == '\r') {
		return fail(ps, "carriage return without line feed");
	}
	return fail(ps, "expected the end of the line");
}

/* Inside an array, newlines and comments are whitespace. */
static int
skip_ws_newlines_comments(struct parser *ps)
{
	for (;;) {
		skip_ws(ps);
		if (ps->p == ps->end) {
			return 0;
		}
		if (*ps->p == '#') {
			if (skip_comment(ps) < 0) {
				return -1;
			}
			continue;
		}
		if (*ps->p == '\n' || *ps->p == '\r') {
			if (end_of_line(ps) < 0) {
				return -1;
			}
			continue;
		}
		return 0;
	}
}

static size_t
bare_key(struct parser *ps)
{
	const char *start = ps->p;

	while (ps->p < ps->end && is_bare_key_char(*ps->p)) {
		ps->p++;
	}
	return (size_t)(ps->p - start);
}

static int
add_table(struct parser *ps, const char *name, size_t len, bool array, int line)
{
	struct toml_doc *doc = ps->doc;
	struct toml_table *tables;
	char *copy = malloc(len + 1);

	if (copy == NULL) {
		return fail(ps, "out of memory");
	}
	memcpy(copy, name, len);
	copy[len] = '\0';
	tables = grow(doc->tables, doc->n_tables, sizeof(*tables));
	if (tables == NULL) {
		free(copy);
		return fail(ps, "out of memory");
	}
	doc->tables = tables;
	{
		/* Copied in, not assigned: gcc 12 -fanalyzer then sees where copy went. */
		struct toml_table t = {.name = copy, .is_array_element = array, .line = line};

		memcpy(&tables[doc->n_tables], &t, sizeof(t));
	}
	ps->cur = doc->n_tables++;
	return 0;
}

static int
parse_header(struct parser *ps)
{
	bool array = false;
	const char *name;
	size_t len;
	char key[64];
	const char *clash = NULL;

	ps->p++;
	if (ps->p < ps->end && *ps->p == '[') {
		array = true;
		ps->p++;
	}
	skip_ws(ps);
	name = ps->p;
	len = bare_key(ps);
	if (len == 0) {
		if (ps->p < ps->end && (*ps->p == '"' || *ps->p == '\'')) {
			return fail(ps, "quoted table names are not supported");
		}
		return fail(ps, "expected a table name");
	}
	skip_ws(ps);
	if (ps->p < ps->end && *ps->p == '.') {
		return fail(ps, "dotted table names are not supported");
	}
	if (ps->p == ps->end || *ps->p != ']') {
		return fail(ps, array ? "expected ']]' after the table name"
				      : "expected ']' after the table name");
	}
	ps->p++;
	if (array) {
		if (ps->p == ps->end || *ps->p != ']') {
			return fail(ps, "expected ']]' after the table name");
		}
		ps->p++;
	}
	if (len >= sizeof(key)) {
		return fail(ps, "table name too long");
	}
	memcpy(key, name, len);
	key[len] = '\0';

	/* The root table's keys and earlier headers share the one namespace. */
	for (size_t i = 0; i < ps->doc->tables[0].n_keys; i++) {
		if (strcmp(ps->doc->tables[0].keys[i].key, key) == 0) {
			clash = "already defined as a key";
		}
	}
	for (size_t i = 1; i < ps->doc->n_tables && clash == NULL; i++) {
		const struct toml_table *t = &ps->doc->tables[i];

		if (strcmp(t->name, key) != 0) {
			continue;
		}
		if (!array && !t->is_array_element) {
			clash = "duplicate table";
		} else if (!array) {
			clash = "already defined as an array of tables";
		} else if (!t->is_array_element) {
			clash = "already defined as a table";
		}
	}
	if (clash != NULL) {
		return fail_key(ps, ps->line, key, clash);
	}
	if (add_table(ps, name, len, array, ps->line) < 0) {
		return -1;
	}
	return end_of_line(ps);
}

/* "server.listen", "app[2].name", or just "name" in the root table. */
static void
format_key(struct parser *ps, size_t table, const char *key, char *buf, size_t buflen)
{
	const struct toml_table *t = &ps->doc->tables[table];

	if (table == 0) {
		snprintf(buf, buflen, "%s", key);
	} else if (t->is_array_element) {
		size_t index = 1;

		for (size_t i = 1; i < table; i++) {
			if (ps->doc->tables[i].is_array_element &&
			    strcmp(ps->doc->tables[i].name, t->name) == 0) {
				index++;
			}
		}
		snprintf(buf, buflen, "%s[%zu].%s", t->name, index, key);
	} else {
		snprintf(buf, buflen, "%s.%s", t->name, key);
	}
}

static int
parse_keyval(struct parser *ps)
{
	struct toml_table *t = &ps->doc->tables[ps->cur];
	struct toml_keyval *kv;
	struct toml_value v;
	const char *start = ps->p;
	size_t len = bare_key(ps);
	int line = ps->line;
	char key[64];

	if (len == 0) {
		if (*ps->p == '"' || *ps->p == '\'') {
			return fail(ps, "quoted keys are not supported");
		}
		if (*ps->p == '=') {
			return fail(ps, "expected a key before '='");
		}
		return fail(ps, "expected a key, a [table] header or a comment");
	}
	if (len >= sizeof(key)) {
		return fail(ps, "key too long");
	}
	memcpy(key, start, len);
	key[len] = '\0';
	skip_ws(ps);
	if (ps->p < ps->end && *ps->p == '.') {
		return fail(ps, "dotted keys are not supported");
	}
	if (ps->p == ps->end || *ps->p != '=') {
		return fail(ps, "expected '=' after the key");
	}
	ps->p++;
	skip_ws(ps);

	for (size_t i = 0; i < t->n_keys; i++) {
		if (strcmp(t->keys[i].key, key) == 0) {
			char full[128];

			format_key(ps, ps->cur, key, full, sizeof(full));
			return fail_key(ps, line, full, "duplicate key");
		}
	}

	memset(&v, 0, sizeof(v));
	if (parse_value(ps, &v) < 0) {
		return -1;
	}
	kv = grow(t->keys, t->n_keys, sizeof(*kv));
	if (kv == NULL) {
		free_value(&v);
		return fail(ps, "out of memory");
	}
	t->keys = kv;
	kv = &t->keys[t->n_keys];
	kv->key = strdup(key);
	if (kv->key == NULL) {
		free_value(&v);
		return fail(ps, "out of memory");
	}
	kv->line = line;
	kv->value = v;
	t->n_keys++;
	return end_of_line(ps);
}

static int
parse_value(struct parser *ps, struct toml_value *v)
{
	const char *tok = ps->p;
	size_t n;

	if (ps->p == ps->end) {
		return fail(ps, "expected a value");
	}
	switch (*ps->p) {
	case '"':
		if (ps->end - ps->p >= 3 && ps->p[1] == '"' && ps->p[2] == '"') {
			return fail(ps, "unsupported value: multi-line strings");
		}
		v->type = TOML_STRING;
		return parse_basic_string(ps, &v->str);
	case '\'':
		if (ps->end - ps->p >= 3 && ps->p[1] == '\'' && ps->p[2] == '\'') {
			return fail(ps, "unsupported value: multi-line strings");
		}
		v->type = TOML_STRING;
		return parse_literal_string(ps, &v->str);
	case '[':
		v->type = TOML_STRING_ARRAY;
		return parse_string_array(ps, v);
	case '{':
		return fail(ps, "unsupported value: inline tables");
	default:
		break;
	}

	/* Everything else is one token; what it looks like decides the type. */
	while (ps->p < ps->end &&
	       (is_bare_key_char(*ps->p) || *ps->p == '+' || *ps->p == '.' || *ps->p == ':')) {
		ps->p++;
	}
	n = (size_t)(ps->p - tok);
	if (n == 0) {
		return fail(ps, "expected a value");
	}
	if (n == 4 && memcmp(tok, "true", 4) == 0) {
		v->type = TOML_BOOL;
		v->b = true;
		return 0;
	}
	if (n == 5 && memcmp(tok, "false", 5) == 0) {
		v->type = TOML_BOOL;
		v->b = false;
		return 0;
	}
	if ((*tok >= '0' && *tok <= '9') || *tok == '+' || *tok == '-' ||
	    (n == 3 && (memcmp(tok, "inf", 3) == 0 || memcmp(tok, "nan", 3) == 0))) {
		v->type = TOML_INT;
		return parse_integer(ps, tok, n, &v->i);
	}
	return fail(ps, "invalid value (strings must be quoted)");
}

static int
parse_integer(struct parser *ps, const char *tok, size_t n, int64_t *out)
{
	size_t i = 0;
	bool neg = false;
	uint64_t limit, acc = 0;

	if (tok[0] == '+' || tok[0] == '-') {
		neg = tok[0] == '-';
		i = 1;
	}
	if (i == n) {
		return fail(ps, "invalid value");
	}
	for (size_t k = i; k < n; k++) {
		if (!(tok[k] >= '0' && tok[k] <= '9') && tok[k] != '_') {
			return fail(ps, "unsupported value: only decimal integers, strings, "
					"booleans and arrays of strings are supported");
		}
	}
	for (size_t k = i; k < n; k++) {
		if (tok[k] == '_' && (k == i || k == n - 1 || tok[k + 1] == '_')) {
			return fail(ps, "invalid integer: '_' must be between digits");
		}
	}
	if (tok[i] == '0' && n - i > 1) {
		return fail(ps, "invalid integer: leading zeros are not allowed");
	}
	limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
	for (size_t k = i; k < n; k++) {
		unsigned d;

		if (tok[k] == '_') {
			continue;
		}
		d = (unsigned)(tok[k] - '0');
		if (acc > (limit - d) / 10) {
			return fail(ps, "integer out of range (64-bit)");
		}
		acc = acc * 10 + d;
	}
	if (neg) {
		/* -(2^63) has no positive counterpart, so go through acc - 1. */
		*out = acc == 0 ? 0 : -(int64_t)(acc - 1) - 1;
	} else {
		*out = (int64_t)acc;
	}
	return 0;
}

static int
hex_escape(struct parser *ps, int digits, unsigned long *cp)
{
	unsigned long v = 0;

	for (int k = 0; k < digits; k++) {
		char c = ps->p < ps->end ? *ps->p : '\0';
		unsigned d;

		if (c >= '0' && c <= '9') {
			d = (unsigned)(c - '0');
		} else if (c >= 'a' && c <= 'f') {
			d = (unsigned)(c - 'a' + 10);
		} else if (c >= 'A' && c <= 'F') {
			d = (unsigned)(c - 'A' + 10);
		} else {
			return fail(ps, digits == 4 ? "invalid \\u escape: expected 4 hex digits"
						    : "invalid \\U escape: expected 8 hex digits");
		}
		v = (v << 4) | d;
		ps->p++;
	}
	if (v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff)) {
		return fail(ps, "invalid escape: not a Unicode scalar value");
	}
	*cp = v;
	return 0;
}

static size_t
put_utf8(char *out, unsigned long cp)
{
	unsigned char *o = (unsigned char *)out;

	if (cp < 0x80) {
		o[0] = (unsigned char)cp;
		return 1;
	}
	if (cp < 0x800) {
		o[0] = (unsigned char)(0xc0 | (cp >> 6));
		o[1] = (unsigned char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		o[0] = (unsigned char)(0xe0 | (cp >> 12));
		o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
		o[2] = (unsigned char)(0x80 | (cp & 0x3f));
		return 3;
	}
	o[0] = (unsigned char)(0xf0 | (cp >> 18));
	o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
	o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
	o[3] = (unsigned char)(0x80 | (cp & 0x3f));
	return 4;
}

/*
 * An escape never decodes to more bytes than it takes in the source, so the
 * rest of the line is a safe upper bound for the buffer.
 */
static int
parse_basic_string(struct parser *ps, struct toml_string *out)
{
	const char *eol = memchr(ps->p, '\n', (size_t)(ps->end - ps->p));
	size_t cap = (size_t)((eol ? eol : ps->end) - ps->p) + 1;
	char *buf = malloc(cap);
	size_t n = 0;

	if (buf == NULL) {
		return fail(ps, "out of memory");
	}
	ps->p++;
	for (;;) {
		unsigned char c;

		if (ps->p == ps->end || *ps->p == '\n' ||
		    (*ps->p == '\r' && ps->p + 1 < ps->end && ps->p[1] == '\n')) {
			explicit_bzero(buf, cap);
			free(buf);
			return fail(ps, "unterminated string");
		}
		c = (unsigned char)*ps->p;
		if (c == '"') {
			ps->p++;
			break;
		}
		if (is_control(c)) {
			explicit_bzero(buf, cap);
			free(buf);
			return fail(ps, "control character in string (use an escape)");
		}
		if (c != '\\') {
			buf[n++] = (char)c;
			ps->p++;
			continue;
		}
		ps->p++;
		if (ps->p == ps->end || *ps->p == '\n' || *ps->p == '\r') {
			explicit_bzero(buf, cap);
			free(buf);
			return fail(ps, "unterminated string");
		}
		c = (unsigned char)*ps->p++;
		switch (c) {
		case 'b':
			buf[n++] = '\b';
			break;
		case 't':
			buf[n++] = '\t';
			break;
		case 'n':
			buf[n++] = '\n';
			break;
		case 'f':
			buf[n++] = '\f';
			break;
		case 'r':
			buf[n++] = '\r';
			break;
		case '"':
			buf[n++] = '"';
			break;
		case '\\':
			buf[n++] = '\\';
			break;
		case 'u':
		case 'U': {
			unsigned long cp = 0;

			if (hex_escape(ps, c == 'u' ? 4 : 8, &cp) < 0) {
				explicit_bzero(buf, cap);
				free(buf);
				return -1;
			}
			n += put_utf8(buf + n, cp);
			break;
		}
		default:
			explicit_bzero(buf, cap);
			free(buf);
			return fail(ps, "invalid escape sequence in string");
		}
	}
	buf[n] = '\0';
	out->ptr = buf;
	out->len = n;
	return 0;
}

static int
parse_literal_string(struct parser *ps, struct toml_string *out)
{
	const char *start = ++ps->p;
	size_t n;

	for (;;) {
		if (ps->p == ps->end || *ps->p == '\n' ||
		    (*ps->p == '\r' && ps->p + 1 < ps->end && ps->p[1] == '\n')) {
			return fail(ps, "unterminated string");
		}
		if (*ps->p == '\'') {
			break;
		}
		if (is_control((unsigned char)*ps->p)) {
			return fail(ps, "control character in string");
		}
		ps->p++;
	}
	n = (size_t)(ps->p - start);
	ps->p++;
	out->ptr = malloc(n + 1);
	if (out->ptr == NULL) {
		return fail(ps, "out of memory");
	}
	memcpy(out->ptr, start, n);
	out->ptr[n] = '\0';
	out->len = n;
	return 0;
}

static int
parse_string_array(struct parser *ps, struct toml_value *v)
{
	ps->p++;
	for (;;) {
		struct toml_string s = {0};
		struct toml_string *items;
		int rc;

		if (skip_ws_newlines_comments(ps) < 0) {
			goto fail;
		}
		if (ps->p == ps->end) {
			fail(ps, "unterminated array");
			goto fail;
		}
		if (*ps->p == ']') {
			ps->p++;
			return 0;
		}
		if (*ps->p == '"' || *ps->p == '\'') {
			if (ps->end - ps->p >= 3 && ps->p[1] == *ps->p && ps->p[2] == *ps->p) {
				fail(ps, "unsupported value: multi-line strings");
				goto fail;
			}
			rc = *ps->p == '"' ? parse_basic_string(ps, &s)
					   : parse_literal_string(ps, &s);
			if (rc < 0) {
				goto fail;
			}
		} else if (*ps->p == ',') {
			fail(ps, "expected a value before ','");
			goto fail;
		} else {
			fail(ps, "unsupported value: arrays may hold only strings");
			goto fail;
		}
		items = grow(v->items, v->n_items, sizeof(*items));
		if (items == NULL) {
			free_string(&s);
			fail(ps, "out of memory");
			goto fail;
		}
		v->items = items;
		v->items[v->n_items++] = s;

		if (skip_ws_newlines_comments(ps) < 0) {
			goto fail;
		}
		if (ps->p == ps->end) {
			fail(ps, "unterminated array");
			goto fail;
		}
		if (*ps->p == ',') {
			ps->p++;
		} else if (*ps->p != ']') {
			fail(ps, "expected ',' or ']' in array");
			goto fail;
		}
	}
fail:
	free_value(v);
	return -1;
}

int
toml_parse(const char *text, size_t len, struct toml_doc *doc, struct toml_error *err)
{
	struct parser ps = {
	    .p = text,
	    .end = text + len,
	    .line = 1,
	    .doc = doc,
	    .cur = 0,
	    .err = err,
	};

	memset(doc, 0, sizeof(*doc));
	memset(err, 0, sizeof(*err));
	if (check_text(text, len, err) < 0) {
		return -1;
	}
	/* Some editors start UTF-8 files with a byte order mark. */
	if (len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0) {
		ps.p += 3;
	}
	if (add_table(&ps, "", 0, false, 1) < 0) {
		goto fail;
	}
	while (ps.p < ps.end) {
		int rc;

		skip_ws(&ps);
		if (ps.p == ps.end) {
			break;
		}
		if (*ps.p == '#' || *ps.p == '\n' || *ps.p == '\r') {
			rc = end_of_line(&ps);
		} else if (*ps.p == '[') {
			rc = parse_header(&ps);
		} else {
			rc = parse_keyval(&ps);
		}
		if (rc < 0) {
			goto fail;
		}
	}
	return 0;
fail:
	toml_free(doc);
	return -1;
}

/*
 * realloc by hand, one element larger: gcc 12's -fanalyzer reports false
 * leaks through realloc, and these arrays stay tiny.
 */
static void *
grow(void *old, size_t n, size_t size)
{
	void *p = malloc((n + 1) * size);

	if (p == NULL) {
		return NULL;
	}
	if (n > 0) {
		memcpy(p, old, n * size);
	}
	free(old);
	return p;
}

static void
free_string(struct toml_string *s)
{
	if (s->ptr != NULL) {
		explicit_bzero(s->ptr, s->len);
		free(s->ptr);
	}
	s->ptr = NULL;
	s->len = 0;
}

static void
free_value(struct toml_value *v)
{
	free_string(&v->str);
	for (size_t i = 0; i < v->n_items; i++) {
		free_string(&v->items[i]);
	}
	free(v->items);
	v->items = NULL;
	v->n_items = 0;
}

void
toml_free(struct toml_doc *doc)
{
	for (size_t t = 0; t < doc->n_tables; t++) {
		struct toml_table *table = &doc->tables[t];

		for (size_t k = 0; k < table->n_keys; k++) {
			free(table->keys[k].key);
			free_value(&table->keys[k].value);
		}
		free(table->keys);
		free(table->name);
	}
	free(doc->tables);
	memset(doc, 0, sizeof(*doc));
}
