/*
 * Loki JSON push, both modes, and through payload_check() with gzip.
 * Property: a rewritten body passes its own check with the same counts.
 */
#include <stdlib.h>

#include "loki.h"
#include "fuzz_common.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct payload_rule	rule = fuzz_rule(MISMATCH_REWRITE);
	struct payload_result	res;

	fuzz_loki_roundtrip(loki_check_json, data, size, MISMATCH_REWRITE);
	fuzz_loki_roundtrip(loki_check_json, data, size, MISMATCH_REJECT);
	/* The same bytes as a gzip/deflate body: mostly malformed, never a crash. */
	payload_check(SIGNAL_LOGS, "application/json", "gzip", data, size,
	    &rule, &res);
	payload_result_free(&res);
	payload_check(SIGNAL_LOGS, "application/json", "deflate", data, size,
	    &rule, &res);
	payload_result_free(&res);
	return 0;
}
