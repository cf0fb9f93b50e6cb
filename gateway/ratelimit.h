/*
 * ratelimit: per-site token buckets for write requests (rate_limit: in sites.yml).
 *
 * Buckets are keyed by site name and shared by every worker (one mutex; the
 * critical section is a few arithmetic operations).  Rate and burst come from
 * the caller's config snapshot on each call, so a reload takes effect at once.
 */
#ifndef KAKIKOMI_RATELIMIT_H
#define KAKIKOMI_RATELIMIT_H

/* Takes one token for `site` at time `now` (seconds, monotonic).  Returns 1 when
 * allowed; 0 when not, with *retry_after_s set to the wait for the next token. */
int	ratelimit_take(const char *site, double rate, double burst, double now,
	    double *retry_after_s);
/* Frees every bucket (at exit). */
void	ratelimit_clear(void);

#endif
