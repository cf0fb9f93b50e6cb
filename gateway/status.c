/* status: per-site liveness and the daemon's dependencies.  See status.h. */
#include "status.h"

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/*
 * Fixed tables: the notes come from the network path, so nothing here grows
 * with what clients send.  Sites come from the configuration (a few dozen in
 * practice), refusal statuses are a handful of codes, upstreams a few URLs.
 */
#define MAX_SITES	256
#define MAX_UPSTREAMS	32
#define MAX_STATUSES	8
#define NAME_LEN	128
#define REASON_LEN	200

struct tally {
	uint64_t	total;
	uint64_t	count[STATUS_WINDOW_MIN];
	int64_t		minute[STATUS_WINDOW_MIN];	/* which minute count[i] is for */
};

struct refusals {
	int		status;
	struct tally	t;
};

struct site_state {
	char		name[NAME_LEN];
	time_t		last_write[SIGNAL_COUNT];
	uint64_t	rewritten[SIGNAL_COUNT];
	struct tally	writes;
	struct refusals	refused[MAX_STATUSES];
	size_t		nrefused;
	time_t		last_refusal;
	int		last_status;
	enum signal	last_signal;
	char		last_reason[REASON_LEN];
};

struct upstream_state {
	char		role[NAME_LEN];
	int		status;
	double		seconds;
	time_t		at;
};

static pthread_mutex_t		 lock = PTHREAD_MUTEX_INITIALIZER;
static struct site_state	 sites[MAX_SITES];
static size_t			 nsites;
static uint64_t			 untracked;	/* notes for sites past MAX_SITES */
static struct upstream_state	 upstreams[MAX_UPSTREAMS];
static size_t			 nupstreams;
static time_t			 keys_loaded, keys_failed;
static char			 keys_error[REASON_LEN];
static struct timespec		 started;

static void
copy(char *dst, size_t dstsz, const char *src)
{
	snprintf(dst, dstsz, "%s", src ? src : "");
}

void
status_init(void)
{
	pthread_mutex_lock(&lock);
	memset(sites, 0, sizeof(sites));
	memset(upstreams, 0, sizeof(upstreams));
	nsites = nupstreams = 0;
	untracked = 0;
	keys_loaded = keys_failed = 0;
	keys_error[0] = '\0';
	clock_gettime(CLOCK_MONOTONIC, &started);
	pthread_mutex_unlock(&lock);
}

static void
tally_add(struct tally *t, time_t now)
{
	int64_t m = (int64_t)now / 60;
	size_t i = (size_t)(m % STATUS_WINDOW_MIN);

	if (t->minute[i] != m) {
		t->minute[i] = m;
		t->count[i] = 0;
	}
	t->count[i]++;
	t->total++;
}

static uint64_t
tally_recent(const struct tally *t, time_t now)
{
	int64_t m = (int64_t)now / 60;
	uint64_t n = 0;

	for (size_t i = 0; i < STATUS_WINDOW_MIN; i++)
		if (t->minute[i] > m - STATUS_WINDOW_MIN && t->minute[i] <= m)
			n += t->count[i];
	return n;
}

/* The site's slot, made on first use; NULL past the table.  Lock held. */
static struct site_state *
site_slot(const char *name)
{
	struct site_state *s;

	if (name == NULL || strlen(name) >= NAME_LEN)
		return NULL;
	for (size_t i = 0; i < nsites; i++)
		if (strcmp(sites[i].name, name) == 0)
			return &sites[i];
	if (nsites == MAX_SITES) {
		untracked++;
		return NULL;
	}
	s = &sites[nsites++];
	copy(s->name, sizeof(s->name), name);
	return s;
}

static const struct site_state *
site_find(const char *name)
{
	for (size_t i = 0; i < nsites; i++)
		if (strcmp(sites[i].name, name) == 0)
			return &sites[i];
	return NULL;
}

static void
note_refusal(struct site_state *s, enum signal sig, int status, const char *reason,
    time_t now)
{
	size_t i;

	for (i = 0; i < s->nrefused && s->refused[i].status != status; i++)
		;
	if (i == s->nrefused && s->nrefused < MAX_STATUSES)
		s->refused[s->nrefused++].status = status;
	if (i < s->nrefused)
		tally_add(&s->refused[i].t, now);
	s->last_refusal = now;
	s->last_status = status;
	s->last_signal = sig;
	copy(s->last_reason, sizeof(s->last_reason), reason);
}

void
status_note_write(const char *site, enum signal sig, int status, const char *reason)
{
	time_t now = time(NULL);
	struct site_state *s;

	if ((unsigned)sig >= SIGNAL_COUNT)
		return;
	pthread_mutex_lock(&lock);
	if ((s = site_slot(site)) != NULL) {
		if (status >= 200 && status < 300) {
			s->last_write[sig] = now;
			tally_add(&s->writes, now);
		} else
			note_refusal(s, sig, status, reason, now);
	}
	pthread_mutex_unlock(&lock);
}

void
status_note_rewritten(const char *site, enum signal sig, uint64_t n)
{
	struct site_state *s;

	if ((unsigned)sig >= SIGNAL_COUNT)
		return;
	pthread_mutex_lock(&lock);
	if ((s = site_slot(site)) != NULL)
		s->rewritten[sig] += n;
	pthread_mutex_unlock(&lock);
}

void
status_note_upstream(const char *role, int status, double seconds)
{
	struct upstream_state *u = NULL;

	if (role == NULL || strlen(role) >= NAME_LEN)
		return;
	pthread_mutex_lock(&lock);
	for (size_t i = 0; i < nupstreams && u == NULL; i++)
		if (strcmp(upstreams[i].role, role) == 0)
			u = &upstreams[i];
	if (u == NULL && nupstreams < MAX_UPSTREAMS) {
		u = &upstreams[nupstreams++];
		copy(u->role, sizeof(u->role), role);
	}
	if (u != NULL) {
		u->status = status;
		u->seconds = seconds;
		u->at = time(NULL);
	}
	pthread_mutex_unlock(&lock);
}

void
status_note_keyset(const char *error)
{
	pthread_mutex_lock(&lock);
	if (error == NULL)
		keys_loaded = time(NULL);
	else {
		keys_failed = time(NULL);
		copy(keys_error, sizeof(keys_error), error);
	}
	pthread_mutex_unlock(&lock);
}

/* ---- the snapshot, as one JSON document (lock held while building) ---- */

/* A time as {at, age_seconds}, or null when it never happened. */
static void
set_time(json_t *o, const char *at, const char *age, time_t t, time_t now)
{
	json_object_set_new(o, at, t ? json_integer((json_int_t)t) : json_null());
	json_object_set_new(o, age, t ? json_integer((json_int_t)(now - t)) : json_null());
}

static json_t *
site_signals(const struct site *conf, const struct site_state *s, time_t now)
{
	json_t *o = json_object();

	for (int i = 0; i < SIGNAL_COUNT; i++) {
		json_t *sig;

		if (!(conf->signals & (1u << i)))
			continue;
		sig = json_object();
		set_time(sig, "last_write", "age_seconds", s ? s->last_write[i] : 0, now);
		json_object_set_new(sig, "rewritten_series",
		    json_integer(s ? (json_int_t)s->rewritten[i] : 0));
		json_object_set_new(o, signal_name((enum signal)i), sig);
	}
	return o;
}

static json_t *
site_refusals(const struct site_state *s, time_t now)
{
	json_t *a = json_array();

	for (size_t i = 0; s != NULL && i < s->nrefused; i++)
		json_array_append_new(a, json_pack("{s:i,s:I,s:I}", "status", s->refused[i].status,
		    "total", (json_int_t)s->refused[i].t.total,
		    "recent", (json_int_t)tally_recent(&s->refused[i].t, now)));
	return a;
}

static json_t *
site_last_refusal(const struct site_state *s, time_t now)
{
	json_t *o;

	if (s == NULL || s->last_refusal == 0)
		return json_null();
	o = json_pack("{s:i,s:s,s:s}", "status", s->last_status,
	    "signal", signal_name(s->last_signal), "reason", s->last_reason);
	if (o != NULL)
		set_time(o, "time", "age_seconds", s->last_refusal, now);
	return o;
}

/* Alive: some signal was stored within the window. */
static int
site_alive(const struct site_state *s, time_t now)
{
	for (int i = 0; s != NULL && i < SIGNAL_COUNT; i++)
		if (s->last_write[i] && now - s->last_write[i] < STATUS_WINDOW_MIN * 60)
			return 1;
	return 0;
}

static json_t *
site_json(const struct site *conf, time_t now)
{
	const struct site_state *s = site_find(conf->name);

	return json_pack("{s:s,s:s,s:o,s:{s:I,s:I},s:o,s:o}", "name", conf->name,
	    "state", site_alive(s, now) ? "alive" : "silent",
	    "signals", site_signals(conf, s, now),
	    "writes", "total", (json_int_t)(s ? s->writes.total : 0),
	    "recent", (json_int_t)(s ? tally_recent(&s->writes, now) : 0),
	    "refusals", site_refusals(s, now), "last_refusal", site_last_refusal(s, now));
}

static json_t *
keyset_json(const struct keyset *ks, time_t now)
{
	json_t *o = json_object(), *kids = json_array();

	for (size_t i = 0; ks != NULL && i < keyset_count(ks); i++)
		json_array_append_new(kids, json_string(keyset_kid(ks, i)));
	json_object_set_new(o, "kids", kids);
	set_time(o, "last_load", "age_seconds", keys_loaded, now);
	json_object_set_new(o, "last_error", keys_error[0] ? json_string(keys_error) : json_null());
	set_time(o, "last_error_time", "last_error_age_seconds", keys_failed, now);
	return o;
}

static json_t *
upstreams_json(time_t now)
{
	json_t *a = json_array();

	for (size_t i = 0; i < nupstreams; i++) {
		json_t *u = json_pack("{s:s,s:i,s:f}", "role", upstreams[i].role,
		    "last_status", upstreams[i].status, "latency_seconds", upstreams[i].seconds);
		if (u != NULL)
			set_time(u, "last_answer", "age_seconds", upstreams[i].at, now);
		json_array_append_new(a, u);
	}
	return a;
}

static json_t *
snapshot(const struct config *cfg, const struct keyset *ks)
{
	time_t now = time(NULL);
	struct timespec mono;
	json_t *doc, *list = json_array();

	clock_gettime(CLOCK_MONOTONIC, &mono);
	pthread_mutex_lock(&lock);
	for (size_t i = 0; i < cfg->nsites; i++)
		json_array_append_new(list, site_json(&cfg->sites[i], now));
	doc = json_pack("{s:s,s:I,s:I,s:i,s:o,s:I,s:o,s:o}", "version", KAKIKOMI_VERSION,
	    "uptime_seconds", (json_int_t)(mono.tv_sec - started.tv_sec),
	    "now", (json_int_t)now, "window_minutes", STATUS_WINDOW_MIN, "sites", list,
	    "untracked_site_notes", (json_int_t)untracked, "keyset", keyset_json(ks, now),
	    "upstreams", upstreams_json(now));
	pthread_mutex_unlock(&lock);
	return doc;
}

char *
status_json(const struct config *cfg, const struct keyset *ks, size_t *len)
{
	json_t *doc = snapshot(cfg, ks);
	char *s = doc ? json_dumps(doc, JSON_INDENT(1) | JSON_PRESERVE_ORDER) : NULL;

	json_decref(doc);
	if (s != NULL)
		*len = strlen(s);
	return s;
}

/* ---- the page: the same snapshot as HTML ---- */

static void
esc(FILE *f, const char *s)
{
	for (; s != NULL && *s; s++)
		switch (*s) {
		case '<': fputs("&lt;", f); break;
		case '>': fputs("&gt;", f); break;
		case '&': fputs("&amp;", f); break;
		case '"': fputs("&quot;", f); break;
		case '\'': fputs("&#39;", f); break;
		default: fputc(*s, f);
		}
}

/* "12s", "5m", "3h", "2d" ago, or "never". */
static void
age(FILE *f, const json_t *v)
{
	json_int_t s = json_integer_value(v);

	if (!json_is_integer(v))
		fputs("never", f);
	else if (s < 120)
		fprintf(f, "%llds ago", (long long)s);
	else if (s < 7200)
		fprintf(f, "%lldm ago", (long long)s / 60);
	else if (s < 172800)
		fprintf(f, "%lldh ago", (long long)s / 3600);
	else
		fprintf(f, "%lldd ago", (long long)s / 86400);
}

static void
html_site(FILE *f, const json_t *site)
{
	const char *name = json_string_value(json_object_get(site, "name"));
	const char *state = json_string_value(json_object_get(site, "state")), *sig;
	json_t *v, *r;
	size_t i;

	/* data- attributes: stable hooks for scripts and the browser test */
	fputs("<tr data-site=\"", f);
	esc(f, name);
	fprintf(f, "\" data-state=\"%s\"><td><b>", state);
	esc(f, name);
	fprintf(f, "</b><br><span class=\"%s\">%s</span></td><td>", state, state);
	json_object_foreach(json_object_get(site, "signals"), sig, v) {
		fprintf(f, "<span data-signal=\"%s\">%s: ", sig, sig);
		age(f, json_object_get(v, "age_seconds"));
		fprintf(f, "</span>, %lld rewritten<br>",
		    (long long)json_integer_value(json_object_get(v, "rewritten_series")));
	}
	v = json_object_get(site, "writes");
	fprintf(f, "</td><td>%lld <small>(%lld total)</small></td><td>",
	    (long long)json_integer_value(json_object_get(v, "recent")),
	    (long long)json_integer_value(json_object_get(v, "total")));
	json_array_foreach(json_object_get(site, "refusals"), i, v)
		fprintf(f, "%lld&times;%lld <small>(%lld total)</small><br>",
		    (long long)json_integer_value(json_object_get(v, "recent")),
		    (long long)json_integer_value(json_object_get(v, "status")),
		    (long long)json_integer_value(json_object_get(v, "total")));
	fputs("</td><td data-last-refusal>", f);
	if (json_is_object(r = json_object_get(site, "last_refusal"))) {
		fprintf(f, "%lld ", (long long)json_integer_value(json_object_get(r, "status")));
		age(f, json_object_get(r, "age_seconds"));
		fputs(": <span class=\"reason\">", f);
		esc(f, json_string_value(json_object_get(r, "reason")));
		fputs("</span>", f);
	} else
		fputs("none", f);
	fputs("</td></tr>\n", f);
}

static void
html_deps(FILE *f, const json_t *doc)
{
	json_t *ks = json_object_get(doc, "keyset"), *v;
	size_t i;

	fputs("<h2>Access key set</h2><p>kids: ", f);
	json_array_foreach(json_object_get(ks, "kids"), i, v) {
		fputs(i ? ", <code>" : "<code>", f);
		esc(f, json_string_value(v));
		fputs("</code>", f);
	}
	fputs(json_array_size(json_object_get(ks, "kids")) ? "" : "<span class=\"silent\">none</span>", f);
	fputs("<br>loaded ", f);
	age(f, json_object_get(ks, "age_seconds"));
	if (json_is_string(v = json_object_get(ks, "last_error"))) {
		fputs("<br>last error ", f);
		age(f, json_object_get(ks, "last_error_age_seconds"));
		fputs(": <span class=\"reason\">", f);
		esc(f, json_string_value(v));
		fputs("</span>", f);
	}
	fputs("</p><h2>Upstreams</h2><table><tr><th>upstream</th><th>last status</th>"
	    "<th>latency</th><th>answered</th></tr>\n", f);
	json_array_foreach(json_object_get(doc, "upstreams"), i, v) {
		fputs("<tr><td>", f);
		esc(f, json_string_value(json_object_get(v, "role")));
		fprintf(f, "</td><td>%lld</td><td>%.1f ms</td><td>",
		    (long long)json_integer_value(json_object_get(v, "last_status")),
		    json_real_value(json_object_get(v, "latency_seconds")) * 1000);
		age(f, json_object_get(v, "age_seconds"));
		fputs("</td></tr>\n", f);
	}
	fputs("</table>\n", f);
}

static void
html_page(FILE *f, const json_t *doc)
{
	json_t *v;
	size_t i;

	fputs("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
	    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
	    "<title>kakikomi status</title><style>"
	    "body{font:15px/1.4 system-ui,sans-serif;margin:1em;max-width:60em}"
	    "table{border-collapse:collapse;width:100%}"
	    "td,th{border-bottom:1px solid #ccc;padding:.3em;text-align:left;vertical-align:top}"
	    ".alive{color:#070}.silent{color:#b00;font-weight:bold}.reason{color:#b00}"
	    ".reason,code{overflow-wrap:anywhere}"
	    "small{color:#666}code{font-size:90%}</style></head><body>\n"
	    "<h1>kakikomi</h1>\n", f);
	fprintf(f, "<p>version %s, up %llds; counts over the last %lld minutes</p>\n",
	    json_string_value(json_object_get(doc, "version")),
	    (long long)json_integer_value(json_object_get(doc, "uptime_seconds")),
	    (long long)json_integer_value(json_object_get(doc, "window_minutes")));
	fputs("<h2>Sites</h2><table><tr><th>site</th><th>last write</th><th>writes</th>"
	    "<th>refusals</th><th>last refusal</th></tr>\n", f);
	json_array_foreach(json_object_get(doc, "sites"), i, v)
		html_site(f, v);
	fputs("</table>\n", f);
	html_deps(f, doc);
	fputs("<p><a href=\"/api/v1/status\">JSON</a> &middot; <a href=\"/metrics\">metrics</a></p>"
	    "</body></html>\n", f);
}

char *
status_html(const struct config *cfg, const struct keyset *ks, size_t *len)
{
	json_t *doc = snapshot(cfg, ks);
	char *page = NULL;
	FILE *f;

	if (doc == NULL)
		return NULL;
	if ((f = open_memstream(&page, len)) != NULL) {
		html_page(f, doc);
		if (fclose(f) != 0) {
			free(page);
			page = NULL;
		}
	}
	json_decref(doc);
	return page;
}
