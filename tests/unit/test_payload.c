/*
 * payload: the whole decision on real captured bodies (../shared/testdata)
 * and on hostile ones, through payload_check() as the server calls it.
 */
#include <zlib.h>

#include "bodies.h"
#include "labels.h"

static char		*tokyo_v[] = { "tokyo" };
static struct strlist	 tokyo = { tokyo_v, 1 };
static char		*osaka_v[] = { "osaka" };
static struct strlist	 osaka = { osaka_v, 1 };

static const char *const rw_fixtures[] = {
	"prometheus-2.42/rw1-2000-series.body",
	"prometheus-2.42/rw1-353-series.body",
	"prometheus-2.42/rw1-metadata-only.body",
};
static const uint64_t rw_series[] = { 2000, 353, 0 };

static int
check(enum signal sig, const char *ct, const char *ce, const uint8_t *body,
    size_t len, const struct strlist *vals, enum mismatch mode,
    struct payload_result *res)
{
	struct payload_rule	rule = tb_rule(vals, mode);

	payload_check(sig, ct, ce, body, len, &rule, res);
	if (strchr(res->reason, '\n') != NULL)
		fail_msg("reason is not one line: %s", res->reason);
	if (res->status != 0 && (res->reason[0] == '\0' ||
	    res->reject_reason == NULL))
		fail_msg("status %d without a reason", res->status);
	return res->status;
}

static int
metrics(const uint8_t *body, size_t len, const struct strlist *vals,
    enum mismatch mode, struct payload_result *res)
{
	return check(SIGNAL_METRICS, "application/x-protobuf", "snappy", body,
	    len, vals, mode, res);
}

static void
test_rw_fixtures_allowed_unchanged(void **state)
{
	struct payload_result	 res;
	uint8_t			*body;
	size_t			 len, i;
	char			 path[256];

	for (i = 0; i < 3; i++) {
		snprintf(path, sizeof(path), TESTDATA "%s", rw_fixtures[i]);
		body = tb_read(path, &len);
		if (metrics(body, len, &tokyo, MISMATCH_REJECT, &res) != 0)
			fail_msg("%s refused for tokyo: %d %s", path,
			    res.status, res.reason);
		assert_null(res.body);
		assert_int_equal(res.series, rw_series[i]);
		assert_int_equal(res.samples, rw_series[i]);
		assert_int_equal(res.rewritten, 0);
		assert_int_equal(metrics(body, len, &tokyo, MISMATCH_REWRITE,
		    &res), 0);
		assert_null(res.body);
		free(body);
	}
}

static void
test_rw_fixtures_foreign_rejected(void **state)
{
	struct payload_result	 res;
	uint8_t			*body;
	size_t			 len;

	body = tb_read(TESTDATA "prometheus-2.42/rw1-353-series.body", &len);
	assert_int_equal(metrics(body, len, &osaka, MISMATCH_REJECT, &res),
	    403);
	assert_string_equal(res.reject_reason, "label");
	assert_null(res.body);
	assert_string_equal(res.reason, "series {__name__="
	    "\"go_gc_duration_seconds\", instance=\"127.0.0.1:29091\", "
	    "job=\"prometheus\", provider=\"tokyo\", quantile=\"0\"} has "
	    "provider=\"tokyo\", site tokyo may only write provider=\"osaka\"");
	free(body);
	/* Metadata-only bodies carry no labels: they pass any site. */
	body = tb_read(TESTDATA "prometheus-2.42/rw1-metadata-only.body", &len);
	assert_int_equal(metrics(body, len, &osaka, MISMATCH_REJECT, &res), 0);
	assert_null(res.body);
	free(body);
}

/* Every series now says osaka; everything else is byte-identical. */
static void
assert_rw_rewritten(const uint8_t *orig, size_t origlen,
    const struct payload_result *res, uint64_t nseries)
{
	uint8_t		*a, *b;
	size_t		 alen, blen, i, n;
	const uint8_t	**sa, **sb;
	size_t		*la, *lb;
	struct pb_buf	 ra, rb;
	char		 labels[2048];

	assert_non_null(res->body);
	assert_string_equal(res->content_encoding, "snappy");
	assert_string_equal(res->content_type, "application/x-protobuf");
	tb_unsnappy(orig, origlen, &a, &alen);
	tb_unsnappy(res->body, res->len, &b, &blen);
	sa = calloc(nseries, sizeof(*sa));
	sb = calloc(nseries, sizeof(*sb));
	la = calloc(nseries, sizeof(*la));
	lb = calloc(nseries, sizeof(*lb));
	assert_true(sa && sb && la && lb);
	n = tb_fields(b, blen, 1, sb, lb, nseries);
	assert_int_equal(n, nseries);
	assert_int_equal(tb_fields(a, alen, 1, sa, la, nseries), nseries);
	for (i = 0; i < n; i++) {
		tb_labels_str(sb[i], lb[i], labels, sizeof(labels));
		if (strstr(labels, "provider=osaka") == NULL ||
		    strstr(labels, "tokyo") != NULL)
			fail_msg("series %zu not rewritten: %s", i, labels);
		tb_except(sa[i], la[i], 1, &ra);
		tb_except(sb[i], lb[i], 1, &rb);
		if (ra.len != rb.len || memcmp(ra.data, rb.data, ra.len) != 0)
			fail_msg("series %zu: samples changed", i);
		pb_buf_free(&ra);
		pb_buf_free(&rb);
	}
	tb_except(a, alen, 1, &ra);
	tb_except(b, blen, 1, &rb);
	assert_int_equal(ra.len, rb.len);
	pb_buf_free(&ra);
	pb_buf_free(&rb);
	free(sa);
	free(sb);
	free(la);
	free(lb);
	free(a);
	free(b);
}

static void
test_rw_fixtures_foreign_rewritten(void **state)
{
	struct payload_result	 res;
	uint8_t			*body;
	size_t			 len, i;
	char			 path[256];

	for (i = 0; i < 2; i++) {
		snprintf(path, sizeof(path), TESTDATA "%s", rw_fixtures[i]);
		body = tb_read(path, &len);
		assert_int_equal(metrics(body, len, &osaka, MISMATCH_REWRITE,
		    &res), 0);
		assert_int_equal(res.series, rw_series[i]);
		assert_int_equal(res.rewritten, rw_series[i]);
		assert_rw_rewritten(body, len, &res, rw_series[i]);
		payload_result_free(&res);
		assert_null(res.body);
		free(body);
	}
}

static void
test_promtail_fixture(void **state)
{
	struct payload_result	 res;
	uint8_t			*body, *d;
	size_t			 len, dlen;

	body = tb_read(TESTDATA "promtail-2.8/push-304-entries.body", &len);
	assert_int_equal(check(SIGNAL_LOGS, "application/x-protobuf", NULL,
	    body, len, &tokyo, MISMATCH_REJECT, &res), 0);
	assert_null(res.body);
	assert_int_equal(res.series, 1);
	assert_int_equal(res.entries, 304);
	assert_int_equal(check(SIGNAL_LOGS, "application/x-protobuf", NULL,
	    body, len, &osaka, MISMATCH_REJECT, &res), 403);
	assert_non_null(strstr(res.reason, "provider=\"tokyo\"} has "
	    "provider=\"tokyo\", site tokyo may only write provider=\"osaka\""));
	assert_int_equal(check(SIGNAL_LOGS, "application/x-protobuf", "snappy",
	    body, len, &osaka, MISMATCH_REWRITE, &res), 0);
	assert_non_null(res.body);
	assert_null(res.content_encoding);
	assert_string_equal(res.content_type, "application/x-protobuf");
	assert_int_equal(res.rewritten, 1);
	tb_unsnappy(res.body, res.len, &d, &dlen);
	assert_non_null(memmem(d, dlen, "provider=\"osaka\"}", 17));
	assert_null(memmem(d, dlen, "tokyo", 5));
	free(d);
	payload_result_free(&res);
	free(body);
}

static void
test_loki_json_fixtures(void **state)
{
	static const char *const files[] = { "loki-json/push.json",
	    "loki-json/push.json.gz" };
	static const char *const enc[] = { NULL, "gzip" };
	struct payload_result	 res;
	uint8_t			*body;
	size_t			 len, i;
	char			 path[256];

	for (i = 0; i < 2; i++) {
		snprintf(path, sizeof(path), TESTDATA "%s", files[i]);
		body = tb_read(path, &len);
		/* One stream lacks provider: tokyo gets it added. */
		assert_int_equal(check(SIGNAL_LOGS, "application/json", enc[i],
		    body, len, &tokyo, MISMATCH_REWRITE, &res), 0);
		assert_non_null(res.body);
		assert_null(res.content_encoding);
		assert_string_equal(res.content_type, "application/json");
		assert_int_equal(res.series, 2);
		assert_int_equal(res.entries, 3);
		assert_int_equal(res.rewritten, 1);
		assert_non_null(memmem(res.body, res.len,
		    "\"job\":\"backup\",\"provider\":\"tokyo\"", 33));
		payload_result_free(&res);
		assert_int_equal(check(SIGNAL_LOGS, "application/json; "
		    "charset=utf-8", enc[i], body, len, &osaka, MISMATCH_REJECT,
		    &res), 403);
		assert_string_equal(res.reason, "stream {host=\"nas-01\", "
		    "job=\"recorder\", provider=\"tokyo\"} has provider=\"tokyo\", "
		    "site tokyo may only write provider=\"osaka\"");
		free(body);
	}
}

struct header_case {
	enum signal	 sig;
	const char	*ct;
	const char	*ce;
	int		 status;
	const char	*why;
};

static const struct header_case header_cases[] = {
	{ SIGNAL_METRICS, "application/x-protobuf", NULL, 0, NULL },
	{ SIGNAL_METRICS, "application/x-protobuf", "", 0, NULL },
	{ SIGNAL_METRICS, "Application/X-Protobuf", " Snappy ", 0, NULL },
	{ SIGNAL_METRICS, "application/x-protobuf;proto=prometheus.WriteRequest",
	    "snappy", 0, NULL },
	{ SIGNAL_METRICS, "application/x-protobuf; proto=\"prometheus.WriteRequest\"",
	    "snappy", 0, NULL },
	{ SIGNAL_METRICS, "application/x-protobuf;proto=io.prometheus.write.v2.Request",
	    "snappy", 400, "malformed" },	/* a v1 body read as v2 */
	{ SIGNAL_METRICS, "application/x-protobuf;proto=foo.Bar", "snappy",
	    415, "media_type" },
	{ SIGNAL_METRICS, "application/x-protobuf", "gzip", 415, "media_type" },
	{ SIGNAL_METRICS, "application/x-protobuf", "zstd", 415, "media_type" },
	{ SIGNAL_METRICS, "application/json", "snappy", 415, "media_type" },
	{ SIGNAL_METRICS, NULL, "snappy", 415, "media_type" },
	{ SIGNAL_LOGS, NULL, NULL, 400, "malformed" },
	{ SIGNAL_LOGS, "application/x-protobuf", "br", 415, "media_type" },
	{ SIGNAL_LOGS, "application/x-protobuf", "snappy", 0, NULL },
	{ SIGNAL_LOGS, "application/octet-stream", NULL, 0, NULL },
};

static void
test_header_table(void **state)
{
	const struct header_case	*c;
	struct payload_result		 res;
	uint8_t				*rw, *lp;
	size_t				 rwlen, lplen, i;

	rw = tb_read(TESTDATA "prometheus-2.42/rw1-353-series.body", &rwlen);
	lp = tb_read(TESTDATA "promtail-2.8/push-304-entries.body", &lplen);
	for (i = 0; i < sizeof(header_cases) / sizeof(header_cases[0]); i++) {
		c = &header_cases[i];
		check(c->sig, c->ct, c->ce, c->sig == SIGNAL_METRICS ? rw : lp,
		    c->sig == SIGNAL_METRICS ? rwlen : lplen, &tokyo,
		    MISMATCH_REJECT, &res);
		if (res.status != c->status)
			fail_msg("case %zu (%s, ct %s, ce %s): status %d (%s), "
			    "want %d", i, c->sig == SIGNAL_METRICS ? "metrics" : "logs",
			    c->ct ? c->ct : "-", c->ce ? c->ce : "-",
			    res.status, res.reason, c->status);
		if (c->why != NULL && strcmp(res.reject_reason, c->why) != 0)
			fail_msg("case %zu: reject_reason %s, want %s", i,
			    res.reject_reason, c->why);
		payload_result_free(&res);
	}
	free(rw);
	free(lp);
}

/* Snappy-wraps a decoded body and runs it as a metrics request. */
static int
metrics_raw(const uint8_t *dec, size_t len, struct payload_result *res)
{
	struct pb_buf	 b = { (uint8_t *)(uintptr_t)dec, len, len, 0 };
	uint8_t		*body;
	size_t		 blen;
	int		 st;

	tb_snappy(&b, &body, &blen);
	st = metrics(body, blen, &tokyo, MISMATCH_REWRITE, res);
	free(body);
	return st;
}

struct hostile_case {
	const char	*name;
	uint8_t		 dec[24];
	size_t		 len;
};

static const struct hostile_case hostile[] = {
	{ "truncated tag varint", { 0x80 }, 1 },
	{ "truncated length varint", { 0x0a, 0xff }, 2 },
	{ "length past the end", { 0x0a, 0x10, 0x0a, 0x02 }, 4 },
	{ "10-byte varint length", { 0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	    0xff, 0xff, 0xff, 0x01, 0x00 }, 12 },
	{ "11-byte varint", { 0x08, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
	    0x80, 0x80, 0x80, 0x00 }, 12 },
	{ "label length past the series", { 0x0a, 0x04, 0x0a, 0x02, 0x0a,
	    0x7f }, 6 },
	{ "group wire type", { 0x0b, 0x0c }, 2 },
	{ "series as fixed64", { 0x09, 1, 2, 3, 4, 5, 6, 7, 8 }, 9 },
};

static void
test_hostile_protobuf(void **state)
{
	struct payload_result	res;
	size_t			i;

	for (i = 0; i < sizeof(hostile) / sizeof(hostile[0]); i++) {
		if (metrics_raw(hostile[i].dec, hostile[i].len, &res) != 400)
			fail_msg("hostile body \"%s\": status %d (%s), want 400",
			    hostile[i].name, res.status, res.reason);
		assert_string_equal(res.reject_reason, "malformed");
		assert_non_null(strstr(res.reason, "malformed remote write"));
	}
}

static void
test_hostile_snappy(void **state)
{
	static const uint8_t	 bomb[] = { 0xff, 0xff, 0xff, 0xff, 0x0f,
	    0x00 };
	static const uint8_t	 framed[] = { 0xff, 0x06, 0x00, 0x00, 0x73,
	    0x4e, 0x61, 0x50, 0x70, 0x59 };
	static const uint8_t	 junk[] = { 0x05, 0xff, 0xff };
	struct payload_result	 res;

	assert_int_equal(metrics(bomb, sizeof(bomb), &tokyo, MISMATCH_REWRITE,
	    &res), 413);
	assert_string_equal(res.reject_reason, "too_large");
	assert_int_equal(metrics(framed, sizeof(framed), &tokyo,
	    MISMATCH_REWRITE, &res), 400);
	assert_string_equal(res.reason,
	    "framed snappy is not accepted; use the block format");
	assert_int_equal(metrics(junk, sizeof(junk), &tokyo, MISMATCH_REWRITE,
	    &res), 400);
	assert_int_equal(metrics(junk, 0, &tokyo, MISMATCH_REWRITE, &res),
	    400);
	assert_int_equal(check(SIGNAL_LOGS, "application/x-protobuf", NULL,
	    bomb, sizeof(bomb), &tokyo, MISMATCH_REWRITE, &res), 413);
}

static void
test_hostile_gzip_bomb(void **state)
{
	struct payload_result	 res;
	struct payload_rule	 rule = tb_rule(&tokyo, MISMATCH_REWRITE);
	z_stream		 zs;
	uint8_t			*zeros, *z;
	size_t			 n = 40u << 20, cap = 1u << 20;

	zeros = calloc(1, n);
	z = malloc(cap);
	assert_true(zeros && z);
	memset(&zs, 0, sizeof(zs));
	assert_int_equal(deflateInit2(&zs, 9, Z_DEFLATED, 31, 9,
	    Z_DEFAULT_STRATEGY), Z_OK);
	zs.next_in = zeros;
	zs.avail_in = (uInt)n;
	zs.next_out = z;
	zs.avail_out = (uInt)cap;
	assert_int_equal(deflate(&zs, Z_FINISH), Z_STREAM_END);
	rule.max_decoded = 32u << 20;
	payload_check(SIGNAL_LOGS, "application/json", "gzip", z, zs.total_out,
	    &rule, &res);
	assert_int_equal(res.status, 413);
	assert_string_equal(res.reject_reason, "too_large");
	payload_check(SIGNAL_LOGS, "application/x-protobuf", "gzip", z,
	    zs.total_out, &rule, &res);
	assert_int_equal(res.status, 413);
	deflateEnd(&zs);
	free(zeros);
	free(z);
}

static void
test_hostile_json_depth(void **state)
{
	struct payload_result	 res;
	char			*deep;
	size_t			 n = 10000, i;

	deep = malloc(2 * n);
	assert_non_null(deep);
	for (i = 0; i < n; i++) {
		deep[i] = '{';
		deep[n + i] = '}';
	}
	assert_int_equal(check(SIGNAL_LOGS, "application/json", NULL,
	    (const uint8_t *)deep, 2 * n, &tokyo, MISMATCH_REWRITE, &res), 400);
	assert_string_equal(res.reject_reason, "malformed");
	free(deep);
}

/* A Loki push whose labels string is 1 MiB: valid, then malformed. */
static void
test_hostile_labels_one_mib(void **state)
{
	struct payload_result	 res;
	struct pb_buf		 req, s;
	uint8_t			*body;
	size_t			 blen, n = 1u << 20, at = 0;
	char			*labels;

	labels = malloc(n + 1);
	assert_non_null(labels);
	at += (size_t)snprintf(labels, n, "{provider=\"tokyo\", big=\"");
	memset(labels + at, 'x', n - at - 2);
	memcpy(labels + n - 2, "\"}", 2);
	labels[n] = '\0';
	pb_buf_init(&req, 0);
	pb_buf_init(&s, 0);
	tb_str(&s, 1, labels);
	tb_msg(&req, 1, &s);
	tb_snappy(&req, &body, &blen);
	assert_int_equal(check(SIGNAL_LOGS, "application/x-protobuf", NULL,
	    body, blen, &tokyo, MISMATCH_REJECT, &res), 0);
	assert_int_equal(check(SIGNAL_LOGS, "application/x-protobuf", NULL,
	    body, blen, &osaka, MISMATCH_REJECT, &res), 403);
	assert_true(strlen(res.reason) < 400);
	free(body);
	pb_buf_free(&req);
	labels[n - 2] = 'x';		/* unterminated */
	pb_buf_init(&req, 0);
	pb_buf_init(&s, 0);
	tb_str(&s, 1, labels);
	tb_msg(&req, 1, &s);
	tb_snappy(&req, &body, &blen);
	assert_int_equal(check(SIGNAL_LOGS, "application/x-protobuf", NULL,
	    body, blen, &tokyo, MISMATCH_REWRITE, &res), 400);
	assert_string_equal(res.reason, "malformed Loki push: labels string: "
	    "unterminated quoted string");
	free(body);
	pb_buf_free(&req);
	free(labels);
}

/* Remote write 2.0 through payload_check: dispatch and 2.0 content type. */
static void
test_rw2_dispatch(void **state)
{
	static const char	 ct[] =
	    "application/x-protobuf;proto=io.prometheus.write.v2.Request";
	struct payload_result	 res;
	struct pb_buf		 req, ts, refs;
	uint8_t			*body;
	size_t			 blen;

	pb_buf_init(&req, 0);
	tb_str(&req, 4, "");
	tb_str(&req, 4, "provider");
	tb_str(&req, 4, "osaka");
	pb_buf_init(&ts, 0);
	pb_buf_init(&refs, 0);
	pb_put_varint(&refs, 1);
	pb_put_varint(&refs, 2);
	tb_msg(&ts, 1, &refs);
	tb_msg(&req, 5, &ts);
	tb_snappy(&req, &body, &blen);
	assert_int_equal(check(SIGNAL_METRICS, ct, "snappy", body, blen,
	    &osaka, MISMATCH_REJECT, &res), 0);
	assert_int_equal(res.series, 1);
	assert_int_equal(check(SIGNAL_METRICS, ct, "snappy", body, blen,
	    &tokyo, MISMATCH_REWRITE, &res), 0);
	assert_non_null(res.body);
	assert_string_equal(res.content_type, ct);
	payload_result_free(&res);
	free(body);
	pb_buf_free(&req);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rw_fixtures_allowed_unchanged),
		cmocka_unit_test(test_rw_fixtures_foreign_rejected),
		cmocka_unit_test(test_rw_fixtures_foreign_rewritten),
		cmocka_unit_test(test_promtail_fixture),
		cmocka_unit_test(test_loki_json_fixtures),
		cmocka_unit_test(test_header_table),
		cmocka_unit_test(test_hostile_protobuf),
		cmocka_unit_test(test_hostile_snappy),
		cmocka_unit_test(test_hostile_gzip_bomb),
		cmocka_unit_test(test_hostile_json_depth),
		cmocka_unit_test(test_hostile_labels_one_mib),
		cmocka_unit_test(test_rw2_dispatch),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
