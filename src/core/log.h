/*
 * log.h - one line per event on stderr, as key=value pairs.
 *
 *   log_info("smtp", sid, "event=connect peer=%s", peer);
 * prints
 *   2026-11-22T10:00:00.123Z info smtp sid=1a2b event=connect peer=127.0.0.1:5000
 * Each line is written with a single write(2) so threads never interleave.
 */
#ifndef PETREL_LOG_H
#define PETREL_LOG_H

#include <stddef.h>
#include <stdint.h>

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

void log_set_level(enum log_level level);
void log_msg(enum log_level level, const char *subsys, uint64_t sid, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

#define log_debug(subsys, sid, ...) log_msg(LOG_DEBUG, subsys, sid, __VA_ARGS__)
#define log_info(subsys, sid, ...)  log_msg(LOG_INFO, subsys, sid, __VA_ARGS__)
#define log_warn(subsys, sid, ...)  log_msg(LOG_WARN, subsys, sid, __VA_ARGS__)
#define log_error(subsys, sid, ...) log_msg(LOG_ERROR, subsys, sid, __VA_ARGS__)

/* Copy s into out (size outsz) so that it is safe as a log value: control
 * characters, spaces, quotes and non-ASCII become \xHH; truncated with "...". */
const char *log_safe(const char *s, size_t len, char *out, size_t outsz);

#endif
