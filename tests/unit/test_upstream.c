/*
 * upstream: fan-out, status mapping, reasons, Written counts, and callbacks
 * that libevent runs inside evhttp_make_request().
 *
 * Each test runs one event base holding an upstream_pool and tiny in-test
 * upstreams (evhttp servers on 127.0.0.1:0) whose answer is set per test.
 * `done` is counted: it must run exactly once per upstream_forward() that
 * returned 0, and never for one that returned -1.  Run under ASan, the EMFILE
 * cases prove nothing is touched after it is freed: libevent 2.1's
 * evhttp_connection_connect_() calls evhttp_connection_cb_cleanup() when
 * socket() fails, which runs the request's callback before
 * evhttp_make_request() returns (http.c, evhttp_connection_connect_).
 */
#include <event2/buffer.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>
#include <errno.h>
#include <fcntl.h>
#include <cmocka.h>

#include "metrics.h"
#include "upstream.h"

#define MAX_FAKES	3
#define MAX_DUPS	4096

/* An in-test upstream: answers every request with status, body, headers. */
struct fake {
	struct evhttp	*http;
	int		 port;
	int		 status;
	const char	*body;
	const char	*retry_after;
	const char	*written[UPSTREAM_WRITTEN_N];	/* NULL: header not sent */
	int		 hang;				/* never answer */
	unsigned	 hits;
	char		 url[64];
};

struct world {
	struct event_base	*base;
	struct evdns_base	*dns;
	struct upstream_pool	*pool;
	struct fake		 fakes[MAX_FAKES];
	char			 refused_url[64];	/* nothing listens there */
};

struct outcome {
	unsigned		calls;
	struct upstream_result	res;
};

static void
fake_cb(struct evhttp_request *req, void *arg)
{
	static const char *const names[UPSTREAM_WRITTEN_N] = {
		"X-Prometheus-Remote-Write-Samples-Written",
		"X-Prometheus-Remote-Write-Histograms-Written",
		"X-Prometheus-Remote-Write-Exemplars-Written",
	};
	struct fake *f = arg;
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	struct evbuffer *out;

	f->hits++;
	if (f->hang)
		return;
	for (int i = 0; i < UPSTREAM_WRITTEN_N; i++)
		if (f->written[i] != NULL)
			evhttp_add_header(h, names[i], f->written[i]);
	if (f->retry_after != NULL)
		evhttp_add_header(h, "Retry-After", f->retry_after);
	out = evbuffer_new();
	assert_non_null(out);
	if (f->body != NULL)
		evbuffer_add(out, f->body, strlen(f->body));
	evhttp_send_reply(req, f->status, "fake", out);
	evbuffer_free(out);
}

static int
bound_port(evutil_socket_t fd)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);

	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	return ntohs(sin.sin_port);
}

static void
fake_start(struct world *w, struct fake *f)
{
	struct evhttp_bound_socket *bound;

	f->http = evhttp_new(w->base);
	assert_non_null(f->http);
	evhttp_set_gencb(f->http, fake_cb, f);
	bound = evhttp_bind_socket_with_handle(f->http, "127.0.0.1", 0);
	assert_non_null(bound);
	f->port = bound_port(evhttp_bound_socket_get_fd(bound));
	f->status = 204;
	snprintf(f->url, sizeof(f->url), "http://127.0.0.1:%d/api/v1/write", f->port);
}

/* A port that was just free: connecting to it is refused. */
static void
refused_url(char *dst, size_t dstsz)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	snprintf(dst, dstsz, "http://127.0.0.1:%d/api/v1/write", bound_port(fd));
	close(fd);
}

static int
setup(void **state)
{
	struct world *w = calloc(1, sizeof(*w));

	assert_non_null(w);
	w->base = event_base_new();
	assert_non_null(w->base);
	/* As the server runs it: an evdns base, which answers numeric hosts at once. */
	w->dns = evdns_base_new(w->base, 0);
	assert_non_null(w->dns);
	w->pool = upstream_pool_new(w->base, w->dns);
	assert_non_null(w->pool);
	for (int i = 0; i < MAX_FAKES; i++)
		fake_start(w, &w->fakes[i]);
	refused_url(w->refused_url, sizeof(w->refused_url));
	*state = w;
	return 0;
}

static int
teardown(void **state)
{
	struct world *w = *state;

	upstream_pool_free(w->pool);
	for (int i = 0; i < MAX_FAKES; i++)
		evhttp_free(w->fakes[i].http);
	evdns_base_free(w->dns, 0);
	event_base_free(w->base);
	free(w);
	return 0;
}

static void
done_cb(const struct upstream_result *res, void *arg)
{
	struct outcome *o = arg;

	o->calls++;
	o->res = *res;
}

static void
expire_cb(evutil_socket_t fd, short what, void *arg)
{
	*(int *)arg = 1;
}

/* Runs the loop until `done` ran (or 5 s), then a little longer: a second
 * call would show up there. */
static void
wait_done(struct world *w, struct outcome *o)
{
	int expired = 0;
	struct timeval limit = { 5, 0 }, settle = { 0, 50000 };
	struct event *ev = evtimer_new(w->base, expire_cb, &expired);

	assert_non_null(ev);
	evtimer_add(ev, &limit);
	while (o->calls == 0 && !expired)
		event_base_loop(w->base, EVLOOP_ONCE);
	expired = 0;
	evtimer_add(ev, &settle);
	while (!expired)
		event_base_loop(w->base, EVLOOP_ONCE);
	event_free(ev);
	assert_int_equal(o->calls, 1);
}

static struct upstream_request
request(enum signal sig, struct upstream_conf *confs, const char *const *urls, size_t n,
    uint64_t timeout_ms)
{
	static const uint8_t body[] = "a body the fakes do not read";
	struct upstream_request req = {
		.signal = sig, .targets = confs, .ntargets = n,
		.headers = { { "Content-Type", "application/x-protobuf" } }, .nheaders = 1,
		.body = body, .len = sizeof(body) - 1,
	};

	for (size_t i = 0; i < n; i++)
		confs[i] = (struct upstream_conf){ .url = (char *)(uintptr_t)urls[i],
		    .timeout_ms = timeout_ms };
	return req;
}

/* Forwards to urls and waits for the one `done`. */
static void
forward(struct world *w, enum signal sig, const char *const *urls, size_t n,
    uint64_t skip, uint64_t timeout_ms, struct outcome *o)
{
	struct upstream_conf confs[MAX_FAKES + 1];
	struct upstream_request req = request(sig, confs, urls, n, timeout_ms);

	req.skip = skip;
	memset(o, 0, sizeof(*o));
	assert_int_equal(upstream_forward(w->pool, &req, done_cb, o), 0);
	wait_done(w, o);
}

/* What a site reads must not name an internal address. */
static void
assert_no_address(const char *reason)
{
	if (strstr(reason, "127.0.0.1") != NULL || strstr(reason, "http://") != NULL ||
	    strstr(reason, "10.1.2.3") != NULL)
		fail_msg("reason names an address: [%s]", reason);
}

static void
test_all_accept(void **state)
{
	struct world *w = *state;
	const char *urls[] = { w->fakes[0].url, w->fakes[1].url };
	struct outcome o;

	forward(w, SIGNAL_METRICS, urls, 2, 0, 2000, &o);
	assert_int_equal(o.res.status, 204);
	assert_string_equal(o.res.reason, "");
	assert_string_equal(o.res.retry_after, "");
	assert_int_equal(o.res.stored, 0x3);
	assert_int_equal(w->fakes[0].hits, 1);
	assert_int_equal(w->fakes[1].hits, 1);
}

static void
test_5xx_body_not_relayed(void **state)
{
	struct world *w = *state;
	const char *urls[] = { w->fakes[0].url };
	struct outcome o;

	w->fakes[0].status = 500;
	w->fakes[0].body = "failed pushing to ingester 10.1.2.3:9095: tsdb is sad\n";
	forward(w, SIGNAL_METRICS, urls, 1, 0, 2000, &o);
	assert_int_equal(o.res.status, 500);
	assert_string_equal(o.res.reason, "metrics upstream 1 answered 500");
	assert_string_equal(o.res.retry_after, "5");
	assert_int_equal(o.res.stored, 0);
}

static void
test_400_first_line_relayed(void **state)
{
	struct world *w = *state;
	const char *urls[] = { w->fakes[0].url };
	struct outcome o;

	/* Prometheus' write handler answers bad data 400 with the error text. */
	w->fakes[0].status = 400;
	w->fakes[0].body = "out of order sample\nsecond line\n";
	forward(w, SIGNAL_METRICS, urls, 1, 0, 2000, &o);
	assert_int_equal(o.res.status, 400);
	assert_string_equal(o.res.reason, "metrics upstream 1 answered 400: out of order sample");
	assert_string_equal(o.res.retry_after, "");
}

static void
test_400_line_bounded_and_printable(void **state)
{
	struct world *w = *state;
	const char *urls[] = { w->fakes[0].url };
	static char body[4096];
	struct outcome o;

	memset(body, 'x', sizeof(body) - 1);
	body[3] = '\x1b';
	body[4] = '\t';
	w->fakes[0].status = 413;
	w->fakes[0].body = body;
	forward(w, SIGNAL_LOGS, urls, 1, 0, 2000, &o);
	assert_int_equal(o.res.status, 413);
	assert_true(strncmp(o.res.reason, "logs upstream 1 answered 413: xxx??xx", 37) == 0);
	assert_true(strlen(o.res.reason) < 200);
	for (const char *p = o.res.reason; *p; p++)
		assert_true(*p >= 0x20 && *p < 0x7f);
}

static void
test_429_keeps_retry_after(void **state)
{
	struct world *w = *state;
	const char *urls[] = { w->fakes[0].url };
	struct outcome o;

	w->fakes[0].status = 429;
	w->fakes[0].body = "ingestion rate limit exceeded";
	w->fakes[0].retry_after = "7";
	forward(w, SIGNAL_LOGS, urls, 1, 0, 2000, &o);
	assert_int_equal(o.res.status, 429);
	assert_string_equal(o.res.retry_after, "7");
}

static void
test_misconfigured_4xx_is_502(void **state)
{
	struct world *w = *state;
	static const int codes[] = { 401, 403, 404, 405, 407, 415, 422, 301 };
	const char *urls[] = { w->fakes[0].url };
	char want[128], last[1024], line[256], *page;
	struct outcome o;
	size_t len;

	metrics_init();
	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
		w->fakes[0].status = codes[i];
		w->fakes[0].body = "no org id";
		forward(w, SIGNAL_METRICS, urls, 1, 0, 2000, &o);
		assert_int_equal(o.res.status, 502);
		assert_string_equal(o.res.retry_after, "5");
		snprintf(want, sizeof(want), "metrics upstream 1 answered %d: ", codes[i]);
		assert_true(strncmp(o.res.reason, want, strlen(want)) == 0);
		assert_no_address(o.res.reason);
		assert_int_equal(upstream_last_misconfigured(last, sizeof(last)), 1);
		snprintf(want, sizeof(want), "metrics upstream 1 (%s) answered %d: ",
		    w->fakes[0].url, codes[i]);
		if (strstr(last, want) == NULL)
			fail_msg("[%s] not in [%s]", want, last);
	}
	w->fakes[0].status = 401;
	forward(w, SIGNAL_METRICS, urls, 1, 0, 2000, &o);
	upstream_last_misconfigured(last, sizeof(last));
	assert_non_null(strstr(last, "answered 401: check tenant / credentials"));
	page = metrics_render(&len);
	assert_non_null(page);
	snprintf(line, sizeof(line),
	    "\nkakikomi_upstream_misconfigured_total{upstream=\"metrics upstream 1\",status=\"401\"} 2\n");
	if (strstr(page, line) == NULL)
		fail_msg("[%s] not in:\n%s", line, page);
	free(page);
	/* A caller's small buffer is filled, not overrun. */
	assert_int_equal(upstream_last_misconfigured(last, 8), 1);
	assert_int_equal(strlen(last), 7);
}

static void
test_misconfigured_beats_data_refusal(void **state)
{
	struct world *w = *state;
	const char *urls[] = { w->fakes[0].url, w->fakes[1].url };
	struct outcome o;

	w->fakes[0].status = 400;
	w->fakes[0].body = "out of order sample";
	w->fakes[1].status = 404;
	forward(w, SIGNAL_METRICS, urls, 2, 0, 2000, &o);
	assert_int_equal(o.res.status, 502);
	assert_non_null(strstr(o.res.reason, "metrics upstream 2 answered 404"));
	assert_string_equal(o.res.retry_after, "5");
}

static void
test_5xx_beats_4xx(void **state)
{
	struct world *w = *state;
	const char *urls[] = { w->fakes[0].url, w->fakes[1].url };
	struct outcome o;

	w->fakes[0].status = 400;
	w->fakes[1].status = 500;
	forward(w, SIGNAL_LOGS, urls, 2, 0, 2000, &o);
	assert_int_equal(o.res.status, 500);
	assert_string_equal(o.res.reason, "logs upstream 2 answered 500");
}

static void
test_timeout(void **state)
{
	struct world *w = *state;
	const char *urls[] = { w->fakes[0].url };
	struct outcome o;

	w->fakes[0].hang = 1;
	forward(w, SIGNAL_METRICS, urls, 1, 0, 200, &o);
	assert_int_equal(o.res.status, 504);
	assert_string_equal(o.res.reason, "metrics upstream 1 timed out after 200ms");
	assert_string_equal(o.res.retry_after, "5");
}

static void
test_connection_refused(void **state)
{
	struct world *w = *state;
	const char *urls[] = { w->fakes[0].url, w->refused_url };
	struct outcome o;

	forward(w, SIGNAL_LOGS, urls, 2, 0, 2000, &o);
	assert_int_equal(o.res.status, 502);
	assert_string_equal(o.res.reason,
	    "logs upstream 2 unreachable (connection failed or closed)");
	assert_int_equal(o.res.stored, 0x1);
}

static void
test_written_minimum(void **state)
{
	struct world *w = *state;
	const char *urls[] = { w->fakes[0].url, w->fakes[1].url };
	struct outcome o;

	w->fakes[0].written[0] = "10";
	w->fakes[0].written[1] = "2";
	w->fakes[0].written[2] = "1";
	w->fakes[1].written[0] = "7";
	w->fakes[1].written[1] = "3";
	w->fakes[1].written[2] = "1";
	forward(w, SIGNAL_METRICS, urls, 2, 0, 2000, &o);
	assert_int_equal(o.res.status, 204);
	assert_string_equal(o.res.written[0], "7");
	assert_string_equal(o.res.written[1], "2");
	assert_string_equal(o.res.written[2], "1");
}

static void
test_written_only_when_every_leg_sent_it(void **state)
{
	struct world *w = *state;
	const char *urls[] = { w->fakes[0].url, w->fakes[1].url };
	struct outcome o;

	/* fakes[1] is a 1.0 receiver (no headers); a count it did not give
	 * must not be reported for it.  "+5" is not a count. */
	w->fakes[0].written[0] = "10";
	w->fakes[0].written[1] = "0";
	w->fakes[1].written[1] = "+5";
	forward(w, SIGNAL_METRICS, urls, 2, 0, 2000, &o);
	assert_int_equal(o.res.status, 204);
	assert_string_equal(o.res.written[0], "");
	assert_string_equal(o.res.written[1], "");
	assert_string_equal(o.res.written[2], "");
}

static void
test_written_skipped_leg_adds_nothing(void **state)
{
	struct world *w = *state;
	const char *urls[] = { w->fakes[0].url, w->fakes[1].url };
	struct outcome o;

	w->fakes[1].written[0] = "4";
	forward(w, SIGNAL_METRICS, urls, 2, 0x1, 2000, &o);
	assert_int_equal(o.res.status, 204);
	assert_int_equal(w->fakes[0].hits, 0);
	assert_int_equal(o.res.stored, 0x3);
	assert_string_equal(o.res.written[0], "4");
	assert_string_equal(o.res.written[1], "");
}

/*
 * Descriptors exhausted: RLIMIT_NOFILE lowered just above the highest open
 * descriptor and the rest filled with dup()s, so the next socket() fails
 * with EMFILE.
 */
struct exhausted {
	struct rlimit	saved;
	int		fds[MAX_DUPS];
	int		n;
};

static void
fds_exhaust(struct exhausted *x)
{
	struct rlimit low;
	int probe = open("/dev/null", O_RDONLY), fd;

	assert_true(probe >= 0);
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &x->saved), 0);
	low = x->saved;
	low.rlim_cur = (rlim_t)probe + 16;
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
	x->n = 0;
	x->fds[x->n++] = probe;
	while (x->n < MAX_DUPS && (fd = dup(probe)) >= 0)
		x->fds[x->n++] = fd;
	assert_int_equal(errno, EMFILE);
}

static void
fds_restore(struct exhausted *x)
{
	while (x->n > 0)
		close(x->fds[--x->n]);
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &x->saved), 0);
}

/* Forwards with no descriptor left; upstream_forward must return 0 with
 * `done` already run, or -1 without it. */
static int
forward_exhausted(struct world *w, const char *const *urls, size_t n, struct outcome *o)
{
	struct upstream_conf confs[MAX_FAKES + 1];
	struct upstream_request req = request(SIGNAL_METRICS, confs, urls, n, 2000);
	struct exhausted x;
	int rc;

	memset(o, 0, sizeof(*o));
	fds_exhaust(&x);
	rc = upstream_forward(w->pool, &req, done_cb, o);
	fds_restore(&x);
	return rc;
}

static void
test_emfile_single_target(void **state)
{
	struct world *w = *state;
	const char *urls[] = { w->fakes[0].url };
	struct outcome o;

	assert_int_equal(forward_exhausted(w, urls, 1, &o), 0);
	assert_int_equal(o.calls, 1);	/* before upstream_forward returned */
	assert_int_equal(o.res.status, 502);
	assert_no_address(o.res.reason);
	wait_done(w, &o);		/* and never again */
	assert_int_equal(w->fakes[0].hits, 0);
	/* The pool still works once descriptors are back. */
	forward(w, SIGNAL_METRICS, urls, 1, 0, 2000, &o);
	assert_int_equal(o.res.status, 204);
}

/* One leg on a kept-alive connection (needs no descriptor), one failing
 * inside evhttp_make_request, in both orders. */
static void
test_emfile_fanout(void **state)
{
	struct world *w = *state;
	const char *warm[] = { w->fakes[0].url };
	const char *orders[2][2] = {
		{ w->fakes[0].url, w->fakes[1].url },
		{ w->fakes[1].url, w->fakes[0].url },
	};
	struct outcome o;

	for (int k = 0; k < 2; k++) {
		forward(w, SIGNAL_METRICS, warm, 1, 0, 2000, &o);
		assert_int_equal(o.res.status, 204);
		assert_int_equal(forward_exhausted(w, orders[k], 2, &o), 0);
		assert_int_equal(o.calls, 0);	/* the kept-alive leg is still out */
		wait_done(w, &o);
		assert_int_equal(o.res.status, 502);
		assert_int_equal(o.res.stored, k == 0 ? 0x1 : 0x2);
		assert_int_equal(w->fakes[0].hits, (unsigned)(2 * (k + 1)));
		assert_int_equal(w->fakes[1].hits, 0);
		assert_no_address(o.res.reason);
	}
}

/* A pool freed with a forward in flight frees it without calling done. */
static void
test_pool_free_in_flight(void **state)
{
	struct world *w = *state;
	const char *urls[] = { w->fakes[0].url, w->fakes[1].url };
	struct upstream_conf confs[2];
	struct upstream_request req = request(SIGNAL_METRICS, confs, urls, 2, 2000);
	struct outcome o = { 0 };

	w->fakes[0].hang = 1;
	assert_int_equal(upstream_forward(w->pool, &req, done_cb, &o), 0);
	for (int i = 0; i < 20 && w->fakes[0].hits == 0; i++)
		event_base_loop(w->base, EVLOOP_ONCE);
	upstream_pool_free(w->pool);
	w->pool = upstream_pool_new(w->base, w->dns);
	assert_non_null(w->pool);
	assert_int_equal(o.calls, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_all_accept, setup, teardown),
		cmocka_unit_test_setup_teardown(test_5xx_body_not_relayed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_400_first_line_relayed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_400_line_bounded_and_printable, setup, teardown),
		cmocka_unit_test_setup_teardown(test_429_keeps_retry_after, setup, teardown),
		cmocka_unit_test_setup_teardown(test_misconfigured_4xx_is_502, setup, teardown),
		cmocka_unit_test_setup_teardown(test_misconfigured_beats_data_refusal, setup, teardown),
		cmocka_unit_test_setup_teardown(test_5xx_beats_4xx, setup, teardown),
		cmocka_unit_test_setup_teardown(test_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_connection_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_written_minimum, setup, teardown),
		cmocka_unit_test_setup_teardown(test_written_only_when_every_leg_sent_it, setup, teardown),
		cmocka_unit_test_setup_teardown(test_written_skipped_leg_adds_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_emfile_single_target, setup, teardown),
		cmocka_unit_test_setup_teardown(test_emfile_fanout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pool_free_in_flight, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
