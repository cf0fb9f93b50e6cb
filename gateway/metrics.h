/*
 * metrics: kakikomi's own counters, gauges and histograms, rendered in the
 * Prometheus text exposition format for GET /metrics.
 *
 * Families are declared once in metrics.c's table (name, type, help).  Label
 * sets are passed preformatted, e.g. `site="tokyo",signal="metrics"` (values
 * must already be escaped with metrics_escape()), or "" for none.  Thread-safe.
 * Unknown family names are a programming error and are ignored with a warning.
 */
#ifndef KAKIKOMI_METRICS_H
#define KAKIKOMI_METRICS_H

#include <stddef.h>

void	metrics_init(void);
void	metrics_counter_add(const char *family, const char *labels, double v);
void	metrics_gauge_set(const char *family, const char *labels, double v);
/* Observes `v` (seconds) in the family's fixed latency buckets. */
void	metrics_observe(const char *family, const char *labels, double v);

/* Escapes a label value (\\, \", \n) into dst; always NUL-terminates. */
void	metrics_escape(char *dst, size_t dstsz, const char *value);

/* The whole exposition as a malloc'd, NUL-terminated string (caller frees),
 * or NULL on allocation failure. */
char	*metrics_render(size_t *len);

#endif
