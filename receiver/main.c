/*
 * main.c - the command line.
 *
 *   receiver [serve] [-c FILE]                      serve pushes (the default)
 *   receiver migrate [-c FILE]                      bring the schema up to date
 *   receiver reconcile [-c FILE] [--app NAME] ORDER_ID...
 *   receiver sweep [-c FILE] --since DATE [--until DATE] [--app NAME]
 *   receiver jobs [-c FILE] [--retry-dead]
 *   receiver sign [-c FILE] [--app NAME] [--field NAME] < message.json
 *   receiver verify [-c FILE] [--app NAME] < body
 *   receiver version
 *
 * Exit status: 0 on success, 1 on a runtime failure, 2 on bad usage or a
 * bad configuration, always with a one-line reason on stderr.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "config.h"
#include "log.h"
#include "migrate.h"
#include "server.h"
#include "util.h"

#define DEFAULT_CONFIG "/etc/receiver/receiver.toml"

static void usage(FILE *out);
static int parse_args(int argc, char **argv, int first, const char **file, struct cli_args *args);
static int load(const char *file, struct config *cfg);
static int cmd_migrate(const struct config *cfg);

int
main(int argc, char **argv)
{
	const char *command = "serve", *file = DEFAULT_CONFIG;
	struct cli_args args = {0};
	struct config cfg;
	int first = 1, rc;

	if (argc > 1 && argv[1][0] != '-') {
		command = argv[1];
		first = 2;
	}
	if (strcmp(command, "help") == 0) {
		usage(stdout);
		return 0;
	}
	if (strcmp(command, "version") == 0) {
		printf("receiver %s (schema version %d)\n", RECEIVER_VERSION,
		       migrate_latest_version());
		return 0;
	}
	if (strcmp(command, "serve") != 0 && strcmp(command, "migrate") != 0 &&
	    strcmp(command, "reconcile") != 0 && strcmp(command, "sweep") != 0 &&
	    strcmp(command, "jobs") != 0 && strcmp(command, "sign") != 0 &&
	    strcmp(command, "verify") != 0) {
		fprintf(stderr, "receiver: unknown command '%s' (try --help)\n", command);
		return EXIT_USAGE;
	}
	rc = parse_args(argc, argv, first, &file, &args);
	if (rc >= 0) {
		free(args.rest);
		return rc;
	}
	if ((args.n_rest > 0 && strcmp(command, "reconcile") != 0) ||
	    (args.retry_dead && strcmp(command, "jobs") != 0) ||
	    ((args.since != NULL || args.until != NULL) && strcmp(command, "sweep") != 0) ||
	    (args.field != NULL && strcmp(command, "sign") != 0) ||
	    (args.app != NULL && strcmp(command, "reconcile") != 0 &&
	     strcmp(command, "sweep") != 0 && strcmp(command, "sign") != 0 &&
	     strcmp(command, "verify") != 0)) {
		fprintf(stderr, "receiver: %s: unexpected argument (try --help)\n", command);
		free(args.rest);
		return EXIT_USAGE;
	}
	if (load(file, &cfg) < 0) {
		free(args.rest);
		return EXIT_USAGE;
	}
	if (strcmp(command, "serve") == 0)
		rc = server_run(&cfg);
	else if (strcmp(command, "migrate") == 0)
		rc = cmd_migrate(&cfg);
	else if (strcmp(command, "reconcile") == 0)
		rc = cli_reconcile(&cfg, &args);
	else if (strcmp(command, "sweep") == 0)
		rc = cli_sweep(&cfg, &args);
	else if (strcmp(command, "sign") == 0)
		rc = cli_sign(&cfg, &args);
	else if (strcmp(command, "verify") == 0)
		rc = cli_verify(&cfg, &args);
	else
		rc = cli_jobs(&cfg, &args);
	config_free(&cfg);
	free(args.rest);
	return rc;
}

static void
usage(FILE *out)
{
	fprintf(
	    out,
	    "usage: receiver [serve] [-c FILE]              serve pushes (default command)\n"
	    "       receiver migrate [-c FILE]              apply the database migrations\n"
	    "       receiver reconcile [-c FILE] [--app NAME] ORDER_ID...\n"
	    "                                               fetch orders now, print their status\n"
	    "       receiver sweep [-c FILE] --since DATE [--until DATE] [--app NAME]\n"
	    "                                               backfill orders created in a window\n"
	    "       receiver jobs [-c FILE] [--retry-dead]  reconcile jobs: counts, errors\n"
	    "       receiver sign [-c FILE] [--app NAME] [--field _aop_signature|_dj_signature]\n"
	    "                                               stdin: a message; prints a signed "
	    "form\n"
	    "       receiver verify [-c FILE] [--app NAME]  stdin: a form body; genuine or why "
	    "not\n"
	    "       receiver version\n"
	    "FILE defaults to " DEFAULT_CONFIG "; $DATABASE_URL overrides [database] url.\n"
	    "DATE is YYYY-MM-DD[THH:MM[:SS]] in Shanghai time (+08:00).\n");
}

/* Returns -1 to go on, or an exit status to stop with. */
static int
parse_args(int argc, char **argv, int first, const char **file, struct cli_args *args)
{
	args->rest = calloc((size_t)argc, sizeof(*args->rest));
	if (args->rest == NULL)
		return 1;
	for (int i = first; i < argc; i++) {
		const char *a = argv[i];
		bool has_value = i + 1 < argc;

		if ((strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0) && has_value) {
			*file = argv[++i];
		} else if (strcmp(a, "--app") == 0 && has_value) {
			args->app = argv[++i];
		} else if (strcmp(a, "--since") == 0 && has_value) {
			args->since = argv[++i];
		} else if (strcmp(a, "--until") == 0 && has_value) {
			args->until = argv[++i];
		} else if (strcmp(a, "--field") == 0 && has_value) {
			args->field = argv[++i];
		} else if (strcmp(a, "--retry-dead") == 0) {
			args->retry_dead = 1;
		} else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			usage(stdout);
			return 0;
		} else if (a[0] != '-') {
			args->rest[args->n_rest++] = argv[i];
		} else {
			fprintf(stderr, "receiver: unexpected argument '%s' (try --help)\n", a);
			return EXIT_USAGE;
		}
	}
	return -1;
}

static int
load(const char *file, struct config *cfg)
{
	char err[512];
	enum log_level level;

	if (config_load(file, cfg, err, sizeof(err)) < 0) {
		fprintf(stderr, "receiver: %s\n", err);
		return -1;
	}
	if (log_parse_level(cfg->log.level, &level) == 0)
		log_set_level(level);
	return 0;
}

static int
cmd_migrate(const struct config *cfg)
{
	char err[512];

	if (migrate_run(cfg->database.url, stdout, err, sizeof(err)) < 0) {
		fprintf(stderr, "receiver: migrate: %s\n", err);
		return 1;
	}
	return 0;
}
