/*
 * log: logfmt lines on stderr, OpenBSD log API shape.
 *
 * Every line is `ts=<RFC3339 ms> level=<lvl> msg="<text>"` followed by the
 * key=value pairs the caller adds with log_request().  Values are quoted and
 * escaped here, so callers pass raw strings.  fatal()/fatalx() exit(1) and are
 * for start-up only: nothing that comes from the network may reach them.
 * Thread-safe: each line is written with one write(2).
 */
#ifndef KAKIKOMI_LOG_H
#define KAKIKOMI_LOG_H

enum log_level { LOG_LEVEL_DEBUG, LOG_LEVEL_INFO, LOG_LEVEL_WARN, LOG_LEVEL_ERROR };

/* Lines below `level` are dropped.  Default: LOG_LEVEL_INFO. */
void log_set_level(enum log_level level);
/* Parses "debug", "info", "warn", "error"; returns -1 if unknown. */
int log_level_parse(const char *name);

void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* log_warn appends strerror(errno); log_warnx does not. */
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
void fatalx(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* One line per finished request.  site/identity/reason may be NULL. */
void log_request(enum log_level level, const char *msg, const char *signal,
    const char *site, const char *identity, int status, const char *reason,
    double duration_s);

#endif
