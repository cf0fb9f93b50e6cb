/*
 * labels: the Loki labels-string grammar (table-driven), canonical
 * formatting, sorting/duplicates, enforcement and refusal reasons.
 */
#include "bodies.h"
#include "labels.h"

/* Renders a parsed set as name=value|name=value in parse order. */
static void
render(const struct labels_set *ls, char *out, size_t outsz)
{
	size_t	i, at = 0;

	out[0] = '\0';
	for (i = 0; i < ls->n; i++) {
		at += (size_t)snprintf(out + at, outsz - at, "%s%.*s=%.*s",
		    i ? "|" : "", (int)ls->v[i].nlen,
		    (const char *)ls->v[i].name, (int)ls->v[i].vlen,
		    (const char *)ls->v[i].value);
		assert_true(at < outsz);
	}
}

struct parse_case {
	const char	*in;
	const char	*want;		/* rendered pairs */
};

static const struct parse_case good[] = {
	{ "{job=\"x\", provider=\"tokyo\"}", "job=x|provider=tokyo" },
	{ "{}", "" },
	{ "  {  a = \"b\" ,\n\tc=\"d\" , }  ", "a=b|c=d" },
	{ "{a=\"b\",}", "a=b" },
	{ "up", "__name__=up" },
	{ "up{job=\"x\"}", "__name__=up|job=x" },
	{ "ns:metric_total {a=\"1\"}", "__name__=ns:metric_total|a=1" },
	{ "{a=\"q\\\" bs\\\\ t\\t n\\n r\\r\"}", "a=q\" bs\\ t\t n\n r\r" },
	{ "{a=\"\\a\\b\\f\\v\"}", "a=\a\b\f\v" },
	{ "{a=\"\\x41\\101\\u00e9\\U0001F600\"}", "a=AA\xc3\xa9\xf0\x9f\x98\x80" },
	{ "{a=\"\\u9332\\u753b\"}", "a=\xe9\x8c\xb2\xe7\x94\xbb" },
	{ "{a=\"\xe9\x8c\xb2\xe7\x94\xbb \xe2\x9c\x93\"}",
	    "a=\xe9\x8c\xb2\xe7\x94\xbb \xe2\x9c\x93" },
	{ "{a='single \"dq\" \\' ok'}", "a=single \"dq\" ' ok" },
	{ "{a=`raw \\n \"x\" 'y'\nline`}", "a=raw \\n \"x\" 'y'\nline" },
	{ "{a=\"\"}", "a=" },
	{ "{_x9=\"1\", B=\"2\"}", "_x9=1|B=2" },
	{ "{a=\"\\xff\"}", "a=\xff" },
};

static const char *const bad[] = {
	"",
	"   ",
	"{",
	"{a=\"b\"",
	"{a=\"b}",
	"{a=\"b\" c=\"d\"}",
	"{a=~\"b\"}",
	"{a!=\"b\"}",
	"{a!~\"b\"}",
	"{a}",
	"{a=}",
	"{a=b}",
	"{=\"b\"}",
	"{1a=\"b\"}",
	"{a:b=\"c\"}",
	"{a-b=\"c\"}",
	"{,}",
	"{a=\"b\",,}",
	"{a=\"b\"} x",
	"{a=\"b\"}{c=\"d\"}",
	"{a=\"new\nline\"}",
	"{a='new\nline'}",
	"{a=\"\\q\"}",
	"{a=\"\\'\"}",
	"{a='\\\"'}",
	"{a=\"\\x4\"}",
	"{a=\"\\xzz\"}",
	"{a=\"\\400\"}",
	"{a=\"\\18\"}",
	"{a=\"\\ud800\"}",
	"{a=\"\\U00110000\"}",
	"{a=\"\\u12\"}",
	"{a=\"trailing backslash\\",
	"{a=`unterminated}",
	"1up{a=\"b\"}",
	"up down",
};

static void
test_parse_good_table(void **state)
{
	struct labels_set	 ls;
	const char		*errstr = NULL;
	char			 got[512];
	size_t			 i;

	labels_set_init(&ls);
	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		if (labels_parse((const uint8_t *)good[i].in,
		    strlen(good[i].in), &ls, &errstr) != 0)
			fail_msg("labels string %s refused: %s", good[i].in,
			    errstr);
		render(&ls, got, sizeof(got));
		if (strcmp(got, good[i].want) != 0)
			fail_msg("labels string %s parsed as \"%s\", want \"%s\"",
			    good[i].in, got, good[i].want);
	}
	labels_set_free(&ls);
}

static void
test_parse_bad_table(void **state)
{
	struct labels_set	 ls;
	const char		*errstr;
	size_t			 i;

	labels_set_init(&ls);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		errstr = NULL;
		if (labels_parse((const uint8_t *)bad[i], strlen(bad[i]), &ls,
		    &errstr) != -1)
			fail_msg("malformed labels string [%s] was accepted",
			    bad[i]);
		if (errstr == NULL)
			fail_msg("labels string [%s] refused without a reason",
			    bad[i]);
	}
	labels_set_free(&ls);
}

/* Not NUL-terminated: the parser must stop at len. */
static void
test_parse_respects_length(void **state)
{
	static const char	 s[] = "{a=\"b\"}garbage";
	struct labels_set	 ls;
	const char		*errstr;

	labels_set_init(&ls);
	assert_int_equal(labels_parse((const uint8_t *)s, 7, &ls, &errstr), 0);
	assert_int_equal(ls.n, 1);
	assert_int_equal(labels_parse((const uint8_t *)s, 6, &ls, &errstr), -1);
	labels_set_free(&ls);
}

/* A 1 MiB labels string: linear, no recursion, right answer. */
static void
test_parse_one_mib(void **state)
{
	struct labels_set	 ls;
	const char		*errstr = NULL;
	char			*s;
	size_t			 n = 1u << 20, at = 0, pairs = 0;

	s = malloc(n);
	assert_non_null(s);
	s[at++] = '{';
	while (at + 32 < n) {
		at += (size_t)snprintf(s + at, n - at, "l%07zu=\"v\\u00e9\",",
		    pairs++);
	}
	s[at++] = '}';
	labels_set_init(&ls);
	/* Tens of thousands of labels: refused at LABELS_MAX, not collected. */
	assert_int_equal(labels_parse((const uint8_t *)s, at, &ls, &errstr), -1);
	assert_string_equal(errstr, "more than 1024 labels in one series or stream");
	assert_true(ls.cap <= LABELS_MAX);
	/* Exactly LABELS_MAX of them still parse. */
	for (at = 1, pairs = 0; pairs < LABELS_MAX;)
		at += (size_t)snprintf(s + at, n - at, "l%07zu=\"v\\u00e9\",",
		    pairs++);
	s[at++] = '}';
	assert_int_equal(labels_parse((const uint8_t *)s, at, &ls, &errstr), 0);
	assert_int_equal(ls.n, LABELS_MAX);
	assert_null(labels_sort_unique(&ls));
	/* One long unterminated value. */
	memset(s, 'x', n);
	memcpy(s, "{a=\"", 4);
	assert_int_equal(labels_parse((const uint8_t *)s, n, &ls, &errstr), -1);
	assert_string_equal(errstr, "unterminated quoted string");
	labels_set_free(&ls);
	free(s);
}

static void
parse_ok(struct labels_set *ls, const char *s)
{
	const char	*errstr = NULL;

	if (labels_parse((const uint8_t *)s, strlen(s), ls, &errstr) != 0)
		fail_msg("labels string %s refused: %s", s, errstr);
}

static void
test_sort_unique(void **state)
{
	struct labels_set		 ls;
	const struct labels_pair	*dup;
	char				 got[256];

	labels_set_init(&ls);
	parse_ok(&ls, "{b=\"1\", a=\"2\", ab=\"3\", B=\"4\"}");
	assert_null(labels_sort_unique(&ls));
	render(&ls, got, sizeof(got));
	assert_string_equal(got, "B=4|a=2|ab=3|b=1");
	parse_ok(&ls, "{b=\"1\", a=\"2\", b=\"3\"}");
	dup = labels_sort_unique(&ls);
	assert_non_null(dup);
	assert_int_equal(dup->nlen, 1);
	assert_memory_equal(dup->name, "b", 1);
	parse_ok(&ls, "up{__name__=\"x\"}");
	assert_non_null(labels_sort_unique(&ls));
	labels_set_free(&ls);
}

static void
format(struct labels_set *ls, const char *in, char *out, size_t outsz)
{
	struct pb_buf	b;

	parse_ok(ls, in);
	assert_null(labels_sort_unique(ls));
	pb_buf_init(&b, 0);
	labels_format(&b, ls, 1, SIZE_MAX);
	assert_false(pb_buf_failed(&b));
	assert_true(b.len < outsz);
	memcpy(out, b.data, b.len);
	out[b.len] = '\0';
	pb_buf_free(&b);
}

static void
test_format_canonical(void **state)
{
	struct labels_set	ls;
	char			got[512];

	labels_set_init(&ls);
	format(&ls, "{job='x',provider=\"tokyo\",a=`1`,}", got, sizeof(got));
	assert_string_equal(got, "{a=\"1\", job=\"x\", provider=\"tokyo\"}");
	format(&ls, "up{empty=\"\", z=\"1\"}", got, sizeof(got));
	assert_string_equal(got, "{__name__=\"up\", z=\"1\"}");
	format(&ls, "{n=\"q\\\" b\\\\ t\\t nl\\n \\x01\\x7f\\xff \\u00e9 "
	    "\xe9\x8c\xb2\"}", got, sizeof(got));
	assert_string_equal(got, "{n=\"q\\\" b\\\\ t\\t nl\\n \\x01\\x7f\\xff "
	    "\xc3\xa9 \xe9\x8c\xb2\"}");
	labels_set_free(&ls);
}

/* Whatever the value, format then parse gives the same bytes back. */
static void
test_format_parse_roundtrip(void **state)
{
	struct labels_set	 ls, back;
	struct pb_buf		 b;
	const char		*errstr = NULL;
	uint8_t			 val[256];
	size_t			 i;

	for (i = 0; i < sizeof(val); i++)
		val[i] = (uint8_t)i;
	labels_set_init(&ls);
	labels_set_init(&back);
	assert_int_equal(labels_add(&ls, (const uint8_t *)"v", 1, val,
	    sizeof(val)), 0);
	pb_buf_init(&b, 0);
	labels_format(&b, &ls, 1, SIZE_MAX);
	assert_int_equal(labels_parse(b.data, b.len, &back, &errstr), 0);
	assert_int_equal(back.n, 1);
	assert_int_equal(back.v[0].vlen, sizeof(val));
	assert_memory_equal(back.v[0].value, val, sizeof(val));
	for (i = 0; i < b.len; i++)
		if (b.data[i] == '\n' || b.data[i] == '\0')
			fail_msg("formatted value holds a raw control byte at %zu",
			    i);
	pb_buf_free(&b);
	labels_set_free(&ls);
	labels_set_free(&back);
}

static void
test_verdict_and_enforce(void **state)
{
	static char		*tokyo[] = { "tokyo", "kyoto" };
	struct strlist		 vals = { tokyo, 2 };
	struct payload_rule	 rule = tb_rule(&vals, MISMATCH_REWRITE);
	struct labels_set	 ls;
	char			 got[256];

	labels_set_init(&ls);
	parse_ok(&ls, "{a=\"1\", provider=\"kyoto\"}");
	assert_int_equal(labels_verdict(&ls, &rule), LABELS_OK);
	parse_ok(&ls, "{a=\"1\", provider=\"osaka\"}");
	assert_int_equal(labels_verdict(&ls, &rule), LABELS_FOREIGN);
	assert_int_equal(labels_enforce(&ls, &rule), 0);
	render(&ls, got, sizeof(got));
	assert_string_equal(got, "a=1|provider=tokyo");
	parse_ok(&ls, "{provider=\"\", z=\"1\"}");
	assert_int_equal(labels_verdict(&ls, &rule), LABELS_MISSING);
	/* Missing: inserted at its sorted place, first, middle and last. */
	parse_ok(&ls, "{a=\"1\", z=\"2\"}");
	assert_int_equal(labels_verdict(&ls, &rule), LABELS_MISSING);
	assert_int_equal(labels_enforce(&ls, &rule), 0);
	render(&ls, got, sizeof(got));
	assert_string_equal(got, "a=1|provider=tokyo|z=2");
	parse_ok(&ls, "{zz=\"2\"}");
	assert_int_equal(labels_enforce(&ls, &rule), 0);
	render(&ls, got, sizeof(got));
	assert_string_equal(got, "provider=tokyo|zz=2");
	parse_ok(&ls, "{a=\"2\"}");
	assert_int_equal(labels_enforce(&ls, &rule), 0);
	render(&ls, got, sizeof(got));
	assert_string_equal(got, "a=2|provider=tokyo");
	parse_ok(&ls, "{}");
	assert_int_equal(labels_enforce(&ls, &rule), 0);
	render(&ls, got, sizeof(got));
	assert_string_equal(got, "provider=tokyo");
	labels_set_free(&ls);
}

static void
test_violation_reasons(void **state)
{
	static char		*osaka[] = { "osaka" };
	static char		*two[] = { "tokyo", "kyoto" };
	struct strlist		 one = { osaka, 1 }, both = { two, 2 };
	struct payload_rule	 rule = tb_rule(&one, MISMATCH_REJECT);
	struct labels_set	 ls;
	char			 reason[512], *big;

	labels_set_init(&ls);
	parse_ok(&ls, "up{provider=\"tokyo\"}");
	labels_violation(reason, sizeof(reason), "series", &ls, &rule);
	assert_string_equal(reason, "series {__name__=\"up\", "
	    "provider=\"tokyo\"} has provider=\"tokyo\", site tokyo may only "
	    "write provider=\"osaka\"");
	rule.values = &both;
	parse_ok(&ls, "{job=\"x\\ny\"}");
	labels_violation(reason, sizeof(reason), "stream", &ls, &rule);
	assert_string_equal(reason, "stream {job=\"x\\ny\"} has no provider "
	    "label, site tokyo may only write provider=\"tokyo\" or "
	    "provider=\"kyoto\"");
	/* A huge series is cut, the reason stays one line and < 512. */
	big = malloc(5000);
	assert_non_null(big);
	memset(big, 'x', 5000);
	memcpy(big, "{a=\"", 4);
	memcpy(big + 4990, "\", b=`\n`}", 9);
	big[4999] = '\0';
	parse_ok(&ls, big);
	labels_violation(reason, sizeof(reason), "stream", &ls, &rule);
	assert_true(strlen(reason) < 400);
	assert_null(strchr(reason, '\n'));
	assert_non_null(strstr(reason, "xxx..."));
	assert_non_null(strstr(reason, " has no provider label, site tokyo"));
	free(big);
	labels_set_free(&ls);
}

static void
test_valid_name(void **state)
{
	assert_true(labels_valid_name((const uint8_t *)"provider", 8));
	assert_true(labels_valid_name((const uint8_t *)"_a1", 3));
	assert_false(labels_valid_name((const uint8_t *)"1a", 2));
	assert_false(labels_valid_name((const uint8_t *)"a-b", 3));
	assert_false(labels_valid_name((const uint8_t *)"a:b", 3));
	assert_false(labels_valid_name((const uint8_t *)"", 0));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_good_table),
		cmocka_unit_test(test_parse_bad_table),
		cmocka_unit_test(test_parse_respects_length),
		cmocka_unit_test(test_parse_one_mib),
		cmocka_unit_test(test_sort_unique),
		cmocka_unit_test(test_format_canonical),
		cmocka_unit_test(test_format_parse_roundtrip),
		cmocka_unit_test(test_verdict_and_enforce),
		cmocka_unit_test(test_violation_reasons),
		cmocka_unit_test(test_valid_name),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
