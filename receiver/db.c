/*
 * db.c - one non-blocking PostgreSQL connection in the event loop (db.h).
 *
 * The connection is a small explicit state machine, in the manner of Kore's
 * pgsql.c:
 *
 *   DOWN --timer--> CONNECTING --PQconnectPoll ok--> SETUP --settings, schema ok--> IDLE
 *   IDLE --db_query--> BUSY --PQgetResult == NULL--> IDLE
 *   any state --error--> DOWN (the query in flight fails, retry later)
 *
 * Every connection pins, in its startup packet, the settings the receiver's
 * promises rest on (connect_params): synchronous_commit=on, so that COMMIT
 * returns only once its WAL is flushed and a 200 means durable, and
 * client_encoding=UTF8, the encoding of what it sends and reads.  Startup
 * options take precedence over ALTER DATABASE and ALTER ROLE ... SET, so a
 * DBA's default cannot undo them.
 *
 * SETUP runs one internal round trip: the session's settings as the server
 * has them (server_encoding, synchronous_commit, client_encoding), the
 * schema version, then the LISTEN commands.  A database not in UTF8 (jsonb
 * refuses a \u escape beyond ASCII there, failing a whole batch), a
 * session whose pins did not hold (a pooler dropping startup options) or a
 * schema older than the binary leaves the connection down, retried with
 * backoff: a receiver never writes where its promises do not hold, and
 * never misses a notification after a reconnect.
 *
 * The socket is watched with one persistent read event once connected
 * (results, notifications and a server that hangs up all arrive that way)
 * and a one-shot write event while libpq has unsent data (PQflush() == 1).
 * While connecting the socket can change between polls, so both events are
 * made afresh each time.
 *
 * A query's callback always runs from the event loop, never inside
 * db_query(): a send that fails there is posted (ev_posted) and the
 * connection dropped on the next loop turn, as nginx posts events, so a
 * caller is never re-entered through its own call.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <event2/dns.h>
#include <event2/util.h>

#include "db.h"
#include "log.h"
#include "migrate.h"
#include "util.h"

#define RETRY_MIN_MS 100
#define RETRY_MAX_MS 5000
#define MAX_CHANNELS 4
#define CHANNEL_MAX  64
#define SETTING_MAX  32

/* Appended to the URL's own startup options, so that they win. */
#define PINNED_OPTIONS	"-c synchronous_commit=on"
#define PINNED_ENCODING "UTF8"

/* The first statement of SETUP's round trip: three columns, one row. */
#define SETTINGS_SQL                                                                               \
	"SELECT current_setting('server_encoding'), current_setting('synchronous_commit'),"        \
	" current_setting('client_encoding')"

/*
 * A lookup's callback argument lives apart from the db: cancelling a
 * lookup only schedules its callback, which may then run after the db was
 * freed, and must find out.
 */
struct lookup {
	struct db *db; /* NULL once orphaned */
};

enum db_state {
	DB_DOWN,
	DB_RESOLVING, /* looking the host name up, without blocking */
	DB_CONNECTING,
	DB_SETUP,
	DB_IDLE,
	DB_BUSY,
};

struct db {
	struct event_base *base;
	const struct database_config *cfg;
	const char *name;
	struct db_handlers handlers;
	void *arg;

	PGconn *conn;
	enum db_state state;
	const char *why_down; /* static text */
	struct event *ev_read;
	struct event *ev_write;
	struct event *ev_timer;			  /* retry, connect timeout or query timeout */
	struct event *ev_posted;		  /* a send failed in db_query: go down */
	char posted_detail[256];		  /* libpq's reason for it */
	struct evdns_base *dns;			  /* made at the first host name to look up */
	struct evdns_getaddrinfo_request *lookup; /* while DB_RESOLVING */
	struct lookup *lookup_ctx;		  /* its callback's argument */
	int retry_ms;

	int schema_version; /* needed */
	int schema_found;
	/* The session as the server reported it in SETUP ("" until then). */
	char server_encoding[SETTING_MAX];
	char synchronous_commit[SETTING_MAX];
	char client_encoding[SETTING_MAX];
	char why_refused[128]; /* why_down when SETUP refused the settings */
	char channels[MAX_CHANNELS][CHANNEL_MAX];
	int n_channels;

	/* The query in flight. */
	db_result_fn fn;
	void *fn_arg;
	PGresult *last;
	char error[256];
};

static void connect_begin(struct db *db);
static void connect_start(struct db *db, const char *hostaddr);
static void on_resolved(int result, struct evutil_addrinfo *ai, void *arg);
static char *host_to_resolve(const char *conninfo);
static char *conninfo_value(const char *conninfo, const char *keyword);
static PGconn *connect_params(const char *conninfo, const char *hostaddr, bool blocking);
static void cancel_lookup(struct db *db);
static void connect_poll(struct db *db);
static void setup(struct db *db);
static void setup_result(struct db *db, const PGresult *res);
static const char *settings_refused(struct db *db);
static void setup_finished(struct db *db);
static void go_down(struct db *db, enum status st, const char *why, const char *detail);
static void on_posted(evutil_socket_t fd, short what, void *arg);
static void schedule_retry(struct db *db);
static void watch_socket(struct db *db, short what, bool persist);
static void on_socket(evutil_socket_t fd, short what, void *arg);
static void on_timer(evutil_socket_t fd, short what, void *arg);
static void arm_timer(struct db *db, int ms);
static int flush_output(struct db *db);
static void read_results(struct db *db);
static void query_finished(struct db *db);
static void fail_query(struct db *db, enum status st, const char *why);
static void first_line(char *dst, size_t cap, const char *src);

struct db *
db_new(struct event_base *base, const struct database_config *cfg, int schema_version,
       const char *name, const struct db_handlers *handlers, void *arg)
{
	struct db *db = calloc(1, sizeof(*db));

	if (db == NULL)
		return NULL;
	db->base = base;
	db->cfg = cfg;
	db->name = name;
	if (handlers != NULL)
		db->handlers = *handlers;
	db->arg = arg;
	db->state = DB_DOWN;
	db->why_down = "database not connected yet";
	db->schema_version = schema_version;
	db->retry_ms = RETRY_MIN_MS;
	db->ev_timer = evtimer_new(base, on_timer, db);
	db->ev_posted = event_new(base, -1, 0, on_posted, db);
	if (db->ev_timer == NULL || db->ev_posted == NULL) {
		if (db->ev_timer != NULL)
			event_free(db->ev_timer);
		free(db);
		return NULL;
	}
	return db;
}

void
db_start(struct db *db)
{
	connect_begin(db);
}

void
db_listen(struct db *db, const char *channel)
{
	if (db->n_channels == MAX_CHANNELS || strlen(channel) >= CHANNEL_MAX)
		return;
	snprintf(db->channels[db->n_channels++], CHANNEL_MAX, "%s", channel);
	/* A connection already up learns it at the next reconnect at the latest. */
	if (db->state == DB_IDLE)
		setup(db);
}

bool
db_up(const struct db *db)
{
	return db->state == DB_IDLE || db->state == DB_BUSY;
}

bool
db_idle(const struct db *db)
{
	return db->state == DB_IDLE;
}

const char *
db_state_text(const struct db *db)
{
	return db_up(db) ? "ready" : db->why_down;
}

int
db_query(struct db *db, const char *sql, int nparams, const char *const *params, int timeout_ms,
	 db_result_fn fn, void *arg)
{
	int rc = 0;

	if (db->state != DB_IDLE)
		return -1;
	db->fn = fn;
	db->fn_arg = arg;
	db->error[0] = '\0';
	db->state = DB_BUSY;
	if (PQsendQueryParams(db->conn, sql, nparams, NULL, params, NULL, NULL, 0) != 1 ||
	    (rc = PQflush(db->conn)) < 0) {
		/* FN hears of it from the loop, after this returns. */
		first_line(db->posted_detail, sizeof(db->posted_detail), PQerrorMessage(db->conn));
		event_active(db->ev_posted, 0, 0);
		return 0;
	}
	arm_timer(db, timeout_ms);
	if (rc == 1)
		event_add(db->ev_write, NULL);
	return 0;
}

void
db_free(struct db *db)
{
	if (db == NULL)
		return;
	fail_query(db, STATUS_SHUTDOWN, "shutting down");
	event_free(db->ev_posted);
	if (db->ev_read != NULL)
		event_free(db->ev_read);
	if (db->ev_write != NULL)
		event_free(db->ev_write);
	event_free(db->ev_timer);
	cancel_lookup(db);
	if (db->dns != NULL)
		evdns_base_free(db->dns, 0);
	if (db->conn != NULL)
		PQfinish(db->conn);
	free(db);
}

/* --- connecting --------------------------------------------------------- */

/*
 * libpq resolves a host name with a blocking getaddrinfo() inside
 * PQconnectStart: the loop would stall for as long as DNS takes.  So a
 * host name is looked up first with libevent's resolver, and libpq is
 * given the address as hostaddr (the name stays as host, for TLS and
 * authentication).  Addresses, socket directories and lists of hosts go
 * to libpq as they are.
 */
static void
connect_begin(struct db *db)
{
	struct evutil_addrinfo hints = {0};
	char *host = host_to_resolve(db->cfg->url);

	arm_timer(db, db->cfg->connect_timeout_ms);
	if (host == NULL) {
		connect_start(db, NULL);
		return;
	}
	if (db->dns == NULL)
		db->dns = evdns_base_new(db->base, EVDNS_BASE_INITIALIZE_NAMESERVERS);
	if (db->dns == NULL) {
		free(host);
		go_down(db, STATUS_UNAVAILABLE, "database unreachable",
			"cannot start the DNS resolver");
		return;
	}
	db->lookup_ctx = calloc(1, sizeof(*db->lookup_ctx));
	if (db->lookup_ctx == NULL) {
		free(host);
		go_down(db, STATUS_UNAVAILABLE, "database unreachable", "out of memory");
		return;
	}
	db->lookup_ctx->db = db;
	db->state = DB_RESOLVING;
	db->why_down = "resolving the database host";
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	/* The callback may run before this returns (a cached or local answer). */
	db->lookup = evdns_getaddrinfo(db->dns, host, NULL, &hints, on_resolved, db->lookup_ctx);
	free(host);
}

static void
on_resolved(int result, struct evutil_addrinfo *ai, void *arg)
{
	struct lookup *lk = arg;
	struct db *db = lk->db;
	char addr[INET6_ADDRSTRLEN] = "";

	free(lk);
	if (db == NULL || result == EVUTIL_EAI_CANCEL) {
		if (ai != NULL)
			evutil_freeaddrinfo(ai);
		return; /* orphaned or cancelled: already handled */
	}
	db->lookup = NULL;
	db->lookup_ctx = NULL;
	if (result == 0 && ai != NULL) {
		const void *in =
		    ai->ai_family == AF_INET6
			? (const void *)&((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr
			: (const void *)&((struct sockaddr_in *)ai->ai_addr)->sin_addr;

		evutil_inet_ntop(ai->ai_family, in, addr, sizeof(addr));
	}
	if (ai != NULL)
		evutil_freeaddrinfo(ai);
	if (addr[0] == '\0') {
		go_down(db, STATUS_UNAVAILABLE, "database unreachable",
			evutil_gai_strerror(result));
		return;
	}
	connect_start(db, addr);
}

/* Orphan the lookup in flight, then cancel it: its callback frees the context. */
static void
cancel_lookup(struct db *db)
{
	struct evdns_getaddrinfo_request *lookup = db->lookup;

	if (lookup == NULL)
		return;
	db->lookup_ctx->db = NULL;
	db->lookup = NULL;
	db->lookup_ctx = NULL;
	evdns_getaddrinfo_cancel(lookup);
}

/* Start libpq's connection, to HOSTADDR when the name was looked up. */
static void
connect_start(struct db *db, const char *hostaddr)
{
	db->conn = connect_params(db->cfg->url, hostaddr, false);
	if (db->conn == NULL || PQstatus(db->conn) == CONNECTION_BAD) {
		go_down(db, STATUS_UNAVAILABLE, "database unreachable",
			db->conn != NULL ? PQerrorMessage(db->conn) : "out of memory");
		return;
	}
	db->state = DB_CONNECTING;
	db->why_down = "connecting to the database";
	/* PQconnectStart behaves as if the last poll said "writing". */
	watch_socket(db, EV_WRITE, false);
}

/*
 * libpq's connection to CONNINFO, started (PQconnectStartParams) or, when
 * BLOCKING, made (PQconnectdbParams), with the pins on top of CONNINFO's
 * own settings (expand_dbname: later keywords win), and HOSTADDR when not
 * NULL.  An explicit options value hides the URL's and $PGOPTIONS, so
 * those come first in it and the pin after them, to win.  NULL when out of
 * memory.
 */
static PGconn *
connect_params(const char *conninfo, const char *hostaddr, bool blocking)
{
	char *own = conninfo_value(conninfo, "options");
	const char *before = own != NULL && *own != '\0' ? own : getenv("PGOPTIONS");
	size_t len = (before != NULL ? strlen(before) + 1 : 0) + sizeof(PINNED_OPTIONS);
	char *options = malloc(len);
	PGconn *conn = NULL;

	if (options != NULL) {
		const char *const keywords[] = {"dbname", "options", "client_encoding", "hostaddr",
						NULL};
		const char *const values[] = {conninfo, options, PINNED_ENCODING, hostaddr, NULL};

		snprintf(options, len, "%s%s%s", before != NULL ? before : "",
			 before != NULL ? " " : "", PINNED_OPTIONS);
		conn = blocking ? PQconnectdbParams(keywords, values, 1)
				: PQconnectStartParams(keywords, values, 1);
	}
	free(options);
	free(own);
	return conn;
}

PGconn *
db_connect_blocking(const char *conninfo)
{
	return connect_params(conninfo, NULL, true);
}

bool
db_encoding_refused(const char *server_encoding, char *why, size_t cap)
{
	if (strcmp(server_encoding, PINNED_ENCODING) == 0)
		return false;
	snprintf(why, cap, "database encoding is %s, not %s", server_encoding, PINNED_ENCODING);
	return true;
}

/*
 * The one host name in CONNINFO that needs a lookup, or NULL: none when
 * hostaddr is given, the host is an address or a socket directory, or
 * several hosts are listed (libpq then tries them in turn itself).
 */
static char *
host_to_resolve(const char *conninfo)
{
	char *host = conninfo_value(conninfo, "host");
	char *hostaddr = conninfo_value(conninfo, "hostaddr");
	unsigned char buf[sizeof(struct in6_addr)];

	if (host == NULL || *host == '\0' || (hostaddr != NULL && *hostaddr != '\0') ||
	    host[0] == '/' || host[0] == '@' || strchr(host, ',') != NULL ||
	    evutil_inet_pton(AF_INET, host, buf) == 1 ||
	    evutil_inet_pton(AF_INET6, host, buf) == 1) {
		free(host);
		host = NULL;
	}
	free(hostaddr);
	return host;
}

/* KEYWORD's value in CONNINFO (a copy to free), or NULL: not set, or CONNINFO unparsable. */
static char *
conninfo_value(const char *conninfo, const char *keyword)
{
	PQconninfoOption *opts = PQconninfoParse(conninfo, NULL), *o;
	char *value = NULL;

	for (o = opts; o != NULL && o->keyword != NULL; o++)
		if (strcmp(o->keyword, keyword) == 0 && o->val != NULL)
			value = strdup(o->val);
	PQconninfoFree(opts);
	return value;
}

static void
connect_poll(struct db *db)
{
	switch (PQconnectPoll(db->conn)) {
	case PGRES_POLLING_READING:
		watch_socket(db, EV_READ, false);
		break;
	case PGRES_POLLING_WRITING:
		watch_socket(db, EV_WRITE, false);
		break;
	case PGRES_POLLING_OK:
		if (PQsetnonblocking(db->conn, 1) != 0) {
			go_down(db, STATUS_UNAVAILABLE, "database unreachable",
				"cannot set non-blocking mode");
			break;
		}
		watch_socket(db, EV_READ, true);
		if (db->state != DB_DOWN)
			setup(db);
		break;
	case PGRES_POLLING_FAILED:
	default:
		go_down(db, STATUS_UNAVAILABLE, "database unreachable", PQerrorMessage(db->conn));
		break;
	}
}

/*
 * Read the session's settings and the schema version, and (re)issue the
 * LISTENs, in one round trip.  The settings come first: a database in the
 * wrong encoding is refused for that even when it has no schema yet.
 */
static void
setup(struct db *db)
{
	char sql[sizeof(SETTINGS_SQL) + sizeof(SCHEMA_VERSION_SQL) +
		 MAX_CHANNELS * (CHANNEL_MAX + 12)];
	size_t n = (size_t)snprintf(sql, sizeof(sql), "%s;%s;", SETTINGS_SQL, SCHEMA_VERSION_SQL);

	for (int i = 0; i < db->n_channels; i++)
		n += (size_t)snprintf(sql + n, sizeof(sql) - n, "LISTEN \"%s\";", db->channels[i]);
	db->state = DB_SETUP;
	db->why_down = "checking the schema version";
	db->schema_found = -1;
	db->server_encoding[0] = db->synchronous_commit[0] = db->client_encoding[0] = '\0';
	db->error[0] = '\0';
	if (PQsendQuery(db->conn, sql) != 1) {
		go_down(db, STATUS_UNAVAILABLE, "database connection lost",
			PQerrorMessage(db->conn));
		return;
	}
	flush_output(db);
}

/* One result of SETUP's round trip: the settings (3 columns) or the schema version (1). */
static void
setup_result(struct db *db, const PGresult *res)
{
	if (PQntuples(res) != 1)
		return;
	if (PQnfields(res) == 3) {
		snprintf(db->server_encoding, SETTING_MAX, "%s", PQgetvalue(res, 0, 0));
		snprintf(db->synchronous_commit, SETTING_MAX, "%s", PQgetvalue(res, 0, 1));
		snprintf(db->client_encoding, SETTING_MAX, "%s", PQgetvalue(res, 0, 2));
	} else if (PQnfields(res) == 1) {
		db->schema_found = atoi(PQgetvalue(res, 0, 0));
	}
}

/*
 * What is wrong with the session's settings as the server reported them,
 * for people, or NULL; the short reason is in db->why_refused.  The pins
 * make the session's own settings right, so only a database made in
 * another encoding, or something between the receiver and the server that
 * drops startup options (a pooler), gets a refusal.  Any synchronous_commit
 * but off waits for the local WAL flush before COMMIT returns.
 */
static const char *
settings_refused(struct db *db)
{
	const size_t cap = sizeof(db->why_refused);

	if (db->server_encoding[0] == '\0')
		return NULL; /* not read: the error says why */
	if (db_encoding_refused(db->server_encoding, db->why_refused, cap))
		return DB_ENCODING_HINT;
	if (strcmp(db->synchronous_commit, "off") == 0) {
		snprintf(db->why_refused, cap, "database session has synchronous_commit off");
		return "a 200 would precede the WAL flush: is something dropping the startup "
		       "options?";
	}
	if (strcmp(db->client_encoding, PINNED_ENCODING) != 0) {
		snprintf(db->why_refused, cap, "database session's client_encoding is %s, not %s",
			 db->client_encoding, PINNED_ENCODING);
		return "text would be converted: is something dropping the startup options?";
	}
	return NULL;
}

static void
setup_finished(struct db *db)
{
	const char *refused = settings_refused(db);

	if (refused != NULL) {
		log_event(LOG_ERROR, "db_settings_refused", "%s: %s: %s", db->name, db->why_refused,
			  refused);
		go_down(db, STATUS_UNAVAILABLE, db->why_refused, NULL);
		return;
	}
	if (db->error[0] != '\0' || db->schema_found < db->schema_version) {
		log_event(LOG_ERROR, "db_schema_outdated",
			  "%s: database schema is at version %d, this receiver needs %d: run "
			  "`receiver migrate`%s%s",
			  db->name, db->schema_found < 0 ? 0 : db->schema_found, db->schema_version,
			  db->error[0] != '\0' ? "; " : "", db->error);
		go_down(db, STATUS_UNAVAILABLE, "database schema outdated: run receiver migrate",
			NULL);
		return;
	}
	event_del(db->ev_timer);
	db->state = DB_IDLE;
	db->retry_ms = RETRY_MIN_MS;
	log_event(LOG_INFO, "db_connected",
		  "%s: connected, schema version %d, server_encoding %s, synchronous_commit %s, "
		  "client_encoding %s",
		  db->name, db->schema_found, db->server_encoding, db->synchronous_commit,
		  db->client_encoding);
	if (db->handlers.up != NULL)
		db->handlers.up(db->arg);
}

/*
 * Drop the connection.  The query in flight fails at once; its owner
 * decides what that means (the store answers 503: nothing waits unbounded).
 */
static void
go_down(struct db *db, enum status st, const char *why, const char *detail)
{
	bool was_up = db_up(db);
	char line[256];

	first_line(line, sizeof(line), detail != NULL ? detail : "");
	if (was_up || db->state == DB_SETUP)
		log_event(LOG_ERROR, "db_down", "%s: %s%s%s", db->name, why,
			  line[0] != '\0' ? ": " : "", line);
	else if (line[0] != '\0')
		log_event(LOG_WARN, "db_connect_failed", "%s: %s", db->name, line);
	if (db->ev_read != NULL)
		event_del(db->ev_read);
	if (db->ev_write != NULL)
		event_del(db->ev_write);
	event_del(db->ev_timer);
	event_del(db->ev_posted);
	cancel_lookup(db);
	if (db->conn != NULL) {
		PQfinish(db->conn);
		db->conn = NULL;
	}
	db->state = DB_DOWN;
	db->why_down = why;
	schedule_retry(db);
	fail_query(db, st, why);
	if (db->handlers.down != NULL)
		db->handlers.down(db->arg);
}

static void
schedule_retry(struct db *db)
{
	/* Jitter keeps several receivers from reconnecting in lockstep. */
	arm_timer(db, (int)util_jitter(db->retry_ms));
	db->retry_ms = db->retry_ms * 2 > RETRY_MAX_MS ? RETRY_MAX_MS : db->retry_ms * 2;
}

static void
watch_socket(struct db *db, short what, bool persist)
{
	evutil_socket_t fd = PQsocket(db->conn);

	if (db->ev_read != NULL)
		event_free(db->ev_read);
	if (db->ev_write != NULL)
		event_free(db->ev_write);
	db->ev_read = db->ev_write = NULL;
	if (fd < 0) {
		go_down(db, STATUS_UNAVAILABLE, "database unreachable", "no socket");
		return;
	}
	db->ev_read = event_new(db->base, fd, EV_READ | (persist ? EV_PERSIST : 0), on_socket, db);
	db->ev_write = event_new(db->base, fd, EV_WRITE, on_socket, db);
	if (db->ev_read == NULL || db->ev_write == NULL) {
		go_down(db, STATUS_UNAVAILABLE, "out of memory", NULL);
		return;
	}
	if (what & EV_READ)
		event_add(db->ev_read, NULL);
	if (what & EV_WRITE)
		event_add(db->ev_write, NULL);
}

/* --- events --------------------------------------------------------------- */

static void
on_socket(evutil_socket_t fd, short what, void *arg)
{
	struct db *db = arg;

	(void)fd;
	if (db->state == DB_CONNECTING) {
		connect_poll(db);
		return;
	}
	if ((what & EV_READ) && PQconsumeInput(db->conn) == 0) {
		go_down(db, STATUS_UNAVAILABLE, "database connection lost",
			PQerrorMessage(db->conn));
		return;
	}
	if (flush_output(db) < 0)
		return;
	read_results(db);
}

static void
on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct db *db = arg;

	(void)fd;
	(void)what;
	switch (db->state) {
	case DB_DOWN:
		connect_begin(db);
		break;
	case DB_RESOLVING:
	case DB_CONNECTING:
	case DB_SETUP:
		go_down(db, STATUS_UNAVAILABLE, "database connection timed out", NULL);
		break;
	case DB_BUSY:
		/*
		 * The server may still commit.  Whoever waits hears "timed
		 * out"; a push is then simply delivered again and recorded
		 * once, since msgId deduplicates.
		 */
		go_down(db, STATUS_TIMEOUT, "timed out", NULL);
		break;
	case DB_IDLE:
		break;
	}
}

/* A send failed inside db_query(): drop the connection now, from the loop. */
static void
on_posted(evutil_socket_t fd, short what, void *arg)
{
	struct db *db = arg;

	(void)fd;
	(void)what;
	go_down(db, STATUS_UNAVAILABLE, "database connection lost", db->posted_detail);
}

static void
arm_timer(struct db *db, int ms)
{
	struct timeval tv = util_tv_ms(ms);

	evtimer_add(db->ev_timer, &tv);
}

/* --- results ------------------------------------------------------------ */

static int
flush_output(struct db *db)
{
	int rc = PQflush(db->conn);

	if (rc < 0) {
		go_down(db, STATUS_UNAVAILABLE, "database connection lost",
			PQerrorMessage(db->conn));
		return -1;
	}
	if (rc == 1)
		event_add(db->ev_write, NULL);
	return 0;
}

static void
read_results(struct db *db)
{
	PGnotify *n;

	while (db->conn != NULL && (n = PQnotifies(db->conn)) != NULL) {
		if (db->handlers.notify != NULL)
			db->handlers.notify(db->arg, n->relname, n->extra);
		PQfreemem(n);
	}
	if (db->state != DB_SETUP && db->state != DB_BUSY)
		return;
	while (PQisBusy(db->conn) == 0) {
		PGresult *res = PQgetResult(db->conn);
		ExecStatusType st;

		if (res == NULL) {
			query_finished(db);
			return;
		}
		st = PQresultStatus(res);
		if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
			if (db->error[0] == '\0')
				first_line(db->error, sizeof(db->error), PQresultErrorMessage(res));
		} else if (db->state == DB_SETUP && st == PGRES_TUPLES_OK) {
			setup_result(db, res);
		}
		PQclear(db->last);
		db->last = res;
	}
}

static void
query_finished(struct db *db)
{
	db_result_fn fn = db->fn;
	PGresult *res = db->last;

	db->last = NULL;
	if (db->state == DB_SETUP) {
		PQclear(res);
		setup_finished(db);
		return;
	}
	event_del(db->ev_timer);
	db->state = DB_IDLE;
	db->fn = NULL;
	if (db->error[0] != '\0')
		fn(db->fn_arg, STATUS_ERROR, NULL, db->error);
	else
		fn(db->fn_arg, STATUS_OK, res, NULL);
	PQclear(res);
}

static void
fail_query(struct db *db, enum status st, const char *why)
{
	db_result_fn fn = db->fn;

	PQclear(db->last);
	db->last = NULL;
	if (fn == NULL)
		return;
	db->fn = NULL;
	fn(db->fn_arg, st, NULL, why);
}

static void
first_line(char *dst, size_t cap, const char *src)
{
	snprintf(dst, cap, "%s", src);
	dst[strcspn(dst, "\n")] = '\0';
}
