/* healthcheck: one GET for container health checks.  See healthcheck.h. */
#include "healthcheck.h"

#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include <stdio.h>
#include <string.h>

#define HEALTHCHECK_TIMEOUT_S 5

struct probe {
	struct event_base	*base;
	int			 status;
};

static void
probe_done(struct evhttp_request *req, void *arg)
{
	struct probe *p = arg;

	p->status = req ? evhttp_request_get_response_code(req) : 0;
	event_base_loopexit(p->base, NULL);
}

int
healthcheck_run(const char *url)
{
	struct evhttp_uri *uri = evhttp_uri_parse(url);
	struct probe p = { .base = event_base_new() };
	struct evhttp_connection *evcon = NULL;
	struct evhttp_request *req;
	const char *path;
	int port;

	if (uri == NULL || p.base == NULL || evhttp_uri_get_host(uri) == NULL ||
	    evhttp_uri_get_scheme(uri) == NULL || strcmp(evhttp_uri_get_scheme(uri), "http") != 0) {
		fprintf(stderr, "kakikomi: healthcheck: %s is not an http:// URL\n", url);
		goto out;
	}
	port = evhttp_uri_get_port(uri) > 0 ? evhttp_uri_get_port(uri) : 80;
	path = evhttp_uri_get_path(uri);
	evcon = evhttp_connection_base_new(p.base, NULL, evhttp_uri_get_host(uri),
	    (unsigned short)port);
	if (evcon == NULL || (req = evhttp_request_new(probe_done, &p)) == NULL)
		goto out;
	evhttp_connection_set_timeout(evcon, HEALTHCHECK_TIMEOUT_S);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Host",
	    evhttp_uri_get_host(uri));
	if (evhttp_make_request(evcon, req, EVHTTP_REQ_GET,
	    path && *path ? path : "/") == 0)
		event_base_dispatch(p.base);
	if (p.status < 200 || p.status >= 300)
		fprintf(stderr, "kakikomi: healthcheck: %s answered %d\n", url, p.status);
out:
	if (evcon)
		evhttp_connection_free(evcon);
	if (uri)
		evhttp_uri_free(uri);
	if (p.base)
		event_base_free(p.base);
	return p.status >= 200 && p.status < 300 ? 0 : 1;
}
