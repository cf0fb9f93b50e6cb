/*
 * jwks: the Cloudflare Access key set, kept current.
 *
 * Fetches access.certs_url over HTTPS (libevent + OpenSSL, chain verified
 * against the system store plus certs_ca_file, host name verified, response
 * size cap, 10 s idle timeout) or reads a file:// URL; parses it into an
 * immutable keyset (keyset.h); refreshes every refresh_interval; refetches on
 * demand for an unknown kid at most once per 30 s; keeps the current keys when
 * a refresh fails; writes the last good set atomically to certs_cache and
 * loads that file at start so a restart during a Cloudflare outage keeps
 * working.
 *
 * One deadline, access.fetch_timeout (conf 0: 30 s), bounds the whole HTTPS
 * exchange (DNS, connect, TLS, headers, body): the idle timeout restarts with
 * every byte, so without it a server trickling one byte every few seconds
 * would hold the fetch, and so every later refresh, forever.  A fetch that
 * hits it is logged ("deadline exceeded"), counted as
 * kakikomi_jwks_refresh_total{result="error"} and followed by the next
 * refresh like any failed fetch.
 *
 * All functions but jwks_current() and jwks_request_refresh() must be called
 * from the thread running `base`; those two are safe from any thread.
 */
#ifndef KAKIKOMI_JWKS_H
#define KAKIKOMI_JWKS_H

#include "config.h"
#include "keyset.h"

struct event_base;
struct jwks;

/* NULL on allocation failure.  conf is copied. */
struct jwks	*jwks_new(struct event_base *base, const struct access_conf *conf);
/* Loads certs_cache if present, starts the first fetch and the refresh timer. */
void		 jwks_start(struct jwks *j);
/* Applies changed access settings (after a config reload); refetches if the URL changed. */
void		 jwks_reconfigure(struct jwks *j, const struct access_conf *conf);
/* The current key set with a reference taken (keyset_unref() it), or NULL
 * while none has ever been loaded. */
struct keyset	*jwks_current(struct jwks *j);
/* Asks for a refetch because a token named an unknown kid.  Rate-limited:
 * returns 1 when a refetch was started by this call, 0 when one was started
 * less than 30 s ago (so the key set is fresh and the kid truly unknown). */
int		 jwks_request_refresh(struct jwks *j);
void		 jwks_free(struct jwks *j);

#endif
