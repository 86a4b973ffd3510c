/*
 * toml.h - a small strict reader for the subset of TOML that receiver.toml
 * uses.
 *
 * toml_parse() turns the whole text into a flat list of tables in file
 * order: the root table (name "", always first), then one entry per
 * [table] header and one per [[table]] header (each array element is its
 * own entry, with is_array_element set).  Each table holds its key/value
 * pairs in file order with the line each key is on, so that the caller can
 * name the line in its own errors.
 *
 * Supported: comments, bare keys, one-level [table] and [[table]] headers,
 * basic strings with escapes, literal strings, decimal int64 integers,
 * booleans and arrays of strings.  Anything else TOML has (floats, dates,
 * inline tables, dotted or quoted keys, multi-line strings, arrays of other
 * types) is rejected with a message rather than half-understood.
 *
 * Error messages never quote the contents of a string value, so a secret
 * in a malformed file cannot leak into a log line.
 */
#ifndef RECEIVER_TOML_H
#define RECEIVER_TOML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum toml_type {
	TOML_STRING,
	TOML_INT,
	TOML_BOOL,
	TOML_STRING_ARRAY,
};

/* NUL-terminated for convenience; len counts bytes, as \u0000 is legal TOML. */
struct toml_string {
	char *ptr;
	size_t len;
};

struct toml_value {
	enum toml_type type;
	struct toml_string str;	   /* TOML_STRING */
	int64_t i;		   /* TOML_INT */
	bool b;			   /* TOML_BOOL */
	struct toml_string *items; /* TOML_STRING_ARRAY */
	size_t n_items;
};

struct toml_keyval {
	char *key;
	int line;
	struct toml_value value;
};

struct toml_table {
	char *name; /* "" for the root table */
	bool is_array_element;
	int line; /* of the header; 1 for the root table */
	struct toml_keyval *keys;
	size_t n_keys;
};

struct toml_doc {
	struct toml_table *tables;
	size_t n_tables;
};

/*
 * What went wrong and where.  key is set ("server.listen", "app[2].name",
 * "server") when the error is about a particular key or table, such as a
 * duplicate; otherwise it is "" and the error is a plain syntax error.
 */
struct toml_error {
	int line;
	char key[128];
	char msg[128];
};

/*
 * Parse LEN bytes of TEXT into *doc.  Returns 0, or -1 with *err filled in
 * and *doc left empty.  toml_free(doc) is needed after success only, but is
 * harmless after a failure too.
 */
int toml_parse(const char *text, size_t len, struct toml_doc *doc, struct toml_error *err);

/* Frees the tree, wiping every string first: values may be secrets. */
void toml_free(struct toml_doc *doc);

#endif
