/*
 * test_config.c - receiver.toml loading (config.c) and the TOML reader
 * under it (toml.c).
 *
 * Every test writes its files into one mkdtemp directory, removed at exit.
 * Error tests assert the exact "FILE:LINE: KEY: " prefix, since operators
 * and the acceptance checks rely on it, and that no secret value leaks
 * into an error.
 */
#include "check.h"
#include "config.h"
#include "toml.h"

#include <dirent.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

static char tmpdir[64];

static void cleanup(void);
static void setup(void);
static const char *write_file(const char *name, const char *text);
static const char *load_err(const char *text, char *err, size_t errlen);
static int parse(const char *text, struct toml_doc *doc, struct toml_error *err);
static const struct toml_keyval *find_key(const struct toml_doc *doc, size_t table,
					  const char *key);

/* The smallest valid file; tests add to it or replace parts of it. */
#define DB "[database]\nurl = \"postgresql://localhost/test\"\n"
#define APP                                                                                        \
	"[[app]]\nname = \"default\"\npath = \"/1688/messages\"\napp_key = \"key1\"\n"             \
	"app_secret = \"s3cret\"\n"

/* Loads TEXT, expects failure and an error starting with "PATH" REST. */
#define CHECK_ERR(text, rest)                                                                      \
	do {                                                                                       \
		char e_[512], want_[640];                                                          \
		const char *p_ = load_err((text), e_, sizeof(e_));                                 \
		snprintf(want_, sizeof(want_), "%s%s", p_, (rest));                                \
		if (strncmp(e_, want_, strlen(want_)) != 0) {                                      \
			fprintf(stderr, "%s:%d: error \"%s\", want prefix \"%s\"\n", __FILE__,     \
				__LINE__, e_, want_);                                              \
			check_state.failures++;                                                    \
		}                                                                                  \
	} while (0)

static void
cleanup(void)
{
	DIR *d = opendir(tmpdir);
	struct dirent *de;
	char path[512];

	if (d == NULL) {
		return;
	}
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0) {
			snprintf(path, sizeof(path), "%s/%s", tmpdir, de->d_name);
			unlink(path);
		}
	}
	closedir(d);
	rmdir(tmpdir);
}

static void
setup(void)
{
	if (tmpdir[0] == '\0') {
		snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_config.XXXXXX");
		if (mkdtemp(tmpdir) == NULL) {
			perror("mkdtemp");
			exit(2);
		}
		atexit(cleanup);
	}
	/* The caller's environment must not decide the outcome. */
	unsetenv("DATABASE_URL");
}

static const char *
write_file(const char *name, const char *text)
{
	static char path[4][512];
	static int next;
	char *p = path[next++ % 4];
	FILE *f;

	setup();
	snprintf(p, sizeof(path[0]), "%s/%s", tmpdir, name);
	f = fopen(p, "wb");
	if (f == NULL || fwrite(text, 1, strlen(text), f) != strlen(text) || fclose(f) != 0) {
		perror(p);
		exit(2);
	}
	return p;
}

/* Returns the config file's path; ERR holds the message. */
static const char *
load_err(const char *text, char *err, size_t errlen)
{
	const char *path = write_file("bad.toml", text);
	struct config cfg;
	int rc;

	memset(&cfg, 0xa5, sizeof(cfg));
	rc = config_load(path, &cfg, err, errlen);
	CHECK_INT(rc, -1);
	/* A failed load leaves nothing behind to free. */
	CHECK(cfg.file == NULL && cfg.apps == NULL && cfg.n_apps == 0 &&
	      cfg.server.listen == NULL && cfg.database.url == NULL);
	config_free(&cfg);
	return path;
}

static int
parse(const char *text, struct toml_doc *doc, struct toml_error *err)
{
	return toml_parse(text, strlen(text), doc, err);
}

static const struct toml_keyval *
find_key(const struct toml_doc *doc, size_t table, const char *key)
{
	if (table >= doc->n_tables) {
		return NULL;
	}
	for (size_t i = 0; i < doc->tables[table].n_keys; i++) {
		if (strcmp(doc->tables[table].keys[i].key, key) == 0) {
			return &doc->tables[table].keys[i];
		}
	}
	return NULL;
}

static void
test_full_file(void)
{
	static const char text[] = "# every key, none at its default\n"
				   "[server]\n"
				   "listen = \"[::1]:9443\"   # IPv6 in brackets\n"
				   "max_body_bytes = 1_048_576\n"
				   "max_pending = 100\n"
				   "request_timeout_s = 30\n"
				   "\n"
				   "[database]\n"
				   "url = 'postgresql://u@db/receiver?sslmode=require'\n"
				   "max_batch = 1\n"
				   "commit_timeout_ms = 100\n"
				   "connect_timeout_ms = 600000\n"
				   "\n"
				   "[[app]]\n"
				   "name = \"shop-a\"\n"
				   "path = \"/1688/a\"\n"
				   "app_key = \"1234567\"\n"
				   "app_secret = \"secret-a\"\n"
				   "previous_secrets = [\n"
				   "  \"old-1\",  # rotated last month\n"
				   "  'old-2',\n"
				   "]\n"
				   "signature_mode = \"message\"\n"
				   "\n"
				   "[[app]]\n"
				   "name = \"shop.b_2\"\n"
				   "path = \"/1688/b\"\n"
				   "app_key = \"7654321\"\n"
				   "app_secret = \"secret-b\"\n"
				   "previous_secrets = []\n"
				   "signature_mode = \"sorted_fields\"\n"
				   "\n"
				   "[upstream]\n"
				   "base_url = \"http://127.0.0.1:18080\"\n"
				   "timeout_ms = 1\n"
				   "max_concurrency = 1024\n"
				   "max_rps = 100000\n"
				   "ca_file = \"/etc/ssl/test-ca.pem\"\n"
				   "\n"
				   "[reconcile]\n"
				   "enabled = false\n"
				   "max_attempts = 1000\n"
				   "backoff_min_ms = 5\n"
				   "backoff_max_ms = 5\n"
				   "sweep_interval_s = 0\n"
				   "sweep_window_s = 60\n"
				   "\n"
				   "[log]\n"
				   "level = \"debug\"\n";
	const char *path = write_file("full.toml", text);
	struct config cfg;
	char err[512] = "";

	CHECK_INT(config_load(path, &cfg, err, sizeof(err)), 0);
	CHECK_STR(err, "");
	CHECK_STR(cfg.file, path);
	CHECK_STR(cfg.server.listen, "[::1]:9443");
	CHECK_INT(cfg.server.max_body_bytes, 1048576);
	CHECK_INT(cfg.server.max_pending, 100);
	CHECK_INT(cfg.server.request_timeout_s, 30);
	CHECK_STR(cfg.database.url, "postgresql://u@db/receiver?sslmode=require");
	CHECK_INT(cfg.database.max_batch, 1);
	CHECK_INT(cfg.database.commit_timeout_ms, 100);
	CHECK_INT(cfg.database.connect_timeout_ms, 600000);
	CHECK_INT(cfg.n_apps, 2);
	if (cfg.n_apps == 2) {
		CHECK_STR(cfg.apps[0].name, "shop-a");
		CHECK_STR(cfg.apps[0].path, "/1688/a");
		CHECK_STR(cfg.apps[0].app_key, "1234567");
		CHECK_STR(cfg.apps[0].app_secret, "secret-a");
		CHECK_INT(cfg.apps[0].n_previous_secrets, 2);
		if (cfg.apps[0].n_previous_secrets == 2) {
			CHECK_STR(cfg.apps[0].previous_secrets[0], "old-1");
			CHECK_STR(cfg.apps[0].previous_secrets[1], "old-2");
		}
		CHECK_INT(cfg.apps[0].signature_mode, SIGNATURE_MESSAGE_ONLY);
		CHECK_STR(cfg.apps[1].name, "shop.b_2");
		CHECK_STR(cfg.apps[1].path, "/1688/b");
		CHECK_STR(cfg.apps[1].app_key, "7654321");
		CHECK_STR(cfg.apps[1].app_secret, "secret-b");
		CHECK_INT(cfg.apps[1].n_previous_secrets, 0);
		CHECK(cfg.apps[1].previous_secrets == NULL);
		CHECK_INT(cfg.apps[1].signature_mode, SIGNATURE_SORTED_FIELDS);
		CHECK(config_app_by_path(&cfg, "/1688/b") == &cfg.apps[1]);
		CHECK(config_app_by_path(&cfg, "/1688/a") == &cfg.apps[0]);
	}
	CHECK(config_app_by_path(&cfg, "/1688/") == NULL);
	CHECK(config_app_by_path(&cfg, "/1688/a/") == NULL);
	CHECK_STR(cfg.upstream.base_url, "http://127.0.0.1:18080");
	CHECK_INT(cfg.upstream.timeout_ms, 1);
	CHECK_INT(cfg.upstream.max_concurrency, 1024);
	CHECK_INT(cfg.upstream.max_rps, 100000);
	CHECK_STR(cfg.upstream.ca_file, "/etc/ssl/test-ca.pem");
	CHECK(!cfg.reconcile.enabled);
	CHECK_INT(cfg.reconcile.max_attempts, 1000);
	CHECK_INT(cfg.reconcile.backoff_min_ms, 5);
	CHECK_INT(cfg.reconcile.backoff_max_ms, 5);
	CHECK_INT(cfg.reconcile.sweep_interval_s, 0);
	CHECK_INT(cfg.reconcile.sweep_window_s, 60);
	CHECK_STR(cfg.log.level, "debug");

	config_free(&cfg);
	CHECK(cfg.apps == NULL && cfg.n_apps == 0 && cfg.file == NULL);
	config_free(&cfg); /* twice is harmless */
}

static void
test_defaults(void)
{
	const char *path = write_file("min.toml", DB APP);
	struct config cfg;
	char err[512] = "";

	CHECK_INT(config_load(path, &cfg, err, sizeof(err)), 0);
	CHECK_STR(err, "");
	CHECK_STR(cfg.server.listen, "127.0.0.1:8080");
	CHECK_INT(cfg.server.max_body_bytes, 262144);
	CHECK_INT(cfg.server.max_pending, 4096);
	CHECK_INT(cfg.server.request_timeout_s, 10);
	CHECK_STR(cfg.database.url, "postgresql://localhost/test");
	CHECK_INT(cfg.database.max_batch, 256);
	CHECK_INT(cfg.database.commit_timeout_ms, 5000);
	CHECK_INT(cfg.database.connect_timeout_ms, 5000);
	CHECK_INT(cfg.n_apps, 1);
	if (cfg.n_apps == 1) {
		CHECK_STR(cfg.apps[0].name, "default");
		CHECK_STR(cfg.apps[0].path, "/1688/messages");
		CHECK_STR(cfg.apps[0].app_key, "key1");
		CHECK_STR(cfg.apps[0].app_secret, "s3cret");
		CHECK_INT(cfg.apps[0].n_previous_secrets, 0);
		CHECK_INT(cfg.apps[0].signature_mode, SIGNATURE_SORTED_FIELDS);
	}
	CHECK(config_app_by_path(&cfg, "/1688/messages") == cfg.apps);
	CHECK_STR(cfg.upstream.base_url, "https://openapi.dajisaas.com");
	CHECK_INT(cfg.upstream.timeout_ms, 5000);
	CHECK_INT(cfg.upstream.max_concurrency, 8);
	CHECK_INT(cfg.upstream.max_rps, 20);
	CHECK_STR(cfg.upstream.ca_file, "");
	CHECK(cfg.reconcile.enabled);
	CHECK_INT(cfg.reconcile.max_attempts, 8);
	CHECK_INT(cfg.reconcile.backoff_min_ms, 1000);
	CHECK_INT(cfg.reconcile.backoff_max_ms, 600000);
	CHECK_INT(cfg.reconcile.sweep_interval_s, 3600);
	CHECK_INT(cfg.reconcile.sweep_window_s, 259200);
	CHECK_STR(cfg.log.level, "info");
	config_free(&cfg);
}

/*
 * Every default comes from config.c's rows: a few of each type that
 * test_defaults does not look at, each [[app]] starting from its own
 * defaults, and string defaults that are each config's own copy.
 */
static void
test_defaults_from_rows(void)
{
	const char *path =
	    write_file("rows.toml", DB APP "previous_secrets = ['old']\n"
					   "signature_mode = 'message'\n"
					   "[[app]]\nname = \"b\"\npath = \"/b\"\napp_key = \"k\"\n"
					   "app_secret = \"s\"\n");
	struct config cfg, again;
	char err[512] = "";

	CHECK_INT(config_load(path, &cfg, err, sizeof(err)), 0);
	CHECK_STR(err, "");
	/* Strings */
	CHECK_STR(cfg.server.admin_listen, "");
	CHECK_STR(cfg.server.tls_cert, "");
	CHECK_STR(cfg.server.tls_key, "");
	/* Ints and sizes */
	CHECK_INT(cfg.server.workers, 1);
	CHECK_INT(cfg.server.max_rejections_per_s, 100);
	CHECK_INT(cfg.server.max_connections, 1024);
	CHECK_INT(cfg.server.max_body_bytes, 262144);
	/* Bool */
	CHECK(cfg.reconcile.enabled);
	CHECK_INT(cfg.n_apps, 2);
	if (cfg.n_apps == 2) {
		CHECK_INT(cfg.apps[0].signature_mode, SIGNATURE_MESSAGE_ONLY);
		CHECK_INT(cfg.apps[0].n_previous_secrets, 1);
		/* The second app's enum and string array are the rows' defaults again. */
		CHECK_INT(cfg.apps[1].signature_mode, SIGNATURE_SORTED_FIELDS);
		CHECK_INT(cfg.apps[1].n_previous_secrets, 0);
		CHECK(cfg.apps[1].previous_secrets == NULL);
	}

	CHECK_INT(config_load(path, &again, err, sizeof(err)), 0);
	CHECK(cfg.server.listen != again.server.listen);
	CHECK(cfg.log.level != again.log.level);
	CHECK_STR(again.log.level, "info");
	config_free(&again);
	config_free(&cfg);
}

/* The running file, then the one SIGHUP reads: every key differs. */
#define ADOPT_OLD                                                                                  \
	"[server]\nlisten = \"127.0.0.1:1111\"\nmax_body_bytes = 2048\n" DB APP                    \
	"[[app]]\nname = \"gone\"\npath = \"/gone\"\napp_key = \"kg\"\napp_secret = \"sg\"\n"      \
	"[log]\nlevel = \"warn\"\n"
#define ADOPT_NEW                                                                                  \
	"[server]\nlisten = \"127.0.0.1:2222\"\nmax_body_bytes = 4096\n"                           \
	"[database]\nurl = \"postgresql://elsewhere/db\"\nmax_batch = 9\n"                         \
	"[[app]]\nname = \"new\"\npath = \"/new\"\napp_key = \"kn\"\napp_secret = \"sn\"\n"        \
	"[[app]]\nname = \"default\"\npath = \"/changed\"\napp_key = \"key2\"\n"                   \
	"app_secret = \"secret2\"\nprevious_secrets = [\"s3cret\"]\n"                              \
	"signature_mode = \"message\"\n"                                                           \
	"[upstream]\nbase_url = \"http://127.0.0.1:1\"\n"                                          \
	"[reconcile]\nenabled = false\n"                                                           \
	"[log]\nlevel = \"debug\"\n"

/* SIGHUP swaps exactly the reloadable keys: secrets and the log level. */
static void
test_adopt_secrets(void)
{
	struct config cfg, fresh;
	struct app_config *apps;
	char *name, *listen;
	char err[512] = "";

	CHECK_INT(config_load(write_file("old.toml", ADOPT_OLD), &cfg, err, sizeof(err)), 0);
	CHECK_INT(config_load(write_file("new.toml", ADOPT_NEW), &fresh, err, sizeof(err)), 0);
	CHECK_STR(err, "");
	if (cfg.n_apps != 2 || fresh.n_apps != 2) {
		CHECK(!"both files load with two apps");
		config_free(&cfg);
		config_free(&fresh);
		return;
	}
	apps = cfg.apps, name = cfg.apps[0].name, listen = cfg.server.listen;

	/* Only "default" is in both files. */
	CHECK_INT(config_adopt_secrets(&cfg, &fresh), 1);
	CHECK_STR(cfg.apps[0].app_key, "key2");
	CHECK_STR(cfg.apps[0].app_secret, "secret2");
	CHECK_INT(cfg.apps[0].n_previous_secrets, 1);
	if (cfg.apps[0].n_previous_secrets == 1) {
		CHECK_STR(cfg.apps[0].previous_secrets[0], "s3cret");
	}
	CHECK_INT(cfg.apps[0].signature_mode, SIGNATURE_MESSAGE_ONLY);
	CHECK_STR(cfg.log.level, "debug");

	/* The rest stays, at the same addresses: deliveries in flight hold them. */
	CHECK(cfg.apps == apps && cfg.n_apps == 2);
	CHECK(cfg.apps[0].name == name);
	CHECK_STR(cfg.apps[0].name, "default");
	CHECK_STR(cfg.apps[0].path, "/1688/messages");
	CHECK_STR(cfg.apps[1].name, "gone");
	CHECK_STR(cfg.apps[1].app_key, "kg");
	CHECK_STR(cfg.apps[1].app_secret, "sg");
	CHECK(cfg.server.listen == listen);
	CHECK_STR(cfg.server.listen, "127.0.0.1:1111");
	CHECK_INT(cfg.server.max_body_bytes, 2048);
	CHECK_STR(cfg.database.url, "postgresql://localhost/test");
	CHECK_INT(cfg.database.max_batch, 256);
	CHECK_STR(cfg.upstream.base_url, "https://openapi.dajisaas.com");
	CHECK(cfg.reconcile.enabled);

	/* Swapped, not copied: the old secrets are FRESH's now, for config_free to wipe. */
	CHECK_STR(fresh.apps[1].app_key, "key1");
	CHECK_STR(fresh.apps[1].app_secret, "s3cret");
	CHECK_INT(fresh.apps[1].n_previous_secrets, 0);
	CHECK(fresh.apps[1].previous_secrets == NULL);
	CHECK_INT(fresh.apps[1].signature_mode, SIGNATURE_SORTED_FIELDS);
	CHECK_STR(fresh.apps[1].path, "/changed");
	CHECK_STR(fresh.apps[0].app_key, "kn");
	CHECK_STR(fresh.log.level, "warn");
	CHECK_STR(fresh.server.listen, "127.0.0.1:2222");

	config_free(&fresh);
	CHECK_STR(cfg.apps[0].app_secret, "secret2");
	config_free(&cfg);
}

static void
collect_reloadable(const char *section, const char *key, bool reloadable, void *arg)
{
	char *out = arg;
	size_t n = strlen(out);

	if (reloadable) {
		snprintf(out + n, 512 - n, "%s%s.%s", n > 0 ? " " : "", section, key);
	}
}

static void
count_keys(const char *section, const char *key, bool reloadable, void *arg)
{
	(void)section, (void)key, (void)reloadable;
	(*(size_t *)arg)++;
}

/* What SIGHUP may change is a decision: changing the set must change this test. */
static void
test_reloadable_set(void)
{
	char reloadable[512] = "";
	size_t n = 0;

	config_each_key(collect_reloadable, reloadable);
	CHECK_STR(reloadable, "app.app_key app.app_secret app.previous_secrets app.signature_mode "
			      "subscriber.secret subscriber.previous_secrets log.level");
	config_each_key(count_keys, &n);
	CHECK(n > 20);
}

static void
test_free_zeroed_and_lookup_null(void)
{
	struct config cfg;

	memset(&cfg, 0, sizeof(cfg));
	config_free(&cfg);
	config_free(&cfg);
	config_free(NULL);
	CHECK(config_app_by_path(&cfg, "/x") == NULL);
	CHECK(config_app_by_path(NULL, "/x") == NULL);
}

static void
test_env_and_file_values(void)
{
	char abs[600], text[2048];
	const char *path;
	struct config cfg;
	char err[512] = "";

	setup();
	write_file("key.txt", "key-from-file\n");
	write_file("old.txt", "old-from-file\r\n");
	write_file("two.txt", "two-newlines\n\n");
	snprintf(abs, sizeof(abs), "%s", write_file("listen.txt", "0.0.0.0:9090"));
	setenv("TEST_CFG_SECRET", "secret-from-env", 1);
	setenv("TEST_CFG_OLD", "old-from-env", 1);
	setenv("TEST_CFG_LEVEL", "warn", 1);
	snprintf(text, sizeof(text),
		 "[server]\n"
		 "listen = \"file:%s\"\n" DB "[[app]]\n"
		 "name = \"default\"\n"
		 "path = \"/1688/messages\"\n"
		 "app_key = \"file:key.txt\"\n"
		 "app_secret = \"env:TEST_CFG_SECRET\"\n"
		 "previous_secrets = [\"file:old.txt\", \"env:TEST_CFG_OLD\", \"file:two.txt\","
		 " \"plain\"]\n"
		 "[log]\n"
		 "level = 'env:TEST_CFG_LEVEL'\n",
		 abs);
	path = write_file("envfile.toml", text);
	CHECK_INT(config_load(path, &cfg, err, sizeof(err)), 0);
	CHECK_STR(err, "");
	CHECK_STR(cfg.server.listen, "0.0.0.0:9090");
	CHECK_STR(cfg.log.level, "warn");
	if (cfg.n_apps == 1) {
		CHECK_STR(cfg.apps[0].app_key, "key-from-file");
		CHECK_STR(cfg.apps[0].app_secret, "secret-from-env");
		CHECK_INT(cfg.apps[0].n_previous_secrets, 4);
		if (cfg.apps[0].n_previous_secrets == 4) {
			CHECK_STR(cfg.apps[0].previous_secrets[0], "old-from-file");
			CHECK_STR(cfg.apps[0].previous_secrets[1], "old-from-env");
			/* Only one trailing newline is the file's; the rest is the value. */
			CHECK_STR(cfg.apps[0].previous_secrets[2], "two-newlines\n");
			CHECK_STR(cfg.apps[0].previous_secrets[3], "plain");
		}
	} else {
		CHECK_INT(cfg.n_apps, 1);
	}
	config_free(&cfg);
	unsetenv("TEST_CFG_SECRET");
	unsetenv("TEST_CFG_OLD");
	unsetenv("TEST_CFG_LEVEL");
}

static void
test_database_url_env(void)
{
	const char *path;
	struct config cfg;
	char err[512] = "";

	/* Overrides the file, whose value is then not even resolved. */
	path = write_file("dburl.toml",
			  "[database]\nurl = \"env:TEST_CFG_UNSET_DB\"\nmax_batch = 7\n" APP);
	setenv("DATABASE_URL", "postgresql://from-env/db", 1);
	CHECK_INT(config_load(path, &cfg, err, sizeof(err)), 0);
	CHECK_STR(err, "");
	CHECK_STR(cfg.database.url, "postgresql://from-env/db");
	CHECK_INT(cfg.database.max_batch, 7);
	config_free(&cfg);

	/* Makes url optional. */
	path = write_file("dburl.toml", APP);
	setenv("DATABASE_URL", "postgresql://from-env/db2", 1);
	CHECK_INT(config_load(path, &cfg, err, sizeof(err)), 0);
	CHECK_STR(cfg.database.url, "postgresql://from-env/db2");
	config_free(&cfg);

	/* An empty DATABASE_URL counts as unset. */
	setenv("DATABASE_URL", "", 1);
	CHECK_INT(config_load(path, &cfg, err, sizeof(err)), -1);
	CHECK(strstr(err, ": database.url: missing") != NULL);
	config_free(&cfg);
	unsetenv("DATABASE_URL");
}

static void
test_error_unknown_key(void)
{
	CHECK_ERR("[server]\nlisten = \"127.0.0.1:1\"\nbogus = 1\n" DB APP,
		  ":3: server.bogus: unknown key");
	/* DB is lines 1-2, the first app 3-7, the second app starts at 8. */
	CHECK_ERR(DB APP "[[app]]\nname = \"b\"\ncolour = \"red\"\n",
		  ":10: app[2].colour: unknown key");
}

static void
test_error_unknown_table(void)
{
	CHECK_ERR(DB APP "\n[servr]\nlisten = \"x\"\n", ":9: servr: unknown table");
	CHECK_ERR("top = 1\n" DB APP, ":1: top: unknown key");
	CHECK_ERR(DB "[app]\nname = \"x\"\n", ":3: app: must be [[app]]");
	CHECK_ERR("[[server]]\n" DB APP, ":1: server: must be [server], not [[server]]");
}

static void
test_error_wrong_type(void)
{
	CHECK_ERR("[server]\nmax_body_bytes = \"1024\"\n" DB APP,
		  ":2: server.max_body_bytes: expected an integer");
	CHECK_ERR("[server]\nlisten = 8080\n" DB APP, ":2: server.listen: expected a string");
	CHECK_ERR(DB APP "[reconcile]\nenabled = \"yes\"\n",
		  ":9: reconcile.enabled: expected a boolean");
	CHECK_ERR(DB APP "previous_secrets = \"old\"\n",
		  ":8: app[1].previous_secrets: expected an array of strings");
	CHECK_ERR(DB APP "signature_mode = true\n", ":8: app[1].signature_mode: expected a string");
	CHECK_ERR("[database]\nurl = ['a']\n" APP, ":2: database.url: expected a string");
}

static void
test_error_duplicate_key(void)
{
	CHECK_ERR(DB APP "name = \"again\"\n", ":8: app[1].name: duplicate key");
	CHECK_ERR("[server]\nlisten = \"127.0.0.1:1\"\n# again\nlisten = \"127.0.0.1:2\"\n" DB APP,
		  ":4: server.listen: duplicate key");
	CHECK_ERR("[server]\n" DB "[server]\n" APP, ":4: server: duplicate table");
	CHECK_ERR(DB "[[database]]\n" APP, ":3: database: already defined as a table");
}

static void
test_error_missing(void)
{
	char err[512];
	const char *path;

	path = load_err(DB, err, sizeof(err));
	{
		char want[600];

		snprintf(want, sizeof(want), "%s: no [[app]] table", path);
		CHECK_STR(err, want);
	}
	/* A missing required key is reported at its table's header. */
	CHECK_ERR(DB "\n[[app]]\nname = \"a\"\npath = \"/a\"\napp_key = \"k\"\n",
		  ":4: app[1].app_secret: missing (required)");
	CHECK_ERR(DB APP "[[app]]\npath = \"/b\"\napp_key = \"k\"\napp_secret = \"s\"\n",
		  ":8: app[2].name: missing (required)");
	CHECK_ERR("[database]\nmax_batch = 2\n" APP, ":1: database.url: missing");
	CHECK_ERR(APP, ": database.url: missing");
	CHECK_ERR(DB APP "app_secret = \"\"\n", ":8: app[1].app_secret: duplicate key");
	CHECK_ERR(DB "[[app]]\nname = \"a\"\npath = \"/a\"\napp_key = \"k\"\napp_secret = \"\"\n",
		  ":7: app[1].app_secret: must not be empty");
	CHECK_ERR(DB APP "previous_secrets = ['x', '']\n",
		  ":8: app[1].previous_secrets[2]: must not be empty");
}

static void
test_error_listen(void)
{
	static const char *const bad[] = {
	    "localhost", "1.2.3.4:0", "1.2.3.4:65536", "::1:80",   "[::1]80", "[zz]:80",
	    ":80",	 "host:80x",  "host:",	       "host:+80", "a b:80",  "",
	};
	static const char *const good[] = {"localhost:80", "[::]:65535", "0.0.0.0:1",
					   "[2001:db8::1]:8443"};
	char text[512];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(text, sizeof(text), "[server]\nlisten = \"%s\"\n" DB APP, bad[i]);
		CHECK_ERR(text, ":2: server.listen: ");
	}
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		struct config cfg;
		char err[512] = "";

		snprintf(text, sizeof(text), "[server]\nlisten = \"%s\"\n" DB APP, good[i]);
		CHECK_INT(config_load(write_file("listen.toml", text), &cfg, err, sizeof(err)), 0);
		CHECK_STR(cfg.server.listen, good[i]);
		CHECK_STR(err, "");
		config_free(&cfg);
	}
	CHECK_ERR("[server]\nlisten = \"1.2.3.4:0\"\n" DB APP,
		  ":2: server.listen: port must be between 1 and 65535");
}

static void
test_error_range(void)
{
	CHECK_ERR("[server]\nmax_body_bytes = 1023\n" DB APP,
		  ":2: server.max_body_bytes: must be between 1024 and 67108864");
	CHECK_ERR("[server]\nmax_body_bytes = 67_108_865\n" DB APP,
		  ":2: server.max_body_bytes: must be between 1024 and 67108864");
	CHECK_ERR("[server]\nmax_pending = -1\n" DB APP,
		  ":2: server.max_pending: must be between 1 and 1000000");
	CHECK_ERR(DB APP "[reconcile]\nsweep_interval_s = 604801\n",
		  ":9: reconcile.sweep_interval_s: must be between 0 and 604800");
	CHECK_ERR(DB APP "[reconcile]\nbackoff_min_ms = 0\n",
		  ":9: reconcile.backoff_min_ms: must be at least 1");
	CHECK_ERR(DB APP "[reconcile]\nbackoff_min_ms = 2147483648\n",
		  ":9: reconcile.backoff_min_ms: must be at least 1");
	CHECK_ERR(DB APP "[reconcile]\nbackoff_min_ms = 10\nbackoff_max_ms = 9\n",
		  ":10: reconcile.backoff_max_ms: must not be less than backoff_min_ms");
	CHECK_ERR(DB APP "[reconcile]\nbackoff_min_ms = 600001\n",
		  ":9: reconcile.backoff_min_ms: must not be more than backoff_max_ms");
	CHECK_ERR("[database]\nurl = 'x'\ncommit_timeout_ms = 99\n" APP,
		  ":3: database.commit_timeout_ms: must be between 100 and 600000");
	CHECK_ERR(DB APP "[upstream]\nmax_concurrency = 1025\n",
		  ":9: upstream.max_concurrency: must be between 1 and 1024");
}

static void
test_error_strings(void)
{
	CHECK_ERR(DB APP "[upstream]\nbase_url = \"ftp://x\"\n",
		  ":9: upstream.base_url: must start with http:// or https://");
	CHECK_ERR(DB APP "[upstream]\nbase_url = \"https://\"\n", ":9: upstream.base_url: ");
	CHECK_ERR(DB APP "[log]\nlevel = \"verbose\"\n",
		  ":9: log.level: must be one of debug, info, warn, error");
	CHECK_ERR(DB APP "signature_mode = \"hmac\"\n",
		  ":8: app[1].signature_mode: must be \"sorted_fields\" or \"message\"");
	CHECK_ERR(DB "[[app]]\nname = \"a b\"\n", ":4: app[1].name: may contain only");
	CHECK_ERR(DB "[[app]]\nname = \"a\"\npath = \"1688\"\n",
		  ":5: app[1].path: must start with '/'");
	CHECK_ERR(DB "[[app]]\nname = \"a\"\npath = \"/a?b=1\"\n", ":5: app[1].path: must not");
	CHECK_ERR(DB "[[app]]\nname = \"a\"\npath = \"/a b\"\n", ":5: app[1].path: must not");
	CHECK_ERR(DB "[[app]]\nname = \"a\"\npath = \"/metrics\"\n",
		  ":5: app[1].path: is reserved");
	CHECK_ERR(DB "[[app]]\nname = \"a\"\npath = \"/healthz\"\n",
		  ":5: app[1].path: is reserved");
	CHECK_ERR(DB "[[app]]\nname = \"a\"\npath = \"/readyz\"\n", ":5: app[1].path: is reserved");
	CHECK_ERR(DB APP "[log]\nlevel = \"info\\u0000\"\n",
		  ":9: log.level: must not contain a NUL character");
}

static void
test_error_duplicate_app(void)
{
	CHECK_ERR(DB APP "\n[[app]]\nname = \"other\"\npath = \"/1688/messages\"\n"
			 "app_key = \"k\"\napp_secret = \"s\"\n",
		  ":11: app[2].path: duplicate path, also used by app[1]");
	CHECK_ERR(DB APP "[[app]]\napp_key = \"k\"\nname = \"default\"\npath = \"/other\"\n"
			 "app_secret = \"s\"\n",
		  ":10: app[2].name: duplicate name, also used by app[1]");
}

static void
test_error_syntax(void)
{
	CHECK_ERR(DB APP "[log]\nlevel = \"in\\qfo\"\n",
		  ":9: syntax error: invalid escape sequence in string");
	CHECK_ERR(DB APP "[log]\nlevel = \"info\n", ":9: syntax error: unterminated string");
	CHECK_ERR(DB APP "[log]\nlevel = 'info\n", ":9: syntax error: unterminated string");
	CHECK_ERR(DB APP "[upstream]\ntimeout_ms = 1.5\n", ":9: syntax error: unsupported value");
	CHECK_ERR(DB APP "[upstream]\ntimeout_ms = 1e3\n", ":9: syntax error: unsupported value");
	CHECK_ERR(DB APP "[upstream]\ntimeout_ms = 0x10\n", ":9: syntax error: unsupported value");
	CHECK_ERR(DB APP "[upstream]\ntimeout_ms = 2024-01-01\n",
		  ":9: syntax error: unsupported value");
	CHECK_ERR(DB APP "[upstream]\ntimeout_ms = inf\n", ":9: syntax error: unsupported value");
	CHECK_ERR(DB APP "[upstream]\nca_file = { path = \"x\" }\n",
		  ":9: syntax error: unsupported value");
	CHECK_ERR(DB APP "[upstream]\nca_file = \"\"\"x\"\"\"\n",
		  ":9: syntax error: unsupported value");
	CHECK_ERR(DB APP "[upstream]\nca_file = none\n",
		  ":9: syntax error: invalid value (strings must be quoted)");
	CHECK_ERR(DB APP "upstream.ca_file = \"x\"\n", ":8: syntax error: dotted keys");
	CHECK_ERR(DB APP "[server.tls]\n", ":8: syntax error: dotted table names");
	CHECK_ERR(DB APP "\"quoted\" = 1\n", ":8: syntax error: quoted keys");
	CHECK_ERR(DB APP "[log]\nlevel = \"info\" extra\n",
		  ":9: syntax error: expected the end of the line");
	CHECK_ERR(DB APP "[log\n", ":8: syntax error: expected ']'");
	CHECK_ERR(DB APP "[log]\nlevel\n", ":9: syntax error: expected '='");
	CHECK_ERR(DB APP "[log]\nlevel =\n", ":9: syntax error: expected a value");
	CHECK_ERR(DB APP "[[app]\n", ":8: syntax error: expected ']]'");
	CHECK_ERR(DB APP "previous_secrets = [\"a\",\n\"b\"\n",
		  ":10: syntax error: unterminated array");
	CHECK_ERR(DB APP "previous_secrets = [\"a\" \"b\"]\n",
		  ":8: syntax error: expected ',' or ']' in array");
	CHECK_ERR(DB APP "previous_secrets = [\n  1,\n]\n",
		  ":9: syntax error: unsupported value: arrays may hold only strings");
	CHECK_ERR(DB APP "[upstream]\ntimeout_ms = 00\n",
		  ":9: syntax error: invalid integer: leading zeros");
	CHECK_ERR(DB APP "[upstream]\ntimeout_ms = 9223372036854775808\n",
		  ":9: syntax error: integer out of range");
	CHECK_ERR(DB APP "[log]\nlevel = \"in\x01"
			 "fo\"\n",
		  ":9: syntax error: control character in string");
	CHECK_ERR(DB APP "[log]\nlevel = \"\xff\"\n", ":9: syntax error: invalid UTF-8");
}

static void
test_error_env_file(void)
{
	char err[512], want[700];
	const char *path;

	unsetenv("TEST_CFG_NOPE");
	CHECK_ERR(DB "[[app]]\nname = \"a\"\npath = \"/a\"\napp_key = \"k\"\n"
		     "app_secret = \"env:TEST_CFG_NOPE\"\n",
		  ":7: app[1].app_secret: environment variable TEST_CFG_NOPE is not set");
	CHECK_ERR(DB APP "previous_secrets = [\"s\", \"env:TEST_CFG_NOPE\"]\n",
		  ":8: app[1].previous_secrets[2]: environment variable TEST_CFG_NOPE is not set");
	CHECK_ERR(DB APP "previous_secrets = [\"env:\"]\n",
		  ":8: app[1].previous_secrets[1]: \"env:\" needs a variable name");

	/* A relative path starts in the config file's directory. */
	path = load_err(DB "[[app]]\nname = \"a\"\npath = \"/a\"\napp_key = \"k\"\n"
			   "app_secret = \"file:no-such-secret.txt\"\n",
			err, sizeof(err));
	snprintf(want, sizeof(want),
		 "%s:7: app[1].app_secret: cannot read file %s/no-such-secret.txt: No such file "
		 "or directory",
		 path, tmpdir);
	CHECK_STR(err, want);
	CHECK_ERR(DB APP "[upstream]\nca_file = \"file:\"\n",
		  ":9: upstream.ca_file: \"file:\" needs a path");
	/* A directory cannot be read as a file. */
	CHECK_ERR(DB APP "[upstream]\nca_file = \"file:/\"\n",
		  ":9: upstream.ca_file: cannot read file /: Is a directory");

	path = "/nonexistent-dir-for-test/receiver.toml";
	{
		struct config cfg;

		CHECK_INT(config_load(path, &cfg, err, sizeof(err)), -1);
		CHECK_STR(err, "/nonexistent-dir-for-test/receiver.toml: cannot read: No such file "
			       "or directory");
		config_free(&cfg);
	}
}

/* Whatever goes wrong, a secret value never reaches an error message. */
static void
test_error_hides_secrets(void)
{
	char err[512];

	setenv("TEST_CFG_SECRET", "TOPSECRET-ENV", 1);
	write_file("secret.txt", "TOPSECRET-FILE\n");

	load_err(DB APP "[server]\nlisten = \"env:TEST_CFG_SECRET\"\n", err, sizeof(err));
	CHECK(strstr(err, "server.listen") != NULL);
	CHECK(strstr(err, "TOPSECRET") == NULL);

	load_err(DB APP "[server]\nlisten = \"file:secret.txt\"\n", err, sizeof(err));
	CHECK(strstr(err, "server.listen: must be host:port") != NULL);
	CHECK(strstr(err, "TOPSECRET") == NULL);

	load_err(DB APP "signature_mode = \"file:secret.txt\"\n", err, sizeof(err));
	CHECK(strstr(err, "app[1].signature_mode") != NULL);
	CHECK(strstr(err, "TOPSECRET") == NULL);

	load_err(DB APP "[log]\nlevel = 'TOPSECRET-LITERAL'\n", err, sizeof(err));
	CHECK(strstr(err, "log.level") != NULL);
	CHECK(strstr(err, "TOPSECRET") == NULL);

	/* Nor a syntax error inside one. */
	load_err(DB "[[app]]\napp_secret = \"TOPSECRET\\x\"\n", err, sizeof(err));
	CHECK(strstr(err, "syntax error") != NULL);
	CHECK(strstr(err, "TOPSECRET") == NULL);
	load_err(DB "[[app]]\napp_secret = \"TOPSECRET\n", err, sizeof(err));
	CHECK(strstr(err, "TOPSECRET") == NULL);
	load_err(DB "[[app]]\napp_secret = TOPSECRET\n", err, sizeof(err));
	CHECK(strstr(err, "TOPSECRET") == NULL);
	unsetenv("TEST_CFG_SECRET");
}

static void
test_toml_values(void)
{
	static const char text[] = "# leading comment\n"
				   "top = 'root'\n"
				   "[t]   # comment after a header\n"
				   "  s = \"a\\\"b\\\\c\\n\\t\\r\\b\\f\"  # comment after a value\n"
				   "zh = \"\\u4e2d\\u6587\"\n"
				   "emoji = \"\\U0001F600\"\n"
				   "lit = 'C:\\path\\no\"escape'\n"
				   "raw = \"\xe4\xb8\xad\tx\"\n"
				   "empty = \"\"\n"
				   "i1 = 1_000_000\n"
				   "i2 = -42\n"
				   "i3 = +7\n"
				   "i4 = 0\n"
				   "i5 = -0\n"
				   "max = 9_223_372_036_854_775_807\n"
				   "min = -9223372036854775808\n"
				   "yes = true\n"
				   "no = false\n"
				   "arr = [ # comment inside\n"
				   "  \"one\",   # first\n"
				   "\n"
				   "  'two' ,\n"
				   "  # a comment line\n"
				   "  \"th\\u00e9\", ]\n"
				   "none = []\n"
				   "one-line = ['x','y']\n"
				   "[[app]]\n"
				   "nul = \"a\\u0000b\"\n"
				   "[[app]]\n";
	struct toml_doc doc;
	struct toml_error err;
	const struct toml_keyval *kv;

	CHECK_INT(parse(text, &doc, &err), 0);
	CHECK_INT(doc.n_tables, 4);
	if (doc.n_tables != 4) {
		toml_free(&doc);
		return;
	}
	CHECK_STR(doc.tables[0].name, "");
	CHECK_STR(doc.tables[1].name, "t");
	CHECK_INT(doc.tables[1].line, 3);
	CHECK(!doc.tables[1].is_array_element);
	CHECK_STR(doc.tables[2].name, "app");
	CHECK(doc.tables[2].is_array_element);
	CHECK_INT(doc.tables[2].line, 27);
	CHECK_INT(doc.tables[3].line, 29);
	CHECK_INT(doc.tables[3].n_keys, 0);

	kv = find_key(&doc, 0, "top");
	CHECK(kv != NULL && kv->value.type == TOML_STRING && kv->line == 2);
	CHECK_STR(kv ? kv->value.str.ptr : NULL, "root");

	kv = find_key(&doc, 1, "s");
	CHECK(kv != NULL && kv->line == 4 && kv->value.str.len == 10);
	CHECK_STR(kv ? kv->value.str.ptr : NULL, "a\"b\\c\n\t\r\b\f");
	kv = find_key(&doc, 1, "zh");
	CHECK_STR(kv ? kv->value.str.ptr : NULL, "\xe4\xb8\xad\xe6\x96\x87");
	kv = find_key(&doc, 1, "emoji");
	CHECK_STR(kv ? kv->value.str.ptr : NULL, "\xf0\x9f\x98\x80");
	kv = find_key(&doc, 1, "lit");
	CHECK_STR(kv ? kv->value.str.ptr : NULL, "C:\\path\\no\"escape");
	kv = find_key(&doc, 1, "raw");
	CHECK_STR(kv ? kv->value.str.ptr : NULL, "\xe4\xb8\xad\tx");
	kv = find_key(&doc, 1, "empty");
	CHECK(kv != NULL && kv->value.type == TOML_STRING && kv->value.str.len == 0);

	kv = find_key(&doc, 1, "i1");
	CHECK(kv != NULL && kv->value.type == TOML_INT && kv->value.i == 1000000);
	kv = find_key(&doc, 1, "i2");
	CHECK(kv != NULL && kv->value.i == -42);
	kv = find_key(&doc, 1, "i3");
	CHECK(kv != NULL && kv->value.i == 7);
	kv = find_key(&doc, 1, "i4");
	CHECK(kv != NULL && kv->value.i == 0);
	kv = find_key(&doc, 1, "i5");
	CHECK(kv != NULL && kv->value.i == 0);
	kv = find_key(&doc, 1, "max");
	CHECK(kv != NULL && kv->value.i == INT64_MAX);
	kv = find_key(&doc, 1, "min");
	CHECK(kv != NULL && kv->value.i == INT64_MIN);
	kv = find_key(&doc, 1, "yes");
	CHECK(kv != NULL && kv->value.type == TOML_BOOL && kv->value.b);
	kv = find_key(&doc, 1, "no");
	CHECK(kv != NULL && kv->value.type == TOML_BOOL && !kv->value.b);

	kv = find_key(&doc, 1, "arr");
	CHECK(kv != NULL && kv->value.type == TOML_STRING_ARRAY && kv->line == 19);
	CHECK_INT(kv ? kv->value.n_items : 0, 3);
	if (kv != NULL && kv->value.n_items == 3) {
		CHECK_STR(kv->value.items[0].ptr, "one");
		CHECK_STR(kv->value.items[1].ptr, "two");
		CHECK_STR(kv->value.items[2].ptr, "th\xc3\xa9");
	}
	/* Line numbers keep counting through a multi-line array. */
	kv = find_key(&doc, 1, "none");
	CHECK(kv != NULL && kv->line == 25 && kv->value.type == TOML_STRING_ARRAY &&
	      kv->value.n_items == 0);
	kv = find_key(&doc, 1, "one-line");
	CHECK(kv != NULL && kv->value.n_items == 2);

	kv = find_key(&doc, 2, "nul");
	CHECK(kv != NULL && kv->value.str.len == 3 && memcmp(kv->value.str.ptr, "a\0b", 4) == 0);

	toml_free(&doc);
	CHECK(doc.tables == NULL && doc.n_tables == 0);
	toml_free(&doc);
}

static void
test_toml_crlf_and_bom(void)
{
	struct toml_doc doc;
	struct toml_error err;
	const struct toml_keyval *kv;

	CHECK_INT(
	    parse("\xef\xbb\xbf# bom\r\n[a]\r\nk = 'v' # c\r\nl = [\r\n 'x',\r\n]\r\n", &doc, &err),
	    0);
	kv = find_key(&doc, 1, "k");
	CHECK(kv != NULL && kv->line == 3);
	CHECK_STR(kv ? kv->value.str.ptr : NULL, "v");
	kv = find_key(&doc, 1, "l");
	CHECK(kv != NULL && kv->value.n_items == 1);
	toml_free(&doc);

	CHECK_INT(parse("[a]\rk = 1\n", &doc, &err), -1);
	CHECK_INT(err.line, 1);
	CHECK_STR(err.msg, "carriage return without line feed");
	CHECK(doc.tables == NULL);
}

/* Each bad document, the line it fails on and the start of the message. */
static void
test_toml_errors(void)
{
	static const struct {
		const char *text;
		int line;
		const char *key;
		const char *msg;
	} cases[] = {
	    {"a = 9223372036854775808\n", 1, "", "integer out of range"},
	    {"a = -9223372036854775809\n", 1, "", "integer out of range"},
	    {"a = 99999999999999999999999\n", 1, "", "integer out of range"},
	    {"a = 012\n", 1, "", "invalid integer: leading zeros"},
	    {"a = -01\n", 1, "", "invalid integer: leading zeros"},
	    {"a = 1__0\n", 1, "", "invalid integer: '_' must be between digits"},
	    {"a = _1\n", 1, "", "invalid value"},
	    {"a = 1_\n", 1, "", "invalid integer: '_' must be between digits"},
	    {"a = -\n", 1, "", "invalid value"},
	    {"a = 3.14\n", 1, "", "unsupported value"},
	    {"a = -1e5\n", 1, "", "unsupported value"},
	    {"a = nan\n", 1, "", "unsupported value"},
	    {"a = 07:32:00\n", 1, "", "unsupported value"},
	    {"a = 1979-05-27T07:32:00Z\n", 1, "", "unsupported value"},
	    {"a = 0b101\n", 1, "", "unsupported value"},
	    {"a = {}\n", 1, "", "unsupported value: inline tables"},
	    {"a = '''x'''\n", 1, "", "unsupported value: multi-line strings"},
	    {"a = [[\"x\"]]\n", 1, "", "unsupported value: arrays may hold only strings"},
	    {"a = [true]\n", 1, "", "unsupported value: arrays may hold only strings"},
	    {"a = [,]\n", 1, "", "expected a value before ','"},
	    {"a = [\"x\",,]\n", 1, "", "expected a value before ','"},
	    {"a = [\"x\"\n", 2, "", "unterminated array"},
	    {"a = \"\\uD800\"\n", 1, "", "invalid escape: not a Unicode scalar value"},
	    {"a = \"\\U00110000\"\n", 1, "", "invalid escape: not a Unicode scalar value"},
	    {"a = \"\\u12\"\n", 1, "", "invalid \\u escape: expected 4 hex digits"},
	    {"a = \"\\e\"\n", 1, "", "invalid escape sequence in string"},
	    {"a = \"x\\\n", 1, "", "unterminated string"},
	    {"a = \"x\\", 1, "", "unterminated string"},
	    {"a = 'x\n", 1, "", "unterminated string"},
	    {"a = \"x\x7f\"\n", 1, "", "control character in string"},
	    {"a = 'x\x1b'\n", 1, "", "control character in string"},
	    {"\n\n# \x01\n", 3, "", "control character in comment"},
	    {"a = \"\xc0\x80\"\n", 1, "", "invalid UTF-8"},
	    {"\n\na = \"\xed\xa0\x80\"\n", 3, "", "invalid UTF-8"},
	    {"a = \"\xe4\xb8\"\n", 1, "", "invalid UTF-8"},
	    {"a = 'x\0'\n", 1, "", "NUL byte in file"},
	    {"a = yes\n", 1, "", "invalid value (strings must be quoted)"},
	    {"a = 1 2\n", 1, "", "expected the end of the line"},
	    {"a = true false\n", 1, "", "expected the end of the line"},
	    {"a.b = 1\n", 1, "", "dotted keys are not supported"},
	    {"'a' = 1\n", 1, "", "quoted keys are not supported"},
	    {"= 1\n", 1, "", "expected a key before '='"},
	    {"!a = 1\n", 1, "", "expected a key, a [table] header or a comment"},
	    {"[]\n", 1, "", "expected a table name"},
	    {"[a.b]\n", 1, "", "dotted table names are not supported"},
	    {"[\"a\"]\n", 1, "", "quoted table names are not supported"},
	    {"[a] x\n", 1, "", "expected the end of the line"},
	    {"[[a] ]\n", 1, "", "expected ']]' after the table name"},
	    {"a = 1\na = 2\n", 2, "a", "duplicate key"},
	    {"[t]\na = 1\n\na = 2\n", 4, "t.a", "duplicate key"},
	    {"[[t]]\n[[t]]\nb = 1\nb = 2\n", 4, "t[2].b", "duplicate key"},
	    {"[t]\n[t]\n", 2, "t", "duplicate table"},
	    {"[[t]]\n[t]\n", 2, "t", "already defined as an array of tables"},
	    {"[t]\n[[t]]\n", 2, "t", "already defined as a table"},
	    {"t = 1\n[t]\n", 2, "t", "already defined as a key"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct toml_doc doc;
		struct toml_error err;
		/* strlen would stop at the NUL case's NUL. */
		size_t len = strlen(cases[i].text);

		if (strcmp(cases[i].msg, "NUL byte in file") == 0) {
			len += 1 + strlen(cases[i].text + len + 1);
		}
		memset(&err, 0, sizeof(err));
		if (toml_parse(cases[i].text, len, &doc, &err) != -1 || err.line != cases[i].line ||
		    strcmp(err.key, cases[i].key) != 0 ||
		    strncmp(err.msg, cases[i].msg, strlen(cases[i].msg)) != 0) {
			fprintf(stderr, "%s:%d: case %zu: got line %d key \"%s\" msg \"%s\"\n",
				__FILE__, __LINE__, i, err.line, err.key, err.msg);
			check_state.failures++;
			if (doc.tables != NULL) {
				toml_free(&doc);
			}
			continue;
		}
		CHECK(doc.tables == NULL && doc.n_tables == 0);
	}
}

/* 32 bytes of base64: a valid Standard Webhooks secret, and two others. */
#define WHSEC_A "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwMfKQ9r8GKYo="
#define WHSEC_B "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="

static void
test_relay_and_subscribers(void)
{
	struct config cfg;
	char err[512];
	const char *path;

	/* Defaults: relay on, no subscriber. */
	path = write_file("nosub.toml", DB APP);
	CHECK_INT(config_load(path, &cfg, err, sizeof(err)), 0);
	CHECK(cfg.relay.enabled);
	CHECK_INT(cfg.relay.max_attempts, 12);
	CHECK_INT(cfg.relay.backoff_min_ms, 5000);
	CHECK_INT(cfg.relay.backoff_max_ms, 86400000);
	CHECK_INT(cfg.n_subscribers, 0);
	config_free(&cfg);

	path = write_file("subs.toml", DB APP
			  "[relay]\nmax_attempts = 3\n"
			  "[[subscriber]]\nname = \"erp\"\nurl = \"https://erp.example/hooks\"\n"
			  "secret = \"" WHSEC_A "\"\nevents = [\"order.status_changed\"]\n"
			  "[[subscriber]]\nname = \"bot\"\nurl = \"http://127.0.0.1:9/x\"\n"
			  "secret = \"" WHSEC_B "\"\nprevious_secrets = [\"" WHSEC_A "\"]\n"
			  "apps = [\"a\"]\ntimeout_ms = 500\nmax_concurrency = 1\n");
	CHECK_INT(config_load(path, &cfg, err, sizeof(err)), 0);
	CHECK_INT(cfg.relay.max_attempts, 3);
	CHECK_INT(cfg.n_subscribers, 2);
	if (cfg.n_subscribers == 2) {
		CHECK_STR(cfg.subscribers[0].name, "erp");
		CHECK_INT(cfg.subscribers[0].n_events, 1);
		CHECK_INT(cfg.subscribers[0].n_apps, 0);
		CHECK_INT(cfg.subscribers[0].timeout_ms, 15000);
		CHECK_INT(cfg.subscribers[0].max_concurrency, 4);
		CHECK_STR(cfg.subscribers[1].secret, WHSEC_B);
		CHECK_INT(cfg.subscribers[1].n_previous_secrets, 1);
		CHECK_STR(cfg.subscribers[1].apps[0], "a");
		CHECK_INT(cfg.subscribers[1].timeout_ms, 500);
		CHECK(config_subscriber_by_name(&cfg, "bot") == &cfg.subscribers[1]);
	}
	CHECK(config_subscriber_by_name(&cfg, "nobody") == NULL);
	config_free(&cfg);
}

static void
test_error_subscribers(void)
{
	CHECK_ERR(DB APP
		  "[[subscriber]]\nname = \"x\"\nurl = \"https://h/\"\nsecret = \"s3cret\"\n",
		  ":11: subscriber[1].secret: must start with whsec_");
	CHECK_ERR(DB APP "[[subscriber]]\nname = \"x\"\nurl = \"https://h/\"\n"
			 "secret = \"whsec_AAAA\"\n",
		  ":11: subscriber[1].secret: must be whsec_ and the base64 of 24 to 64 bytes");
	CHECK_ERR(DB APP "[[subscriber]]\nname = \"x\"\nurl = \"https://h/\"\n"
			 "secret = \"whsec_!!!!\"\n",
		  ":11: subscriber[1].secret: must be whsec_ and base64");
	CHECK_ERR(DB APP "[[subscriber]]\nname = \"x\"\nurl = \"ftp://h/\"\n",
		  ":10: subscriber[1].url: must start with http:// or https://");
	CHECK_ERR(DB APP "[[subscriber]]\nname = \"x\"\nurl = \"https://h/\"\nsecret = \"" WHSEC_A
			 "\"\nevents = [\"order.deleted\"]\n",
		  ":12: subscriber[1].events[1]: must be one of order.status_changed");
	CHECK_ERR(DB APP
		  "[[subscriber]]\nname = \"x\"\nurl = \"https://h/\"\nsecret = \"" WHSEC_A
		  "\"\n[[subscriber]]\nname = \"x\"\nurl = \"https://h/\"\nsecret = \"" WHSEC_A
		  "\"\n",
		  ":13: subscriber[2].name: duplicate name, also used by subscriber[1]");
	CHECK_ERR(DB APP "[[subscriber]]\nname = \"x\"\nurl = \"https://h/\"\n",
		  ":8: subscriber[1].secret: missing (required)");
	CHECK_ERR(DB APP "[relay]\nbackoff_min_ms = 10\nbackoff_max_ms = 5\n",
		  ":10: relay.backoff_max_ms: must not be less than backoff_min_ms (10)");
}

static void
test_adopt_subscriber_secrets(void)
{
	struct config cfg, fresh;
	char err[512];
	const char *path;

	path =
	    write_file("rot1.toml", DB APP "[[subscriber]]\nname = \"erp\"\nurl = \"https://h/\"\n"
					   "secret = \"" WHSEC_A "\"\n");
	CHECK_INT(config_load(path, &cfg, err, sizeof(err)), 0);
	path = write_file("rot2.toml",
			  DB APP "[[subscriber]]\nname = \"erp\"\nurl = \"https://other/\"\n"
				 "secret = \"" WHSEC_B "\"\nprevious_secrets = [\"" WHSEC_A
				 "\"]\ntimeout_ms = 7\n");
	CHECK_INT(config_load(path, &fresh, err, sizeof(err)), 0);
	config_adopt_secrets(&cfg, &fresh);
	CHECK_STR(cfg.subscribers[0].secret, WHSEC_B);
	CHECK_INT(cfg.subscribers[0].n_previous_secrets, 1);
	CHECK_STR(cfg.subscribers[0].url, "https://h/"); /* not reloadable */
	CHECK_INT(cfg.subscribers[0].timeout_ms, 15000);
	CHECK_STR(fresh.subscribers[0].secret, WHSEC_A);
	config_free(&fresh);
	config_free(&cfg);
}

CHECK_MAIN("config", CHECK_TEST(test_full_file), CHECK_TEST(test_defaults),
	   CHECK_TEST(test_defaults_from_rows), CHECK_TEST(test_adopt_secrets),
	   CHECK_TEST(test_reloadable_set), CHECK_TEST(test_relay_and_subscribers),
	   CHECK_TEST(test_error_subscribers), CHECK_TEST(test_adopt_subscriber_secrets),
	   CHECK_TEST(test_free_zeroed_and_lookup_null), CHECK_TEST(test_env_and_file_values),
	   CHECK_TEST(test_database_url_env), CHECK_TEST(test_error_unknown_key),
	   CHECK_TEST(test_error_unknown_table), CHECK_TEST(test_error_wrong_type),
	   CHECK_TEST(test_error_duplicate_key), CHECK_TEST(test_error_missing),
	   CHECK_TEST(test_error_listen), CHECK_TEST(test_error_range),
	   CHECK_TEST(test_error_strings), CHECK_TEST(test_error_duplicate_app),
	   CHECK_TEST(test_error_syntax), CHECK_TEST(test_error_env_file),
	   CHECK_TEST(test_error_hides_secrets), CHECK_TEST(test_toml_values),
	   CHECK_TEST(test_toml_crlf_and_bom), CHECK_TEST(test_toml_errors))
