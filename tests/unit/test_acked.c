/* acked: per-body memory of the upstreams that stored it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "acked.h"

static void
test_digest_depends_on_site_signal_and_bytes(void **state)
{
	uint8_t a[ACKED_DIGEST_LEN], b[ACKED_DIGEST_LEN];
	static const uint8_t body[] = "body", other[] = "bodz";

	acked_digest("tokyo", 0, body, 4, a);
	acked_digest("tokyo", 0, body, 4, b);
	assert_memory_equal(a, b, sizeof(a));
	acked_digest("osaka", 0, body, 4, b);
	assert_memory_not_equal(a, b, sizeof(a));
	acked_digest("tokyo", 1, body, 4, b);
	assert_memory_not_equal(a, b, sizeof(a));
	acked_digest("tokyo", 0, other, 4, b);
	assert_memory_not_equal(a, b, sizeof(a));
}

static void
test_remember_and_forget(void **state)
{
	uint8_t d[ACKED_DIGEST_LEN], e[ACKED_DIGEST_LEN];
	static const uint8_t body[] = "batch 1", body2[] = "batch 2";

	acked_digest("tokyo", 0, body, sizeof(body), d);
	acked_digest("tokyo", 0, body2, sizeof(body2), e);
	assert_int_equal(acked_get(d), 0);
	acked_put(d, 0x5);
	assert_int_equal(acked_get(d), 0x5);
	assert_int_equal(acked_get(e), 0);
	/* forgetting another body leaves this one alone */
	acked_put(e, 0);
	assert_int_equal(acked_get(d), 0x5);
	acked_put(d, 0);
	assert_int_equal(acked_get(d), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_digest_depends_on_site_signal_and_bytes),
		cmocka_unit_test(test_remember_and_forget),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
