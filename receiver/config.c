/*
 * config.c - receiver.toml -> struct config (see config.h).
 *
 * This file is the one place that knows the configuration schema, and it
 * knows each key once: as a row of a field table (server_fields[],
 * database_fields[], ...).  A row holds everything about its key: name,
 * type, offset in its struct, range, default, check, whether it is
 * required, the environment variable that overrides it and whether SIGHUP
 * may change it.  Each TOML table is a row of sections[]: its name, its
 * field table, where its struct lives in struct config and whether it is
 * an array of tables ([[app]]).
 *
 * Everything else walks those rows, so that nothing can disagree with
 * them: the defaults are written from them before the file is read (and
 * into each new [[app]]); the loader looks every key of every table up in
 * them, refusing any key no row lists, and hands the value to its type's
 * setter (field_types[]), which type-checks, range-checks and stores it;
 * config_free() frees what the string rows point to; config_adopt_secrets()
 * swaps exactly the rows marked reloadable.  Checks that involve more than
 * one key (tls_cert with tls_key, the backoff bounds, unique app names and
 * paths) hang off their section's row and find lines by key name, so rows
 * may be inserted or reordered freely.
 *
 * Adding a key is therefore one row here plus its member in config.h;
 * nothing else in this file changes.  (README.md's table and receiver.toml
 * document it: tests/integration/test_docs.py reads these rows and fails
 * until they do.)
 *
 * Secrets: string values may say "env:NAME" or "file:PATH" instead of
 * holding the value.  Error messages therefore never print a string value
 * at all - only key names, variable names and paths - and every string
 * (and the raw file text) is wiped before it is freed.
 */
#include "config.h"

#include "toml.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Neither the config file nor a secret file has any business being bigger. */
#define MAX_FILE_BYTES (1024 * 1024)

/* "app[12].previous_secrets" and the like. */
#define KEY_MAX 160

enum field_type {
	FIELD_STRING,	      /* char *; the default is strdup'd, NULL stays NULL */
	FIELD_INT,	      /* int */
	FIELD_SIZE,	      /* size_t */
	FIELD_BOOL,	      /* bool */
	FIELD_STRINGS,	      /* char ** plus a size_t count at count_offset; empty by default */
	FIELD_SIGNATURE_MODE, /* enum signature_mode, named in the file */
	FIELD_TYPES,	      /* how many: field_types[] has a row for each */
};

enum field_flag {
	/* The table must set it (or, with env_override, the environment must). */
	FIELD_REQUIRED = 1 << 0,
	/* SIGHUP takes it from the new file: see config_adopt_secrets(). */
	FIELD_RELOADABLE = 1 << 1,
};

struct field {
	const char *key;
	enum field_type type;
	size_t offset;		    /* of the member in its section's struct */
	size_t count_offset;	    /* FIELD_STRINGS: of its size_t count */
	long long min, max;	    /* FIELD_INT, FIELD_SIZE */
	const char *default_string; /* FIELD_STRING */
	long long default_number;   /* FIELD_INT, FIELD_SIZE, FIELD_BOOL, FIELD_SIGNATURE_MODE */
	/* For strings: NULL when the value is acceptable, else what is wrong. */
	const char *(*check)(const char *value);
	/* FIELD_STRING: when this variable is set and non-empty, it replaces the value. */
	const char *env_override;
	unsigned flags; /* enum field_flag */
};

struct loader {
	const char *file;
	char *dir; /* where relative file: paths start */
	char *err;
	size_t errlen;
	struct config *cfg; /* being loaded */
};

/* What one value type does; field_types[] has one for each. */
struct field_type_ops {
	/* From the file: type-check, range-check, store.  0, or -1 with the error written. */
	int (*set)(struct loader *ld, const struct field *f, const struct toml_keyval *kv,
		   const char *key, void *base);
	/* Store the row's default; -1 when out of memory.  NULL: zero is the default. */
	int (*init)(const struct field *f, void *base);
	/* Wipe and free what the member owns.  NULL: it owns nothing. */
	void (*free)(const struct field *f, void *base);
	size_t size;  /* of the member: SIGHUP swaps it byte for byte */
	bool counted; /* a size_t at count_offset goes with the member */
};

/* One TOML table. */
struct section {
	const char *name;
	const struct field *fields;
	size_t n_fields;
	/* Of its struct in struct config; for an array, of the pointer to its elements. */
	size_t offset;
	bool is_array;
	size_t count_offset; /* array: of its size_t element count in struct config */
	size_t size;	     /* array: of one element */
	bool required;	     /* array: a file without one element is refused */
	/* Checks across keys, once the table is read: 0, or -1 with the error written. */
	int (*check)(struct loader *ld, const struct toml_table *t, const char *prefix,
		     const void *base);
};

static int errorf(struct loader *ld, int line, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int read_file(const char *path, char **out, size_t *outlen);
static char *dir_of(const char *file);
static void wipe_free(char *s);
static bool valid_env_name(const char *name);
static int resolve(struct loader *ld, int line, const char *key, const struct toml_string *in,
		   char **out);
static const char *check_nonempty(const char *s);
static const char *check_listen(const char *s);
static const char *check_listen_or_empty(const char *s);
static const char *check_app_name(const char *s);
static const char *check_app_path(const char *s);
static const char *check_base_url(const char *s);
static const char *check_log_level(const char *s);
static const char *check_token_key(const char *s);
static const char *check_webhook_secret(const char *s);
static const char *check_event_type(const char *s);
static int check_unique_subscriber(struct loader *ld, const struct toml_table *t,
				   const char *prefix, const void *base);
static int check_tls_pair(struct loader *ld, const struct toml_table *t, const char *prefix,
			  const void *base);
static int check_backoff(struct loader *ld, const struct toml_table *t, const char *prefix,
			 const void *base);
static int check_unique_app(struct loader *ld, const struct toml_table *t, const char *prefix,
			    const void *base);
static void *member(const struct field *f, void *base);
static size_t *count_of(const struct field *f, void *base);
static const char *env_override(const struct field *f);
static const char *join_key(char buf[KEY_MAX], const char *prefix, const char *key);
static int line_of(const struct toml_table *t, const char *key);
static int table_line(const struct toml_doc *doc, const char *name);
static int int_in_range(struct loader *ld, const struct field *f, const struct toml_keyval *kv,
			const char *key, long long *out);
static int set_string(struct loader *ld, const struct field *f, const struct toml_keyval *kv,
		      const char *key, void *base);
static void store_integer(const struct field *f, void *base, long long v);
static int set_integer(struct loader *ld, const struct field *f, const struct toml_keyval *kv,
		       const char *key, void *base);
static int set_bool(struct loader *ld, const struct field *f, const struct toml_keyval *kv,
		    const char *key, void *base);
static int set_strings(struct loader *ld, const struct field *f, const struct toml_keyval *kv,
		       const char *key, void *base);
static int set_signature_mode(struct loader *ld, const struct field *f,
			      const struct toml_keyval *kv, const char *key, void *base);
static int init_string(const struct field *f, void *base);
static int init_integer(const struct field *f, void *base);
static int init_bool(const struct field *f, void *base);
static int init_signature_mode(const struct field *f, void *base);
static void free_string(const struct field *f, void *base);
static void free_strings(const struct field *f, void *base);
static int init_fields(const struct section *s, void *base);
static void free_fields(const struct section *s, void *base);
static void swap_bytes(void *a, void *b, size_t n);
static void swap_reloadable(const struct field *fields, size_t n_fields, void *cur, void *fresh);
static void *elements(const struct section *s, struct config *cfg);
static size_t *element_count(const struct section *s, struct config *cfg);
static void *add_element(struct loader *ld, const struct section *s, const struct toml_table *t);
static const struct section *section_named(const char *name);
static const struct field *field_named(const struct section *s, const char *key);
static int apply_table(struct loader *ld, const struct section *s, const struct toml_table *t,
		       const char *prefix, void *base);
static int load_table(struct loader *ld, const struct section *s, const struct toml_table *t);
static int apply_env_override(struct loader *ld, const struct toml_doc *doc,
			      const struct section *s, const struct field *f);
static int apply_env_overrides(struct loader *ld, const struct toml_doc *doc,
			       const struct section *s);
static int load_doc(struct loader *ld, const struct toml_doc *doc);
static int init_defaults(struct config *cfg);

/*
 * The row macros name a key's type and give what every row of that type
 * needs; a row adds .flags and .env_override after them when it has any.
 * S is the section's struct (server_config), M its member.
 */
#define STRING(k, s, m, def, chk)                                                                  \
	.key = k, .type = FIELD_STRING, .offset = offsetof(struct s, m), .default_string = def,    \
	.check = chk
#define INT(k, s, m, lo, hi, def)                                                                  \
	.key = k, .type = FIELD_INT, .offset = offsetof(struct s, m), .min = lo, .max = hi,        \
	.default_number = def
#define SIZE(k, s, m, lo, hi, def)                                                                 \
	.key = k, .type = FIELD_SIZE, .offset = offsetof(struct s, m), .min = lo, .max = hi,       \
	.default_number = def
#define BOOL(k, s, m, def)                                                                         \
	.key = k, .type = FIELD_BOOL, .offset = offsetof(struct s, m), .default_number = def
#define STRINGS(k, s, m, count, chk)                                                               \
	.key = k, .type = FIELD_STRINGS, .offset = offsetof(struct s, m),                          \
	.count_offset = offsetof(struct s, count), .check = chk
#define SIGNATURE_MODE(k, s, m, def)                                                               \
	.key = k, .type = FIELD_SIGNATURE_MODE, .offset = offsetof(struct s, m),                   \
	.default_number = def

static const struct field server_fields[] = {
    {STRING("listen", server_config, listen, "127.0.0.1:8080", check_listen)},
    {SIZE("max_body_bytes", server_config, max_body_bytes, 1024, 67108864, 262144)},
    {SIZE("max_pending", server_config, max_pending, 1, 1000000, 4096)},
    {INT("request_timeout_s", server_config, request_timeout_s, 1, 3600, 10)},
    {INT("workers", server_config, workers, 1, 64, 1)},
    {STRING("admin_listen", server_config, admin_listen, "", check_listen_or_empty)},
    {STRING("tls_cert", server_config, tls_cert, "", NULL)},
    {STRING("tls_key", server_config, tls_key, "", NULL)},
    {INT("max_rejections_per_s", server_config, max_rejections_per_s, 0, 1000000, 100)},
    {INT("max_connections", server_config, max_connections, 1, 1000000, 1024)},
    {INT("max_connections_per_ip", server_config, max_connections_per_ip, 0, 1000000, 0)},
};

static const struct field database_fields[] = {
    {STRING("url", database_config, url, NULL, check_nonempty), .flags = FIELD_REQUIRED,
     .env_override = "DATABASE_URL"},
    {INT("max_batch", database_config, max_batch, 1, 10000, 256)},
    {INT("commit_timeout_ms", database_config, commit_timeout_ms, 100, 600000, 5000)},
    {INT("connect_timeout_ms", database_config, connect_timeout_ms, 100, 600000, 5000)},
};

/* Secrets rotate without a restart; name and path identify the app and stay. */
static const struct field app_fields[] = {
    {STRING("name", app_config, name, NULL, check_app_name), .flags = FIELD_REQUIRED},
    {STRING("path", app_config, path, NULL, check_app_path), .flags = FIELD_REQUIRED},
    {STRING("app_key", app_config, app_key, NULL, check_nonempty),
     .flags = FIELD_REQUIRED | FIELD_RELOADABLE},
    {STRING("app_secret", app_config, app_secret, NULL, check_nonempty),
     .flags = FIELD_REQUIRED | FIELD_RELOADABLE},
    {STRINGS("previous_secrets", app_config, previous_secrets, n_previous_secrets, check_nonempty),
     .flags = FIELD_RELOADABLE},
    {SIGNATURE_MODE("signature_mode", app_config, signature_mode, SIGNATURE_SORTED_FIELDS),
     .flags = FIELD_RELOADABLE},
};

static const struct field upstream_fields[] = {
    {STRING("base_url", upstream_config, base_url, "https://openapi.dajisaas.com", check_base_url)},
    {INT("timeout_ms", upstream_config, timeout_ms, 1, 600000, 5000)},
    {INT("max_concurrency", upstream_config, max_concurrency, 1, 1024, 8)},
    {INT("max_rps", upstream_config, max_rps, 1, 100000, 20)},
    {STRING("ca_file", upstream_config, ca_file, "", NULL)},
};

/* Not reloadable: tokens sealed under a key must be opened with that key. */
static const struct field tokens_fields[] = {
    {STRING("key", tokens_config, key, "", check_token_key)},
};

static const struct field reconcile_fields[] = {
    {BOOL("enabled", reconcile_config, enabled, true)},
    {INT("max_attempts", reconcile_config, max_attempts, 1, 1000, 8)},
    {INT("backoff_min_ms", reconcile_config, backoff_min_ms, 1, INT_MAX, 1000)},
    {INT("backoff_max_ms", reconcile_config, backoff_max_ms, 1, INT_MAX, 600000)},
    {INT("sweep_interval_s", reconcile_config, sweep_interval_s, 0, 604800, 3600)},
    {INT("sweep_window_s", reconcile_config, sweep_window_s, 60, 31536000, 259200)},
};

static const struct field relay_fields[] = {
    {BOOL("enabled", relay_config, enabled, true)},
    {INT("max_attempts", relay_config, max_attempts, 1, 1000, 12)},
    {INT("backoff_min_ms", relay_config, backoff_min_ms, 1, INT_MAX, 5000)},
    {INT("backoff_max_ms", relay_config, backoff_max_ms, 1, INT_MAX, 86400000)},
};

/* Secrets rotate without a restart; the rest says where and what to send. */
static const struct field subscriber_fields[] = {
    {STRING("name", subscriber_config, name, NULL, check_app_name), .flags = FIELD_REQUIRED},
    {STRING("url", subscriber_config, url, NULL, check_base_url), .flags = FIELD_REQUIRED},
    {STRING("secret", subscriber_config, secret, NULL, check_webhook_secret),
     .flags = FIELD_REQUIRED | FIELD_RELOADABLE},
    {STRINGS("previous_secrets", subscriber_config, previous_secrets, n_previous_secrets,
	     check_webhook_secret),
     .flags = FIELD_RELOADABLE},
    {STRINGS("events", subscriber_config, events, n_events, check_event_type)},
    {STRINGS("apps", subscriber_config, apps, n_apps, check_app_name)},
    {INT("timeout_ms", subscriber_config, timeout_ms, 1, 600000, 15000)},
    {INT("max_concurrency", subscriber_config, max_concurrency, 1, 1024, 4)},
};

/* Reloadable: turning debug logging on must not need a restart. */
static const struct field log_fields[] = {
    {STRING("level", log_config, level, "info", check_log_level), .flags = FIELD_RELOADABLE},
};

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* M is the section's member of struct config; ROWS its field table. */
#define TABLE(m, rows) .fields = rows, .n_fields = N(rows), .offset = offsetof(struct config, m)
/* M points to the elements, COUNT counts them. */
#define ARRAY(m, count, rows)                                                                      \
	TABLE(m, rows), .is_array = true, .count_offset = offsetof(struct config, count),          \
			.size = sizeof(((struct config *)NULL)->m[0])

static const struct section sections[] = {
    {.name = "server", TABLE(server, server_fields), .check = check_tls_pair},
    {.name = "database", TABLE(database, database_fields)},
    {.name = "app", ARRAY(apps, n_apps, app_fields), .required = true, .check = check_unique_app},
    {.name = "upstream", TABLE(upstream, upstream_fields)},
    {.name = "tokens", TABLE(tokens, tokens_fields)},
    {.name = "reconcile", TABLE(reconcile, reconcile_fields), .check = check_backoff},
    {.name = "relay", TABLE(relay, relay_fields), .check = check_backoff},
    {.name = "subscriber",
     ARRAY(subscribers, n_subscribers, subscriber_fields),
     .check = check_unique_subscriber},
    {.name = "log", TABLE(log, log_fields)},
};

static const struct field_type_ops field_types[] = {
    [FIELD_STRING] = {.set = set_string,
		      .init = init_string,
		      .free = free_string,
		      .size = sizeof(char *)},
    [FIELD_INT] = {.set = set_integer, .init = init_integer, .size = sizeof(int)},
    [FIELD_SIZE] = {.set = set_integer, .init = init_integer, .size = sizeof(size_t)},
    [FIELD_BOOL] = {.set = set_bool, .init = init_bool, .size = sizeof(bool)},
    [FIELD_STRINGS] = {.set = set_strings,
		       .free = free_strings,
		       .size = sizeof(char **),
		       .counted = true},
    [FIELD_SIGNATURE_MODE] = {.set = set_signature_mode,
			      .init = init_signature_mode,
			      .size = sizeof(enum signature_mode)},
};

_Static_assert(N(field_types) == FIELD_TYPES, "a setter for every field type");

/* The names signature_mode accepts. */
static const struct {
	const char *name;
	enum signature_mode mode;
} signature_modes[] = {
    {"sorted_fields", SIGNATURE_SORTED_FIELDS},
    {"message", SIGNATURE_MESSAGE_ONLY},
};

static int
errorf(struct loader *ld, int line, const char *key, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (ld->errlen == 0) {
		return -1;
	}
	if (line > 0) {
		n = snprintf(ld->err, ld->errlen, "%s:%d: %s: ", ld->file, line, key);
	} else {
		n = snprintf(ld->err, ld->errlen, "%s: %s: ", ld->file, key);
	}
	if (n >= 0 && (size_t)n < ld->errlen) {
		va_start(ap, fmt);
		vsnprintf(ld->err + n, ld->errlen - (size_t)n, fmt, ap);
		va_end(ap);
	}
	return -1;
}

/* Sets errno and returns -1 on failure; *out is NUL-terminated. */
static int
read_file(const char *path, char **out, size_t *outlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	size_t cap = 4096, n = 0;
	char *buf;

	if (fd < 0) {
		return -1;
	}
	buf = malloc(cap);
	if (buf == NULL) {
		close(fd);
		errno = ENOMEM;
		return -1;
	}
	for (;;) {
		ssize_t r;

		if (n + 1 == cap) {
			char *bigger;

			if (cap > MAX_FILE_BYTES) {
				explicit_bzero(buf, n);
				free(buf);
				close(fd);
				errno = EFBIG;
				return -1;
			}
			/* Not realloc: the old buffer may hold a secret to wipe. */
			bigger = malloc(cap * 2);
			if (bigger == NULL) {
				explicit_bzero(buf, n);
				free(buf);
				close(fd);
				errno = ENOMEM;
				return -1;
			}
			memcpy(bigger, buf, n);
			explicit_bzero(buf, n);
			free(buf);
			buf = bigger;
			cap *= 2;
		}
		r = read(fd, buf + n, cap - n - 1);
		if (r < 0 && errno == EINTR) {
			continue;
		}
		if (r < 0) {
			int saved = errno;

			explicit_bzero(buf, n);
			free(buf);
			close(fd);
			errno = saved;
			return -1;
		}
		if (r == 0) {
			break;
		}
		n += (size_t)r;
	}
	close(fd);
	buf[n] = '\0';
	*out = buf;
	*outlen = n;
	return 0;
}

static char *
dir_of(const char *file)
{
	const char *slash = strrchr(file, '/');

	if (slash == NULL) {
		return strdup(".");
	}
	if (slash == file) {
		return strdup("/");
	}
	return strndup(file, (size_t)(slash - file));
}

static void
wipe_free(char *s)
{
	if (s != NULL) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

static bool
valid_env_name(const char *name)
{
	if (!((*name >= 'A' && *name <= 'Z') || (*name >= 'a' && *name <= 'z') || *name == '_')) {
		return false;
	}
	for (const char *p = name; *p != '\0'; p++) {
		if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
		      (*p >= '0' && *p <= '9') || *p == '_')) {
			return false;
		}
	}
	return true;
}

/*
 * The value a string stands for: "env:NAME" and "file:PATH" are looked up,
 * anything else is itself.  Messages name KEY, NAME or PATH, never a value.
 */
static int
resolve(struct loader *ld, int line, const char *key, const struct toml_string *in, char **out)
{
	const char *s = in->ptr;
	char *value;
	size_t len;

	if (memchr(s, '\0', in->len) != NULL) {
		return errorf(ld, line, key, "must not contain a NUL character");
	}
	if (strncmp(s, "env:", 4) == 0) {
		const char *name = s + 4;
		const char *env;

		if (!valid_env_name(name)) {
			return errorf(ld, line, key,
				      "\"env:\" needs a variable name ([A-Za-z_][A-Za-z0-9_]*)");
		}
		env = getenv(name);
		if (env == NULL) {
			return errorf(ld, line, key, "environment variable %s is not set", name);
		}
		value = strdup(env);
	} else if (strncmp(s, "file:", 5) == 0) {
		const char *path = s + 5;
		char *full = NULL;

		if (*path == '\0') {
			return errorf(ld, line, key, "\"file:\" needs a path");
		}
		if (*path != '/') {
			size_t n = strlen(ld->dir) + 1 + strlen(path) + 1;

			full = malloc(n);
			if (full == NULL) {
				return errorf(ld, line, key, "out of memory");
			}
			snprintf(full, n, "%s/%s", ld->dir, path);
			path = full;
		}
		if (read_file(path, &value, &len) < 0) {
			int e = errno;

			errorf(ld, line, key, "cannot read file %s: %s", path, strerror(e));
			free(full);
			return -1;
		}
		if (memchr(value, '\0', len) != NULL) {
			explicit_bzero(value, len);
			free(value);
			errorf(ld, line, key, "file %s contains a NUL byte", path);
			free(full);
			return -1;
		}
		free(full);
		/* Editors end files with a newline; the secret does not include it. */
		if (len > 0 && value[len - 1] == '\n') {
			value[--len] = '\0';
			if (len > 0 && value[len - 1] == '\r') {
				value[--len] = '\0';
			}
		}
	} else {
		value = strdup(s);
	}
	if (value == NULL) {
		return errorf(ld, line, key, "out of memory");
	}
	*out = value;
	return 0;
}

static const char *
check_nonempty(const char *s)
{
	return *s == '\0' ? "must not be empty" : NULL;
}

/* "" turns the admin listener off. */
static const char *
check_listen_or_empty(const char *s)
{
	return s[0] == '\0' ? NULL : check_listen(s);
}

static const char *
check_listen(const char *s)
{
	char host[256];
	const char *port, *why = NULL;

	util_split_hostport(s, host, sizeof(host), &port, &why);
	return why;
}

static const char *
check_app_name(const char *s)
{
	if (*s == '\0') {
		return "must not be empty";
	}
	for (const char *p = s; *p != '\0'; p++) {
		if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
		      (*p >= '0' && *p <= '9') || *p == '_' || *p == '.' || *p == '-')) {
			return "may contain only A-Z a-z 0-9 _ . -";
		}
	}
	return NULL;
}

static const char *
check_app_path(const char *s)
{
	static const char *const reserved[] = {"/healthz", "/readyz", "/metrics"};

	if (s[0] != '/') {
		return "must start with '/'";
	}
	for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
		if (*p <= ' ' || *p == 0x7f || *p == '?' || *p == '#') {
			return "must not contain spaces, control characters, '?' or '#'";
		}
	}
	for (size_t i = 0; i < N(reserved); i++) {
		if (strcmp(s, reserved[i]) == 0) {
			return "is reserved (/healthz, /readyz and /metrics are the receiver's "
			       "own)";
		}
	}
	return NULL;
}

static const char *
check_base_url(const char *s)
{
	const char *rest;

	if (strncmp(s, "http://", 7) == 0) {
		rest = s + 7;
	} else if (strncmp(s, "https://", 8) == 0) {
		rest = s + 8;
	} else {
		return "must start with http:// or https://";
	}
	if (*rest == '\0' || *rest == '/') {
		return "has no host";
	}
	for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
		if (*p <= ' ' || *p == 0x7f) {
			return "must not contain spaces or control characters";
		}
	}
	return NULL;
}

static const char *
check_log_level(const char *s)
{
	static const char *const levels[] = {"debug", "info", "warn", "error"};

	for (size_t i = 0; i < N(levels); i++) {
		if (strcmp(s, levels[i]) == 0) {
			return NULL;
		}
	}
	return "must be one of debug, info, warn, error";
}

/*
 * "" (not set), or the 64 hex digits of a 32-byte key.  The reason names
 * the form, never the value (errorf prints the key's name and line).
 */
static const char *
check_token_key(const char *s)
{
	size_t len = strlen(s);

	if (len == 0) {
		return NULL;
	}
	if (len != 64 || strspn(s, "0123456789abcdefABCDEF") != len) {
		return "must be 64 hex digits (32 bytes, as `openssl rand -hex 32` prints them)";
	}
	return NULL;
}

const char *const config_event_types[] = {"order.status_changed", "order.updated",
					  "message.received", NULL};

static const char *
check_event_type(const char *s)
{
	for (size_t i = 0; config_event_types[i] != NULL; i++) {
		if (strcmp(s, config_event_types[i]) == 0) {
			return NULL;
		}
	}
	return "must be one of order.status_changed, order.updated, message.received";
}

/*
 * A Standard Webhooks symmetric secret: "whsec_" and the standard base64
 * (padded) of 24 to 64 bytes.  Only the form is checked here; relay.c
 * decodes it.
 */
static const char *
check_webhook_secret(const char *s)
{
	static const char alphabet[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t n, pad = 0, bytes;

	if (strncmp(s, "whsec_", 6) != 0) {
		return "must start with whsec_ (a Standard Webhooks secret)";
	}
	s += 6;
	n = strlen(s);
	while (pad < 2 && pad < n && s[n - 1 - pad] == '=') {
		pad++;
	}
	if (n == 0 || n % 4 != 0 || strspn(s, alphabet) != n - pad) {
		return "must be whsec_ and base64 (padded with =)";
	}
	bytes = n / 4 * 3 - pad;
	if (bytes < 24 || bytes > 64) {
		return "must be whsec_ and the base64 of 24 to 64 bytes";
	}
	return NULL;
}

/* HTTPS needs both; one alone is a mistake, not a request for plain HTTP. */
static int
check_tls_pair(struct loader *ld, const struct toml_table *t, const char *prefix, const void *base)
{
	const struct server_config *server = base;
	char key[KEY_MAX];

	if ((server->tls_cert[0] == '\0') == (server->tls_key[0] == '\0')) {
		return 0;
	}
	return errorf(ld, t->line,
		      join_key(key, prefix, server->tls_cert[0] == '\0' ? "tls_cert" : "tls_key"),
		      "tls_cert and tls_key go together: set both, or neither");
}

/* Blames the bound the file set: the maximum when it is there, else the minimum. */
static int
check_backoff(struct loader *ld, const struct toml_table *t, const char *prefix, const void *base)
{
	const struct section *s = section_named(prefix);
	int lo = *(const int *)member(field_named(s, "backoff_min_ms"), (void *)base);
	int hi = *(const int *)member(field_named(s, "backoff_max_ms"), (void *)base);
	int max_line = line_of(t, "backoff_max_ms");
	char key[KEY_MAX];

	if (hi >= lo) {
		return 0;
	}
	if (max_line != 0) {
		return errorf(ld, max_line, join_key(key, prefix, "backoff_max_ms"),
			      "must not be less than backoff_min_ms (%d)", lo);
	}
	return errorf(ld, line_of(t, "backoff_min_ms"), join_key(key, prefix, "backoff_min_ms"),
		      "must not be more than backoff_max_ms (%d)", hi);
}

/* Names appear in logs, metrics and relay_deliveries: they must be unique. */
static int
check_unique_subscriber(struct loader *ld, const struct toml_table *t, const char *prefix,
			const void *base)
{
	const struct subscriber_config *sub = base;
	const struct config *cfg = ld->cfg;
	char key[KEY_MAX];

	for (size_t i = 0; i + 1 < cfg->n_subscribers; i++) {
		if (strcmp(cfg->subscribers[i].name, sub->name) == 0) {
			return errorf(ld, line_of(t, "name"), join_key(key, prefix, "name"),
				      "duplicate name, also used by subscriber[%zu]", i + 1);
		}
	}
	return 0;
}

/*
 * Names appear in logs and metrics; paths route requests: both must be
 * unique.  BASE is the app just read, the last of ld->cfg->apps.
 */
static int
check_unique_app(struct loader *ld, const struct toml_table *t, const char *prefix,
		 const void *base)
{
	const struct app_config *app = base;
	const struct config *cfg = ld->cfg;
	char key[KEY_MAX];

	for (size_t i = 0; i + 1 < cfg->n_apps; i++) {
		if (strcmp(cfg->apps[i].name, app->name) == 0) {
			return errorf(ld, line_of(t, "name"), join_key(key, prefix, "name"),
				      "duplicate name, also used by app[%zu]", i + 1);
		}
		if (strcmp(cfg->apps[i].path, app->path) == 0) {
			return errorf(ld, line_of(t, "path"), join_key(key, prefix, "path"),
				      "duplicate path, also used by app[%zu]", i + 1);
		}
	}
	return 0;
}

static void *
member(const struct field *f, void *base)
{
	return (char *)base + f->offset;
}

static size_t *
count_of(const struct field *f, void *base)
{
	return (void *)((char *)base + f->count_offset);
}

/* The variable's value when it overrides F, else NULL: empty counts as unset. */
static const char *
env_override(const struct field *f)
{
	const char *env = f->env_override != NULL ? getenv(f->env_override) : NULL;

	return env != NULL && *env != '\0' ? env : NULL;
}

/* "server" + "listen" -> "server.listen", in BUF. */
static const char *
join_key(char buf[KEY_MAX], const char *prefix, const char *key)
{
	snprintf(buf, KEY_MAX, "%s.%s", prefix, key);
	return buf;
}

/* The line KEY is on in T, or 0 when T does not set it. */
static int
line_of(const struct toml_table *t, const char *key)
{
	for (size_t i = 0; i < t->n_keys; i++) {
		if (strcmp(t->keys[i].key, key) == 0) {
			return t->keys[i].line;
		}
	}
	return 0;
}

/* The header line of the [NAME] table, or 0 when the file has none. */
static int
table_line(const struct toml_doc *doc, const char *name)
{
	for (size_t i = 0; i < doc->n_tables; i++) {
		if (strcmp(doc->tables[i].name, name) == 0) {
			return doc->tables[i].line;
		}
	}
	return 0;
}

static int
set_string(struct loader *ld, const struct field *f, const struct toml_keyval *kv, const char *key,
	   void *base)
{
	char **slot = member(f, base);
	const char *why;
	char *s;

	if (kv->value.type != TOML_STRING) {
		return errorf(ld, kv->line, key, "expected a string");
	}
	/* Overridden: the file's value is not used, so not resolved either. */
	if (env_override(f) != NULL) {
		return 0;
	}
	if (resolve(ld, kv->line, key, &kv->value.str, &s) < 0) {
		return -1;
	}
	why = f->check != NULL ? f->check(s) : NULL;
	if (why != NULL) {
		wipe_free(s);
		return errorf(ld, kv->line, key, "%s", why);
	}
	wipe_free(*slot);
	*slot = s;
	return 0;
}

/* The integer of KV, when it is one and within F's range. */
static int
int_in_range(struct loader *ld, const struct field *f, const struct toml_keyval *kv,
	     const char *key, long long *out)
{
	if (kv->value.type != TOML_INT) {
		return errorf(ld, kv->line, key, "expected an integer");
	}
	if (kv->value.i < f->min || kv->value.i > f->max) {
		if (f->max == INT_MAX) {
			return errorf(ld, kv->line, key, "must be at least %lld", f->min);
		}
		return errorf(ld, kv->line, key, "must be between %lld and %lld", f->min, f->max);
	}
	*out = kv->value.i;
	return 0;
}

/* FIELD_INT and FIELD_SIZE: one TOML integer, stored at the member's width. */
static void
store_integer(const struct field *f, void *base, long long v)
{
	if (f->type == FIELD_SIZE) {
		*(size_t *)member(f, base) = (size_t)v;
	} else {
		*(int *)member(f, base) = (int)v;
	}
}

static int
set_integer(struct loader *ld, const struct field *f, const struct toml_keyval *kv, const char *key,
	    void *base)
{
	long long v = 0;

	if (int_in_range(ld, f, kv, key, &v) < 0) {
		return -1;
	}
	store_integer(f, base, v);
	return 0;
}

static int
set_bool(struct loader *ld, const struct field *f, const struct toml_keyval *kv, const char *key,
	 void *base)
{
	if (kv->value.type != TOML_BOOL) {
		return errorf(ld, kv->line, key, "expected a boolean (true or false)");
	}
	*(bool *)member(f, base) = kv->value.b;
	return 0;
}

/* Each item is resolved and checked on its own, and named "KEY[N]" in errors. */
static int
set_strings(struct loader *ld, const struct field *f, const struct toml_keyval *kv, const char *key,
	    void *base)
{
	const struct toml_value *v = &kv->value;
	char **items = NULL;

	if (v->type != TOML_STRING_ARRAY) {
		return errorf(ld, kv->line, key, "expected an array of strings");
	}
	if (v->n_items > 0) {
		items = calloc(v->n_items, sizeof(*items));
		if (items == NULL) {
			return errorf(ld, kv->line, key, "out of memory");
		}
	}
	for (size_t i = 0; i < v->n_items; i++) {
		char item_key[KEY_MAX + 32]; /* key plus "[N]" */
		const char *why = NULL;
		bool ok;

		snprintf(item_key, sizeof(item_key), "%s[%zu]", key, i + 1);
		ok = resolve(ld, kv->line, item_key, &v->items[i], &items[i]) == 0;
		if (ok && f->check != NULL && (why = f->check(items[i])) != NULL) {
			errorf(ld, kv->line, item_key, "%s", why);
			ok = false;
		}
		if (!ok) {
			for (size_t k = 0; k <= i; k++) {
				wipe_free(items[k]);
			}
			free(items);
			return -1;
		}
	}
	free_strings(f, base);
	*(char ***)member(f, base) = items;
	*count_of(f, base) = v->n_items;
	return 0;
}

static int
set_signature_mode(struct loader *ld, const struct field *f, const struct toml_keyval *kv,
		   const char *key, void *base)
{
	char *s;

	if (kv->value.type != TOML_STRING) {
		return errorf(ld, kv->line, key, "expected a string");
	}
	if (resolve(ld, kv->line, key, &kv->value.str, &s) < 0) {
		return -1;
	}
	for (size_t i = 0; i < N(signature_modes); i++) {
		if (strcmp(s, signature_modes[i].name) == 0) {
			*(enum signature_mode *)member(f, base) = signature_modes[i].mode;
			wipe_free(s);
			return 0;
		}
	}
	wipe_free(s);
	return errorf(ld, kv->line, key, "must be \"sorted_fields\" or \"message\"");
}

/* A copy, since every string of a config is wiped and freed alike. */
static int
init_string(const struct field *f, void *base)
{
	char **slot = member(f, base);

	if (f->default_string == NULL) {
		return 0;
	}
	*slot = strdup(f->default_string);
	return *slot != NULL ? 0 : -1;
}

static int
init_integer(const struct field *f, void *base)
{
	store_integer(f, base, f->default_number);
	return 0;
}

static int
init_bool(const struct field *f, void *base)
{
	*(bool *)member(f, base) = f->default_number != 0;
	return 0;
}

static int
init_signature_mode(const struct field *f, void *base)
{
	*(enum signature_mode *)member(f, base) = (enum signature_mode)f->default_number;
	return 0;
}

static void
free_string(const struct field *f, void *base)
{
	char **slot = member(f, base);

	wipe_free(*slot);
	*slot = NULL;
}

static void
free_strings(const struct field *f, void *base)
{
	char ***list = member(f, base);
	size_t *count = count_of(f, base);

	for (size_t i = 0; i < *count; i++) {
		wipe_free((*list)[i]);
	}
	free(*list);
	*list = NULL;
	*count = 0;
}

/* BASE starts zeroed; a failure leaves it safe for free_fields(). */
static int
init_fields(const struct section *s, void *base)
{
	for (size_t i = 0; i < s->n_fields; i++) {
		const struct field *f = &s->fields[i];

		if (field_types[f->type].init != NULL && field_types[f->type].init(f, base) < 0) {
			return -1;
		}
	}
	return 0;
}

static void
free_fields(const struct section *s, void *base)
{
	for (size_t i = 0; i < s->n_fields; i++) {
		const struct field *f = &s->fields[i];

		if (field_types[f->type].free != NULL) {
			field_types[f->type].free(f, base);
		}
	}
}

static void
swap_bytes(void *a, void *b, size_t n)
{
	unsigned char *p = a, *q = b;

	for (size_t i = 0; i < n; i++) {
		unsigned char t = p[i];

		p[i] = q[i];
		q[i] = t;
	}
}

/* Member by member, so that a string array's count travels with it. */
static void
swap_reloadable(const struct field *fields, size_t n_fields, void *cur, void *fresh)
{
	for (size_t i = 0; i < n_fields; i++) {
		const struct field *f = &fields[i];

		if ((f->flags & FIELD_RELOADABLE) == 0) {
			continue;
		}
		swap_bytes(member(f, cur), member(f, fresh), field_types[f->type].size);
		if (field_types[f->type].counted) {
			swap_bytes(count_of(f, cur), count_of(f, fresh), sizeof(size_t));
		}
	}
}

/*
 * An array section's elements.  The member is a typed pointer (struct
 * app_config *); memcpy reads it without pretending it is a void *.
 */
static void *
elements(const struct section *s, struct config *cfg)
{
	void *p;

	memcpy(&p, (char *)cfg + s->offset, sizeof(p));
	return p;
}

static size_t *
element_count(const struct section *s, struct config *cfg)
{
	return (void *)((char *)cfg + s->count_offset);
}

/* A new last element of S, holding the defaults; NULL with the error written. */
static void *
add_element(struct loader *ld, const struct section *s, const struct toml_table *t)
{
	size_t *count = element_count(s, ld->cfg);
	char *elems = realloc(elements(s, ld->cfg), (*count + 1) * s->size);
	char *elem;

	if (elems == NULL) {
		errorf(ld, t->line, s->name, "out of memory");
		return NULL;
	}
	memcpy((char *)ld->cfg + s->offset, &elems, sizeof(elems));
	elem = elems + *count * s->size;
	(*count)++;
	memset(elem, 0, s->size);
	if (init_fields(s, elem) < 0) {
		errorf(ld, t->line, s->name, "out of memory");
		return NULL;
	}
	return elem;
}

static const struct section *
section_named(const char *name)
{
	for (size_t i = 0; i < N(sections); i++) {
		if (strcmp(sections[i].name, name) == 0) {
			return &sections[i];
		}
	}
	return NULL;
}

static const struct field *
field_named(const struct section *s, const char *key)
{
	for (size_t i = 0; i < s->n_fields; i++) {
		if (strcmp(s->fields[i].key, key) == 0) {
			return &s->fields[i];
		}
	}
	return NULL;
}

/* Reads the keys of T, in file order, into BASE, which holds the defaults. */
static int
apply_table(struct loader *ld, const struct section *s, const struct toml_table *t,
	    const char *prefix, void *base)
{
	char key[KEY_MAX];

	for (size_t k = 0; k < t->n_keys; k++) {
		const struct toml_keyval *kv = &t->keys[k];
		const struct field *f = field_named(s, kv->key);

		join_key(key, prefix, kv->key);
		if (f == NULL) {
			return errorf(ld, kv->line, key, "unknown key");
		}
		if (field_types[f->type].set(ld, f, kv, key, base) < 0) {
			return -1;
		}
	}
	for (size_t i = 0; i < s->n_fields; i++) {
		const struct field *f = &s->fields[i];

		/* One the environment may set is checked after the file: apply_env_override(). */
		if ((f->flags & FIELD_REQUIRED) != 0 && f->env_override == NULL &&
		    line_of(t, f->key) == 0) {
			return errorf(ld, t->line, join_key(key, prefix, f->key),
				      "missing (required)");
		}
	}
	return 0;
}

static int
load_table(struct loader *ld, const struct section *s, const struct toml_table *t)
{
	char prefix[32];
	void *base;

	if (s->is_array && !t->is_array_element) {
		return errorf(ld, t->line, s->name, "must be [[%s]], not [%s]", s->name, s->name);
	}
	if (!s->is_array && t->is_array_element) {
		return errorf(ld, t->line, s->name, "must be [%s], not [[%s]]", s->name, s->name);
	}
	if (s->is_array) {
		base = add_element(ld, s, t);
		if (base == NULL) {
			return -1;
		}
		snprintf(prefix, sizeof(prefix), "%s[%zu]", s->name, *element_count(s, ld->cfg));
	} else {
		base = (char *)ld->cfg + s->offset;
		snprintf(prefix, sizeof(prefix), "%s", s->name);
	}
	if (apply_table(ld, s, t, prefix, base) < 0) {
		return -1;
	}
	return s->check != NULL ? s->check(ld, t, prefix, base) : 0;
}

/*
 * The environment beats the file (deployments keep the database URL
 * there), and a required key may come from either, so this runs after the
 * whole file.  A missing one is reported at its table's header, or without
 * a line when the file has no such table.
 */
static int
apply_env_override(struct loader *ld, const struct toml_doc *doc, const struct section *s,
		   const struct field *f)
{
	char **slot = member(f, (char *)ld->cfg + s->offset);
	const char *env = env_override(f);
	char key[KEY_MAX];

	join_key(key, s->name, f->key);
	if (env != NULL) {
		char *copy = strdup(env);

		if (copy == NULL) {
			return errorf(ld, 0, key, "out of memory");
		}
		wipe_free(*slot);
		*slot = copy;
	} else if ((f->flags & FIELD_REQUIRED) != 0 && *slot == NULL) {
		return errorf(ld, table_line(doc, s->name), key,
			      "missing: set %s in [%s] or the %s environment variable", f->key,
			      s->name, f->env_override);
	}
	return 0;
}

/* Arrays of tables have no overrides: which element would one replace? */
static int
apply_env_overrides(struct loader *ld, const struct toml_doc *doc, const struct section *s)
{
	for (size_t i = 0; i < s->n_fields && !s->is_array; i++) {
		if (s->fields[i].env_override != NULL &&
		    apply_env_override(ld, doc, s, &s->fields[i]) < 0) {
			return -1;
		}
	}
	return 0;
}

static int
load_doc(struct loader *ld, const struct toml_doc *doc)
{
	/* The root table's keys: nothing is expected outside a table. */
	if (doc->n_tables > 0 && doc->tables[0].n_keys > 0) {
		const struct toml_keyval *kv = &doc->tables[0].keys[0];

		return errorf(ld, kv->line, kv->key, "unknown key (not inside a table)");
	}
	for (size_t i = 1; i < doc->n_tables; i++) {
		const struct toml_table *t = &doc->tables[i];
		const struct section *s = section_named(t->name);

		if (s == NULL) {
			return errorf(ld, t->line, t->name, "unknown table");
		}
		if (load_table(ld, s, t) < 0) {
			return -1;
		}
	}
	for (size_t i = 0; i < N(sections); i++) {
		const struct section *s = &sections[i];

		if (s->is_array && s->required && *element_count(s, ld->cfg) == 0) {
			if (ld->errlen > 0) {
				snprintf(ld->err, ld->errlen, "%s: no [[%s]] table", ld->file,
					 s->name);
			}
			return -1;
		}
	}
	for (size_t i = 0; i < N(sections); i++) {
		if (apply_env_overrides(ld, doc, &sections[i]) < 0) {
			return -1;
		}
	}
	return 0;
}

/* The tables' defaults; each [[app]] gets its own as it is read. */
static int
init_defaults(struct config *cfg)
{
	for (size_t i = 0; i < N(sections); i++) {
		if (!sections[i].is_array &&
		    init_fields(&sections[i], (char *)cfg + sections[i].offset) < 0) {
			return -1;
		}
	}
	return 0;
}

int
config_load(const char *file, struct config *cfg, char *err, size_t errlen)
{
	struct loader ld = {
	    .file = file, .err = err, .errlen = err != NULL ? errlen : 0, .cfg = cfg};
	struct toml_doc doc;
	struct toml_error terr;
	char *text = NULL;
	size_t len = 0;
	int rc = -1;

	memset(cfg, 0, sizeof(*cfg));
	if (ld.errlen > 0) {
		err[0] = '\0';
	}
	if (read_file(file, &text, &len) < 0) {
		int e = errno;

		if (ld.errlen > 0) {
			snprintf(err, errlen, "%s: cannot read: %s", file, strerror(e));
		}
		return -1;
	}
	if (toml_parse(text, len, &doc, &terr) < 0) {
		if (ld.errlen == 0) {
			/* nothing to report into */
		} else if (terr.key[0] != '\0') {
			snprintf(err, errlen, "%s:%d: %s: %s", file, terr.line, terr.key, terr.msg);
		} else {
			snprintf(err, errlen, "%s:%d: syntax error: %s", file, terr.line, terr.msg);
		}
		goto out;
	}
	ld.dir = dir_of(file);
	cfg->file = strdup(file);
	if (ld.dir == NULL || cfg->file == NULL || init_defaults(cfg) < 0) {
		if (ld.errlen > 0) {
			snprintf(err, errlen, "%s: out of memory", file);
		}
	} else {
		rc = load_doc(&ld, &doc);
	}
	toml_free(&doc);
out:
	explicit_bzero(text, len);
	free(text);
	free(ld.dir);
	if (rc < 0) {
		config_free(cfg);
	}
	return rc;
}

void
config_free(struct config *cfg)
{
	if (cfg == NULL) {
		return;
	}
	for (size_t i = 0; i < N(sections); i++) {
		const struct section *s = &sections[i];

		if (!s->is_array) {
			free_fields(s, (char *)cfg + s->offset);
			continue;
		}
		for (size_t k = 0; k < *element_count(s, cfg); k++) {
			free_fields(s, (char *)elements(s, cfg) + k * s->size);
		}
		free(elements(s, cfg));
	}
	free(cfg->file);
	memset(cfg, 0, sizeof(*cfg));
}

/*
 * Swapping, not copying: FRESH ends up holding the old secrets, and freeing
 * it wipes them.  Nothing else in CFG changes - only the rows marked
 * FIELD_RELOADABLE - so pointers into it (app names held by deliveries in
 * flight) stay valid.  Apps are matched by name; an app only one side has
 * is left alone.
 */
size_t
config_adopt_secrets(struct config *cfg, struct config *fresh)
{
	size_t adopted = 0;

	for (size_t i = 0; i < cfg->n_apps; i++) {
		const struct app_config *match = config_app_by_name(fresh, cfg->apps[i].name);

		if (match == NULL) {
			continue;
		}
		swap_reloadable(app_fields, N(app_fields), &cfg->apps[i],
				&fresh->apps[match - fresh->apps]);
		adopted++;
	}
	for (size_t i = 0; i < cfg->n_subscribers; i++) {
		const struct subscriber_config *match =
		    config_subscriber_by_name(fresh, cfg->subscribers[i].name);

		if (match != NULL) {
			swap_reloadable(subscriber_fields, N(subscriber_fields),
					&cfg->subscribers[i],
					&fresh->subscribers[match - fresh->subscribers]);
		}
	}
	for (size_t i = 0; i < N(sections); i++) {
		const struct section *s = &sections[i];

		if (!s->is_array) {
			swap_reloadable(s->fields, s->n_fields, (char *)cfg + s->offset,
					(char *)fresh + s->offset);
		}
	}
	return adopted;
}

const struct app_config *
config_app_by_path(const struct config *cfg, const char *path)
{
	if (cfg == NULL || path == NULL) {
		return NULL;
	}
	for (size_t i = 0; i < cfg->n_apps; i++) {
		if (cfg->apps[i].path != NULL && strcmp(cfg->apps[i].path, path) == 0) {
			return &cfg->apps[i];
		}
	}
	return NULL;
}

const struct app_config *
config_app_by_name(const struct config *cfg, const char *name)
{
	if (cfg == NULL || name == NULL) {
		return NULL;
	}
	for (size_t i = 0; i < cfg->n_apps; i++) {
		if (strcmp(cfg->apps[i].name, name) == 0) {
			return &cfg->apps[i];
		}
	}
	return NULL;
}

void
config_each_key(void (*fn)(const char *section, const char *key, bool reloadable, void *arg),
		void *arg)
{
	for (size_t i = 0; i < N(sections); i++) {
		for (size_t k = 0; k < sections[i].n_fields; k++) {
			const struct field *f = &sections[i].fields[k];

			fn(sections[i].name, f->key, (f->flags & FIELD_RELOADABLE) != 0, arg);
		}
	}
}

const struct subscriber_config *
config_subscriber_by_name(const struct config *cfg, const char *name)
{
	if (cfg == NULL || name == NULL) {
		return NULL;
	}
	for (size_t i = 0; i < cfg->n_subscribers; i++) {
		if (strcmp(cfg->subscribers[i].name, name) == 0) {
			return &cfg->subscribers[i];
		}
	}
	return NULL;
}
