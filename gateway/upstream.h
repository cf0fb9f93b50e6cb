/*
 * upstream: forward one accepted write to every upstream of its signal.
 *
 * One pool per worker thread (not thread-safe; use it from the thread running
 * its event base).  The pool keeps a few keep-alive HTTP/1.1 connections per
 * upstream host and reuses them.  upstream_forward() sends the body to all
 * targets at once and calls `done` exactly once, after every target answered,
 * failed or timed out, with the status the sender should see:
 *   all 2xx              -> 204
 *   any 5xx / no answer  -> that 5xx, or 504 on timeout, 502 otherwise,
 *                           with retry_after set (5xx beats 4xx: the sender retries)
 *   else any 4xx         -> that status and the first line of its body
 * Targets whose bit is set in `skip` already stored this body (see acked.h):
 * they are not sent to and count as accepted.  res->stored has a bit set for
 * every target that has the body now.  At most UPSTREAM_MAX_TARGETS targets.
 * The body and headers must stay valid until `done` runs.
 */
#ifndef KAKIKOMI_UPSTREAM_H
#define KAKIKOMI_UPSTREAM_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"

struct event_base;
struct evdns_base;
struct upstream_pool;

#define UPSTREAM_MAX_HEADERS	12
#define UPSTREAM_MAX_TARGETS	64

struct upstream_header {
	const char	*name;
	const char	*value;
};

struct upstream_request {
	enum signal			 signal;
	const struct upstream_conf	*targets;
	size_t				 ntargets;
	struct upstream_header		 headers[UPSTREAM_MAX_HEADERS];
	size_t				 nheaders;
	uint64_t			 skip;
	const uint8_t			*body;
	size_t				 len;
};

struct upstream_result {
	int		status;
	char		reason[300];		/* one line; empty on success */
	char		retry_after[16];	/* seconds, "" when not set */
	/* Remote write 2.0 receivers report what they stored; relayed as is. */
	char		written[3][24];		/* samples, histograms, exemplars ("" = absent) */
	uint64_t	stored;			/* bit i: target i has the body */
};

typedef void (*upstream_done_cb)(const struct upstream_result *res, void *arg);

/* dns may be NULL (numeric hosts only).  NULL on allocation failure. */
struct upstream_pool	*upstream_pool_new(struct event_base *base, struct evdns_base *dns);
void			 upstream_pool_free(struct upstream_pool *pool);

/* 0 when started (done will run later), -1 when nothing could be sent
 * (done is not called; answer 503). */
int	upstream_forward(struct upstream_pool *pool, const struct upstream_request *req,
	    upstream_done_cb done, void *arg);

#endif
