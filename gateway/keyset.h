/*
 * keyset: a parsed JWKS document — RSA signing keys indexed by kid.
 *
 * Pure (no event loop).  keyset_parse() keeps only kty=RSA keys whose alg is
 * RS256 or absent and whose use is sig or absent; each key's public key is
 * built once here (OpenSSL 3), never per request.  A keyset is immutable and
 * reference-counted (atomic), so threads share it without a lock.
 */
#ifndef KAKIKOMI_KEYSET_H
#define KAKIKOMI_KEYSET_H

#include <stddef.h>

#include <openssl/evp.h>

#define KEYSET_MAX_KID	79	/* bytes; longer kids are skipped */

#define KEYSET_MAX_N_BYTES	1024	/* RSA-8192: the largest modulus (and signature) kept */

struct keyset;

/* Parses a JWKS JSON document.  NULL with *errstr set when it holds no
 * usable key or is malformed. */
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
 * Base64url without padding (RFC 4648 section 5) as used by JWK and JWT:
 * decodes in[0..inlen) into out (at most outsz bytes).  Returns the decoded
 * length, or -1 on a bad character, a bad length or when out is too small.
 */
long		 keyset_b64url_decode(const char *in, size_t inlen,
		    unsigned char *out, size_t outsz);

#endif
