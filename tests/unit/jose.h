/*
 * jose.h: JOSE pieces built by hand for the keyset and access tests, so a
 * test can make what no library would emit: canonical base64url of any
 * bytes, RSA JWKs and public keys from any (n, e), a modulus of any size.
 * Include after <cmocka.h>.
 */
#ifndef KAKIKOMI_TEST_JOSE_H
#define KAKIKOMI_TEST_JOSE_H

#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>

/* Canonical base64url without padding of in[0..n) (malloc'd). */
static inline char *
jose_b64url(const unsigned char *in, size_t n)
{
	static const char abc[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	char *out = malloc(n / 3 * 4 + 5), *o = out;
	unsigned acc = 0, bits = 0;

	assert_non_null(out);
	for (size_t i = 0; i < n; i++) {
		acc = (acc << 8) | in[i];
		for (bits += 8; bits >= 6; bits -= 6)
			*o++ = abc[(acc >> (bits - 6)) & 63];
	}
	if (bits > 0)
		*o++ = abc[(acc << (6 - bits)) & 63];
	*o = '\0';
	return out;
}

static inline char *
jose_b64url_str(const char *s)
{
	return jose_b64url((const unsigned char *)s, strlen(s));
}

/* A BIGNUM as base64url of its minimal big-endian bytes (malloc'd). */
static inline char *
jose_b64url_bn(const BIGNUM *bn)
{
	int len = BN_num_bytes(bn);
	unsigned char *buf = malloc(len > 0 ? (size_t)len : 1);
	char *s;

	assert_non_null(buf);
	BN_bn2bin(bn, buf);
	s = jose_b64url(buf, (size_t)len);
	free(buf);
	return s;
}

/* {"kid","kty":"RSA","alg":"RS256","use":"sig","n","e"} (new reference). */
static inline json_t *
jose_jwk(const BIGNUM *n, const BIGNUM *e, const char *kid)
{
	char *n64 = jose_b64url_bn(n), *e64 = jose_b64url_bn(e);
	json_t *jwk = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s}", "kid", kid,
	    "kty", "RSA", "alg", "RS256", "use", "sig", "n", n64, "e", e64);

	assert_non_null(jwk);
	free(n64);
	free(e64);
	return jwk;
}

/* A public key from (n, e) with no validation at all: what a verifier
 * that trusts its key set would use.  Caller frees. */
static inline EVP_PKEY *
jose_pkey(const BIGNUM *n, const BIGNUM *e)
{
	OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
	EVP_PKEY *pkey = NULL;
	OSSL_PARAM *params;

	assert_non_null(bld);
	assert_non_null(ctx);
	assert_true(OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n));
	assert_true(OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e));
	params = OSSL_PARAM_BLD_to_param(bld);
	assert_non_null(params);
	assert_int_equal(EVP_PKEY_fromdata_init(ctx), 1);
	assert_int_equal(EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params), 1);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	EVP_PKEY_CTX_free(ctx);
	return pkey;
}

/* The modulus of an RSA key (caller frees). */
static inline BIGNUM *
jose_pkey_n(const EVP_PKEY *pkey)
{
	BIGNUM *n = NULL;

	assert_int_equal(EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_N, &n), 1);
	return n;
}

/* A random odd composite of exactly `bits` bits with no prime factor below
 * 752: what OpenSSL's public check cannot tell from a real modulus (it has
 * no private half to check), so it stands in for keys too slow to generate. */
static inline BIGNUM *
jose_random_modulus(int bits)
{
	BIGNUM *n = BN_new();
	int clean;

	assert_non_null(n);
	do {
		assert_int_equal(BN_rand(n, bits, BN_RAND_TOP_ONE, BN_RAND_BOTTOM_ODD), 1);
		clean = 1;
		for (BN_ULONG p = 3; p < 752 && clean; p += 2)
			clean = BN_mod_word(n, p) != 0;
	} while (!clean || BN_check_prime(n, NULL, NULL) != 0);
	return n;
}

#endif
