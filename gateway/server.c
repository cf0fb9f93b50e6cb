/* server: write listener, workers and request life cycle.  See server.h. */
#include "server.h"

#include <event2/dns.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/util.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "acked.h"
#include "admin.h"
#include "http.h"
#include "log.h"
#include "metrics.h"
#include "payload.h"
#include "policy.h"
#include "ratelimit.h"
#include "rwconv.h"
#include "status.h"
#include "upstream.h"

#define MAX_WORKERS		64
#define RETRY_AFTER_OVERLOAD	"1"
#define RETRY_AFTER_NO_KEYS	"10"
#define RETRY_AFTER_KID		"1"
#define RETRY_AFTER_SITE_SHARE	"5"	/* the site's own requests hold its share */
#define MAX_FIELDS		6	/* answer header lines besides http.c's own */

struct worker {
	struct server		*srv;
	pthread_t		 thread;
	struct event_base	*base;
	struct evdns_base	*dns;
	struct http_server	*http;
	struct upstream_pool	*pool;
	struct event		*drain_ev;
	int			 started;
	/* This worker's own reference to the snapshot, and its generation: a
	 * request takes the snapshot without touching the server's lock. */
	struct config		*cfg;
	unsigned long		 cfg_gen;
};

/*
 * One site's in-flight body bytes.  Keyed by site name, not by a snapshot's
 * site, so a request admitted before a reload releases into the entry the
 * requests after it reserve from.  Entries live as long as the server (one per
 * site name ever configured); requests hold a pointer and count with atomics.
 */
struct site_share {
	struct site_share	*next;
	size_t			 bytes;		/* atomic */
	size_t			 requests;	/* atomic */
	/* The accepted-write counters' label sets, formatted once per site. */
	char			 site_label[300];
	char			 site_signal_label[SIGNAL_COUNT][300];
	char			 name[];
};

struct server {
	pthread_mutex_t	 cfg_lock;
	struct config	*cfg;
	unsigned long	 cfg_gen;	/* atomic; bumped by server_set_config() */
	uint64_t	 fd_cap;	/* client connections the open-file limit allows */
	struct jwks	*jwks;
	struct access	*access;
	struct worker	 workers[MAX_WORKERS];
	size_t		 nworkers;
	size_t		 inflight;	/* atomic */
	size_t		 inflight_bytes;/* atomic */
	size_t		 conns;		/* atomic: client connections, every worker */
	pthread_mutex_t	 share_lock;	/* taken once per request, to find its share */
	struct site_share *shares;
	char		 signal_label[SIGNAL_COUNT][32];	/* `signal="metrics"` */
};

/* One write request from head to answer. */
struct wreq {
	struct worker		*w;
	struct http_request	*req;
	struct config		*cfg;
	int			 routed;	/* signal is known */
	enum signal		 signal;
	const struct site	*site;
	char			 identity[320];
	size_t			 body_len;	/* reserved in inflight_bytes and share */
	int			 counted;	/* in srv->inflight */
	struct site_share	*share;		/* the site's, once access passed */
	struct http_field	 fields[MAX_FIELDS];
	size_t			 nfields;
	struct timespec		 start;
	struct payload_result	 payload;
	int			 fanout;	/* more than one upstream: remember acks */
	struct upstream_body	 v1;		/* a 2.0 body down-converted; v1.body owned */
	uint8_t			 digest[ACKED_DIGEST_LEN];
};

/* The current snapshot with a reference taken.  The lock is taken only
 * once per worker after a reload. */
static struct config *
server_config(struct worker *w)
{
	struct server *srv = w->srv;
	struct config *old;

	if (__atomic_load_n(&srv->cfg_gen, __ATOMIC_ACQUIRE) != w->cfg_gen) {
		pthread_mutex_lock(&srv->cfg_lock);
		old = w->cfg;
		w->cfg = config_ref(srv->cfg);
		w->cfg_gen = srv->cfg_gen;
		pthread_mutex_unlock(&srv->cfg_lock);
		config_unref(old);
	}
	return config_ref(w->cfg);
}

void
server_set_config(struct server *srv, struct config *cfg)
{
	struct config *old;

	pthread_mutex_lock(&srv->cfg_lock);
	old = srv->cfg;
	srv->cfg = config_ref(cfg);
	__atomic_add_fetch(&srv->cfg_gen, 1, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&srv->cfg_lock);
	config_unref(old);
}

size_t
server_inflight(const struct server *srv)
{
	return __atomic_load_n(&srv->inflight, __ATOMIC_RELAXED);
}

static double
since(const struct timespec *start)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - start->tv_sec) +
	    (double)(now.tv_nsec - start->tv_nsec) / 1e9;
}

static const char *
status_phrase(int status)
{
	switch (status) {
	case 200: return "OK";
	case 204: return "No Content";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 409: return "Conflict";
	case 413: return "Payload Too Large";
	case 415: return "Unsupported Media Type";
	case 429: return "Too Many Requests";
	case 500: return "Internal Server Error";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	default:  return status < 400 ? "OK" : status < 500 ? "Client Error" : "Server Error";
	}
}

/* One more header line on the answer (Retry-After, Allow, ...). */
static void
wreq_field(struct wreq *r, const char *name, const char *value)
{
	if (value != NULL && *value && r->nfields < MAX_FIELDS)
		r->fields[r->nfields++] = (struct http_field){ name, value };
}

/* Answers with `status` and, unless 2xx, a one-line reason as the body. */
static void
reply(struct wreq *r, int status, const char *reason)
{
	char body[600];
	int n = 0;

	if (status >= 300 && reason != NULL) {
		wreq_field(r, "Content-Type", "text/plain; charset=utf-8");
		n = snprintf(body, sizeof(body), "%s\n", reason);
		if (n < 0)
			n = 0;
		else if ((size_t)n >= sizeof(body)) {
			n = sizeof(body) - 1;
			body[n - 1] = '\n';
		}
	}
	http_reply(r->req, status, status_phrase(status), r->fields, r->nfields, body,
	    (size_t)n);
	r->req = NULL;
}

static const char *
wreq_signal(const struct wreq *r)
{
	return r->routed ? signal_name(r->signal) : "";
}

static void
count_request(const struct wreq *r, int status)
{
	char labels[300], site[200];

	metrics_escape(site, sizeof(site), r->site ? r->site->name : "");
	snprintf(labels, sizeof(labels), "signal=\"%s\",site=\"%s\",status=\"%d\"",
	    signal_name(r->signal), site, status);
	metrics_counter_add("kakikomi_requests_total", labels, 1);
	metrics_observe("kakikomi_request_duration_seconds",
	    r->w->srv->signal_label[r->signal], since(&r->start));
}

static void
count_refusal(const struct wreq *r, const char *why)
{
	char labels[300], site[200];

	metrics_escape(site, sizeof(site), r->site ? r->site->name : "");
	snprintf(labels, sizeof(labels), "site=\"%s\",signal=\"%s\",reason=\"%s\"",
	    site, wreq_signal(r), why);
	metrics_counter_add("kakikomi_rejected_requests_total", labels, 1);
}

static void
count_accepted(const struct wreq *r)
{
	const struct payload_result *p = &r->payload;
	const char *labels = r->share->site_signal_label[r->signal];

	metrics_counter_add("kakikomi_series_total", labels, (double)p->series);
	if (p->rewritten) {
		metrics_counter_add("kakikomi_rewritten_series_total", labels, (double)p->rewritten);
		status_note_rewritten(r->site->name, r->signal, p->rewritten);
	}
	metrics_gauge_set("kakikomi_site_last_write_timestamp_seconds", labels, (double)time(NULL));
	if (r->signal == SIGNAL_METRICS)
		metrics_counter_add("kakikomi_samples_total", r->share->site_label,
		    (double)p->samples);
	else
		metrics_counter_add("kakikomi_entries_total", r->share->site_label,
		    (double)p->entries);
}

static void
inflight_gauges(size_t n, size_t b)
{
	metrics_gauge_set("kakikomi_inflight_requests", "", (double)n);
	metrics_gauge_set("kakikomi_inflight_bytes", "", (double)b);
}

/* Adds to a cap-checked counter; -1 (nothing added) when it would pass max. */
static int
reserve(size_t *counter, size_t n, uint64_t max)
{
	if (__atomic_add_fetch(counter, n, __ATOMIC_RELAXED) > max) {
		__atomic_sub_fetch(counter, n, __ATOMIC_RELAXED);
		return -1;
	}
	return 0;
}

/* The request's slot and bytes go back; called once, from wreq_finish(). */
static void
inflight_release(struct server *srv, struct wreq *r)
{
	if (r->share != NULL) {
		__atomic_sub_fetch(&r->share->bytes, r->body_len, __ATOMIC_RELAXED);
		__atomic_sub_fetch(&r->share->requests, 1, __ATOMIC_RELAXED);
	}
	inflight_gauges(__atomic_sub_fetch(&srv->inflight, 1, __ATOMIC_RELAXED),
	    __atomic_sub_fetch(&srv->inflight_bytes, r->body_len, __ATOMIC_RELAXED));
}

/* The share of `site`, made on first use; NULL when out of memory. */
static struct site_share *
site_share(struct server *srv, const char *site)
{
	struct site_share *s;
	size_t len = strlen(site);
	char esc[200];

	pthread_mutex_lock(&srv->share_lock);
	for (s = srv->shares; s != NULL && strcmp(s->name, site) != 0; s = s->next)
		;
	if (s == NULL && (s = calloc(1, sizeof(*s) + len + 1)) != NULL) {
		memcpy(s->name, site, len + 1);
		metrics_escape(esc, sizeof(esc), site);
		snprintf(s->site_label, sizeof(s->site_label), "site=\"%s\"", esc);
		for (int i = 0; i < SIGNAL_COUNT; i++)
			snprintf(s->site_signal_label[i], sizeof(s->site_signal_label[i]),
			    "site=\"%s\",signal=\"%s\"", esc, signal_name((enum signal)i));
		s->next = srv->shares;
		srv->shares = s;
	}
	pthread_mutex_unlock(&srv->share_lock);
	return s;
}

/* The one exit of every request: answer, log, count, free. */
static void
wreq_finish(struct wreq *r, int status, const char *reason, const char *retry_after)
{
	enum log_level lvl = status < 300 ? LOG_LEVEL_DEBUG :
	    status >= 500 ? LOG_LEVEL_WARN : LOG_LEVEL_INFO;

	wreq_field(r, "Retry-After", retry_after);
	reply(r, status, reason);
	log_request(lvl, status < 300 ? "write accepted" : "write refused",
	    r->routed ? signal_name(r->signal) : NULL, r->site ? r->site->name : NULL,
	    r->identity[0] ? r->identity : NULL, status,
	    status < 300 ? NULL : reason, since(&r->start));
	if (r->routed)
		count_request(r, status);
	if (r->routed && r->site != NULL)
		status_note_write(r->site->name, r->signal, status, reason);
	if (r->counted)
		inflight_release(r->w->srv, r);
	payload_result_free(&r->payload);
	free((uint8_t *)(uintptr_t)r->v1.body);
	config_unref(r->cfg);
	free(r);
}

static void
forwarded(const struct upstream_result *res, void *arg)
{
	struct wreq *r = arg;
	static const char *const written[3] = {
		"X-Prometheus-Remote-Write-Samples-Written",
		"X-Prometheus-Remote-Write-Histograms-Written",
		"X-Prometheus-Remote-Write-Exemplars-Written",
	};

	if (r->fanout)
		acked_put(r->digest, res->status < 300 ? 0 : res->stored);
	if (res->status < 300) {
		for (int i = 0; i < 3; i++)
			wreq_field(r, written[i], res->written[i]);
		count_accepted(r);
	}
	wreq_finish(r, res->status, res->reason, res->retry_after);
}

/* User-Agent is passed only as printable ASCII up to this length. */
#define FORWARD_UA_MAX		256
/* Retry-Attempt is passed only as a small decimal number. */
#define FORWARD_RETRY_MAX	9

/* 1 when v is 1..max bytes, each printable ASCII (or a digit if digits). */
static int
header_plain(const char *v, size_t max, int digits)
{
	size_t n = 0;

	for (; v[n] != '\0'; n++)
		if (n == max || (digits ? v[n] < '0' || v[n] > '9' :
		    v[n] < 0x20 || v[n] > 0x7e))
			return 0;
	return n > 0;
}

/*
 * The upstream request's headers: only what kakikomi understood, in its own
 * words.  Content-Type, Content-Encoding and X-Prometheus-Remote-Write-Version
 * are payload's canonical strings for what it decoded, never the client's,
 * so no spelling (a repeated or differently cased `proto`, a Unicode
 * look-alike, `Snappy`) can mean one thing to kakikomi and another to
 * Prometheus (parseProtoMsg compares exactly) or Loki (mime.ParseMediaType
 * folds Unicode; Content-Encoding is compared exactly).  The version header
 * follows the decoded message: no receiver here dispatches on it, but one
 * that did must not see 0.1.0 on a 2.0 body.  The other two carry no data:
 * Prometheus never reads User-Agent or Retry-Attempt in its write handler;
 * Loki reads User-Agent only for a log line and a metric label, so it passes
 * only as short printable ASCII, and Retry-Attempt only as a number.
 * Credentials, hop-by-hop headers and a client's X-Scope-OrgID never pass.
 */
static void
forward_headers(const struct wreq *r, struct upstream_request *u)
{
	const struct payload_result *p = &r->payload;
	const char *ua = http_request_header(r->req, "User-Agent");
	const char *retry = http_request_header(r->req, "Retry-Attempt");

	u->headers[u->nheaders++] = (struct upstream_header){ "Content-Type", p->content_type };
	if (p->content_encoding != NULL)
		u->headers[u->nheaders++] =
		    (struct upstream_header){ "Content-Encoding", p->content_encoding };
	if (p->rw_version != NULL)
		u->headers[u->nheaders++] = (struct upstream_header){
		    "X-Prometheus-Remote-Write-Version", p->rw_version };
	if (ua != NULL && header_plain(ua, FORWARD_UA_MAX, 0))
		u->headers[u->nheaders++] = (struct upstream_header){ "User-Agent", ua };
	if (retry != NULL && header_plain(retry, FORWARD_RETRY_MAX, 1))
		u->headers[u->nheaders++] = (struct upstream_header){ "Retry-Attempt", retry };
	if (r->site->tenant != NULL)
		u->headers[u->nheaders++] =
		    (struct upstream_header){ "X-Scope-OrgID", r->site->tenant };
}

/* 1 when some upstream of the request's signal may need 1.0. */
static int
wants_v1(const struct wreq *r)
{
	for (size_t i = 0; i < r->cfg->nupstreams[r->signal]; i++)
		if (r->cfg->upstreams[r->signal][i].protocol != RW_PROTOCOL_V2)
			return 1;
	return 0;
}

/* What the conversion could not carry: counted and logged, never silent. */
static void
note_dropped(const struct wreq *r, const struct rwconv_stats *st)
{
	char labels[64];

	for (int i = 0; i < RWCONV_DROP_N; i++) {
		if (st->dropped[i] == 0)
			continue;
		snprintf(labels, sizeof(labels), "what=\"%s\"", rwconv_drop_name(i));
		metrics_counter_add("kakikomi_rw2_downconvert_dropped_total", labels,
		    (double)st->dropped[i]);
		log_debug("site %s: remote write 2.0 -> 1.0 for a v1 upstream dropped "
		    "%llu %s", r->site->name, (unsigned long long)st->dropped[i],
		    rwconv_drop_name(i));
	}
}

/*
 * The 1.0 form of a 2.0 body, for v1 and auto upstreams.  0, or -1 after
 * answering: the 1.0 body may not exceed what a 1.0 sender could send.
 */
static int
wreq_downconvert(struct wreq *r)
{
	struct rwconv_stats st;
	const char *errstr = "";
	uint8_t *out;
	size_t outlen;
	char reason[200];
	int rc;

	rc = rwconv_snappy(r->payload.fwd, r->payload.fwdlen,
	    r->cfg->limits.max_decoded_bytes, &out, &outlen, &st, &errstr);
	if (rc != RWCONV_OK) {
		snprintf(reason, sizeof(reason), "remote write 2.0 body for a 1.0 "
		    "upstream: %s", errstr);
		count_refusal(r, rc == RWCONV_TOO_LARGE ? "too_large" : "downconvert");
		wreq_finish(r, rc == RWCONV_TOO_LARGE ? 413 : rc == RWCONV_NOMEM ?
		    503 : 400, reason, rc == RWCONV_NOMEM ? RETRY_AFTER_OVERLOAD : NULL);
		return -1;
	}
	note_dropped(r, &st);
	r->v1 = (struct upstream_body){ .body = out, .len = outlen,
	    .content_type = RWCONV_V1_CONTENT_TYPE, .rw_version = RWCONV_V1_VERSION,
	    .written = { st.samples, st.histograms, st.exemplars } };
	return 0;
}

static void
wreq_forward(struct wreq *r, const uint8_t *body, size_t len)
{
	struct upstream_request u = {
		.signal = r->signal,
		.targets = r->cfg->upstreams[r->signal],
		.ntargets = r->cfg->nupstreams[r->signal],
		.body = r->payload.fwd,
		.len = r->payload.fwdlen,
	};

	forward_headers(r, &u);
	u.rw2 = r->payload.rw_version != NULL &&
	    strcmp(r->payload.rw_version, RWCONV_V2_VERSION) == 0;
	if (u.rw2 && wants_v1(r)) {
		if (wreq_downconvert(r) == -1)
			return;
		u.v1 = &r->v1;
	}
	if (u.ntargets > 1) {
		/* Keyed by the sender's bytes: a retry resends exactly those. */
		r->fanout = 1;
		acked_digest(r->site->name, (int)r->signal, body, len, r->digest);
		u.skip = acked_get(r->digest);
	}
	if (upstream_forward(r->w->pool, &u, forwarded, r) != 0)
		wreq_finish(r, 503, "no upstream could be reached", RETRY_AFTER_OVERLOAD);
}

static void
wreq_body(struct wreq *r, const uint8_t *body, size_t len)
{
	struct payload_rule rule = {
		.label = r->cfg->label,
		.values = &r->site->providers,
		.mode = r->site->on_mismatch,
		.site = r->site->name,
		.max_decoded = r->cfg->limits.max_decoded_bytes,
	};
	struct payload_hdr ct, ce;

	metrics_counter_add("kakikomi_request_bytes_total", r->w->srv->signal_label[r->signal],
	    (double)len);
	ct.p = http_request_header_n(r->req, "Content-Type", &ct.len);
	ce.p = http_request_header_n(r->req, "Content-Encoding", &ce.len);
	if (payload_check_n(r->signal, ct, ce, body, len, &rule, &r->payload) != 0) {
		count_refusal(r, r->payload.reject_reason ? r->payload.reject_reason : "body");
		wreq_finish(r, r->payload.status, r->payload.reason, NULL);
		return;
	}
	wreq_forward(r, body, len);
}

/* Per-site admission: identity known, signal allowed, rate limit. */
static int
wreq_site(struct wreq *r, const struct access_identity *id)
{
	char reason[400];
	double wait;
	struct timespec now;

	r->site = policy_site_for(r->cfg, id->common_name, id->email);
	if (r->site == NULL) {
		snprintf(reason, sizeof(reason), "identity %s is not listed in any site",
		    r->identity);
		metrics_counter_add("kakikomi_auth_failures_total", "reason=\"unknown identity\"", 1);
		wreq_finish(r, 403, reason, NULL);
		return -1;
	}
	if (!policy_allows(r->site, r->signal)) {
		snprintf(reason, sizeof(reason), "signal not allowed: site %s may not write %s",
		    r->site->name, signal_name(r->signal));
		count_refusal(r, "signal");
		wreq_finish(r, 403, reason, NULL);
		return -1;
	}
	clock_gettime(CLOCK_MONOTONIC, &now);
	if (!ratelimit_take(r->site->name, r->site->rate_limit, r->site->rate_burst,
	    (double)now.tv_sec + (double)now.tv_nsec / 1e9, &wait)) {
		char ra[16];
		snprintf(ra, sizeof(ra), "%d", (int)wait + 1);
		snprintf(reason, sizeof(reason), "rate limited: site %s is over %g requests/s",
		    r->site->name, r->site->rate_limit);
		count_refusal(r, "rate_limit");
		wreq_finish(r, 429, reason, ra);
		return -1;
	}
	return 0;
}

static int
wreq_access(struct wreq *r)
{
	struct keyset *ks = jwks_current(r->w->srv->jwks);
	struct access_identity id;
	const char *why = NULL, *token;
	char reason[200];
	enum access_result res;
	size_t len;

	token = http_request_header_n(r->req, "Cf-Access-Jwt-Assertion", &len);
	res = access_verify_n(r->w->srv->access, &r->cfg->access, ks, token, len,
	    time(NULL), &id, &why);
	if (ks)
		keyset_unref(ks);
	if (res == ACCESS_UNKNOWN_KID && jwks_request_refresh(r->w->srv->jwks)) {
		/*
		 * Cloudflare signs with a new key as soon as it rotates: a kid
		 * we have not seen may be that key.  Fetch the set and have the
		 * sender retry rather than drop the data; within 30 s of a
		 * fetch the set is fresh and an unknown kid is a plain 403.
		 */
		wreq_finish(r, 503, "access: unknown kid; key set refresh started, retry",
		    RETRY_AFTER_KID);
		return -1;
	}
	if (res != ACCESS_OK) {
		int status = access_status(res);
		snprintf(reason, sizeof(reason), "access: %s", why ? why : "denied");
		wreq_finish(r, status, reason, status == 503 ? RETRY_AFTER_NO_KEYS : NULL);
		return -1;
	}
	snprintf(r->identity, sizeof(r->identity), "%s",
	    id.common_name[0] ? id.common_name : id.email);
	return wreq_site(r, &id);
}

static void
wreq_overloaded(struct wreq *r)
{
	count_refusal(r, "overload");
	wreq_finish(r, 503, "overloaded: too many requests in flight, retry later",
	    RETRY_AFTER_OVERLOAD);
}

/*
 * The global request cap, before a byte of the body is read: refuse at once
 * (the sender retries 503) rather than queue.  Body bytes are reserved as they
 * arrive (more_cb), never from Content-Length: a declared length costs nothing
 * until it is sent.
 */
static int
wreq_admit(struct wreq *r)
{
	struct server *srv = r->w->srv;

	if (reserve(&srv->inflight, 1, r->cfg->limits.max_requests) != 0) {
		wreq_overloaded(r);
		return -1;
	}
	r->counted = 1;
	inflight_gauges(server_inflight(srv),
	    __atomic_load_n(&srv->inflight_bytes, __ATOMIC_RELAXED));
	return 0;
}

/* The site is known: the share its body bytes are reserved from. */
static int
wreq_share(struct wreq *r)
{
	struct site_share *share = site_share(r->w->srv, r->site->name);
	uint64_t max = r->cfg->limits.max_requests_per_site;
	char reason[300];

	if (share == NULL) {
		wreq_finish(r, 503, "out of memory", RETRY_AFTER_OVERLOAD);
		return -1;
	}
	if (reserve(&share->requests, 1, max) != 0) {
		snprintf(reason, sizeof(reason), "overloaded: site %s has its whole "
		    "share of requests in flight (max_requests_per_site %llu), retry "
		    "later", r->site->name, (unsigned long long)max);
		count_refusal(r, "site_share");
		wreq_finish(r, 503, reason, RETRY_AFTER_SITE_SHARE);
		return -1;
	}
	r->share = share;
	return 0;
}

/* 413 from Content-Length alone: the body is never read. */
static int
wreq_size(struct wreq *r)
{
	const struct http_head *h = http_request_head(r->req);
	uint64_t max = r->cfg->limits.max_body_bytes;
	char reason[160];

	if (!h->has_length || h->content_length <= max)
		return 0;
	snprintf(reason, sizeof(reason), "body of %llu bytes is over max_body_bytes (%llu)",
	    (unsigned long long)h->content_length, (unsigned long long)max);
	count_refusal(r, "too_large");
	wreq_finish(r, 413, reason, NULL);
	return -1;
}

/*
 * The headers kakikomi reads must come once: with two, kakikomi and a
 * receiver (or Cloudflare and kakikomi) could each take a different one.
 */
static int
wreq_unique_headers(struct wreq *r)
{
	static const char *const once[] = {
		"Content-Type", "Content-Encoding", "Content-Length",
		"Transfer-Encoding", "Cf-Access-Jwt-Assertion",
		"X-Prometheus-Remote-Write-Version",
	};
	const struct http_head *h = http_request_head(r->req);
	char reason[120];

	for (size_t i = 0; i < sizeof(once) / sizeof(once[0]); i++) {
		if (http_head_count(h, once[i]) <= 1)
			continue;
		snprintf(reason, sizeof(reason), "malformed request: header %s "
		    "is repeated", once[i]);
		count_refusal(r, "protocol");
		wreq_finish(r, 400, reason, NULL);
		return -1;
	}
	return 0;
}

static int
wreq_route(struct wreq *r)
{
	const char *path = http_request_path(r->req);

	if (strcmp(path, "/api/v1/write") == 0)
		r->signal = SIGNAL_METRICS;
	else if (strcmp(path, "/loki/api/v1/push") == 0)
		r->signal = SIGNAL_LOGS;
	else {
		count_refusal(r, "route");
		wreq_finish(r, 404, "not found: kakikomi accepts POST /api/v1/write and "
		    "POST /loki/api/v1/push", NULL);
		return -1;
	}
	r->routed = 1;
	if (!http_request_is(r->req, "POST")) {
		wreq_field(r, "Allow", "POST");
		count_refusal(r, "method");
		wreq_finish(r, 405, "method not allowed: use POST", NULL);
		return -1;
	}
	return 0;
}

static struct wreq *
wreq_new(struct worker *w, struct http_request *req)
{
	struct wreq *r = calloc(1, sizeof(*r));

	if (r == NULL) {
		http_reply(req, 503, status_phrase(503), NULL, 0, "out of memory\n", 14);
		return NULL;
	}
	clock_gettime(CLOCK_MONOTONIC, &r->start);
	r->w = w;
	r->req = req;
	r->cfg = server_config(w);
	http_request_set_data(req, r);
	return r;
}

/* The head is in: every refusal that needs no body happens here. */
static void
head_cb(struct http_request *req, void *arg)
{
	struct wreq *r = wreq_new(arg, req);

	if (r == NULL || wreq_route(r) != 0 || wreq_unique_headers(r) != 0 ||
	    wreq_size(r) != 0 ||
	    wreq_admit(r) != 0 || wreq_access(r) != 0 || wreq_share(r) != 0)
		return;
	if (r->cfg->nupstreams[r->signal] == 0) {
		wreq_finish(r, 404, "no upstream is configured for this signal", NULL);
		return;
	}
	http_request_set_body_limit(req, r->cfg->limits.max_body_bytes);
}

/* A site over its share: only that site is refused. */
static void
wreq_over_share(struct wreq *r)
{
	char reason[300];

	snprintf(reason, sizeof(reason), "overloaded: site %s holds its whole share of "
	    "in-flight body bytes (max_inflight_bytes_per_site %llu), retry later",
	    r->site->name, (unsigned long long)r->cfg->limits.max_inflight_bytes_per_site);
	count_refusal(r, "site_share");
	wreq_finish(r, 503, reason, RETRY_AFTER_SITE_SHARE);
}

/*
 * The body grows (Content-Length or chunked): the new bytes are reserved
 * against the global cap, then the site's share.  Two atomic additions.
 */
static int
more_cb(struct http_request *req, size_t total, void *arg)
{
	struct wreq *r = http_request_data(req);
	struct server *srv = r->w->srv;
	const struct limits_conf *lim = &r->cfg->limits;
	size_t n = total - r->body_len;

	if (reserve(&srv->inflight_bytes, n, lim->max_inflight_bytes) != 0) {
		wreq_overloaded(r);
		return -1;
	}
	if (reserve(&r->share->bytes, n, lim->max_inflight_bytes_per_site) != 0) {
		__atomic_sub_fetch(&srv->inflight_bytes, n, __ATOMIC_RELAXED);
		wreq_over_share(r);
		return -1;
	}
	r->body_len = total;
	metrics_gauge_set("kakikomi_inflight_bytes", "",
	    (double)__atomic_load_n(&srv->inflight_bytes, __ATOMIC_RELAXED));
	return 0;
}

static void
body_cb(struct http_request *req, void *arg)
{
	struct wreq *r = http_request_data(req);
	const uint8_t *body;
	size_t len;

	body = http_request_body(req, &len);
	wreq_body(r, body, len);
}

/* The request could not be read (malformed, too large, too slow, gone). */
static void
fail_cb(struct http_request *req, int status, const char *reason, void *arg)
{
	struct wreq *r = http_request_data(req);

	if (r == NULL && (r = wreq_new(arg, req)) == NULL)
		return;
	count_refusal(r, status == 408 ? "timeout" : status == 413 ? "too_large" :
	    "protocol");
	wreq_finish(r, status, reason, NULL);
}

static void
limits_cb(void *arg, struct http_limits *out)
{
	struct worker *w = arg;
	struct config *cfg = server_config(w);

	out->max_connections = cfg->limits.max_connections < w->srv->fd_cap ?
	    cfg->limits.max_connections : w->srv->fd_cap;
	out->header_timeout_ms = cfg->limits.header_timeout_ms;
	out->body_timeout_ms = cfg->limits.body_timeout_ms;
	out->idle_timeout_ms = cfg->limits.idle_timeout_ms;
	out->min_body_rate = cfg->limits.min_body_rate;
	out->body_rate_grace_ms = cfg->limits.body_rate_grace_ms;
	config_unref(cfg);
}

static void
drain_cb(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;

	http_server_drain(w->http);
}

static void *
worker_main(void *arg)
{
	struct worker *w = arg;

	event_base_loop(w->base, EVLOOP_NO_EXIT_ON_EMPTY);
	payload_thread_done();
	return NULL;
}

static struct evconnlistener *
worker_listen(struct worker *w, const struct config *cfg)
{
	struct sockaddr_storage ss;
	int sslen = sizeof(ss);
	char addr[300];
	struct evconnlistener *lev;

	snprintf(addr, sizeof(addr), "%s%s", cfg->listen[0] == ':' ? "0.0.0.0" : "",
	    cfg->listen);
	if (evutil_parse_sockaddr_port(addr, (struct sockaddr *)&ss, &sslen) != 0) {
		log_warnx("listen %s: not an address", cfg->listen);
		return NULL;
	}
	lev = evconnlistener_new_bind(w->base, NULL, NULL,
	    LEV_OPT_REUSEABLE | LEV_OPT_REUSEABLE_PORT | LEV_OPT_CLOSE_ON_FREE |
	    LEV_OPT_CLOSE_ON_EXEC, 1024, (struct sockaddr *)&ss, sslen);
	if (lev == NULL)
		log_warn("listen %s", cfg->listen);
	return lev;
}

static int
worker_init(struct worker *w, struct server *srv, const struct config *cfg)
{
	static const struct http_hooks hooks = {
		.limits = limits_cb, .head = head_cb, .more = more_cb,
		.body = body_cb, .fail = fail_cb,
	};
	struct evconnlistener *lev;

	w->srv = srv;
	if ((w->base = event_base_new()) == NULL ||
	    (w->dns = evdns_base_new(w->base, EVDNS_BASE_INITIALIZE_NAMESERVERS)) == NULL ||
	    (w->pool = upstream_pool_new(w->base, w->dns)) == NULL ||
	    (w->drain_ev = event_new(w->base, -1, 0, drain_cb, w)) == NULL ||
	    (lev = worker_listen(w, cfg)) == NULL)
		return -1;
	if ((w->http = http_server_new(w->base, lev, &hooks, w, &srv->conns)) == NULL) {
		evconnlistener_free(lev);
		return -1;
	}
	return 0;
}

static void
worker_free(struct worker *w)
{
	if (w->drain_ev)
		event_free(w->drain_ev);
	config_unref(w->cfg);
	http_server_free(w->http);
	upstream_pool_free(w->pool);
	if (w->dns)
		evdns_base_free(w->dns, 0);
	if (w->base)
		event_base_free(w->base);
}

struct server *
server_new(struct config *cfg, struct jwks *jwks, struct access *access)
{
	struct server *srv = calloc(1, sizeof(*srv));
	long cores = sysconf(_SC_NPROCESSORS_ONLN);

	if (srv == NULL)
		return NULL;
	pthread_mutex_init(&srv->cfg_lock, NULL);
	pthread_mutex_init(&srv->share_lock, NULL);
	srv->cfg = config_ref(cfg);
	srv->cfg_gen = 1;	/* workers start at 0: they take it on first use */
	srv->jwks = jwks;
	srv->access = access;
	for (int i = 0; i < SIGNAL_COUNT; i++)
		snprintf(srv->signal_label[i], sizeof(srv->signal_label[i]), "signal=\"%s\"",
		    signal_name((enum signal)i));
	srv->nworkers = cfg->workers ? cfg->workers : (cores > 0 ? (size_t)cores : 1);
	if (srv->nworkers > MAX_WORKERS)
		srv->nworkers = MAX_WORKERS;
	return srv;
}

/*
 * Raises the open-file limit to its hard limit and caps client connections
 * below it: an accept failing with EMFILE leaves the listener readable, and
 * libevent would retry it in a loop.  One budget for every descriptor: the
 * admin listener's connections (admin.h), upstream connections (a pool per
 * worker), the key-set fetch and the logs keep `reserve` descriptors.
 */
#define FD_RESERVE_BASE		(64 + ADMIN_MAX_CONNECTIONS)
#define FD_RESERVE_PER_WORKER	128

static void
server_fd_cap(struct server *srv)
{
	uint64_t reserve = FD_RESERVE_BASE + FD_RESERVE_PER_WORKER * (uint64_t)srv->nworkers;
	struct rlimit rl;

	srv->fd_cap = UINT64_MAX;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
		(void)getrlimit(RLIMIT_NOFILE, &rl);
	}
	if (rl.rlim_cur == RLIM_INFINITY)
		return;
	srv->fd_cap = rl.rlim_cur > 2 * reserve ? rl.rlim_cur - reserve : rl.rlim_cur / 2;
	if (srv->cfg->limits.max_connections > srv->fd_cap)
		log_warnx("limits.max_connections %llu is above what the open-file limit (%llu) "
		    "allows: at most %llu client connections", (unsigned long long)
		    srv->cfg->limits.max_connections, (unsigned long long)rl.rlim_cur,
		    (unsigned long long)srv->fd_cap);
}

int
server_start(struct server *srv)
{
	server_fd_cap(srv);
	for (size_t i = 0; i < srv->nworkers; i++) {
		struct worker *w = &srv->workers[i];
		if (worker_init(w, srv, srv->cfg) != 0)
			return -1;
	}
	for (size_t i = 0; i < srv->nworkers; i++) {
		struct worker *w = &srv->workers[i];
		if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
			log_warn("starting worker %zu", i);
			return -1;
		}
		w->started = 1;
	}
	log_info("listening on %s with %zu workers", srv->cfg->listen, srv->nworkers);
	return 0;
}

void
server_drain(struct server *srv)
{
	for (size_t i = 0; i < srv->nworkers; i++)
		if (srv->workers[i].drain_ev)
			event_active(srv->workers[i].drain_ev, EV_READ, 0);
}

void
server_stop(struct server *srv)
{
	for (size_t i = 0; i < srv->nworkers; i++) {
		struct worker *w = &srv->workers[i];
		if (!w->started)
			continue;
		event_base_loopbreak(w->base);
		pthread_join(w->thread, NULL);
		w->started = 0;
	}
}

void
server_free(struct server *srv)
{
	struct site_share *share;

	if (srv == NULL)
		return;
	server_stop(srv);
	for (size_t i = 0; i < srv->nworkers; i++)
		worker_free(&srv->workers[i]);
	config_unref(srv->cfg);
	pthread_mutex_destroy(&srv->cfg_lock);
	while ((share = srv->shares) != NULL) {
		srv->shares = share->next;
		free(share);
	}
	pthread_mutex_destroy(&srv->share_lock);
	free(srv);
}
