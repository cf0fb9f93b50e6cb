/*
 * Remote write 1.0 and 2.0 on a decoded body, both modes.  Property: a
 * rewritten body passes its own check with the same series count.  The same
 * bytes also go through payload_check() snappy-compressed.
 */
#include <stdlib.h>

#include "codec.h"
#include "fuzz_common.h"
#include "promrw.h"

typedef int (*checker)(const uint8_t *, size_t, const struct payload_rule *,
    struct promrw_stats *, struct pb_buf *, char *, size_t);

static void
one(checker check, const uint8_t *data, size_t size, enum mismatch mode)
{
	struct payload_rule	rule = fuzz_rule(mode);
	struct promrw_stats	st, st2;
	struct pb_buf		out = { 0 }, out2 = { 0 };	/* promrw reuses a given buffer */
	char			reason[512];
	int			rc;

	rc = check(data, size, &rule, &st, &out, reason, sizeof(reason));
	if (rc != LABELS_REWRITE)
		return;
	rc = check(out.data, out.len, &rule, &st2, &out2, reason,
	    sizeof(reason));
	FUZZ_REQUIRE(rc == LABELS_PASS);
	FUZZ_REQUIRE(st2.series == st.series);
	FUZZ_REQUIRE(st2.samples == st.samples);
	pb_buf_free(&out);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct payload_rule	 rule = fuzz_rule(MISMATCH_REWRITE);
	struct payload_result	 res;
	uint8_t			*z;
	size_t			 zlen;

	one(promrw_check_v1, data, size, MISMATCH_REWRITE);
	one(promrw_check_v1, data, size, MISMATCH_REJECT);
	one(promrw_check_v2, data, size, MISMATCH_REWRITE);
	one(promrw_check_v2, data, size, MISMATCH_REJECT);
	if (codec_snappy_encode(data, size, &z, &zlen) == CODEC_OK) {
		payload_check(SIGNAL_METRICS, "application/x-protobuf",
		    "snappy", z, zlen, &rule, &res);
		payload_result_free(&res);
		free(z);
	}
	payload_check(SIGNAL_METRICS, "application/x-protobuf", NULL, data,
	    size, &rule, &res);
	payload_result_free(&res);
	return 0;
}
