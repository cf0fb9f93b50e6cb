/*
 * config: every key of tests/data/kakikomi.yml + sites.yml lands in its
 * field, defaults fill the rest, and every error comes out as the exact
 * "file:line: reason" line.  Error cases write small files into a private
 * mkdtemp directory; in expected errors "D" stands for that directory.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"

#define NELEM(a)	(sizeof(a) / sizeof((a)[0]))

static char			dir[64];
static struct config_errors	errs;

/* A minimal valid pair of files; error cases change one part of them. */
#define MAIN_OK \
	"access:\n" \
	"  team_domain: example.cloudflareaccess.com\n" \
	"  audiences: aud1\n" \
	"upstreams:\n" \
	"  metrics: [ { url: http://127.0.0.1:9090/api/v1/write } ]\n" \
	"sites_file: s.yml\n"
#define SITES_OK \
	"sites:\n" \
	"  tokyo:\n" \
	"    tokens: [ t1.access ]\n" \
	"    provider: tokyo\n"

static int
rm_tree(const char *path)
{
	struct dirent	*de;
	struct stat	 st;
	DIR		*d;
	char		 sub[512];

	if (lstat(path, &st) == -1)
		return -1;
	if (S_ISDIR(st.st_mode) && (d = opendir(path)) != NULL) {
		while ((de = readdir(d)) != NULL) {
			if (strcmp(de->d_name, ".") == 0 ||
			    strcmp(de->d_name, "..") == 0)
				continue;
			snprintf(sub, sizeof(sub), "%s/%s", path, de->d_name);
			rm_tree(sub);
		}
		closedir(d);
		return rmdir(path);
	}
	return unlink(path);
}

static int
setup(void **state)
{
	snprintf(dir, sizeof(dir), "/tmp/kakikomi-test-config.XXXXXX");
	return mkdtemp(dir) == NULL ? -1 : 0;
}

static int
teardown(void **state)
{
	return rm_tree(dir);
}

static int
after_each(void **state)
{
	config_errors_free(&errs);
	return 0;
}

/* D/<name> */
static const char *
path_of(const char *name)
{
	static char	p[256];

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	return p;
}

static void
write_file(const char *name, const char *text)
{
	FILE	*f = fopen(path_of(name), "w");

	if (f == NULL)
		fail_msg("cannot create %s", path_of(name));
	fputs(text, f);
	fclose(f);
}

/* Writes D/k.yml and (unless NULL) D/s.yml, then loads D/k.yml. */
static struct config *
load(const char *main_yml, const char *sites_yml)
{
	config_errors_free(&errs);
	write_file("k.yml", main_yml);
	if (sites_yml != NULL)
		write_file("s.yml", sites_yml);
	else
		unlink(path_of("s.yml"));
	return config_load(path_of("k.yml"), &errs);
}

/* The error with every occurrence of the temp dir replaced by "D". */
static void
undir(const char *e, char *out, size_t size)
{
	size_t	dl = strlen(dir), o = 0;

	while (*e != '\0' && o + 2 < size) {
		if (strncmp(e, dir, dl) == 0) {
			out[o++] = 'D';
			e += dl;
		} else
			out[o++] = *e++;
	}
	out[o] = '\0';
}

static void
print_errors(void)
{
	for (size_t i = 0; i < errs.n; i++)
		print_error("#   got[%zu]: %s\n", i, errs.v[i]);
}

/* Loading fails with exactly these errors, in this order. */
static void
expect_errors(const char *main_yml, const char *sites_yml,
    const char *const *want, size_t n)
{
	struct config	*cfg = load(main_yml, sites_yml);
	char		 got[1024];

	if (cfg != NULL) {
		config_unref(cfg);
		fail_msg("loaded although %zu error(s) were expected, first: %s",
		    n, want[0]);
	}
	for (size_t i = 0; i < n || i < errs.n; i++) {
		if (i >= errs.n) {
			print_errors();
			fail_msg("missing error [%zu]: %s", i, want[i]);
		}
		undir(errs.v[i], got, sizeof(got));
		if (i >= n) {
			print_errors();
			fail_msg("unexpected error [%zu]: %s", i, got);
		}
		if (strcmp(got, want[i]) != 0) {
			print_errors();
			fail_msg("error [%zu]:\n  want %s\n  got  %s", i,
			    want[i], got);
		}
	}
}

#define EXPECT(main, sites, ...) do {					\
	const char *const want_[] = { __VA_ARGS__ };			\
	expect_errors((main), (sites), want_, NELEM(want_));		\
} while (0)

static struct config *
load_ok(const char *main_yml, const char *sites_yml)
{
	struct config	*cfg = load(main_yml, sites_yml);

	if (cfg == NULL) {
		print_errors();
		fail_msg("load failed with %zu error(s), first: %s", errs.n,
		    errs.n > 0 ? errs.v[0] : "(none)");
	}
	return cfg;
}

static void
assert_list(const struct strlist *l, const char *const *want, size_t n)
{
	assert_int_equal(l->n, n);
	for (size_t i = 0; i < n; i++)
		assert_string_equal(l->v[i], want[i]);
}

#define ASSERT_LIST(l, ...) do {					\
	const char *const want_[] = { __VA_ARGS__ };			\
	assert_list((l), want_, NELEM(want_));				\
} while (0)

static const char AUD[] =
    "4714c1358e65fe4b408ad6d432a5f878f08194bdb4752441fd56faefa9b2b6f2";

static void
test_example_files_every_field(void **state)
{
	struct config		*cfg;
	const struct site	*s;
	char			 cwd[512];

	cfg = config_load("tests/data/kakikomi.yml", &errs);
	if (cfg == NULL) {
		print_errors();
		fail_msg("tests/data/kakikomi.yml did not load (run from the "
		    "top directory, cwd %s)", getcwd(cwd, sizeof(cwd)));
	}
	assert_int_equal(cfg->refs, 1);
	assert_string_equal(cfg->path, "tests/data/kakikomi.yml");
	assert_string_equal(cfg->listen, "127.0.0.1:18080");
	assert_string_equal(cfg->metrics_listen, "[::1]:19464");
	assert_string_equal(cfg->log_level, "debug");
	assert_int_equal(cfg->workers, 2);
	assert_int_equal(cfg->shutdown_timeout_ms, 90000);

	assert_string_equal(cfg->access.team_domain,
	    "example.cloudflareaccess.com");
	assert_string_equal(cfg->access.issuer,
	    "https://example.cloudflareaccess.com");
	ASSERT_LIST(&cfg->access.audiences, AUD);
	assert_string_equal(cfg->access.certs_url,
	    "file://../shared/testdata/access/certs.json");
	assert_string_equal(cfg->access.certs_ca_file,
	    "/etc/ssl/certs/ca-certificates.crt");
	assert_string_equal(cfg->access.certs_cache,
	    "/tmp/kakikomi-certs.json");
	assert_int_equal(cfg->access.refresh_interval_ms, 15 * 60 * 1000);
	assert_int_equal(cfg->access.leeway_s, 60);

	assert_int_equal(cfg->nupstreams[SIGNAL_METRICS], 2);
	assert_string_equal(cfg->upstreams[SIGNAL_METRICS][0].url,
	    "http://127.0.0.1:9090/api/v1/write");
	assert_int_equal(cfg->upstreams[SIGNAL_METRICS][0].timeout_ms, 10000);
	assert_string_equal(cfg->upstreams[SIGNAL_METRICS][1].url,
	    "http://[::1]:8428/api/v1/write");
	assert_int_equal(cfg->upstreams[SIGNAL_METRICS][1].timeout_ms, 30000);
	assert_int_equal(cfg->nupstreams[SIGNAL_LOGS], 1);
	assert_string_equal(cfg->upstreams[SIGNAL_LOGS][0].url,
	    "http://loki:3100/loki/api/v1/push");
	assert_int_equal(cfg->upstreams[SIGNAL_LOGS][0].timeout_ms, 250);

	assert_int_equal(cfg->limits.max_body_bytes, 8u << 20);
	assert_int_equal(cfg->limits.max_decoded_bytes, 64000000);
	assert_int_equal(cfg->limits.max_inflight_bytes, 1u << 30);
	assert_int_equal(cfg->limits.max_connections, 1000);
	assert_int_equal(cfg->limits.max_requests, 100);
	assert_int_equal(cfg->limits.header_timeout_ms, 5000);
	assert_int_equal(cfg->limits.body_timeout_ms, 120000);
	assert_int_equal(cfg->limits.idle_timeout_ms, 3600000);

	assert_string_equal(cfg->sites_file, "tests/data/sites.yml");
	assert_string_equal(cfg->label, "provider");
	assert_int_equal(cfg->nsites, 2);

	s = &cfg->sites[0];
	assert_string_equal(s->name, "tokyo");
	ASSERT_LIST(&s->tokens, "88bf3b6d86161464f6509f7219099e57.access");
	ASSERT_LIST(&s->emails, "alice@example.com");
	ASSERT_LIST(&s->providers, "tokyo");
	assert_int_equal(s->on_mismatch, MISMATCH_REWRITE);
	assert_int_equal(s->signals, (1u << SIGNAL_METRICS) | (1u << SIGNAL_LOGS));
	assert_string_equal(s->tenant, "tokyo");
	assert_true(s->rate_limit == 0 && s->rate_burst == 0);

	s = &cfg->sites[1];
	assert_string_equal(s->name, "osaka");
	ASSERT_LIST(&s->tokens, "0badc0de0badc0de0badc0de0badc0de.access",
	    "1badc0de1badc0de1badc0de1badc0de.access");
	assert_int_equal(s->emails.n, 0);
	ASSERT_LIST(&s->providers, "osaka", "osaka-2");
	assert_int_equal(s->on_mismatch, MISMATCH_REJECT);
	assert_int_equal(s->signals, 1u << SIGNAL_METRICS);
	assert_null(s->tenant);
	assert_true(s->rate_limit == 2.5);
	assert_true(s->rate_burst == 2.5);
	config_unref(cfg);
}

static void
test_defaults(void **state)
{
	struct config		*cfg = load_ok(MAIN_OK, SITES_OK);
	const struct site	*s = &cfg->sites[0];

	assert_string_equal(cfg->listen, "0.0.0.0:8080");
	assert_string_equal(cfg->metrics_listen, "127.0.0.1:9464");
	assert_string_equal(cfg->log_level, "info");
	assert_int_equal(cfg->workers, 0);
	assert_int_equal(cfg->shutdown_timeout_ms, 30000);
	ASSERT_LIST(&cfg->access.audiences, "aud1");
	assert_string_equal(cfg->access.certs_url,
	    "https://example.cloudflareaccess.com/cdn-cgi/access/certs");
	assert_null(cfg->access.certs_ca_file);
	assert_null(cfg->access.certs_cache);
	assert_int_equal(cfg->access.refresh_interval_ms, 3600000);
	assert_int_equal(cfg->access.leeway_s, 30);
	assert_int_equal(cfg->upstreams[SIGNAL_METRICS][0].timeout_ms, 30000);
	assert_int_equal(cfg->nupstreams[SIGNAL_LOGS], 0);
	assert_null(cfg->upstreams[SIGNAL_LOGS]);
	assert_int_equal(cfg->limits.max_body_bytes, 16u << 20);
	assert_int_equal(cfg->limits.max_decoded_bytes, 32u << 20);
	assert_int_equal(cfg->limits.max_inflight_bytes, 256u << 20);
	assert_int_equal(cfg->limits.max_connections, 4096);
	assert_int_equal(cfg->limits.max_requests, 256);
	assert_int_equal(cfg->limits.header_timeout_ms, 10000);
	assert_int_equal(cfg->limits.body_timeout_ms, 60000);
	assert_int_equal(cfg->limits.idle_timeout_ms, 30000);
	assert_string_equal(cfg->label, "provider");
	assert_string_equal(s->name, "tokyo");
	ASSERT_LIST(&s->tokens, "t1.access");
	assert_int_equal(s->emails.n, 0);
	ASSERT_LIST(&s->providers, "tokyo");
	assert_int_equal(s->on_mismatch, MISMATCH_REWRITE);
	assert_int_equal(s->signals, 3);
	assert_null(s->tenant);
	assert_true(s->rate_limit == 0 && s->rate_burst == 0);
	config_unref(cfg);
}

static void
test_refcount(void **state)
{
	struct config	*cfg = load_ok(MAIN_OK, SITES_OK);

	assert_ptr_equal(config_ref(cfg), cfg);
	assert_int_equal(cfg->refs, 2);
	config_unref(cfg);
	assert_int_equal(cfg->refs, 1);
	config_unref(cfg);	/* freed: ASan reports a leak otherwise */
	config_unref(NULL);
}

static void
test_signal_name(void **state)
{
	assert_string_equal(signal_name(SIGNAL_METRICS), "metrics");
	assert_string_equal(signal_name(SIGNAL_LOGS), "logs");
	assert_string_equal(signal_name(SIGNAL_COUNT), "unknown");
}

static void
test_size_units(void **state)
{
	static const struct { const char *s; uint64_t v; } ok[] = {
		{ "0", 0 }, { "1024", 1024 }, { "1B", 1 }, { "512KB", 512000 },
		{ "16MB", 16000000 }, { "2GB", 2000000000 },
		{ "1TB", 1000000000000ull },
		{ "1KiB", 1024 }, { "16MiB", 16u << 20 }, { "3GiB", 3ull << 30 },
		{ "1TiB", 1ull << 40 }, { "16 MiB", 16u << 20 },
		{ "18446744073709551615", UINT64_MAX },
		{ "17179869183GiB", UINT64_MAX - (1ull << 30) + 1 },
	};
	static const char *const bad[] = {
		"", "MiB", "-1", "+1", "1.5MiB", "16mib", "16Mi", "16 ", "1 2",
		"0x10", " 16MiB", "16MiBs", "16  ",
		"18446744073709551616", "17179869184GiB", "18446744073709552KB",
	};
	uint64_t	v;

	for (size_t i = 0; i < NELEM(ok); i++) {
		v = 12345;
		if (config_parse_size(ok[i].s, &v) != 0)
			fail_msg("size '%s' refused", ok[i].s);
		if (v != ok[i].v)
			fail_msg("size '%s' = %ju, want %ju", ok[i].s,
			    (uintmax_t)v, (uintmax_t)ok[i].v);
	}
	for (size_t i = 0; i < NELEM(bad); i++)
		if (config_parse_size(bad[i], &v) != -1)
			fail_msg("bad size '%s' accepted as %ju", bad[i],
			    (uintmax_t)v);
}

static void
test_duration_units(void **state)
{
	static const struct { const char *s; uint64_t v; } ok[] = {
		{ "0", 0 }, { "0s", 0 }, { "250ms", 250 }, { "30s", 30000 },
		{ "2m", 120000 }, { "1h", 3600000 }, { "1d", 86400000 },
		{ "1w", 604800000 }, { "1y", 31536000000ull },
		{ "1h30m", 5400000 }, { "1m30s500ms", 90500 },
		{ "1d2h3m4s5ms", 93784005 },
		{ "18446744073709551615ms", UINT64_MAX },
		{ "213503982334d51951615ms", UINT64_MAX },
	};
	static const char *const bad[] = {
		"", "1", "10", "s", "5x", "-1s", "1.5h", " 1s", "1s ", "1S",
		"1h1h", "1m1h", "30s1m", "1ms1s", "1mss", "1 s",
		"18446744073709551616ms", "18446744073709552s", "213503982335d",
		"213503982334d51951616ms",
	};
	uint64_t	v;

	for (size_t i = 0; i < NELEM(ok); i++) {
		v = 12345;
		if (config_parse_duration(ok[i].s, &v) != 0)
			fail_msg("duration '%s' refused", ok[i].s);
		if (v != ok[i].v)
			fail_msg("duration '%s' = %ju ms, want %ju", ok[i].s,
			    (uintmax_t)v, (uintmax_t)ok[i].v);
	}
	for (size_t i = 0; i < NELEM(bad); i++)
		if (config_parse_duration(bad[i], &v) != -1)
			fail_msg("bad duration '%s' accepted as %ju ms", bad[i],
			    (uintmax_t)v);
}

static void
test_listen_forms(void **state)
{
	static const char *const ok[] = {
		":8080", "0.0.0.0:1", "localhost:65535", "[::1]:9464",
		"[::]:80", "my-host.example_1:443",
	};
	static const char *const bad[] = {
		"8080", "host", "host:", ":0", "h:65536", "h:123456", "h:8o",
		"::1:80", "[::1]", "[::1]80", "[]:80", "[zz]:80", "a b:80",
		"http://h:80",
	};
	struct config	*cfg;
	char		 yml[512], want[256];

	for (size_t i = 0; i < NELEM(ok); i++) {
		snprintf(yml, sizeof(yml), MAIN_OK "listen: \"%s\"\n", ok[i]);
		cfg = load_ok(yml, SITES_OK);
		assert_string_equal(cfg->listen, ok[i]);
		config_unref(cfg);
	}
	for (size_t i = 0; i < NELEM(bad); i++) {
		snprintf(yml, sizeof(yml), MAIN_OK "listen: \"%s\"\n", bad[i]);
		if ((cfg = load(yml, SITES_OK)) != NULL) {
			config_unref(cfg);
			fail_msg("listen '%s' accepted", bad[i]);
		}
		snprintf(want, sizeof(want), "%s/k.yml:7: listen: '%s': ", dir,
		    bad[i]);
		if (errs.n != 1 || strncmp(errs.v[0], want, strlen(want)) != 0)
			fail_msg("listen '%s': got %zu error(s), first '%s'",
			    bad[i], errs.n, errs.n ? errs.v[0] : "");
		config_errors_free(&errs);
	}
	EXPECT(MAIN_OK "metrics_listen: h:99999\n", SITES_OK,
	    "D/k.yml:7: metrics_listen: 'h:99999': port must be a number "
	    "from 1 to 65535 (expected host:port, [address]:port or :port)");
	EXPECT(MAIN_OK "listen: \"[::1]\"\n", SITES_OK,
	    "D/k.yml:7: listen: '[::1]': missing :port (expected host:port, "
	    "[address]:port or :port)");
}

static void
test_main_value_errors(void **state)
{
	EXPECT(
	    "# comment line\n"
	    "listen: [ a ]\n"
	    "log_level: loud\n"
	    "workers: -1\n"
	    "shutdown_timeout: 5x\n"
	    "access:\n"
	    "  team_domain: https://example.cloudflareaccess.com\n"
	    "  audiences: []\n"
	    "  certs_url: ftp://x/certs\n"
	    "  refresh_interval: 5s\n"
	    "  leeway: 500ms\n"
	    "  certs_cache: { a: b }\n"
	    "upstreams:\n"
	    "  metrics:\n"
	    "    - url: https://prometheus:9090/api/v1/write\n"
	    "    - url: http://prometheus:9090\n"
	    "    - { url: \"http://p:0/x\", timeout: 0s }\n"
	    "    - { timeout: 1s }\n"
	    "  logs: { url: http://loki:3100/loki/api/v1/push }\n"
	    "sites_file: s.yml\n"
	    "limits:\n"
	    "  max_body_bytes: 99999999999999999999\n"
	    "  max_decoded_bytes: 0\n"
	    "  max_inflight_bytes: 1PiB\n"
	    "  max_connections: 0\n"
	    "  max_requests: many\n"
	    "  header_timeout: 1h1h\n"
	    "  body_timeout: 0\n"
	    "  idle_timeout: [ 1s ]\n",
	    SITES_OK,
	    "D/k.yml:2: listen: expected a single value, not a list",
	    "D/k.yml:3: log_level: 'loud' is not one of debug, info, warn, "
	    "error",
	    "D/k.yml:4: workers: '-1' is not an integer from 0 to 1024 "
	    "(0 = one per core)",
	    "D/k.yml:5: shutdown_timeout: '5x' is not a duration (e.g. 250ms, "
	    "30s, 5m, 1h30m, 1d) or is too large",
	    "D/k.yml:7: team_domain: 'https://example.cloudflareaccess.com' is "
	    "not a host name such as example.cloudflareaccess.com (no https://, "
	    "no path)",
	    "D/k.yml:8: audiences: needs at least one value",
	    "D/k.yml:9: certs_url: 'ftp://x/certs' must start with https://, "
	    "http:// or file://",
	    "D/k.yml:10: refresh_interval: must be at least 10s",
	    "D/k.yml:11: leeway: must be whole seconds",
	    "D/k.yml:12: certs_cache: expected a single value, not a mapping",
	    "D/k.yml:15: url: 'https://prometheus:9090/api/v1/write': https "
	    "upstreams are not supported: kakikomi forwards plain http:// to "
	    "upstreams on a trusted network",
	    "D/k.yml:16: url: 'http://prometheus:9090': must include a path, "
	    "e.g. http://prometheus:9090/api/v1/write",
	    "D/k.yml:17: url: 'http://p:0/x': port must be a number from 1 to "
	    "65535",
	    "D/k.yml:17: timeout: must be greater than 0",
	    "D/k.yml:18: missing required key 'url' in upstreams.metrics",
	    "D/k.yml:19: logs: expected a list of { url: ... }, not a mapping",
	    "D/k.yml:22: max_body_bytes: '99999999999999999999' is not a size "
	    "(e.g. 1024, 512KB, 16MiB) or is too large",
	    "D/k.yml:23: max_decoded_bytes: must be greater than 0",
	    "D/k.yml:24: max_inflight_bytes: '1PiB' is not a size (e.g. 1024, "
	    "512KB, 16MiB) or is too large",
	    "D/k.yml:25: max_connections: '0' is not an integer greater than 0",
	    "D/k.yml:26: max_requests: 'many' is not an integer greater than 0",
	    "D/k.yml:27: header_timeout: '1h1h' is not a duration (e.g. 250ms, "
	    "30s, 5m, 1h30m, 1d) or is too large",
	    "D/k.yml:28: body_timeout: must be greater than 0",
	    "D/k.yml:29: idle_timeout: expected a single value, not a list");
}

static void
test_unknown_keys(void **state)
{
	EXPECT(
	    "access:\n"
	    "  team_domain: example.cloudflareaccess.com\n"
	    "  audiences: aud1\n"
	    "upstreams:\n"
	    "  metrics: [ { url: http://127.0.0.1:9090/api/v1/write, "
	    "timeuot: 1s } ]\n"
	    "  audience: x\n"
	    "  traces: []\n"
	    "sites_file: s.yml\n"
	    "limits: { max_body: 1 }\n",
	    "sites:\n"
	    "  tokyo:\n"
	    "    tokens: [ t1.access ]\n"
	    "    provider: tokyo\n"
	    "    tenat: x\n"
	    "    rate_limit: { requests_per_second: 1, bursts: 2 }\n"
	    "labels: x\n",
	    "D/k.yml:5: unknown key 'timeuot' in upstreams.metrics "
	    "(did you mean 'timeout'?)",
	    "D/k.yml:6: unknown key 'audience' in upstreams",
	    "D/k.yml:7: unknown key 'traces' in upstreams",
	    "D/k.yml:9: unknown key 'max_body' in limits",
	    "D/s.yml:5: unknown key 'tenat' in site 'tokyo' "
	    "(did you mean 'tenant'?)",
	    "D/s.yml:6: unknown key 'bursts' in rate_limit "
	    "(did you mean 'burst'?)",
	    "D/s.yml:7: unknown key 'labels' (did you mean 'label'?)");
	EXPECT(
	    "access:\n"
	    "  team_domain: example.cloudflareaccess.com\n"
	    "  audience: aud1\n"
	    "upstreams:\n"
	    "  metrics: [ { url: http://127.0.0.1:9090/api/v1/write } ]\n"
	    "sites_file: s.yml\n"
	    "site_file: s.yml\n",
	    SITES_OK,
	    "D/k.yml:1: missing required key 'audiences' in access",
	    "D/k.yml:3: unknown key 'audience' in access "
	    "(did you mean 'audiences'?)",
	    "D/k.yml:7: unknown key 'site_file' (did you mean 'sites_file'?)");
}

static void
test_missing_and_duplicate_keys(void **state)
{
	EXPECT("# nothing but\nlisten: :8080\n", NULL,
	    "D/k.yml:2: missing required key 'access'",
	    "D/k.yml:2: missing required key 'upstreams'",
	    "D/k.yml:2: missing required key 'sites_file'");
	EXPECT(
	    "access:\n"
	    "upstreams: {}\n"
	    "sites_file: s.yml\n"
	    "sites_file: t.yml\n",
	    "sites: {}\n",
	    "D/k.yml:1: missing required key 'team_domain' in access",
	    "D/k.yml:1: missing required key 'audiences' in access",
	    "D/k.yml:2: upstreams: no upstream for metrics or logs",
	    "D/k.yml:4: duplicate key 'sites_file'",
	    "D/s.yml:1: sites: expected a mapping of site name -> site, with "
	    "at least one site");
	EXPECT(MAIN_OK,
	    "label: provider\n",
	    "D/s.yml:1: missing required key 'sites'");
}

static void
test_wrong_types(void **state)
{
	EXPECT(
	    "access: [ a ]\n"
	    "upstreams: x\n"
	    "sites_file: { a: b }\n"
	    "limits: 1\n"
	    "[ a ]: 1\n",
	    NULL,
	    "D/k.yml:1: access: expected a mapping, not a list",
	    "D/k.yml:2: upstreams: expected a mapping, not a single value",
	    "D/k.yml:3: sites_file: expected a single value, not a mapping",
	    "D/k.yml:4: limits: expected a mapping, not a single value",
	    "D/k.yml:5: keys must be plain names, not a list");
	EXPECT("- a\n- b\n", NULL,
	    "D/k.yml:1: expected a mapping at the top level, not a list");
	EXPECT("", NULL, "D/k.yml:1: file is empty");
	EXPECT(MAIN_OK "log_level: \"de\\0bug\"\n", SITES_OK,
	    "D/k.yml:7: log_level: value contains a NUL byte");
	EXPECT(MAIN_OK "log_level: \"\"\n", SITES_OK,
	    "D/k.yml:7: log_level: value is empty");
}

static void
test_site_errors(void **state)
{
	EXPECT(MAIN_OK,
	    "label: 9x\n"
	    "sites:\n"
	    "  a:\n"
	    "    tokens: [ t1.access, [ nested ] ]\n"
	    "    emails: bob\n"
	    "    provider: []\n"
	    "  b:\n"
	    "    tokens: t2.access\n"
	    "    provider: [ b, \"\" ]\n"
	    "    signals: [ metrics, traces ]\n"
	    "    on_mismatch: drop\n"
	    "    rate_limit: { burst: 0.5 }\n"
	    "  c: {}\n"
	    "  d:\n"
	    "    tokens: [ t4.access ]\n"
	    "    provider: d\n"
	    "    signals: []\n"
	    "    rate_limit: { requests_per_second: 0 }\n"
	    "  a: { tokens: [ t5.access ], provider: a }\n"
	    "  \"\": { tokens: [ t6.access ], provider: e }\n"
	    "  e: [ x ]\n",
	    "D/s.yml:1: label: '9x' is not a label name "
	    "([a-zA-Z_][a-zA-Z0-9_]*, not starting with __)",
	    "D/s.yml:4: tokens: expected a single value, not a list",
	    "D/s.yml:5: emails: 'bob' is not an email address",
	    "D/s.yml:6: provider: needs at least one value",
	    "D/s.yml:9: provider: value is empty",
	    "D/s.yml:10: signals: 'traces' is not one of metrics, logs",
	    "D/s.yml:11: on_mismatch: 'drop' is not one of rewrite, reject",
	    "D/s.yml:12: burst: '0.5' is not a number >= 1",
	    "D/s.yml:12: missing required key 'requests_per_second' in "
	    "rate_limit",
	    "D/s.yml:13: missing required key 'provider' in site 'c'",
	    "D/s.yml:13: site 'c' has no tokens and no emails",
	    "D/s.yml:17: signals: empty (leave it out to allow both)",
	    "D/s.yml:18: requests_per_second: '0' is not a number > 0",
	    "D/s.yml:19: duplicate site 'a'",
	    "D/s.yml:20: site name: value is empty",
	    "D/s.yml:21: site 'e': expected a mapping, not a list");
	EXPECT(MAIN_OK, "label: __name__\n" SITES_OK,
	    "D/s.yml:1: label: '__name__' is not a label name "
	    "([a-zA-Z_][a-zA-Z0-9_]*, not starting with __)");
}

static void
test_rate_limit_burst(void **state)
{
	struct config	*cfg = load_ok(MAIN_OK,
	    "label: _team\n"
	    "sites:\n"
	    "  a: { tokens: [ a.access ], provider: a, "
	    "rate_limit: { requests_per_second: 0.5 } }\n"
	    "  b: { tokens: [ b.access ], provider: b, "
	    "rate_limit: { requests_per_second: 10, burst: 40 } }\n"
	    "  c: { emails: [ c@example.com ], provider: c, signals: logs, "
	    "rate_limit: { requests_per_second: 1e2 } }\n");

	assert_string_equal(cfg->label, "_team");
	assert_int_equal(cfg->nsites, 3);
	assert_true(cfg->sites[0].rate_limit == 0.5);
	assert_true(cfg->sites[0].rate_burst == 1);
	assert_true(cfg->sites[1].rate_limit == 10);
	assert_true(cfg->sites[1].rate_burst == 40);
	assert_true(cfg->sites[2].rate_limit == 100);
	assert_true(cfg->sites[2].rate_burst == 100);
	assert_int_equal(cfg->sites[2].signals, 1u << SIGNAL_LOGS);
	config_unref(cfg);
}

static void
test_duplicate_identity(void **state)
{
	EXPECT(MAIN_OK,
	    "sites:\n"
	    "  tokyo:\n"
	    "    tokens: [ t1.access ]\n"
	    "    emails:\n"
	    "      - alice@example.com\n"
	    "    provider: tokyo\n"
	    "  osaka:\n"
	    "    tokens:\n"
	    "      - t2.access\n"
	    "      - t1.access\n"
	    "    emails: [ Alice@Example.COM ]\n"
	    "    provider: osaka\n"
	    "  nagoya:\n"
	    "    tokens: [ t2.access, t3.access, T1.access ]\n"
	    "    provider: nagoya\n",
	    "D/s.yml:10: token 't1.access' is already listed in site 'tokyo' "
	    "(line 3)",
	    "D/s.yml:11: email 'Alice@Example.COM' is already listed in site "
	    "'tokyo' (line 5)",
	    "D/s.yml:14: token 't2.access' is already listed in site 'osaka' "
	    "(line 9)");
}

static void
test_relative_sites_file(void **state)
{
	struct config	*cfg;
	char		 sub[128], want[256], yml[512];

	snprintf(sub, sizeof(sub), "%s/etc", dir);
	assert_int_equal(mkdir(sub, 0700), 0);
	write_file("etc/k.yml", MAIN_OK);
	write_file("etc/s.yml", SITES_OK);
	cfg = config_load(path_of("etc/k.yml"), &errs);
	if (cfg == NULL)
		fail_msg("etc/k.yml: %s", errs.n ? errs.v[0] : "?");
	snprintf(want, sizeof(want), "%s/etc/s.yml", dir);
	assert_string_equal(cfg->sites_file, want);
	assert_int_equal(cfg->nsites, 1);
	config_unref(cfg);

	/* an absolute path is kept as written */
	snprintf(yml, sizeof(yml), "%.*ssites_file: %s/etc/s.yml\n",
	    (int)(strlen(MAIN_OK) - strlen("sites_file: s.yml\n")), MAIN_OK,
	    dir);
	cfg = load_ok(yml, NULL);
	assert_string_equal(cfg->sites_file, want);
	config_unref(cfg);
}

static void
test_missing_files(void **state)
{
	struct config	*cfg;

	EXPECT(MAIN_OK, NULL,
	    "D/k.yml:6: sites_file: cannot read 'D/s.yml': No such file or "
	    "directory");
	config_errors_free(&errs);
	cfg = config_load(path_of("none.yml"), &errs);
	assert_null(cfg);
	assert_int_equal(errs.n, 1);
	assert_string_equal(errs.v[0] + strlen(dir),
	    "/none.yml: cannot read: No such file or directory");
	config_errors_free(&errs);
	cfg = config_load(dir, &errs);
	assert_null(cfg);
	assert_int_equal(errs.n, 1);
	assert_string_equal(errs.v[0] + strlen(dir),
	    ": cannot read: not a regular file");
}

static void
test_yaml_syntax_errors(void **state)
{
	EXPECT(
	    "access:\n"
	    "  team_domain: example.cloudflareaccess.com\n"
	    "  audiences: [ aud1\n"
	    "upstreams:\n",
	    NULL,
	    "D/k.yml:4: YAML syntax error: did not find expected ',' or ']' "
	    "while parsing a flow sequence");
	EXPECT(
	    "listen: :8080\n"
	    "  metrics_listen: :9464\n",
	    NULL,
	    "D/k.yml:2: YAML syntax error: mapping values are not allowed in "
	    "this context");
	EXPECT(MAIN_OK,
	    "sites:\n"
	    "  tokyo:\n"
	    "\ttokens: [ a ]\n",
	    "D/s.yml:3: YAML syntax error: found character that cannot start "
	    "any token while scanning for the next token");
	EXPECT("listen: :8080\nlog_level: \xff\n", NULL,
	    "D/k.yml:2: YAML syntax error: invalid leading UTF-8 octet");
}

static void
test_refused_yaml_features(void **state)
{
	char	*deep;
	size_t	 depth = 100000;

	EXPECT("listen: &l :8080\nmetrics_listen: *l\n", NULL,
	    "D/k.yml:1: anchors and aliases are not supported");
	EXPECT(MAIN_OK "---\nlisten: :8080\n", SITES_OK,
	    "D/k.yml:7: only one YAML document is allowed");
	/* libyaml's scanner is quadratic in nesting depth: refuse early */
	assert_non_null(deep = malloc(2 * depth + 16));
	memcpy(deep, "limits: ", 8);
	memset(deep + 8, '[', depth);
	memset(deep + 8 + depth, ']', depth);
	memcpy(deep + 8 + 2 * depth, "\n", 2);
	EXPECT(deep, NULL,
	    "D/k.yml:1: nested deeper than any configuration key");
	free(deep);
}

static void
test_many_errors_are_capped(void **state)
{
	char	*yml;
	size_t	 len = 0;

	assert_non_null(yml = malloc(200 * 16));
	for (int i = 0; i < 200; i++)
		len += (size_t)snprintf(yml + len, 16, "k%d: 1\n", i);
	assert_null(load(yml, NULL));
	free(yml);
	assert_int_equal(errs.n, 101);
	assert_string_equal(errs.v[99] + strlen(dir), "/k.yml:100: unknown "
	    "key 'k99'");
	assert_string_equal(errs.v[100], "too many errors, stopping here");
}

#define MAIN_UPSTREAMS(m, l) \
	"access:\n" \
	"  team_domain: example.cloudflareaccess.com\n" \
	"  audiences: aud1\n" \
	"upstreams:\n" \
	"  metrics: [ " m " ]\n" \
	"  logs: [ " l " ]\n" \
	"sites_file: s.yml\n"

/* protocol: per metrics upstream, default v1 (safe with 1.0-only receivers). */
static void
test_upstream_protocol(void **state)
{
	struct config	*cfg;

	(void)state;
	cfg = load_ok(MAIN_UPSTREAMS("{ url: http://a/w }, { url: http://b/w, protocol: v2 },"
	    " { url: http://c/w, protocol: auto }, { url: http://d/w, protocol: v1 }", ""),
	    SITES_OK);
	assert_int_equal(cfg->nupstreams[SIGNAL_METRICS], 4);
	assert_int_equal(cfg->upstreams[SIGNAL_METRICS][0].protocol, RW_PROTOCOL_V1);
	assert_int_equal(cfg->upstreams[SIGNAL_METRICS][1].protocol, RW_PROTOCOL_V2);
	assert_int_equal(cfg->upstreams[SIGNAL_METRICS][2].protocol, RW_PROTOCOL_AUTO);
	assert_int_equal(cfg->upstreams[SIGNAL_METRICS][3].protocol, RW_PROTOCOL_V1);
	config_unref(cfg);
	EXPECT(MAIN_UPSTREAMS("{ url: http://a/w, protocol: V2 }", ""), SITES_OK,
	    "D/k.yml:5: protocol: 'V2' is not one of v1, v2, auto");
}

/*
 * multi_tenant upstreams: a site without tenant loads, but --check-config and
 * the log warn, since Mimir/Cortex/Loki answer its writes 401 "no org id".
 */
static void
test_multi_tenant_warning(void **state)
{
	struct config		*cfg;
	struct config_errors	 w = { 0 };
	char			 got[1024];

	(void)state;
	cfg = load_ok(MAIN_UPSTREAMS("{ url: http://a/w }, { url: http://b/w, multi_tenant: true }",
	    "{ url: http://l/p, multi_tenant: false }"),
	    "sites:\n"
	    "  t: { tokens: [ a.access ], provider: [ t ], tenant: t }\n"
	    "  n: { tokens: [ b.access ], provider: [ n ] }\n"
	    "  l: { tokens: [ c.access ], provider: [ l ], signals: [ logs ] }\n");
	assert_int_equal(cfg->upstreams[SIGNAL_METRICS][1].multi_tenant, 1);
	assert_int_equal(config_warnings(cfg, &w), 1);
	undir(w.v[0], got, sizeof(got));
	assert_string_equal(got, "warning: site n has no tenant, but metrics "
	    "upstream 2 is multi_tenant: it will refuse the site's writes (401 "
	    "\"no org id\"), answered 502 so they wait at the site; set tenant: "
	    "in D/s.yml");
	config_errors_free(&w);
	config_unref(cfg);
	EXPECT(MAIN_UPSTREAMS("{ url: http://a/w, multi_tenant: yes }", ""), SITES_OK,
	    "D/k.yml:5: multi_tenant: 'yes' is not true or false");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_example_files_every_field,
		    after_each),
		cmocka_unit_test_teardown(test_defaults, after_each),
		cmocka_unit_test_teardown(test_refcount, after_each),
		cmocka_unit_test(test_signal_name),
		cmocka_unit_test(test_size_units),
		cmocka_unit_test(test_duration_units),
		cmocka_unit_test_teardown(test_listen_forms, after_each),
		cmocka_unit_test_teardown(test_main_value_errors, after_each),
		cmocka_unit_test_teardown(test_unknown_keys, after_each),
		cmocka_unit_test_teardown(test_missing_and_duplicate_keys,
		    after_each),
		cmocka_unit_test_teardown(test_wrong_types, after_each),
		cmocka_unit_test_teardown(test_site_errors, after_each),
		cmocka_unit_test_teardown(test_rate_limit_burst, after_each),
		cmocka_unit_test_teardown(test_duplicate_identity, after_each),
		cmocka_unit_test_teardown(test_relative_sites_file, after_each),
		cmocka_unit_test_teardown(test_missing_files, after_each),
		cmocka_unit_test_teardown(test_yaml_syntax_errors, after_each),
		cmocka_unit_test_teardown(test_refused_yaml_features,
		    after_each),
		cmocka_unit_test_teardown(test_many_errors_are_capped,
		    after_each),
		cmocka_unit_test_teardown(test_upstream_protocol, after_each),
		cmocka_unit_test_teardown(test_multi_tenant_warning, after_each),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
