/*
 * Loki protobuf push on a decoded body, both modes.  Property: a rewritten
 * body passes its own check with the same stream and entry counts.
 */
#include "loki.h"
#include "fuzz_common.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_loki_roundtrip(loki_check_pb, data, size, MISMATCH_REWRITE);
	fuzz_loki_roundtrip(loki_check_pb, data, size, MISMATCH_REJECT);
	return 0;
}
