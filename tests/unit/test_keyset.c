/* Unit tests for keyset.c: JWKS parsing, key filtering, bounds, base64url. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include "fixture.h"
#include <jansson.h>

#include <openssl/pem.h>

#include "jose.h"
#include "keyset.h"

#define TD "../shared/testdata/access/"


/* The first line of a .kid file. */
static void
read_kid(const char *path, char *kid, size_t kidsz)
{
	size_t len;
	char *s = fixture_read(path, &len);

	s[strcspn(s, "\r\n")] = '\0';
	snprintf(kid, kidsz, "%s", s);
	free(s);
}

static struct keyset *
parse_str(const char *json, const char **errstr)
{
	*errstr = NULL;
	return keyset_parse(json, strlen(json), errstr);
}

/* keys[i] of certs.json, as a new JSON object the caller may modify. */
static json_t *
testdata_jwk(size_t i)
{
	json_t *doc = json_load_file(TD "certs.json", 0, NULL), *k;

	assert_non_null(doc);
	k = json_deep_copy(json_array_get(json_object_get(doc, "keys"), i));
	assert_non_null(k);
	json_decref(doc);
	return k;
}

/* Parses {"keys":[...]} built from the given JWK objects (references stolen). */
static struct keyset *
parse_keys(const char **errstr, size_t n, ...)
{
	json_t *doc = json_object(), *keys = json_array();
	struct keyset *ks;
	va_list ap;
	char *s;

	va_start(ap, n);
	for (size_t i = 0; i < n; i++)
		json_array_append_new(keys, va_arg(ap, json_t *));
	va_end(ap);
	json_object_set_new(doc, "keys", keys);
	s = json_dumps(doc, 0);
	ks = parse_str(s, errstr);
	free(s);
	json_decref(doc);
	return ks;
}

/* The keyset's key equals the public key in a PEM file. */
static void
assert_key_is(EVP_PKEY *got, const char *pemfile)
{
	size_t len;
	char *pem = fixture_read(pemfile, &len);
	BIO *bio = BIO_new_mem_buf(pem, (int)len);
	EVP_PKEY *want = bio ? PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL) : NULL;

	assert_non_null(got);
	assert_non_null(want);
	if (EVP_PKEY_eq(got, want) != 1)
		fail_msg("key differs from %s", pemfile);
	EVP_PKEY_free(want);
	BIO_free(bio);
	free(pem);
}

static void
test_testdata_two_keys(void **state)
{
	char cur[128], prev[128];
	const char *err = NULL;
	size_t len;
	char *json = fixture_read(TD "certs.json", &len);
	struct keyset *ks = keyset_parse(json, len, &err);

	read_kid(TD "current.kid", cur, sizeof(cur));
	read_kid(TD "previous.kid", prev, sizeof(prev));
	assert_non_null(ks);
	assert_int_equal(keyset_count(ks), 2);
	assert_string_equal(keyset_kid(ks, 0), cur);
	assert_string_equal(keyset_kid(ks, 1), prev);
	assert_null(keyset_kid(ks, 2));

	/* the same public keys as the testdata PEM files */
	assert_key_is(keyset_key(ks, cur), TD "current-public.pem");
	assert_key_is(keyset_key(ks, prev), TD "previous-public.pem");

	/* the certificate in public_cert never counts as a key */
	assert_null(keyset_key(ks, "nope"));
	keyset_unref(ks);
	free(json);
}

static void
test_generation(void **state)
{
	const char *err;
	size_t len;
	char *json = fixture_read(TD "certs.json", &len);
	struct keyset *a = keyset_parse(json, len, &err);
	struct keyset *b = keyset_parse(json, len, &err);
	struct keyset *one = parse_keys(&err, 1, testdata_jwk(0));

	assert_non_null(a);
	assert_non_null(b);
	assert_non_null(one);
	/* a refresh that changes nothing must not flush the token cache */
	assert_true(keyset_generation(a) == keyset_generation(b));
	assert_true(keyset_generation(a) != keyset_generation(one));
	keyset_unref(a);
	keyset_unref(b);
	keyset_unref(one);
	free(json);
}

static void
test_refcount(void **state)
{
	const char *err;
	struct keyset *ks = parse_keys(&err, 1, testdata_jwk(0));

	assert_non_null(ks);
	assert_ptr_equal(keyset_ref(ks), ks);
	keyset_unref(ks);
	/* still alive: ASan would report a use after free here */
	assert_int_equal(keyset_count(ks), 1);
	keyset_unref(ks);
	keyset_unref(NULL);
}

static void
test_skips_unusable_keys(void **state)
{
	json_t *ec = testdata_jwk(0), *rs384 = testdata_jwk(0);
	json_t *enc = testdata_jwk(0), *nokty = testdata_jwk(0);
	json_t *good = testdata_jwk(1), *dup = testdata_jwk(1);
	json_t *noalg = testdata_jwk(0);
	const char *err;
	struct keyset *ks;

	json_object_set_new(ec, "kty", json_string("EC"));
	json_object_set_new(ec, "kid", json_string("ec"));
	json_object_set_new(rs384, "alg", json_string("RS384"));
	json_object_set_new(rs384, "kid", json_string("rs384"));
	json_object_set_new(enc, "use", json_string("enc"));
	json_object_set_new(enc, "kid", json_string("enc"));
	json_object_del(nokty, "kty");
	json_object_set_new(nokty, "kid", json_string("nokty"));
	/* alg and use are optional in a JWK */
	json_object_del(noalg, "alg");
	json_object_del(noalg, "use");
	json_object_set_new(noalg, "kid", json_string("noalg"));

	ks = parse_keys(&err, 7, ec, rs384, enc, nokty, good, dup, noalg);
	assert_non_null(ks);
	assert_int_equal(keyset_count(ks), 2);
	assert_string_equal(keyset_kid(ks, 0),
	    "a60ad6790041848dfd419c057591627b451010eebd877158b170ec371c9a6758");
	assert_string_equal(keyset_kid(ks, 1), "noalg");
	assert_null(keyset_key(ks, "ec"));
	assert_null(keyset_key(ks, "rs384"));
	assert_null(keyset_key(ks, "enc"));
	assert_null(keyset_key(ks, "nokty"));
	keyset_unref(ks);
}

/* err is read here, after the call that sets it has run. */
static void
expect_refused(struct keyset *ks, const char **err, const char *want)
{
	if (ks != NULL)
		fail_msg("parsed, expected refusal \"%s\"", want);
	assert_non_null(*err);
	assert_string_equal(*err, want);
}

static void
test_malformed_documents(void **state)
{
	const char *err;

	expect_refused(parse_str("{\"keys\":[", &err), &err, "malformed JSON");
	expect_refused(parse_str("", &err), &err, "malformed JSON");
	expect_refused(parse_str("{}", &err), &err, "no keys array");
	expect_refused(parse_str("{\"keys\":{}}", &err), &err, "no keys array");
	expect_refused(parse_str("{\"keys\":[]}", &err), &err, "no keys");
	expect_refused(parse_str("{\"keys\":[1]}", &err), &err, "key is not an object");
	expect_refused(parse_str("{\"keys\":[{\"kty\":\"EC\",\"kid\":\"x\"}]}", &err),
	    &err, "kty is not RSA");
	expect_refused(parse_str("{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"x\","
	    "\"n\":\"AQAB\",\"e\":\"AQAB\"}]}", &err), &err, "n is not 2048-8192 bits");
	expect_refused(parse_str("{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"x\","
	    "\"n\":\"A+B/\",\"e\":\"AQAB\"}]}", &err), &err, "bad or too large n");
	expect_refused(parse_str("{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"x\","
	    "\"e\":\"AQAB\"}]}", &err), &err, "bad or too large n");
}

static void
test_bounds(void **state)
{
	json_t *huge = testdata_jwk(0), *longkid = testdata_jwk(0);
	json_t *noe = testdata_jwk(0), *doc, *keys;
	char n[1400], kid[KEYSET_MAX_KID + 2];
	const char *err;
	char *s;

	/* 8200 bits: over the 8192-bit bound */
	memset(n, 'z', 1367);
	n[1367] = '\0';
	json_object_set_new(huge, "n", json_string(n));
	expect_refused(parse_keys(&err, 1, huge), &err, "bad or too large n");

	memset(kid, 'k', sizeof(kid) - 1);
	kid[sizeof(kid) - 1] = '\0';
	json_object_set_new(longkid, "kid", json_string(kid));
	expect_refused(parse_keys(&err, 1, longkid), &err, "bad kid");

	json_object_set_new(noe, "e", json_string("AQABAQABAQAB"));
	expect_refused(parse_keys(&err, 1, noe), &err, "bad e");

	doc = json_object();
	keys = json_array();
	for (int i = 0; i < 33; i++)
		json_array_append_new(keys, testdata_jwk(0));
	json_object_set_new(doc, "keys", keys);
	s = json_dumps(doc, 0);
	expect_refused(parse_str(s, &err), &err, "too many keys");
	free(s);
	json_decref(doc);
}

/* The testdata current key's modulus (2048 bits, a real key). */
static BIGNUM *
testdata_n(void)
{
	json_t *jwk = testdata_jwk(0);
	const char *n64 = json_string_value(json_object_get(jwk, "n"));
	unsigned char buf[KEYSET_MAX_N_BYTES];
	long len = keyset_b64url_decode(n64, strlen(n64), buf, sizeof(buf));
	BIGNUM *n;

	assert_true(len > 0);
	n = BN_bin2bn(buf, (int)len, NULL);
	assert_non_null(n);
	json_decref(jwk);
	return n;
}

/* OpenSSL's own verdict on (n, e), without kakikomi's rules. */
static int
openssl_public_check(const BIGNUM *n, const BIGNUM *e)
{
	EVP_PKEY *pkey = jose_pkey(n, e);
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
	int r = EVP_PKEY_public_check(ctx);

	assert_int_equal(EVP_PKEY_public_check_quick(ctx), r);
	EVP_PKEY_CTX_free(ctx);
	EVP_PKEY_free(pkey);
	return r == 1;
}

/* Parses a set of the one key (n, e). */
static struct keyset *
parse_ne(const BIGNUM *n, const BIGNUM *e, const char **err)
{
	return parse_keys(err, 1, jose_jwk(n, e, "k"));
}

static void
test_exponent(void **state)
{
	static const BN_ULONG bad[] = { 1, 2, 3, 5, 17, 65535, 65539, 0x100000001 };
	static const int openssl_passes[] = { 0, 0, 1, 1, 1, 1, 1, 1 };
	BIGNUM *n = testdata_n(), *e = BN_new();
	const char *err;
	struct keyset *ks;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(BN_set_word(e, bad[i]), 1);
		/* OpenSSL 3.0 refuses only e = 1 and even e (non-FIPS:
		 * ossl_rsa_check_public_exponent is "odd and > 1"); the rest
		 * are kakikomi's rule */
		assert_int_equal(openssl_public_check(n, e), openssl_passes[i]);
		expect_refused(parse_ne(n, e, &err), &err, "e is not 65537");
	}
	assert_int_equal(BN_set_word(e, 65537), 1);
	ks = parse_ne(n, e, &err);
	assert_non_null(ks);
	assert_int_equal(keyset_count(ks), 1);
	keyset_unref(ks);
	BN_free(e);
	BN_free(n);
}

/* Moduli OpenSSL's public check refuses: even, a small factor, prime. */
static void
test_modulus_checked(void **state)
{
	BIGNUM *n = testdata_n(), *e = BN_new(), *p = BN_new();
	const char *err;

	assert_int_equal(BN_set_word(e, 65537), 1);
	assert_int_equal(BN_sub_word(n, 1), 1);		/* even */
	assert_false(openssl_public_check(n, e));
	expect_refused(parse_ne(n, e, &err), &err, "RSA public key check failed");
	do
		assert_int_equal(BN_add_word(n, 1), 1);	/* odd, divisible by 3 */
	while (BN_mod_word(n, 2) == 0 || BN_mod_word(n, 3) != 0);
	assert_int_equal(BN_num_bits(n), 2048);
	assert_false(openssl_public_check(n, e));
	expect_refused(parse_ne(n, e, &err), &err, "RSA public key check failed");
	assert_int_equal(BN_generate_prime_ex(p, 2048, 0, NULL, NULL, NULL), 1);
	assert_false(openssl_public_check(p, e));
	expect_refused(parse_ne(p, e, &err), &err, "RSA public key check failed");
	BN_free(p);
	BN_free(e);
	BN_free(n);
}

static void
test_modulus_size(void **state)
{
	static const struct { int bits; const char *refused; } cases[] = {
		{ 1024, "n is not 2048-8192 bits" },
		{ 2047, "n is not 2048-8192 bits" },
		{ 2048, NULL },
		{ 4096, NULL },
		{ 8192, NULL },
		{ 8193, "bad or too large n" },
		{ 16384, "bad or too large n" },	/* OpenSSL itself allows 16384 */
	};
	BIGNUM *e = BN_new();
	const char *err;
	struct keyset *ks;

	assert_int_equal(BN_set_word(e, 65537), 1);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		BIGNUM *n = jose_random_modulus(cases[i].bits);

		ks = parse_ne(n, e, &err);
		if (cases[i].refused != NULL)
			expect_refused(ks, &err, cases[i].refused);
		else if (ks == NULL || keyset_count(ks) != 1)
			fail_msg("%d-bit modulus refused: %s", cases[i].bits, err);
		keyset_unref(ks);
		BN_free(n);
	}
	BN_free(e);
}

/* A refused key is skipped, the rest of the set still loads. */
static void
test_bad_key_skipped(void **state)
{
	BIGNUM *n = testdata_n(), *one = BN_new();
	json_t *good = testdata_jwk(1);
	const char *err;
	struct keyset *ks;

	assert_int_equal(BN_set_word(one, 1), 1);
	ks = parse_keys(&err, 2, jose_jwk(n, one, "e-is-one"), good);
	assert_non_null(ks);
	assert_int_equal(keyset_count(ks), 1);
	assert_string_equal(keyset_kid(ks, 0),
	    "a60ad6790041848dfd419c057591627b451010eebd877158b170ec371c9a6758");
	assert_null(keyset_key(ks, "e-is-one"));
	keyset_unref(ks);
	BN_free(one);
	BN_free(n);
}

static void
test_b64url(void **state)
{
	unsigned char out[8];

	assert_int_equal(keyset_b64url_decode("AQAB", 4, out, sizeof(out)), 3);
	assert_memory_equal(out, "\x01\x00\x01", 3);
	assert_int_equal(keyset_b64url_decode("-_8", 3, out, sizeof(out)), 2);
	assert_memory_equal(out, "\xfb\xff", 2);
	assert_int_equal(keyset_b64url_decode("", 0, out, sizeof(out)), 0);
	assert_int_equal(keyset_b64url_decode("AQ", 2, out, sizeof(out)), 1);
	/* standard-alphabet characters, padding and a 4n+1 length are refused */
	assert_int_equal(keyset_b64url_decode("A+B/", 4, out, sizeof(out)), -1);
	assert_int_equal(keyset_b64url_decode("AQ==", 4, out, sizeof(out)), -1);
	assert_int_equal(keyset_b64url_decode("AQABA", 5, out, sizeof(out)), -1);
	/* non-zero spare bits: "AR" and "AQ" would both decode to 0x01 */
	assert_int_equal(keyset_b64url_decode("AR", 2, out, sizeof(out)), -1);
	assert_int_equal(keyset_b64url_decode("-_9", 3, out, sizeof(out)), -1);
	assert_int_equal(keyset_b64url_decode("AQAC", 4, out, sizeof(out)), 3);
	/* out NULL: check and count only */
	assert_int_equal(keyset_b64url_decode("AQAB", 4, NULL, 0), 3);
	assert_int_equal(keyset_b64url_decode("AR", 2, NULL, 0), -1);
	/* never writes past outsz */
	assert_int_equal(keyset_b64url_decode("AQABAQAB", 8, out, 5), -1);
	assert_int_equal(keyset_b64url_decode("AQABAQAB", 8, out, 6), 6);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_testdata_two_keys),
		cmocka_unit_test(test_generation),
		cmocka_unit_test(test_refcount),
		cmocka_unit_test(test_skips_unusable_keys),
		cmocka_unit_test(test_malformed_documents),
		cmocka_unit_test(test_bounds),
		cmocka_unit_test(test_exponent),
		cmocka_unit_test(test_modulus_checked),
		cmocka_unit_test(test_modulus_size),
		cmocka_unit_test(test_bad_key_skipped),
		cmocka_unit_test(test_b64url),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
