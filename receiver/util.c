/*
 * util.c - clocks, timevals, jitter, host:port and the SIGHUP mask (see util.h).
 */
#include <arpa/inet.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util.h"

#define HOSTPORT_USAGE "must be host:port, e.g. 127.0.0.1:8080 or [::1]:8080"

int64_t
util_mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t
util_wall_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

struct timeval
util_tv_us(int64_t us)
{
	struct timeval tv = {(time_t)(us / 1000000), (suseconds_t)(us % 1000000)};

	return tv;
}

struct timeval
util_tv_ms(long ms)
{
	return util_tv_us((int64_t)ms * 1000);
}

void
rate_limit_init(struct rate_limit *rl, double rate)
{
	rl->rate = rate;
	rl->tokens = rate;
	rl->refilled_us = util_mono_us();
}

bool
rate_limit_allow(struct rate_limit *rl)
{
	int64_t now = util_mono_us();

	if (rl->rate <= 0)
		return true;
	rl->tokens += rl->rate * (double)(now - rl->refilled_us) / 1e6;
	if (rl->tokens > rl->rate)
		rl->tokens = rl->rate;
	rl->refilled_us = now;
	if (rl->tokens < 1)
		return false;
	rl->tokens -= 1;
	return true;
}

long
util_backoff_ms(long min_ms, long max_ms, int attempts)
{
	long d = min_ms;

	for (int i = 1; i < attempts && d < max_ms; i++)
		d *= 2;
	if (d > max_ms)
		d = max_ms;
	return util_jitter(d);
}

long
util_jitter(long ms)
{
	return ms / 2 + (long)((unsigned long)random() % (unsigned long)(ms / 2 + 1));
}

static int
hostport_fail(const char **why, const char *text)
{
	*why = text;
	return -1;
}

int
util_split_hostport(const char *addr, char *host, size_t hostcap, const char **port,
		    const char **why)
{
	const char *name = addr, *end, *p;
	unsigned char in6[16];
	long value = 0;
	size_t len;

	if (addr[0] == '[') {
		end = strchr(addr, ']');
		if (end == NULL || end[1] != ':')
			return hostport_fail(why, HOSTPORT_USAGE);
		name = addr + 1;
		*port = end + 2;
	} else {
		end = strrchr(addr, ':');
		if (end == NULL || end == addr)
			return hostport_fail(why, HOSTPORT_USAGE);
		for (p = addr; p < end; p++) {
			if (*p == ':')
				return hostport_fail(
				    why, "an IPv6 address must be in brackets, e.g. [::1]:8080");
			if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
			      (*p >= '0' && *p <= '9') || *p == '.' || *p == '-'))
				return hostport_fail(why, "invalid host");
		}
		*port = end + 1;
	}
	len = (size_t)(end - name);
	if (len >= hostcap || (addr[0] == '[' && len == 0))
		return hostport_fail(why,
				     addr[0] == '[' ? "invalid IPv6 address" : "host too long");
	memcpy(host, name, len);
	host[len] = '\0';
	if (addr[0] == '[' && inet_pton(AF_INET6, host, in6) != 1)
		return hostport_fail(why, "invalid IPv6 address");
	if (**port == '\0' || strlen(*port) > 5)
		return hostport_fail(why, "port must be between 1 and 65535");
	for (p = *port; *p != '\0'; p++) {
		if (*p < '0' || *p > '9')
			return hostport_fail(why, "port must be between 1 and 65535");
		value = value * 10 + (*p - '0');
	}
	if (value < 1 || value > 65535)
		return hostport_fail(why, "port must be between 1 and 65535");
	return 0;
}

void
util_block_sighup(bool block)
{
	sigset_t hup;

	sigemptyset(&hup);
	sigaddset(&hup, SIGHUP);
	sigprocmask(block ? SIG_BLOCK : SIG_UNBLOCK, &hup, NULL);
}
