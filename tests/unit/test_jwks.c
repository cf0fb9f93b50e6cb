/*
 * Unit tests for jwks.c's life cycle with file:// key sets (HTTPS is covered
 * by tests/integration/test_jwks_https.sh): certs_cache at start, a failed
 * refresh keeps the current set, unknown-kid refetches are rate-limited,
 * reconfigure refetches, the refresh timer picks up a new set, and the fetch
 * deadline ends an https fetch to a server that never answers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cmocka.h>
#include <event2/event.h>
#include <jansson.h>

#include "jwks.h"
#include "keyset.h"
#include "metrics.h"

#define CERTS	"../shared/testdata/access/certs.json"
#define KID_CUR	"bde1208c5754a3743ba25199825e1a8ca9a481bcdd4125639af1849e74d4bb11"

struct fixture {
	char			 dir[64];
	char			 path[128];	/* the key set file */
	char			 url[160];
	char			 cache[128];
	struct access_conf	 conf;
	struct event_base	*base;
	struct jwks		*j;
};

static void
write_file(const char *path, const char *data)
{
	FILE *f = fopen(path, "w");

	if (f == NULL || fputs(data, f) < 0 || fclose(f) != 0)
		fail_msg("cannot write %s", path);
}

/* certs.json with only its first key, as text (caller frees). */
static char *
one_key_set(void)
{
	json_t *doc = json_load_file(CERTS, 0, NULL);
	char *s;

	assert_non_null(doc);
	json_array_remove(json_object_get(doc, "keys"), 1);
	s = json_dumps(doc, 0);
	json_decref(doc);
	return s;
}

static void
copy_certs(const char *to)
{
	json_t *doc = json_load_file(CERTS, 0, NULL);

	assert_non_null(doc);
	assert_int_equal(json_dump_file(doc, to, 0), 0);
	json_decref(doc);
}

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (f == NULL)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/test_jwks.XXXXXX");
	if (mkdtemp(f->dir) == NULL)
		return -1;
	snprintf(f->path, sizeof(f->path), "%s/certs.json", f->dir);
	snprintf(f->url, sizeof(f->url), "file://%s", f->path);
	snprintf(f->cache, sizeof(f->cache), "%s/cache.json", f->dir);
	f->conf.certs_url = f->url;
	f->conf.refresh_interval_ms = 3600 * 1000;
	if ((f->base = event_base_new()) == NULL)
		return -1;
	metrics_init();
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	jwks_free(f->j);
	event_base_free(f->base);
	unlink(f->path);
	unlink(f->cache);
	rmdir(f->dir);
	free(f);
	return 0;
}

/* Keys in the current set, 0 when none. */
static size_t
nkeys(struct jwks *j)
{
	struct keyset *ks = jwks_current(j);
	size_t n = ks != NULL ? keyset_count(ks) : 0;

	keyset_unref(ks);
	return n;
}

/* kakikomi_jwks_refresh_total{result="error"}: failed fetches so far. */
static double
refresh_errors(void)
{
	static const char series[] = "kakikomi_jwks_refresh_total{result=\"error\"} ";
	size_t len;
	char *text = metrics_render(&len), *p;
	double v = 0;

	assert_non_null(text);
	if ((p = strstr(text, series)) != NULL)
		v = strtod(p + strlen(series), NULL);
	free(text);
	return v;
}

static void
run_for_ms(struct event_base *base, long ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	event_base_loopexit(base, &tv);
	event_base_dispatch(base);
}

static void
start(struct fixture *f)
{
	f->j = jwks_new(f->base, &f->conf);
	assert_non_null(f->j);
	jwks_start(f->j);
}

static void
test_loads_file(void **state)
{
	struct fixture *f = *state;
	struct keyset *ks;

	copy_certs(f->path);
	start(f);
	ks = jwks_current(f->j);
	assert_non_null(ks);
	assert_int_equal(keyset_count(ks), 2);
	assert_string_equal(keyset_kid(ks, 0), KID_CUR);
	keyset_unref(ks);
}

static void
test_nothing_loaded(void **state)
{
	struct fixture *f = *state;

	write_file(f->path, "{\"keys\":[]}");
	start(f);
	assert_null(jwks_current(f->j));
}

static void
test_cache_at_start(void **state)
{
	struct fixture *f = *state;

	/* the key server is down (no file), the last good set is on disk */
	copy_certs(f->cache);
	f->conf.certs_cache = f->cache;
	start(f);
	assert_int_equal(nkeys(f->j), 2);
	/* a broken cache file is ignored */
	jwks_free(f->j);
	write_file(f->cache, "{\"keys\":");
	start(f);
	assert_int_equal(nkeys(f->j), 0);
}

static void
test_failed_refresh_keeps_set_and_rate_limit(void **state)
{
	struct fixture *f = *state;
	char *one = one_key_set();
	double errors;

	copy_certs(f->path);
	start(f);
	assert_int_equal(nkeys(f->j), 2);

	errors = refresh_errors();
	write_file(f->path, "not json");
	assert_int_equal(jwks_request_refresh(f->j), 1);
	event_base_loop(f->base, EVLOOP_NONBLOCK);
	assert_true(refresh_errors() == errors + 1);
	assert_int_equal(nkeys(f->j), 2);

	/* a second unknown kid within 30 s does not refetch */
	write_file(f->path, one);
	assert_int_equal(jwks_request_refresh(f->j), 0);
	event_base_loop(f->base, EVLOOP_NONBLOCK);
	assert_true(refresh_errors() == errors + 1);
	assert_int_equal(nkeys(f->j), 2);
	free(one);
}

static void
test_reconfigure_refetches(void **state)
{
	struct fixture *f = *state;
	char *one = one_key_set();
	char other[160], url[200];

	copy_certs(f->path);
	start(f);
	assert_int_equal(nkeys(f->j), 2);
	snprintf(other, sizeof(other), "%s/one.json", f->dir);
	snprintf(url, sizeof(url), "file://%s", other);
	write_file(other, one);
	f->conf.certs_url = url;
	jwks_reconfigure(f->j, &f->conf);
	assert_int_equal(nkeys(f->j), 1);
	unlink(other);
	free(one);
}

static void
test_refresh_timer(void **state)
{
	struct fixture *f = *state;
	char *one = one_key_set();

	copy_certs(f->path);
	f->conf.refresh_interval_ms = 1000;
	start(f);
	assert_int_equal(nkeys(f->j), 2);
	write_file(f->path, one);
	run_for_ms(f->base, 500);
	assert_int_equal(nkeys(f->j), 2);
	run_for_ms(f->base, 800);
	assert_int_equal(nkeys(f->j), 1);
	free(one);
}

static double
mono_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* A loopback socket that listens and never accepts: the kernel completes the
 * TCP handshake, then the TLS ClientHello waits for ever.  Sets *port. */
static int
silent_listener(int *port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0 ||
	    listen(fd, 4) != 0 ||
	    getsockname(fd, (struct sockaddr *)&sin, &len) != 0)
		fail_msg("cannot listen on loopback");
	*port = ntohs(sin.sin_port);
	return fd;
}

/*
 * The fetch deadline, not the 10 s idle timeout, ends a fetch that makes no
 * progress, and the refresh queued behind it (a reconfigure to another URL
 * while the fetch was in flight) then runs.  Without the deadline the
 * reconfigured set would wait for the idle timeout; with a server that
 * trickles bytes (tests/integration/test_jwks_deadline.sh), for ever.
 */
static void
test_fetch_deadline(void **state)
{
	struct fixture *f = *state;
	char url[64];
	double errors = refresh_errors(), t0, took;
	int port, fd = silent_listener(&port);

	snprintf(url, sizeof(url), "https://127.0.0.1:%d/certs", port);
	copy_certs(f->path);
	f->conf.certs_url = url;
	f->conf.fetch_timeout_ms = 300;
	t0 = mono_s();
	start(f);
	f->conf.certs_url = f->url;
	jwks_reconfigure(f->j, &f->conf);
	assert_int_equal(nkeys(f->j), 0);
	while (nkeys(f->j) == 0 && mono_s() - t0 < 8)
		run_for_ms(f->base, 20);
	took = mono_s() - t0;
	assert_int_equal(nkeys(f->j), 2);
	assert_true(refresh_errors() == errors + 1);
	if (took < 0.3 || took > 3)
		fail_msg("the stalled fetch ended after %.2f s, expected ~0.3 s", took);
	close(fd);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_loads_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_nothing_loaded, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cache_at_start, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failed_refresh_keeps_set_and_rate_limit,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_reconfigure_refetches, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refresh_timer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fetch_deadline, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
