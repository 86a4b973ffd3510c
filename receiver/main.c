/*
 * main.c - the command line: `receiver [COMMAND] [OPTIONS]`.
 *
 * Every command is one row of commands[] below: its name, its handler, the
 * options it accepts, whether it needs the configuration loaded, and its
 * usage line; `receiver help` (or -h, --help) prints the usage from those
 * rows.  A command may be two words ("token set"): the first names a group
 * of rows, the second the row.  main() finds the row, parses the options
 * (one parser for every command), refuses those the row does not accept,
 * loads the configuration (-c FILE, default /etc/receiver/receiver.toml)
 * and calls the handler.  The
 * first row, serve, is the default command: when there is no argument or the
 * first one is an option.  help and version need no configuration and
 * ignore their arguments.
 *
 * Exit status: 0 on success, 1 on a runtime failure, 2 (EXIT_USAGE) on bad
 * usage or a bad configuration, always with a one-line reason on stderr.
 *
 * Before anything else, main() makes the process safe to hold secrets in
 * (every command reads them): no core dump (RLIMIT_CORE 0, and not
 * dumpable, which also keeps other processes of the same user from
 * ptrace or reading its memory), and SIGHUP blocked, since its default
 * action would kill a daemon reloaded before its handler exists; server.c
 * unblocks it once its loop handles it, a one-off command never does.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>

#include "cli.h"
#include "config.h"
#include "log.h"
#include "migrate.h"
#include "server.h"
#include "util.h"

#define DEFAULT_CONFIG "/etc/receiver/receiver.toml"

/* The options beside -c/--config and -h/--help (every command takes those). */
enum {
	OPT_APP = 1 << 0,	 /* --app NAME */
	OPT_SINCE = 1 << 1,	 /* --since DATE and --until DATE */
	OPT_FIELD = 1 << 2,	 /* --field NAME */
	OPT_RETRY_DEAD = 1 << 3, /* --retry-dead */
	OPT_ARGS = 1 << 4,	 /* positional arguments */
	OPT_RELAY = 1 << 5,	 /* --subscriber, --enable, --replay, --test NAME */
	/* --member ID, --refresh-token T, --access-token A, --expires-in S,
	 * --refresh-expires-in S */
	OPT_GRANT = 1 << 6,
};

struct command {
	const char *name;
	/* Exactly one handler: a tool only reads the configuration; the
	 * daemon keeps it and adopts new secrets into it on SIGHUP. */
	int (*tool)(const struct config *cfg, const struct cli_args *args);
	int (*daemon)(struct config *cfg);
	unsigned options; /* OPT_* */
	bool needs_config;
	const char *synopsis; /* after "receiver NAME", or NULL: not listed */
	const char *what;     /* what it does, or NULL */
};

static int cmd_migrate(const struct config *cfg, const struct cli_args *args);
static int cmd_help(const struct config *cfg, const struct cli_args *args);
static int cmd_version(const struct config *cfg, const struct cli_args *args);

static const struct command commands[] = {
    {.name = "serve",
     .daemon = server_run,
     .needs_config = true,
     .synopsis = "[-c FILE]",
     .what = "serve pushes (default command)"},
    {.name = "migrate",
     .tool = cmd_migrate,
     .needs_config = true,
     .synopsis = "[-c FILE]",
     .what = "apply the database migrations"},
    {.name = "reconcile",
     .tool = cli_reconcile,
     .options = OPT_APP | OPT_ARGS,
     .needs_config = true,
     .synopsis = "[-c FILE] [--app NAME] ORDER_ID...",
     .what = "fetch orders now, print their status"},
    {.name = "sweep",
     .tool = cli_sweep,
     .options = OPT_SINCE | OPT_APP,
     .needs_config = true,
     .synopsis = "[-c FILE] --since DATE [--until DATE] [--app NAME]",
     .what = "backfill orders created in a window"},
    {.name = "jobs",
     .tool = cli_jobs,
     .options = OPT_RETRY_DEAD,
     .needs_config = true,
     .synopsis = "[-c FILE] [--retry-dead]",
     .what = "reconcile jobs: counts, errors"},
    {.name = "relay",
     .tool = cli_relay,
     .options = OPT_RETRY_DEAD | OPT_RELAY | OPT_SINCE,
     .needs_config = true,
     .synopsis = "[-c FILE] [--retry-dead] [--subscriber NAME] [--enable NAME] "
		 "[--replay NAME --since DATE [--until DATE]] [--test NAME]",
     .what = "webhook subscribers: state, dead, replay"},
    {.name = "token set",
     .tool = cli_token_set,
     .options = OPT_APP | OPT_GRANT,
     .needs_config = true,
     .synopsis = "[-c FILE] --app NAME --member ID --refresh-token T|- "
		 "[--access-token A|- --expires-in S] [--refresh-expires-in S]",
     .what = "store a member's grant, encrypted (-: from stdin, unseen by ps)"},
    {.name = "token list",
     .tool = cli_token_list,
     .options = OPT_APP,
     .needs_config = true,
     .synopsis = "[-c FILE] [--app NAME]",
     .what = "members' grants: expiry, state (no token)"},
    {.name = "sign",
     .tool = cli_sign,
     .options = OPT_APP | OPT_FIELD,
     .needs_config = true,
     .synopsis = "[-c FILE] [--app NAME] [--field _aop_signature|_dj_signature]",
     .what = "stdin: a message; prints a signed form"},
    {.name = "verify",
     .tool = cli_verify,
     .options = OPT_APP,
     .needs_config = true,
     .synopsis = "[-c FILE] [--app NAME]",
     .what = "stdin: a form body; genuine or why not"},
    {.name = "version", .tool = cmd_version, .synopsis = ""},
    /* Not listed: it prints the list. */
    {.name = "help", .tool = cmd_help},
};

#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))

static const struct command *find(int argc, char **argv, int *words);
static bool in_group(const char *name, const char *word);
static int unknown(int argc, char **argv);
static void usage(FILE *out);
static int parse_args(int argc, char **argv, int first, const char **file, struct cli_args *args);
static unsigned options_given(const struct cli_args *args);
static int run(const struct command *c, const char *file, const struct cli_args *args);
static int protect(void);

int
main(int argc, char **argv)
{
	const struct command *c = &commands[0];
	const char *file = DEFAULT_CONFIG;
	struct cli_args args = {0};
	int first = 1, rc;

	if (protect() < 0)
		return 1;
	if (argc > 1 && argv[1][0] != '-') {
		int words = 1;

		c = find(argc, argv, &words);
		first = 1 + words;
		if (c == NULL)
			return unknown(argc, argv);
	}
	if (!c->needs_config)
		return c->tool(NULL, &args);
	rc = parse_args(argc, argv, first, &file, &args);
	if (rc < 0 && (options_given(&args) & ~c->options) != 0) {
		fprintf(stderr, "receiver: %s: unexpected argument (try --help)\n", c->name);
		rc = EXIT_USAGE;
	}
	if (rc < 0)
		rc = run(c, file, &args);
	free(args.rest);
	return rc;
}

/* See the top of the file; -1 (said on stderr) when it cannot be done. */
static int
protect(void)
{
	const struct rlimit no_core = {0, 0};

	util_block_sighup(true);
	if (setrlimit(RLIMIT_CORE, &no_core) < 0 || prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0) {
		perror("receiver: cannot disable core dumps");
		return -1;
	}
	return 0;
}

/* The row ARGV[1] names, or ARGV[1] and ARGV[2]; *WORDS says how many it took. */
static const struct command *
find(int argc, char **argv, int *words)
{
	size_t n = strlen(argv[1]);

	for (size_t i = 0; i < N_COMMANDS; i++) {
		const char *name = commands[i].name;

		if (strcmp(name, argv[1]) == 0) {
			*words = 1;
			return &commands[i];
		}
		if (argc > 2 && in_group(name, argv[1]) && strcmp(name + n + 1, argv[2]) == 0) {
			*words = 2;
			return &commands[i];
		}
	}
	return NULL;
}

/* True when NAME is a two-word command whose first word is WORD ("token"). */
static bool
in_group(const char *name, const char *word)
{
	size_t n = strlen(word);

	return strncmp(name, word, n) == 0 && name[n] == ' ';
}

/* Said on stderr: ARGV[1] (and ARGV[2], after a group's word) names no command. */
static int
unknown(int argc, char **argv)
{
	bool group = false;

	for (size_t i = 0; i < N_COMMANDS && !group; i++)
		group = in_group(commands[i].name, argv[1]);
	if (group && (argc == 2 || argv[2][0] == '-'))
		fprintf(stderr, "receiver: %s: name one of its commands (try --help)\n", argv[1]);
	else if (group)
		fprintf(stderr, "receiver: unknown command '%s %s' (try --help)\n", argv[1],
			argv[2]);
	else
		fprintf(stderr, "receiver: unknown command '%s' (try --help)\n", argv[1]);
	return EXIT_USAGE;
}

/* The description starts in this column, or on a line of its own when the
 * synopsis leaves less than two spaces before it. */
#define USAGE_COLUMN 47

static void
usage(FILE *out)
{
	const char *lead = "usage:";

	for (size_t i = 0; i < N_COMMANDS; i++) {
		const struct command *c = &commands[i];
		int n;

		if (c->synopsis == NULL)
			continue;
		/* The default command's name is optional. */
		n = fprintf(out, i == 0 ? "%s receiver [%s]%s%s" : "%s receiver %s%s%s", lead,
			    c->name, c->synopsis[0] != '\0' ? " " : "", c->synopsis);
		lead = "      ";
		if (c->what != NULL) {
			if (n > USAGE_COLUMN - 2) {
				fputc('\n', out);
				n = 0;
			}
			fprintf(out, "%*s%s", USAGE_COLUMN - n, "", c->what);
		}
		fputc('\n', out);
	}
	fputs("FILE defaults to " DEFAULT_CONFIG "; $DATABASE_URL overrides [database] url.\n"
	      "DATE is YYYY-MM-DD[THH:MM[:SS]] in Shanghai time (+08:00).\n",
	      out);
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
		} else if (strcmp(a, "--subscriber") == 0 && has_value) {
			args->subscriber = argv[++i];
		} else if (strcmp(a, "--enable") == 0 && has_value) {
			args->enable = argv[++i];
		} else if (strcmp(a, "--replay") == 0 && has_value) {
			args->replay = argv[++i];
		} else if (strcmp(a, "--test") == 0 && has_value) {
			args->test = argv[++i];
		} else if (strcmp(a, "--member") == 0 && has_value) {
			args->member = argv[++i];
		} else if (strcmp(a, "--refresh-token") == 0 && has_value) {
			args->refresh_token = argv[++i];
		} else if (strcmp(a, "--access-token") == 0 && has_value) {
			args->access_token = argv[++i];
		} else if (strcmp(a, "--expires-in") == 0 && has_value) {
			args->expires_in = argv[++i];
		} else if (strcmp(a, "--refresh-expires-in") == 0 && has_value) {
			args->refresh_expires_in = argv[++i];
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

/* The OPT_* bits of the options on the command line. */
static unsigned
options_given(const struct cli_args *args)
{
	return (args->app != NULL ? OPT_APP : 0) |
	       (args->since != NULL || args->until != NULL ? OPT_SINCE : 0) |
	       (args->field != NULL ? OPT_FIELD : 0) | (args->retry_dead ? OPT_RETRY_DEAD : 0) |
	       (args->n_rest > 0 ? OPT_ARGS : 0) |
	       (args->subscriber != NULL || args->enable != NULL || args->replay != NULL ||
			args->test != NULL
		    ? OPT_RELAY
		    : 0) |
	       (args->member != NULL || args->refresh_token != NULL || args->access_token != NULL ||
			args->expires_in != NULL || args->refresh_expires_in != NULL
		    ? OPT_GRANT
		    : 0);
}

/* Loads FILE and runs C with it. */
static int
run(const struct command *c, const char *file, const struct cli_args *args)
{
	char err[512];
	enum log_level level;
	struct config cfg;
	int rc;

	if (config_load(file, &cfg, err, sizeof(err)) < 0) {
		fprintf(stderr, "receiver: %s\n", err);
		return EXIT_USAGE;
	}
	if (log_parse_level(cfg.log.level, &level) == 0)
		log_set_level(level);
	rc = c->daemon != NULL ? c->daemon(&cfg) : c->tool(&cfg, args);
	config_free(&cfg);
	return rc;
}

static int
cmd_migrate(const struct config *cfg, const struct cli_args *args)
{
	char err[512];

	(void)args;
	if (migrate_run(cfg->database.url, stdout, err, sizeof(err)) < 0) {
		fprintf(stderr, "receiver: migrate: %s\n", err);
		return 1;
	}
	return 0;
}

static int
cmd_help(const struct config *cfg, const struct cli_args *args)
{
	(void)cfg;
	(void)args;
	usage(stdout);
	return 0;
}

static int
cmd_version(const struct config *cfg, const struct cli_args *args)
{
	(void)cfg;
	(void)args;
	printf("receiver %s (schema version %d)\n", RECEIVER_VERSION, migrate_latest_version());
	return 0;
}
