/* keyset: a parsed JWKS document, RSA keys by kid.  See keyset.h. */
#include "keyset.h"

#include <limits.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/x509.h>

#include "log.h"

#define KEYSET_MAX_JSON		(1024 * 1024)	/* bytes of document */
#define KEYSET_MAX_KEYS		32		/* entries in "keys"; Cloudflare has 2 */
#define KEYSET_MIN_N_BITS	2048
#define KEYSET_MAX_N_BITS	(KEYSET_MAX_N_BYTES * 8)
#define KEYSET_MAX_E_BYTES	8

struct key {
	char		 kid[KEYSET_MAX_KID + 1];
	EVP_PKEY	*pkey;
};

struct keyset {
	atomic_int	 refs;
	unsigned long	 generation;
	size_t		 n;
	struct key	 keys[KEYSET_MAX_KEYS];
};

/* base64url alphabet value of each byte, -1 outside it */
static const signed char b64url_values[256] = {
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 62, -1, -1,
	52, 53, 54, 55, 56, 57, 58, 59, 60, 61, -1, -1, -1, -1, -1, -1,
	-1,  0,  1,  2,  3,  4,  5,  6,  7,  8,  9, 10, 11, 12, 13, 14,
	15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, -1, -1, -1, -1, 63,
	-1, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40,
	41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
};

/* The n >= 2 characters at p (at most 4 read) into 24 bits, missing ones
 * as zero; -1 when one is outside the alphabet. */
static long
b64url_quad(const unsigned char *p, size_t n)
{
	int a = b64url_values[p[0]], b = b64url_values[p[1]];
	int c = n > 2 ? b64url_values[p[2]] : 0, d = n > 3 ? b64url_values[p[3]] : 0;

	if ((a | b | c | d) < 0)
		return -1;
	return (long)a << 18 | (long)b << 12 | (long)c << 6 | (long)d;
}

/* A table lookup per character, three bytes per four (on the token path of
 * every request). */
long
keyset_b64url_decode(const char *in, size_t inlen, unsigned char *out,
    size_t outsz)
{
	const unsigned char *p = (const unsigned char *)in;
	size_t rest = inlen % 4, olen;
	long v = 0;

	/* 4n+1 characters can never be valid base64 */
	if (rest == 1 || inlen / 4 * 3 + 3 > (size_t)LONG_MAX)
		return -1;
	olen = inlen / 4 * 3 + (rest == 0 ? 0 : rest - 1);
	if (out != NULL && olen > outsz)
		return -1;
	for (size_t i = 0, o = 0; i < inlen; i += 4, o += 3) {
		if ((v = b64url_quad(p + i, inlen - i)) < 0)
			return -1;
		if (out == NULL)
			continue;
		out[o] = (unsigned char)(v >> 16);
		if (o + 1 < olen)
			out[o + 1] = (unsigned char)(v >> 8);
		if (o + 2 < olen)
			out[o + 2] = (unsigned char)v;
	}
	/* the 2 or 4 bits after the last byte: only all-zero is canonical */
	if (rest == 2 && (v & 0xffff) != 0)
		return -1;
	if (rest == 3 && (v & 0xff) != 0)
		return -1;
	return (long)olen;
}

/* Decodes a base64url JSON string member into buf; strips leading zero bytes
 * (big-endian integers).  Returns the length or -1. */
static long
b64_member(json_t *obj, const char *name, unsigned char *buf, size_t bufsz)
{
	json_t *v = json_object_get(obj, name);
	long n, skip = 0;

	if (!json_is_string(v))
		return -1;
	n = keyset_b64url_decode(json_string_value(v), json_string_length(v),
	    buf, bufsz);
	while (skip < n && buf[skip] == 0)
		skip++;
	if (n <= 0 || skip == n)
		return -1;
	memmove(buf, buf + skip, (size_t)(n - skip));
	return n - skip;
}

static EVP_PKEY *
rsa_from_ne(const unsigned char *n, size_t nlen, const unsigned char *e,
    size_t elen)
{
	OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
	OSSL_PARAM *params = NULL;
	EVP_PKEY_CTX *ctx = NULL;
	EVP_PKEY *pkey = NULL;
	BIGNUM *bn = BN_bin2bn(n, (int)nlen, NULL);
	BIGNUM *be = BN_bin2bn(e, (int)elen, NULL);

	if (bld == NULL || bn == NULL || be == NULL ||
	    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn) ||
	    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, be) ||
	    (params = OSSL_PARAM_BLD_to_param(bld)) == NULL ||
	    (ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL)) == NULL ||
	    EVP_PKEY_fromdata_init(ctx) <= 0 ||
	    EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) <= 0)
		pkey = NULL;
	EVP_PKEY_CTX_free(ctx);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	BN_free(bn);
	BN_free(be);
	return pkey;
}

/* 1 when member `name` is the string `want`. */
static int
member_is(json_t *obj, const char *name, const char *want)
{
	json_t *v = json_object_get(obj, name);

	return json_is_string(v) && strcmp(json_string_value(v), want) == 0;
}

static int
absent_or(json_t *obj, const char *name, const char *want)
{
	return json_object_get(obj, name) == NULL || member_is(obj, name, want);
}

static int
has_kid(const struct keyset *ks, const char *kid)
{
	return keyset_key(ks, kid) != NULL;
}

/* 1 when the big-endian integer e[0..elen) is 65537. */
static int
e_is_f4(const unsigned char *e, long elen)
{
	static const unsigned char f4[] = { 0x01, 0x00, 0x01 };

	return elen == (long)sizeof(f4) && memcmp(e, f4, sizeof(f4)) == 0;
}

/* OpenSSL's public-key validation (see keyset.h); 1 when it passes. */
static int
public_check_ok(EVP_PKEY *pkey)
{
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
	int ok = ctx != NULL && EVP_PKEY_public_check(ctx) == 1;

	EVP_PKEY_CTX_free(ctx);
	ERR_clear_error();
	return ok;
}

/* The RSA key of a JWK: n of 2048-8192 bits, e = 65537, OpenSSL's public
 * check passed.  Returns NULL with *pkey set, or why it was refused. */
static const char *
rsa_key(json_t *jwk, EVP_PKEY **pkey)
{
	unsigned char n[KEYSET_MAX_N_BYTES + 1], e[KEYSET_MAX_E_BYTES];
	long nlen, elen, bits;

	*pkey = NULL;
	if ((nlen = b64_member(jwk, "n", n, sizeof(n))) < 0 ||
	    nlen > KEYSET_MAX_N_BYTES)
		return "bad or too large n";
	bits = (nlen - 1) * 8;
	for (unsigned char top = n[0]; top != 0; top >>= 1)
		bits++;
	if (bits < KEYSET_MIN_N_BITS || bits > KEYSET_MAX_N_BITS)
		return "n is not 2048-8192 bits";
	if ((elen = b64_member(jwk, "e", e, sizeof(e))) < 0)
		return "bad e";
	if (!e_is_f4(e, elen))
		return "e is not 65537";
	if ((*pkey = rsa_from_ne(n, (size_t)nlen, e, (size_t)elen)) == NULL)
		return "bad RSA key";
	if (!public_check_ok(*pkey)) {
		EVP_PKEY_free(*pkey);
		*pkey = NULL;
		return "RSA public key check failed";
	}
	return NULL;
}

/* Adds one JWK to ks.  Returns NULL or why the key was skipped. */
static const char *
add_key(struct keyset *ks, json_t *jwk)
{
	json_t *kid = json_object_get(jwk, "kid");
	struct key *k = &ks->keys[ks->n];
	const char *why;
	EVP_PKEY *pkey;

	if (!json_is_object(jwk))
		return "key is not an object";
	if (!member_is(jwk, "kty", "RSA"))
		return "kty is not RSA";
	if (!absent_or(jwk, "alg", "RS256"))
		return "alg is not RS256";
	if (!absent_or(jwk, "use", "sig"))
		return "use is not sig";
	if (!json_is_string(kid) || json_string_length(kid) == 0 ||
	    json_string_length(kid) > KEYSET_MAX_KID ||
	    strlen(json_string_value(kid)) != json_string_length(kid))
		return "bad kid";
	if (has_kid(ks, json_string_value(kid)))
		return "duplicate kid";
	if ((why = rsa_key(jwk, &pkey)) != NULL)
		return why;
	k->pkey = pkey;
	memcpy(k->kid, json_string_value(kid), json_string_length(kid) + 1);
	ks->n++;
	return NULL;
}

/* SHA-256 over every kid and public key (DER): equal key sets get equal generations, so a
 * refresh that changes nothing keeps the verified-token cache. */
static unsigned long
generation_of(const struct keyset *ks)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned long gen = 0;
	unsigned char *der = NULL;
	int derlen, ok;

	if (ctx == NULL || !EVP_DigestInit_ex(ctx, EVP_sha256(), NULL))
		goto out;
	for (size_t i = 0; i < ks->n; i++) {
		if ((derlen = i2d_PUBKEY(ks->keys[i].pkey, &der)) <= 0)
			goto out;
		ok = EVP_DigestUpdate(ctx, ks->keys[i].kid, strlen(ks->keys[i].kid) + 1) &&
		    EVP_DigestUpdate(ctx, der, (size_t)derlen);
		OPENSSL_free(der);
		der = NULL;
		if (!ok)
			goto out;
	}
	if (EVP_DigestFinal_ex(ctx, md, NULL))
		memcpy(&gen, md, sizeof(gen));
out:
	EVP_MD_CTX_free(ctx);
	return gen;
}

/* For the log: a JWK's kid, "-" when it has none. */
static const char *
kid_of(json_t *jwk)
{
	json_t *kid = json_object_get(jwk, "kid");

	return json_is_string(kid) ? json_string_value(kid) : "-";
}

static const char *
add_keys(struct keyset *ks, json_t *keys)
{
	const char *first_skip = NULL, *why;
	size_t i;
	json_t *jwk;

	if (!json_is_array(keys))
		return "no keys array";
	if (json_array_size(keys) > KEYSET_MAX_KEYS)
		return "too many keys";
	json_array_foreach(keys, i, jwk) {
		if ((why = add_key(ks, jwk)) == NULL)
			continue;
		log_warnx("key set: key %zu skipped: kid=%.*s reason=%s", i,
		    KEYSET_MAX_KID, kid_of(jwk), why);
		if (first_skip == NULL)
			first_skip = why;
	}
	if (ks->n == 0)
		return first_skip != NULL ? first_skip : "no keys";
	return NULL;
}

struct keyset *
keyset_parse(const char *json, size_t len, const char **errstr)
{
	struct keyset *ks;
	json_error_t jerr;
	json_t *doc;

	if (len > KEYSET_MAX_JSON) {
		*errstr = "document too large";
		return NULL;
	}
	if ((doc = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr)) == NULL) {
		*errstr = "malformed JSON";
		return NULL;
	}
	if ((ks = calloc(1, sizeof(*ks))) == NULL) {
		*errstr = "out of memory";
		json_decref(doc);
		return NULL;
	}
	atomic_init(&ks->refs, 1);
	if ((*errstr = add_keys(ks, json_object_get(doc, "keys"))) != NULL) {
		keyset_unref(ks);
		ks = NULL;
	} else
		ks->generation = generation_of(ks);
	json_decref(doc);
	return ks;
}

struct keyset *
keyset_ref(struct keyset *ks)
{
	atomic_fetch_add(&ks->refs, 1);
	return ks;
}

void
keyset_unref(struct keyset *ks)
{
	if (ks == NULL || atomic_fetch_sub(&ks->refs, 1) > 1)
		return;
	for (size_t i = 0; i < ks->n; i++)
		EVP_PKEY_free(ks->keys[i].pkey);
	free(ks);
}

size_t
keyset_count(const struct keyset *ks)
{
	return ks->n;
}

const char *
keyset_kid(const struct keyset *ks, size_t i)
{
	return i < ks->n ? ks->keys[i].kid : NULL;
}

EVP_PKEY *
keyset_key(const struct keyset *ks, const char *kid)
{
	for (size_t i = 0; i < ks->n; i++)
		if (strcmp(ks->keys[i].kid, kid) == 0)
			return ks->keys[i].pkey;
	return NULL;
}

unsigned long
keyset_generation(const struct keyset *ks)
{
	return ks->generation;
}
