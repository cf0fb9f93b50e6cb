/* ratelimit: token buckets per site, with the caller's clock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "ratelimit.h"

static void
test_burst_then_refill(void **state)
{
	double wait = 0;

	ratelimit_clear();
	/* 2 per second, burst 3: three at once, the fourth waits half a second */
	assert_int_equal(ratelimit_take("tokyo", 2, 3, 100.0, &wait), 1);
	assert_int_equal(ratelimit_take("tokyo", 2, 3, 100.0, &wait), 1);
	assert_int_equal(ratelimit_take("tokyo", 2, 3, 100.0, &wait), 1);
	assert_int_equal(ratelimit_take("tokyo", 2, 3, 100.0, &wait), 0);
	assert_true(wait > 0.499 && wait < 0.501);
	/* half a second later one token is back, not two */
	assert_int_equal(ratelimit_take("tokyo", 2, 3, 100.5, &wait), 1);
	assert_int_equal(ratelimit_take("tokyo", 2, 3, 100.5, &wait), 0);
	/* a long pause refills to the burst, never beyond it */
	for (int i = 0; i < 3; i++)
		assert_int_equal(ratelimit_take("tokyo", 2, 3, 200.0, &wait), 1);
	assert_int_equal(ratelimit_take("tokyo", 2, 3, 200.0, &wait), 0);
}

static void
test_sites_are_separate_and_zero_is_unlimited(void **state)
{
	double wait = 0;

	ratelimit_clear();
	assert_int_equal(ratelimit_take("a", 1, 1, 10.0, &wait), 1);
	assert_int_equal(ratelimit_take("a", 1, 1, 10.0, &wait), 0);
	assert_int_equal(ratelimit_take("b", 1, 1, 10.0, &wait), 1);
	for (int i = 0; i < 1000; i++)
		assert_int_equal(ratelimit_take("c", 0, 0, 10.0, &wait), 1);
	ratelimit_clear();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_burst_then_refill),
		cmocka_unit_test(test_sites_are_separate_and_zero_is_unlimited),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
