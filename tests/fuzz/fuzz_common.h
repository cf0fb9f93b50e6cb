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

#ifdef KAKIKOMI_LOKI_H
typedef int (*fuzz_loki_check)(const uint8_t *, size_t, const struct payload_rule *,
    struct loki_stats *, struct pb_buf *, char *, size_t);

/* A Loki body checked in `mode`; a rewrite must pass its own check with the
 * same stream and entry counts. */
static inline void
fuzz_loki_roundtrip(fuzz_loki_check check, const uint8_t *data, size_t size,
    enum mismatch mode)
{
	struct payload_rule	rule = fuzz_rule(mode);
	struct loki_stats	st, st2;
	struct pb_buf		out, out2;
	char			reason[512];

	if (check(data, size, &rule, &st, &out, reason, sizeof(reason)) != LABELS_REWRITE)
		return;
	FUZZ_REQUIRE(check(out.data, out.len, &rule, &st2, &out2, reason,
	    sizeof(reason)) == LABELS_PASS);
	FUZZ_REQUIRE(st2.streams == st.streams && st2.entries == st.entries);
	pb_buf_free(&out);
}
#endif

#endif
