/*
 * migrate.h - the schema migrations in sql/, compiled into the binary.
 *
 * `receiver migrate` applies, in version order and each in its own
 * transaction, every migration not yet recorded in schema_migrations.  An
 * advisory lock makes concurrent runs (several hosts starting at once) safe.
 * The daemon only serves when the database is at migrate_latest_version().
 */
#ifndef RECEIVER_MIGRATE_H
#define RECEIVER_MIGRATE_H

#include <stdio.h>

struct migration {
	int version;
	const char *name;
	const char *sql;
};

/* Generated from the files in sql/ by receiver/embed-sql.sh. */
extern const struct migration migrations[];
extern const int n_migrations;

/* The version the code needs: the highest migration compiled in. */
int migrate_latest_version(void);

/*
 * Apply every pending migration over a blocking connection to CONNINFO,
 * reporting each step on OUT.  Returns 0, or -1 with a reason in ERR.
 * Command-line use only: it blocks.
 */
int migrate_run(const char *conninfo, FILE *out, char *err, size_t errlen);

/* The schema version a database is at (0 before the first migration). */
#define SCHEMA_VERSION_SQL "SELECT coalesce(max(version), 0) FROM schema_migrations"

#endif
