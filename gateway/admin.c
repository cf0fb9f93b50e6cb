/* admin: metrics, health and reload endpoints.  See admin.h. */
#include "admin.h"

#include <event2/listener.h>
#include <event2/util.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "http.h"
#include "keyset.h"
#include "log.h"
#include "metrics.h"
#include "status.h"
#include "upstream.h"

#define ADMIN_BACKLOG	128
#define TEXT_PLAIN	"text/plain; charset=utf-8"

struct admin {
	struct http_server	*http;
	struct config		*cfg;
	struct jwks		*jwks;
	int			 lifecycle;	/* --web.enable-lifecycle */
	admin_reload_fn		 reload;
	void			*arg;
	size_t			 conns;
};

static void
answer(struct http_request *req, int status, const char *phrase, const char *ctype,
    const char *allow, const void *body, size_t len)
{
	struct http_field f[2] = { { "Content-Type", ctype }, { "Allow", allow } };

	/* A HEAD answer has no body: one would be read as the next answer. */
	if (http_request_is(req, "HEAD"))
		len = 0;
	http_reply(req, status, phrase, f, allow ? 2 : 1, body, len);
}

static void
text(struct http_request *req, int status, const char *phrase, const char *line)
{
	char buf[300];
	int n = snprintf(buf, sizeof(buf), "%s\n", line);

	answer(req, status, phrase, TEXT_PLAIN, NULL, buf,
	    n < 0 ? 0 : (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1);
}

static void
method_not_allowed(struct http_request *req, const char *allow)
{
	char line[64];
	int n = snprintf(line, sizeof(line), "method not allowed: use %s\n", allow);

	answer(req, 405, "Method Not Allowed", TEXT_PLAIN, allow, line,
	    n > 0 && (size_t)n < sizeof(line) ? (size_t)n : 0);
}

static void
metrics_page(struct http_request *req)
{
	size_t len;
	char *page = metrics_render(&len);

	if (page == NULL) {
		text(req, 503, "Service Unavailable", "out of memory");
		return;
	}
	answer(req, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", NULL, page, len);
	free(page);
}

/* GET / (HTML) and GET /api/v1/status (JSON): the same snapshot. */
static void
status_page(struct admin *a, struct http_request *req, int html)
{
	struct keyset *ks = jwks_current(a->jwks);
	size_t len = 0;
	char *page = html ? status_html(a->cfg, ks, &len) : status_json(a->cfg, ks, &len);

	if (ks != NULL)
		keyset_unref(ks);
	if (page == NULL) {
		text(req, 503, "Service Unavailable", "out of memory");
		return;
	}
	answer(req, 200, "OK", html ? "text/html; charset=utf-8" : "application/json",
	    NULL, page, len);
	free(page);
}

static void
readyz(struct admin *a, struct http_request *req)
{
	struct keyset *ks = jwks_current(a->jwks);
	char last[240], line[300];

	if (ks == NULL) {
		text(req, 503, "Service Unavailable", "not ready: no Access key set loaded yet");
		return;
	}
	keyset_unref(ks);
	/*
	 * Still ready: every replica shares the configuration, so taking this
	 * one out would help nothing; the body tells the operator what to fix.
	 */
	if (upstream_last_misconfigured(last, sizeof(last))) {
		snprintf(line, sizeof(line), "ready; last upstream misconfiguration: %s",
		    last);
		text(req, 200, "OK", line);
	} else
		text(req, 200, "OK", "ready");
}

/*
 * The endpoint has no credentials, so a browser must never reach it: a page
 * on any site can make one POST to 127.0.0.1.  Browsers mark every such
 * request with Origin or Sec-Fetch-Site; curl and scripts send neither.
 */
static const char *
cross_site(struct http_request *req)
{
	const char *site = http_request_header(req, "Sec-Fetch-Site");

	if (http_request_header(req, "Origin") != NULL)
		return "reload refused: a request with an Origin header may come from a browser page";
	if (site != NULL && strcmp(site, "same-origin") != 0 && strcmp(site, "none") != 0)
		return "reload refused: Sec-Fetch-Site says the request comes from another site";
	return NULL;
}

static void
reload(struct admin *a, struct http_request *req)
{
	const char *why = "reload failed", *refused;

	if (!http_request_is(req, "POST")) {
		method_not_allowed(req, "POST");
		return;
	}
	if (!a->lifecycle) {
		text(req, 403, "Forbidden", "reload over HTTP is disabled: send SIGHUP, "
		    "or start kakikomi with --web.enable-lifecycle");
		return;
	}
	if ((refused = cross_site(req)) != NULL) {
		text(req, 403, "Forbidden", refused);
		return;
	}
	if (a->reload(a->arg, &why) == 0)
		text(req, 200, "OK", "configuration reloaded");
	else
		text(req, 500, "Internal Server Error", why);
}

/* The body (always empty) is in: route. */
static void
body_cb(struct http_request *req, void *arg)
{
	struct admin *a = arg;
	const char *path = http_request_path(req);

	if (strcmp(path, "/-/reload") == 0) {
		reload(a, req);
		return;
	}
	if (!http_request_is(req, "GET") && !http_request_is(req, "HEAD")) {
		method_not_allowed(req, "GET");
		return;
	}
	if (strcmp(path, "/metrics") == 0)
		metrics_page(req);
	else if (strcmp(path, "/healthz") == 0)
		text(req, 200, "OK", "ok");
	else if (strcmp(path, "/readyz") == 0)
		readyz(a, req);
	else if (strcmp(path, "/") == 0 || strcmp(path, "/api/v1/status") == 0)
		status_page(a, req, path[1] == '\0');
	else
		text(req, 404, "Not Found", "not found: /, /api/v1/status, /metrics, /healthz, "
		    "/readyz, POST /-/reload");
}

/* Admin requests carry no body: refuse one before reading a byte of it. */
static void
head_cb(struct http_request *req, void *arg)
{
	const struct http_head *h = http_request_head(req);

	if (h->chunked || (h->has_length && h->content_length > 0))
		text(req, 413, "Payload Too Large",
		    "request body refused: the admin endpoints take none");
}

/* Unreachable (head_cb refuses chunked bodies); refuses all the same. */
static int
more_cb(struct http_request *req, size_t total, void *arg)
{
	text(req, 413, "Payload Too Large", "request body refused: the admin endpoints take none");
	return -1;
}

static void
fail_cb(struct http_request *req, int status, const char *reason, void *arg)
{
	text(req, status, status == 408 ? "Request Timeout" : status == 413 ?
	    "Payload Too Large" : status == 503 ? "Service Unavailable" : "Bad Request",
	    reason);
}

static void
limits_cb(void *arg, struct http_limits *out)
{
	struct admin *a = arg;
	const struct limits_conf *lim = &a->cfg->limits;

	out->max_connections = ADMIN_MAX_CONNECTIONS;
	out->evict_idle = 1;
	out->header_timeout_ms = lim->header_timeout_ms;
	/* No body is read: this bounds a client that does not read its answer. */
	out->body_timeout_ms = lim->body_timeout_ms;
	out->idle_timeout_ms = lim->idle_timeout_ms;
}

/* "host:port", "[v6]:port" or ":port" (every IPv4 address), resolved. */
static struct evconnlistener *
admin_listen(struct event_base *base, const char *listen)
{
	struct evutil_addrinfo hints = { .ai_family = AF_UNSPEC,
	    .ai_socktype = SOCK_STREAM, .ai_flags = EVUTIL_AI_PASSIVE }, *ai = NULL;
	const char *colon = strrchr(listen, ':');
	struct evconnlistener *lev;
	char host[256];
	int hlen, rc;

	if (colon == NULL || (hlen = (int)(colon - listen)) >= (int)sizeof(host))
		return NULL;
	if (hlen >= 2 && listen[0] == '[' && listen[hlen - 1] == ']')
		snprintf(host, sizeof(host), "%.*s", hlen - 2, listen + 1);
	else
		snprintf(host, sizeof(host), "%.*s", hlen, hlen ? listen : "0.0.0.0");
	if ((rc = evutil_getaddrinfo(host, colon + 1, &hints, &ai)) != 0) {
		log_warnx("metrics_listen %s: %s", listen, evutil_gai_strerror(rc));
		return NULL;
	}
	lev = evconnlistener_new_bind(base, NULL, NULL, LEV_OPT_REUSEABLE |
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, ADMIN_BACKLOG, ai->ai_addr,
	    (int)ai->ai_addrlen);
	if (lev == NULL)
		log_warn("metrics_listen %s", listen);
	evutil_freeaddrinfo(ai);
	return lev;
}

struct admin *
admin_new(struct event_base *base, struct config *cfg, struct jwks *jwks,
    int lifecycle, admin_reload_fn reload_fn, void *arg)
{
	static const struct http_hooks hooks = {
		.limits = limits_cb, .head = head_cb, .more = more_cb,
		.body = body_cb, .fail = fail_cb, .metric_labels = "listener=\"admin\"",
	};
	struct admin *a = calloc(1, sizeof(*a));
	struct evconnlistener *lev;

	if (a == NULL)
		return NULL;
	a->cfg = config_ref(cfg);
	a->jwks = jwks;
	a->lifecycle = lifecycle;
	a->reload = reload_fn;
	a->arg = arg;
	if ((lev = admin_listen(base, cfg->metrics_listen)) == NULL)
		goto fail;
	if ((a->http = http_server_new(base, lev, &hooks, a, &a->conns)) == NULL) {
		evconnlistener_free(lev);
		goto fail;
	}
	return a;
fail:
	admin_free(a);
	return NULL;
}

void
admin_set_config(struct admin *a, struct config *cfg)
{
	struct config *old = a->cfg;

	a->cfg = config_ref(cfg);
	config_unref(old);
}

void
admin_free(struct admin *a)
{
	if (a == NULL)
		return;
	http_server_free(a->http);
	config_unref(a->cfg);
	free(a);
}
