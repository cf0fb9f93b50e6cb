/* metrics: exposition format, histogram buckets, escaping, lock-free counting. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "metrics.h"

static char *
render(void)
{
	size_t len;
	char *page = metrics_render(&len);

	assert_non_null(page);
	assert_int_equal(strlen(page), len);
	return page;
}

static void
assert_line(const char *page, const char *line)
{
	const char *p = strstr(page, line);

	if (p == NULL || (p != page && p[-1] != '\n') || p[strlen(line)] != '\n')
		fail_msg("line [%s] not in:\n%s", line, page);
}

static void
test_counter_and_gauge(void **state)
{
	char *page;

	metrics_counter_add("kakikomi_series_total", "site=\"a\",signal=\"metrics\"", 2);
	metrics_counter_add("kakikomi_series_total", "site=\"a\",signal=\"metrics\"", 3);
	metrics_gauge_set("kakikomi_jwks_keys", "", 7);
	metrics_gauge_set("kakikomi_jwks_keys", "", 2);
	page = render();
	assert_line(page, "# HELP kakikomi_series_total Series or streams accepted, by site and signal.");
	assert_line(page, "# TYPE kakikomi_series_total counter");
	assert_line(page, "kakikomi_series_total{site=\"a\",signal=\"metrics\"} 5");
	assert_line(page, "# TYPE kakikomi_jwks_keys gauge");
	assert_line(page, "kakikomi_jwks_keys 2");
	free(page);
}

static void
test_histogram_is_cumulative(void **state)
{
	char *page;

	metrics_observe("kakikomi_request_duration_seconds", "signal=\"logs\"", 0.003);
	metrics_observe("kakikomi_request_duration_seconds", "signal=\"logs\"", 0.2);
	metrics_observe("kakikomi_request_duration_seconds", "signal=\"logs\"", 99);
	page = render();
	assert_line(page, "# TYPE kakikomi_request_duration_seconds histogram");
	assert_line(page, "kakikomi_request_duration_seconds_bucket{signal=\"logs\",le=\"0.0025\"} 0");
	assert_line(page, "kakikomi_request_duration_seconds_bucket{signal=\"logs\",le=\"0.005\"} 1");
	assert_line(page, "kakikomi_request_duration_seconds_bucket{signal=\"logs\",le=\"0.25\"} 2");
	assert_line(page, "kakikomi_request_duration_seconds_bucket{signal=\"logs\",le=\"30\"} 2");
	assert_line(page, "kakikomi_request_duration_seconds_bucket{signal=\"logs\",le=\"+Inf\"} 3");
	assert_line(page, "kakikomi_request_duration_seconds_sum{signal=\"logs\"} 99.203000000000003");
	assert_line(page, "kakikomi_request_duration_seconds_count{signal=\"logs\"} 3");
	free(page);
}

static void
test_escape(void **state)
{
	char buf[64];

	metrics_escape(buf, sizeof(buf), "a\"b\\c\nd");
	assert_string_equal(buf, "a\\\"b\\\\c\\nd");
	metrics_escape(buf, 4, "abcdef");
	assert_string_equal(buf, "abc");
}

static void
test_unknown_family_is_ignored(void **state)
{
	char *page;

	metrics_counter_add("kakikomi_no_such_family", "", 1);
	page = render();
	assert_null(strstr(page, "kakikomi_no_such_family"));
	free(page);
}

#define ADDS 200000

static void *
adder(void *arg)
{
	for (int i = 0; i < ADDS; i++) {
		metrics_counter_add("kakikomi_entries_total", "site=\"race\"", 1);
		metrics_observe("kakikomi_upstream_duration_seconds", "signal=\"race\"", 0.01);
	}
	return NULL;
}

static void
test_concurrent_counting_is_exact(void **state)
{
	pthread_t t[4];
	char *page;

	for (int i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&t[i], NULL, adder, NULL), 0);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	page = render();
	assert_line(page, "kakikomi_entries_total{site=\"race\"} 800000");
	assert_line(page, "kakikomi_upstream_duration_seconds_count{signal=\"race\"} 800000");
	assert_line(page, "kakikomi_upstream_duration_seconds_bucket{signal=\"race\",le=\"0.01\"} 800000");
	free(page);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_counter_and_gauge),
		cmocka_unit_test(test_histogram_is_cumulative),
		cmocka_unit_test(test_escape),
		cmocka_unit_test(test_unknown_family_is_ignored),
		cmocka_unit_test(test_concurrent_counting_is_exact),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
