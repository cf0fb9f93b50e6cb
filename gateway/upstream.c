/* upstream: keep-alive pools and fan-out to Prometheus / Loki.  See upstream.h. */
#include "upstream.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "metrics.h"

#define TARGET_MAX_CONNS	64	/* per upstream URL and worker */
#define UPSTREAM_MAX_RESPONSE	(1024 * 1024)
#define RETRY_AFTER_DEFAULT	"5"
#define UPSTREAM_IO_CHUNK	(1024 * 1024)	/* libevent's default is 16 KiB */

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
};

struct upstream_pool {
	struct event_base	*base;
	struct evdns_base	*dns;
	struct target		*targets;
};

struct fanout {
	upstream_done_cb	 done;
	void			*arg;
	size_t			 outstanding;
	enum signal		 signal;
	int			 fail_status;	/* worst 5xx seen, 0 if none */
	int			 client_status;	/* first 4xx seen, 0 if none */
	struct upstream_result	 res;
};

struct leg {
	struct fanout		*fo;
	struct target		*target;
	struct conn		*conn;
	uint64_t		 bit;		/* this target's bit in res.stored */
	uint64_t		 timeout_ms;
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

/* Copies the first line of an upstream's answer, printable ASCII only. */
static void
first_line(struct evbuffer *buf, char *dst, size_t dstsz)
{
	unsigned char tmp[200];
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
}

static void
leg_failed(struct leg *leg, int status, const char *what)
{
	struct fanout *fo = leg->fo;

	if (fo->fail_status == 0 || (fo->fail_status >= 502 && status < 502)) {
		fo->fail_status = status;
		snprintf(fo->res.reason, sizeof(fo->res.reason), "upstream %s %s",
		    leg->target->url, what);
	}
}

static void
leg_answered(struct leg *leg, struct evhttp_request *resp)
{
	struct fanout *fo = leg->fo;
	struct evkeyvalq *h = evhttp_request_get_input_headers(resp);
	int code = evhttp_request_get_response_code(resp);
	const char *ra = evhttp_find_header(h, "Retry-After");
	char line[200], what[260];
	static const char *const written[3] = {
		"X-Prometheus-Remote-Write-Samples-Written",
		"X-Prometheus-Remote-Write-Histograms-Written",
		"X-Prometheus-Remote-Write-Exemplars-Written",
	};

	if (ra != NULL && strlen(ra) < sizeof(fo->res.retry_after))
		snprintf(fo->res.retry_after, sizeof(fo->res.retry_after), "%s", ra);
	if (code >= 200 && code < 300) {
		fo->res.stored |= leg->bit;
		for (int i = 0; i < 3; i++) {
			const char *v = evhttp_find_header(h, written[i]);
			if (v != NULL && fo->res.written[i][0] == '\0')
				snprintf(fo->res.written[i], sizeof(fo->res.written[i]), "%s", v);
		}
		return;
	}
	first_line(evhttp_request_get_input_buffer(resp), line, sizeof(line));
	snprintf(what, sizeof(what), "answered %d: %s", code, line);
	if (code >= 500 || code < 200) {
		leg_failed(leg, code >= 500 && code < 600 ? code : 502, what);
	} else if (fo->client_status == 0) {
		fo->client_status = code;
		if (fo->fail_status == 0)
			snprintf(fo->res.reason, sizeof(fo->res.reason), "upstream %s %s",
			    leg->target->url, what);
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
		if (res->status != 429 && res->status != 503)
			res->retry_after[0] = '\0';
	} else {
		res->status = 204;
		res->reason[0] = '\0';
		res->retry_after[0] = '\0';
	}
	fo->done(res, fo->arg);
	free(fo);
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
	struct fanout *fo = leg->fo;
	int code = resp ? evhttp_request_get_response_code(resp) : 0;
	char what[64];

	leg->conn->pending--;
	if (code == 0) {
		if (leg->errored && leg->error == EVREQ_HTTP_TIMEOUT) {
			snprintf(what, sizeof(what), "timed out after %llums",
			    (unsigned long long)leg->timeout_ms);
			leg_failed(leg, 504, what);
		} else
			leg_failed(leg, 502, "unreachable (connection failed or closed)");
	} else
		leg_answered(leg, resp);
	leg_record(leg, code);
	free(leg);
	if (--fo->outstanding == 0)
		fanout_finish(fo);
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

static int
leg_start(struct upstream_pool *pool, struct fanout *fo,
    const struct upstream_request *req, size_t i)
{
	const struct upstream_conf *conf = &req->targets[i];
	struct target *t = pool_target(pool, conf->url);
	struct leg *leg;
	struct evhttp_request *ureq;
	struct evkeyvalq *h;
	struct timeval tv;

	if (t == NULL || (leg = calloc(1, sizeof(*leg))) == NULL)
		return -1;
	leg->fo = fo;
	leg->target = t;
	leg->bit = (uint64_t)1 << i;
	leg->timeout_ms = conf->timeout_ms;
	if ((leg->conn = target_conn(pool, t)) == NULL ||
	    (ureq = evhttp_request_new(leg_done_cb, leg)) == NULL) {
		free(leg);
		return -1;
	}
	evhttp_request_set_error_cb(ureq, leg_error_cb);
	tv.tv_sec = (time_t)(conf->timeout_ms / 1000);
	tv.tv_usec = (suseconds_t)(conf->timeout_ms % 1000) * 1000;
	evhttp_connection_set_timeout_tv(leg->conn->evcon, &tv);
	h = evhttp_request_get_output_headers(ureq);
	evhttp_add_header(h, "Host", t->hostport);
	for (size_t h_i = 0; h_i < req->nheaders; h_i++)
		evhttp_add_header(h, req->headers[h_i].name, req->headers[h_i].value);
	/* Referenced, not copied: the body outlives every leg. */
	evbuffer_add_reference(evhttp_request_get_output_buffer(ureq), req->body,
	    req->len, NULL, NULL);
	clock_gettime(CLOCK_MONOTONIC, &leg->start);
	if (evhttp_make_request(leg->conn->evcon, ureq, EVHTTP_REQ_POST, t->path) != 0) {
		/* evhttp has freed ureq */
		free(leg);
		return -1;
	}
	conn_tune(leg->conn);
	leg->conn->pending++;
	fo->outstanding++;
	return 0;
}

int
upstream_forward(struct upstream_pool *pool, const struct upstream_request *req,
    upstream_done_cb done, void *arg)
{
	struct fanout *fo;
	size_t started = 0;

	if (req->ntargets == 0 || req->ntargets > UPSTREAM_MAX_TARGETS ||
	    (fo = calloc(1, sizeof(*fo))) == NULL)
		return -1;
	fo->done = done;
	fo->arg = arg;
	fo->signal = req->signal;
	/* Hold one count ourselves so a leg failing synchronously cannot finish early. */
	fo->outstanding = 1;
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
		log_warnx("upstream %s: request could not be started", req->targets[i].url);
		if (fo->fail_status == 0) {
			fo->fail_status = 502;
			snprintf(fo->res.reason, sizeof(fo->res.reason),
			    "upstream %s could not be reached", req->targets[i].url);
		}
	}
	if (started == 0) {
		free(fo);
		return -1;
	}
	if (--fo->outstanding == 0)
		fanout_finish(fo);
	return 0;
}
