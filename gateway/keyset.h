/*
 * keyset: a parsed JWKS document — RSA signing keys indexed by kid.
 *
 * Pure (no event loop).  keyset_parse() keeps only kty=RSA keys whose alg is
 * RS256 or absent and whose use is sig or absent; each key's public key is
 * built once here (OpenSSL 3), never per request.  A keyset is immutable and
 * reference-counted (atomic), so threads share it without a lock.
 *
 * A key is used only when its modulus has 2048-8192 bits, its exponent is
 * exactly 65537 and OpenSSL's EVP_PKEY_public_check() passes.  For RSA,
 * OpenSSL 3.0 runs one SP 800-89 partial validation for both the check and
 * its _quick form: n odd, no prime factor below 752, composite and not a prime
 * power (Miller-Rabin); e odd and > 1 (any such e outside FIPS mode).  So it
 * still takes e = 3, and kakikomi requires e = 65537 exactly rather than "odd
 * e >= 3": Cloudflare's keys use 65537 ("AQAB"), SP 800-56B and FIPS 186-5 ask
 * for e > 2^16, small exponents are what Bleichenbacher's 2006 PKCS#1 v1.5
 * forgery needs from a lax verifier, and one allowed value leaves nothing to
 * tune.  (With e = 1 the signature is the padded digest itself: anyone can
 * forge it.)  The check costs ~10 ms per 2048-bit key, ~45 ms per 4096-bit
 * and ~300-400 ms per 8192-bit key (measured here), once per key per load:
 * at worst (32 keys of 8192 bits) ~13 s on the key set's thread.  Every
 * refused key is logged (index, kid, reason; never key material) and
 * skipped; the others still load.
 */
#ifndef KAKIKOMI_KEYSET_H
#define KAKIKOMI_KEYSET_H

#include <stddef.h>

#include <openssl/evp.h>

#define KEYSET_MAX_KID	79	/* bytes; longer kids are skipped */

#define KEYSET_MAX_N_BYTES	1024	/* RSA-8192: the largest modulus (and signature) kept */

struct keyset;

/* Parses a JWKS JSON document.  NULL with *errstr set when it holds no
 * usable key (*errstr: why the first key was refused) or is malformed. */
struct keyset	*keyset_parse(const char *json, size_t len, const char **errstr);
struct keyset	*keyset_ref(struct keyset *ks);
void		 keyset_unref(struct keyset *ks);
size_t		 keyset_count(const struct keyset *ks);
/* The kid of key i (0 <= i < keyset_count()), in document order, or NULL. */
const char	*keyset_kid(const struct keyset *ks, size_t i);
/* The public key with this kid, or NULL.  Owned by the keyset; safe to use
 * for verification from any thread while a reference is held. */
EVP_PKEY	*keyset_key(const struct keyset *ks, const char *kid);
/* A number that changes whenever the set of keys changes (for cache flushes). */
unsigned long	 keyset_generation(const struct keyset *ks);

/*
 * Canonical base64url without padding (RFC 4648 sections 3.5 and 5) as used
 * by JWK and JWT: decodes in[0..inlen) into out (at most outsz bytes; out
 * NULL only checks).  Returns the decoded length, or -1 on a byte outside the
 * url-safe alphabet (so '=' padding too), a length of 4n+1, non-zero spare
 * bits in the last character (each value has exactly one spelling), or when
 * out is too small.
 */
long		 keyset_b64url_decode(const char *in, size_t inlen,
		    unsigned char *out, size_t outsz);

#endif
