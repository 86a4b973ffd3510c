/*
 * config.c - receiver.toml -> struct config (see config.h).
 *
 * How it works: the file is read whole and parsed by toml.c into a flat
 * list of tables.  Each table name maps to a schema (a list of fields, each
 * with its type, place in the struct, range and check); the loader walks
 * the keys of every table in file order, refuses any key the schema does
 * not list, type-checks and range-checks each value and writes it into the
 * struct, which was filled with defaults first.  Checks that involve more
 * than one key (backoff bounds, unique app names and paths, the database
 * URL) run after the table or the file.
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

enum field_kind {
	FIELD_STRING,
	FIELD_INT,     /* stored as int */
	FIELD_SIZE,    /* stored as size_t */
	FIELD_BOOL,    /* stored as bool */
	FIELD_STRINGS, /* char ** plus a size_t count at count_offset */
	FIELD_SIGNATURE_MODE,
};

struct field {
	const char *key;
	enum field_kind kind;
	size_t offset;
	size_t count_offset;
	long long min, max;
	/* For strings: NULL when the value is acceptable, else what is wrong. */
	const char *(*check)(const char *value);
	bool required;
	/* When this variable is set and non-empty, it replaces the value. */
	const char *env_override;
};

/* No table has more fields than this: the size of apply_table's lines[]. */
#define MAX_FIELDS 16

struct loader {
	const char *file;
	char *dir; /* where relative file: paths start */
	char *err;
	size_t errlen;
};

static int errorf(struct loader *ld, int line, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int read_file(const char *path, char **out, size_t *outlen);
static char *dir_of(const char *file);
static void wipe_free(char *s);
static void swap_str(char **a, char **b);
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
static int set_defaults(struct config *cfg);
static int set_value(struct loader *ld, const struct field *f, const struct toml_keyval *kv,
		     const char *key, void *base);
static int apply_table(struct loader *ld, const struct toml_table *t, const char *prefix,
		       const struct field *fields, size_t n_fields, void *base, int *lines);
static int load_app(struct loader *ld, struct config *cfg, const struct toml_table *t);
static int load_doc(struct loader *ld, struct config *cfg, const struct toml_doc *doc);

#define STRING(k, type, member, chk, req)                                                          \
	{                                                                                          \
		.key = k, .kind = FIELD_STRING, .offset = offsetof(type, member), .check = chk,    \
		.required = req                                                                    \
	}
#define INT(k, type, member, lo, hi)                                                               \
	{                                                                                          \
		.key = k, .kind = FIELD_INT, .offset = offsetof(type, member), .min = lo,          \
		.max = hi                                                                          \
	}
#define SIZE(k, type, member, lo, hi)                                                              \
	{                                                                                          \
		.key = k, .kind = FIELD_SIZE, .offset = offsetof(type, member), .min = lo,         \
		.max = hi                                                                          \
	}

static const struct field server_fields[] = {
    STRING("listen", struct server_config, listen, check_listen, false),
    SIZE("max_body_bytes", struct server_config, max_body_bytes, 1024, 67108864),
    SIZE("max_pending", struct server_config, max_pending, 1, 1000000),
    INT("request_timeout_s", struct server_config, request_timeout_s, 1, 3600),
    INT("workers", struct server_config, workers, 1, 64),
    STRING("admin_listen", struct server_config, admin_listen, check_listen_or_empty, false),
    STRING("tls_cert", struct server_config, tls_cert, NULL, false),
    STRING("tls_key", struct server_config, tls_key, NULL, false),
    INT("max_rejections_per_s", struct server_config, max_rejections_per_s, 0, 1000000),
    INT("max_connections", struct server_config, max_connections, 1, 1000000),
};

static const struct field database_fields[] = {
    {.key = "url",
     .kind = FIELD_STRING,
     .offset = offsetof(struct database_config, url),
     .check = check_nonempty,
     .env_override = "DATABASE_URL"},
    INT("max_batch", struct database_config, max_batch, 1, 10000),
    INT("commit_timeout_ms", struct database_config, commit_timeout_ms, 100, 600000),
    INT("connect_timeout_ms", struct database_config, connect_timeout_ms, 100, 600000),
};

/* Indexes into app_fields, for the checks across apps. */
enum { APP_NAME, APP_PATH };

static const struct field app_fields[] = {
    [APP_NAME] = STRING("name", struct app_config, name, check_app_name, true),
    [APP_PATH] = STRING("path", struct app_config, path, check_app_path, true),
    STRING("app_key", struct app_config, app_key, check_nonempty, true),
    STRING("app_secret", struct app_config, app_secret, check_nonempty, true),
    {.key = "previous_secrets",
     .kind = FIELD_STRINGS,
     .offset = offsetof(struct app_config, previous_secrets),
     .count_offset = offsetof(struct app_config, n_previous_secrets),
     .check = check_nonempty},
    {.key = "signature_mode",
     .kind = FIELD_SIGNATURE_MODE,
     .offset = offsetof(struct app_config, signature_mode)},
};

static const struct field upstream_fields[] = {
    STRING("base_url", struct upstream_config, base_url, check_base_url, false),
    INT("timeout_ms", struct upstream_config, timeout_ms, 1, 600000),
    INT("max_concurrency", struct upstream_config, max_concurrency, 1, 1024),
    INT("max_rps", struct upstream_config, max_rps, 1, 100000),
    STRING("ca_file", struct upstream_config, ca_file, NULL, false),
};

/* Indexes into reconcile_fields, for the backoff check. */
enum { RECONCILE_BACKOFF_MIN = 2, RECONCILE_BACKOFF_MAX = 3 };

static const struct field reconcile_fields[] = {
    {.key = "enabled", .kind = FIELD_BOOL, .offset = offsetof(struct reconcile_config, enabled)},
    INT("max_attempts", struct reconcile_config, max_attempts, 1, 1000),
    [RECONCILE_BACKOFF_MIN] =
	INT("backoff_min_ms", struct reconcile_config, backoff_min_ms, 1, INT_MAX),
    [RECONCILE_BACKOFF_MAX] =
	INT("backoff_max_ms", struct reconcile_config, backoff_max_ms, 1, INT_MAX),
    INT("sweep_interval_s", struct reconcile_config, sweep_interval_s, 0, 604800),
    INT("sweep_window_s", struct reconcile_config, sweep_window_s, 60, 31536000),
};

static const struct field log_fields[] = {
    STRING("level", struct log_config, level, check_log_level, false),
};

#define N(a) (sizeof(a) / sizeof((a)[0]))

_Static_assert(N(server_fields) <= MAX_FIELDS && N(database_fields) <= MAX_FIELDS &&
		   N(app_fields) <= MAX_FIELDS && N(upstream_fields) <= MAX_FIELDS &&
		   N(reconcile_fields) <= MAX_FIELDS && N(log_fields) <= MAX_FIELDS,
	       "raise MAX_FIELDS");

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

static int
set_defaults(struct config *cfg)
{
	cfg->server.listen = strdup("127.0.0.1:8080");
	cfg->server.max_body_bytes = 262144;
	cfg->server.max_pending = 4096;
	cfg->server.request_timeout_s = 10;
	cfg->server.workers = 1;
	cfg->server.admin_listen = strdup("");
	cfg->server.tls_cert = strdup("");
	cfg->server.tls_key = strdup("");
	cfg->server.max_rejections_per_s = 100;
	cfg->server.max_connections = 1024;

	cfg->database.max_batch = 256;
	cfg->database.commit_timeout_ms = 5000;
	cfg->database.connect_timeout_ms = 5000;

	cfg->upstream.base_url = strdup("https://openapi.dajisaas.com");
	cfg->upstream.timeout_ms = 5000;
	cfg->upstream.max_concurrency = 8;
	cfg->upstream.max_rps = 20;
	cfg->upstream.ca_file = strdup("");

	cfg->reconcile.enabled = true;
	cfg->reconcile.max_attempts = 8;
	cfg->reconcile.backoff_min_ms = 1000;
	cfg->reconcile.backoff_max_ms = 600000;
	cfg->reconcile.sweep_interval_s = 3600;
	cfg->reconcile.sweep_window_s = 259200;

	cfg->log.level = strdup("info");

	if (cfg->server.listen == NULL || cfg->upstream.base_url == NULL ||
	    cfg->upstream.ca_file == NULL || cfg->log.level == NULL ||
	    cfg->server.admin_listen == NULL || cfg->server.tls_cert == NULL ||
	    cfg->server.tls_key == NULL) {
		return -1;
	}
	return 0;
}

static int
set_value(struct loader *ld, const struct field *f, const struct toml_keyval *kv, const char *key,
	  void *base)
{
	const struct toml_value *v = &kv->value;
	char *slot = (char *)base + f->offset;

	switch (f->kind) {
	case FIELD_STRING: {
		char *s;
		const char *why;
		const char *env;

		if (v->type != TOML_STRING) {
			return errorf(ld, kv->line, key, "expected a string");
		}
		/* Overridden: the file's value is not used, so not resolved either. */
		if (f->env_override != NULL && (env = getenv(f->env_override)) != NULL &&
		    *env != '\0') {
			return 0;
		}
		if (resolve(ld, kv->line, key, &v->str, &s) < 0) {
			return -1;
		}
		why = f->check != NULL ? f->check(s) : NULL;
		if (why != NULL) {
			wipe_free(s);
			return errorf(ld, kv->line, key, "%s", why);
		}
		wipe_free(*(char **)(void *)slot);
		*(char **)(void *)slot = s;
		return 0;
	}
	case FIELD_INT:
	case FIELD_SIZE:
		if (v->type != TOML_INT) {
			return errorf(ld, kv->line, key, "expected an integer");
		}
		if (v->i < f->min || v->i > f->max) {
			if (f->max == INT_MAX) {
				return errorf(ld, kv->line, key, "must be at least %lld", f->min);
			}
			return errorf(ld, kv->line, key, "must be between %lld and %lld", f->min,
				      f->max);
		}
		if (f->kind == FIELD_INT) {
			*(int *)(void *)slot = (int)v->i;
		} else {
			*(size_t *)(void *)slot = (size_t)v->i;
		}
		return 0;
	case FIELD_BOOL:
		if (v->type != TOML_BOOL) {
			return errorf(ld, kv->line, key, "expected a boolean (true or false)");
		}
		*(bool *)(void *)slot = v->b;
		return 0;
	case FIELD_STRINGS: {
		char ***list = (char ***)(void *)slot;
		size_t *count = (size_t *)(void *)((char *)base + f->count_offset);
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
			char item_key[192]; /* key plus "[N]" */
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
		for (size_t i = 0; i < *count; i++) {
			wipe_free((*list)[i]);
		}
		free(*list);
		*list = items;
		*count = v->n_items;
		return 0;
	}
	case FIELD_SIGNATURE_MODE: {
		char *s;
		int rc = 0;

		if (v->type != TOML_STRING) {
			return errorf(ld, kv->line, key, "expected a string");
		}
		if (resolve(ld, kv->line, key, &v->str, &s) < 0) {
			return -1;
		}
		if (strcmp(s, "sorted_fields") == 0) {
			*(enum signature_mode *)(void *)slot = SIGNATURE_SORTED_FIELDS;
		} else if (strcmp(s, "message") == 0) {
			*(enum signature_mode *)(void *)slot = SIGNATURE_MESSAGE_ONLY;
		} else {
			rc = errorf(ld, kv->line, key, "must be \"sorted_fields\" or \"message\"");
		}
		wipe_free(s);
		return rc;
	}
	}
	return errorf(ld, kv->line, key, "internal error: unknown field kind");
}

/*
 * Reads table T into BASE following FIELDS.  lines[i] becomes the line of
 * fields[i] in the file, or 0 when the default stands.
 */
static int
apply_table(struct loader *ld, const struct toml_table *t, const char *prefix,
	    const struct field *fields, size_t n_fields, void *base, int *lines)
{
	char key[160];

	for (size_t i = 0; i < n_fields; i++) {
		lines[i] = 0;
	}
	for (size_t k = 0; k < t->n_keys; k++) {
		const struct toml_keyval *kv = &t->keys[k];
		size_t i;

		snprintf(key, sizeof(key), "%s.%s", prefix, kv->key);
		for (i = 0; i < n_fields; i++) {
			if (strcmp(fields[i].key, kv->key) == 0) {
				break;
			}
		}
		if (i == n_fields) {
			return errorf(ld, kv->line, key, "unknown key");
		}
		if (set_value(ld, &fields[i], kv, key, base) < 0) {
			return -1;
		}
		lines[i] = kv->line;
	}
	for (size_t i = 0; i < n_fields; i++) {
		if (fields[i].required && lines[i] == 0) {
			snprintf(key, sizeof(key), "%s.%s", prefix, fields[i].key);
			return errorf(ld, t->line, key, "missing (required)");
		}
	}
	return 0;
}

static int
load_app(struct loader *ld, struct config *cfg, const struct toml_table *t)
{
	struct app_config *apps, *app;
	int lines[MAX_FIELDS];
	char prefix[32];
	char key[64];

	apps = realloc(cfg->apps, (cfg->n_apps + 1) * sizeof(*apps));
	if (apps == NULL) {
		return errorf(ld, t->line, "app", "out of memory");
	}
	cfg->apps = apps;
	app = &apps[cfg->n_apps++];
	memset(app, 0, sizeof(*app));
	app->signature_mode = SIGNATURE_SORTED_FIELDS;

	snprintf(prefix, sizeof(prefix), "app[%zu]", cfg->n_apps);
	if (apply_table(ld, t, prefix, app_fields, N(app_fields), app, lines) < 0) {
		return -1;
	}
	/* Names appear in logs and metrics; paths route requests: both must be unique. */
	for (size_t i = 0; i + 1 < cfg->n_apps; i++) {
		if (strcmp(apps[i].name, app->name) == 0) {
			snprintf(key, sizeof(key), "%s.name", prefix);
			return errorf(ld, lines[APP_NAME], key,
				      "duplicate name, also used by app[%zu]", i + 1);
		}
		if (strcmp(apps[i].path, app->path) == 0) {
			snprintf(key, sizeof(key), "%s.path", prefix);
			return errorf(ld, lines[APP_PATH], key,
				      "duplicate path, also used by app[%zu]", i + 1);
		}
	}
	return 0;
}

static int
load_doc(struct loader *ld, struct config *cfg, const struct toml_doc *doc)
{
	int lines[MAX_FIELDS];
	int database_line = 0;
	const char *env;

	/* The root table's keys: nothing is expected outside a table. */
	if (doc->n_tables > 0 && doc->tables[0].n_keys > 0) {
		const struct toml_keyval *kv = &doc->tables[0].keys[0];

		return errorf(ld, kv->line, kv->key, "unknown key (not inside a table)");
	}
	for (size_t i = 1; i < doc->n_tables; i++) {
		const struct toml_table *t = &doc->tables[i];
		const struct field *fields;
		size_t n_fields;
		void *base;

		if (strcmp(t->name, "app") == 0) {
			if (!t->is_array_element) {
				return errorf(ld, t->line, "app", "must be [[app]], not [app]");
			}
			if (load_app(ld, cfg, t) < 0) {
				return -1;
			}
			continue;
		}
		if (strcmp(t->name, "server") == 0) {
			fields = server_fields, n_fields = N(server_fields), base = &cfg->server;
		} else if (strcmp(t->name, "database") == 0) {
			fields = database_fields, n_fields = N(database_fields);
			base = &cfg->database;
			database_line = t->line;
		} else if (strcmp(t->name, "upstream") == 0) {
			fields = upstream_fields, n_fields = N(upstream_fields);
			base = &cfg->upstream;
		} else if (strcmp(t->name, "reconcile") == 0) {
			fields = reconcile_fields, n_fields = N(reconcile_fields);
			base = &cfg->reconcile;
		} else if (strcmp(t->name, "log") == 0) {
			fields = log_fields, n_fields = N(log_fields), base = &cfg->log;
		} else {
			return errorf(ld, t->line, t->name, "unknown table");
		}
		if (t->is_array_element) {
			return errorf(ld, t->line, t->name, "must be [%s], not [[%s]]", t->name,
				      t->name);
		}
		if (apply_table(ld, t, t->name, fields, n_fields, base, lines) < 0) {
			return -1;
		}
		if (base == &cfg->server &&
		    (cfg->server.tls_cert[0] == '\0') != (cfg->server.tls_key[0] == '\0')) {
			return errorf(ld, t->line,
				      cfg->server.tls_cert[0] == '\0' ? "server.tls_cert"
								      : "server.tls_key",
				      "tls_cert and tls_key go together: set both, or neither");
		}
		if (base == &cfg->reconcile &&
		    cfg->reconcile.backoff_max_ms < cfg->reconcile.backoff_min_ms) {
			if (lines[RECONCILE_BACKOFF_MAX] != 0) {
				return errorf(ld, lines[RECONCILE_BACKOFF_MAX],
					      "reconcile.backoff_max_ms",
					      "must not be less than backoff_min_ms (%d)",
					      cfg->reconcile.backoff_min_ms);
			}
			return errorf(ld, lines[RECONCILE_BACKOFF_MIN], "reconcile.backoff_min_ms",
				      "must not be more than backoff_max_ms (%d)",
				      cfg->reconcile.backoff_max_ms);
		}
	}

	if (cfg->n_apps == 0) {
		if (ld->errlen > 0) {
			snprintf(ld->err, ld->errlen, "%s: no [[app]] table", ld->file);
		}
		return -1;
	}
	env = getenv("DATABASE_URL");
	if (env != NULL && *env != '\0') {
		char *url = strdup(env);

		if (url == NULL) {
			return errorf(ld, 0, "database.url", "out of memory");
		}
		wipe_free(cfg->database.url);
		cfg->database.url = url;
	} else if (cfg->database.url == NULL) {
		return errorf(ld, database_line, "database.url",
			      "missing: set url in [database] or the DATABASE_URL environment "
			      "variable");
	}
	return 0;
}

int
config_load(const char *file, struct config *cfg, char *err, size_t errlen)
{
	struct loader ld = {.file = file, .err = err, .errlen = err != NULL ? errlen : 0};
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
	if (ld.dir == NULL || cfg->file == NULL || set_defaults(cfg) < 0) {
		if (ld.errlen > 0) {
			snprintf(err, errlen, "%s: out of memory", file);
		}
	} else {
		rc = load_doc(&ld, cfg, &doc);
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
	free(cfg->file);
	wipe_free(cfg->server.listen);
	wipe_free(cfg->server.admin_listen);
	wipe_free(cfg->server.tls_cert);
	wipe_free(cfg->server.tls_key);
	wipe_free(cfg->database.url);
	for (size_t i = 0; i < cfg->n_apps; i++) {
		struct app_config *app = &cfg->apps[i];

		wipe_free(app->name);
		wipe_free(app->path);
		wipe_free(app->app_key);
		wipe_free(app->app_secret);
		for (size_t k = 0; k < app->n_previous_secrets; k++) {
			wipe_free(app->previous_secrets[k]);
		}
		free(app->previous_secrets);
	}
	free(cfg->apps);
	wipe_free(cfg->upstream.base_url);
	wipe_free(cfg->upstream.ca_file);
	wipe_free(cfg->log.level);
	memset(cfg, 0, sizeof(*cfg));
}

/*
 * Swapping, not copying: FRESH ends up holding the old secrets, and freeing
 * it wipes them.  Nothing else in CFG changes, so pointers into it (app
 * names held by deliveries in flight) stay valid.
 */
size_t
config_adopt_secrets(struct config *cfg, struct config *fresh)
{
	size_t adopted = 0;

	for (size_t i = 0; i < cfg->n_apps; i++) {
		struct app_config *cur = &cfg->apps[i], *neu = NULL;
		char **tmpv;
		size_t n;
		enum signature_mode mode;

		for (size_t k = 0; k < fresh->n_apps && neu == NULL; k++)
			if (strcmp(fresh->apps[k].name, cur->name) == 0)
				neu = &fresh->apps[k];
		if (neu == NULL)
			continue;
		swap_str(&cur->app_key, &neu->app_key);
		swap_str(&cur->app_secret, &neu->app_secret);
		tmpv = cur->previous_secrets;
		cur->previous_secrets = neu->previous_secrets;
		neu->previous_secrets = tmpv;
		n = cur->n_previous_secrets;
		cur->n_previous_secrets = neu->n_previous_secrets;
		neu->n_previous_secrets = n;
		mode = cur->signature_mode;
		cur->signature_mode = neu->signature_mode;
		neu->signature_mode = mode;
		adopted++;
	}
	swap_str(&cfg->log.level, &fresh->log.level);
	return adopted;
}

static void
swap_str(char **a, char **b)
{
	char *t = *a;

	*a = *b;
	*b = t;
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
