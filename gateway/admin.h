/*
 * admin: the metrics listener — GET / (status page), /api/v1/status (its
 * JSON, status.h), /metrics, /healthz, /readyz and POST /-/reload, served by kakikomi's own HTTP/1.1 front (http.h) on the
 * main thread's event base; never published through the tunnel.  /readyz
 * answers 200 only once a key set is loaded.
 *
 * Bounds: at most ADMIN_MAX_CONNECTIONS connections (a new one past it
 * evicts the oldest that has not sent a byte), header_timeout and
 * idle_timeout from the configuration's limits, and no request body (413).
 * POST /-/reload answers 403 unless `lifecycle` is set (--web.enable-lifecycle)
 * and, even then, to any browser request that could be cross-site.
 */
#ifndef KAKIKOMI_ADMIN_H
#define KAKIKOMI_ADMIN_H

#include "config.h"
#include "jwks.h"

/*
 * Scrapers, health checks and an operator's curl need a handful of
 * connections; 64 leaves room for several of each.  The write listener keeps
 * this many descriptors free for it (server.c's budget), so no number of
 * admin connections can exhaust the open-file limit or take a write slot.
 */
#define ADMIN_MAX_CONNECTIONS	64

struct event_base;
struct admin;

/* reload() is called for POST /-/reload and returns 0 when the new
 * configuration was applied, or -1 (with a one-line reason in *why). */
typedef int (*admin_reload_fn)(void *arg, const char **why);

/* Binds cfg->metrics_listen and takes a reference to cfg (its limits); NULL
 * (logged) on failure. */
struct admin	*admin_new(struct event_base *base, struct config *cfg,
		    struct jwks *jwks, int lifecycle, admin_reload_fn reload, void *arg);
/* The limits of connections accepted from now on come from cfg. */
void		 admin_set_config(struct admin *a, struct config *cfg);
void		 admin_free(struct admin *a);

#endif
