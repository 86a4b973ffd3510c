/*
 * main.c - the command line.
 *
 *   receiver [serve] [-c FILE]     serve pushes (the default command)
 *   receiver migrate [-c FILE]     bring the database schema up to date
 *   receiver version
 *
 * Exit status: 0 on success, 1 on a runtime failure, 2 on bad usage or a
 * bad configuration, always with a one-line reason on stderr.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "log.h"
#include "migrate.h"
#include "server.h"

#define DEFAULT_CONFIG "/etc/receiver/receiver.toml"
#define EXIT_USAGE     2

#ifndef RECEIVER_VERSION
#define RECEIVER_VERSION "0.1.0"
#endif

static void usage(FILE *out);
static int load(const char *file, struct config *cfg);
static int cmd_serve(const char *file);
static int cmd_migrate(const char *file);

int
main(int argc, char **argv)
{
	const char *command = "serve", *file = DEFAULT_CONFIG;
	int i = 1;

	if (argc > 1 && argv[1][0] != '-') {
		command = argv[1];
		i = 2;
	}
	for (; i < argc; i++) {
		if ((strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) &&
		    i + 1 < argc) {
			file = argv[++i];
		} else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			usage(stdout);
			return 0;
		} else {
			fprintf(stderr, "receiver: unexpected argument '%s' (try --help)\n",
				argv[i]);
			return EXIT_USAGE;
		}
	}
	if (strcmp(command, "serve") == 0)
		return cmd_serve(file);
	if (strcmp(command, "migrate") == 0)
		return cmd_migrate(file);
	if (strcmp(command, "version") == 0) {
		printf("receiver %s (schema version %d)\n", RECEIVER_VERSION,
		       migrate_latest_version());
		return 0;
	}
	if (strcmp(command, "help") == 0) {
		usage(stdout);
		return 0;
	}
	fprintf(stderr, "receiver: unknown command '%s' (try --help)\n", command);
	return EXIT_USAGE;
}

static void
usage(FILE *out)
{
	fprintf(out, "usage: receiver [serve] [-c FILE]   serve pushes (default command)\n"
		     "       receiver migrate [-c FILE]   apply the database migrations\n"
		     "       receiver version\n"
		     "FILE defaults to " DEFAULT_CONFIG "; $DATABASE_URL overrides [database] url.\n");
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
cmd_serve(const char *file)
{
	struct config cfg;
	int rc;

	if (load(file, &cfg) < 0)
		return EXIT_USAGE;
	rc = server_run(&cfg);
	config_free(&cfg);
	return rc;
}

static int
cmd_migrate(const char *file)
{
	struct config cfg;
	char err[512];
	int rc = 0;

	if (load(file, &cfg) < 0)
		return EXIT_USAGE;
	if (migrate_run(cfg.database.url, stdout, err, sizeof(err)) < 0) {
		fprintf(stderr, "receiver: migrate: %s\n", err);
		rc = 1;
	}
	config_free(&cfg);
	return rc;
}
