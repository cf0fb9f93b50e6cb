/*
 * Loki JSON push, both modes, and through payload_check() with gzip.
 * Round trip, whenever kakikomi accepts a document: its output checked
 * again passes with the same bytes (fixpoint) and counts, is never larger
 * than the input unless streams were rewritten, parses with jansson (an
 * independent reader), and every stream and every metadata pair in that
 * parse carries the site label as the rule demands.
 */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "loki.h"
#include "fuzz_common.h"

/* v is an allowed value of fuzz_rule()'s site (empty too when `empty`). */
static int
allowed(json_t *v, int empty)
{
	const char	*s = json_string_value(v);
	size_t		 i;

	if (s == NULL)
		return 0;
	if (empty && json_string_length(v) == 0)
		return 1;
	for (i = 0; i < fuzz_values.n; i++)
		if (strcmp(s, fuzz_values.v[i]) == 0 &&
		    json_string_length(v) == strlen(s))
			return 1;
	return 0;
}

/* Every stream has the site label; metadata carries none foreign. */
static void
check_tree(const struct pb_buf *out, const struct loki_stats *st)
{
	json_t		*root, *streams, *s, *values, *e, *md, *p;
	json_error_t	 err;
	size_t		 i, k, entries = 0;

	root = json_loadb((const char *)out->data, out->len,
	    JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &err);
	FUZZ_REQUIRE(root != NULL && json_object_size(root) == 1);
	streams = json_object_get(root, "streams");
	FUZZ_REQUIRE(json_is_array(streams) &&
	    json_array_size(streams) == st->streams);
	json_array_foreach(streams, i, s) {
		FUZZ_REQUIRE(json_object_size(s) == 2);
		FUZZ_REQUIRE(allowed(json_object_get(json_object_get(s,
		    "stream"), "provider"), 0));
		values = json_object_get(s, "values");
		FUZZ_REQUIRE(json_is_array(values));
		json_array_foreach(values, k, e) {
			entries++;
			if ((md = json_array_get(e, 2)) == NULL)
				continue;
			p = json_object_get(md, "provider");
			FUZZ_REQUIRE(p == NULL || allowed(p, 1));
		}
	}
	FUZZ_REQUIRE(entries == st->entries);
	json_decref(root);
}

static void
roundtrip(const uint8_t *data, size_t size, enum mismatch mode)
{
	struct payload_rule	rule = fuzz_rule(mode);
	struct loki_stats	st, st2;
	struct pb_buf		out, out2;
	char			reason[512];
	int			rc;

	rc = loki_check_json(data, size, &rule, &st, &out, reason,
	    sizeof(reason));
	if (rc != LABELS_PASS && rc != LABELS_REWRITE) {
		FUZZ_REQUIRE(out.data == NULL);
		return;
	}
	FUZZ_REQUIRE(rc == LABELS_REWRITE || out.len <= size);
	FUZZ_REQUIRE(loki_check_json(out.data, out.len, &rule, &st2, &out2,
	    reason, sizeof(reason)) == LABELS_PASS);
	FUZZ_REQUIRE(out2.len == out.len &&
	    memcmp(out2.data, out.data, out.len) == 0);
	FUZZ_REQUIRE(st2.streams == st.streams && st2.entries == st.entries);
	check_tree(&out, &st);
	pb_buf_free(&out2);
	pb_buf_free(&out);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct payload_rule	rule = fuzz_rule(MISMATCH_REWRITE);
	struct payload_result	res;

	roundtrip(data, size, MISMATCH_REWRITE);
	roundtrip(data, size, MISMATCH_REJECT);
	/* The same bytes as a gzip/deflate body: mostly malformed, never a crash. */
	payload_check(SIGNAL_LOGS, "application/json", "gzip", data, size,
	    &rule, &res);
	payload_result_free(&res);
	payload_check(SIGNAL_LOGS, "application/json", "deflate", data, size,
	    &rule, &res);
	payload_result_free(&res);
	return 0;
}
