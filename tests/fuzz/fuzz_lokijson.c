/*
 * Loki JSON push, both modes, and through payload_check() with gzip.
 * Property: a rewritten body passes its own check with the same counts.
 */
#include <stdlib.h>

#include "fuzz_common.h"
#include "loki.h"

static void
one(const uint8_t *data, size_t size, enum mismatch mode)
{
	struct payload_rule	rule = fuzz_rule(mode);
	struct loki_stats	st, st2;
	struct pb_buf		out, out2;
	char			reason[512];
	int			rc;

	rc = loki_check_json(data, size, &rule, &st, &out, reason,
	    sizeof(reason));
	if (rc != LABELS_REWRITE)
		return;
	rc = loki_check_json(out.data, out.len, &rule, &st2, &out2, reason,
	    sizeof(reason));
	FUZZ_REQUIRE(rc == LABELS_PASS);
	FUZZ_REQUIRE(st2.streams == st.streams && st2.entries == st.entries);
	pb_buf_free(&out);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct payload_rule	rule = fuzz_rule(MISMATCH_REWRITE);
	struct payload_result	res;

	one(data, size, MISMATCH_REWRITE);
	one(data, size, MISMATCH_REJECT);
	/* The same bytes as a gzip/deflate body: mostly malformed, never a crash. */
	payload_check(SIGNAL_LOGS, "application/json", "gzip", data, size,
	    &rule, &res);
	payload_result_free(&res);
	payload_check(SIGNAL_LOGS, "application/json", "deflate", data, size,
	    &rule, &res);
	payload_result_free(&res);
	return 0;
}
