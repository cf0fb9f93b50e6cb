/*
 * mediatype: every spelling of a media type and a content coding, and what
 * the strict parser makes of it.  Go's mime.ParseMediaType (Loki) and
 * Prometheus' parseProtoMsg read several of these differently; kakikomi never
 * forwards the client's string, so the only property that matters is that
 * each accepted string has exactly one reading (test_payload covers what the
 * receivers would have done with each).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <string.h>
#include <cmocka.h>

#include "mediatype.h"

struct mt_case {
	const char	*in;
	const char	*type;		/* NULL: refused */
	const char	*subtype;
	size_t		 nparams;
	const char	*name;		/* the first parameter, if any */
	const char	*value;		/* unescaped */
};

#define NO(s)	{ s, NULL, NULL, 0, NULL, NULL }

static const struct mt_case mt_cases[] = {
	{ "application/json", "application", "json", 0, NULL, NULL },
	{ "APPLICATION/Json", "application", "json", 0, NULL, NULL },
	{ " \tapplication/json \t", "application", "json", 0, NULL, NULL },
	{ "application/json;charset=utf-8", "application", "json", 1,
	    "charset", "utf-8" },
	{ "application/json ; charset=utf-8", "application", "json", 1,
	    "charset", "utf-8" },
	{ "application/json;\tCharset=\"UTF-8\"", "application", "json", 1,
	    "charset", "UTF-8" },
	{ "application/x-protobuf;proto=io.prometheus.write.v2.Request",
	    "application", "x-protobuf", 1, "proto",
	    "io.prometheus.write.v2.Request" },
	{ "application/x-protobuf;Proto=prometheus.WriteRequest",
	    "application", "x-protobuf", 1, "proto", "prometheus.WriteRequest" },
	{ "a/b;x=\"q\\\"uo\\\\te\"", "a", "b", 1, "x", "q\"uo\\te" },
	{ "a/b;x=\"semi;colon = ok\"", "a", "b", 1, "x", "semi;colon = ok" },
	{ "a/b;x=1;y=2;z=3", "a", "b", 3, "x", "1" },
	{ "!#$%&'*+-.^_`|~0/9", "!#$%&'*+-.^_`|~0", "9", 0, NULL, NULL },
	{ "a/b;p1=1;p2=2;p3=3;p4=4;p5=5;p6=6;p7=7;p8=8", "a", "b", 8, "p1",
	    "1" },
	NO("a/b;p1=1;p2=2;p3=3;p4=4;p5=5;p6=6;p7=7;p8=8;p9=9"),	/* bounded */
	NO(""),
	NO(" "),
	NO("application"),
	NO("application/"),
	NO("/json"),
	NO("application /json"),
	NO("application/ json"),
	NO("application/json/x"),
	NO("application/json x"),
	NO("application/json, text/plain"),
	{ "application/*;q=0.5x", "application", "*", 1, "q", "0.5x" },
	NO("application/json;"),			/* empty parameter */
	NO("application/json;;charset=utf-8"),
	NO("application/json; ;charset=utf-8"),
	NO("application/json;charset"),
	NO("application/json;charset="),
	NO("application/json;charset=\"\""),
	NO("application/json;=utf-8"),
	NO("application/json;charset =utf-8"),		/* no space around = */
	NO("application/json;charset= utf-8"),
	NO("application/x-protobuf; proto =io.prometheus.write.v2.Request"),
	NO("application/json;charset=utf-8;charset=utf-8"),
	NO("application/x-protobuf;Proto=prometheus.WriteRequest;"
	    "proto=io.prometheus.write.v2.Request"),	/* repeated, any case */
	NO("application/json;charset=\"utf-8"),
	NO("application/json;charset=\"utf-8\\"),
	NO("application/json;charset=\"utf-8\"x"),
	NO("application/json;charset=utf-8\""),
	NO("application/json;charset=utf(8)"),
	NO("appl\xc4\xb0" "cation/json"),		/* U+0130: Go lowers to i */
	NO("application/json\xc2\xa0"),			/* U+00A0: Go trims */
	NO("application/json\xe2\x80\x83"),		/* U+2003 */
	NO("\xef\xbb\xbf" "application/json"),		/* BOM */
	NO("application/\xe2\x80\x8bjson"),		/* U+200B */
	NO("application/\xca\x9as\xd0\xben"),		/* Cyrillic o */
	NO("application/json;charset=\"utf\xc2\xa0-8\""),	/* obs-text */
	NO("application/json;charset=\"utf-8\\\xc2\""),	/* obs-text pair */
	NO("application/json\r\n"),
	NO("application/json\v"),
	NO("application/json;charset=\"a\x01\""),
	NO("application/json\x7f"),
	NO("application/json;x=\"a\x7f\""),
};

static void
test_media_table(void **state)
{
	const struct mt_case	*c;
	struct mediatype	 mt;
	const char		*errstr;
	size_t			 i, len;
	int			 rc;

	for (i = 0; i < sizeof(mt_cases) / sizeof(mt_cases[0]); i++) {
		c = &mt_cases[i];
		errstr = NULL;
		len = strlen(c->in);
		rc = mediatype_parse(c->in, len, &mt, &errstr);
		if (c->type == NULL) {
			if (rc != -1)
				fail_msg("case %zu \"%s\" parsed", i, c->in);
			assert_non_null(errstr);
			continue;
		}
		if (rc != (int)len)
			fail_msg("case %zu \"%s\" refused: %s", i, c->in, errstr);
		assert_true(mediatype_is(&mt, c->type, c->subtype));
		assert_int_equal(mt.nparams, c->nparams);
		if (c->name == NULL)
			continue;
		assert_ptr_equal(mediatype_param(&mt, c->name), &mt.params[0]);
		assert_true(mediatype_value_is(&mt.params[0], c->value, 0));
	}
}

/* Views point into the input, which need not be NUL-terminated. */
static void
test_views_and_length(void **state)
{
	static const char	 s[] = "a/b;K=\"v\\\"w\"XXXX";
	struct mediatype	 mt;
	const char		*errstr;

	assert_int_equal(mediatype_parse(s, 12, &mt, &errstr), 12);
	assert_ptr_equal(mt.type, s);
	assert_ptr_equal(mt.subtype, s + 2);
	assert_ptr_equal(mt.params[0].name, s + 4);
	assert_ptr_equal(mt.params[0].value, s + 7);
	assert_int_equal(mt.params[0].vlen, 4);
	assert_true(mt.params[0].quoted);
	assert_true(mediatype_value_is(&mt.params[0], "v\"w", 0));
	assert_false(mediatype_value_is(&mt.params[0], "v\"", 0));
	assert_false(mediatype_value_is(&mt.params[0], "v\"wx", 0));
	assert_false(mediatype_value_is(&mt.params[0], "V\"W", 0));
	assert_true(mediatype_value_is(&mt.params[0], "V\"W", 1));
	assert_null(mediatype_param(&mt, "v"));
	assert_non_null(mediatype_param(&mt, "k"));
	/* One byte short: the quoted string is unterminated; one more: junk. */
	assert_int_equal(mediatype_parse(s, 11, &mt, &errstr), -1);
	assert_int_equal(mediatype_parse(s, 13, &mt, &errstr), -1);
	assert_false(mediatype_is(&mt, "a", "b"));
}

struct coding_case {
	const char	*in;
	const char	*coding;	/* "" none, NULL refused */
};

static const struct coding_case coding_cases[] = {
	{ "snappy", "snappy" },
	{ "SNAPPY", "SNAPPY" },		/* the caller folds case */
	{ " \tgzip\t ", "gzip" },
	{ "deflate", "deflate" },
	{ "identity", "identity" },	/* a token; payload refuses it */
	{ "", "" },			/* Go: Header.Get "" = none */
	{ "  ", "" },
	{ "gzip, gzip", NULL },
	{ "gzip,", NULL },
	{ ",gzip", NULL },
	{ "gzip snappy", NULL },
	{ "gzip;q=1", NULL },
	{ "\"gzip\"", NULL },
	{ "gzip\xc2\xa0", NULL },
	{ "g\xc3\xbczip", NULL },
	{ "gzip\r\n", NULL },
	{ "gz\x7fip", NULL },
};

static void
test_coding_table(void **state)
{
	const struct coding_case	*c;
	const char			*tok, *errstr;
	size_t				 i, n, len;
	int				 rc;

	for (i = 0; i < sizeof(coding_cases) / sizeof(coding_cases[0]); i++) {
		c = &coding_cases[i];
		len = strlen(c->in);
		rc = mediatype_coding(c->in, len, &tok, &n, &errstr);
		if (c->coding == NULL) {
			if (rc != -1)
				fail_msg("coding %zu \"%s\" accepted", i, c->in);
			continue;
		}
		if (rc != (int)len)
			fail_msg("coding %zu \"%s\" refused: %s", i, c->in, errstr);
		if (c->coding[0] == '\0') {
			assert_null(tok);
			assert_int_equal(n, 0);
			continue;
		}
		assert_int_equal(n, strlen(c->coding));
		assert_memory_equal(tok, c->coding, n);
	}
}

/* A header value longer than any real one is refused, not scanned. */
static void
test_too_long(void **state)
{
	static char		 s[2048];
	struct mediatype	 mt;
	const char		*errstr, *tok;
	size_t			 n;

	memset(s, 'a', sizeof(s));
	s[1] = '/';
	assert_int_equal(mediatype_parse(s, 1024, &mt, &errstr), 1024);
	assert_int_equal(mediatype_parse(s, 1025, &mt, &errstr), -1);
	assert_string_equal(errstr, "header value too long");
	assert_int_equal(mediatype_coding(s + 2, 1025, &tok, &n, &errstr), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_media_table),
		cmocka_unit_test(test_views_and_length),
		cmocka_unit_test(test_coding_table),
		cmocka_unit_test(test_too_long),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
