/* admin: metrics, health and reload endpoints.  See admin.h. */
#include "admin.h"

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/util.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keyset.h"
#include "log.h"
#include "metrics.h"

struct admin {
	struct evhttp	*http;
	struct jwks	*jwks;
	admin_reload_fn	 reload;
	void		*arg;
};

static void
answer(struct evhttp_request *req, int code, const char *phrase,
    const char *ctype, const char *text, size_t len)
{
	struct evbuffer *b = evbuffer_new();

	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", ctype);
	if (b != NULL)
		evbuffer_add(b, text, len);
	evhttp_send_reply(req, code, phrase, b);
	if (b != NULL)
		evbuffer_free(b);
}

static void
text(struct evhttp_request *req, int code, const char *phrase, const char *line)
{
	char buf[300];
	int n = snprintf(buf, sizeof(buf), "%s\n", line);

	answer(req, code, phrase, "text/plain; charset=utf-8", buf,
	    n < 0 ? 0 : (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1);
}

static void
metrics_page(struct evhttp_request *req)
{
	size_t len;
	char *page = metrics_render(&len);

	if (page == NULL) {
		text(req, 503, "Service Unavailable", "out of memory");
		return;
	}
	answer(req, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", page, len);
	free(page);
}

static void
readyz(struct admin *a, struct evhttp_request *req)
{
	struct keyset *ks = jwks_current(a->jwks);

	if (ks == NULL) {
		text(req, 503, "Service Unavailable", "not ready: no Access key set loaded yet");
		return;
	}
	keyset_unref(ks);
	text(req, 200, "OK", "ready");
}

static void
reload(struct admin *a, struct evhttp_request *req)
{
	const char *why = "reload failed";

	if (a->reload(a->arg, &why) == 0)
		text(req, 200, "OK", "configuration reloaded");
	else
		text(req, 500, "Internal Server Error", why);
}

static void
admin_cb(struct evhttp_request *req, void *arg)
{
	struct admin *a = arg;
	const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);

	if (path == NULL)
		path = "";
	if (strcmp(path, "/-/reload") == 0) {
		if (cmd == EVHTTP_REQ_POST)
			reload(a, req);
		else
			text(req, 405, "Method Not Allowed", "use POST");
		return;
	}
	if (cmd != EVHTTP_REQ_GET && cmd != EVHTTP_REQ_HEAD) {
		text(req, 405, "Method Not Allowed", "use GET");
		return;
	}
	if (strcmp(path, "/metrics") == 0)
		metrics_page(req);
	else if (strcmp(path, "/healthz") == 0)
		text(req, 200, "OK", "ok");
	else if (strcmp(path, "/readyz") == 0)
		readyz(a, req);
	else
		text(req, 404, "Not Found", "not found: /metrics, /healthz, /readyz, POST /-/reload");
}

struct admin *
admin_new(struct event_base *base, const char *listen, struct jwks *jwks,
    admin_reload_fn reload_fn, void *arg)
{
	struct admin *a = calloc(1, sizeof(*a));
	char host[256];
	const char *colon = strrchr(listen, ':');
	size_t hlen;
	long port;

	if (a == NULL || colon == NULL || (a->http = evhttp_new(base)) == NULL)
		goto fail;
	hlen = (size_t)(colon - listen);
	if (hlen >= sizeof(host))
		goto fail;
	/* "[::1]:9464" -> "::1"; ":9464" -> all addresses */
	if (hlen >= 2 && listen[0] == '[' && listen[hlen - 1] == ']')
		snprintf(host, sizeof(host), "%.*s", (int)hlen - 2, listen + 1);
	else
		snprintf(host, sizeof(host), "%.*s", (int)hlen, listen);
	port = strtol(colon + 1, NULL, 10);
	a->jwks = jwks;
	a->reload = reload_fn;
	a->arg = arg;
	evhttp_set_allowed_methods(a->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST);
	evhttp_set_gencb(a->http, admin_cb, a);
	if (evhttp_bind_socket(a->http, host[0] ? host : "0.0.0.0", (ev_uint16_t)port) != 0) {
		log_warn("metrics_listen %s", listen);
		goto fail;
	}
	return a;
fail:
	admin_free(a);
	return NULL;
}

void
admin_free(struct admin *a)
{
	if (a == NULL)
		return;
	if (a->http)
		evhttp_free(a->http);
	free(a);
}
