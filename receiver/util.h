/*
 * util.h - the small helpers every layer shares, each written once.
 *
 * Two clocks: util_mono_us() for every interval, deadline and rate (it never
 * jumps when the wall clock is stepped), util_wall_us() only for timestamps
 * that are stored or logged.  Then: milliseconds as a struct timeval,
 * jitter, "host:port" parsing (the config checks and the listeners agree on
 * what an address is), and the constants the commands and modules share.
 */
#ifndef RECEIVER_UTIL_H
#define RECEIVER_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/time.h>

#ifndef RECEIVER_VERSION
#define RECEIVER_VERSION "0.1.0"
#endif

/* Exit status of a command on bad usage or a bad configuration. */
#define EXIT_USAGE 2

/* Shanghai is UTC+8 all year: the platform's naive times are in it. */
#define SHANGHAI_OFFSET_S (8 * 3600)

/*
 * What an operation came to, passed beside any text: control flow tests
 * these values, never the text, which is for people.
 */
enum status {
	STATUS_OK = 0,
	STATUS_ERROR,	    /* failed; trying again later may succeed */
	STATUS_TIMEOUT,	    /* no answer in time */
	STATUS_UNAVAILABLE, /* the database or the peer is away */
	STATUS_PERMANENT,   /* retrying cannot fix it (bad credentials) */
	STATUS_NOMEM,	    /* out of memory */
	STATUS_SHUTDOWN,    /* abandoned because the process is stopping: no failure */
};

/* Microseconds on CLOCK_MONOTONIC: for intervals, deadlines and rates. */
int64_t util_mono_us(void);

/* Microseconds since the epoch: for timestamps stored or logged, only. */
int64_t util_wall_us(void);

/* MS milliseconds, or US microseconds (>= 0), as a struct timeval for libevent. */
struct timeval util_tv_ms(long ms);
struct timeval util_tv_us(int64_t us);

/*
 * A token bucket on the monotonic clock: RATE events a second, bursts of
 * up to RATE; RATE <= 0 allows everything.  It starts full.
 */
struct rate_limit {
	double rate;
	double tokens;
	int64_t refilled_us;
};

void rate_limit_init(struct rate_limit *rl, double rate);

/* Take a token if there is one: true when the event may happen now. */
bool rate_limit_allow(struct rate_limit *rl);

/*
 * The wait before retry number ATTEMPTS (1: the first retry): MIN_MS,
 * doubled each attempt, capped at MAX_MS, then jittered to [d/2, d].
 */
long util_backoff_ms(long min_ms, long max_ms, int attempts);

/* A random duration in [ms/2, ms]: spreads retries of many processes. */
long util_jitter(long ms);

/*
 * Split "host:port" or "[v6]:port" into HOST (brackets removed) and *port
 * (a pointer into ADDR).  Host names may hold A-Z a-z 0-9 . -; the port is
 * 1..65535.  Returns 0, or -1 with *why set to a static reason.
 */
int util_split_hostport(const char *addr, char *host, size_t hostcap, const char **port,
			const char **why);

/*
 * Block (BLOCK true) or unblock SIGHUP in this single-threaded process.
 * Its default action is to terminate: main() blocks it first thing, and
 * only a loop that handles it unblocks it (server.c).
 */
void util_block_sighup(bool block);

#endif
