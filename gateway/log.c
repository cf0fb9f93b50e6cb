/* log: logfmt lines on stderr.  See log.h. */
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define LOG_LINE_MAX 2048

static enum log_level log_min = LOG_LEVEL_INFO;

static const char *const level_names[] = { "debug", "info", "warn", "error" };

void
log_set_level(enum log_level level)
{
	log_min = level;
}

int
log_level_parse(const char *name)
{
	for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++)
		if (strcmp(name, level_names[i]) == 0)
			return (int)i;
	return -1;
}

struct line {
	char	buf[LOG_LINE_MAX];
	size_t	len;
};

static void
line_raw(struct line *l, const char *s, size_t n)
{
	size_t room = sizeof(l->buf) - 1 - l->len;	/* keep one for '\n' */

	if (n > room)
		n = room;
	memcpy(l->buf + l->len, s, n);
	l->len += n;
}

/* Appends ` key="value"` with quotes, backslashes and control bytes escaped. */
static void
line_kv(struct line *l, const char *key, const char *value)
{
	static const char hex[] = "0123456789abcdef";

	line_raw(l, " ", 1);
	line_raw(l, key, strlen(key));
	line_raw(l, "=\"", 2);
	for (const unsigned char *p = (const unsigned char *)value; *p; p++) {
		if (*p == '"' || *p == '\\') {
			char esc[2] = { '\\', (char)*p };
			line_raw(l, esc, 2);
		} else if (*p < 0x20 || *p == 0x7f) {
			char esc[4] = { '\\', 'x', hex[*p >> 4], hex[*p & 15] };
			line_raw(l, esc, 4);
		} else
			line_raw(l, (const char *)p, 1);
	}
	line_raw(l, "\"", 1);
}

static void
line_start(struct line *l, enum log_level level)
{
	struct timeval tv;
	struct tm tm;
	char ts[40];

	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
	l->len = 0;
	l->len = (size_t)snprintf(l->buf, sizeof(l->buf), "ts=%s.%03ldZ level=%s",
	    ts, (long)(tv.tv_usec / 1000), level_names[level]);
}

static void
line_emit(struct line *l)
{
	l->buf[l->len++] = '\n';
	/* One write per line keeps lines whole across threads. */
	(void)!write(STDERR_FILENO, l->buf, l->len);
}

static void
vlog(enum log_level level, int with_errno, const char *fmt, va_list ap)
{
	struct line l;
	char msg[1024];
	int saved = errno;

	if (level < log_min)
		return;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	line_start(&l, level);
	line_kv(&l, "msg", msg);
	if (with_errno)
		line_kv(&l, "error", strerror(saved));
	line_emit(&l);
}

#define LOG_FN(name, level, with_errno)				\
void									\
name(const char *fmt, ...)						\
{									\
	va_list ap;							\
	va_start(ap, fmt);						\
	vlog(level, with_errno, fmt, ap);				\
	va_end(ap);							\
}

LOG_FN(log_debug, LOG_LEVEL_DEBUG, 0)
LOG_FN(log_info, LOG_LEVEL_INFO, 0)
LOG_FN(log_warn, LOG_LEVEL_WARN, 1)
LOG_FN(log_warnx, LOG_LEVEL_WARN, 0)

void
fatal(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(LOG_LEVEL_ERROR, 1, fmt, ap);
	va_end(ap);
	exit(1);
}

void
fatalx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(LOG_LEVEL_ERROR, 0, fmt, ap);
	va_end(ap);
	exit(1);
}

void
log_request(enum log_level level, const char *msg, const char *signal,
    const char *site, const char *identity, int status, const char *reason,
    double duration_s)
{
	struct line l;
	char num[32];

	if (level < log_min)
		return;
	line_start(&l, level);
	line_kv(&l, "msg", msg);
	if (signal)
		line_kv(&l, "signal", signal);
	if (site)
		line_kv(&l, "site", site);
	if (identity)
		line_kv(&l, "identity", identity);
	snprintf(num, sizeof(num), "%d", status);
	line_kv(&l, "status", num);
	if (reason)
		line_kv(&l, "reason", reason);
	snprintf(num, sizeof(num), "%.6f", duration_s);
	line_kv(&l, "duration", num);
	line_emit(&l);
}
