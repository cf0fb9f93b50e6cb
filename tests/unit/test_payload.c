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
		assert_ptr_equal(res.fwd, body);
		assert_int_equal(res.fwdlen, len);
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
	assert_ptr_equal(res->fwd, res->body);
	assert_int_equal(res->fwdlen, res->len);
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

/*
 * Every header variant against the body it fits, and what kakikomi forwards.
 * Per case, what the receiver would have made of the client's own header:
 *   P  Prometheus >= 2.54 parseProtoMsg (storage/remote/write_handler.go):
 *      TrimSpace, split on ";", parts[0] must be exactly
 *      "application/x-protobuf", each part split on "=", the FIRST part whose
 *      name is exactly "proto" (no trimming) is validated exactly; no proto:
 *      1.0.  Content-Encoding: "" or strings.ToLower(enc) == "snappy".
 *      Prometheus 2.42 reads neither header (snappy + WriteRequest always).
 *   G  Loki (pkg/loghttp/push parsePushRequestBody, 2.8 and current): Go's
 *      mime.ParseMediaType (Unicode ToLower + TrimSpace of the type, OWS and
 *      Unicode space around ";" and "=", duplicate names an error), then
 *      JSON for "application/json" and snappy protobuf for ANY other type;
 *      Content-Encoding compared exactly: "", snappy, gzip, deflate.
 * kakikomi sends its own Content-Type / Content-Encoding, so only its own
 * reading matters upstream: want_ct / want_ce.
 */
enum body_kind { B_RW1, B_LOKIPB, B_JSON, B_JSON_GZ };

struct header_case {
	enum body_kind	 body;
	const char	*ct;
	const char	*ce;
	int		 status;
	const char	*want_ct;	/* status 0: forwarded Content-Type */
	const char	*want_ce;	/* status 0: forwarded Content-Encoding */
};

#define PB	"application/x-protobuf"
#define JS	"application/json"
#define RW_OK(ct, ce)	{ B_RW1, ct, ce, 0, PB, "snappy" }
#define RW_NO(ct, ce)	{ B_RW1, ct, ce, 415, NULL, NULL }
#define LP_OK(ct, ce)	{ B_LOKIPB, ct, ce, 0, PB, NULL }
#define LP_NO(ct, ce)	{ B_LOKIPB, ct, ce, 415, NULL, NULL }
#define JS_OK(ct, ce)	{ B_JSON, ct, ce, 0, JS, NULL }
#define JS_NO(ct, ce)	{ B_JSON, ct, ce, 415, NULL, NULL }

static const struct header_case header_cases[] = {
	RW_OK(PB, NULL),			/* P: 1.0, CE "" = snappy */
	RW_OK(PB, ""),				/* P: same (Header.Get "") */
	RW_OK(PB, "snappy"),
	RW_OK("Application/X-Protobuf", " Snappy "),	/* P: 415 (exact type) */
	RW_OK(PB " ", "SNAPPY"),		/* P: TrimSpace, ToLower: 1.0 */
	RW_OK(PB ";proto=prometheus.WriteRequest", "snappy"),	/* P: 1.0 */
	RW_OK(PB "; proto=\"prometheus.WriteRequest\"", "snappy"),
						/* P: " proto" is not "proto": 1.0 */
	RW_OK(PB ";proto=\"prometheus.Write\\Request\"", NULL),
						/* P: 415 (quotes kept) */
	RW_OK(PB "\t;\tPROTO=prometheus.WriteRequest", NULL),
						/* P: 415 ("\t" ends parts[0]) */
	RW_OK(PB ";Proto=prometheus.WriteRequest", NULL),	/* P: 1.0 (no "proto") */
	/* A v1 body named 2.0: kakikomi reads it as 2.0 and finds it bad. */
	{ B_RW1, PB ";proto=io.prometheus.write.v2.Request", "snappy", 400,
	    NULL, NULL },
	RW_NO(PB ";Proto=prometheus.WriteRequest;proto=io.prometheus.write.v2.Request",
	    "snappy"),				/* P: 2.0 — issue item 1 */
	RW_NO(PB ";proto=prometheus.WriteRequest;PROTO=prometheus.WriteRequest",
	    NULL),				/* P: 1.0 (first exact) */
	RW_NO(PB "; proto =prometheus.WriteRequest", NULL),	/* P: 1.0 */
	RW_NO(PB ";proto= io.prometheus.write.v2.Request", NULL),
						/* P: 415 (" io..." invalid) */
	RW_NO(PB ";proto=prometheus.writerequest", NULL),	/* P: 415 */
	RW_NO(PB ";proto=foo.Bar", "snappy"),	/* P: 415 */
	RW_NO(PB ";proto=", NULL),		/* P: 415 */
	RW_NO(PB ";proto=\"\"", NULL),		/* P: 415 */
	RW_NO(PB ";proto=\"prometheus.WriteRequest", NULL),	/* P: 415 */
	RW_NO(PB ";charset=utf-8", NULL),	/* P: 1.0 (ignored) */
	RW_NO(PB ";proto=prometheus.WriteRequest;", NULL),	/* P: 415 */
	RW_NO(PB ";;proto=prometheus.WriteRequest", NULL),	/* P: 415 */
	RW_NO(PB ";", NULL),			/* P: 415 */
	RW_NO(PB ", " JS, NULL),		/* P: 415 */
	RW_NO("appl\xc4\xb0" "cation/x-protobuf", NULL),	/* P: 415; G: x-protobuf */
	RW_NO(PB "\xc2\xa0", NULL),		/* P: 415 (TrimSpace is ASCII+Unicode: 1.0!) */
	RW_NO(PB "\x0b", NULL),			/* P: TrimSpace drops VT: 1.0 */
	RW_NO("application/*", NULL),
	RW_NO(JS, "snappy"),
	RW_NO(NULL, "snappy"),			/* P >= 2.54: 1.0 (default) */
	RW_NO(PB, "gzip"),			/* P: 415 */
	RW_NO(PB, "zstd"),			/* P: 415 */
	RW_NO(PB, "identity"),			/* P: 415 */
	RW_NO(PB, "snappy, snappy"),		/* P: 415 */
	RW_NO(PB, "snappy,"),			/* P: 415 */
	RW_NO(PB, "x-snappy-framed"),		/* P: 415 */
	RW_NO(PB, "snappy\xc2\xa0"),		/* P: 415 */
	RW_NO(PB, "sn\xc3\xa4ppy"),		/* P: 415 */
	{ B_LOKIPB, NULL, NULL, 400, NULL, NULL },	/* G: "mime: no media type" */
	LP_OK(PB, NULL),
	LP_OK(PB, "snappy"),			/* G: same bytes, snappy decoded */
	LP_OK("Application/X-Protobuf", "SNAPPY"),	/* G: CE not supported (400) */
	LP_OK(" " PB "\t", ""),
	LP_NO(PB, "br"),			/* G: 400 */
	LP_NO(PB, "Gzip, snappy"),		/* G: 400 */
	LP_NO("application/octet-stream", NULL),	/* G: protobuf */
	LP_NO("text/plain", NULL),		/* G: protobuf */
	LP_NO(PB "; charset=utf-8", NULL),	/* G: protobuf */
	LP_NO(PB ";proto=logproto.PushRequest", NULL),	/* G: protobuf */
	LP_NO("x-protobuf", NULL),		/* G: 400 (no slash) */
	LP_NO("application/x-protobu\xc6\x92", NULL),	/* G: protobuf */
	JS_OK(JS, NULL),
	JS_OK(JS "; charset=utf-8", NULL),	/* G: json */
	JS_OK(JS ";CharSet=\"UTF-8\"", ""),	/* G: json */
	JS_OK("APPLICATION/JSON", NULL),	/* G: json (ToLower) */
	{ B_JSON_GZ, JS, "gzip", 0, JS, NULL },
	{ B_JSON_GZ, JS, "GZIP", 0, JS, NULL },	/* G: 400 (exact CE) */
	{ B_JSON_GZ, JS, "gzip, gzip", 415, NULL, NULL },	/* G: 400 */
	{ B_JSON_GZ, JS, "x-gzip", 415, NULL, NULL },	/* G: 400 */
	JS_NO(JS, "snappy"),			/* G: raw bytes read as JSON */
	JS_NO(JS "; charset=latin-1", NULL),	/* G: json */
	JS_NO(JS "; charset=utf-8; charset=utf-8", NULL),	/* G: 400 duplicate */
	JS_NO(JS "; Charset=utf-8;charset=utf-8", NULL),	/* G: 400 duplicate */
	JS_NO(JS "; charset = utf-8", NULL),	/* G: json */
	JS_NO(JS ";foo=bar", NULL),		/* G: json */
	JS_NO("appl\xc4\xb0" "cation/json", NULL),	/* G: json — issue item 3 */
	JS_NO(JS "\xc2\xa0", NULL),		/* G: json (TrimSpace U+00A0) */
	JS_NO(JS "\xe2\x80\x83", NULL),		/* G: json (U+2003 em space) */
	JS_NO("\xef\xbb\xbf" JS, NULL),		/* G: 400 (BOM is no space) */
	JS_NO("application/\xe2\x80\x8bjson", NULL),	/* G: 400 */
	JS_NO("application/js\xc5\x8fn", NULL),	/* G: protobuf */
	JS_NO(JS ";", NULL),			/* G: json (trailing ";" ok) */
	JS_NO(JS "\r\n", NULL),			/* G: json (TrimSpace) */
};

static const char compliant_json[] = "{\"streams\":[{\"stream\":{\"job\":"
    "\"x\",\"provider\":\"tokyo\"},\"values\":[[\"1\",\"line\"]]}]}";

/* zlib's deflate into a new buffer: wbits 31 gzip, -15 raw. */
static uint8_t *
zpack(const void *in, size_t len, int wbits, size_t *outlen)
{
	z_stream	 zs;
	size_t		 cap = len + 1024;
	uint8_t		*z = malloc(cap);

	assert_non_null(z);
	memset(&zs, 0, sizeof(zs));
	assert_int_equal(deflateInit2(&zs, 6, Z_DEFLATED, wbits, 8,
	    Z_DEFAULT_STRATEGY), Z_OK);
	zs.next_in = (Bytef *)(uintptr_t)in;
	zs.avail_in = (uInt)len;
	zs.next_out = z;
	zs.avail_out = (uInt)cap;
	assert_int_equal(deflate(&zs, Z_FINISH), Z_STREAM_END);
	*outlen = zs.total_out;
	deflateEnd(&zs);
	return z;
}

static uint8_t *
case_body(enum body_kind k, size_t *len)
{
	uint8_t	*b;

	switch (k) {
	case B_RW1:
		return tb_read(TESTDATA "prometheus-2.42/rw1-353-series.body",
		    len);
	case B_LOKIPB:
		return tb_read(TESTDATA "promtail-2.8/push-304-entries.body",
		    len);
	case B_JSON:
		*len = strlen(compliant_json);
		b = malloc(*len);
		assert_non_null(b);
		memcpy(b, compliant_json, *len);
		return b;
	default:
		return zpack(compliant_json, strlen(compliant_json), 31, len);
	}
}

static void
assert_forwarded(const struct header_case *c, const uint8_t *body,
    size_t len, const struct payload_result *res)
{
	uint8_t	*json;
	size_t	 jlen;

	assert_string_equal(res->content_type, c->want_ct);
	if (c->want_ce == NULL)
		assert_null(res->content_encoding);
	else
		assert_string_equal(res->content_encoding, c->want_ce);
	if (c->body == B_RW1)
		assert_string_equal(res->rw_version, "0.1.0");
	else
		assert_null(res->rw_version);
	if (c->body != B_JSON_GZ && c->body != B_JSON) {
		/* The very bytes the client sent and kakikomi checked. */
		assert_ptr_equal(res->fwd, body);
		assert_int_equal(res->fwdlen, len);
		return;
	}
	/*
	 * JSON: kakikomi's own serialisation of the document it checked, never
	 * the client's bytes (this document is canonical already, so they are
	 * equal), without Content-Encoding.
	 */
	json = case_body(B_JSON, &jlen);
	assert_int_equal(res->fwdlen, jlen);
	assert_memory_equal(res->fwd, json, jlen);
	assert_ptr_equal(res->fwd, res->body);
	free(json);
}

static void
test_header_table(void **state)
{
	const struct header_case	*c;
	struct payload_result		 res;
	uint8_t				*body;
	size_t				 len, i;

	for (i = 0; i < sizeof(header_cases) / sizeof(header_cases[0]); i++) {
		c = &header_cases[i];
		body = case_body(c->body, &len);
		check(c->body == B_RW1 ? SIGNAL_METRICS : SIGNAL_LOGS, c->ct,
		    c->ce, body, len, &tokyo, MISMATCH_REJECT, &res);
		if (res.status != c->status)
			fail_msg("case %zu (ct %s, ce %s): status %d (%s), "
			    "want %d", i, c->ct ? c->ct : "-", c->ce ? c->ce : "-",
			    res.status, res.reason, c->status);
		if (c->status == 415)
			assert_string_equal(res.reject_reason, "media_type");
		if (c->status == 0)
			assert_forwarded(c, body, len, &res);
		payload_result_free(&res);
		free(body);
	}
}

/*
 * Loki protobuf sent gzip or deflate: Loki inflates, then snappy-decodes.
 * kakikomi forwards the inflated snappy bytes it checked, with no
 * Content-Encoding, so Loki reads exactly those.
 */
static void
test_loki_pb_inflated_forwarded(void **state)
{
	static const int	 wbits[] = { 31, -15 };
	static const char *const ce[] = { "gzip", "deflate" };
	struct payload_result	 res;
	uint8_t			*lp, *z;
	size_t			 lplen, zlen, i;

	lp = case_body(B_LOKIPB, &lplen);
	for (i = 0; i < 2; i++) {
		z = zpack(lp, lplen, wbits[i], &zlen);
		assert_int_equal(check(SIGNAL_LOGS, PB, ce[i], z, zlen,
		    &tokyo, MISMATCH_REJECT, &res), 0);
		assert_string_equal(res.content_type, PB);
		assert_null(res.content_encoding);
		assert_int_equal(res.fwdlen, lplen);
		assert_memory_equal(res.fwd, lp, lplen);
		payload_result_free(&res);
		free(z);
	}
	free(lp);
}

/*
 * A body valid as zlib and as raw deflate (bodies.h).  Its zlib reading is a
 * compliant Loki JSON push; Go's compress/flate (Loki) reads it raw, and so
 * must kakikomi: that reading begins 9c 21, not JSON, so 400.  Before, the
 * zlib header made kakikomi take the zlib reading and forward the client's
 * compressed bytes with its "deflate", which Loki would read the other way.
 */
static void
test_deflate_polyglot(void **state)
{
	struct payload_result	 res;
	uint8_t			*poly, *raw;
	size_t			 rawlen;

	poly = tb_deflate_polyglot("{\"streams\":[{\"stream\":{\"provider\":"
	    "\"tokyo\",\"pad\":\"", "\"},\"values\":[[\"1\",\"x\"]]}]}", &raw,
	    &rawlen);
	assert_int_equal(check(SIGNAL_LOGS, JS, "deflate", poly, TB_POLY_LEN,
	    &tokyo, MISMATCH_REJECT, &res), 400);
	assert_string_equal(res.reject_reason, "malformed");
	free(raw);
	free(poly);
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
	payload_result_free(&res);
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

/*
 * Remote write 2.0 through payload_check: every RFC 9110 spelling of the 2.0
 * type is 2.0 to kakikomi, which forwards its canonical Content-Type.  With
 * the client's string, Prometheus' parseProtoMsg would have read the second
 * and third as 1.0 (" proto" and "Proto" are not "proto") and the fourth as
 * 415 (quotes are kept): only the canonical one means 2.0 there.
 */
static const char *const rw2_spellings[] = {
	PB ";proto=io.prometheus.write.v2.Request",
	PB "; proto=io.prometheus.write.v2.Request",
	PB ";Proto=io.prometheus.write.v2.Request",
	PB ";proto=\"io.prometheus.write.v2.Request\"",
};

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
	for (size_t i = 0; i < sizeof(rw2_spellings) / sizeof(rw2_spellings[0]);
	    i++) {
		if (check(SIGNAL_METRICS, rw2_spellings[i], "snappy", body, blen,
		    &osaka, MISMATCH_REJECT, &res) != 0)
			fail_msg("%s: %d %s", rw2_spellings[i], res.status,
			    res.reason);
		assert_int_equal(res.series, 1);
		assert_string_equal(res.content_type, ct);
		assert_string_equal(res.rw_version, "2.0.0");
		assert_ptr_equal(res.fwd, body);
	}
	/* Foreign under reject, however the 2.0 type is spelled. */
	assert_int_equal(check(SIGNAL_METRICS, " " PB "; Proto=\"io.prometheus."
	    "write.v2.Request\" ", NULL, body, blen, &tokyo, MISMATCH_REJECT,
	    &res), 403);
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
		cmocka_unit_test(test_loki_pb_inflated_forwarded),
		cmocka_unit_test(test_deflate_polyglot),
		cmocka_unit_test(test_hostile_protobuf),
		cmocka_unit_test(test_hostile_snappy),
		cmocka_unit_test(test_hostile_gzip_bomb),
		cmocka_unit_test(test_hostile_json_depth),
		cmocka_unit_test(test_hostile_labels_one_mib),
		cmocka_unit_test(test_rw2_dispatch),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
