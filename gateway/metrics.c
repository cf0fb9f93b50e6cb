/* metrics: own counters, gauges and histograms.  See metrics.h. */
#include "metrics.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

enum metric_type { M_COUNTER, M_GAUGE, M_HISTOGRAM };

struct family {
	const char		*name;
	enum metric_type	 type;
	const char		*help;
};

static const struct family families[] = {
	{ "kakikomi_build_info", M_GAUGE, "Build information; always 1." },
	{ "kakikomi_requests_total", M_COUNTER, "Write requests answered, by signal, site and status." },
	{ "kakikomi_request_bytes_total", M_COUNTER, "Request body bytes received, by signal." },
	{ "kakikomi_request_duration_seconds", M_HISTOGRAM, "Time from request received to answer sent, by signal." },
	{ "kakikomi_upstream_requests_total", M_COUNTER, "Requests sent upstream, by signal, upstream and status (0: no answer)." },
	{ "kakikomi_upstream_duration_seconds", M_HISTOGRAM, "Upstream latency, by signal and upstream." },
	{ "kakikomi_inflight_requests", M_GAUGE, "Write requests being handled now." },
	{ "kakikomi_inflight_bytes", M_GAUGE, "Request body bytes held by requests being handled now." },
	{ "kakikomi_open_connections", M_GAUGE, "Client connections open now." },
	{ "kakikomi_auth_failures_total", M_COUNTER, "Requests refused by Access verification, by reason." },
	{ "kakikomi_token_cache_hits_total", M_COUNTER, "Tokens found in the verified-token cache." },
	{ "kakikomi_token_cache_misses_total", M_COUNTER, "Tokens not in the verified-token cache (verified with RSA)." },
	{ "kakikomi_jwks_refresh_total", M_COUNTER, "Key set fetches, by result." },
	{ "kakikomi_jwks_keys", M_GAUGE, "Keys in the current key set." },
	{ "kakikomi_jwks_last_success_timestamp_seconds", M_GAUGE, "When the key set was last loaded." },
	{ "kakikomi_series_total", M_COUNTER, "Series or streams accepted, by site and signal." },
	{ "kakikomi_samples_total", M_COUNTER, "Samples and histograms accepted, by site." },
	{ "kakikomi_entries_total", M_COUNTER, "Log entries accepted, by site." },
	{ "kakikomi_rewritten_series_total", M_COUNTER, "Series or streams whose site label was rewritten, by site and signal." },
	{ "kakikomi_rejected_requests_total", M_COUNTER, "Requests refused before forwarding, by site, signal and reason." },
	{ "kakikomi_site_last_write_timestamp_seconds", M_GAUGE, "When a site's write was last stored, by site and signal." },
	{ "kakikomi_config_reload_total", M_COUNTER, "Configuration reloads, by result." },
	{ "kakikomi_config_last_reload_success_timestamp_seconds", M_GAUGE, "When the configuration was last loaded." },
};
#define NFAMILIES (sizeof(families) / sizeof(families[0]))

static const double buckets[] = {
	0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30
};
#define NBUCKETS (sizeof(buckets) / sizeof(buckets[0]))

struct series {
	struct series	*next;
	unsigned	 fam;
	double		 value;		/* counter/gauge value, histogram sum */
	uint64_t	 count;		/* histogram observations */
	uint64_t	 bucket[NBUCKETS];
	char		 labels[];	/* preformatted label set */
};

#define NSLOTS 1024
static struct series *slots[NSLOTS];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static int
family_index(const char *name)
{
	for (unsigned i = 0; i < NFAMILIES; i++)
		if (strcmp(families[i].name, name) == 0)
			return (int)i;
	log_warnx("metrics: unknown family %s", name);
	return -1;
}

static unsigned
slot_of(unsigned fam, const char *labels)
{
	uint32_t h = 2166136261u ^ fam;		/* FNV-1a */

	for (const unsigned char *p = (const unsigned char *)labels; *p; p++)
		h = (h ^ *p) * 16777619u;
	return h % NSLOTS;
}

/* The series for (family, labels), created on first use.  Call with lock held. */
static struct series *
series_get(const char *family, const char *labels)
{
	int fam = family_index(family);
	struct series *s;
	size_t len;
	unsigned slot;

	if (fam < 0)
		return NULL;
	slot = slot_of((unsigned)fam, labels);
	for (s = slots[slot]; s; s = s->next)
		if (s->fam == (unsigned)fam && strcmp(s->labels, labels) == 0)
			return s;
	len = strlen(labels);
	if ((s = calloc(1, sizeof(*s) + len + 1)) == NULL)
		return NULL;
	s->fam = (unsigned)fam;
	memcpy(s->labels, labels, len + 1);
	s->next = slots[slot];
	slots[slot] = s;
	return s;
}

void
metrics_init(void)
{
	metrics_gauge_set("kakikomi_build_info", "version=\"" KAKIKOMI_VERSION "\"", 1);
}

void
metrics_counter_add(const char *family, const char *labels, double v)
{
	struct series *s;

	pthread_mutex_lock(&lock);
	if ((s = series_get(family, labels)) != NULL)
		s->value += v;
	pthread_mutex_unlock(&lock);
}

void
metrics_gauge_set(const char *family, const char *labels, double v)
{
	struct series *s;

	pthread_mutex_lock(&lock);
	if ((s = series_get(family, labels)) != NULL)
		s->value = v;
	pthread_mutex_unlock(&lock);
}

void
metrics_observe(const char *family, const char *labels, double v)
{
	struct series *s;

	pthread_mutex_lock(&lock);
	if ((s = series_get(family, labels)) != NULL) {
		s->value += v;
		s->count++;
		for (size_t i = 0; i < NBUCKETS; i++)
			if (v <= buckets[i])
				s->bucket[i]++;
	}
	pthread_mutex_unlock(&lock);
}

void
metrics_escape(char *dst, size_t dstsz, const char *value)
{
	size_t o = 0;

	if (dstsz == 0)
		return;
	for (const char *p = value; *p && o + 2 < dstsz; p++) {
		if (*p == '\\' || *p == '"' || *p == '\n') {
			dst[o++] = '\\';
			dst[o++] = *p == '\n' ? 'n' : *p;
		} else
			dst[o++] = *p;
	}
	dst[o] = '\0';
}

struct out {
	char	*buf;
	size_t	 len, cap;
	int	 failed;
};

static void
out_printf(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
out_printf(struct out *o, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (o->failed)
		return;
	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(o->buf + o->len, o->cap - o->len, fmt, ap);
		va_end(ap);
		if (n < 0) {
			o->failed = 1;
			return;
		}
		if ((size_t)n < o->cap - o->len) {
			o->len += (size_t)n;
			return;
		}
		size_t ncap = o->cap * 2 + (size_t)n;
		char *nbuf = realloc(o->buf, ncap);
		if (nbuf == NULL) {
			o->failed = 1;
			return;
		}
		o->buf = nbuf;
		o->cap = ncap;
	}
}

/* `{labels}` or `{labels,extra}` or "" — for one sample line. */
static void
out_labels(struct out *o, const char *labels, const char *extra)
{
	if (*labels == '\0' && extra == NULL)
		return;
	out_printf(o, "{%s%s%s}", labels, *labels && extra ? "," : "",
	    extra ? extra : "");
}

static void
render_series(struct out *o, const struct family *f, const struct series *s)
{
	char le[64];
	uint64_t cum = 0;

	if (f->type != M_HISTOGRAM) {
		out_printf(o, "%s", f->name);
		out_labels(o, s->labels, NULL);
		out_printf(o, " %.17g\n", s->value);
		return;
	}
	for (size_t i = 0; i < NBUCKETS; i++) {
		cum = s->bucket[i];
		snprintf(le, sizeof(le), "le=\"%g\"", buckets[i]);
		out_printf(o, "%s_bucket", f->name);
		out_labels(o, s->labels, le);
		out_printf(o, " %llu\n", (unsigned long long)cum);
	}
	out_printf(o, "%s_bucket", f->name);
	out_labels(o, s->labels, "le=\"+Inf\"");
	out_printf(o, " %llu\n%s_sum", (unsigned long long)s->count, f->name);
	out_labels(o, s->labels, NULL);
	out_printf(o, " %.17g\n%s_count", s->value, f->name);
	out_labels(o, s->labels, NULL);
	out_printf(o, " %llu\n", (unsigned long long)s->count);
}

char *
metrics_render(size_t *len)
{
	static const char *const type_names[] = { "counter", "gauge", "histogram" };
	struct out o = { .buf = malloc(8192), .cap = 8192 };

	if (o.buf == NULL)
		return NULL;
	o.buf[0] = '\0';
	pthread_mutex_lock(&lock);
	for (unsigned fam = 0; fam < NFAMILIES; fam++) {
		const struct family *f = &families[fam];
		int header = 0;

		for (unsigned i = 0; i < NSLOTS; i++)
			for (const struct series *s = slots[i]; s; s = s->next) {
				if (s->fam != fam)
					continue;
				if (!header) {
					out_printf(&o, "# HELP %s %s\n# TYPE %s %s\n",
					    f->name, f->help, f->name, type_names[f->type]);
					header = 1;
				}
				render_series(&o, f, s);
			}
	}
	pthread_mutex_unlock(&lock);
	if (o.failed) {
		free(o.buf);
		return NULL;
	}
	*len = o.len;
	return o.buf;
}
