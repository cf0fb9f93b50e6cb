/* status: notes from the request path, rendered as JSON and HTML. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <jansson.h>

#include "status.h"

static struct site two_sites[2] = {
	{ .name = "tokyo", .signals = 3 },
	{ .name = "osaka", .signals = 1 },	/* metrics only; never writes */
};
static struct config cfg = { .sites = two_sites, .nsites = 2 };

static json_t *
render(void)
{
	size_t len;
	char *s = status_json(&cfg, NULL, &len);
	json_t *doc;

	assert_non_null(s);
	assert_int_equal(strlen(s), len);
	doc = json_loads(s, 0, NULL);
	assert_non_null(doc);
	free(s);
	return doc;
}

static json_t *
path(json_t *doc, const char *site, const char *key)
{
	size_t i;
	json_t *v;

	json_array_foreach(json_object_get(doc, "sites"), i, v)
		if (strcmp(json_string_value(json_object_get(v, "name")), site) == 0)
			return json_object_get(v, key);
	fail_msg("site %s not rendered", site);
	return NULL;
}

static void
test_writes_and_refusals(void **state)
{
	json_t *doc, *r;

	status_init();
	status_note_write("tokyo", SIGNAL_METRICS, 204, NULL);
	status_note_write("tokyo", SIGNAL_METRICS, 204, NULL);
	status_note_rewritten("tokyo", SIGNAL_METRICS, 7);
	status_note_write("tokyo", SIGNAL_LOGS, 403, "label provider=\"osaka\" is not allowed");
	status_note_write("tokyo", SIGNAL_LOGS, 403, "again <b>");
	status_note_write("tokyo", SIGNAL_METRICS, 429, "rate limited");
	status_note_write("nowhere", SIGNAL_METRICS, 204, NULL);	/* not configured: not shown */
	doc = render();
	assert_string_equal(json_string_value(path(doc, "tokyo", "state")), "alive");
	assert_string_equal(json_string_value(path(doc, "osaka", "state")), "silent");
	assert_int_equal(json_integer_value(json_object_get(path(doc, "tokyo", "writes"), "recent")), 2);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(
	    path(doc, "tokyo", "signals"), "metrics"), "rewritten_series")), 7);
	assert_true(json_is_null(json_object_get(json_object_get(
	    path(doc, "tokyo", "signals"), "logs"), "last_write")));
	assert_null(json_object_get(path(doc, "osaka", "signals"), "logs"));
	r = json_array_get(path(doc, "tokyo", "refusals"), 0);
	assert_int_equal(json_integer_value(json_object_get(r, "status")), 403);
	assert_int_equal(json_integer_value(json_object_get(r, "recent")), 2);
	r = path(doc, "tokyo", "last_refusal");
	assert_int_equal(json_integer_value(json_object_get(r, "status")), 429);
	assert_string_equal(json_string_value(json_object_get(r, "signal")), "metrics");
	assert_string_equal(json_string_value(json_object_get(r, "reason")), "rate limited");
	assert_true(json_is_null(path(doc, "osaka", "last_refusal")));
	assert_int_equal(json_array_size(json_object_get(doc, "sites")), 2);
	json_decref(doc);
}

static void
test_dependencies(void **state)
{
	json_t *doc, *u;

	status_init();
	status_note_upstream("metrics upstream 1", 204, 0.004);
	status_note_upstream("metrics upstream 1", 502, 0.25);
	status_note_keyset("certs_url answered 500");
	doc = render();
	assert_int_equal(json_array_size(json_object_get(doc, "upstreams")), 1);
	u = json_array_get(json_object_get(doc, "upstreams"), 0);
	assert_string_equal(json_string_value(json_object_get(u, "role")), "metrics upstream 1");
	assert_int_equal(json_integer_value(json_object_get(u, "last_status")), 502);
	u = json_object_get(doc, "keyset");
	assert_string_equal(json_string_value(json_object_get(u, "last_error")), "certs_url answered 500");
	assert_true(json_is_null(json_object_get(u, "last_load")));
	assert_string_equal(json_string_value(json_object_get(doc, "version")), KAKIKOMI_VERSION);
	json_decref(doc);
}

/* Whatever a site sent as a reason is text on the page, never markup. */
static void
test_html_escapes(void **state)
{
	size_t len;
	char *page;

	status_init();
	status_note_write("tokyo", SIGNAL_METRICS, 400, "<script>alert(1)</script>");
	page = status_html(&cfg, NULL, &len);
	assert_non_null(page);
	assert_int_equal(strlen(page), len);
	assert_null(strstr(page, "<script>"));
	assert_non_null(strstr(page, "&lt;script&gt;alert(1)&lt;/script&gt;"));
	assert_non_null(strstr(page, "<span class=\"silent\">silent</span>"));
	assert_null(strstr(page, "http://"));	/* no external asset */
	free(page);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_writes_and_refusals),
		cmocka_unit_test(test_dependencies),
		cmocka_unit_test(test_html_escapes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
