/* upstream: keep-alive pools and fan-out to Prometheus / Loki.  See upstream.h. */
#include "upstream.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "metrics.h"
#include "status.h"

#define TARGET_MAX_CONNS	64	/* per upstream URL and worker */
#define UPSTREAM_MAX_RESPONSE	(1024 * 1024)
#define RETRY_AFTER_DEFAULT	"5"
#define UPSTREAM_IO_CHUNK	(1024 * 1024)	/* libevent's default is 16 KiB */
#define UPSTREAM_LINE_MAX	160	/* of an upstream's body, logged or relayed */
#define UPSTREAM_WHAT_MAX	(UPSTREAM_LINE_MAX + 64)	/* "answered 400: <line>" */
#define UPSTREAM_NOTE_MAX	(UPSTREAM_LINE_MAX + 512)	/* a log detail */

struct conn {
	struct evhttp_connection	*evcon;
	unsigned			 pending;
	evutil_socket_t			 tuned_fd;	/* socket conn_tune() last saw */
};

/* One upstream URL as seen by one worker. */
struct target {
	struct target	*next;
	char		*url;
	char		*host;
	char		*path;		/* path and query */
	char		 hostport[300];	/* Host header */
	int		 port;
	struct conn	 conns[TARGET_MAX_CONNS];
	size_t		 nconns;
	/* protocol: auto (upstream.h): what this worker has seen of it */
	int		 rw2_proven;
	int		 probing;
	struct conn	*probe_conn;
	time_t		 probed;		/* CLOCK_MONOTONIC seconds */
};

/*
 * Ownership.  libevent may run leg_done_cb() before evhttp_make_request()
 * returns: a connect that fails at once (socket() -> EMFILE, a numeric address
 * refused on the spot) goes through evhttp_connection_cb_cleanup(), which runs
 * the callback of every request queued on that connection; and
 * evhttp_connection_fail_() / evhttp_connection_done() may start the next
 * queued request, which can fail the same way inside them.  So:
 *  - a leg belongs to libevent from the evhttp_make_request() call that
 *    returns 0 until leg_done_cb(), which runs exactly once and frees it;
 *    leg_start() sets every count before that call and touches neither the
 *    leg nor the fanout after it;
 *  - a fanout holds one reference per leg in flight plus one that
 *    upstream_forward() keeps while it starts legs; the last reference
 *    runs `done` and frees it (possibly before upstream_forward returns);
 *  - targets and conns live as long as the pool.  evhttp_connection_free()
 *    (only in upstream_pool_free) drops queued requests without their
 *    callbacks, so the pool lists its legs in flight and frees them there,
 *    without `done`.  evhttp_cancel_request() is never used: on a request in
 *    progress it runs the error callback but not the completion callback.
 *  - timeouts and connection errors arrive from the event loop through
 *    evhttp_connection_fail_(): leg_error_cb() (which only records the
 *    error), then leg_done_cb(NULL).
 */
struct upstream_pool {
	struct event_base	*base;
	struct evdns_base	*dns;
	struct target		*targets;
	struct leg		*legs;		/* in flight */
};

struct fanout {
	upstream_done_cb	 done;
	void			*arg;
	size_t			 refs;
	enum signal		 signal;
	int			 fail_status;	/* worst 5xx seen, 0 if none */
	int			 client_status;	/* first data-refusing 4xx, 0 if none */
	/* Written counts over the legs that answered 2xx to this attempt. */
	unsigned		 ok_legs;
	unsigned		 written_legs[UPSTREAM_WRITTEN_N];
	uint64_t		 written_min[UPSTREAM_WRITTEN_N];
	struct upstream_result	 res;
};

struct leg {
	struct leg		*prev, *next;	/* pool->legs */
	struct upstream_pool	*pool;
	struct fanout		*fo;
	struct target		*target;
	struct conn		*conn;
	uint64_t		 bit;		/* this target's bit in res.stored */
	uint64_t		 timeout_ms;
	char			 role[32];	/* "metrics upstream 1": what a site may read */
	const struct upstream_body *v1;		/* sent instead of the 2.0 body */
	int			 rw2;		/* 2.0 body sent: Written headers due */
	enum evhttp_request_error error;
	int			 errored;
	struct timespec		 start;
};

static void
target_free(struct target *t)
{
	for (size_t i = 0; i < t->nconns; i++)
		evhttp_connection_free(t->conns[i].evcon);
	free(t->url);
	free(t->host);
	free(t->path);
	free(t);
}

static struct target *
target_new(const char *url)
{
	struct evhttp_uri *uri = evhttp_uri_parse(url);
	struct target *t = calloc(1, sizeof(*t));
	const char *path, *query;
	size_t plen;

	if (uri == NULL || t == NULL || evhttp_uri_get_host(uri) == NULL)
		goto fail;
	path = evhttp_uri_get_path(uri);
	if (path == NULL || *path == '\0')
		path = "/";
	query = evhttp_uri_get_query(uri);
	plen = strlen(path) + (query ? strlen(query) + 1 : 0) + 1;
	t->url = strdup(url);
	t->host = strdup(evhttp_uri_get_host(uri));
	t->path = malloc(plen);
	if (t->url == NULL || t->host == NULL || t->path == NULL)
		goto fail;
	snprintf(t->path, plen, "%s%s%s", path, query ? "?" : "", query ? query : "");
	t->port = evhttp_uri_get_port(uri);
	if (t->port <= 0)
		t->port = 80;
	snprintf(t->hostport, sizeof(t->hostport), "%s:%d", t->host, t->port);
	evhttp_uri_free(uri);
	return t;
fail:
	if (uri)
		evhttp_uri_free(uri);
	if (t)
		target_free(t);
	return NULL;
}

static void	leg_free(struct leg *, int);

/* "metrics upstream 1": how a site may read of an upstream (never its URL). */
static void
role_name(char *dst, size_t dstsz, enum signal sig, size_t i)
{
	snprintf(dst, dstsz, "%s upstream %zu", signal_name(sig), i + 1);
}

struct upstream_pool *
upstream_pool_new(struct event_base *base, struct evdns_base *dns)
{
	struct upstream_pool *pool = calloc(1, sizeof(*pool));

	if (pool == NULL)
		return NULL;
	pool->base = base;
	pool->dns = dns;
	return pool;
}

void
upstream_pool_free(struct upstream_pool *pool)
{
	struct target *t, *next;

	if (pool == NULL)
		return;
	/* Their requests go with the connections, without callbacks. */
	while (pool->legs != NULL)
		leg_free(pool->legs, 0);
	for (t = pool->targets; t; t = next) {
		next = t->next;
		target_free(t);
	}
	free(pool);
}

static struct target *
pool_target(struct upstream_pool *pool, const char *url)
{
	struct target *t;

	for (t = pool->targets; t; t = t->next)
		if (strcmp(t->url, url) == 0)
			return t;
	if ((t = target_new(url)) == NULL)
		return NULL;
	t->next = pool->targets;
	pool->targets = t;
	return t;
}

/* An idle connection, a new one, or the least busy one (evhttp queues). */
static struct conn *
target_conn(struct upstream_pool *pool, struct target *t)
{
	struct conn *best = NULL;

	for (size_t i = 0; i < t->nconns; i++) {
		if (t->conns[i].pending == 0)
			return &t->conns[i];
		if (best == NULL || t->conns[i].pending < best->pending)
			best = &t->conns[i];
	}
	if (t->nconns < TARGET_MAX_CONNS) {
		struct evhttp_connection *evcon = evhttp_connection_base_new(
		    pool->base, pool->dns, t->host, (unsigned short)t->port);
		if (evcon != NULL) {
			evhttp_connection_set_max_body_size(evcon, UPSTREAM_MAX_RESPONSE);
			t->conns[t->nconns].evcon = evcon;
			t->conns[t->nconns].pending = 0;
			t->conns[t->nconns].tuned_fd = -1;
			return &t->conns[t->nconns++];
		}
	}
	return best;
}

/*
 * The first line of an upstream's answer, bounded and printable ASCII only:
 * it reaches the log, and for a data refusal the sender.
 */
static void
first_line(struct evbuffer *buf, char *dst, size_t dstsz)
{
	unsigned char tmp[UPSTREAM_LINE_MAX];
	ev_ssize_t got = evbuffer_copyout(buf, tmp, sizeof(tmp));
	size_t n = got > 0 ? (size_t)got : 0;
	size_t o = 0;

	for (size_t i = 0; i < n && o + 1 < dstsz; i++) {
		if (tmp[i] == '\n' || tmp[i] == '\r')
			break;
		dst[o++] = (tmp[i] >= 0x20 && tmp[i] < 0x7f) ? (char)tmp[i] : '?';
	}
	dst[o] = '\0';
}

static double
elapsed_s(const struct timespec *start)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - start->tv_sec) +
	    (double)(now.tv_nsec - start->tv_nsec) / 1e9;
}

static void
leg_record(struct leg *leg, int status)
{
	char labels[512], url[400];

	metrics_escape(url, sizeof(url), leg->target->url);
	snprintf(labels, sizeof(labels), "signal=\"%s\",upstream=\"%s\",status=\"%d\"",
	    signal_name(leg->fo->signal), url, status);
	metrics_counter_add("kakikomi_upstream_requests_total", labels, 1);
	snprintf(labels, sizeof(labels), "signal=\"%s\",upstream=\"%s\"",
	    signal_name(leg->fo->signal), url);
	metrics_observe("kakikomi_upstream_duration_seconds", labels, elapsed_s(&leg->start));
	status_note_upstream(leg->role, status, elapsed_s(&leg->start));
}

/* The log line names the upstream by role and URL; the sender sees the role only. */
static void
leg_log(struct leg *leg, enum log_level lvl, const char *msg, int status, const char *what)
{
	char detail[UPSTREAM_NOTE_MAX];

	snprintf(detail, sizeof(detail), "%s (%s) %s", leg->role, leg->target->url, what);
	log_request(lvl, msg, signal_name(leg->fo->signal), NULL, NULL, status, detail,
	    elapsed_s(&leg->start));
}

/* Failures: the sender must retry.  A 500/501 says more than a 502-504. */
static void
fanout_fail(struct fanout *fo, const char *role, int status, const char *what)
{
	if (fo->fail_status == 0 || (fo->fail_status >= 502 && status < 502)) {
		fo->fail_status = status;
		snprintf(fo->res.reason, sizeof(fo->res.reason), "%s %s", role, what);
	}
}

static void
leg_failed(struct leg *leg, int status, const char *what, const char *logged)
{
	leg_log(leg, LOG_LEVEL_WARN, "upstream failed", status, logged ? logged : what);
	fanout_fail(leg->fo, leg->role, status, what);
}

/* What an operator should look at when an upstream refuses kakikomi itself. */
static const char *
misconfigured_hint(int code)
{
	switch (code) {
	case 401:
		return "check tenant / credentials";
	case 403:
		return "check credentials and the tenant's permissions";
	case 404:
		return "check the upstream URL path (Prometheus needs --web.enable-remote-write-receiver)";
	case 405:
		return "check the upstream URL: it does not take POST";
	case 407:
		return "check proxy credentials";
	case 415:
		return "check the upstream's protocol / content type support";
	default:
		if (code >= 300 && code < 400)
			return "check the upstream URL: it redirects";
		return "check the upstream configuration";
	}
}

static pthread_mutex_t	 misconf_lock = PTHREAD_MUTEX_INITIALIZER;
static char		 misconf_last[UPSTREAM_NOTE_MAX + 32];	/* time + note */

static void
misconfigured_note(const char *line)
{
	char when[32];
	struct tm tm;
	time_t now = time(NULL);

	if (gmtime_r(&now, &tm) == NULL ||
	    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		when[0] = '\0';
	pthread_mutex_lock(&misconf_lock);
	snprintf(misconf_last, sizeof(misconf_last), "%s %s", when, line);
	pthread_mutex_unlock(&misconf_lock);
}

int
upstream_last_misconfigured(char *buf, size_t bufsz)
{
	int have;

	if (bufsz == 0)
		return 0;
	pthread_mutex_lock(&misconf_lock);
	have = misconf_last[0] != '\0';
	snprintf(buf, bufsz, "%s", misconf_last);
	pthread_mutex_unlock(&misconf_lock);
	return have;
}

/* An answer that is not the data's fault: keep the data (502), tell the operator. */
static void
leg_misconfigured(struct leg *leg, int code, const char *hint, const char *line)
{
	char labels[128], what[UPSTREAM_WHAT_MAX], note[UPSTREAM_NOTE_MAX];

	snprintf(labels, sizeof(labels), "upstream=\"%s\",status=\"%d\"", leg->role, code);
	metrics_counter_add("kakikomi_upstream_misconfigured_total", labels, 1);
	snprintf(note, sizeof(note), "answered %d: %s (upstream said: %s)", code, hint, line);
	leg_log(leg, LOG_LEVEL_ERROR, "upstream misconfigured", code, note);
	snprintf(note, sizeof(note), "%s (%s) answered %d: %s", leg->role,
	    leg->target->url, code, hint);
	misconfigured_note(note);
	snprintf(what, sizeof(what),
	    "answered %d: kakikomi's upstream configuration needs fixing; retry later", code);
	fanout_fail(leg->fo, leg->role, 502, what);
}

/* A plain decimal count; anything else (sign, spaces, overflow) is no count. */
static int
written_parse(const char *v, uint64_t *out)
{
	uint64_t n = 0;

	if (v == NULL || *v == '\0' || strlen(v) > 19)
		return -1;
	for (; *v; v++) {
		if (*v < '0' || *v > '9')
			return -1;
		n = n * 10 + (uint64_t)(*v - '0');
	}
	*out = n;
	return 0;
}

static const char *const written_names[UPSTREAM_WRITTEN_N] = {
	"X-Prometheus-Remote-Write-Samples-Written",
	"X-Prometheus-Remote-Write-Histograms-Written",
	"X-Prometheus-Remote-Write-Exemplars-Written",
};

#define WRITTEN_ALL	((1u << UPSTREAM_WRITTEN_N) - 1)

/* The Written counts of an answer; bit i: count i was there. */
static unsigned
written_read(struct evkeyvalq *h, uint64_t n[UPSTREAM_WRITTEN_N])
{
	unsigned have = 0;

	for (int i = 0; i < UPSTREAM_WRITTEN_N; i++)
		if (written_parse(evhttp_find_header(h, written_names[i]), &n[i]) == 0)
			have |= 1u << i;
	return have;
}

static void
leg_written(struct fanout *fo, int i, uint64_t n)
{
	if (fo->written_legs[i]++ == 0 || n < fo->written_min[i])
		fo->written_min[i] = n;
}

/*
 * A 2xx.  A 1.0 leg of a 2.0 request wrote what kakikomi sent it; a 2.0
 * leg must say what it wrote: the spec makes the headers a MUST, and a
 * 1.0-only receiver answers a 2.0 body 204 having stored nothing.
 */
static void
leg_stored(struct leg *leg, struct evkeyvalq *h, int code)
{
	struct fanout *fo = leg->fo;
	uint64_t n[UPSTREAM_WRITTEN_N];
	unsigned have = written_read(h, n);

	if (leg->rw2 && have != WRITTEN_ALL) {
		leg->target->rw2_proven = 0;
		leg_misconfigured(leg, code, "it answered a remote write 2.0 body "
		    "without X-Prometheus-Remote-Write-*-Written, so it is no 2.0 "
		    "receiver and may have stored nothing: set protocol: v1", "");
		return;
	}
	fo->res.stored |= leg->bit;
	fo->ok_legs++;
	for (int i = 0; i < UPSTREAM_WRITTEN_N; i++) {
		if (leg->v1 != NULL)
			leg_written(fo, i, leg->v1->written[i]);
		else if (have & (1u << i))
			leg_written(fo, i, n[i]);
	}
}

/* Seconds only (an HTTP-date is dropped): the value is relayed to the sender. */
static void
leg_retry_after(struct fanout *fo, const char *ra)
{
	size_t n = ra ? strlen(ra) : 0;

	if (n == 0 || n > 6 || strspn(ra, "0123456789") != n)
		return;
	memcpy(fo->res.retry_after, ra, n + 1);
}

static void
leg_answered(struct leg *leg, struct evhttp_request *resp)
{
	struct fanout *fo = leg->fo;
	struct evkeyvalq *h = evhttp_request_get_input_headers(resp);
	int code = evhttp_request_get_response_code(resp);
	char line[UPSTREAM_LINE_MAX], what[UPSTREAM_WHAT_MAX], logged[UPSTREAM_WHAT_MAX];

	leg_retry_after(fo, evhttp_find_header(h, "Retry-After"));
	if (code >= 200 && code < 300) {
		leg_stored(leg, h, code);
		return;
	}
	first_line(evhttp_request_get_input_buffer(resp), line, sizeof(line));
	if (code >= 500 && code < 600) {
		/* Its body describes the receiver's insides (Mimir names ingester
		 * addresses): the log has it, the sender gets the status. */
		snprintf(logged, sizeof(logged), "answered %d%s%s", code, *line ? ": " : "", line);
		snprintf(what, sizeof(what), "answered %d", code);
		leg_failed(leg, code, what, logged);
		return;
	}
	if (code != 400 && code != 413 && code != 429) {
		leg_misconfigured(leg, code, misconfigured_hint(code), line);
		return;
	}
	/* The data's fault: its first line tells the sender what is wrong. */
	snprintf(what, sizeof(what), "answered %d%s%s", code, *line ? ": " : "", line);
	leg_log(leg, LOG_LEVEL_INFO, "upstream refused the data", code, what);
	if (fo->client_status == 0) {
		fo->client_status = code;
		if (fo->fail_status == 0)
			snprintf(fo->res.reason, sizeof(fo->res.reason), "%s %s", leg->role, what);
	}
}

/* A header goes back only when every leg that took the body now sent it;
 * the value is the smallest.  Legs skipped as already stored add nothing. */
static void
fanout_written(struct fanout *fo)
{
	for (int i = 0; i < UPSTREAM_WRITTEN_N; i++) {
		fo->res.written[i][0] = '\0';
		if (fo->ok_legs > 0 && fo->written_legs[i] == fo->ok_legs)
			snprintf(fo->res.written[i], sizeof(fo->res.written[i]), "%llu",
			    (unsigned long long)fo->written_min[i]);
	}
}

static void
fanout_finish(struct fanout *fo)
{
	struct upstream_result *res = &fo->res;

	if (fo->fail_status != 0) {
		res->status = fo->fail_status;
		if (res->retry_after[0] == '\0')
			snprintf(res->retry_after, sizeof(res->retry_after), "%s",
			    RETRY_AFTER_DEFAULT);
	} else if (fo->client_status != 0) {
		res->status = fo->client_status;
		if (res->status != 429)
			res->retry_after[0] = '\0';
	} else {
		res->status = 204;
		res->reason[0] = '\0';
		res->retry_after[0] = '\0';
		fanout_written(fo);
	}
	fo->done(res, fo->arg);
}

/* Drops one reference; the last one answers (if `answer`) and frees. */
static void
fanout_unref(struct fanout *fo, int answer)
{
	if (--fo->refs > 0)
		return;
	if (answer)
		fanout_finish(fo);
	free(fo);
}

static void
leg_free(struct leg *leg, int answer)
{
	struct fanout *fo = leg->fo;

	if (leg->prev != NULL)
		leg->prev->next = leg->next;
	else
		leg->pool->legs = leg->next;
	if (leg->next != NULL)
		leg->next->prev = leg->prev;
	leg->conn->pending--;
	free(leg);
	fanout_unref(fo, answer);
}

static void
leg_error_cb(enum evhttp_request_error err, void *arg)
{
	struct leg *leg = arg;

	leg->error = err;
	leg->errored = 1;
}

static void
leg_done_cb(struct evhttp_request *resp, void *arg)
{
	struct leg *leg = arg;
	int code = resp ? evhttp_request_get_response_code(resp) : 0;
	char what[64];

	if (code != 0)
		leg_answered(leg, resp);
	else if (leg->errored && leg->error == EVREQ_HTTP_TIMEOUT) {
		snprintf(what, sizeof(what), "timed out after %llums",
		    (unsigned long long)leg->timeout_ms);
		leg_failed(leg, 504, what, NULL);
	} else
		leg_failed(leg, 502, "unreachable (connection failed or closed)", NULL);
	leg_record(leg, code);
	leg_free(leg, 1);
}

/*
 * Whole bodies in few syscalls, and no Nagle: without TCP_NODELAY the last
 * partial segment of a body waits for the upstream's delayed ACK (~40 ms per
 * request, measured).  The socket exists once evhttp has started connecting;
 * a reconnect brings a new one, tuned on its first request.
 */
static void
conn_tune(struct conn *c)
{
	struct bufferevent *bev = evhttp_connection_get_bufferevent(c->evcon);
	evutil_socket_t fd = bev != NULL ? bufferevent_getfd(bev) : -1;
	int one = 1;

	if (fd < 0 || fd == c->tuned_fd)
		return;
	bufferevent_set_max_single_write(bev, UPSTREAM_IO_CHUNK);
	bufferevent_set_max_single_read(bev, UPSTREAM_IO_CHUNK);
	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0)
		log_warn("upstream: TCP_NODELAY");
	c->tuned_fd = fd;
}

/* The request's headers; v1's content headers replace the 2.0 body's. */
static void
add_headers(struct evkeyvalq *h, const struct target *t,
    const struct upstream_request *req, const struct upstream_body *v1)
{
	const char *name, *value;

	evhttp_add_header(h, "Host", t->hostport);
	for (size_t i = 0; i < req->nheaders; i++) {
		name = req->headers[i].name;
		value = req->headers[i].value;
		if (v1 != NULL && strcmp(name, "Content-Type") == 0)
			value = v1->content_type;
		else if (v1 != NULL && strcmp(name, "X-Prometheus-Remote-Write-Version") == 0)
			value = v1->rw_version;
		evhttp_add_header(h, name, value);
	}
}

static time_t
mono_s(void)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return now.tv_sec;
}

/* The answer to an empty 2.0 request: only a 2.0 receiver sends the counts. */
static void
probe_done_cb(struct evhttp_request *resp, void *arg)
{
	struct target *t = arg;
	int code = resp ? evhttp_request_get_response_code(resp) : 0;
	uint64_t n[UPSTREAM_WRITTEN_N];

	t->probing = 0;
	t->probe_conn->pending--;
	t->rw2_proven = code >= 200 && code < 300 &&
	    written_read(evhttp_request_get_input_headers(resp), n) == WRITTEN_ALL;
	log_info("upstream %s (protocol: auto) answered an empty remote write 2.0 "
	    "request %d%s: sending it %s", t->url, code,
	    t->rw2_proven ? " with Written counts" : " without Written counts",
	    t->rw2_proven ? "2.0 as it comes" : "1.0 (down-converted)");
}

/* Snappy of an empty 2.0 Request (symbols [""]): nothing a receiver could lose. */
static const uint8_t probe_body[] = { 0x02, 0x04, 0x22, 0x00 };

/*
 * Freed by libevent, the target lives as long as the pool: a probe dropped
 * by upstream_pool_free() leaves nothing behind.
 */
static void
probe_start(struct upstream_pool *pool, struct target *t,
    const struct upstream_request *req, const struct timeval *tv)
{
	struct evhttp_request *ureq;
	time_t now = mono_s();

	if (t->probing || (t->probed != 0 && now - t->probed < UPSTREAM_PROBE_INTERVAL) ||
	    (t->probe_conn = target_conn(pool, t)) == NULL ||
	    (ureq = evhttp_request_new(probe_done_cb, t)) == NULL)
		return;
	t->probed = now;
	add_headers(evhttp_request_get_output_headers(ureq), t, req, NULL);
	evbuffer_add_reference(evhttp_request_get_output_buffer(ureq), probe_body,
	    sizeof(probe_body), NULL, NULL);
	evhttp_connection_set_timeout_tv(t->probe_conn->evcon, tv);
	if (evhttp_make_request(t->probe_conn->evcon, ureq, EVHTTP_REQ_POST, t->path) != 0)
		return;
	t->probing = 1;
	t->probe_conn->pending++;
}

/* What a leg sends: the 2.0 body (rw2) or its 1.0 form.  -1: no 1.0 form. */
static int
leg_variant(struct upstream_pool *pool, struct leg *leg,
    const struct upstream_request *req, const struct upstream_conf *conf,
    const struct timeval *tv)
{
	if (!req->rw2)
		return 0;
	if (conf->protocol == RW_PROTOCOL_V2 ||
	    (conf->protocol == RW_PROTOCOL_AUTO && leg->target->rw2_proven)) {
		leg->rw2 = 1;
		return 0;
	}
	if (conf->protocol == RW_PROTOCOL_AUTO)
		probe_start(pool, leg->target, req, tv);
	leg->v1 = req->v1;
	return req->v1 != NULL ? 0 : -1;
}

static struct evhttp_request *
leg_request(struct leg *leg, const struct upstream_request *req)
{
	struct evhttp_request *ureq = evhttp_request_new(leg_done_cb, leg);
	struct evkeyvalq *h;

	if (ureq == NULL)
		return NULL;
	evhttp_request_set_error_cb(ureq, leg_error_cb);
	h = evhttp_request_get_output_headers(ureq);
	add_headers(h, leg->target, req, leg->v1);
	/* Referenced, not copied: the body outlives every leg. */
	if (leg->v1 != NULL)
		evbuffer_add_reference(evhttp_request_get_output_buffer(ureq),
		    leg->v1->body, leg->v1->len, NULL, NULL);
	else
		evbuffer_add_reference(evhttp_request_get_output_buffer(ureq),
		    req->body, req->len, NULL, NULL);
	return ureq;
}

/* 0: the leg is libevent's now (it may even have finished already). */
static int
leg_start(struct upstream_pool *pool, struct fanout *fo,
    const struct upstream_request *req, size_t i)
{
	const struct upstream_conf *conf = &req->targets[i];
	struct target *t = pool_target(pool, conf->url);
	struct leg *leg;
	struct conn *c;
	struct evhttp_request *ureq;
	struct timeval tv;

	if (t == NULL || (c = target_conn(pool, t)) == NULL ||
	    (leg = calloc(1, sizeof(*leg))) == NULL)
		return -1;
	*leg = (struct leg){ .pool = pool, .fo = fo, .target = t, .conn = c,
	    .bit = (uint64_t)1 << i, .timeout_ms = conf->timeout_ms };
	role_name(leg->role, sizeof(leg->role), req->signal, i);
	tv.tv_sec = (time_t)(conf->timeout_ms / 1000);
	tv.tv_usec = (suseconds_t)(conf->timeout_ms % 1000) * 1000;
	if (leg_variant(pool, leg, req, conf, &tv) == -1 ||
	    (ureq = leg_request(leg, req)) == NULL) {
		free(leg);
		return -1;
	}
	evhttp_connection_set_timeout_tv(c->evcon, &tv);
	clock_gettime(CLOCK_MONOTONIC, &leg->start);
	if ((leg->next = pool->legs) != NULL)
		leg->next->prev = leg;
	pool->legs = leg;
	c->pending++;
	fo->refs++;
	if (evhttp_make_request(c->evcon, ureq, EVHTTP_REQ_POST, t->path) != 0) {
		/* No callback ran or will run.  ureq is freed when strdup
		 * failed and left unqueued (leaked) when connecting could not
		 * even begin: libevent 2.1 does not say which. */
		leg_free(leg, 0);
		return -1;
	}
	conn_tune(c);
	return 0;
}

int
upstream_forward(struct upstream_pool *pool, const struct upstream_request *req,
    upstream_done_cb done, void *arg)
{
	struct fanout *fo;
	size_t started = 0;
	char role[32];

	if (req->ntargets == 0 || req->ntargets > UPSTREAM_MAX_TARGETS ||
	    (fo = calloc(1, sizeof(*fo))) == NULL)
		return -1;
	fo->done = done;
	fo->arg = arg;
	fo->signal = req->signal;
	fo->refs = 1;	/* ours, until every leg is started */
	for (size_t i = 0; i < req->ntargets; i++) {
		if (req->skip & ((uint64_t)1 << i)) {
			fo->res.stored |= (uint64_t)1 << i;
			started++;
			continue;
		}
		if (leg_start(pool, fo, req, i) == 0) {
			started++;
			continue;
		}
		role_name(role, sizeof(role), req->signal, i);
		log_warnx("%s (%s): request could not be started", role, req->targets[i].url);
		fanout_fail(fo, role, 502, "could not be reached");
	}
	if (started == 0) {
		free(fo);	/* no leg started: no reference but ours */
		return -1;
	}
	fanout_unref(fo, 1);
	return 0;
}
