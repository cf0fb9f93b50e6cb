/*
 * jwks_fetch: fetch a key set once through jwks.c, as kakikomi would.
 *
 *   jwks_fetch URL [CA_FILE [CACHE_FILE]]
 *
 * CA_FILE may be "" for none; CACHE_FILE is access.certs_cache (loaded at
 * start, written after a successful https fetch).
 * Runs jwks.c on its own event base.  Prints the kid of every key loaded, one
 * per line, and exits 0; exits 1 when the fetch fails (jwks.c logs why on
 * stderr) or nothing happens within 30 s.  The end of a failed fetch is seen
 * through kakikomi_jwks_refresh_total{result="error"}.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "jwks.h"
#include "keyset.h"
#include "metrics.h"

#define POLL_MS		20
#define DEADLINE_S	30

struct state {
	struct jwks		*j;
	struct event_base	*base;
	int			 polls;
	int			 rc;
};

static int
fetch_failed(void)
{
	static const char series[] = "kakikomi_jwks_refresh_total{result=\"error\"} ";
	size_t len;
	char *text = metrics_render(&len);
	int failed = text != NULL && strstr(text, series) != NULL;

	free(text);
	return failed;
}

static void
poll_cb(evutil_socket_t fd, short what, void *arg)
{
	struct state *s = arg;
	struct keyset *ks = jwks_current(s->j);

	if (ks != NULL) {
		for (size_t i = 0; i < keyset_count(ks); i++)
			printf("%s\n", keyset_kid(ks, i));
		keyset_unref(ks);
		s->rc = 0;
	} else if (fetch_failed()) {
		fprintf(stderr, "jwks_fetch: fetch failed\n");
	} else if (++s->polls < DEADLINE_S * 1000 / POLL_MS) {
		return;
	} else {
		fprintf(stderr, "jwks_fetch: no key set after %d s\n", DEADLINE_S);
	}
	event_base_loopbreak(s->base);
}

int
main(int argc, char **argv)
{
	struct access_conf conf = { .refresh_interval_ms = 3600 * 1000 };
	struct timeval tv = { 0, POLL_MS * 1000 };
	struct state s = { .rc = 1 };
	struct event *poll;

	if (argc < 2 || argc > 4) {
		fprintf(stderr, "usage: jwks_fetch URL [CA_FILE [CACHE_FILE]]\n");
		return 2;
	}
	conf.certs_url = argv[1];
	conf.certs_ca_file = argc >= 3 && *argv[2] ? argv[2] : NULL;
	conf.certs_cache = argc == 4 ? argv[3] : NULL;
	evthread_use_pthreads();
	metrics_init();
	if ((s.base = event_base_new()) == NULL ||
	    (s.j = jwks_new(s.base, &conf)) == NULL ||
	    (poll = event_new(s.base, -1, EV_PERSIST, poll_cb, &s)) == NULL) {
		fprintf(stderr, "jwks_fetch: out of memory\n");
		return 1;
	}
	jwks_start(s.j);
	event_add(poll, &tv);
	event_base_dispatch(s.base);
	event_free(poll);
	jwks_free(s.j);
	event_base_free(s.base);
	return s.rc;
}
