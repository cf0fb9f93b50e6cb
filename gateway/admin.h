/*
 * admin: the metrics listener — GET /metrics, /healthz, /readyz and
 * POST /-/reload.  Runs on the main thread's event base; never published
 * through the tunnel.  /readyz answers 200 only once a key set is loaded.
 */
#ifndef KAKIKOMI_ADMIN_H
#define KAKIKOMI_ADMIN_H

#include "jwks.h"

struct event_base;
struct admin;

/* reload() is called for POST /-/reload and returns 0 when the new
 * configuration was applied, or -1 (with a one-line reason in *why). */
typedef int (*admin_reload_fn)(void *arg, const char **why);

/* Binds `listen`; NULL (logged) on failure. */
struct admin	*admin_new(struct event_base *base, const char *listen,
		    struct jwks *jwks, admin_reload_fn reload, void *arg);
void		 admin_free(struct admin *a);

#endif
