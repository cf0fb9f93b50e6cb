/*
 * rwconv: remote write 2.0 -> 1.0, table-driven.  Each case builds a 2.0
 * Request and the exact 1.0 WriteRequest it must become, field by field in
 * the order rwconv writes (labels, then the series' samples, exemplars and
 * histograms as they came, then one MetricMetadata per family), and compares
 * the bytes; a mismatch prints both bodies in hex.  What Prometheus's 1.0
 * decoder (prompb/types.proto, storage/remote/write_handler.go write())
 * would do with the output is noted per case.
 */
#include "bodies.h"
#include "rwconv.h"

/* 2.0 builders: symbols table of a case, refs into it. */
static const char *const syms[] = {
	"", "__name__", "up", "provider", "tokyo", "job", "node",	/* 0-6 */
	"trace_id", "abc", "foo_bucket", "foo_count", "help text",	/* 7-11 */
	"seconds", "other help", "le", "1", "zone", "a",		/* 12-17 */
};
#define NSYMS	(sizeof(syms) / sizeof(syms[0]))

static void
v2_symbols(struct pb_buf *req)
{
	for (size_t i = 0; i < NSYMS; i++)
		tb_str(req, 4, syms[i]);
}

static void
refs(struct pb_buf *b, uint32_t field, const uint32_t *r, size_t n)
{
	struct pb_buf	p;

	pb_buf_init(&p, 0);
	for (size_t i = 0; i < n; i++)
		pb_put_varint(&p, r[i]);
	tb_msg(b, field, &p);
}

static void
fixed64(struct pb_buf *b, uint32_t field, uint64_t bits)
{
	uint8_t	le[8];

	for (int i = 0; i < 8; i++)
		le[i] = (uint8_t)(bits >> (8 * i));
	pb_put_tag(b, field, PB_I64);
	pb_put_raw(b, le, 8);
}

static void
varint(struct pb_buf *b, uint32_t field, uint64_t v)
{
	pb_put_tag(b, field, PB_VARINT);
	pb_put_varint(b, v);
}

/* A Sample (2.0 with start timestamp when start != 0, else 1.0 shape). */
static void
sample(struct pb_buf *ts, uint64_t bits, uint64_t t, uint64_t start)
{
	struct pb_buf	s;

	pb_buf_init(&s, 0);
	fixed64(&s, 1, bits);
	varint(&s, 2, t);
	if (start)
		varint(&s, 3, start);
	tb_msg(ts, 2, &s);
}

/* Histogram fields 1-16 as a 2.0 sender writes them (custom buckets). */
static void
histogram_body(struct pb_buf *h)
{
	struct pb_buf	span, packed;

	varint(h, 1, 7);			/* count_int */
	fixed64(h, 3, 0x4021000000000000);	/* sum 8.5 */
	varint(h, 4, 105);			/* schema -53, zigzag */
	fixed64(h, 5, 0x3f50624dd2f1a9fc);	/* zero_threshold */
	pb_buf_init(&span, 0);
	varint(&span, 1, 0);
	varint(&span, 2, 2);
	tb_msg(h, 11, &span);			/* positive_spans */
	pb_buf_init(&packed, 0);
	pb_put_varint(&packed, 6);		/* deltas 3, 4 zigzag */
	pb_put_varint(&packed, 8);
	tb_msg(h, 12, &packed);
	varint(h, 14, 2);			/* reset_hint NO */
	varint(h, 15, 1764036000000);		/* timestamp */
	pb_buf_init(&packed, 0);		/* custom_values 1, 2 (LE doubles) */
	pb_put_raw(&packed, "\0\0\0\0\0\0\xf0\x3f\0\0\0\0\0\0\0\x40", 16);
	tb_msg(h, 16, &packed);
}

static void
v1_labels(struct pb_buf *ts, const char *const *kv)
{
	for (; kv[0] != NULL; kv += 2)
		tb_label(ts, 1, kv[0], kv[1]);
}

static void
v1_exemplar(struct pb_buf *ts, const char *const *kv, uint64_t bits, uint64_t t)
{
	struct pb_buf	e;

	pb_buf_init(&e, 0);
	v1_labels(&e, kv);
	fixed64(&e, 2, bits);
	varint(&e, 3, t);
	tb_msg(ts, 3, &e);
}

static void
v1_meta(struct pb_buf *req, uint64_t type, const char *family, const char *help,
    const char *unit)
{
	struct pb_buf	m;

	pb_buf_init(&m, 0);
	varint(&m, 1, type);
	tb_str(&m, 2, family);
	if (*help)
		tb_str(&m, 4, help);
	if (*unit)
		tb_str(&m, 5, unit);
	tb_msg(req, 3, &m);
}

static void
v2_meta(struct pb_buf *ts, uint64_t type, uint32_t help, uint32_t unit)
{
	struct pb_buf	m;

	pb_buf_init(&m, 0);
	varint(&m, 1, type);
	varint(&m, 3, help);
	varint(&m, 4, unit);
	tb_msg(ts, 5, &m);
}

static const char *const up_labels[] = {
	"__name__", "up", "job", "node", "provider", "tokyo", NULL
};

/* Case: float samples, refs unsorted; raw value bits (NaN, -0) kept. */
static void
in_samples(struct pb_buf *req)
{
	static const uint32_t r[] = { 3, 4, 1, 2, 5, 6 };
	struct pb_buf	ts;

	v2_symbols(req);
	pb_buf_init(&ts, 0);
	sample(&ts, 0x7ff8000000000001, 1000, 0);	/* a NaN payload */
	refs(&ts, 1, r, 6);				/* labels after samples */
	sample(&ts, 0x8000000000000000, 2000, 0);	/* -0 */
	tb_msg(req, 5, &ts);
}

/* write(): labels sorted already, two samples appended as they are. */
static void
out_samples(struct pb_buf *req)
{
	struct pb_buf	ts;

	pb_buf_init(&ts, 0);
	v1_labels(&ts, up_labels);
	sample(&ts, 0x7ff8000000000001, 1000, 0);
	sample(&ts, 0x8000000000000000, 2000, 0);
	tb_msg(req, 1, &ts);
}

/* Case: histogram with custom buckets and a start timestamp; exemplar. */
static void
in_histogram(struct pb_buf *req)
{
	static const uint32_t r[] = { 1, 9, 3, 4 };
	static const uint32_t er[] = { 16, 17, 7, 8 };	/* zone=a, trace_id=abc */
	struct pb_buf	ts, h, e;

	v2_symbols(req);
	pb_buf_init(&ts, 0);
	refs(&ts, 1, r, 4);
	pb_buf_init(&h, 0);
	histogram_body(&h);
	varint(&h, 17, 999);		/* start_timestamp: not in 1.0 */
	tb_msg(&ts, 3, &h);
	pb_buf_init(&e, 0);
	refs(&e, 1, er, 4);
	fixed64(&e, 2, 0x4000000000000000);
	varint(&e, 3, 1764036000001);
	tb_msg(&ts, 4, &e);
	v2_meta(&ts, 3, 11, 12);
	varint(&ts, 6, 12345);		/* created_timestamp (3.5): not in 1.0 */
	tb_msg(req, 5, &ts);
}

/* appendV1Histograms reads fields 1-16 (custom_values too); metadata as a
 * separate family entry (2.42 ignores metadata, 3.x stores it). */
static void
out_histogram(struct pb_buf *req)
{
	static const char *const l[] = { "__name__", "foo_bucket", "provider", "tokyo", NULL };
	static const char *const el[] = { "trace_id", "abc", "zone", "a", NULL };
	struct pb_buf	ts, h;

	pb_buf_init(&ts, 0);
	v1_labels(&ts, l);
	pb_buf_init(&h, 0);
	histogram_body(&h);
	tb_msg(&ts, 4, &h);
	v1_exemplar(&ts, el, 0x4000000000000000, 1764036000001);
	tb_msg(req, 1, &ts);
	v1_meta(req, 3, "foo", "help text", "seconds");
}

/* Case: metadata only (no samples), deduplicated per family, conflict. */
static void
in_metadata(struct pb_buf *req)
{
	static const uint32_t a[] = { 1, 9, 3, 4 }, b[] = { 1, 10, 3, 4 },
	    c[] = { 1, 2, 3, 4 }, d[] = { 3, 4 };
	struct pb_buf	ts;

	v2_symbols(req);
	pb_buf_init(&ts, 0);
	refs(&ts, 1, a, 4);
	v2_meta(&ts, 3, 11, 0);		/* foo_bucket: family foo */
	tb_msg(req, 5, &ts);
	pb_buf_init(&ts, 0);
	refs(&ts, 1, b, 4);
	v2_meta(&ts, 3, 11, 0);		/* foo_count: same family, same: deduped */
	tb_msg(req, 5, &ts);
	pb_buf_init(&ts, 0);
	refs(&ts, 1, b, 4);
	v2_meta(&ts, 3, 13, 0);		/* foo again, other help: dropped */
	tb_msg(req, 5, &ts);
	pb_buf_init(&ts, 0);
	refs(&ts, 1, c, 4);
	v2_meta(&ts, 2, 0, 0);		/* up gauge */
	tb_msg(req, 5, &ts);
	pb_buf_init(&ts, 0);
	refs(&ts, 1, d, 2);
	v2_meta(&ts, 1, 11, 0);		/* no __name__: dropped */
	tb_msg(req, 5, &ts);
}

static void
out_metadata(struct pb_buf *req)
{
	v1_meta(req, 3, "foo", "help text", "");
	v1_meta(req, 2, "up", "", "");
}

/* Case: a sample's start timestamp and unknown fields are dropped. */
static void
in_dropped(struct pb_buf *req)
{
	static const uint32_t r[] = { 1, 2, 3, 4 };
	struct pb_buf	ts;

	v2_symbols(req);
	varint(req, 9, 1);		/* unknown request field */
	pb_buf_init(&ts, 0);
	refs(&ts, 1, r, 4);
	sample(&ts, 0x3ff0000000000000, 5, 4);
	varint(&ts, 9, 1);		/* unknown series field */
	tb_msg(req, 5, &ts);
}

static void
out_dropped(struct pb_buf *req)
{
	static const char *const l[] = { "__name__", "up", "provider", "tokyo", NULL };
	struct pb_buf	ts;

	pb_buf_init(&ts, 0);
	v1_labels(&ts, l);
	sample(&ts, 0x3ff0000000000000, 5, 0);
	tb_msg(req, 1, &ts);
}

/* Malformed 2.0 requests: what a 2.0 receiver answers 400 to. */
static void
in_ref_past(struct pb_buf *req)
{
	static const uint32_t r[] = { 1, 99 };
	struct pb_buf	ts;

	v2_symbols(req);
	pb_buf_init(&ts, 0);
	refs(&ts, 1, r, 2);
	sample(&ts, 0, 1, 0);
	tb_msg(req, 5, &ts);
}

static void
in_odd_refs(struct pb_buf *req)
{
	static const uint32_t r[] = { 1, 2, 3 };
	struct pb_buf	ts;

	v2_symbols(req);
	pb_buf_init(&ts, 0);
	refs(&ts, 1, r, 3);
	tb_msg(req, 5, &ts);
}

/* Prometheus 2.42 answers 500 to repeated names: never forwarded. */
static void
in_dup_name(struct pb_buf *req)
{
	static const uint32_t r[] = { 3, 4, 3, 17 };
	struct pb_buf	ts;

	v2_symbols(req);
	pb_buf_init(&ts, 0);
	refs(&ts, 1, r, 4);
	sample(&ts, 0, 1, 0);
	tb_msg(req, 5, &ts);
}

/* A 1.0 series smuggled in reserved field 1: a 1.0 receiver would store it. */
static void
in_reserved(struct pb_buf *req)
{
	v2_symbols(req);
	tb_series(req, (const char *const []){ "__name__=up", NULL });
}

static void
in_bad_sample(struct pb_buf *req)
{
	static const uint32_t r[] = { 1, 2 };
	struct pb_buf	ts, s;

	v2_symbols(req);
	pb_buf_init(&ts, 0);
	refs(&ts, 1, r, 2);
	pb_buf_init(&s, 0);
	varint(&s, 1, 5);		/* value as a varint */
	tb_msg(&ts, 2, &s);
	tb_msg(req, 5, &ts);
}

static void
out_none(struct pb_buf *req)
{
	(void)req;
}

struct conv_case {
	const char	*name;
	void		(*in)(struct pb_buf *);
	void		(*out)(struct pb_buf *);
	size_t		 max;		/* 0: 1 MiB */
	int		 rc;
	struct rwconv_stats st;
};

static const struct conv_case cases[] = {
	{ "samples", in_samples, out_samples, 0, RWCONV_OK,
	    { .series = 1, .samples = 2 } },
	{ "histogram", in_histogram, out_histogram, 0, RWCONV_OK,
	    { .series = 1, .histograms = 1, .exemplars = 1, .metadata = 1,
	      .dropped = { [RWCONV_DROP_CREATED_TS] = 2 } } },
	{ "metadata", in_metadata, out_metadata, 0, RWCONV_OK,
	    { .metadata = 2, .dropped = { [RWCONV_DROP_METADATA] = 2 } } },
	{ "dropped", in_dropped, out_dropped, 0, RWCONV_OK,
	    { .series = 1, .samples = 1, .dropped = {
	      [RWCONV_DROP_CREATED_TS] = 1, [RWCONV_DROP_UNKNOWN] = 2 } } },
	{ "too large", in_samples, out_none, 40, RWCONV_TOO_LARGE, { 0 } },
	{ "ref past symbols", in_ref_past, out_none, 0, RWCONV_MALFORMED, { 0 } },
	{ "odd refs", in_odd_refs, out_none, 0, RWCONV_MALFORMED, { 0 } },
	{ "repeated name", in_dup_name, out_none, 0, RWCONV_MALFORMED, { 0 } },
	{ "reserved field", in_reserved, out_none, 0, RWCONV_MALFORMED, { 0 } },
	{ "sample wire type", in_bad_sample, out_none, 0, RWCONV_MALFORMED, { 0 } },
};

static void
hexdump(const char *what, const struct pb_buf *b)
{
	fprintf(stderr, "%s (%zu):", what, b->len);
	for (size_t i = 0; i < b->len; i++)
		fprintf(stderr, " %02x", b->data[i]);
	fprintf(stderr, "\n");
}

static void
assert_stats(const char *name, const struct rwconv_stats *got,
    const struct rwconv_stats *want)
{
	if (memcmp(got, want, sizeof(*got)) == 0)
		return;
	fail_msg("%s: stats series %llu samples %llu histograms %llu exemplars %llu "
	    "metadata %llu dropped %llu/%llu/%llu", name,
	    (unsigned long long)got->series, (unsigned long long)got->samples,
	    (unsigned long long)got->histograms, (unsigned long long)got->exemplars,
	    (unsigned long long)got->metadata,
	    (unsigned long long)got->dropped[0], (unsigned long long)got->dropped[1],
	    (unsigned long long)got->dropped[2]);
}

static void
test_cases(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct conv_case *c = &cases[i];
		struct pb_buf in, want, got;
		struct rwconv_stats st;
		const char *errstr = NULL;
		int rc;

		pb_buf_init(&in, 0);
		pb_buf_init(&want, 0);
		c->in(&in);
		c->out(&want);
		rc = rwconv_v2_to_v1(in.data, in.len, c->max ? c->max : 1 << 20,
		    &got, &st, &errstr);
		if (rc != c->rc)
			fail_msg("%s: rc %d (%s), want %d", c->name, rc,
			    errstr ? errstr : "", c->rc);
		if (rc == RWCONV_OK) {
			assert_stats(c->name, &st, &c->st);
			if (got.len != want.len || memcmp(got.data, want.data, got.len) != 0) {
				hexdump("got ", &got);
				hexdump("want", &want);
				fail_msg("%s: 1.0 body differs", c->name);
			}
			pb_buf_free(&got);
		} else
			assert_non_null(errstr);
		pb_buf_free(&in);
		pb_buf_free(&want);
	}
}

/* One long symbol referenced many times cannot make the output pass max. */
static void
test_amplification_bounded(void **state)
{
	struct pb_buf in, got, ts;
	struct rwconv_stats st;
	const char *errstr;
	char *big = malloc(4097);
	uint32_t r[2] = { 1, 2 };

	(void)state;
	memset(big, 'x', 4096);
	big[4096] = '\0';
	pb_buf_init(&in, 0);
	tb_str(&in, 4, "");
	tb_str(&in, 4, "__name__");
	tb_str(&in, 4, big);
	for (int i = 0; i < 1000; i++) {
		pb_buf_init(&ts, 0);
		refs(&ts, 1, r, 2);
		sample(&ts, 0, (uint64_t)i, 0);
		tb_msg(&in, 5, &ts);
	}
	assert_int_equal(rwconv_v2_to_v1(in.data, in.len, 1 << 20, &got, &st, &errstr),
	    RWCONV_TOO_LARGE);
	assert_true(st.series < 260);
	assert_int_equal(rwconv_v2_to_v1(in.data, in.len, 8 << 20, &got, &st, &errstr),
	    RWCONV_OK);
	assert_int_equal(st.samples, 1000);
	pb_buf_free(&got);
	pb_buf_free(&in);
	free(big);
}

/* The snappy wrapper: an empty request converts to an empty one. */
static void
test_snappy_empty(void **state)
{
	static const uint8_t probe[] = { 0x02, 0x04, 0x22, 0x00 };	/* upstream.c's */
	struct rwconv_stats st;
	const char *errstr;
	uint8_t *out, *dec;
	size_t outlen, declen;

	(void)state;
	assert_int_equal(rwconv_snappy(probe, sizeof(probe), 1024, &out, &outlen,
	    &st, &errstr), RWCONV_OK);
	tb_unsnappy(out, outlen, &dec, &declen);
	assert_int_equal(declen, 0);
	free(out);
	free(dec);
	assert_int_equal(rwconv_snappy((const uint8_t *)"\xff\x06", 2, 1024, &out,
	    &outlen, &st, &errstr), RWCONV_MALFORMED);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cases),
		cmocka_unit_test(test_amplification_bounded),
		cmocka_unit_test(test_snappy_empty),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
