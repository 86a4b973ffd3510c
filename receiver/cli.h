/*
 * cli.h - the command-line tools beside `serve` and `migrate`: one-off
 * reconciliation, backfill sweeps, a look at the job queue, members'
 * tokens, and signing or checking a push by hand.
 */
#ifndef RECEIVER_CLI_H
#define RECEIVER_CLI_H

#include "config.h"

struct cli_args {
	const char *app;	/* --app NAME, or NULL for the first [[app]] */
	const char *since;	/* --since DATE */
	const char *until;	/* --until DATE */
	int retry_dead;		/* --retry-dead */
	const char *field;	/* --field _aop_signature|_dj_signature */
	const char *subscriber; /* --subscriber NAME */
	const char *enable;	/* --enable NAME */
	const char *replay;	/* --replay NAME */
	const char *test;	/* --test NAME */
	const char *member;	/* --member ID */
	/* --refresh-token T and --access-token A ("-": from stdin); not const:
	 * `token set` overwrites them in argv once read, for ps to show less. */
	char *refresh_token;
	char *access_token;
	const char *expires_in;		/* --expires-in SECONDS */
	const char *refresh_expires_in; /* --refresh-expires-in SECONDS */
	char **rest;			/* positional arguments */
	int n_rest;
};

/* receiver reconcile -c FILE [--app NAME] ORDER_ID... */
int cli_reconcile(const struct config *cfg, const struct cli_args *args);

/* receiver sweep -c FILE --since DATE [--until DATE] [--app NAME] */
int cli_sweep(const struct config *cfg, const struct cli_args *args);

/* receiver jobs -c FILE [--retry-dead] */
int cli_jobs(const struct config *cfg, const struct cli_args *args);

/*
 * receiver relay -c FILE [--retry-dead [--subscriber NAME] | --enable NAME |
 *     --replay NAME --since DATE [--until DATE] | --test NAME]
 */
int cli_relay(const struct config *cfg, const struct cli_args *args);

/*
 * receiver token set -c FILE --app NAME --member ID --refresh-token T|-
 *     [--access-token A|- --expires-in S] [--refresh-expires-in S]
 */
int cli_token_set(const struct config *cfg, const struct cli_args *args);

/* receiver token list -c FILE [--app NAME] */
int cli_token_list(const struct config *cfg, const struct cli_args *args);

/* receiver sign -c FILE [--app NAME] [--field NAME] < message.json */
int cli_sign(const struct config *cfg, const struct cli_args *args);

/* receiver verify -c FILE [--app NAME] < body */
int cli_verify(const struct config *cfg, const struct cli_args *args);

#endif
