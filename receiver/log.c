/*
 * log.c - JSON lines on stderr (see log.h).
 *
 * A line is built in one buffer and written with a single write(2), so lines
 * from several worker processes sharing stderr never interleave.  The level
 * threshold is the only process-wide state: it is set once at start-up (and
 * on reload) and read everywhere, like stderr itself.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

#define LOG_LINE_MAX 4096

static size_t json_escape(char *dst, size_t cap, const char *src);

static enum log_level log_threshold = LOG_INFO;
static const char *const level_names[] = {"debug", "info", "warn", "error"};

int
log_parse_level(const char *name, enum log_level *level)
{
	for (int i = LOG_DEBUG; i <= LOG_ERROR; i++) {
		if (strcmp(name, level_names[i]) == 0) {
			*level = (enum log_level)i;
			return 0;
		}
	}
	return -1;
}

void
log_set_level(enum log_level level)
{
	log_threshold = level;
}

void
log_event(enum log_level level, const char *event, const char *fmt, ...)
{
	char msg[LOG_LINE_MAX / 2], line[LOG_LINE_MAX], ts[32];
	struct timeval tv;
	struct tm tm;
	size_t n;
	va_list ap;

	if (level < log_threshold)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);

	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	n = strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(ts + n, sizeof(ts) - n, ".%03dZ", (int)(tv.tv_usec / 1000));

	n = (size_t)snprintf(line, sizeof(line), "{\"ts\":\"%s\",\"level\":\"%s\",\"event\":\"", ts,
			     level_names[level]);
	n += json_escape(line + n, sizeof(line) - n, event);
	n +=
	    (size_t)snprintf(line + n, sizeof(line) - n, "\",\"pid\":%d,\"msg\":\"", (int)getpid());
	n += json_escape(line + n, sizeof(line) - n, msg);
	if (n > sizeof(line) - 3)
		n = sizeof(line) - 3;
	memcpy(line + n, "\"}\n", 3);
	n += 3;
	if (write(STDERR_FILENO, line, n) < 0) {
		/* Nowhere left to report a failure to log. */
	}
}

/*
 * Escape SRC as the inside of a JSON string into DST, always leaving room
 * for the caller's closing characters.  Returns the bytes written.
 */
static size_t
json_escape(char *dst, size_t cap, const char *src)
{
	size_t n = 0;

	if (cap < 8)
		return 0;
	for (; *src != '\0' && n + 7 < cap; src++) {
		unsigned char c = (unsigned char)*src;

		if (c == '"' || c == '\\') {
			dst[n++] = '\\';
			dst[n++] = (char)c;
		} else if (c < 0x20 || c == 0x7f) {
			n += (size_t)snprintf(dst + n, cap - n, "\\u%04x", c);
		} else {
			dst[n++] = (char)c;
		}
	}
	dst[n] = '\0';
	return n;
}
