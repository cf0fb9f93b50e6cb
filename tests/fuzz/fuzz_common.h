/*
 * Shared by the libFuzzer drivers: rules for both modes and a trap for a
 * broken property (a crash is how libFuzzer reports it).
 */
#ifndef KAKIKOMI_FUZZ_COMMON_H
#define KAKIKOMI_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include "payload.h"

static char		*fuzz_values_v[] = { "tokyo", "kyoto" };
static struct strlist	 fuzz_values = { fuzz_values_v, 2 };

static inline struct payload_rule
fuzz_rule(enum mismatch mode)
{
	struct payload_rule	r = { "provider", &fuzz_values, mode, "tokyo",
	    1u << 20 };

	return r;
}

#define FUZZ_REQUIRE(cond)	do { if (!(cond)) __builtin_trap(); } while (0)

int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
