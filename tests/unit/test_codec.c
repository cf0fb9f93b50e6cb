/*
 * codec: snappy block and framing detection, the declared-length cap,
 * gzip / raw deflate under the decoded-size cap, bombs, and the readings Go's
 * compress/gzip and compress/flate (Loki) would make of the same bytes.
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

/*
 * Loki's "deflate" is Go's flate.NewReader: raw RFC 1951.  A zlib-wrapped
 * stream is not deflate there (Go reads 78 9c as a stored block whose
 * LEN/NLEN do not match: corrupt input), so kakikomi refuses it too.
 */
static void
test_deflate_zlib_wrapped_is_refused(void **state)
{
	static const char	 text[] = "{\"streams\":[]}";
	uint8_t			*z, *dec = NULL;
	size_t			 zlen, declen;
	const char		*errstr = NULL;

	z = zcompress(text, sizeof(text), 15, &zlen);
	assert_int_equal(codec_inflate(CODEC_DEFLATE, z, zlen, 1 << 20, &dec,
	    &declen, &errstr), CODEC_MALFORMED);
	assert_null(dec);
	free(z);
}

/*
 * Bytes valid both as zlib and as raw deflate, with different contents
 * (bodies.h): kakikomi must read them as Go's compress/flate does, the raw
 * way, never as the zlib stream zlib's own inflate sees.
 */
static void
test_deflate_polyglot_is_read_raw(void **state)
{
	uint8_t		*poly, *raw, *dec, *zdec;
	size_t		 rawlen, declen;
	uLongf		 zlen = TB_POLY_D;
	const char	*errstr = NULL;

	poly = tb_deflate_polyglot("{\"streams\":[{\"pad\":\"", "\"}]}", &raw,
	    &rawlen);
	zdec = malloc(zlen);
	assert_non_null(zdec);
	assert_int_equal(uncompress(zdec, &zlen, poly, TB_POLY_LEN), Z_OK);
	assert_int_equal(zlen, TB_POLY_D);
	assert_memory_equal(zdec, poly + 7, TB_POLY_D);
	if (codec_inflate(CODEC_DEFLATE, poly, TB_POLY_LEN, 1 << 20, &dec,
	    &declen, &errstr) != CODEC_OK)
		fail_msg("polyglot refused as raw deflate: %s", errstr);
	assert_int_equal(declen, rawlen);
	assert_memory_equal(dec, raw, rawlen);
	assert_true(declen != zlen || memcmp(dec, zdec, zlen) != 0);
	free(dec);
	free(zdec);
	free(raw);
	free(poly);
}

/*
 * Go's flate reader stops at the final block and never looks further; a
 * byte after it is refused here (kakikomi forwards the inflated bytes, so
 * being stricter than Loki cannot make the two readings differ).
 */
static void
test_deflate_trailing_bytes(void **state)
{
	uint8_t		*z, *dec = NULL;
	size_t		 zlen, declen;
	const char	*errstr = NULL;

	z = zcompress("abc", 3, -15, &zlen);
	z = realloc(z, zlen + 1);
	assert_non_null(z);
	z[zlen] = 0;
	assert_int_equal(codec_inflate(CODEC_DEFLATE, z, zlen + 1, 100, &dec,
	    &declen, &errstr), CODEC_MALFORMED);
	assert_string_equal(errstr, "trailing data after the compressed stream");
	assert_int_equal(codec_inflate(CODEC_DEFLATE, z, zlen, 100, &dec,
	    &declen, &errstr), CODEC_OK);
	assert_memory_equal(dec, "abc", 3);
	free(dec);
	free(z);
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
	/* Go's gzip.Reader (multistream) refuses anything after the last
	 * member that is not another member: "gzip: invalid header". */
	two[alen] = 0;
	assert_int_equal(codec_inflate(CODEC_GZIP, two, alen + 1, 100, &dec,
	    &declen, &errstr), CODEC_MALFORMED);
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
		cmocka_unit_test(test_deflate_zlib_wrapped_is_refused),
		cmocka_unit_test(test_deflate_polyglot_is_read_raw),
		cmocka_unit_test(test_deflate_trailing_bytes),
		cmocka_unit_test(test_deflate_raw),
		cmocka_unit_test(test_gzip_fixture),
		cmocka_unit_test(test_gzip_members_and_trailing_garbage),
		cmocka_unit_test(test_gzip_bomb),
		cmocka_unit_test(test_inflate_garbage),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
