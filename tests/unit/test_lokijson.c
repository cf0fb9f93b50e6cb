/*
 * lokijson: the Loki JSON push document, case by case, with the exact
 * canonical bytes kakikomi forwards.  Each comment says what Loki would do
 * with the input (grafana/loki 2.8 and main: pkg/util/unmarshal/unmarshal.go
 * DecodePushRequest = jsoniter into loghttp.PushRequest; pkg/loghttp/query.go
 * LogProtoStream.UnmarshalJSON / unmarshalHTTPToLogProtoEntry and labels.go
 * LabelSet.UnmarshalJSON = jsonparser).  Every accepted output is checked
 * again and must come back byte for byte (fixpoint).
 */
#include <sys/resource.h>

#include "bodies.h"
#include "codec.h"
#include "labels.h"
#include "lokijson.h"

static char		*sites_v[] = { "tokyo", "kyoto" };
static struct strlist	 sites = { sites_v, 2 };

#define W	MISMATCH_REWRITE
#define R	MISMATCH_REJECT
#define DOC(s)	"{\"streams\":[" s "]}"
#define ST(l, v) "{\"stream\":{" l "},\"values\":[" v "]}"
#define TOK	"\"provider\":\"tokyo\""

struct jcase {
	const char	*in;
	enum mismatch	 mode;
	int		 rc;
	const char	*want;	/* output (PASS, REWRITE) or reason substring */
};

static const struct jcase cases[] = {
	/* Empty push: Loki stores nothing; so do we, canonically spelled. */
	{ "{\"streams\":[]}", W, LABELS_PASS, "{\"streams\":[]}" },
	{ " \t\r\n{ \"streams\" :\n[ ] }\n ", R, LABELS_PASS,
	    "{\"streams\":[]}" },
	/* jsoniter folds A-Z and decodes escapes in the top-level key. */
	{ "{\"Streams\":[]}", W, LABELS_PASS, "{\"streams\":[]}" },
	{ "{\"STREAMS\":[]}", W, LABELS_PASS, "{\"streams\":[]}" },
	{ "{\"sTreams\":[]}", W, LABELS_PASS, "{\"streams\":[]}" },
	{ "{\"\\u0053treams\":[]}", W, LABELS_PASS, "{\"streams\":[]}" },
	/* ASCII folding only (jsoniter): U+017F long s is another key. */
	{ "{\"\xc5\xbftreams\":[]}", W, LABELS_MALFORMED, "unknown key" },
	/* The attack: Loki (last match wins) stores the second. */
	{ "{\"streams\":[],\"Streams\":[" ST("\"provider\":\"osaka\"", "")
	    "]}", W, LABELS_MALFORMED, "a key repeats" },
	{ "{\"streams\":[],\"streams\":[]}", W, LABELS_MALFORMED,
	    "a key repeats" },
	{ "{\"STREAMS\":[],\"\\u0073treams\":[]}", R, LABELS_MALFORMED,
	    "a key repeats" },
	/* Loki skips unknown keys (maybe an FNV hash twin of "streams"). */
	{ "{\"streams\":[],\"x\":\"y\"}", W, LABELS_MALFORMED, "unknown key" },
	{ "{\"x\":{},\"streams\":[]}", W, LABELS_MALFORMED, "unknown key" },
	{ "{\"streams\\u0000\":[]}", W, LABELS_MALFORMED, "unknown key" },
	{ "{}", W, LABELS_MALFORMED, "the body is not" },
	/* Stream keys: Loki's jsonparser matches exactly; we fold and
	 * always write lowercase, so both readings are what we checked. */
	{ DOC("{\"Stream\":{" TOK "},\"Values\":[]}"), W, LABELS_PASS,
	    DOC(ST(TOK, "")) },
	{ DOC("{\"STREAM\":{" TOK "},\"VALUES\":[]}"), W, LABELS_PASS,
	    DOC(ST(TOK, "")) },
	{ DOC("{\"sTrEaM\":{" TOK "},\"vAlUeS\":[[\"1\",\"x\"]]}"), R,
	    LABELS_PASS, DOC(ST(TOK, "[\"1\",\"x\"]")) },
	/* main: the last "stream" wins; 2.8: the two maps merge. */
	{ DOC("{\"stream\":{" TOK "},\"stream\":{\"provider\":\"osaka\"},"
	    "\"values\":[]}"), W, LABELS_MALFORMED, "a key repeats" },
	{ DOC("{\"stream\":{" TOK "},\"Stream\":{},\"values\":[]}"), W,
	    LABELS_MALFORMED, "a key repeats" },
	{ DOC("{\"stream\":{" TOK "},\"values\":[],\"VALUES\":[]}"), W,
	    LABELS_MALFORMED, "a key repeats" },
	{ DOC("{\"stream\":{" TOK "},\"values\":[],\"hash\":\"1\"}"), W,
	    LABELS_MALFORMED, "unknown key" },
	/* Loki: no labels → its own 400; values missing → no entries. */
	{ DOC("{\"values\":[]}"), W, LABELS_MALFORMED,
	    "a stream needs a \"stream\" object and a \"values\" array" },
	{ DOC("{\"stream\":{" TOK "}}"), W, LABELS_MALFORMED,
	    "a stream needs" },
	/* "values" before "stream": same canonical order out. */
	{ DOC("{\"values\":[[\"1\",\"x\"]],\"stream\":{" TOK ",\"a\":\"b\"}}"),
	    W, LABELS_PASS, DOC(ST("\"a\":\"b\"," TOK, "[\"1\",\"x\"]")) },
	{ DOC("{\"values\":[[\"1\",\"x\"]],\"stream\":{\"job\":\"j\"}}"), W,
	    LABELS_REWRITE, DOC(ST("\"job\":\"j\"," TOK, "[\"1\",\"x\"]")) },
	{ DOC("{\"values\":[],\"stream\":{\"job\":\"j\"}}," ST(TOK, "")), W,
	    LABELS_REWRITE, DOC(ST("\"job\":\"j\"," TOK, "") "," ST(TOK, "")) },
	/* Labels: sorted, the site's value set under rewrite. */
	{ DOC(ST("\"z\":\"1\",\"provider\":\"kyoto\",\"a\":\"2\"", "")), R,
	    LABELS_PASS, DOC(ST("\"a\":\"2\",\"provider\":\"kyoto\",\"z\":\"1\"",
	    "")) },
	{ DOC(ST("\"provider\":\"osaka\"", "")), W, LABELS_REWRITE,
	    DOC(ST(TOK, "")) },
	{ DOC(ST("\"provider\":\"osaka\"", "")), R, LABELS_REJECT,
	    "stream {provider=\"osaka\"} has provider=\"osaka\", site tokyo "
	    "may only write provider=\"tokyo\" or provider=\"kyoto\"" },
	{ DOC(ST("\"a\":\"\",\"provider\":\"\"", "")), W, LABELS_REWRITE,
	    DOC(ST("\"a\":\"\"," TOK, "")) },
	/* jsonparser decodes label names (twice: ObjectEach and
	 * ParseString); a decoded valid name has no backslash left. */
	{ DOC(ST("\"\\u0070rovider\":\"osaka\"", "")), R, LABELS_REJECT,
	    "has provider=\"osaka\"" },
	{ DOC(ST("\"\\u0070rovider\":\"osaka\"", "")), W, LABELS_REWRITE,
	    DOC(ST(TOK, "")) },
	{ DOC(ST("\"\\\\u0070rovider\":\"osaka\"", "")), W, LABELS_MALFORMED,
	    "invalid label name" },
	/* Loki: a repeated name, the last wins; case-distinct names are
	 * distinct labels. */
	{ DOC(ST(TOK ",\"provider\":\"osaka\"", "")), W, LABELS_MALFORMED,
	    "a stream repeats a label name" },
	{ DOC(ST(TOK ",\"Provider\":\"osaka\"", "")), R, LABELS_PASS,
	    DOC(ST("\"Provider\":\"osaka\"," TOK, "")) },
	{ DOC(ST("\"bad-name\":\"x\"", "")), W, LABELS_MALFORMED,
	    "invalid label name" },
	{ DOC(ST("\"\":\"x\"", "")), W, LABELS_MALFORMED, "invalid label name" },
	/* jsonparser.ParseString takes 7, true, null, {..} as text. */
	{ DOC(ST("\"provider\":7", "")), W, LABELS_MALFORMED,
	    "a label value is not a string" },
	{ DOC(ST("\"provider\":true", "")), W, LABELS_MALFORMED,
	    "a label value is not a string" },
	{ DOC(ST("\"provider\":null", "")), W, LABELS_MALFORMED,
	    "a label value is not a string" },
	{ DOC(ST("\"provider\":{}", "")), W, LABELS_MALFORMED,
	    "a label value is not a string" },
	{ DOC("{\"stream\":[],\"values\":[]}"), W, LABELS_MALFORMED,
	    "\"stream\" is not an object" },
	/* Strings: escapes decoded, canonical re-escape. */
	{ DOC(ST(TOK, "[\"1\",\"a\\/b\\u00e9\\ud83d\\ude00\\\"\\\\\\n\\u0001"
	    "\\u001F\\b\\f\\r\\t\x7f\xe9\x8c\xb2\"]")), W, LABELS_PASS,
	    DOC(ST(TOK, "[\"1\",\"a/b\xc3\xa9\xf0\x9f\x98\x80\\\"\\\\\\n"
	    "\\u0001\\u001f\\b\\f\\r\\t\x7f\xe9\x8c\xb2\"]")) },
	{ DOC(ST(TOK, "[\"1\",\"\\u0000\\u2028\"]")), W, LABELS_PASS,
	    DOC(ST(TOK, "[\"1\",\"\\u0000\xe2\x80\xa8\"]")) },
	/* Go's decoders put U+FFFD for these (jsonparser refuses some). */
	{ DOC(ST(TOK, "[\"1\",\"\xff\"]")), W, LABELS_MALFORMED,
	    "invalid UTF-8" },
	{ DOC(ST(TOK, "[\"1\",\"\xc0\xaf\"]")), W, LABELS_MALFORMED,
	    "invalid UTF-8" },
	{ DOC(ST(TOK, "[\"1\",\"\xed\xa0\x80\"]")), W, LABELS_MALFORMED,
	    "invalid UTF-8" },
	{ DOC(ST(TOK, "[\"1\",\"\xf4\x90\x80\x80\"]")), W, LABELS_MALFORMED,
	    "invalid UTF-8" },
	{ DOC(ST(TOK, "[\"1\",\"\xe3\x81\"]")), W, LABELS_MALFORMED,
	    "invalid UTF-8" },
	{ DOC(ST("\"provider\":\"tok\xffyo\"", "")), W, LABELS_MALFORMED,
	    "invalid UTF-8" },
	{ DOC(ST(TOK, "[\"1\",\"\\ud800\"]")), W, LABELS_MALFORMED,
	    "lone surrogate" },
	{ DOC(ST(TOK, "[\"1\",\"\\udc00\\ud800\"]")), W, LABELS_MALFORMED,
	    "lone surrogate" },
	{ DOC(ST(TOK, "[\"1\",\"\\ud800\\u0041\"]")), W, LABELS_MALFORMED,
	    "lone surrogate" },
	{ DOC(ST(TOK, "[\"1\",\"\\x41\"]")), W, LABELS_MALFORMED,
	    "invalid escape" },
	{ DOC(ST(TOK, "[\"1\",\"\\u00g0\"]")), W, LABELS_MALFORMED,
	    "invalid escape" },
	{ DOC(ST(TOK, "[\"1\",\"a\tb\"]")), W, LABELS_MALFORMED,
	    "a control character" },
	{ DOC(ST(TOK, "[\"1\",\"abc")), W, LABELS_MALFORMED,
	    "unterminated string" },
	/* Timestamps: ParseInt of the raw bytes (main), int64 range. */
	{ DOC(ST(TOK, "[\"007\",\"x\"],[\"-0\",\"y\"],[\"-5\",\"z\"]")), W,
	    LABELS_PASS, DOC(ST(TOK, "[\"7\",\"x\"],[\"0\",\"y\"],[\"-5\","
	    "\"z\"]")) },
	{ DOC(ST(TOK, "[\"9223372036854775807\",\"x\"],"
	    "[\"-9223372036854775808\",\"y\"]")), W, LABELS_PASS,
	    DOC(ST(TOK, "[\"9223372036854775807\",\"x\"],"
	    "[\"-9223372036854775808\",\"y\"]")) },
	{ DOC(ST(TOK, "[\"9223372036854775808\",\"x\"]")), W, LABELS_MALFORMED,
	    "out of int64 range" },
	{ DOC(ST(TOK, "[\"-9223372036854775809\",\"x\"]")), W,
	    LABELS_MALFORMED, "out of int64 range" },
	{ DOC(ST(TOK, "[1764036000000000000,\"x\"]")), W, LABELS_MALFORMED,
	    "a timestamp is not a string" },
	{ DOC(ST(TOK, "[\"\\u0031\",\"x\"]")), W, LABELS_MALFORMED,
	    "a timestamp is not decimal nanoseconds" },
	{ DOC(ST(TOK, "[\"+1\",\"x\"]")), W, LABELS_MALFORMED,
	    "not decimal nanoseconds" },
	{ DOC(ST(TOK, "[\"17x\",\"x\"]")), W, LABELS_MALFORMED,
	    "not decimal nanoseconds" },
	{ DOC(ST(TOK, "[\"\",\"x\"]")), W, LABELS_MALFORMED,
	    "not decimal nanoseconds" },
	/* Entries: Loki main skips null entries and extra elements. */
	{ DOC(ST(TOK, "[\"1\"]")), W, LABELS_MALFORMED, "an entry has no line" },
	{ DOC(ST(TOK, "[\"1\",2]")), W, LABELS_MALFORMED,
	    "a line is not a string" },
	{ DOC(ST(TOK, "[\"1\",\"x\",{},4]")), W, LABELS_MALFORMED,
	    "an entry is [" },
	{ DOC(ST(TOK, "[\"1\",\"x\",\"md\"]")), W, LABELS_MALFORMED,
	    "structured metadata is not an object" },
	{ DOC(ST(TOK, "null")), W, LABELS_MALFORMED, "an entry is not an array" },
	{ DOC("{\"stream\":{" TOK "},\"values\":null}"), W, LABELS_MALFORMED,
	    "\"values\" is not an array" },
	{ DOC("{\"stream\":{" TOK "},\"values\":{}}"), W, LABELS_MALFORMED,
	    "\"values\" is not an array" },
	{ DOC(ST(TOK, "[\"1\",\"x\"],")), W, LABELS_MALFORMED,
	    "an entry is not an array" },
	{ DOC(ST(TOK, "[\"1\",\"x\"] [\"2\",\"y\"]")), W, LABELS_MALFORMED,
	    "expected ',' or ']'" },
	{ DOC(ST(TOK, " [ \"1\" , \"x\" , { \"b\" : \"2\" , \"a\" : \"1\" } ] ")),
	    W, LABELS_PASS,
	    DOC(ST(TOK, "[\"1\",\"x\",{\"a\":\"1\",\"b\":\"2\"}]")) },
	/* Structured metadata: the site label there must be absent or
	 * allowed, in both modes (a rewrite does not reach inside). */
	{ DOC(ST(TOK, "[\"1\",\"x\",{}]")), W, LABELS_PASS,
	    DOC(ST(TOK, "[\"1\",\"x\"]")) },
	{ DOC(ST(TOK, "[\"1\",\"x\",{\"trace_id\":\"t\"," TOK "}]")), R,
	    LABELS_PASS, DOC(ST(TOK, "[\"1\",\"x\",{" TOK ",\"trace_id\":"
	    "\"t\"}]")) },
	{ DOC(ST(TOK, "[\"1\",\"x\",{\"provider\":\"\"}]")), R, LABELS_PASS,
	    DOC(ST(TOK, "[\"1\",\"x\",{\"provider\":\"\"}]")) },
	{ DOC(ST(TOK, "") "," ST(TOK, "[\"1\",\"x\",{\"provider\":\"osaka\"}]")),
	    W, LABELS_REJECT, "structured metadata of stream 2 "
	    "{provider=\"osaka\"} has provider=\"osaka\", site tokyo may only "
	    "write provider=\"tokyo\" or provider=\"kyoto\"" },
	{ DOC(ST(TOK, "[\"1\",\"x\",{\"\\u0070rovider\":\"osaka\"}]")), R,
	    LABELS_REJECT, "structured metadata of stream 1" },
	{ DOC("{\"values\":[[\"1\",\"x\",{\"provider\":\"osaka\"}]],"
	    "\"stream\":{\"provider\":\"osaka\"}}"), W, LABELS_REJECT,
	    "structured metadata of stream 1" },
	/* Loki 3 renames metadata names through otlptranslator. */
	{ DOC(ST(TOK, "[\"1\",\"x\",{\"trace.id\":\"t\"}]")), W,
	    LABELS_MALFORMED, "invalid structured metadata name" },
	{ DOC(ST(TOK, "[\"1\",\"x\",{\"pro__vider\":\"t\"}]")), W,
	    LABELS_MALFORMED, "invalid structured metadata name" },
	{ DOC(ST(TOK, "[\"1\",\"x\",{\"a\":\"1\",\"a\":\"2\"}]")), W,
	    LABELS_MALFORMED, "an entry repeats a structured metadata name" },
	{ DOC(ST(TOK, "[\"1\",\"x\",{\"a\":1}]")), W, LABELS_MALFORMED,
	    "a label value is not a string" },
	{ DOC(ST(TOK, "[\"1\",\"x\",{\"structuredMetadata\":{}}]")), W,
	    LABELS_MALFORMED, "a label value is not a string" },
	/* Structure and trailing data. */
	{ "{\"streams\":[]} x", W, LABELS_MALFORMED, "data after the document" },
	{ "{\"streams\":[]}{}", W, LABELS_MALFORMED, "data after the document" },
	{ "{\"streams\":null}", W, LABELS_MALFORMED,
	    "\"streams\" is not an array" },
	{ "{\"streams\":{}}", W, LABELS_MALFORMED,
	    "\"streams\" is not an array" },
	{ "{\"streams\":[[]]}", W, LABELS_MALFORMED, "a stream is not an object" },
	{ "{\"streams\":[null]}", W, LABELS_MALFORMED,
	    "a stream is not an object" },
	{ "{\"streams\":[],}", W, LABELS_MALFORMED, "expected a key" },
	{ "{\"streams\" []}", W, LABELS_MALFORMED, "expected ':'" },
	{ "{\"streams\":[]", W, LABELS_MALFORMED, "expected ',' or '}' at byte 13" },
	{ "[]", W, LABELS_MALFORMED, "the body is not {\"streams\": [...]} at "
	    "byte 0" },
	{ "", W, LABELS_MALFORMED, "the body is not" },
	{ "not json", W, LABELS_MALFORMED, "the body is not" },
};

static void
run(const uint8_t *in, size_t len, enum mismatch mode, int *rc,
    struct pb_buf *out, char *reason, size_t reasonsz,
    struct loki_stats *st)
{
	struct payload_rule	rule = tb_rule(&sites, mode);

	reason[0] = '\0';
	*rc = lokijson_check(in, len, &rule, st, out, reason, reasonsz);
}

/* An accepted output is a fixpoint and passes in both modes. */
static void
assert_fixpoint(const struct pb_buf *out)
{
	struct loki_stats	st;
	struct pb_buf		again;
	char			reason[512];
	int			rc, mode;

	for (mode = 0; mode < 2; mode++) {
		run(out->data, out->len, mode ? R : W, &rc, &again, reason,
		    sizeof(reason), &st);
		if (rc != LABELS_PASS || again.len != out->len ||
		    memcmp(again.data, out->data, out->len) != 0)
			fail_msg("not a fixpoint: %.*s -> %d %s", (int)out->len,
			    out->data, rc, reason);
		pb_buf_free(&again);
	}
}

static void
test_table(void **state)
{
	struct loki_stats	 st;
	struct pb_buf		 out;
	char			 reason[512];
	size_t			 i;
	int			 rc;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct jcase	*c = &cases[i];

		run((const uint8_t *)c->in, strlen(c->in), c->mode, &rc, &out, reason,
		    sizeof(reason), &st);
		if (rc != c->rc)
			fail_msg("case %zu %s: outcome %d (%s), want %d", i,
			    c->in, rc, reason, c->rc);
		if (rc == LABELS_PASS || rc == LABELS_REWRITE) {
			if (out.len != strlen(c->want) ||
			    memcmp(out.data, c->want, out.len) != 0)
				fail_msg("case %zu %s:\n got %.*s\nwant %s", i,
				    c->in, (int)out.len, out.data, c->want);
			assert_fixpoint(&out);
			pb_buf_free(&out);
		} else {
			assert_null(out.data);
			if (strstr(reason, c->want) == NULL)
				fail_msg("case %zu %s: reason %s, want %s", i,
				    c->in, reason, c->want);
		}
	}
	/* A NUL after the document is data, not an end (not a C string). */
	run((const uint8_t *)"{\"streams\":[]}", 15, W, &rc, &out, reason,
	    sizeof(reason), &st);
	assert_int_equal(rc, LABELS_MALFORMED);
	assert_string_equal(reason, "malformed Loki push: JSON: data after the "
	    "document at byte 14");
}

static const char fixture_out[] = "{\"streams\":[{\"stream\":{\"host\":"
    "\"nas-01\",\"job\":\"recorder\",\"provider\":\"tokyo\"},\"values\":"
    "[[\"1764036000000000000\",\"recorded program 1\"],"
    "[\"1764036001000000000\",\"\xe9\x8c\xb2\xe7\x94\xbb \xe2\x9c\x93 with "
    "\\\"quotes\\\"\",{\"trace_id\":\"abc123\"}]]},{\"stream\":{\"job\":"
    "\"backup\",\"provider\":\"tokyo\"},\"values\":[[\"1764036002000000000\","
    "\"backup started\"]]}]}";

/* The captured bodies come out canonical (one stream gets provider). */
static void
test_fixtures(void **state)
{
	struct loki_stats	 st;
	struct pb_buf		 out;
	const char		*errstr;
	uint8_t			*body, *dec;
	size_t			 len, declen;
	char			 reason[512];
	int			 rc;

	body = tb_read(TESTDATA "loki-json/push.json.gz", &len);
	assert_int_equal(codec_inflate(CODEC_GZIP, body, len, 1u << 20, &dec,
	    &declen, &errstr), CODEC_OK);
	free(body);
	body = tb_read(TESTDATA "loki-json/push.json", &len);
	assert_int_equal(declen, len);
	assert_memory_equal(dec, body, len);
	free(dec);
	run(body, len, W, &rc, &out, reason, sizeof(reason), &st);
	assert_int_equal(rc, LABELS_REWRITE);
	assert_int_equal(st.streams, 2);
	assert_int_equal(st.entries, 3);
	assert_int_equal(st.rewritten, 1);
	assert_int_equal(out.len, strlen(fixture_out));
	assert_memory_equal(out.data, fixture_out, out.len);
	assert_fixpoint(&out);
	pb_buf_free(&out);
	run(body, len, R, &rc, &out, reason, sizeof(reason), &st);
	assert_int_equal(rc, LABELS_REJECT);
	assert_string_equal(reason, "stream {job=\"backup\"} has no provider "
	    "label, site tokyo may only write provider=\"tokyo\" or "
	    "provider=\"kyoto\"");
	free(body);
}

/* `n` copies of `unit` between head and tail. */
static uint8_t *
repeat(const char *head, const char *unit, size_t n, const char *tail,
    size_t *len)
{
	size_t	 h = strlen(head), u = strlen(unit), t = strlen(tail), i;
	uint8_t	*b;

	*len = h + n * u + t;
	assert_non_null(b = malloc(*len));
	memcpy(b, head, h);
	for (i = 0; i < n; i++)
		memcpy(b + h + i * u, unit, u);
	memcpy(b + h + n * u, tail, t);
	return b;
}

/* Deep nesting fails at the first level the schema does not allow. */
static void
test_deep(void **state)
{
	struct loki_stats	 st;
	struct pb_buf		 out;
	uint8_t			*b;
	size_t			 len;
	char			 reason[512];
	int			 rc;

	b = repeat("", "[", 1000000, "", &len);
	run(b, len, W, &rc, &out, reason, sizeof(reason), &st);
	assert_int_equal(rc, LABELS_MALFORMED);
	assert_string_equal(reason, "malformed Loki push: JSON: the body is "
	    "not {\"streams\": [...]} at byte 0");
	free(b);
	b = repeat("{\"streams\":[", "{", 1000000, "", &len);
	run(b, len, W, &rc, &out, reason, sizeof(reason), &st);
	assert_int_equal(rc, LABELS_MALFORMED);
	assert_string_equal(reason, "malformed Loki push: JSON: expected a key "
	    "at byte 13");
	free(b);
	b = repeat("{\"streams\":[{\"stream\":{" TOK "},\"values\":[[\"1\",\"x\","
	    "{\"a\":", "{", 1000000, "", &len);
	run(b, len, W, &rc, &out, reason, sizeof(reason), &st);
	assert_int_equal(rc, LABELS_MALFORMED);
	assert_non_null(strstr(reason, "a label value is not a string"));
	free(b);
}

/* Large arrays pass in linear time; label maps are capped. */
static void
test_huge(void **state)
{
	struct loki_stats	 st;
	struct pb_buf		 out;
	uint8_t			*b;
	size_t			 len, i;
	char			 reason[512], name[16];
	int			 rc;

	b = repeat("{\"streams\":[{\"stream\":{" TOK "},\"values\":[",
	    "[\"1\",\"\"],", 1000000, "[\"1\",\"\"]]}]}", &len);
	run(b, len, R, &rc, &out, reason, sizeof(reason), &st);
	assert_int_equal(rc, LABELS_PASS);
	assert_int_equal(st.entries, 1000001);
	assert_int_equal(out.len, len);
	assert_memory_equal(out.data, b, len);
	pb_buf_free(&out);
	free(b);
	b = repeat("{\"streams\":[", ST(TOK, "") ",", 200000, ST(TOK, "") "]}",
	    &len);
	run(b, len, W, &rc, &out, reason, sizeof(reason), &st);
	assert_int_equal(rc, LABELS_PASS);
	assert_int_equal(st.streams, 200001);
	pb_buf_free(&out);
	free(b);
	/* 1024 labels pass, 1025 do not. */
	b = malloc(64 * 1100);
	assert_non_null(b);
	len = strlen("{\"streams\":[{\"stream\":{");
	memcpy(b, "{\"streams\":[{\"stream\":{", len);
	for (i = 0; i < 1025; i++) {
		snprintf(name, sizeof(name), "l%04zu", i);
		len += (size_t)sprintf((char *)b + len, "%s\"%s\":\"v\"",
		    i ? "," : "", i == 0 ? "provider" : name);
		if (i == 1023 || i == 1024) {
			memcpy(b + len, "},\"values\":[]}]}", 16);
			run(b, len + 16, W, &rc, &out, reason, sizeof(reason),
			    &st);
			assert_int_equal(rc, i == 1023 ? LABELS_REWRITE :
			    LABELS_MALFORMED);
			pb_buf_free(&out);
		}
	}
	assert_non_null(strstr(reason, "more than 1024 labels"));
	free(b);
}

/*
 * The amplification case of issue 10: 32 MiB of tiny entries.  Peak RSS
 * of this test process (body + output + everything else) is reported so
 * `/usr/bin/time -v` is not needed to see it; it must stay under 3x the
 * body, where jansson's tree took 1.1-1.5 GB.
 */
static void
test_32mib_tiny(void **state)
{
	struct loki_stats	 st;
	struct pb_buf		 out;
	struct rusage		 ru;
	uint8_t			*b;
	size_t			 len;
	char			 reason[512];
	int			 rc;

	b = repeat("{\"streams\":[{\"stream\":{\"job\":\"j\"},\"values\":[",
	    "[\"1\",\"\"],", (32u << 20) / 9, "[\"1\",\"\"]]}]}", &len);
	run(b, len, W, &rc, &out, reason, sizeof(reason), &st);
	assert_int_equal(rc, LABELS_REWRITE);
	assert_int_equal(out.len, len + strlen("," TOK));
	pb_buf_free(&out);
	free(b);
	assert_int_equal(getrusage(RUSAGE_SELF, &ru), 0);
	print_message("32 MiB of tiny entries: peak RSS %ld KiB\n",
	    ru.ru_maxrss);
#ifndef __SANITIZE_ADDRESS__	/* shadow memory and quarantine */
	assert_true((size_t)ru.ru_maxrss * 1024 < 3 * len + (16u << 20));
#endif
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_fixtures),
		cmocka_unit_test(test_deep),
		cmocka_unit_test(test_huge),
		cmocka_unit_test(test_32mib_tiny),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
