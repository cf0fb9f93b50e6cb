/*
 * Loki protobuf push on a decoded body, both modes.  Property: a rewritten
 * body passes its own check with the same stream and entry counts.
 */
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

	rc = loki_check_pb(data, size, &rule, &st, &out, reason,
	    sizeof(reason));
	if (rc != LABELS_REWRITE)
		return;
	rc = loki_check_pb(out.data, out.len, &rule, &st2, &out2, reason,
	    sizeof(reason));
	FUZZ_REQUIRE(rc == LABELS_PASS);
	FUZZ_REQUIRE(st2.streams == st.streams && st2.entries == st.entries);
	pb_buf_free(&out);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	one(data, size, MISMATCH_REWRITE);
	one(data, size, MISMATCH_REJECT);
	return 0;
}
