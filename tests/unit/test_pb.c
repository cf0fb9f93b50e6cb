/*
 * pb: varints, every wire type, bounds, hostile lengths, the writer.
 */
#include "bodies.h"

struct varint_case {
	const char	*name;
	uint8_t		 in[12];
	size_t		 len;
	int		 rc;
	uint64_t	 v;
	size_t		 used;
};

static const struct varint_case varint_cases[] = {
	{ "zero", { 0x00 }, 1, 0, 0, 1 },
	{ "one byte max", { 0x7f }, 1, 0, 127, 1 },
	{ "two bytes", { 0xac, 0x02 }, 2, 0, 300, 2 },
	{ "uint64 max", { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	    0xff, 0x01 }, 10, 0, UINT64_MAX, 10 },
	{ "10th byte 2 overflows", { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	    0xff, 0xff, 0xff, 0x02 }, 10, -1, 0, 0 },
	{ "11 bytes", { 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
	    0x80, 0x80, 0x00 }, 11, -1, 0, 0 },
	{ "truncated", { 0x80, 0x80 }, 2, -1, 0, 0 },
	{ "empty", { 0 }, 0, -1, 0, 0 },
	{ "non-minimal zero", { 0x80, 0x00 }, 2, 0, 0, 2 },
	{ "stops at first terminator", { 0x01, 0x02 }, 2, 0, 1, 1 },
};

static void
test_varint_table(void **state)
{
	const struct varint_case	*c;
	const uint8_t			*p;
	uint64_t			 v;
	size_t				 i;
	int				 rc;

	for (i = 0; i < sizeof(varint_cases) / sizeof(varint_cases[0]); i++) {
		c = &varint_cases[i];
		p = c->in;
		v = 0;
		rc = pb_varint(&p, c->in + c->len, &v);
		if (rc != c->rc)
			fail_msg("varint case \"%s\": rc %d, want %d", c->name,
			    rc, c->rc);
		if (rc == 0 && (v != c->v || (size_t)(p - c->in) != c->used))
			fail_msg("varint case \"%s\": value %llu used %zu, want "
			    "%llu used %zu", c->name, (unsigned long long)v,
			    (size_t)(p - c->in), (unsigned long long)c->v,
			    c->used);
	}
}

static void
test_varint_size_and_roundtrip(void **state)
{
	static const uint64_t	 vals[] = { 0, 1, 127, 128, 16383, 16384,
	    UINT32_MAX, (uint64_t)1 << 63, UINT64_MAX };
	struct pb_buf		 b;
	const uint8_t		*p;
	uint64_t		 v;
	size_t			 i;

	for (i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
		pb_buf_init(&b, 0);
		pb_put_varint(&b, vals[i]);
		assert_int_equal(b.len, pb_varint_size(vals[i]));
		p = b.data;
		assert_int_equal(pb_varint(&p, b.data + b.len, &v), 0);
		assert_true(v == vals[i]);
		pb_buf_free(&b);
	}
	assert_int_equal(pb_varint_size(UINT64_MAX), 10);
}

/* One message with every wire type, in an unusual order. */
static void
test_next_every_wire_type(void **state)
{
	static const uint8_t	 msg[] = {
		0x2a, 0x03, 'a', 'b', 'c',		/* 5: len "abc" */
		0x08, 0x96, 0x01,			/* 1: varint 150 */
		0x11, 1, 2, 3, 4, 5, 6, 7, 8,		/* 2: i64 */
		0x1d, 9, 8, 7, 6,			/* 3: i32 */
		0x80, 0x01, 0x00,			/* 16: varint 0 */
	};
	struct pb_reader	 r;
	struct pb_field		 f;
	const char		*errstr = NULL;

	pb_reader_init(&r, msg, sizeof(msg));
	assert_int_equal(pb_next(&r, &f, &errstr), 1);
	assert_int_equal(f.num, 5);
	assert_int_equal(f.wt, PB_LEN);
	assert_int_equal(f.len, 3);
	assert_memory_equal(f.data, "abc", 3);
	assert_ptr_equal(f.start, msg);
	assert_int_equal(f.rawlen, 5);
	assert_int_equal(pb_next(&r, &f, &errstr), 1);
	assert_int_equal(f.num, 1);
	assert_int_equal(f.v, 150);
	assert_int_equal(pb_next(&r, &f, &errstr), 1);
	assert_int_equal(f.wt, PB_I64);
	assert_true(f.v == 0x0807060504030201ull);
	assert_int_equal(pb_next(&r, &f, &errstr), 1);
	assert_int_equal(f.wt, PB_I32);
	assert_int_equal(f.v, 0x06070809);
	assert_int_equal(pb_next(&r, &f, &errstr), 1);
	assert_int_equal(f.num, 16);
	assert_int_equal(pb_next(&r, &f, &errstr), 0);
}

struct bad_case {
	const char	*name;
	uint8_t		 in[16];
	size_t		 len;
};

static const struct bad_case bad_cases[] = {
	{ "group start", { 0x0b }, 1 },
	{ "group end", { 0x0c }, 1 },
	{ "wire type 6", { 0x0e }, 1 },
	{ "field number 0", { 0x02, 0x00 }, 2 },
	{ "truncated tag", { 0x80 }, 1 },
	{ "truncated varint value", { 0x08, 0x80 }, 2 },
	{ "truncated i64", { 0x09, 1, 2, 3 }, 4 },
	{ "truncated i32", { 0x0d, 1 }, 2 },
	{ "length past the end", { 0x0a, 0x05, 'a' }, 3 },
	{ "length missing", { 0x0a }, 1 },
	{ "10-byte length (2^63)", { 0x0a, 0x80, 0x80, 0x80, 0x80, 0x80,
	    0x80, 0x80, 0x80, 0x80, 0x01, 'x' }, 12 },
	{ "length 2^32 + 1 (no truncation to 1)", { 0x0a, 0x81, 0x80, 0x80,
	    0x80, 0x10, 'x', 'y' }, 8 },
	{ "field number over 2^29", { 0xf8, 0xff, 0xff, 0xff, 0x7f, 0x00 },
	    6 },
};

static void
test_next_malformed_table(void **state)
{
	const struct bad_case	*c;
	struct pb_reader	 r;
	struct pb_field		 f;
	const char		*errstr;
	size_t			 i;
	int			 rc;

	for (i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
		c = &bad_cases[i];
		errstr = NULL;
		pb_reader_init(&r, c->in, c->len);
		while ((rc = pb_next(&r, &f, &errstr)) == 1)
			;
		if (rc != -1)
			fail_msg("malformed case \"%s\" was accepted", c->name);
		if (errstr == NULL || errstr[0] == '\0')
			fail_msg("malformed case \"%s\" has no reason", c->name);
	}
}

static void
test_unpacked_and_packed_varints(void **state)
{
	struct pb_buf		 b, packed;
	struct pb_reader	 r;
	struct pb_field		 f;
	const char		*errstr;
	const uint8_t		*p;
	uint64_t		 v, sum = 0;

	pb_buf_init(&b, 0);
	pb_put_tag(&b, 4, PB_VARINT);
	pb_put_varint(&b, 7);
	pb_buf_init(&packed, 0);
	pb_put_varint(&packed, 300);
	pb_put_varint(&packed, 5);
	tb_msg(&b, 4, &packed);
	pb_reader_init(&r, b.data, b.len);
	while (pb_next(&r, &f, &errstr) == 1) {
		assert_int_equal(f.num, 4);
		if (f.wt == PB_VARINT) {
			sum += f.v;
			continue;
		}
		for (p = f.data; p < f.data + f.len; sum += v)
			assert_int_equal(pb_varint(&p, f.data + f.len, &v), 0);
	}
	assert_int_equal(sum, 312);
	pb_buf_free(&b);
}

static void
test_writer(void **state)
{
	struct pb_buf	 b;
	uint8_t		*p;
	char		 big[1000];

	pb_buf_init(&b, 0);
	assert_false(pb_buf_failed(&b));
	pb_put_bytes(&b, 1, "hi", 2);
	pb_put_tag(&b, 2, PB_VARINT);
	pb_put_varint(&b, 1);
	assert_int_equal(b.len, 6);
	assert_memory_equal(b.data, "\x0a\x02hi\x10\x01", 6);
	memset(big, 'z', sizeof(big));
	pb_put_bytes(&b, 3, big, sizeof(big));
	assert_int_equal(b.len, 6 + 1 + 2 + sizeof(big));
	assert_int_equal(pb_bytes_size(3, sizeof(big)), 1 + 2 + sizeof(big));
	p = pb_claim(&b, 4);
	assert_non_null(p);
	assert_ptr_equal(pb_encode_bytes(p, 1, "ab", 2), b.data + b.len);
	assert_false(pb_buf_failed(&b));
	pb_buf_free(&b);
}

static void
test_writer_overflow_is_sticky(void **state)
{
	struct pb_buf	b;

	pb_buf_init(&b, 16);
	pb_put_raw(&b, "abc", 3);
	assert_null(pb_claim(&b, SIZE_MAX - 1));
	assert_true(pb_buf_failed(&b));
	pb_put_raw(&b, "def", 3);
	assert_int_equal(b.len, 3);
	pb_buf_free(&b);
}

static void
test_put_except_copies_the_rest(void **state)
{
	struct pb_buf	b, out;

	pb_buf_init(&b, 0);
	tb_str(&b, 1, "label");
	tb_str(&b, 2, "sample");
	tb_str(&b, 1, "label2");
	tb_str(&b, 3, "ex");
	assert_int_equal(pb_size_except(b.data, b.len, 1), 8 + 4);
	tb_except(b.data, b.len, 1, &out);
	assert_int_equal(out.len, 12);
	assert_memory_equal(out.data, "\x12\x06sample\x1a\x02" "ex", 12);
	pb_buf_free(&out);
	pb_buf_free(&b);
}

/* pb_index: random access to one repeated field, other fields skipped. */
static void
test_index(void **state)
{
	struct pb_buf	 b;
	uint32_t	*offs;
	size_t		 n;
	const uint8_t	*p;
	size_t		 plen;
	const char	*errstr = NULL;

	pb_buf_init(&b, 0);
	pb_put_bytes(&b, 4, "", 0);
	pb_put_tag(&b, 5, PB_VARINT);
	pb_put_varint(&b, 300);
	pb_put_bytes(&b, 4, "provider", 8);
	pb_put_bytes(&b, 6, "x", 1);
	assert_int_equal(pb_index(b.data, b.len, 4, &offs, &n, &errstr), 0);
	assert_int_equal(n, 2);
	pb_indexed(b.data, offs[0], &p, &plen);
	assert_non_null(p);
	assert_int_equal(plen, 0);
	pb_indexed(b.data, offs[1], &p, &plen);
	assert_int_equal(plen, 8);
	assert_memory_equal(p, "provider", 8);
	free(offs);
	assert_int_equal(pb_index(b.data, b.len, 7, &offs, &n, &errstr), 0);
	assert_null(offs);
	assert_int_equal(n, 0);
	/* the indexed number with another wire type */
	assert_int_equal(pb_index(b.data, b.len, 5, &offs, &n, &errstr), -1);
	assert_string_equal(errstr, "wrong wire type for an indexed field");
	pb_buf_free(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_index),
		cmocka_unit_test(test_varint_table),
		cmocka_unit_test(test_varint_size_and_roundtrip),
		cmocka_unit_test(test_next_every_wire_type),
		cmocka_unit_test(test_next_malformed_table),
		cmocka_unit_test(test_unpacked_and_packed_varints),
		cmocka_unit_test(test_writer),
		cmocka_unit_test(test_writer_overflow_is_sticky),
		cmocka_unit_test(test_put_except_copies_the_rest),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
