/*
 * policy: identity -> site over the snapshot of tests/data/kakikomi.yml
 * (tokyo: a service token and alice@example.com, both signals; osaka: two
 * service tokens, metrics only).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "config.h"
#include "policy.h"

#define TOKYO_TOKEN	"88bf3b6d86161464f6509f7219099e57.access"
#define OSAKA_TOKEN	"1badc0de1badc0de1badc0de1badc0de.access"

static int
setup(void **state)
{
	struct config_errors	 errs = { NULL, 0 };
	struct config		*cfg;

	cfg = config_load("tests/data/kakikomi.yml", &errs);
	for (size_t i = 0; i < errs.n; i++)
		fprintf(stderr, "%s\n", errs.v[i]);
	config_errors_free(&errs);
	*state = cfg;
	return cfg == NULL ? -1 : 0;
}

static int
teardown(void **state)
{
	config_unref(*state);
	return 0;
}

/* The name of the site found, or "(none)", so failures read well. */
static const char *
site_for(void **state, const char *cn, const char *email)
{
	const struct site	*s = policy_site_for(*state, cn, email);

	return s != NULL ? s->name : "(none)";
}

static void
test_by_common_name(void **state)
{
	assert_string_equal(site_for(state, TOKYO_TOKEN, NULL), "tokyo");
	assert_string_equal(site_for(state, OSAKA_TOKEN, ""), "osaka");
	/* service token IDs are compared exactly */
	assert_string_equal(site_for(state,
	    "88BF3B6D86161464F6509F7219099E57.access", NULL), "(none)");
	assert_string_equal(site_for(state, "88bf3b6d86161464f6509f7219099e57",
	    NULL), "(none)");
}

static void
test_by_email(void **state)
{
	assert_string_equal(site_for(state, NULL, "alice@example.com"),
	    "tokyo");
	assert_string_equal(site_for(state, "", "Alice@Example.COM"), "tokyo");
	assert_string_equal(site_for(state, NULL, "alice@example.co"),
	    "(none)");
	assert_string_equal(site_for(state, NULL, "alice@example.com "),
	    "(none)");
}

static void
test_common_name_first(void **state)
{
	/* Access sets common_name only for service tokens: it decides */
	assert_string_equal(site_for(state, OSAKA_TOKEN, "alice@example.com"),
	    "osaka");
	/* an unknown common_name still lets a known email through */
	assert_string_equal(site_for(state, "nobody.access",
	    "alice@example.com"), "tokyo");
}

static void
test_unknown_is_null(void **state)
{
	assert_null(policy_site_for(*state, NULL, NULL));
	assert_null(policy_site_for(*state, "", ""));
	assert_null(policy_site_for(*state, "nobody.access",
	    "mallory@example.com"));
	/* an email is not a token and a token is not an email */
	assert_null(policy_site_for(*state, "alice@example.com", NULL));
	assert_null(policy_site_for(*state, NULL, TOKYO_TOKEN));
	assert_null(policy_site_for(NULL, TOKYO_TOKEN, NULL));
}

static void
test_signals(void **state)
{
	const struct site	*tokyo = policy_site_for(*state, TOKYO_TOKEN,
				    NULL);
	const struct site	*osaka = policy_site_for(*state, OSAKA_TOKEN,
				    NULL);

	assert_non_null(tokyo);
	assert_non_null(osaka);
	assert_int_equal(policy_allows(tokyo, SIGNAL_METRICS), 1);
	assert_int_equal(policy_allows(tokyo, SIGNAL_LOGS), 1);
	assert_int_equal(policy_allows(osaka, SIGNAL_METRICS), 1);
	assert_int_equal(policy_allows(osaka, SIGNAL_LOGS), 0);
	assert_int_equal(policy_allows(NULL, SIGNAL_METRICS), 0);
	assert_int_equal(policy_allows(tokyo, SIGNAL_COUNT), 0);
	assert_int_equal(policy_allows(tokyo, (enum signal)-1), 0);
}

static void
test_site_fields_for_enforcement(void **state)
{
	const struct site	*s = policy_site_for(*state, OSAKA_TOKEN, NULL);

	assert_non_null(s);
	assert_int_equal(s->on_mismatch, MISMATCH_REJECT);
	assert_int_equal(s->providers.n, 2);
	assert_string_equal(s->providers.v[0], "osaka");
	s = policy_site_for(*state, TOKYO_TOKEN, NULL);
	assert_int_equal(s->on_mismatch, MISMATCH_REWRITE);
	assert_string_equal(s->tenant, "tokyo");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_by_common_name),
		cmocka_unit_test(test_by_email),
		cmocka_unit_test(test_common_name_first),
		cmocka_unit_test(test_unknown_is_null),
		cmocka_unit_test(test_signals),
		cmocka_unit_test(test_site_fields_for_enforcement),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
