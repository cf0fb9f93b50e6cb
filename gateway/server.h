/*
 * server: the write listener — worker threads, routes, request life cycle.
 *
 * Each worker runs its own event base and HTTP/1.1 server (http.h) on a
 * SO_REUSEPORT socket bound to `listen`.  One request is one pass: head ->
 * route -> Content-Length vs max_body_bytes -> limits (requests, bytes) ->
 * access (access.h) -> site (policy.h) -> rate limit, all before a byte of the
 * body is read; then body (payload.h) -> forward (upstream.h) -> answer.  Every
 * refusal ends in one place that answers with a status and a one-line reason,
 * logs it once and counts it.
 *
 * server_set_config() swaps the snapshot new requests use (thread-safe);
 * requests in flight finish with the one they took.  Functions other than
 * server_set_config() and server_inflight() are for the main thread.
 */
#ifndef KAKIKOMI_SERVER_H
#define KAKIKOMI_SERVER_H

#include <stddef.h>

#include "access.h"
#include "config.h"
#include "jwks.h"

struct server;

/* Takes its own reference on cfg.  NULL on allocation failure. */
struct server	*server_new(struct config *cfg, struct jwks *jwks, struct access *access);
/* Binds `listen` once per worker and starts the threads; -1 (logged) on failure. */
int		 server_start(struct server *srv);
void		 server_set_config(struct server *srv, struct config *cfg);
/* Stops accepting new connections and closes idle ones; requests in flight
 * go on and are answered with "Connection: close". */
void		 server_drain(struct server *srv);
/* Write requests being handled now. */
size_t		 server_inflight(const struct server *srv);
/* Stops every worker and joins it. */
void		 server_stop(struct server *srv);
void		 server_free(struct server *srv);

#endif
