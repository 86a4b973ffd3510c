/*
 * migrate.c - apply the compiled-in migrations (see migrate.h).
 *
 * This is command-line code and uses blocking libpq on purpose: it runs
 * before the daemon serves, never inside the event loop.  The whole run holds
 * a session advisory lock, so two `receiver migrate` started together apply
 * each migration once; each migration and its schema_migrations row commit
 * together, so a failed migration leaves no trace and can be rerun.  The
 * connection pins the daemon's settings (db_connect_blocking), and a
 * database not in UTF8 is refused before anything is written: the daemon
 * would refuse to serve it (db.c), and is better told now.
 */
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "db.h"
#include "migrate.h"

static int check_encoding(PGconn *conn, char *err, size_t errlen);
static int exec_ok(PGconn *conn, const char *sql, char *err, size_t errlen);
static int query_value(PGconn *conn, const char *sql, char *value, size_t cap, char *err,
		       size_t errlen);
static int applied_version(PGconn *conn, int *version, char *err, size_t errlen);
static int apply_one(PGconn *conn, const struct migration *m, char *err, size_t errlen);

int
migrate_latest_version(void)
{
	int latest = 0;

	for (int i = 0; i < n_migrations; i++)
		if (migrations[i].version > latest)
			latest = migrations[i].version;
	return latest;
}

int
migrate_run(const char *conninfo, FILE *out, char *err, size_t errlen)
{
	PGconn *conn;
	int version = 0, rc = -1, applied = 0;

	conn = db_connect_blocking(conninfo);
	if (PQstatus(conn) != CONNECTION_OK) {
		snprintf(err, errlen, "cannot connect to the database: %s", PQerrorMessage(conn));
		goto out;
	}
	if (check_encoding(conn, err, errlen) < 0 ||
	    exec_ok(conn, "SET client_min_messages = warning", err, errlen) < 0 ||
	    /* key 0x72637672 is "rcvr"; the lock is released by PQfinish */
	    exec_ok(conn, "SELECT pg_advisory_lock(1919121010, 0)", err, errlen) < 0)
		goto out;
	if (exec_ok(conn,
		    "CREATE TABLE IF NOT EXISTS schema_migrations ("
		    " version integer PRIMARY KEY, name text NOT NULL,"
		    " applied_at timestamptz NOT NULL DEFAULT now())",
		    err, errlen) < 0)
		goto out;
	if (applied_version(conn, &version, err, errlen) < 0)
		goto out;
	for (int i = 0; i < n_migrations; i++) {
		if (migrations[i].version <= version)
			continue;
		if (apply_one(conn, &migrations[i], err, errlen) < 0)
			goto out;
		fprintf(out, "applied %s\n", migrations[i].name);
		applied++;
	}
	if (applied == 0)
		fprintf(out, "schema is current (version %d)\n", version);
	rc = 0;
out:
	PQfinish(conn);
	return rc;
}

/* The database's encoding must be UTF8 (db_encoding_refused says why). */
static int
check_encoding(PGconn *conn, char *err, size_t errlen)
{
	char encoding[64];
	size_t n;

	if (query_value(conn, "SELECT current_setting('server_encoding')", encoding,
			sizeof(encoding), err, errlen) < 0)
		return -1;
	if (!db_encoding_refused(encoding, err, errlen))
		return 0;
	n = strlen(err);
	snprintf(err + n, errlen - n, ": %s", DB_ENCODING_HINT);
	return -1;
}

static int
exec_ok(PGconn *conn, const char *sql, char *err, size_t errlen)
{
	PGresult *res = PQexec(conn, sql);
	ExecStatusType st = PQresultStatus(res);
	int rc = 0;

	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
		snprintf(err, errlen, "%s", PQresultErrorMessage(res));
		err[strcspn(err, "\n")] = '\0';
		rc = -1;
	}
	PQclear(res);
	return rc;
}

/* The one value SQL returns, copied into VALUE. */
static int
query_value(PGconn *conn, const char *sql, char *value, size_t cap, char *err, size_t errlen)
{
	PGresult *res = PQexec(conn, sql);

	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
		snprintf(err, errlen, "%s", PQresultErrorMessage(res));
		err[strcspn(err, "\n")] = '\0';
		PQclear(res);
		return -1;
	}
	snprintf(value, cap, "%s", PQgetvalue(res, 0, 0));
	PQclear(res);
	return 0;
}

static int
applied_version(PGconn *conn, int *version, char *err, size_t errlen)
{
	char text[32];

	if (query_value(conn, SCHEMA_VERSION_SQL, text, sizeof(text), err, errlen) < 0)
		return -1;
	*version = atoi(text);
	return 0;
}

static int
apply_one(PGconn *conn, const struct migration *m, char *err, size_t errlen)
{
	char version[16];
	const char *params[2] = {version, m->name};
	PGresult *res;
	char why[512];

	snprintf(version, sizeof(version), "%d", m->version);
	if (exec_ok(conn, "BEGIN", err, errlen) < 0)
		return -1;
	if (exec_ok(conn, m->sql, why, sizeof(why)) < 0) {
		snprintf(err, errlen, "migration %s failed: %s", m->name, why);
		PQclear(PQexec(conn, "ROLLBACK"));
		return -1;
	}
	res = PQexecParams(conn, "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", 2,
			   NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		snprintf(err, errlen, "migration %s: %s", m->name, PQresultErrorMessage(res));
		err[strcspn(err, "\n")] = '\0';
		PQclear(res);
		PQclear(PQexec(conn, "ROLLBACK"));
		return -1;
	}
	PQclear(res);
	return exec_ok(conn, "COMMIT", err, errlen);
}
