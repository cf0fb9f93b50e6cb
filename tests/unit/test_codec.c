/*
 * codec: snappy block and framing detection, the declared-length cap,
 * gzip / deflate (zlib and raw) under the decoded-size cap, bombs.
 */
#include <zlib.h>

#include "bodies.h"

static void
test_snappy_roundtrip(void **state)
{
	static const char	 text[] = "remote write remote write remote write";
	uint8_t			*enc, *dec;
	size_t			 enclen, declen;
	const char		*errstr = NULL;

	assert_int_equal(codec_snappy_encode((const uint8_t *)text,
	    sizeof(text), &enc, &enclen), CODEC_OK);
	assert_int_equal(codec_snappy_decode(enc, enclen, sizeof(text), &dec,
	    &declen, &errstr), CODEC_OK);
	assert_int_equal(declen, sizeof(text));
	assert_memory_equal(dec, text, sizeof(text));
	free(dec);
	/* One byte under the declared size is over the cap. */
	assert_int_equal(codec_snappy_decode(enc, enclen, sizeof(text) - 1,
	    &dec, &declen, &errstr), CODEC_TOO_LARGE);
	free(enc);
}

static void
test_snappy_empty_message(void **state)
{
	static const uint8_t	 empty[] = { 0x00 };
	uint8_t			*dec = NULL;
	size_t			 declen = 99;
	const char		*errstr;

	assert_int_equal(codec_snappy_decode(empty, 1, 100, &dec, &declen,
	    &errstr), CODEC_OK);
	assert_non_null(dec);
	assert_int_equal(declen, 0);
	free(dec);
	assert_int_equal(codec_snappy_decode(empty, 0, 100, &dec, &declen,
	    &errstr), CODEC_MALFORMED);
}

static void
test_snappy_framed_is_refused(void **state)
{
	static const uint8_t	 framed[] = { 0xff, 0x06, 0x00, 0x00, 0x73,
	    0x4e, 0x61, 0x50, 0x70, 0x59, 0x01, 0x05, 0x00, 0x00 };
	uint8_t			*dec;
	size_t			 declen;
	const char		*errstr = NULL;

	assert_true(codec_snappy_is_framed(framed, sizeof(framed)));
	assert_false(codec_snappy_is_framed(framed, 9));
	assert_int_equal(codec_snappy_decode(framed, sizeof(framed), 1 << 20,
	    &dec, &declen, &errstr), CODEC_MALFORMED);
	assert_string_equal(errstr,
	    "framed snappy is not accepted; use the block format");
}

/* A preamble declaring 4 GiB - 1 must be refused before any allocation. */
static void
test_snappy_declares_4gib(void **state)
{
	static const uint8_t	 bomb[] = { 0xff, 0xff, 0xff, 0xff, 0x0f,
	    0x00, 0x61 };
	uint8_t			*dec = NULL;
	size_t			 declen;
	const char		*errstr = NULL;

	assert_int_equal(codec_snappy_decode(bomb, sizeof(bomb), 32u << 20,
	    &dec, &declen, &errstr), CODEC_TOO_LARGE);
	assert_null(dec);
	assert_string_equal(errstr, "snappy decoded size over the limit");
}

static void
test_snappy_corrupt(void **state)
{
	static const uint8_t	 lies[] = { 0x10, 0x00, 'a' };	/* 16 promised */
	static const uint8_t	 backref[] = { 0x08, 0x05, 0x00 };	/* copy before start */
	uint8_t			*dec;
	size_t			 declen;
	const char		*errstr = NULL;

	assert_int_equal(codec_snappy_decode(lies, sizeof(lies), 100, &dec,
	    &declen, &errstr), CODEC_MALFORMED);
	assert_int_equal(codec_snappy_decode(backref, sizeof(backref), 100,
	    &dec, &declen, &errstr), CODEC_MALFORMED);
	assert_string_equal(errstr, "corrupt snappy block");
}

/* zlib's deflate with windowBits: 31 gzip, 15 zlib, -15 raw. */
static uint8_t *
zcompress(const void *in, size_t len, int wbits, size_t *outlen)
{
	z_stream	 zs;
	uint8_t		*out;
	size_t		 cap = len + len / 100 + 1024;

	memset(&zs, 0, sizeof(zs));
	assert_int_equal(deflateInit2(&zs, 9, Z_DEFLATED, wbits, 9,
	    Z_DEFAULT_STRATEGY), Z_OK);
	out = malloc(cap);
	assert_non_null(out);
	zs.next_in = (Bytef *)(uintptr_t)in;
	zs.avail_in = (uInt)len;
	zs.next_out = out;
	zs.avail_out = (uInt)cap;
	assert_int_equal(deflate(&zs, Z_FINISH), Z_STREAM_END);
	*outlen = zs.total_out;
	deflateEnd(&zs);
	return out;
}

static void
check_inflate(enum codec_zkind kind, int wbits)
{
	static const char	 text[] = "{\"streams\":[{\"stream\":{\"a\":\"b\"}}]}";
	uint8_t			*z, *dec;
	size_t			 zlen, declen;
	const char		*errstr = NULL;

	z = zcompress(text, sizeof(text), wbits, &zlen);
	if (codec_inflate(kind, z, zlen, 1 << 20, &dec, &declen, &errstr) !=
	    CODEC_OK)
		fail_msg("inflate (wbits %d) failed: %s", wbits, errstr);
	assert_int_equal(declen, sizeof(text));
	assert_memory_equal(dec, text, sizeof(text));
	free(dec);
	/* Exactly at the cap is fine, one byte less is too large. */
	assert_int_equal(codec_inflate(kind, z, zlen, sizeof(text), &dec,
	    &declen, &errstr), CODEC_OK);
	free(dec);
	assert_int_equal(codec_inflate(kind, z, zlen, sizeof(text) - 1, &dec,
	    &declen, &errstr), CODEC_TOO_LARGE);
	/* Truncated stream. */
	assert_int_equal(codec_inflate(kind, z, zlen - 3, 1 << 20, &dec,
	    &declen, &errstr), CODEC_MALFORMED);
	free(z);
}

static void
test_gzip(void **state)
{
	check_inflate(CODEC_GZIP, 31);
}

static void
test_deflate_zlib_wrapped(void **state)
{
	check_inflate(CODEC_DEFLATE, 15);
}

static void
test_deflate_raw(void **state)
{
	check_inflate(CODEC_DEFLATE, -15);
}

static void
test_gzip_fixture(void **state)
{
	uint8_t		*gz, *json, *dec;
	size_t		 gzlen, jsonlen, declen;
	const char	*errstr = NULL;

	gz = tb_read(TESTDATA "loki-json/push.json.gz", &gzlen);
	json = tb_read(TESTDATA "loki-json/push.json", &jsonlen);
	assert_int_equal(codec_inflate(CODEC_GZIP, gz, gzlen, 1 << 20, &dec,
	    &declen, &errstr), CODEC_OK);
	assert_int_equal(declen, jsonlen);
	assert_memory_equal(dec, json, jsonlen);
	free(dec);
	free(gz);
	free(json);
}

static void
test_gzip_members_and_trailing_garbage(void **state)
{
	uint8_t		*a, *two, *dec;
	size_t		 alen, declen;
	const char	*errstr = NULL;

	a = zcompress("abc", 3, 31, &alen);
	two = malloc(2 * alen + 1);
	assert_non_null(two);
	memcpy(two, a, alen);
	memcpy(two + alen, a, alen);
	assert_int_equal(codec_inflate(CODEC_GZIP, two, 2 * alen, 100, &dec,
	    &declen, &errstr), CODEC_OK);
	assert_int_equal(declen, 6);
	assert_memory_equal(dec, "abcabc", 6);
	free(dec);
	two[alen] = 'X';	/* a second "member" that is not gzip */
	assert_int_equal(codec_inflate(CODEC_GZIP, two, alen + 1, 100, &dec,
	    &declen, &errstr), CODEC_MALFORMED);
	assert_int_equal(codec_inflate(CODEC_GZIP, (const uint8_t *)"", 0,
	    100, &dec, &declen, &errstr), CODEC_MALFORMED);
	free(two);
	free(a);
}

/* 64 MiB of zeros in ~64 KiB of gzip must stop at the 1 MiB cap. */
static void
test_gzip_bomb(void **state)
{
	uint8_t		*zeros, *z, *dec = NULL;
	size_t		 zlen, declen;
	const char	*errstr = NULL;
	size_t		 n = 64u << 20;

	zeros = calloc(1, n);
	assert_non_null(zeros);
	z = zcompress(zeros, n, 31, &zlen);
	free(zeros);
	assert_true(zlen < 200000);
	assert_int_equal(codec_inflate(CODEC_GZIP, z, zlen, 1u << 20, &dec,
	    &declen, &errstr), CODEC_TOO_LARGE);
	assert_null(dec);
	assert_string_equal(errstr, "decompressed size over the limit");
	free(z);
}

static void
test_inflate_garbage(void **state)
{
	static const uint8_t	 junk[] = "this is not compressed at all";
	uint8_t			*dec;
	size_t			 declen;
	const char		*errstr = NULL;

	assert_int_equal(codec_inflate(CODEC_GZIP, junk, sizeof(junk), 100,
	    &dec, &declen, &errstr), CODEC_MALFORMED);
	assert_int_equal(codec_inflate(CODEC_DEFLATE, junk, sizeof(junk), 100,
	    &dec, &declen, &errstr), CODEC_MALFORMED);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_snappy_roundtrip),
		cmocka_unit_test(test_snappy_empty_message),
		cmocka_unit_test(test_snappy_framed_is_refused),
		cmocka_unit_test(test_snappy_declares_4gib),
		cmocka_unit_test(test_snappy_corrupt),
		cmocka_unit_test(test_gzip),
		cmocka_unit_test(test_deflate_zlib_wrapped),
		cmocka_unit_test(test_deflate_raw),
		cmocka_unit_test(test_gzip_fixture),
		cmocka_unit_test(test_gzip_members_and_trailing_garbage),
		cmocka_unit_test(test_gzip_bomb),
		cmocka_unit_test(test_inflate_garbage),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
