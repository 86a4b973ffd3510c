/*
 * log.h - one JSON object per line on stderr.
 *
 * Each line carries the time, the level, an event name that is stable
 * enough to grep and alert on, and a human message.  Callers must never
 * pass a secret: the module cannot tell one from other text.
 */
#ifndef RECEIVER_LOG_H
#define RECEIVER_LOG_H

enum log_level {
	LOG_DEBUG,
	LOG_INFO,
	LOG_WARN,
	LOG_ERROR,
};

/* Parse "debug", "info", "warn" or "error".  Returns 0 or -1. */
int log_parse_level(const char *name, enum log_level *level);

/* Lines below LEVEL are dropped.  The default is LOG_INFO. */
void log_set_level(enum log_level level);

/* Write {"ts":...,"level":...,"event":EVENT,"msg":<FMT formatted>}. */
void log_event(enum log_level level, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
