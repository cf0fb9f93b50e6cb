/*
 * access: verify a Cf-Access-Jwt-Assertion and name who sent it.
 *
 * access_verify() takes the header value and refuses, before the cache and
 * before any RSA work, a token whose three parts are not canonical base64url
 * (one token, one spelling).  It reads the JWT header itself (alg must be
 * exactly RS256, no crit, typ absent or "JWT" in any case, kid in the key
 * set), verifies the RS256 signature with that kid's key (OpenSSL, key built
 * at key-set load), then checks iss, aud (string or array), exp (required),
 * nbf and iat, all with leeway.  In header and payload a member named twice,
 * or a case-folded spelling of a member kakikomi reads ("EXP", "\u212Aid"),
 * is refused: another verifier could read the other copy.  Verified tokens
 * are cached, keyed by SHA-256 of the whole token, until their exp; a hit
 * costs no RSA work and no JSON parsing.  The cache is bounded and flushed
 * when the key set changes.  A miss decodes each part once, hashes the token
 * once (cache key and signing digest), reuses pooled RSA verify contexts and
 * skips the parse of a header segment whose signature verified before.
 * Thread-safe.
 * Pure: no event loop; the caller supplies the key set and the clock.
 */
#ifndef KAKIKOMI_ACCESS_H
#define KAKIKOMI_ACCESS_H

#include <stddef.h>
#include <time.h>

#include "config.h"
#include "keyset.h"

#define ACCESS_MAX_TOKEN	8192	/* bytes; larger headers are refused unread */

struct access_identity {
	char	common_name[256];	/* service token: "<client id>.access" */
	char	email[320];		/* person */
	char	kid[80];
	time_t	exp;
};

enum access_result {
	ACCESS_OK = 0,
	ACCESS_NO_TOKEN,	/* 401 */
	ACCESS_DENIED,		/* 403 */
	ACCESS_UNKNOWN_KID,	/* 403, and the caller should ask jwks for a refetch */
	ACCESS_NO_KEYS,		/* 503: no key set loaded yet */
};

struct access;

/* cache_entries: bound on cached verified tokens.  NULL on allocation failure. */
struct access	*access_new(size_t cache_entries);
void		 access_free(struct access *a);

/*
 * token: the header value (NULL when absent).  ks: current key set or NULL.
 * On ACCESS_OK fills *id.  Otherwise *reason is a short static string:
 * "no token", "too large", "malformed", "bad base64url", "duplicate member",
 * "alg", "crit", "typ", "unknown kid", "bad signature", "issuer",
 * "audience", "expired", "not yet valid", "no identity", "no key set".
 */
enum access_result access_verify(struct access *a, const struct access_conf *conf,
    struct keyset *ks, const char *token, time_t now,
    struct access_identity *id, const char **reason);
/* The same with the token's length known (the header's, from the head
 * parse): token[0..len), no strlen. */
enum access_result access_verify_n(struct access *a, const struct access_conf *conf,
    struct keyset *ks, const char *token, size_t len, time_t now,
    struct access_identity *id, const char **reason);

/* HTTP status for a result: 0, 401, 403 or 503. */
int	access_status(enum access_result r);

#endif
