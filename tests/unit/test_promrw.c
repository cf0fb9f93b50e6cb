/*
 * promrw: remote write 1.0 and 2.0 check and rewrite on bodies built here
 * (decoded, i.e. after snappy).  Rewritten bodies are taken apart again and
 * compared field by field with the input.
 */
#include "bodies.h"
#include "promrw.h"

static char		*tokyo_v[] = { "tokyo" };
static struct strlist	 tokyo = { tokyo_v, 1 };

struct run {
	int			rc;
	struct promrw_stats	st;
	struct pb_buf		out;
	char			reason[512];
};

/* Checks `req` with promrw_check_v1 or _v2 for site tokyo in `mode`. */
static void
run_check(__typeof__(promrw_check_v1) *check, const struct pb_buf *req,
    enum mismatch mode, struct run *r)
{
	struct payload_rule	rule = tb_rule(&tokyo, mode);

	memset(r, 0, sizeof(*r));
	r->rc = check(req->data, req->len, &rule, &r->st, &r->out, r->reason,
	    sizeof(r->reason));
}

#define run_v1(req, mode, r)	run_check(promrw_check_v1, (req), (mode), (r))
#define run_v2(req, mode, r)	run_check(promrw_check_v2, (req), (mode), (r))

/* Series `i` of a WriteRequest as a view. */
static void
series_at(const uint8_t *buf, size_t len, size_t i, const uint8_t **ts,
    size_t *tslen)
{
	const uint8_t	*d[64];
	size_t		 l[64];

	if (tb_fields(buf, len, 1, d, l, 64) <= i)
		fail_msg("body has no series %zu", i);
	*ts = d[i];
	*tslen = l[i];
}

static void
assert_series_labels(const struct pb_buf *b, size_t i, const char *want)
{
	const uint8_t	*ts;
	size_t		 tslen;
	char		 got[1024];

	series_at(b->data, b->len, i, &ts, &tslen);
	tb_labels_str(ts, tslen, got, sizeof(got));
	if (strcmp(got, want) != 0)
		fail_msg("series %zu has labels %s, want %s", i, got, want);
}

/* Under rewrite, `req` is rewritten and its first series carries `labels`. */
static void
assert_rewritten_v1(const struct pb_buf *req, const char *labels)
{
	struct run	r;

	run_v1(req, MISMATCH_REWRITE, &r);
	assert_int_equal(r.rc, LABELS_REWRITE);
	assert_series_labels(&r.out, 0, labels);
	pb_buf_free(&r.out);
}


/* Everything of series i but its labels is byte-identical in a and b. */
static void
assert_series_rest_equal(const struct pb_buf *a, const struct pb_buf *b,
    size_t i)
{
	const uint8_t	*ta, *tb;
	size_t		 la, lb;
	struct pb_buf	 ra, rb;

	series_at(a->data, a->len, i, &ta, &la);
	series_at(b->data, b->len, i, &tb, &lb);
	tb_except(ta, la, 1, &ra);
	tb_except(tb, lb, 1, &rb);
	if (ra.len != rb.len || memcmp(ra.data, rb.data, ra.len) != 0)
		fail_msg("series %zu: samples/exemplars/histograms changed "
		    "(%zu bytes -> %zu)", i, ra.len, rb.len);
	pb_buf_free(&ra);
	pb_buf_free(&rb);
}

static void
test_compliant_passes(void **state)
{
	static const char *const s1[] = { "__name__=up", "job=x",
	    "provider=tokyo", NULL };
	struct pb_buf	req;
	struct run	r;

	pb_buf_init(&req, 0);
	tb_series(&req, s1);
	tb_series(&req, s1);
	run_v1(&req, MISMATCH_REWRITE, &r);
	assert_int_equal(r.rc, LABELS_PASS);
	assert_int_equal(r.st.series, 2);
	assert_int_equal(r.st.samples, 2);
	assert_int_equal(r.st.rewritten, 0);
	assert_null(r.out.data);
	run_v1(&req, MISMATCH_REJECT, &r);
	assert_int_equal(r.rc, LABELS_PASS);
	pb_buf_free(&req);
}

static void
test_missing_label_inserted_sorted(void **state)
{
	static const char *const s1[] = { "__name__=up", "job=x", "zone=a",
	    NULL };
	struct pb_buf	req;
	struct run	r;

	pb_buf_init(&req, 0);
	tb_series(&req, s1);
	run_v1(&req, MISMATCH_REWRITE, &r);
	assert_int_equal(r.rc, LABELS_REWRITE);
	assert_int_equal(r.st.rewritten, 1);
	assert_series_labels(&r.out, 0,
	    "__name__=up,job=x,provider=tokyo,zone=a");
	assert_series_rest_equal(&req, &r.out, 0);
	pb_buf_free(&r.out);
	pb_buf_free(&req);
}

static void
test_foreign_value_replaced(void **state)
{
	static const char *const s1[] = { "__name__=up", "provider=osaka",
	    NULL };
	struct pb_buf	req;
	struct run	r;

	pb_buf_init(&req, 0);
	tb_series(&req, s1);
	assert_rewritten_v1(&req, "__name__=up,provider=tokyo");
	run_v1(&req, MISMATCH_REJECT, &r);
	assert_int_equal(r.rc, LABELS_REJECT);
	assert_string_equal(r.reason, "series {__name__=\"up\", "
	    "provider=\"osaka\"} has provider=\"osaka\", site tokyo may only "
	    "write provider=\"tokyo\"");
	assert_null(r.out.data);
	pb_buf_free(&req);
}

static void
test_two_series_one_foreign(void **state)
{
	static const char *const good[] = { "__name__=a", "provider=tokyo",
	    NULL };
	static const char *const bad[] = { "__name__=b", "provider=nagoya",
	    NULL };
	struct pb_buf	 req;
	struct run	 r;
	const uint8_t	*ta, *tb;
	size_t		 la, lb;

	pb_buf_init(&req, 0);
	tb_series(&req, good);
	tb_series(&req, bad);
	run_v1(&req, MISMATCH_REWRITE, &r);
	assert_int_equal(r.rc, LABELS_REWRITE);
	assert_int_equal(r.st.series, 2);
	assert_int_equal(r.st.rewritten, 1);
	series_at(req.data, req.len, 0, &ta, &la);
	series_at(r.out.data, r.out.len, 0, &tb, &lb);
	assert_int_equal(la, lb);
	assert_memory_equal(ta, tb, la);
	assert_series_labels(&r.out, 1, "__name__=b,provider=tokyo");
	assert_series_rest_equal(&req, &r.out, 1);
	pb_buf_free(&r.out);
	run_v1(&req, MISMATCH_REJECT, &r);
	assert_int_equal(r.rc, LABELS_REJECT);
	assert_non_null(strstr(r.reason, "series {__name__=\"b\""));
	pb_buf_free(&req);
}

/*
 * A rewrite changes only the site label's field of the offending series:
 * every other byte — the series that passed, and the other labels and the
 * samples of those rewritten — comes out as it went in, whichever place the
 * label takes (first, middle, last, replacing an empty or foreign value).
 */
static void
test_rewrite_bytes_exact(void **state)
{
	static const char *const good[] = { "__name__=a", "provider=tokyo",
	    NULL };
	static const char *const in[][4] = {
		{ "__name__=up", "job=x", NULL },
		{ "zone=a", NULL },
		{ "__name__=up", "provider=osaka", "zone=a", NULL },
		{ "__name__=up", "provider=", NULL },
		{ NULL },
	};
	static const char *const want[][4] = {
		{ "__name__=up", "job=x", "provider=tokyo", NULL },
		{ "provider=tokyo", "zone=a", NULL },
		{ "__name__=up", "provider=tokyo", "zone=a", NULL },
		{ "__name__=up", "provider=tokyo", NULL },
		{ "provider=tokyo", NULL },
	};
	struct pb_buf	req, exp;
	struct run	r;
	size_t		i;

	pb_buf_init(&req, 0);
	pb_buf_init(&exp, 0);
	for (i = 0; i < sizeof(in) / sizeof(in[0]); i++) {
		tb_series(&req, good);
		tb_series(&exp, good);
		tb_series(&req, in[i]);
		tb_series(&exp, want[i]);
	}
	tb_series(&req, good);
	tb_series(&exp, good);
	run_v1(&req, MISMATCH_REWRITE, &r);
	assert_int_equal(r.rc, LABELS_REWRITE);
	assert_int_equal(r.st.series, 2 * i + 1);
	assert_int_equal(r.st.rewritten, i);
	assert_int_equal(r.out.len, exp.len);
	assert_memory_equal(r.out.data, exp.data, exp.len);
	pb_buf_free(&r.out);
	pb_buf_free(&req);
	pb_buf_free(&exp);
}

static void
test_empty_value_counts_as_missing(void **state)
{
	static const char *const s1[] = { "__name__=up", "provider=", NULL };
	struct pb_buf	req;
	struct run	r;

	pb_buf_init(&req, 0);
	tb_series(&req, s1);
	run_v1(&req, MISMATCH_REJECT, &r);
	assert_int_equal(r.rc, LABELS_REJECT);
	assert_non_null(strstr(r.reason, "has no provider label"));
	assert_rewritten_v1(&req, "__name__=up,provider=tokyo");
	pb_buf_free(&req);
}

static void
test_unsorted_labels(void **state)
{
	static const char *const ok[] = { "provider=tokyo", "__name__=up",
	    "a=1", NULL };
	static const char *const bad[] = { "z=1", "provider=x", "b=2",
	    "__name__=up", NULL };
	struct pb_buf	req;
	struct run	r;

	pb_buf_init(&req, 0);
	tb_series(&req, ok);
	run_v1(&req, MISMATCH_REWRITE, &r);
	assert_int_equal(r.rc, LABELS_PASS);
	tb_series(&req, bad);
	run_v1(&req, MISMATCH_REWRITE, &r);
	assert_int_equal(r.rc, LABELS_REWRITE);
	assert_series_labels(&r.out, 0, "provider=tokyo,__name__=up,a=1");
	assert_series_labels(&r.out, 1, "__name__=up,b=2,provider=tokyo,z=1");
	pb_buf_free(&r.out);
	pb_buf_free(&req);
}

static void
test_duplicate_label_names_malformed(void **state)
{
	static const char *const dup[] = { "__name__=up", "job=a", "job=b",
	    "provider=tokyo", NULL };
	static const char *const dup2[] = { "job=a", "provider=tokyo",
	    "job=b", NULL };
	struct pb_buf	req;
	struct run	r;

	pb_buf_init(&req, 0);
	tb_series(&req, dup);
	run_v1(&req, MISMATCH_REWRITE, &r);
	assert_int_equal(r.rc, LABELS_MALFORMED);
	assert_string_equal(r.reason, "malformed remote write request: a "
	    "series repeats the label name \"job\"");
	pb_buf_free(&req);
	pb_buf_init(&req, 0);
	tb_series(&req, dup2);
	run_v1(&req, MISMATCH_REJECT, &r);
	assert_int_equal(r.rc, LABELS_MALFORMED);
	pb_buf_free(&req);
}

/* A series with everything: exemplar, histogram, unknown fields. */
static void
full_series(struct pb_buf *req, const char *provider)
{
	struct pb_buf	ts, ex, h, spans;

	pb_buf_init(&ts, 0);
	tb_sample(&ts, 2.5, 1000);
	tb_label(&ts, 1, "__name__", "rpc_seconds");
	tb_label(&ts, 1, "provider", provider);
	pb_buf_init(&ex, 0);
	tb_label(&ex, 1, "trace_id", "abc");
	pb_put_tag(&ex, 3, PB_VARINT);
	pb_put_varint(&ex, 999);
	tb_msg(&ts, 3, &ex);
	pb_buf_init(&h, 0);
	pb_put_tag(&h, 1, PB_VARINT);		/* count_int */
	pb_put_varint(&h, 7);
	pb_put_tag(&h, 4, PB_VARINT);		/* schema, zigzag */
	pb_put_varint(&h, 5);
	pb_buf_init(&spans, 0);
	pb_put_varint(&spans, 2);
	pb_put_varint(&spans, 4);
	tb_msg(&h, 9, &spans);			/* packed deltas */
	tb_msg(&ts, 4, &h);
	pb_put_tag(&ts, 15, PB_I32);		/* unknown to kakikomi */
	pb_put_raw(&ts, "\x01\x02\x03\x04", 4);
	tb_msg(req, 1, &ts);
}

static void
test_histograms_exemplars_unknown_kept(void **state)
{
	struct pb_buf	 req, meta, rest_in, rest_out;
	struct run	 r;
	const uint8_t	*d[4];
	size_t		 l[4];

	pb_buf_init(&req, 0);
	pb_buf_init(&meta, 0);
	pb_put_tag(&meta, 1, PB_VARINT);
	pb_put_varint(&meta, 1);
	tb_str(&meta, 2, "rpc_seconds");
	tb_msg(&req, 3, &meta);
	full_series(&req, "tokyo");
	full_series(&req, "osaka");
	pb_put_tag(&req, 7, PB_VARINT);		/* unknown top-level field */
	pb_put_varint(&req, 42);
	run_v1(&req, MISMATCH_REWRITE, &r);
	assert_int_equal(r.rc, LABELS_REWRITE);
	assert_int_equal(r.st.series, 2);
	assert_int_equal(r.st.samples, 2);
	assert_int_equal(r.st.exemplars, 2);
	assert_int_equal(r.st.histograms, 2);
	assert_int_equal(r.st.metadata, 1);
	assert_series_labels(&r.out, 1, "__name__=rpc_seconds,provider=tokyo");
	assert_series_rest_equal(&req, &r.out, 0);
	assert_series_rest_equal(&req, &r.out, 1);
	/* First series untouched: byte-identical. */
	assert_int_equal(tb_fields(r.out.data, r.out.len, 1, d, l, 4), 2);
	/* Metadata and the unknown field copied in place. */
	tb_except(req.data, req.len, 1, &rest_in);
	tb_except(r.out.data, r.out.len, 1, &rest_out);
	assert_int_equal(rest_in.len, rest_out.len);
	assert_memory_equal(rest_in.data, rest_out.data, rest_in.len);
	assert_memory_equal(r.out.data, req.data, 2 + meta.len);
	pb_buf_free(&rest_in);
	pb_buf_free(&rest_out);
	pb_buf_free(&r.out);
	pb_buf_free(&req);
}

static void
test_metadata_only_passes(void **state)
{
	struct pb_buf	req, meta;
	struct run	r;
	int		i;

	pb_buf_init(&req, 0);
	for (i = 0; i < 3; i++) {
		pb_buf_init(&meta, 0);
		tb_str(&meta, 2, "family");
		tb_str(&meta, 4, "help text");
		tb_msg(&req, 3, &meta);
	}
	run_v1(&req, MISMATCH_REJECT, &r);
	assert_int_equal(r.rc, LABELS_PASS);
	assert_int_equal(r.st.series, 0);
	assert_int_equal(r.st.metadata, 3);
	pb_buf_free(&req);
}

/* Label fields in an unusual order and with unknown fields. */
static void
test_label_slow_path(void **state)
{
	struct pb_buf	req, ts, l;

	pb_buf_init(&req, 0);
	pb_buf_init(&ts, 0);
	pb_buf_init(&l, 0);
	tb_str(&l, 2, "osaka");
	pb_put_tag(&l, 3, PB_VARINT);
	pb_put_varint(&l, 1);
	tb_str(&l, 1, "provider");
	tb_msg(&ts, 1, &l);
	tb_label(&ts, 1, "__name__", "x");
	tb_msg(&req, 1, &ts);
	assert_rewritten_v1(&req, "__name__=x,provider=tokyo");
	pb_buf_free(&req);
}

static void
test_malformed_v1(void **state)
{
	static const char *const s1[] = { "__name__=up", "provider=tokyo",
	    NULL };
	struct pb_buf	req;
	struct run	r;
	size_t		cut;

	pb_buf_init(&req, 0);
	tb_series(&req, s1);
	for (cut = 1; cut < req.len; cut++) {
		struct pb_buf	part = { req.data, cut, cut, 0 };

		run_v1(&part, MISMATCH_REWRITE, &r);
		if (r.rc != LABELS_MALFORMED)
			fail_msg("body cut at %zu/%zu: outcome %d, want malformed",
			    cut, req.len, r.rc);
		assert_non_null(strstr(r.reason, "malformed remote write"));
	}
	pb_buf_free(&req);
	/* timeseries as a varint */
	pb_buf_init(&req, 0);
	pb_put_tag(&req, 1, PB_VARINT);
	pb_put_varint(&req, 1);
	run_v1(&req, MISMATCH_REWRITE, &r);
	assert_int_equal(r.rc, LABELS_MALFORMED);
	assert_string_equal(r.reason, "malformed remote write request: wrong "
	    "wire type for a request field");
	pb_buf_free(&req);
}

/* Remote write 2.0 */

static void
v2_series(struct pb_buf *req, const uint32_t *refs, size_t n)
{
	struct pb_buf	ts, packed;
	size_t		i;

	pb_buf_init(&ts, 0);
	pb_buf_init(&packed, 0);
	for (i = 0; i < n; i++)
		pb_put_varint(&packed, refs[i]);
	tb_msg(&ts, 1, &packed);
	pb_buf_init(&packed, 0);
	pb_put_tag(&packed, 1, PB_I64);
	pb_put_raw(&packed, "\0\0\0\0\0\0\xf0\x3f", 8);
	tb_msg(&ts, 2, &packed);
	tb_msg(req, 5, &ts);
}

static void
v2_symbols(struct pb_buf *req, const char *const *syms)
{
	for (; *syms != NULL; syms++)
		tb_str(req, 4, *syms);
}

/* Series i's labels via the symbol table, "a=b,c=d". */
static void
v2_labels(const struct pb_buf *b, size_t i, char *out, size_t outsz)
{
	const uint8_t	*sym[64], *ts, *refs[2], *p, *end;
	size_t		 symlen[64], tslen, rl[2], nsym, at = 0, k = 0;
	uint64_t	 ref;

	nsym = tb_fields(b->data, b->len, 4, sym, symlen, 64);
	{
		const uint8_t	*d[64];
		size_t		 l[64];

		assert_true(tb_fields(b->data, b->len, 5, d, l, 64) > i);
		ts = d[i];
		tslen = l[i];
	}
	out[0] = '\0';
	assert_int_equal(tb_fields(ts, tslen, 1, refs, rl, 2), 1);
	for (p = refs[0], end = refs[0] + rl[0]; p < end; k++) {
		assert_int_equal(pb_varint(&p, end, &ref), 0);
		assert_true(ref < nsym);
		at += (size_t)snprintf(out + at, outsz - at, "%s%.*s",
		    k == 0 ? "" : k % 2 ? "=" : ",", (int)symlen[ref],
		    (const char *)sym[ref]);
	}
}


static void
test_v2_check_and_rewrite(void **state)
{
	static const char *const syms[] = { "", "__name__", "up",
	    "provider", "tokyo", "osaka", "job", "x", NULL };
	static const uint32_t	 ok[] = { 1, 2, 3, 4 };
	static const uint32_t	 foreign[] = { 1, 2, 6, 7, 3, 5 };
	static const uint32_t	 missing[] = { 1, 2, 6, 7 };
	struct pb_buf		 req;
	struct run		 r;
	char			 got[256];

	pb_buf_init(&req, 0);
	v2_series(&req, ok, 4);
	v2_symbols(&req, syms);		/* after the series: any order */
	run_v2(&req, MISMATCH_REJECT, &r);
	assert_int_equal(r.rc, LABELS_PASS);
	assert_int_equal(r.st.series, 1);
	assert_int_equal(r.st.samples, 1);
	v2_series(&req, foreign, 6);
	v2_series(&req, missing, 4);
	run_v2(&req, MISMATCH_REJECT, &r);
	assert_int_equal(r.rc, LABELS_REJECT);
	assert_string_equal(r.reason, "series {__name__=\"up\", job=\"x\", "
	    "provider=\"osaka\"} has provider=\"osaka\", site tokyo may only "
	    "write provider=\"tokyo\"");
	run_v2(&req, MISMATCH_REWRITE, &r);
	assert_int_equal(r.rc, LABELS_REWRITE);
	assert_int_equal(r.st.rewritten, 2);
	v2_labels(&r.out, 0, got, sizeof(got));
	assert_string_equal(got, "__name__=up,provider=tokyo");
	v2_labels(&r.out, 1, got, sizeof(got));
	assert_string_equal(got, "__name__=up,job=x,provider=tokyo");
	v2_labels(&r.out, 2, got, sizeof(got));
	assert_string_equal(got, "__name__=up,job=x,provider=tokyo");
	pb_buf_free(&r.out);
	pb_buf_free(&req);
}

static void
test_v2_appends_symbols(void **state)
{
	static const char *const syms[] = { "", "__name__", "up", "provider",
	    "osaka", NULL };
	static const uint32_t	 foreign[] = { 1, 2, 3, 4 };
	static const uint32_t	 none[] = { 0 };
	struct pb_buf		 req;
	struct run		 r;
	const uint8_t		*d[16];
	size_t			 l[16];
	char			 got[256];

	pb_buf_init(&req, 0);
	v2_symbols(&req, syms);
	v2_series(&req, foreign, 4);
	run_v2(&req, MISMATCH_REWRITE, &r);
	assert_int_equal(r.rc, LABELS_REWRITE);
	assert_int_equal(tb_fields(r.out.data, r.out.len, 4, d, l, 16), 6);
	assert_int_equal(l[5], 5);
	assert_memory_equal(d[5], "tokyo", 5);
	v2_labels(&r.out, 0, got, sizeof(got));
	assert_string_equal(got, "__name__=up,provider=tokyo");
	pb_buf_free(&r.out);
	pb_buf_free(&req);
	/* No symbols at all, a series without labels: "" stays symbol 0. */
	pb_buf_init(&req, 0);
	v2_series(&req, none, 0);
	run_v2(&req, MISMATCH_REWRITE, &r);
	assert_int_equal(r.rc, LABELS_REWRITE);
	assert_int_equal(tb_fields(r.out.data, r.out.len, 4, d, l, 16), 3);
	assert_int_equal(l[0], 0);
	v2_labels(&r.out, 0, got, sizeof(got));
	assert_string_equal(got, "provider=tokyo");
	pb_buf_free(&r.out);
	pb_buf_free(&req);
}

/* One series of label refs over symbols "", "a", "b" must be malformed with
 * `reason` (NULL: any reason). */
static void
assert_v2_refs_malformed(const uint32_t *refs, size_t n, const char *reason)
{
	static const char *const syms[] = { "", "a", "b", NULL };
	struct pb_buf		 req;
	struct run		 r;

	pb_buf_init(&req, 0);
	v2_symbols(&req, syms);
	v2_series(&req, refs, n);
	run_v2(&req, MISMATCH_REWRITE, &r);
	assert_int_equal(r.rc, LABELS_MALFORMED);
	if (reason != NULL)
		assert_string_equal(r.reason, reason);
	pb_buf_free(&req);
}

static void
test_v2_malformed(void **state)
{
	static const uint32_t	 odd[] = { 1, 2, 1 };
	static const uint32_t	 past[] = { 1, 9 };
	static const uint32_t	 dup[] = { 1, 2, 1, 2 };

	assert_v2_refs_malformed(odd, 3,
	    "malformed remote write request: odd number of label refs");
	assert_v2_refs_malformed(past, 2,
	    "malformed remote write request: label ref past the symbols table");
	assert_v2_refs_malformed(dup, 4, NULL);
}

/*
 * 1.0 series inside a body labelled 2.0: a 2.0 scan would see no series,
 * but Prometheus 2.42 ignores the Content-Type and stores them.
 */
static void
test_v2_refuses_smuggled_v1_series(void **state)
{
	static const char *const s1[] = { "__name__=up", "provider=osaka",
	    NULL };
	struct pb_buf	req;
	struct run	r;

	pb_buf_init(&req, 0);
	tb_str(&req, 4, "");
	tb_series(&req, s1);
	run_v2(&req, MISMATCH_REJECT, &r);
	assert_int_equal(r.rc, LABELS_MALFORMED);
	assert_string_equal(r.reason, "malformed remote write request: remote "
	    "write 1.0 fields in a 2.0 request");
	pb_buf_free(&req);
}

/*
 * A series may carry at most LABELS_MAX labels: the amplification body (a
 * 1.5 MB snappy body of millions of empty labels, once ~690 MiB of label
 * entries) is refused without collecting them.
 */
static void
test_series_label_cap(void **state)
{
	struct pb_buf	req, ts;
	struct run	r;
	char		name[32];
	size_t		i;

	for (int over = 0; over <= 1; over++) {
		pb_buf_init(&req, 0);
		pb_buf_init(&ts, 0);
		tb_label(&ts, 1, "provider", "tokyo");
		for (i = 1; i < LABELS_MAX + (size_t)over; i++) {
			snprintf(name, sizeof(name), "l%05zu", i);
			tb_label(&ts, 1, name, "v");
		}
		tb_msg(&req, 1, &ts);
		run_v1(&req, MISMATCH_REWRITE, &r);
		if (over) {
			assert_int_equal(r.rc, LABELS_MALFORMED);
			assert_string_equal(r.reason, "malformed remote write "
			    "request: more than 1024 labels in one series or "
			    "stream");
		} else
			assert_int_equal(r.rc, LABELS_PASS);
		pb_buf_free(&req);
	}
	/* Empty labels, as the hostile body has them: refused all the same. */
	pb_buf_init(&req, 0);
	pb_buf_init(&ts, 0);
	for (i = 0; i < 100000; i++)
		pb_put_raw(&ts, "\x0a\x00", 2);
	tb_msg(&req, 1, &ts);
	run_v1(&req, MISMATCH_REWRITE, &r);
	assert_int_equal(r.rc, LABELS_MALFORMED);
	pb_buf_free(&req);
}

/* A 1.0 series whose exemplar carries provider=`value`. */
static void
exemplar_series(struct pb_buf *req, const char *value)
{
	struct pb_buf	ts, ex;

	pb_buf_init(&ts, 0);
	tb_label(&ts, 1, "__name__", "rpc_seconds");
	tb_label(&ts, 1, "provider", "tokyo");
	tb_sample(&ts, 2.5, 1000);
	pb_buf_init(&ex, 0);
	tb_label(&ex, 1, "trace_id", "abc");
	tb_label(&ex, 1, "provider", value);
	tb_msg(&ts, 3, &ex);
	tb_msg(req, 1, &ts);
}

/*
 * Exemplar labels are checked, never rewritten: a foreign provider there
 * is refused in both modes (Prometheus stores exemplar labels beside the
 * series and returns them in queries); an allowed or empty one passes.
 */
static void
test_exemplar_labels_checked(void **state)
{
	static const enum mismatch modes[] = { MISMATCH_REJECT, MISMATCH_REWRITE };
	struct pb_buf	req;
	struct run	r;

	for (size_t m = 0; m < 2; m++) {
		pb_buf_init(&req, 0);
		exemplar_series(&req, "osaka");
		run_v1(&req, modes[m], &r);
		assert_int_equal(r.rc, LABELS_REJECT);
		assert_string_equal(r.reason, "an exemplar has provider=\"osaka\", "
		    "site tokyo may not write it (exemplar labels are checked, "
		    "not rewritten)");
		pb_buf_free(&req);
	}
	pb_buf_init(&req, 0);
	exemplar_series(&req, "tokyo");
	exemplar_series(&req, "");
	run_v1(&req, MISMATCH_REJECT, &r);
	assert_int_equal(r.rc, LABELS_PASS);
	assert_int_equal(r.st.exemplars, 2);
	pb_buf_free(&req);
}

static void
test_v2_exemplar_labels_checked(void **state)
{
	static const char *const syms[] = { "", "__name__", "up",
	    "provider", "tokyo", "osaka", "trace_id", "x", NULL };
	static const uint32_t	 refs[] = { 1, 2, 3, 4 };
	static const uint32_t	 bad[] = { 6, 7, 3, 5 };
	static const uint32_t	 good[] = { 6, 7, 3, 4 };
	const uint32_t		*ex[] = { bad, good };
	struct pb_buf		 req, ts, e, packed;
	struct run		 r;

	for (size_t k = 0; k < 2; k++) {
		pb_buf_init(&req, 0);
		v2_symbols(&req, syms);
		pb_buf_init(&ts, 0);
		pb_buf_init(&packed, 0);
		for (size_t i = 0; i < 4; i++)
			pb_put_varint(&packed, refs[i]);
		tb_msg(&ts, 1, &packed);
		pb_buf_init(&e, 0);
		pb_buf_init(&packed, 0);
		for (size_t i = 0; i < 4; i++)
			pb_put_varint(&packed, ex[k][i]);
		tb_msg(&e, 1, &packed);
		tb_msg(&ts, 4, &e);
		tb_msg(&req, 5, &ts);
		run_v2(&req, MISMATCH_REWRITE, &r);
		assert_int_equal(r.rc, k == 0 ? LABELS_REJECT : LABELS_PASS);
		pb_buf_free(&req);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_compliant_passes),
		cmocka_unit_test(test_missing_label_inserted_sorted),
		cmocka_unit_test(test_foreign_value_replaced),
		cmocka_unit_test(test_two_series_one_foreign),
		cmocka_unit_test(test_empty_value_counts_as_missing),
		cmocka_unit_test(test_unsorted_labels),
		cmocka_unit_test(test_duplicate_label_names_malformed),
		cmocka_unit_test(test_histograms_exemplars_unknown_kept),
		cmocka_unit_test(test_metadata_only_passes),
		cmocka_unit_test(test_label_slow_path),
		cmocka_unit_test(test_malformed_v1),
		cmocka_unit_test(test_rewrite_bytes_exact),
		cmocka_unit_test(test_v2_check_and_rewrite),
		cmocka_unit_test(test_v2_appends_symbols),
		cmocka_unit_test(test_v2_malformed),
		cmocka_unit_test(test_v2_refuses_smuggled_v1_series),
		cmocka_unit_test(test_series_label_cap),
		cmocka_unit_test(test_exemplar_labels_checked),
		cmocka_unit_test(test_v2_exemplar_labels_checked),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
