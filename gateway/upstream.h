/*
 * upstream: forward one accepted write to every upstream of its signal.
 *
 * One pool per worker thread (not thread-safe; use it from the thread running
 * its event base).  The pool keeps a few keep-alive HTTP/1.1 connections per
 * upstream host and reuses them.  upstream_forward() sends the body to all
 * targets at once and calls `done` exactly once, after every target answered,
 * failed or timed out, with the status the sender should see:
 *   any 5xx / no answer  -> that 5xx, 504 on timeout, 502 otherwise
 *   any other 4xx, 3xx   -> 502: kakikomi's configuration is wrong (401 no
 *                           tenant, 404 wrong path, ...), the data is not;
 *                           logged at error level, counted, see
 *                           upstream_last_misconfigured()
 *                           (each with retry_after set: failures beat 4xx,
 *                           so the sender keeps the data and retries)
 *   else 400, 413, 429   -> that status and the first line of its body
 *   all 2xx              -> 204
 * Reasons name an upstream by its role ("metrics upstream 1"), never by its
 * URL or address; the log lines upstream.c writes carry the URL.
 * Targets whose bit is set in `skip` already stored this body (see acked.h):
 * they are not sent to and count as accepted.  res->stored has a bit set for
 * every target that has the body now.  At most UPSTREAM_MAX_TARGETS targets.
 * The body and headers must stay valid until `done` runs.
 *
 * Remote write 2.0 (rw2 set): a target with protocol v2 gets the body as it
 * is and must answer 2xx with all three Written headers; a 2xx without them
 * (a 1.0-only receiver stores nothing and answers 204) counts as a
 * misconfigured upstream (502: the sender keeps the data).  A v1 target gets
 * `v1` (the 1.0 down-conversion) and counts as having written what it holds:
 * a 1.0 receiver's 2xx means it stored all of it.  An auto target is v1
 * until it proved 2.0: on a 2.0 request, at most once per
 * UPSTREAM_PROBE_INTERVAL and worker, an empty 2.0 request (nothing to lose)
 * is sent beside the real one; a 2xx with the Written headers makes it v2
 * for this worker, anything else keeps it v1.  A proven target that answers
 * a 2xx without them is v1 again (and that answer is a 502, so the sender
 * resends it, down-converted).
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
#define UPSTREAM_WRITTEN_N	3	/* samples, histograms, exemplars */

struct upstream_header {
	const char	*name;
	const char	*value;
};

#define UPSTREAM_PROBE_INTERVAL	600	/* seconds */

/* A body variant for some targets, with its own content headers. */
struct upstream_body {
	const uint8_t	*body;
	size_t		 len;
	const char	*content_type;
	const char	*rw_version;
	uint64_t	 written[UPSTREAM_WRITTEN_N];	/* what it holds */
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
	int				 rw2;	/* body is remote write 2.0 */
	const struct upstream_body	*v1;	/* its 1.0 form, for v1 / auto targets */
};

struct upstream_result {
	int		status;
	char		reason[300];		/* one line; empty on success */
	char		retry_after[16];	/* seconds, "" when not set */
	/*
	 * Remote write 2.0 Written counts, set on 2xx only: the smallest over
	 * the legs that took the body in this attempt, and "" (send no header)
	 * unless every one of them sent it.  A leg skipped as already stored
	 * adds nothing (acked.h keeps no counts): its earlier 2xx for these
	 * bytes is taken to cover them; when every leg was skipped, no header.
	 */
	char		written[UPSTREAM_WRITTEN_N][24];	/* decimal, "" = absent */
	uint64_t	stored;			/* bit i: target i has the body */
};

typedef void (*upstream_done_cb)(const struct upstream_result *res, void *arg);

/* dns may be NULL (numeric hosts only).  NULL on allocation failure. */
struct upstream_pool	*upstream_pool_new(struct event_base *base, struct evdns_base *dns);
void			 upstream_pool_free(struct upstream_pool *pool);

/* 0 when started: `done` runs once, later or already before this returns
 * (a connection that fails at once), so `arg` belongs to `done` from the
 * call on.  -1 when nothing could be sent (done is not called; answer 503).
 * upstream_pool_free() drops forwards still in flight without `done`. */
int	upstream_forward(struct upstream_pool *pool, const struct upstream_request *req,
	    upstream_done_cb done, void *arg);

/* The last upstream answer that meant kakikomi's configuration is wrong, as
 * one line ("2024-05-01T10:00:00Z metrics upstream 1 (http://...) answered
 * 401: check tenant / credentials"), copied into buf (always NUL-terminated
 * when bufsz > 0).  Returns 1 when there was one since start, else 0 (buf
 * empty).  Thread-safe; for /readyz. */
int	upstream_last_misconfigured(char *buf, size_t bufsz);

#endif
