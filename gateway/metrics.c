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
	{ "kakikomi_upstream_misconfigured_total", M_COUNTER, "Upstream answers that mean kakikomi's configuration is wrong (4xx other than 400/413/429, 3xx; answered 502), by upstream role and status." },
	{ "kakikomi_inflight_requests", M_GAUGE, "Write requests being handled now." },
	{ "kakikomi_inflight_bytes", M_GAUGE, "Request body bytes held by requests being handled now." },
	{ "kakikomi_open_connections", M_GAUGE, "Client connections open now." },
	{ "kakikomi_connections_refused_total", M_COUNTER, "Client connections closed at accept because limits.max_connections was reached." },
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

/*
 * Series are found without a lock: chains only ever grow at their head (a
 * release store under `insert_lock`) and nodes are never freed, so readers
 * follow them with acquire loads.  Values are updated with atomic operations,
 * so request threads never wait on each other to count.
 */
struct series {
	struct series	*next;
	unsigned	 fam;
	uint64_t	 value;		/* double bits: counter/gauge value, histogram sum */
	uint64_t	 count;		/* histogram observations */
	uint64_t	 bucket[NBUCKETS];
	char		 labels[];	/* preformatted label set */
};

#define NSLOTS 1024
static struct series *slots[NSLOTS];
static pthread_mutex_t insert_lock = PTHREAD_MUTEX_INITIALIZER;

/*
 * Callers pass string literals, which the linker merges with the table's, so
 * the pointer is nearly always the table's own: compare pointers first and
 * strings only when none matches (a few hundred instructions a call saved,
 * on a dozen calls per request).
 */
static int
family_index(const char *name)
{
	for (unsigned i = 0; i < NFAMILIES; i++)
		if (families[i].name == name)
			return (int)i;
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

static struct series *
chain_find(struct series *s, unsigned fam, const char *labels)
{
	for (; s; s = __atomic_load_n(&s->next, __ATOMIC_ACQUIRE))
		if (s->fam == fam && strcmp(s->labels, labels) == 0)
			return s;
	return NULL;
}

/* The series for (family, labels), created on first use. */
static struct series *
series_get(const char *family, const char *labels)
{
	int fam = family_index(family);
	struct series *s, *head;
	size_t len;
	unsigned slot;

	if (fam < 0)
		return NULL;
	slot = slot_of((unsigned)fam, labels);
	head = __atomic_load_n(&slots[slot], __ATOMIC_ACQUIRE);
	if ((s = chain_find(head, (unsigned)fam, labels)) != NULL)
		return s;
	pthread_mutex_lock(&insert_lock);
	/* Another thread may have added it since. */
	head = __atomic_load_n(&slots[slot], __ATOMIC_ACQUIRE);
	if ((s = chain_find(head, (unsigned)fam, labels)) == NULL) {
		len = strlen(labels);
		if ((s = calloc(1, sizeof(*s) + len + 1)) != NULL) {
			s->fam = (unsigned)fam;
			memcpy(s->labels, labels, len + 1);
			s->next = head;
			__atomic_store_n(&slots[slot], s, __ATOMIC_RELEASE);
		}
	}
	pthread_mutex_unlock(&insert_lock);
	return s;
}

static double
bits_double(uint64_t b)
{
	double d;

	memcpy(&d, &b, sizeof(d));
	return d;
}

static uint64_t
double_bits(double d)
{
	uint64_t b;

	memcpy(&b, &d, sizeof(b));
	return b;
}

static void
atomic_add_double(uint64_t *p, double v)
{
	uint64_t old = __atomic_load_n(p, __ATOMIC_RELAXED), new;

	do
		new = double_bits(bits_double(old) + v);
	while (!__atomic_compare_exchange_n(p, &old, new, 1, __ATOMIC_RELAXED,
	    __ATOMIC_RELAXED));
}

void
metrics_init(void)
{
	metrics_gauge_set("kakikomi_build_info", "version=\"" KAKIKOMI_VERSION "\"", 1);
}

void
metrics_counter_add(const char *family, const char *labels, double v)
{
	struct series *s = series_get(family, labels);

	if (s != NULL)
		atomic_add_double(&s->value, v);
}

void
metrics_gauge_set(const char *family, const char *labels, double v)
{
	struct series *s = series_get(family, labels);

	if (s != NULL)
		__atomic_store_n(&s->value, double_bits(v), __ATOMIC_RELAXED);
}

void
metrics_observe(const char *family, const char *labels, double v)
{
	struct series *s = series_get(family, labels);

	if (s == NULL)
		return;
	atomic_add_double(&s->value, v);
	__atomic_add_fetch(&s->count, 1, __ATOMIC_RELAXED);
	for (size_t i = 0; i < NBUCKETS; i++)
		if (v <= buckets[i])
			__atomic_add_fetch(&s->bucket[i], 1, __ATOMIC_RELAXED);
}

void
metrics_escape(char *dst, size_t dstsz, const char *value)
{
	size_t o = 0;

	if (dstsz == 0)
		return;
	for (const char *p = value; *p; p++) {
		int esc = *p == '\\' || *p == '"' || *p == '\n';

		if (o + (esc ? 2 : 1) >= dstsz)
			break;
		if (esc)
			dst[o++] = '\\';
		dst[o++] = *p == '\n' ? 'n' : *p;
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
	double value = bits_double(__atomic_load_n(&s->value, __ATOMIC_RELAXED));
	unsigned long long count = __atomic_load_n(&s->count, __ATOMIC_RELAXED);

	if (f->type != M_HISTOGRAM) {
		out_printf(o, "%s", f->name);
		out_labels(o, s->labels, NULL);
		out_printf(o, " %.17g\n", value);
		return;
	}
	/* Buckets are cumulative already: an observation counts in every
	 * bucket whose bound it does not exceed. */
	for (size_t i = 0; i < NBUCKETS; i++) {
		snprintf(le, sizeof(le), "le=\"%g\"", buckets[i]);
		out_printf(o, "%s_bucket", f->name);
		out_labels(o, s->labels, le);
		out_printf(o, " %llu\n",
		    (unsigned long long)__atomic_load_n(&s->bucket[i], __ATOMIC_RELAXED));
	}
	out_printf(o, "%s_bucket", f->name);
	out_labels(o, s->labels, "le=\"+Inf\"");
	out_printf(o, " %llu\n%s_sum", count, f->name);
	out_labels(o, s->labels, NULL);
	out_printf(o, " %.17g\n%s_count", value, f->name);
	out_labels(o, s->labels, NULL);
	out_printf(o, " %llu\n", count);
}

char *
metrics_render(size_t *len)
{
	static const char *const type_names[] = { "counter", "gauge", "histogram" };
	struct out o = { .buf = malloc(8192), .cap = 8192 };

	if (o.buf == NULL)
		return NULL;
	o.buf[0] = '\0';
	for (unsigned fam = 0; fam < NFAMILIES; fam++) {
		const struct family *f = &families[fam];
		int header = 0;

		for (unsigned i = 0; i < NSLOTS; i++)
			for (const struct series *s = __atomic_load_n(&slots[i], __ATOMIC_ACQUIRE);
			    s; s = __atomic_load_n(&s->next, __ATOMIC_ACQUIRE)) {
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
	if (o.failed) {
		free(o.buf);
		return NULL;
	}
	*len = o.len;
	return o.buf;
}
