/*
 * acked: which upstreams already stored a body, so a retry goes only to the
 * ones that did not.
 *
 * With several upstreams per signal a write can be stored by some and not by
 * others; kakikomi then answers 5xx and the sender resends the same bytes.
 * Sent again to an upstream that already stored it, a batch holding more than
 * one sample per series is "out of order" (400) and the sender would drop it,
 * losing it for the upstream that failed.  So kakikomi remembers, per body
 * digest, the set of upstreams that answered 2xx.
 *
 * A fixed table (no growth, constant memory); a newer body may evict an older
 * entry, which only costs a resend to an upstream that already has the data.
 * Thread-safe.
 */
#ifndef KAKIKOMI_ACKED_H
#define KAKIKOMI_ACKED_H

#include <stddef.h>
#include <stdint.h>

#define ACKED_DIGEST_LEN 32

/* SHA-256 over the site name, the signal and the body as the sender sent it. */
void	 acked_digest(const char *site, int signal, const uint8_t *body, size_t len,
	    uint8_t digest[ACKED_DIGEST_LEN]);
/* Bit i set: upstream i stored this body already.  0 when unknown. */
uint64_t acked_get(const uint8_t digest[ACKED_DIGEST_LEN]);
/* Records the upstreams that stored it (mask 0 forgets the body). */
void	 acked_put(const uint8_t digest[ACKED_DIGEST_LEN], uint64_t mask);

#endif
