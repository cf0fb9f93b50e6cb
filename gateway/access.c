/* access: Cf-Access-Jwt-Assertion verification and cache.  See access.h. */
#include "access.h"

#include <ctype.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>

#include "metrics.h"

#define CACHE_WAYS		4		/* entries per set; evict the soonest to expire */
#define VERIFIERS		8		/* RSA verify contexts kept for reuse */
#define HEADERS			4		/* accepted JOSE header segments remembered */
#define HEADER_MAX		256		/* bytes of a remembered header segment */
#define ACCESS_MAX_LEEWAY	(7LL * 86400)	/* bounds exp + leeway arithmetic */

struct cache_entry {
	unsigned char		hash[32];	/* SHA-256 of the whole token */
	uint64_t		conf_fp;	/* issuer, audiences, leeway it was checked against */
	unsigned long		generation;	/* keyset it was verified with */
	long long		valid_until;	/* exp + leeway */
	int			used;
	struct access_identity	id;
};

struct cache_set {
	pthread_mutex_t		mu;
	struct cache_entry	e[CACHE_WAYS];
};

/* An RSA verify context set up for one key (it holds a reference to it, so
 * the key's address cannot be reused while the context is kept). */
struct verifier {
	EVP_PKEY	*pkey;
	EVP_PKEY_CTX	*ctx;
};

/* A JOSE header segment check_header() accepted, and the kid it read. */
struct header_memo {
	size_t	len;
	char	seg[HEADER_MAX];
	char	kid[KEYSET_MAX_KID + 1];	/* longer kids are not in a key set */
};

struct access {
	size_t			 nsets;
	struct cache_set	*sets;
	EVP_MD			*sha256;	/* fetched once, not per digest */
	pthread_mutex_t		 mu;		/* verifiers and headers */
	struct verifier		 verifiers[VERIFIERS];
	size_t			 nverifiers;
	struct header_memo	 headers[HEADERS];
	size_t			 nheaders, next_header;
};

/* What a lookup or insert is keyed on. */
struct cache_key {
	unsigned char	hash[32];
	uint64_t	conf_fp;
	unsigned long	generation;
};

/* The three segments of a compact JWS, as views into the token, and each
 * one decoded into buf (dec[i], dlen[i]): every segment is decoded once. */
struct jws {
	const char		*seg[3];
	size_t			 len[3];
	const unsigned char	*dec[3];
	size_t			 dlen[3];
	unsigned char		 buf[ACCESS_MAX_TOKEN];
};

struct access *
access_new(size_t cache_entries)
{
	struct access *a = calloc(1, sizeof(*a));

	if (a == NULL)
		return NULL;
	a->nsets = (cache_entries + CACHE_WAYS - 1) / CACHE_WAYS;
	if (a->nsets > 0 && (a->sets = calloc(a->nsets, sizeof(*a->sets))) == NULL) {
		free(a);
		return NULL;
	}
	if ((a->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL)) == NULL) {
		free(a->sets);
		free(a);
		return NULL;
	}
	for (size_t i = 0; i < a->nsets; i++)
		pthread_mutex_init(&a->sets[i].mu, NULL);
	pthread_mutex_init(&a->mu, NULL);
	return a;
}

void
access_free(struct access *a)
{
	if (a == NULL)
		return;
	for (size_t i = 0; i < a->nsets; i++)
		pthread_mutex_destroy(&a->sets[i].mu);
	for (size_t i = 0; i < a->nverifiers; i++)
		EVP_PKEY_CTX_free(a->verifiers[i].ctx);
	pthread_mutex_destroy(&a->mu);
	EVP_MD_free(a->sha256);
	free(a->sets);
	free(a);
}

int
access_status(enum access_result r)
{
	switch (r) {
	case ACCESS_OK:
		return 0;
	case ACCESS_NO_TOKEN:
		return 401;
	case ACCESS_NO_KEYS:
		return 503;
	default:
		return 403;
	}
}

static long long
leeway_of(const struct access_conf *conf)
{
	return conf->leeway_s > (uint64_t)ACCESS_MAX_LEEWAY ?
	    ACCESS_MAX_LEEWAY : (long long)conf->leeway_s;
}

static uint64_t
fnv1a(uint64_t h, const void *p, size_t n)
{
	const unsigned char *b = p;

	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 0x100000001b3ULL;
	return h;
}

/* Fingerprint of everything a cached verdict depends on besides the keys, so
 * a reload that changes issuer, audiences or leeway misses the old entries. */
static uint64_t
conf_fingerprint(const struct access_conf *conf)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	long long leeway = leeway_of(conf);

	h = fnv1a(h, conf->issuer, strlen(conf->issuer) + 1);
	for (size_t i = 0; i < conf->audiences.n; i++)
		h = fnv1a(h, conf->audiences.v[i], strlen(conf->audiences.v[i]) + 1);
	return fnv1a(h, &leeway, sizeof(leeway));
}

/*
 * One SHA-256 pass over the token gives both digests a new token needs: the
 * cache key (the whole token) and, from a copy of the state taken after
 * "header.payload", the RS256 signing input's digest (signed[]).
 */
static int
token_digests(struct access *a, const struct jws *j, unsigned char *whole,
    unsigned char *signed_)
{
	EVP_MD_CTX *c = EVP_MD_CTX_new(), *s = EVP_MD_CTX_new();
	size_t in = j->len[0] + 1 + j->len[1];
	int ok;

	ok = c != NULL && s != NULL && EVP_DigestInit_ex(c, a->sha256, NULL) == 1 &&
	    EVP_DigestUpdate(c, j->seg[0], in) == 1 && EVP_MD_CTX_copy_ex(s, c) == 1 &&
	    EVP_DigestUpdate(c, j->seg[0] + in, 1 + j->len[2]) == 1 &&
	    EVP_DigestFinal_ex(c, whole, NULL) == 1 &&
	    EVP_DigestFinal_ex(s, signed_, NULL) == 1;
	EVP_MD_CTX_free(c);
	EVP_MD_CTX_free(s);
	return ok;
}

static void
cache_key_init(struct cache_key *k, const struct access_conf *conf,
    const struct keyset *ks)
{
	k->conf_fp = conf_fingerprint(conf);
	k->generation = keyset_generation(ks);
}

static struct cache_set *
cache_set_of(struct access *a, const struct cache_key *k)
{
	uint64_t h;

	memcpy(&h, k->hash, sizeof(h));
	return &a->sets[h % a->nsets];
}

static int
entry_matches(const struct cache_entry *e, const struct cache_key *k)
{
	return e->used && e->generation == k->generation &&
	    e->conf_fp == k->conf_fp &&
	    CRYPTO_memcmp(e->hash, k->hash, sizeof(k->hash)) == 0;
}

static int
cache_lookup(struct access *a, const struct cache_key *k, time_t now,
    struct access_identity *id)
{
	struct cache_set *set;
	int hit = 0;

	if (a->nsets == 0)
		return 0;
	set = cache_set_of(a, k);
	pthread_mutex_lock(&set->mu);
	for (size_t i = 0; i < CACHE_WAYS && !hit; i++)
		if (entry_matches(&set->e[i], k) && now <= set->e[i].valid_until) {
			*id = set->e[i].id;
			hit = 1;
		}
	pthread_mutex_unlock(&set->mu);
	return hit;
}

/* The way to overwrite: the same token, else a free or stale one, else the
 * entry closest to expiry. */
static struct cache_entry *
cache_victim(struct cache_set *set, const struct cache_key *k, time_t now)
{
	struct cache_entry *v = &set->e[0];

	for (size_t i = 0; i < CACHE_WAYS; i++) {
		struct cache_entry *e = &set->e[i];

		if (!e->used || entry_matches(e, k) || e->generation != k->generation ||
		    e->conf_fp != k->conf_fp || e->valid_until < now)
			return e;
		if (e->valid_until < v->valid_until)
			v = e;
	}
	return v;
}

static void
cache_insert(struct access *a, const struct cache_key *k, time_t now,
    long long valid_until, const struct access_identity *id)
{
	struct cache_set *set;
	struct cache_entry *e;

	if (a->nsets == 0)
		return;
	set = cache_set_of(a, k);
	pthread_mutex_lock(&set->mu);
	e = cache_victim(set, k, now);
	memcpy(e->hash, k->hash, sizeof(e->hash));
	e->conf_fp = k->conf_fp;
	e->generation = k->generation;
	e->valid_until = valid_until;
	e->id = *id;
	e->used = 1;
	pthread_mutex_unlock(&set->mu);
}

/* Splits header.payload.signature.  An empty signature is left for the
 * header check to refuse, so that alg "none" is reported as "alg". */
static int
jws_split(const char *token, size_t len, struct jws *j)
{
	const char *p = token, *end = token + len, *dot;

	for (int i = 0; i < 3; i++) {
		dot = memchr(p, '.', (size_t)(end - p));
		if ((dot == NULL) != (i == 2))
			return -1;
		j->seg[i] = p;
		j->len[i] = (size_t)((dot != NULL ? dot : end) - p);
		if (j->len[i] == 0 && i < 2)
			return -1;
		if (dot != NULL)
			p = dot + 1;
	}
	return 0;
}

/*
 * Splits the token and decodes its three parts, refusing any that is not
 * canonical base64url (keyset_b64url_decode: url-safe alphabet only, no '=',
 * no 4n+1 length, zero spare bits), so that one token has one spelling:
 * otherwise a signature has up to 16 spellings that all verify, each a cache
 * miss and an RSA verify.  Cheap, so it runs before the cache lookup; the
 * decoded parts serve the checks after a miss.  NULL or the reason.
 */
static const char *
jws_parse(const char *token, size_t len, struct jws *j)
{
	size_t used = 0;
	long n;

	if (jws_split(token, len, j) < 0)
		return "malformed";
	/* 3 bytes per 4 characters: all three fit in buf (len <= its size) */
	for (int i = 0; i < 3; i++) {
		if ((n = keyset_b64url_decode(j->seg[i], j->len[i], j->buf + used,
		    sizeof(j->buf) - used)) < 0)
			return "bad base64url";
		j->dec[i] = j->buf + used;
		j->dlen[i] = (size_t)n;
		used += (size_t)n;
	}
	return NULL;
}

/*
 * 1 when Go's encoding/json would read object key `key` as the member `name`
 * (lower case): it matches keys to struct fields with bytes.EqualFold, i.e.
 * Unicode simple case folding, under which U+212A KELVIN SIGN folds to 'k'
 * and U+017F LONG S to 's', and the last match wins.
 */
static int
folds_to(const char *key, const char *name)
{
	const char *k = key;

	for (const char *n = name; *n != '\0'; n++) {
		if ((unsigned char)*k < 0x80 && tolower((unsigned char)*k) == *n)
			k++;
		else if (*n == 'k' && strncmp(k, "\xe2\x84\xaa", 3) == 0)
			k += 3;
		else if (*n == 's' && strncmp(k, "\xc5\xbf", 2) == 0)
			k += 2;
		else
			return 0;
	}
	return *k == '\0';
}

/* 1 when obj has a key that is not one of `names` but folds to one. */
static int
has_case_twin(json_t *obj, const char *const *names)
{
	const char *key;
	json_t *v;

	json_object_foreach(obj, key, v)
		for (const char *const *n = names; *n != NULL; n++)
			if (strcmp(key, *n) != 0 && folds_to(key, *n))
				return 1;
	return 0;
}

/*
 * Parses one decoded segment as a JSON object.  A member
 * named twice is refused, so no other verifier can read the other copy:
 * jansson by default keeps the last (parse_object in jansson's load.c sets
 * each key with json_object_set_nocheck, which replaces), libjwt 1.10 parses
 * with flags 0 so it does the same, and JSON_REJECT_DUPLICATES refuses a
 * repeat even when escaped ("\u0061lg").  Also refused: a spelling of one
 * of `names` (the members kakikomi reads) that only case folding equates,
 * since Go's encoding/json would take it for that member (folds_to()).
 * NULL with *why set when refused.
 */
static json_t *
segment_json(const unsigned char *seg, size_t len, const char *const *names,
    const char **why)
{
	json_error_t jerr;
	json_t *v;

	*why = "malformed";
	v = json_loadb((const char *)seg, len, JSON_REJECT_DUPLICATES, &jerr);
	if (v == NULL) {
		if (json_error_code(&jerr) == json_error_duplicate_key)
			*why = "duplicate member";
		return NULL;
	}
	if (!json_is_object(v) || has_case_twin(v, names)) {
		if (json_is_object(v))
			*why = "duplicate member";
		json_decref(v);
		return NULL;
	}
	*why = NULL;
	return v;
}

/* Copies a string member into dst; 0 when absent or empty, -1 when not a
 * string or too long. */
static int
copy_member(json_t *obj, const char *name, char *dst, size_t dstsz)
{
	json_t *v = json_object_get(obj, name);
	size_t n;

	dst[0] = '\0';
	if (v == NULL)
		return 0;
	if (!json_is_string(v) || (n = json_string_length(v)) >= dstsz ||
	    strlen(json_string_value(v)) != n)
		return -1;
	memcpy(dst, json_string_value(v), n + 1);
	return n > 0;
}

/* 1 when member `name` is absent or a string equal to `want` ignoring ASCII
 * case. */
static int
absent_or_caseeq(json_t *obj, const char *name, const char *want)
{
	json_t *v = json_object_get(obj, name);

	return v == NULL ||
	    (json_is_string(v) && strcasecmp(json_string_value(v), want) == 0);
}

/*
 * Reads the JOSE header: alg must be exactly RS256 (never HS256 keyed with
 * the public key, never none); no crit at all, whatever its value (RFC 7515
 * section 4.1.11: a recipient must refuse extensions it does not implement,
 * and kakikomi implements none); typ, when present, is "JWT" in any case
 * (RFC 7519 section 5.1; Cloudflare sends "JWT"), so a token minted for
 * another purpose (at+jwt, dpop+jwt) is not taken for an Access token; kid a
 * short string.
 */
static const char *
check_header(const struct jws *j, char *kid, size_t kidsz)
{
	static const char *const names[] = { "alg", "kid", "typ", "crit", NULL };
	const char *why;
	json_t *hdr = segment_json(j->dec[0], j->dlen[0], names, &why), *alg;

	if (hdr == NULL)
		return why;
	alg = json_object_get(hdr, "alg");
	if (!json_is_string(alg) || strcmp(json_string_value(alg), "RS256") != 0)
		why = "alg";
	else if (json_object_get(hdr, "crit") != NULL)
		why = "crit";
	else if (!absent_or_caseeq(hdr, "typ", "JWT"))
		why = "typ";
	else if (copy_member(hdr, "kid", kid, kidsz) <= 0)
		why = "malformed";
	json_decref(hdr);
	return why;
}

static int
aud_matches(const struct access_conf *conf, json_t *aud)
{
	for (size_t i = 0; i < conf->audiences.n; i++)
		if (strcmp(json_string_value(aud), conf->audiences.v[i]) == 0)
			return 1;
	return 0;
}

static int
check_audience(const struct access_conf *conf, json_t *claims)
{
	json_t *aud = json_object_get(claims, "aud"), *v;
	size_t i;

	if (json_is_string(aud))
		return aud_matches(conf, aud);
	if (!json_is_array(aud))
		return 0;
	json_array_foreach(aud, i, v)
		if (json_is_string(v) && aud_matches(conf, v))
			return 1;
	return 0;
}

/* Integer claim: 0 ok (*out set), 1 absent, -1 not an integer. */
static int
int_claim(json_t *claims, const char *name, long long *out)
{
	json_t *v = json_object_get(claims, name);

	if (v == NULL)
		return 1;
	if (!json_is_integer(v))
		return -1;
	*out = json_integer_value(v);
	return 0;
}

/* exp required; nbf and iat honoured when present; all with leeway. */
static const char *
check_times(json_t *claims, long long now, long long leeway, long long *exp)
{
	static const char *const not_before[] = { "nbf", "iat" };
	long long t;
	int r;

	if (int_claim(claims, "exp", exp) != 0)
		return "malformed";
	if (*exp < now - leeway)
		return "expired";
	for (size_t i = 0; i < 2; i++) {
		if ((r = int_claim(claims, not_before[i], &t)) < 0)
			return "malformed";
		if (r == 0 && t > now + leeway)
			return "not yet valid";
	}
	return NULL;
}

/* Identity: common_name for service tokens, email for people. */
static const char *
check_identity(json_t *claims, struct access_identity *id)
{
	int cn = copy_member(claims, "common_name", id->common_name,
	    sizeof(id->common_name));
	int email = copy_member(claims, "email", id->email, sizeof(id->email));

	if (cn < 0 || email < 0)
		return "malformed";
	if (cn > 0)
		id->email[0] = '\0';
	else if (email == 0)
		return "no identity";
	return NULL;
}

static const char *
check_claims(const struct access_conf *conf, const struct jws *j, time_t now,
    struct access_identity *id)
{
	static const char *const names[] = { "iss", "aud", "exp", "nbf", "iat",
	    "email", "common_name", NULL };
	const char *why;
	json_t *claims = segment_json(j->dec[1], j->dlen[1], names, &why), *iss;
	long long exp;

	if (claims == NULL)
		return why;
	iss = json_object_get(claims, "iss");
	if (!json_is_string(iss) || strcmp(json_string_value(iss), conf->issuer) != 0)
		why = "issuer";
	else if (!check_audience(conf, claims))
		why = "audience";
	else if ((why = check_times(claims, (long long)now, leeway_of(conf), &exp)) == NULL &&
	    (why = check_identity(claims, id)) == NULL)
		id->exp = exp > (long long)INT64_MAX - ACCESS_MAX_LEEWAY ?
		    (time_t)(INT64_MAX - ACCESS_MAX_LEEWAY) : (time_t)exp;
	json_decref(claims);
	return why;
}

/*
 * check_header() is a function of the header segment's bytes alone, and
 * Access signs every token of a key with the same header: a segment seen on
 * a token whose signature verified is taken, with its kid, without parsing
 * it again.  Only signed headers are remembered, so unsigned junk cannot
 * push Access's own out.  1 on a hit (kid filled).
 */
static int
header_seen(struct access *a, const struct jws *j, char *kid, size_t kidsz)
{
	int hit = 0;

	pthread_mutex_lock(&a->mu);
	for (size_t i = 0; i < a->nheaders && !hit; i++) {
		const struct header_memo *m = &a->headers[i];

		if (m->len == j->len[0] && memcmp(m->seg, j->seg[0], m->len) == 0) {
			snprintf(kid, kidsz, "%s", m->kid);
			hit = 1;
		}
	}
	pthread_mutex_unlock(&a->mu);
	return hit;
}

static void
header_remember(struct access *a, const struct jws *j, const char *kid)
{
	struct header_memo *m;

	if (j->len[0] > HEADER_MAX || strlen(kid) >= sizeof(m->kid))
		return;
	pthread_mutex_lock(&a->mu);
	m = &a->headers[a->next_header];
	a->next_header = (a->next_header + 1) % HEADERS;
	if (a->nheaders < HEADERS)
		a->nheaders++;
	m->len = j->len[0];
	memcpy(m->seg, j->seg[0], m->len);
	memcpy(m->kid, kid, strlen(kid) + 1);
	pthread_mutex_unlock(&a->mu);
}

/* A verify context for pkey, taken out of the pool (or made): RS256 is
 * PKCS#1 v1.5 over a SHA-256 digest.  Setting one up costs about a tenth of
 * the RSA operation itself.  NULL on allocation failure. */
static EVP_PKEY_CTX *
verifier_take(struct access *a, EVP_PKEY *pkey)
{
	EVP_PKEY_CTX *ctx = NULL;

	pthread_mutex_lock(&a->mu);
	for (size_t i = 0; i < a->nverifiers && ctx == NULL; i++)
		if (a->verifiers[i].pkey == pkey) {
			ctx = a->verifiers[i].ctx;
			a->verifiers[i] = a->verifiers[--a->nverifiers];
		}
	pthread_mutex_unlock(&a->mu);
	if (ctx != NULL)
		return ctx;
	if ((ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL)) == NULL)
		return NULL;
	if (EVP_PKEY_verify_init(ctx) != 1 ||
	    EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) != 1 ||
	    EVP_PKEY_CTX_set_signature_md(ctx, a->sha256) != 1) {
		EVP_PKEY_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

/* Back into the pool; when it is full, in place of a context of another key
 * (one of an older key set), else freed. */
static void
verifier_put(struct access *a, EVP_PKEY *pkey, EVP_PKEY_CTX *ctx)
{
	struct verifier *v = NULL;

	pthread_mutex_lock(&a->mu);
	if (a->nverifiers < VERIFIERS)
		v = &a->verifiers[a->nverifiers++];
	for (size_t i = 0; i < a->nverifiers && v == NULL; i++)
		if (a->verifiers[i].pkey != pkey) {
			v = &a->verifiers[i];
			EVP_PKEY_CTX_free(v->ctx);
		}
	if (v != NULL) {
		v->pkey = pkey;
		v->ctx = ctx;
	}
	pthread_mutex_unlock(&a->mu);
	if (v == NULL)
		EVP_PKEY_CTX_free(ctx);
}

/*
 * RSASSA-PKCS1-v1_5 with SHA-256 over "header.payload" (its digest: signed_),
 * with the key built once when the key set was loaded.  (libjwt 1.10's
 * jwt_decode takes a PEM and parses it on every call: ~250 us, where the RSA
 * verify costs ~17 us; and it is the source of the algorithm-confusion
 * pitfalls this avoids.)
 */
static int
signature_ok(struct access *a, EVP_PKEY *pkey, const struct jws *j,
    const unsigned char *signed_)
{
	EVP_PKEY_CTX *ctx;
	int ok;

	if (j->dlen[2] == 0 || (ctx = verifier_take(a, pkey)) == NULL)
		return 0;
	ok = EVP_PKEY_verify(ctx, j->dec[2], j->dlen[2], signed_, 32) == 1;
	verifier_put(a, pkey, ctx);
	return ok;
}

static enum access_result
verify_full(struct access *a, const struct access_conf *conf, struct keyset *ks,
    const struct jws *j, const unsigned char *signed_, time_t now,
    struct access_identity *id, const char **reason)
{
	EVP_PKEY *pkey;
	int seen;

	memset(id, 0, sizeof(*id));
	if (!(seen = header_seen(a, j, id->kid, sizeof(id->kid))) &&
	    (*reason = check_header(j, id->kid, sizeof(id->kid))) != NULL)
		return ACCESS_DENIED;
	if ((pkey = keyset_key(ks, id->kid)) == NULL) {
		*reason = "unknown kid";
		return ACCESS_UNKNOWN_KID;
	}
	if (!signature_ok(a, pkey, j, signed_)) {
		*reason = "bad signature";
		return ACCESS_DENIED;
	}
	if (!seen)
		header_remember(a, j, id->kid);
	if ((*reason = check_claims(conf, j, now, id)) != NULL)
		return ACCESS_DENIED;
	return ACCESS_OK;
}

static enum access_result
verify(struct access *a, const struct access_conf *conf, struct keyset *ks,
    const char *token, size_t len, time_t now, struct access_identity *id,
    const char **reason)
{
	unsigned char signed_[32];
	struct cache_key k;
	enum access_result r;
	struct jws j;

	*reason = NULL;
	if (token == NULL) {
		*reason = "no token";
		return ACCESS_NO_TOKEN;
	}
	if (len > ACCESS_MAX_TOKEN) {
		*reason = "too large";
		return ACCESS_DENIED;
	}
	if (ks == NULL) {
		*reason = "no key set";
		return ACCESS_NO_KEYS;
	}
	if ((*reason = jws_parse(token, len, &j)) != NULL)
		return ACCESS_DENIED;
	if (!token_digests(a, &j, k.hash, signed_)) {
		*reason = "bad signature";	/* out of memory: verify nothing */
		return ACCESS_DENIED;
	}
	cache_key_init(&k, conf, ks);
	if (cache_lookup(a, &k, now, id)) {
		metrics_counter_add("kakikomi_token_cache_hits_total", "", 1);
		return ACCESS_OK;
	}
	metrics_counter_add("kakikomi_token_cache_misses_total", "", 1);
	r = verify_full(a, conf, ks, &j, signed_, now, id, reason);
	if (r == ACCESS_OK)
		cache_insert(a, &k, now, (long long)id->exp + leeway_of(conf), id);
	return r;
}

enum access_result
access_verify(struct access *a, const struct access_conf *conf,
    struct keyset *ks, const char *token, time_t now,
    struct access_identity *id, const char **reason)
{
	return access_verify_n(a, conf, ks, token,
	    token != NULL ? strnlen(token, ACCESS_MAX_TOKEN + 1) : 0, now, id, reason);
}

enum access_result
access_verify_n(struct access *a, const struct access_conf *conf,
    struct keyset *ks, const char *token, size_t len, time_t now,
    struct access_identity *id, const char **reason)
{
	enum access_result r = verify(a, conf, ks, token, len, now, id, reason);
	char labels[64];

	if (r != ACCESS_OK) {
		snprintf(labels, sizeof(labels), "reason=\"%s\"", *reason);
		metrics_counter_add("kakikomi_auth_failures_total", labels, 1);
	}
	return r;
}
