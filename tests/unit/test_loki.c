/*
 * loki: push bodies, protobuf (decoded) and JSON: check, rewrite, refusals.
 */
#include <jansson.h>

#include "bodies.h"
#include "labels.h"
#include "loki.h"

static char		*tokyo_v[] = { "tokyo" };
static struct strlist	 tokyo = { tokyo_v, 1 };
static char		*osaka_v[] = { "osaka" };
static struct strlist	 osaka = { osaka_v, 1 };

struct run {
	int			rc;
	struct loki_stats	st;
	struct pb_buf		out;
	char			reason[512];
};

static void
run_pb(const uint8_t *buf, size_t len, const struct strlist *vals,
    enum mismatch mode, struct run *r)
{
	struct payload_rule	rule = tb_rule(vals, mode);

	memset(r, 0, sizeof(*r));
	r->rc = loki_check_pb(buf, len, &rule, &r->st, &r->out, r->reason,
	    sizeof(r->reason));
}

static void
run_json(const char *json, const struct strlist *vals, enum mismatch mode,
    struct run *r)
{
	struct payload_rule	rule = tb_rule(vals, mode);

	memset(r, 0, sizeof(*r));
	r->rc = loki_check_json((const uint8_t *)json, strlen(json), &rule,
	    &r->st, &r->out, r->reason, sizeof(r->reason));
}

/* A stream with `n` entries (the second one with structured metadata). */
static void
stream(struct pb_buf *req, const char *labels, int n, uint64_t hash)
{
	struct pb_buf	s, e, ts, md;
	int		i;

	pb_buf_init(&s, 0);
	tb_str(&s, 1, labels);
	for (i = 0; i < n; i++) {
		pb_buf_init(&e, 0);
		pb_buf_init(&ts, 0);
		pb_put_tag(&ts, 1, PB_VARINT);
		pb_put_varint(&ts, 1764036000 + (uint64_t)i);
		tb_msg(&e, 1, &ts);
		tb_str(&e, 2, "a \"line\" \xe9\x8c\xb2");
		if (i == 1) {
			pb_buf_init(&md, 0);
			tb_str(&md, 1, "trace_id");
			tb_str(&md, 2, "abc");
			tb_msg(&e, 3, &md);
		}
		tb_msg(&s, 2, &e);
	}
	if (hash != 0) {
		pb_put_tag(&s, 3, PB_VARINT);
		pb_put_varint(&s, hash);
	}
	tb_msg(req, 1, &s);
}

/* Stream i's labels string, NUL-terminated, into out. */
static void
labels_of(const struct pb_buf *b, size_t i, char *out, size_t outsz)
{
	const uint8_t	*d[16], *l[1];
	size_t		 dl[16], ll[1];

	assert_true(tb_fields(b->data, b->len, 1, d, dl, 16) > i);
	assert_int_equal(tb_fields(d[i], dl[i], 1, l, ll, 1), 1);
	assert_true(ll[0] < outsz);
	memcpy(out, l[0], ll[0]);
	out[ll[0]] = '\0';
}

/* Everything of stream i but its labels string, a vs b. */
static void
assert_stream_rest_equal(const struct pb_buf *a, const struct pb_buf *b,
    size_t i)
{
	const uint8_t	*da[16], *db[16];
	size_t		 la[16], lb[16];
	struct pb_buf	 ra, rb;

	assert_true(tb_fields(a->data, a->len, 1, da, la, 16) > i);
	assert_true(tb_fields(b->data, b->len, 1, db, lb, 16) > i);
	tb_except(da[i], la[i], 1, &ra);
	tb_except(db[i], lb[i], 1, &rb);
	if (ra.len != rb.len || memcmp(ra.data, rb.data, ra.len) != 0)
		fail_msg("stream %zu: entries/metadata/hash changed", i);
	pb_buf_free(&ra);
	pb_buf_free(&rb);
}

static void
test_pb_compliant(void **state)
{
	struct pb_buf	req;
	struct run	r;

	pb_buf_init(&req, 0);
	stream(&req, "{job=\"x\", provider=\"tokyo\"}", 3, 0);
	stream(&req, "{provider=\"tokyo\"}", 2, 0);
	run_pb(req.data, req.len, &tokyo, MISMATCH_REJECT, &r);
	assert_int_equal(r.rc, LABELS_PASS);
	assert_int_equal(r.st.streams, 2);
	assert_int_equal(r.st.entries, 5);
	assert_null(r.out.data);
	pb_buf_free(&req);
}

/*
 * A labels string kakikomi accepts but that is not Loki's canonical String()
 * form is forwarded canonical, in both modes, so no quoting, escape, order or
 * spacing can be read one way by kakikomi and another by Loki's parser.
 */
static void
test_pb_noncanonical_recoded(void **state)
{
	static const char *const spellings[] = {
		"{provider='tokyo'}", "{provider=`tokyo`}",
		"{provider=\"\\u0074okyo\"}", "{ provider = \"tokyo\" , }",
		"{provider=\"tokyo\",job=\"x\"}", "{job=\"x\",provider=\"tokyo\"}",
		"{job=\"\", provider=\"tokyo\"}",
	};
	static const char *const want[] = {
		"{provider=\"tokyo\"}", "{provider=\"tokyo\"}",
		"{provider=\"tokyo\"}", "{provider=\"tokyo\"}",
		"{job=\"x\", provider=\"tokyo\"}", "{job=\"x\", provider=\"tokyo\"}",
		"{provider=\"tokyo\"}",
	};
	struct pb_buf	req;
	struct run	r;
	char		got[256];

	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		pb_buf_init(&req, 0);
		stream(&req, spellings[i], 2, 7);
		run_pb(req.data, req.len, &tokyo, MISMATCH_REJECT, &r);
		if (r.rc != LABELS_REWRITE)
			fail_msg("%s: outcome %d, want a canonical copy",
			    spellings[i], r.rc);
		assert_int_equal(r.st.rewritten, 0);
		labels_of(&r.out, 0, got, sizeof(got));
		assert_string_equal(got, want[i]);
		assert_stream_rest_equal(&req, &r.out, 0);
		pb_buf_free(&r.out);
		pb_buf_free(&req);
	}
}

/* Structured metadata is checked in both modes, never rewritten. */
static void
test_pb_metadata_checked(void **state)
{
	static const enum mismatch modes[] = { MISMATCH_REJECT, MISMATCH_REWRITE };
	struct pb_buf	req, s, e, md;
	struct run	r;

	for (size_t m = 0; m < 3; m++) {
		pb_buf_init(&req, 0);
		pb_buf_init(&s, 0);
		tb_str(&s, 1, "{provider=\"tokyo\"}");
		pb_buf_init(&e, 0);
		tb_str(&e, 2, "line");
		pb_buf_init(&md, 0);
		tb_str(&md, 1, "provider");
		tb_str(&md, 2, m < 2 ? "osaka" : "tokyo");
		tb_msg(&e, 3, &md);
		tb_msg(&s, 2, &e);
		tb_msg(&req, 1, &s);
		run_pb(req.data, req.len, &tokyo, modes[m % 2], &r);
		if (m < 2) {
			assert_int_equal(r.rc, LABELS_REJECT);
			assert_string_equal(r.reason, "an entry's structured "
			    "metadata has provider=\"osaka\", site tokyo may "
			    "not write it (structured metadata is checked, not "
			    "rewritten)");
		} else
			assert_int_equal(r.rc, LABELS_PASS);
		pb_buf_free(&req);
	}
}

static void
test_pb_rewrite(void **state)
{
	struct pb_buf	 req;
	struct run	 r;
	char		 got[256];
	const uint8_t	*da[4], *db[4];
	size_t		 la[4], lb[4];

	pb_buf_init(&req, 0);
	stream(&req, "{provider=\"tokyo\", job=\"ok\"}", 1, 0);
	stream(&req, "{zone=\"b\",job='x',empty=\"\",provider=\"osaka\",}", 2,
	    12345);
	stream(&req, "app_log{job=\"y\"}", 1, 0);
	run_pb(req.data, req.len, &tokyo, MISMATCH_REWRITE, &r);
	assert_int_equal(r.rc, LABELS_REWRITE);
	assert_int_equal(r.st.streams, 3);
	assert_int_equal(r.st.entries, 4);
	assert_int_equal(r.st.rewritten, 2);
	/* The compliant stream is only made canonical (sorted). */
	assert_int_equal(tb_fields(req.data, req.len, 1, da, la, 4), 3);
	assert_int_equal(tb_fields(r.out.data, r.out.len, 1, db, lb, 4), 3);
	labels_of(&r.out, 0, got, sizeof(got));
	assert_string_equal(got, "{job=\"ok\", provider=\"tokyo\"}");
	assert_stream_rest_equal(&req, &r.out, 0);
	labels_of(&r.out, 1, got, sizeof(got));
	assert_string_equal(got, "{job=\"x\", provider=\"tokyo\", zone=\"b\"}");
	labels_of(&r.out, 2, got, sizeof(got));
	assert_string_equal(got, "{__name__=\"app_log\", job=\"y\", "
	    "provider=\"tokyo\"}");
	assert_stream_rest_equal(&req, &r.out, 1);
	assert_stream_rest_equal(&req, &r.out, 2);
	pb_buf_free(&r.out);
	run_pb(req.data, req.len, &tokyo, MISMATCH_REJECT, &r);
	assert_int_equal(r.rc, LABELS_REJECT);
	assert_string_equal(r.reason, "stream {empty=\"\", job=\"x\", "
	    "provider=\"osaka\", zone=\"b\"} has provider=\"osaka\", site tokyo "
	    "may only write provider=\"tokyo\"");
	pb_buf_free(&req);
}

static void
test_pb_malformed(void **state)
{
	static const char *const bad[] = {
		"{job=\"x\"",
		"{job=~\"x\"}",
		"{job!=\"x\"}",
		"{job=\"x\", job=\"y\"}",
		"",
		"{job=\"\\z\"}",
	};
	struct pb_buf	req, s;
	struct run	r;
	size_t		i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		pb_buf_init(&req, 0);
		stream(&req, bad[i], 1, 0);
		run_pb(req.data, req.len, &tokyo, MISMATCH_REWRITE, &r);
		if (r.rc != LABELS_MALFORMED)
			fail_msg("labels string [%s]: outcome %d, want malformed",
			    bad[i], r.rc);
		if (strncmp(r.reason, "malformed Loki push: labels", 27) != 0)
			fail_msg("labels string [%s]: reason %s", bad[i],
			    r.reason);
		pb_buf_free(&req);
	}
	/* A stream without a labels field. */
	pb_buf_init(&req, 0);
	pb_buf_init(&s, 0);
	tb_str(&s, 2, "");
	tb_msg(&req, 1, &s);
	run_pb(req.data, req.len, &tokyo, MISMATCH_REWRITE, &r);
	assert_int_equal(r.rc, LABELS_MALFORMED);
	assert_string_equal(r.reason, "malformed Loki push: labels: a stream "
	    "has no labels");
	pb_buf_free(&req);
	/* Truncated protobuf. */
	pb_buf_init(&req, 0);
	stream(&req, "{provider=\"tokyo\"}", 2, 0);
	run_pb(req.data, req.len - 1, &tokyo, MISMATCH_REWRITE, &r);
	assert_int_equal(r.rc, LABELS_MALFORMED);
	assert_non_null(strstr(r.reason, "malformed Loki push: protobuf"));
	pb_buf_free(&req);
}

/* promtail's capture: escapes and UTF-8 survive a rewrite exactly. */
static void
test_promtail_fixture(void **state)
{
	struct labels_set	 before, after;
	struct run		 r;
	struct pb_buf		 dec;
	uint8_t			*body, *d;
	size_t			 len, dlen, i;
	char			 got[1024];
	const char		*errstr = NULL;
	const uint8_t		*sd[2], *ld[1];
	size_t			 sl[2], ll[1];

	body = tb_read(TESTDATA "promtail-2.8/push-304-entries.body", &len);
	tb_unsnappy(body, len, &d, &dlen);
	run_pb(d, dlen, &tokyo, MISMATCH_REJECT, &r);
	assert_int_equal(r.rc, LABELS_PASS);
	assert_int_equal(r.st.streams, 1);
	assert_int_equal(r.st.entries, 304);
	run_pb(d, dlen, &osaka, MISMATCH_REWRITE, &r);
	assert_int_equal(r.rc, LABELS_REWRITE);
	dec.data = d;
	dec.len = dlen;
	assert_stream_rest_equal(&dec, &r.out, 0);
	labels_of(&r.out, 0, got, sizeof(got));
	labels_set_init(&before);
	labels_set_init(&after);
	assert_int_equal(tb_fields(d, dlen, 1, sd, sl, 2), 1);
	assert_int_equal(tb_fields(sd[0], sl[0], 1, ld, ll, 1), 1);
	assert_int_equal(labels_parse(ld[0], ll[0], &before, &errstr), 0);
	if (labels_parse((const uint8_t *)got, strlen(got), &after,
	    &errstr) != 0)
		fail_msg("rewritten labels %s do not parse: %s", got, errstr);
	assert_int_equal(before.n, after.n);
	assert_null(labels_sort_unique(&before));
	for (i = 0; i < before.n; i++) {
		assert_int_equal(before.v[i].nlen, after.v[i].nlen);
		assert_memory_equal(before.v[i].name, after.v[i].name,
		    before.v[i].nlen);
		if (memcmp(before.v[i].name, "provider", 8) == 0) {
			assert_int_equal(after.v[i].vlen, 5);
			assert_memory_equal(after.v[i].value, "osaka", 5);
			continue;
		}
		assert_int_equal(before.v[i].vlen, after.v[i].vlen);
		assert_memory_equal(before.v[i].value, after.v[i].value,
		    before.v[i].vlen);
	}
	assert_non_null(strstr(got, "note=\"quote \\\" backslash \\\\ "
	    "tab\\tunicode \xe2\x9c\x93 \xe9\x8c\xb2\xe7\x94\xbb\""));
	labels_set_free(&before);
	labels_set_free(&after);
	pb_buf_free(&r.out);
	free(d);
	free(body);
}

/* JSON */

static const char json_push[] = "{\"streams\":[{\"stream\":{\"job\":\"a\","
    "\"provider\":\"tokyo\"},\"values\":[[\"1\",\"x\"],[\"2\",\"y\","
    "{\"trace_id\":\"t\"}]]},{\"stream\":{\"job\":\"b\",\"provider\":\"\"},"
    "\"values\":[[\"3\",\"z\"]]}]}";

/* json_push, canonical: the second stream gets the site's value. */
static const char json_push_rewritten[] = "{\"streams\":[{\"stream\":"
    "{\"job\":\"a\",\"provider\":\"tokyo\"},\"values\":[[\"1\",\"x\"],"
    "[\"2\",\"y\",{\"trace_id\":\"t\"}]]},{\"stream\":{\"job\":\"b\","
    "\"provider\":\"tokyo\"},\"values\":[[\"3\",\"z\"]]}]}";

static void
test_json_rewrite_and_reject(void **state)
{
	struct run	 r;
	json_t		*root;
	json_error_t	 err;

	run_json(json_push, &tokyo, MISMATCH_REWRITE, &r);
	assert_int_equal(r.rc, LABELS_REWRITE);
	assert_int_equal(r.st.streams, 2);
	assert_int_equal(r.st.entries, 3);
	assert_int_equal(r.st.rewritten, 1);
	assert_int_equal(r.out.len, strlen(json_push_rewritten));
	assert_memory_equal(r.out.data, json_push_rewritten, r.out.len);
	root = json_loadb((const char *)r.out.data, r.out.len, 0, &err);
	assert_non_null(root);
	json_decref(root);
	pb_buf_free(&r.out);
	run_json(json_push, &tokyo, MISMATCH_REJECT, &r);
	assert_int_equal(r.rc, LABELS_REJECT);
	assert_null(r.out.data);
	assert_string_equal(r.reason, "stream {job=\"b\", provider=\"\"} has no "
	    "provider label, site tokyo may only write provider=\"tokyo\"");
	/* A compliant body is forwarded as kakikomi wrote it, too. */
	run_json(" { \"Streams\" : [ ] } ", &tokyo, MISMATCH_REJECT, &r);
	assert_int_equal(r.rc, LABELS_PASS);
	assert_int_equal(r.out.len, 14);
	assert_memory_equal(r.out.data, "{\"streams\":[]}", 14);
	pb_buf_free(&r.out);
}

static void
test_json_fixture(void **state)
{
	struct run	 r;
	uint8_t		*body;
	size_t		 len;
	char		*json;

	body = tb_read(TESTDATA "loki-json/push.json", &len);
	json = strndup((const char *)body, len);
	run_json(json, &tokyo, MISMATCH_REWRITE, &r);
	assert_int_equal(r.rc, LABELS_REWRITE);
	assert_int_equal(r.st.streams, 2);
	assert_int_equal(r.st.entries, 3);
	assert_int_equal(r.st.rewritten, 1);
	assert_non_null(strstr((const char *)r.out.data,
	    "{\"job\":\"backup\",\"provider\":\"tokyo\"}"));
	pb_buf_free(&r.out);
	free(json);
	free(body);
}

static const char *const json_bad[] = {
	"{\"streams\":[{\"stream\":{\"provider\":\"tokyo\"},\"values\":[[1764036000000000000,\"x\"]]}]}",
	"{\"streams\":[{\"stream\":{\"provider\":\"tokyo\"},\"values\":[[\"17x\",\"x\"]]}]}",
	"{\"streams\":[{\"stream\":{\"provider\":\"tokyo\"},\"values\":[[\"99999999999999999999\",\"x\"]]}]}",
	"{\"streams\":[{\"stream\":{\"provider\":\"tokyo\"},\"values\":[[\"1\"]]}]}",
	"{\"streams\":[{\"stream\":{\"provider\":\"tokyo\"},\"values\":[[\"1\",2]]}]}",
	"{\"streams\":[{\"stream\":{\"provider\":\"tokyo\"},\"values\":[[\"1\",\"x\",\"md\"]]}]}",
	"{\"streams\":[{\"stream\":{\"provider\":\"tokyo\"},\"values\":[[\"1\",\"x\",{},4]]}]}",
	"{\"streams\":[{\"stream\":{\"provider\":\"tokyo\"},\"values\":{}}]}",
	"{\"streams\":[{\"stream\":{\"provider\":7},\"values\":[]}]}",
	"{\"streams\":[{\"stream\":{\"bad-name\":\"x\"},\"values\":[]}]}",
	"{\"streams\":[{\"stream\":{\"a\":\"x\",\"a\":\"y\"},\"values\":[]}]}",
	"{\"streams\":[{\"values\":[]}]}",
	"{\"streams\":[[]]}",
	"{\"streams\":{}}",
	"{}",
	"[]",
	"{\"streams\":[]} trailing",
	"not json",
	"",
};

static void
test_json_malformed_table(void **state)
{
	struct run	r;
	size_t		i;

	for (i = 0; i < sizeof(json_bad) / sizeof(json_bad[0]); i++) {
		run_json(json_bad[i], &tokyo, MISMATCH_REWRITE, &r);
		if (r.rc != LABELS_MALFORMED)
			fail_msg("JSON %s: outcome %d, want malformed",
			    json_bad[i], r.rc);
		if (strncmp(r.reason, "malformed Loki push: ", 21) != 0)
			fail_msg("JSON %s: reason %s", json_bad[i], r.reason);
	}
}

static void
test_json_deep_nesting(void **state)
{
	struct run	 r;
	char		*deep;
	size_t		 n = 10000, i;

	deep = malloc(2 * n + 1);
	assert_non_null(deep);
	for (i = 0; i < n; i++) {
		deep[i] = '[';
		deep[n + i] = ']';
	}
	deep[2 * n] = '\0';
	run_json(deep, &tokyo, MISMATCH_REWRITE, &r);
	assert_int_equal(r.rc, LABELS_MALFORMED);
	assert_string_equal(r.reason, "malformed Loki push: JSON: the body is "
	    "not {\"streams\": [...]} at byte 0");
	/* Brackets inside strings are text. */
	memcpy(deep, "{\"streams\":[{\"stream\":{\"provider\":\"tokyo\"},"
	    "\"values\":[[\"1\",\"", 59);
	memset(deep + 59, '[', 1000);
	memcpy(deep + 1059, "\"]]}]}", 7);
	run_json(deep, &tokyo, MISMATCH_REWRITE, &r);
	assert_int_equal(r.rc, LABELS_PASS);
	assert_int_equal(r.out.len, 1065);
	assert_memory_equal(r.out.data, deep, 1065);
	pb_buf_free(&r.out);
	free(deep);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pb_compliant),
		cmocka_unit_test(test_pb_rewrite),
		cmocka_unit_test(test_pb_noncanonical_recoded),
		cmocka_unit_test(test_pb_metadata_checked),
		cmocka_unit_test(test_pb_malformed),
		cmocka_unit_test(test_promtail_fixture),
		cmocka_unit_test(test_json_rewrite_and_reject),
		cmocka_unit_test(test_json_fixture),
		cmocka_unit_test(test_json_malformed_table),
		cmocka_unit_test(test_json_deep_nesting),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
