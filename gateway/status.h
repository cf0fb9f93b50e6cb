/*
 * status: what the status page answers — which sites are alive.  Per site:
 * the last stored write per signal, writes and refusals (by status) in total
 * and over the last STATUS_WINDOW_MIN minutes, the last refusal with its
 * reason and time, series rewritten; the key set's last load and last error;
 * each upstream's last answer and latency; version and uptime.
 *
 * Fed from any thread (the request path, upstream answers, the key set
 * fetch): each note takes one short lock over fixed tables, never allocates,
 * and copies what it keeps (bounded).  Sites and upstreams past the table
 * sizes are not tracked (the page says so).  Rendered on the admin thread as
 * JSON (GET /api/v1/status) or as a self-contained HTML page (GET /).
 */
#ifndef KAKIKOMI_STATUS_H
#define KAKIKOMI_STATUS_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "keyset.h"

#define STATUS_WINDOW_MIN	5	/* "recent" counts: the last 5 minutes */

/* Records the start time (uptime) and forgets every note. */
void	status_init(void);
/* A write of `site` answered with `status`: 2xx is a stored write, anything
 * else a refusal with its one-line `reason` (may be NULL). */
void	status_note_write(const char *site, enum signal sig, int status, const char *reason);
/* Series (streams) of a stored write that were rewritten. */
void	status_note_rewritten(const char *site, enum signal sig, uint64_t n);
/* An upstream, named by its role ("metrics upstream 1"), answered `status`
 * (0: no answer) after `seconds`. */
void	status_note_upstream(const char *role, int status, double seconds);
/* A key set load: error NULL when it succeeded, else its one-line reason. */
void	status_note_keyset(const char *error);

/* Renders for the sites of `cfg` (a configured site that never wrote shows as
 * silent) and the current key set `ks` (may be NULL).  A malloc'd,
 * NUL-terminated document (caller frees), or NULL on allocation failure. */
char	*status_json(const struct config *cfg, const struct keyset *ks, size_t *len);
char	*status_html(const struct config *cfg, const struct keyset *ks, size_t *len);

#endif
