/*
 * cli.c - command-line tools (see cli.h).
 *
 * `reconcile` and `sweep` run the daemon's own reconciler (reconcile.c) in
 * a private event loop until their work is done, so a one-off fetch
 * applies a record exactly as the daemon would.  `jobs`, `relay` and
 * `token` are a few blocking queries (over db_connect_blocking, with the
 * daemon's pinned settings: last_error may hold any text): this is
 * command-line code, not the serving path.
 *
 * Exit status: 0 when everything asked for succeeded, 1 when some of it
 * failed, 2 on bad usage.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <libpq-fe.h>
#include <openssl/crypto.h>

#include "cli.h"
#include "db.h"
#include "form.h"
#include "message.h"
#include "migrate.h"
#include "reconcile.h"
#include "relay.h"
#include "signature.h"
#include "tokens.h"
#include "util.h"

#define MAX_STDIN (16 * 1024 * 1024)

struct run {
	struct event_base *base;
	int pending;
	int failed;
};

static const struct app_config *pick_app(const struct config *cfg, const char *name);
static int parse_order_id(const char *text, int64_t *id);
static int parse_date(const char *text, time_t *t);
static struct reconciler *run_start(struct run *run, const struct config *cfg, const char *what);
static int run_finish(struct run *run, struct reconciler *r);
static void one_done(void *arg, bool ok, const char *text);
static PGconn *connect_db(const struct config *cfg, const char *what);
static int print_query(PGconn *conn, const char *what, const char *title, const char *sql,
		       int nparams, const char *const *params);
static int relay_action(PGconn *conn, const struct cli_args *args, const char *name, time_t since,
			time_t until);
static char *read_stdin(size_t *len);
static void print_encoded(const char *s, size_t len);
static int verify_with(const struct app_config *app, const struct form *form);

int
cli_reconcile(const struct config *cfg, const struct cli_args *args)
{
	const struct app_config *app = pick_app(cfg, args->app);
	struct run run = {0};
	struct reconciler *r;
	int64_t id;

	if (app == NULL)
		return EXIT_USAGE;
	if (args->n_rest == 0) {
		fprintf(stderr, "receiver: reconcile: name at least one ORDER_ID\n");
		return EXIT_USAGE;
	}
	for (int i = 0; i < args->n_rest; i++) {
		if (parse_order_id(args->rest[i], &id) < 0) {
			fprintf(stderr, "receiver: reconcile: '%s' is not an order id\n",
				args->rest[i]);
			return EXIT_USAGE;
		}
	}
	r = run_start(&run, cfg, "reconcile");
	if (r == NULL)
		return 1;
	run.pending = args->n_rest;
	for (int i = 0; i < args->n_rest; i++) {
		parse_order_id(args->rest[i], &id);
		reconciler_fetch(r, app, id, one_done, &run);
	}
	return run_finish(&run, r);
}

int
cli_sweep(const struct config *cfg, const struct cli_args *args)
{
	const struct app_config *app = pick_app(cfg, args->app);
	struct run run = {0};
	struct reconciler *r;
	time_t since, until = time(NULL);

	if (app == NULL)
		return EXIT_USAGE;
	if (args->since == NULL || parse_date(args->since, &since) < 0 ||
	    (args->until != NULL && parse_date(args->until, &until) < 0) || since > until) {
		fprintf(stderr, "receiver: sweep: give --since DATE [--until DATE], dates as "
				"YYYY-MM-DD[THH:MM[:SS]] in Shanghai time, since <= until\n");
		return EXIT_USAGE;
	}
	r = run_start(&run, cfg, "sweep");
	if (r == NULL)
		return 1;
	run.pending = 1;
	reconciler_sweep(r, app, since, until, one_done, &run);
	return run_finish(&run, r);
}

int
cli_jobs(const struct config *cfg, const struct cli_args *args)
{
	PGconn *conn = connect_db(cfg, "jobs");
	int rc = 0;

	if (conn == NULL)
		return 1;
	if (args->retry_dead) {
		PGresult *res = PQexec(conn, "SELECT receiver_retry_dead_jobs()");

		if (PQresultStatus(res) == PGRES_TUPLES_OK) {
			printf("%s dead job(s) put back to pending\n", PQgetvalue(res, 0, 0));
		} else {
			fprintf(stderr, "receiver: jobs: %s", PQresultErrorMessage(res));
			rc = 1;
		}
		PQclear(res);
	}
	if (rc == 0 && (print_query(conn, "jobs", "jobs by state",
				    "SELECT state, count(*) AS jobs, min(due_at) AS next_due,"
				    " max(attempts) AS max_attempts FROM reconcile_jobs"
				    " GROUP BY state ORDER BY state",
				    0, NULL) < 0 ||
			print_query(conn, "jobs", "oldest errors",
				    "SELECT order_id, app, state, attempts, due_at, last_error"
				    " FROM reconcile_jobs WHERE last_error IS NOT NULL"
				    " ORDER BY created_at LIMIT 10",
				    0, NULL) < 0))
		rc = 1;
	PQfinish(conn);
	return rc;
}

/* A private event loop with the daemon's reconciler in it. */
static struct reconciler *
run_start(struct run *run, const struct config *cfg, const char *what)
{
	struct reconciler *r = NULL;
	char err[256] = "out of memory";

	run->base = event_base_new();
	if (run->base != NULL)
		r = reconciler_new(run->base, cfg, migrate_latest_version(), err, sizeof(err));
	if (r == NULL) {
		fprintf(stderr, "receiver: %s: %s\n", what, err);
		if (run->base != NULL)
			event_base_free(run->base);
	}
	return r;
}

/* Run until every piece of work reported; the exit status. */
static int
run_finish(struct run *run, struct reconciler *r)
{
	if (run->pending > 0)
		event_base_dispatch(run->base);
	reconciler_free(r);
	event_base_free(run->base);
	return run->failed > 0 ? 1 : 0;
}

static void
one_done(void *arg, bool ok, const char *text)
{
	struct run *run = arg;

	if (ok) {
		printf("%s\n", text);
	} else {
		fprintf(stderr, "receiver: %s\n", text);
		run->failed++;
	}
	if (--run->pending == 0)
		event_base_loopbreak(run->base);
}

static const struct app_config *
pick_app(const struct config *cfg, const char *name)
{
	const struct app_config *app = name != NULL ? config_app_by_name(cfg, name) : &cfg->apps[0];

	if (app != NULL)
		return app;
	fprintf(stderr, "receiver: no [[app]] named '%s' in %s\n", name, cfg->file);
	return NULL;
}

static int
parse_order_id(const char *text, int64_t *id)
{
	char *end;
	long long v;

	if (*text < '1' || *text > '9')
		return -1;
	errno = 0;
	v = strtoll(text, &end, 10);
	if (errno != 0 || *end != '\0')
		return -1;
	*id = v;
	return 0;
}

/* YYYY-MM-DD[THH:MM[:SS]] (or a space for T), in Shanghai time. */
static int
parse_date(const char *text, time_t *t)
{
	struct tm tm = {0};
	int y, mo, d, h = 0, mi = 0, s = 0, n = 0;
	char sep;
	time_t v;

	if (sscanf(text, "%4d-%2d-%2d%n", &y, &mo, &d, &n) != 3)
		return -1;
	if (text[n] != '\0') {
		int m = 0;

		if (sscanf(text + n, "%c%2d:%2d%n", &sep, &h, &mi, &m) != 3 ||
		    (sep != 'T' && sep != ' '))
			return -1;
		n += m;
		if (text[n] == ':' && sscanf(text + n, ":%2d%n", &s, &m) == 1)
			n += m;
		if (text[n] != '\0')
			return -1;
	}
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = s;
	v = timegm(&tm);
	if (v == (time_t)-1 || tm.tm_mday != d || tm.tm_mon != mo - 1 || h > 23 || mi > 59 ||
	    s > 59)
		return -1;
	*t = v - SHANGHAI_OFFSET_S;
	return 0;
}

/* A blocking connection for command WHAT, or NULL, said on stderr. */
static PGconn *
connect_db(const struct config *cfg, const char *what)
{
	PGconn *conn = db_connect_blocking(cfg->database.url);

	if (PQstatus(conn) == CONNECTION_OK)
		return conn;
	fprintf(stderr, "receiver: %s: cannot connect to the database: %s", what,
		PQerrorMessage(conn));
	PQfinish(conn);
	return NULL;
}

/* SQL's rows under TITLE, as a table; -1 (said as WHAT failing) when it failed. */
static int
print_query(PGconn *conn, const char *what, const char *title, const char *sql, int nparams,
	    const char *const *params)
{
	PGresult *res = PQexecParams(conn, sql, nparams, NULL, params, NULL, NULL, 0);
	PQprintOpt opt = {0};

	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		fprintf(stderr, "receiver: %s: %s", what, PQresultErrorMessage(res));
		PQclear(res);
		return -1;
	}
	printf("%s:\n", title);
	opt.header = 1;
	opt.align = 1;
	opt.fieldSep = "|";
	PQprint(stdout, res, &opt);
	PQclear(res);
	return 0;
}

int
cli_sign(const struct config *cfg, const struct cli_args *args)
{
	const struct app_config *app = pick_app(cfg, args->app);
	const char *field = args->field != NULL ? args->field : SIGNATURE_FIELD_AOP;
	struct form_field f = {0};
	struct form form = {&f, 1};
	unsigned char mac[SIGNATURE_MAC_LEN];
	char hex[SIGNATURE_HEX_LEN + 1], *canonical;
	size_t len, clen;

	if (app == NULL)
		return EXIT_USAGE;
	if (strcmp(field, SIGNATURE_FIELD_AOP) != 0 && strcmp(field, SIGNATURE_FIELD_DJ) != 0) {
		fprintf(stderr, "receiver: sign: --field is %s or %s\n", SIGNATURE_FIELD_AOP,
			SIGNATURE_FIELD_DJ);
		return EXIT_USAGE;
	}
	f.value = read_stdin(&len);
	if (f.value == NULL)
		return 1;
	/* A message typed or echoed ends with a newline that is not part of it. */
	while (len > 0 && (f.value[len - 1] == '\n' || f.value[len - 1] == '\r'))
		f.value[--len] = '\0';
	f.name = "message";
	f.name_len = 7;
	f.value_len = len;
	canonical = signature_canonical(&form, field, app->signature_mode, &clen);
	if (canonical == NULL ||
	    signature_mac(app->app_secret, strlen(app->app_secret), canonical, clen, mac) < 0) {
		fprintf(stderr, "receiver: sign: cannot compute the signature\n");
		free(canonical);
		free(f.value);
		return 1;
	}
	signature_hex(mac, hex);
	fputs("message=", stdout);
	print_encoded(f.value, len);
	printf("&%s=%s", field, hex);
	/* Piped into curl --data-binary @-, a newline would become part of the signature. */
	if (isatty(STDOUT_FILENO))
		putchar('\n');
	free(canonical);
	free(f.value);
	return 0;
}

int
cli_verify(const struct config *cfg, const struct cli_args *args)
{
	struct form form;
	const char *why;
	size_t len;
	char *body = read_stdin(&len);
	int rc = 1;

	if (body == NULL)
		return 1;
	while (len > 0 && (body[len - 1] == '\n' || body[len - 1] == '\r'))
		body[--len] = '\0';
	if (form_decode(body, len, &form, &why) < 0) {
		printf("not genuine: the body is not a valid form: %s\n", why);
		free(body);
		return 1;
	}
	if (form_get(&form, "message") == NULL) {
		printf("not genuine: no message field\n");
	} else if (args->app != NULL) {
		const struct app_config *app = pick_app(cfg, args->app);

		rc = app == NULL ? EXIT_USAGE : verify_with(app, &form);
	} else {
		for (size_t i = 0; i < cfg->n_apps && rc != 0; i++)
			rc = verify_with(&cfg->apps[i], &form);
	}
	form_free(&form);
	free(body);
	return rc;
}

/* Print whether FORM is genuine for APP, and why not.  0 when genuine. */
static int
verify_with(const struct app_config *app, const struct form *form)
{
	const struct form_field *message = form_get(form, "message");
	const char *field = NULL;
	enum signature_result r = signature_verify(form, app, &field);
	struct trade_event ev;
	char err[200];

	if (r != SIGNATURE_OK) {
		printf("not genuine for app %s: %s\n", app->name, signature_result_text(r));
		return 1;
	}
	if (message_parse(message->value, message->value_len, &ev, err, sizeof(err)) < 0) {
		printf("genuine signature for app %s (%s), but the message would be refused: %s\n",
		       app->name, field, err);
		return 1;
	}
	printf("genuine: app %s, %s, msgId %lld, type %s, %zu order(s)\n", app->name, field,
	       (long long)ev.msg_id, ev.type, ev.n_order_ids);
	trade_event_free(&ev);
	return 0;
}

static char *
read_stdin(size_t *len)
{
	size_t cap = 4096, n = 0, got;
	char *buf = malloc(cap + 1), *bigger;

	while (buf != NULL && (got = fread(buf + n, 1, cap - n, stdin)) > 0) {
		n += got;
		if (n == cap) {
			if (cap >= MAX_STDIN) {
				fprintf(stderr, "receiver: input larger than %d bytes\n",
					MAX_STDIN);
				free(buf);
				return NULL;
			}
			bigger = realloc(buf, cap * 2 + 1);
			if (bigger == NULL)
				break;
			buf = bigger;
			cap *= 2;
		}
	}
	if (buf == NULL || ferror(stdin)) {
		fprintf(stderr, "receiver: cannot read standard input\n");
		free(buf);
		return NULL;
	}
	buf[n] = '\0';
	*len = n;
	return buf;
}

/* Percent-encode everything but RFC 3986's unreserved characters. */
static void
print_encoded(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '_' || c == '.' || c == '~')
			putchar(c);
		else
			printf("%%%02X", c);
	}
}

/*
 * `receiver relay`: the subscribers' state by default; or one action.
 * Blocking queries, as `jobs`; --test runs the relay's own sender.
 */
int
cli_relay(const struct config *cfg, const struct cli_args *args)
{
	const char *name = args->enable != NULL	  ? args->enable
			   : args->replay != NULL ? args->replay
			   : args->test != NULL	  ? args->test
						  : args->subscriber;
	int actions = (args->enable != NULL) + (args->replay != NULL) + (args->test != NULL) +
		      (args->retry_dead != 0);
	time_t since = 0, until = time(NULL);
	PGconn *conn;
	int rc;

	if (actions > 1 || (args->subscriber != NULL && !args->retry_dead) ||
	    ((args->since != NULL || args->until != NULL) && args->replay == NULL)) {
		fprintf(stderr, "receiver: relay: one of --retry-dead [--subscriber NAME], "
				"--enable NAME, --replay NAME --since DATE, --test NAME\n");
		return EXIT_USAGE;
	}
	if (name != NULL && config_subscriber_by_name(cfg, name) == NULL) {
		fprintf(stderr, "receiver: no [[subscriber]] named '%s' in %s\n", name, cfg->file);
		return EXIT_USAGE;
	}
	if (args->replay != NULL &&
	    (args->since == NULL || parse_date(args->since, &since) < 0 ||
	     (args->until != NULL && parse_date(args->until, &until) < 0) || since > until)) {
		fprintf(stderr,
			"receiver: relay: --replay NAME needs --since DATE [--until DATE], "
			"dates as YYYY-MM-DD[THH:MM[:SS]] in Shanghai time, since <= until\n");
		return EXIT_USAGE;
	}
	if (args->test != NULL)
		return relay_test(cfg, config_subscriber_by_name(cfg, name));
	conn = connect_db(cfg, "relay");
	if (conn == NULL)
		return 1;
	rc = relay_action(conn, args, name, since, until);
	if (rc == 0)
		rc = print_query(conn, "relay", "subscribers",
				 "SELECT * FROM relay_lag ORDER BY subscriber", 0, NULL) < 0;
	PQfinish(conn);
	return rc;
}

/* The one change asked for, said in a line; 0, or 1 when it failed. */
static int
relay_action(PGconn *conn, const struct cli_args *args, const char *name, time_t since,
	     time_t until)
{
	char from[24], to[24];
	const char *params[3] = {name, from, to};
	const char *sql, *what;
	PGresult *res;
	int rc = 0;

	snprintf(from, sizeof(from), "%lld", (long long)since);
	snprintf(to, sizeof(to), "%lld", (long long)until);
	if (args->retry_dead) {
		sql = "SELECT receiver_relay_retry_dead($1) || ' dead deliveries put back to "
		      "pending'";
	} else if (args->enable != NULL) {
		sql = "SELECT 'subscriber ' || $1 || CASE WHEN receiver_relay_enable($1) THEN "
		      "' enabled' ELSE ' is not in the database yet' END";
	} else if (args->replay != NULL) {
		sql = "SELECT receiver_relay_replay($1, to_timestamp($2::bigint), "
		      "to_timestamp($3::bigint)) || ' events enqueued again for ' || $1";
	} else {
		return 0;
	}
	if (args->until == NULL)
		params[2] = NULL; /* up to now, this very second's events included */
	res = PQexecParams(conn, sql, args->replay != NULL ? 3 : 1, NULL, params, NULL, NULL, 0);
	what = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 ? PQgetvalue(res, 0, 0)
									     : NULL;
	if (what != NULL) {
		printf("%s\n", what);
	} else {
		fprintf(stderr, "receiver: relay: %s", PQresultErrorMessage(res));
		rc = 1;
	}
	PQclear(res);
	return rc;
}

/*
 * `receiver token set` and `token list`: members' grants (member_tokens,
 * sql/008), blocking queries as `jobs`.  A grant is checked, its tokens
 * read (from argv, or stdin for "-"; argv's copy is overwritten at once,
 * so ps stops showing it), sealed for its row (tokens.c) and stored by
 * receiver_token_put; the clear tokens live on this stack only and are
 * wiped on every way out.  No output ever holds a token.
 */

/* Ten years: no grant lives longer (a 1688 refresh token: half a year). */
#define GRANT_SECONDS_MAX 315360000LL

/* Two tokens, a line each, and their line ends. */
#define GRANT_STDIN_MAX (2 * (TOKENS_TOKEN_MAX + 2))

#define SQL_TOKEN_PUT                                                                              \
	"SELECT coalesce(access_expires_at::text, 'not known'),"                                   \
	" coalesce(refresh_expires_at::text, 'not known'), generation, replaced"                   \
	" FROM receiver_token_put($1, $2, $3, now() + $4::bigint * interval '1 second', $5,"       \
	" now() + $6::bigint * interval '1 second', 'set')"

#define SQL_TOKEN_LIST                                                                             \
	"SELECT app, member_id, state, access_expires_at, refresh_expires_at, updated_at,"         \
	" attention, last_error FROM member_token_status"                                          \
	" WHERE $1::text IS NULL OR app = $1 ORDER BY app, member_id"

/* A grant in the clear, then sealed: one per `token set`. */
struct grant {
	struct token_plain refresh, access;
	bool has_access;
	unsigned char refresh_sealed[TOKENS_SEALED_MAX], access_sealed[TOKENS_SEALED_MAX];
	size_t refresh_len, access_len;
};

static bool seconds_valid(const char *text);
static int grant_check(const struct config *cfg, const struct cli_args *args);
static int grant_read(const struct cli_args *args, struct grant *g);
static int take_token(char *arg, const char *option, struct token_plain *p,
		      struct token_plain **from_stdin, int *n_stdin);
static int read_secret_input(char *buf, size_t cap, size_t *len);
static int read_stdin_tokens(struct token_plain **out, int n);
static int grant_seal(const struct config *cfg, const struct cli_args *args, struct grant *g);
static int grant_put(const struct config *cfg, const struct cli_args *args, const struct grant *g);

int
cli_token_set(const struct config *cfg, const struct cli_args *args)
{
	struct grant g;
	int rc;

	memset(&g, 0, sizeof(g));
	rc = grant_check(cfg, args);
	if (rc == 0)
		rc = grant_read(args, &g);
	if (rc == 0)
		rc = grant_seal(cfg, args, &g);
	tokens_plain_wipe(&g.refresh);
	tokens_plain_wipe(&g.access);
	if (rc == 0)
		rc = grant_put(cfg, args, &g);
	return rc;
}

int
cli_token_list(const struct config *cfg, const struct cli_args *args)
{
	const char *params[1] = {args->app};
	PGconn *conn;
	int rc;

	if (args->app != NULL && pick_app(cfg, args->app) == NULL)
		return EXIT_USAGE;
	conn = connect_db(cfg, "token list");
	if (conn == NULL)
		return 1;
	rc = print_query(conn, "token list", "member grants (tokens are never shown)",
			 SQL_TOKEN_LIST, 1, params) < 0;
	PQfinish(conn);
	return rc;
}

/* 1 to GRANT_SECONDS_MAX, in decimal digits only. */
static bool
seconds_valid(const char *text)
{
	long long v = 0;

	if (text == NULL || *text < '1' || *text > '9' || strlen(text) > 9)
		return false;
	for (const char *p = text; *p != '\0'; p++) {
		if (*p < '0' || *p > '9')
			return false;
		v = v * 10 + (*p - '0');
	}
	return v <= GRANT_SECONDS_MAX;
}

/* Everything but the tokens' own text: 0, or EXIT_USAGE with the reason said. */
static int
grant_check(const struct config *cfg, const struct cli_args *args)
{
	const char *why = NULL;

	if (args->app == NULL || args->member == NULL || args->refresh_token == NULL)
		why = "give --app NAME, --member ID and --refresh-token T (or - to read it "
		      "from stdin)";
	else if (pick_app(cfg, args->app) == NULL)
		return EXIT_USAGE;
	else if (!tokens_member_valid(args->member))
		why = "--member is 1 to 128 printable ASCII characters without spaces (the "
		      "memberId, b2b-...)";
	else if ((args->access_token == NULL) != (args->expires_in == NULL))
		why = "--access-token A and --expires-in S go together";
	else if ((args->expires_in != NULL && !seconds_valid(args->expires_in)) ||
		 (args->refresh_expires_in != NULL && !seconds_valid(args->refresh_expires_in)))
		why = "--expires-in and --refresh-expires-in are seconds, 1 to 315360000";
	else if (cfg->tokens.key[0] == '\0')
		why = "[tokens] key is not set: the tokens are stored encrypted with it; set "
		      "key = \"file:/etc/receiver/token.key\" in [tokens], a file holding the "
		      "output of `openssl rand -hex 32`";
	if (why == NULL)
		return 0;
	fprintf(stderr, "receiver: token set: %s\n", why);
	return EXIT_USAGE;
}

/* The tokens into G: 0, EXIT_USAGE (a malformed token, said) or 1 (stdin failed). */
static int
grant_read(const struct cli_args *args, struct grant *g)
{
	struct token_plain *from_stdin[2];
	int n_stdin = 0, rc;

	g->has_access = args->access_token != NULL;
	rc = take_token(args->refresh_token, "--refresh-token", &g->refresh, from_stdin, &n_stdin);
	if (rc == 0 && g->has_access)
		rc = take_token(args->access_token, "--access-token", &g->access, from_stdin,
				&n_stdin);
	if (rc == 0 && n_stdin > 0)
		rc = read_stdin_tokens(from_stdin, n_stdin);
	return rc;
}

/*
 * ARG is "-" (P is read from stdin later: queued in FROM_STDIN) or the
 * token, which is copied and then overwritten where it lies in argv.
 */
static int
take_token(char *arg, const char *option, struct token_plain *p, struct token_plain **from_stdin,
	   int *n_stdin)
{
	const char *why = NULL;
	enum status st;

	if (strcmp(arg, "-") == 0) {
		from_stdin[(*n_stdin)++] = p;
		return 0;
	}
	st = tokens_plain_set(p, arg, strlen(arg), &why);
	OPENSSL_cleanse(arg, strlen(arg));
	if (st == STATUS_OK)
		return 0;
	fprintf(stderr, "receiver: token set: %s: %s\n", option, why);
	return EXIT_USAGE;
}

/*
 * Standard input into BUF with read(2), not stdio, whose buffer would keep
 * a copy nobody wipes.  0; -1 when it failed; -2 when it holds CAP bytes
 * or more (more than any tokens).
 */
static int
read_secret_input(char *buf, size_t cap, size_t *len)
{
	ssize_t r;

	*len = 0;
	while (*len < cap) {
		r = read(STDIN_FILENO, buf + *len, cap - *len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0)
			return 0;
		*len += (size_t)r;
	}
	return -2;
}

/* N tokens from stdin, one a line, in OUT's order (the refresh token first). */
static int
read_stdin_tokens(struct token_plain **out, int n)
{
	char buf[GRANT_STDIN_MAX + 1];
	size_t len = 0, start = 0;
	int got = 0, input = read_secret_input(buf, sizeof(buf), &len);
	const char *why = input == -1 ? "cannot be read" : "longer than two tokens";
	int rc = input == 0 ? 0 : EXIT_USAGE;

	while (rc == 0 && start < len) {
		size_t end = start, next;

		while (end < len && buf[end] != '\n')
			end++;
		next = end + 1;
		if (end > start && buf[end - 1] == '\r')
			end--;
		if (got == n) {
			why = "more lines than tokens";
			rc = EXIT_USAGE;
		} else if (tokens_plain_set(out[got++], buf + start, end - start, &why) !=
			   STATUS_OK) {
			rc = EXIT_USAGE;
		}
		start = next;
	}
	OPENSSL_cleanse(buf, sizeof(buf));
	if (rc == 0 && got < n) {
		why = "fewer lines than tokens";
		rc = EXIT_USAGE;
	}
	if (rc != 0)
		fprintf(stderr,
			"receiver: token set: stdin: %s (it holds the refresh token%s, a line "
			"each)\n",
			why, n > 1 ? ", then the access token" : "");
	return rc;
}

/* Seal G's tokens for their row: 0, or EXIT_USAGE (the key) or 1, said. */
static int
grant_seal(const struct config *cfg, const struct cli_args *args, struct grant *g)
{
	struct token_slot refresh = {args->app, args->member, TOKEN_REFRESH};
	struct token_slot access = {args->app, args->member, TOKEN_ACCESS};
	struct tokens_key key;
	const char *why = NULL;
	enum status st;

	st = tokens_key_parse(&key, cfg->tokens.key, &why);
	if (st != STATUS_OK) {
		fprintf(stderr, "receiver: token set: [tokens] key %s\n", why);
		return EXIT_USAGE;
	}
	st = tokens_seal(&key, &refresh, &g->refresh, g->refresh_sealed, sizeof(g->refresh_sealed),
			 &g->refresh_len, &why);
	if (st == STATUS_OK && g->has_access)
		st = tokens_seal(&key, &access, &g->access, g->access_sealed,
				 sizeof(g->access_sealed), &g->access_len, &why);
	tokens_key_wipe(&key);
	if (st == STATUS_OK)
		return 0;
	fprintf(stderr, "receiver: token set: cannot encrypt the tokens: %s\n", why);
	return 1;
}

/* Store the sealed grant; prints its expiry times. */
static int
grant_put(const struct config *cfg, const struct cli_args *args, const struct grant *g)
{
	const char *params[6] = {args->app,
				 args->member,
				 g->has_access ? (const char *)g->access_sealed : NULL,
				 args->expires_in,
				 (const char *)g->refresh_sealed,
				 args->refresh_expires_in};
	const int lengths[6] = {0, 0, (int)g->access_len, 0, (int)g->refresh_len, 0};
	const int formats[6] = {0, 0, 1, 0, 1, 0}; /* the sealed values as bytes */
	const Oid types[6] = {0, 0, 17 /* bytea */, 0, 17, 0};
	PGconn *conn = connect_db(cfg, "token set");
	PGresult *res;
	int rc = 1;

	if (conn == NULL)
		return 1;
	res = PQexecParams(conn, SQL_TOKEN_PUT, 6, types, params, lengths, formats, 0);
	if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1) {
		printf("app %s, member %s: grant %s, encrypted (generation %s); access token "
		       "expires %s; refresh token expires %s\n",
		       args->app, args->member,
		       strcmp(PQgetvalue(res, 0, 3), "t") == 0 ? "replaced" : "stored",
		       PQgetvalue(res, 0, 2), PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1));
		rc = 0;
	} else {
		fprintf(stderr, "receiver: token set: %s", PQresultErrorMessage(res));
	}
	PQclear(res);
	PQfinish(conn);
	return rc;
}
