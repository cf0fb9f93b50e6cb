/*
 * Unit tests for access.c: Cf-Access-Jwt-Assertion verification against the
 * testdata key set, algorithm-confusion defences, claim checks and the
 * verified-token cache.  Tokens beyond the testdata ones are minted here with
 * libjwt and the testdata private keys.
 *
 * Cache hits are observed through the kakikomi_token_cache_{hits,misses}_total
 * counters (metrics_render()): a hit is by definition a verify that did not
 * reach the RSA path, and these counters are the operator-visible signal of it.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include "fixture.h"
#include <jansson.h>
#include <jwt.h>

#include "access.h"
#include "keyset.h"
#include "metrics.h"

#define TD	"../shared/testdata/access/"
#define AUD	"4714c1358e65fe4b408ad6d432a5f878f08194bdb4752441fd56faefa9b2b6f2"
#define ISS	"https://example.cloudflareaccess.com"
#define CN	"88bf3b6d86161464f6509f7219099e57.access"
#define NOW	1764001000LL	/* after the testdata tokens' iat, before the expired one's exp */
#define EXPIRED_EXP	1764003600LL
#define LEEWAY	30

static char *auds[] = { AUD };
static struct access_conf conf = {
	.team_domain = "example.cloudflareaccess.com",
	.issuer = ISS,
	.audiences = { auds, 1 },
	.leeway_s = LEEWAY,
};

static struct keyset *ks_both;		/* certs.json: current + previous */
static struct keyset *ks_current;	/* only the current key */
static char kid_cur[80], kid_prev[80];


/* A testdata file without its trailing newline. */
static char *
slurp_line(const char *path)
{
	char *s = fixture_read(path, NULL);

	s[strcspn(s, "\r\n")] = '\0';
	return s;
}

/*
 * Mints a token: header {alg, typ, kid (omitted when NULL)}, payload `claims`,
 * signed with the PEM file `keyfile` (NULL for alg none).  Caller frees.
 */
static char *
mint(jwt_alg_t alg, const char *keyfile, const char *kid, const char *claims)
{
	size_t keylen = 0;
	char *key = keyfile != NULL ? fixture_read(keyfile, &keylen) : NULL;
	jwt_t *jwt = NULL;
	char *tok;

	assert_int_equal(jwt_new(&jwt), 0);
	assert_int_equal(jwt_add_grants_json(jwt, claims), 0);
	if (kid != NULL)
		assert_int_equal(jwt_add_header(jwt, "kid", kid), 0);
	assert_int_equal(jwt_set_alg(jwt, alg, (unsigned char *)key, (int)keylen), 0);
	tok = jwt_encode_str(jwt);
	assert_non_null(tok);
	jwt_free(jwt);
	free(key);
	return tok;
}

/* Claims of a valid service token with exp/nbf/iat adjustable; -1 omits. */
static char *
claims(const char *iss, const char *aud, long long exp, long long nbf,
    long long iat, const char *extra)
{
	static char buf[1024];
	char e[32] = "", n[32] = "", i[32] = "";

	if (exp >= 0)
		snprintf(e, sizeof(e), "\"exp\":%lld,", exp);
	if (nbf >= 0)
		snprintf(n, sizeof(n), "\"nbf\":%lld,", nbf);
	if (iat >= 0)
		snprintf(i, sizeof(i), "\"iat\":%lld,", iat);
	snprintf(buf, sizeof(buf), "{%s%s%s\"iss\":\"%s\",\"aud\":[\"%s\"],%s}",
	    e, n, i, iss, aud, extra);
	return buf;
}

#define SERVICE	"\"common_name\":\"" CN "\",\"sub\":\"\""

static char *
mint_valid(long long exp)
{
	return mint(JWT_ALG_RS256, TD "current-private.pem", kid_cur,
	    claims(ISS, AUD, exp, -1, NOW - 10, SERVICE));
}

static int
setup(void **state)
{
	size_t len;
	const char *err;
	char *json = fixture_read(TD "certs.json", &len), *cur;
	json_t *doc;

	metrics_init();
	ks_both = keyset_parse(json, len, &err);
	doc = json_loadb(json, len, 0, NULL);
	json_array_remove(json_object_get(doc, "keys"), 1);
	cur = json_dumps(doc, 0);
	ks_current = keyset_parse(cur, strlen(cur), &err);
	free(cur);
	json_decref(doc);
	free(json);
	if (ks_both == NULL || ks_current == NULL || keyset_count(ks_current) != 1)
		return -1;
	cur = slurp_line(TD "current.kid");
	snprintf(kid_cur, sizeof(kid_cur), "%s", cur);
	free(cur);
	cur = slurp_line(TD "previous.kid");
	snprintf(kid_prev, sizeof(kid_prev), "%s", cur);
	free(cur);
	return 0;
}

static int
teardown(void **state)
{
	keyset_unref(ks_both);
	keyset_unref(ks_current);
	return 0;
}

/* Verifies with a fresh, cache-less verifier unless `a` is given. */
static enum access_result
verify_at(struct access *a, struct keyset *ks, const char *token, long long now,
    struct access_identity *id, const char **reason)
{
	struct access *own = a != NULL ? NULL : access_new(0);
	enum access_result r;

	r = access_verify(a != NULL ? a : own, &conf, ks, token, (time_t)now, id,
	    reason);
	access_free(own);
	return r;
}

static void
expect_ok(const char *token, long long now, const char *cn, const char *email)
{
	struct access_identity id;
	const char *reason = NULL;
	enum access_result r = verify_at(NULL, ks_both, token, now, &id, &reason);

	if (r != ACCESS_OK)
		fail_msg("refused (%d, \"%s\"), expected accepted", r,
		    reason ? reason : "(null)");
	assert_null(reason);
	assert_string_equal(id.common_name, cn);
	assert_string_equal(id.email, email);
}

static void
expect_refused_with(struct keyset *ks, const char *token, long long now,
    enum access_result want, const char *want_reason)
{
	struct access_identity id;
	const char *reason = NULL;
	enum access_result r = verify_at(NULL, ks, token, now, &id, &reason);

	if (r != want || reason == NULL || strcmp(reason, want_reason) != 0)
		fail_msg("got (%d, \"%s\"), expected (%d, \"%s\")", r,
		    reason ? reason : "(null)", want, want_reason);
}

static void
expect_denied(const char *token, const char *want_reason)
{
	expect_refused_with(ks_both, token, NOW, ACCESS_DENIED, want_reason);
}

/* The value of an unlabelled counter, or of `name{labels}`, in /metrics. */
static double
metric(const char *series)
{
	size_t n = strlen(series), len;
	char *text = metrics_render(&len), *p;
	double v = 0;

	assert_non_null(text);
	for (p = text; p != NULL; p = strchr(p, '\n')) {
		if (*p == '\n')
			p++;
		if (strncmp(p, series, n) == 0 && p[n] == ' ') {
			v = strtod(p + n + 1, NULL);
			break;
		}
	}
	free(text);
	return v;
}

static void
test_testdata_tokens_accepted(void **state)
{
	char *t;

	t = slurp_line(TD "service-token-aud-array.jwt");
	expect_ok(t, NOW, CN, "");
	free(t);
	t = slurp_line(TD "service-token-aud-string.jwt");
	expect_ok(t, NOW, CN, "");
	free(t);
	t = slurp_line(TD "person.jwt");
	expect_ok(t, NOW, "", "alice@example.com");
	free(t);
}

static void
test_identity_fields(void **state)
{
	char *t = slurp_line(TD "service-token-aud-array.jwt");
	struct access_identity id;
	const char *reason;

	assert_int_equal(verify_at(NULL, ks_both, t, NOW, &id, &reason), ACCESS_OK);
	assert_string_equal(id.kid, kid_cur);
	assert_int_equal((long long)id.exp, 4102444800LL);
	free(t);
}

static void
test_previous_key(void **state)
{
	char *t = slurp_line(TD "service-token-previous-key.jwt");

	expect_ok(t, NOW, CN, "");
	/* after rotation drops the previous key, its tokens name an unknown kid */
	expect_refused_with(ks_current, t, NOW, ACCESS_UNKNOWN_KID, "unknown kid");
	free(t);
}

static void
test_no_token_no_keys(void **state)
{
	char *t = slurp_line(TD "person.jwt");

	expect_refused_with(ks_both, NULL, NOW, ACCESS_NO_TOKEN, "no token");
	expect_refused_with(NULL, t, NOW, ACCESS_NO_KEYS, "no key set");
	assert_int_equal(access_status(ACCESS_OK), 0);
	assert_int_equal(access_status(ACCESS_NO_TOKEN), 401);
	assert_int_equal(access_status(ACCESS_DENIED), 403);
	assert_int_equal(access_status(ACCESS_UNKNOWN_KID), 403);
	assert_int_equal(access_status(ACCESS_NO_KEYS), 503);
	free(t);
}

static void
test_malformed(void **state)
{
	char *t = slurp_line(TD "person.jwt"), *dot;

	expect_denied("", "malformed");
	expect_denied("garbage", "malformed");
	expect_denied("a.b", "malformed");
	expect_denied("a.b.c.d", "malformed");
	expect_denied("..", "malformed");
	expect_denied("!!!.e30.sig", "bad base64url");
	/* the header is valid base64url but not a JSON object */
	expect_denied("WzFd.e30.c2ln", "malformed");
	/* a valid token cut after its payload: two segments */
	dot = strrchr(t, '.');
	*dot = '\0';
	expect_denied(t, "malformed");
	free(t);
}

static void
test_too_large(void **state)
{
	char *big = malloc(9 * 1024 + 1);
	char *t = slurp_line(TD "person.jwt");
	size_t n = strlen(t);

	/* a valid token followed by padding, so only the size can refuse it */
	memset(big, 'A', 9 * 1024);
	memcpy(big, t, n);
	big[9 * 1024] = '\0';
	expect_denied(big, "too large");
	big[ACCESS_MAX_TOKEN + 1] = '\0';
	expect_denied(big, "too large");
	/* exactly at the bound it is read, and its padded signature fails */
	big[ACCESS_MAX_TOKEN] = '\0';
	expect_denied(big, "bad signature");
	free(big);
	free(t);
}

static void
test_alg_none(void **state)
{
	char *t = mint(JWT_ALG_NONE, NULL, kid_cur, claims(ISS, AUD, 4102444800LL,
	    -1, NOW, SERVICE));
	char *rs = mint_valid(4102444800LL), *withsig, *sig;
	size_t n = strlen(t);

	assert_int_equal(t[n - 1], '.');
	expect_denied(t, "alg");
	/* alg none carrying a real RS256 signature */
	sig = strrchr(rs, '.') + 1;
	withsig = malloc(n + strlen(sig) + 1);
	memcpy(withsig, t, n);
	memcpy(withsig + n, sig, strlen(sig) + 1);
	expect_denied(withsig, "alg");
	free(withsig);
	free(rs);
	free(t);
}

static void
test_hs256_with_public_pem(void **state)
{
	size_t pemlen;
	char *pem = fixture_read(TD "current-public.pem", &pemlen);
	char *t = mint(JWT_ALG_HS256, TD "current-public.pem", kid_cur,
	    claims(ISS, AUD, 4102444800LL, -1, NOW, SERVICE));
	jwt_t *jwt = NULL;

	/* the attack is real: libjwt alone accepts this forgery */
	assert_int_equal(jwt_decode(&jwt, t, (unsigned char *)pem, (int)pemlen), 0);
	jwt_free(jwt);
	expect_denied(t, "alg");
	free(t);
	free(pem);
}

static void
test_other_rsa_algs(void **state)
{
	jwt_alg_t algs[] = { JWT_ALG_RS384, JWT_ALG_RS512 };

	for (size_t i = 0; i < 2; i++) {
		char *t = mint(algs[i], TD "current-private.pem", kid_cur,
		    claims(ISS, AUD, 4102444800LL, -1, NOW, SERVICE));

		expect_denied(t, "alg");
		free(t);
	}
}

static void
test_kid(void **state)
{
	char *c = claims(ISS, AUD, 4102444800LL, -1, NOW, SERVICE);
	char *nokid = mint(JWT_ALG_RS256, TD "current-private.pem", NULL, c);
	char *unknown = mint(JWT_ALG_RS256, TD "current-private.pem", "0123abcd", c);
	char *other = mint(JWT_ALG_RS256, TD "previous-private.pem", kid_cur, c);

	expect_denied(nokid, "malformed");
	expect_refused_with(ks_both, unknown, NOW, ACCESS_UNKNOWN_KID, "unknown kid");
	expect_denied(other, "bad signature");
	free(nokid);
	free(unknown);
	free(other);
}

static void
test_tampered_payload(void **state)
{
	char *t = mint_valid(4102444800LL);
	char *p1 = strchr(t, '.') + 1, *p2 = strchr(p1, '.');
	/* {"common_name":"evil.access","exp":4102444800,...} re-encoded */
	const char *forged = claims(ISS, AUD, 4102444800LL, -1, NOW,
	    "\"common_name\":\"evil.access\"");
	char *f = mint(JWT_ALG_RS256, TD "previous-private.pem", kid_cur, forged);
	char *fp1 = strchr(f, '.') + 1, *fp2 = strchr(fp1, '.');
	char *out = malloc(strlen(t) + strlen(f) + 1);
	size_t n = 0;

	memcpy(out, t, (size_t)(p1 - t));
	n = (size_t)(p1 - t);
	memcpy(out + n, fp1, (size_t)(fp2 - fp1));
	n += (size_t)(fp2 - fp1);
	memcpy(out + n, p2, strlen(p2) + 1);
	expect_denied(out, "bad signature");
	/* and a single flipped payload character */
	p1[3] ^= 1;
	expect_denied(t, "bad signature");
	free(out);
	free(f);
	free(t);
}

static void
test_expiry(void **state)
{
	char *t = slurp_line(TD "service-token-expired.jwt");
	char *noexp = mint(JWT_ALG_RS256, TD "current-private.pem", kid_cur,
	    claims(ISS, AUD, -1, -1, NOW, SERVICE));

	expect_refused_with(ks_both, t, EXPIRED_EXP + LEEWAY + 1, ACCESS_DENIED,
	    "expired");
	expect_refused_with(ks_both, t, NOW + 86400, ACCESS_DENIED, "expired");
	/* within leeway */
	expect_ok(t, EXPIRED_EXP, CN, "");
	expect_ok(t, EXPIRED_EXP + LEEWAY, CN, "");
	/* exp is required */
	expect_denied(noexp, "malformed");
	free(noexp);
	free(t);
}

static void
test_not_yet_valid(void **state)
{
	char *nbf = mint(JWT_ALG_RS256, TD "current-private.pem", kid_cur,
	    claims(ISS, AUD, 4102444800LL, NOW + LEEWAY + 1, NOW, SERVICE));
	char *iat = mint(JWT_ALG_RS256, TD "current-private.pem", kid_cur,
	    claims(ISS, AUD, 4102444800LL, -1, NOW + 3600, SERVICE));
	char *nbf_leeway = mint(JWT_ALG_RS256, TD "current-private.pem", kid_cur,
	    claims(ISS, AUD, 4102444800LL, NOW + LEEWAY, NOW, SERVICE));
	char *nbf_str = mint(JWT_ALG_RS256, TD "current-private.pem", kid_cur,
	    claims(ISS, AUD, 4102444800LL, -1, -1, SERVICE ",\"nbf\":\"soon\""));

	expect_denied(nbf, "not yet valid");
	expect_denied(iat, "not yet valid");
	expect_ok(nbf_leeway, NOW, CN, "");
	expect_denied(nbf_str, "malformed");
	free(nbf);
	free(iat);
	free(nbf_leeway);
	free(nbf_str);
}

static void
test_issuer_audience_identity(void **state)
{
	const char *k = TD "current-private.pem";
	char *iss = mint(JWT_ALG_RS256, k, kid_cur, claims(
	    "https://other.cloudflareaccess.com", AUD, 4102444800LL, -1, NOW, SERVICE));
	char *aud = mint(JWT_ALG_RS256, k, kid_cur, claims(ISS,
	    "0000c1358e65fe4b408ad6d432a5f878f08194bdb4752441fd56faefa9b2b6f2",
	    4102444800LL, -1, NOW, SERVICE));
	char *noid = mint(JWT_ALG_RS256, k, kid_cur, claims(ISS, AUD, 4102444800LL,
	    -1, NOW, "\"sub\":\"\",\"common_name\":\"\""));
	char *noaud = mint(JWT_ALG_RS256, k, kid_cur,
	    "{\"iss\":\"" ISS "\",\"exp\":4102444800," SERVICE "}");

	expect_denied(iss, "issuer");
	expect_denied(aud, "audience");
	expect_denied(noaud, "audience");
	expect_denied(noid, "no identity");
	free(iss);
	free(aud);
	free(noid);
	free(noaud);
}

static void
test_failure_metric(void **state)
{
	double before = metric("kakikomi_auth_failures_total{reason=\"issuer\"}");
	char *t = mint(JWT_ALG_RS256, TD "current-private.pem", kid_cur, claims(
	    "https://other.cloudflareaccess.com", AUD, 4102444800LL, -1, NOW, SERVICE));

	expect_denied(t, "issuer");
	assert_true(metric("kakikomi_auth_failures_total{reason=\"issuer\"}") ==
	    before + 1);
	free(t);
}

/* One verify through `a`; returns what it cost: 'h' hit, 'm' miss. */
static char
cached_verify(struct access *a, const struct access_conf *c, struct keyset *ks,
    const char *t, long long now, enum access_result *r, const char **reason,
    struct access_identity *id)
{
	double h = metric("kakikomi_token_cache_hits_total");
	double m = metric("kakikomi_token_cache_misses_total");

	*r = access_verify(a, c, ks, t, (time_t)now, id, reason);
	if (metric("kakikomi_token_cache_hits_total") == h + 1 &&
	    metric("kakikomi_token_cache_misses_total") == m)
		return 'h';
	if (metric("kakikomi_token_cache_misses_total") == m + 1 &&
	    metric("kakikomi_token_cache_hits_total") == h)
		return 'm';
	fail_msg("cache counters moved by neither exactly one hit nor one miss");
	return '?';
}

static void
test_cache_hit(void **state)
{
	struct access *a = access_new(64);
	char *t = slurp_line(TD "person.jwt");
	struct access_identity id;
	enum access_result r;
	const char *reason;

	assert_int_equal(cached_verify(a, &conf, ks_both, t, NOW, &r, &reason, &id), 'm');
	assert_int_equal(r, ACCESS_OK);
	memset(&id, 0, sizeof(id));
	assert_int_equal(cached_verify(a, &conf, ks_both, t, NOW, &r, &reason, &id), 'h');
	assert_int_equal(r, ACCESS_OK);
	assert_null(reason);
	assert_string_equal(id.email, "alice@example.com");
	assert_string_equal(id.kid, kid_cur);
	/* a refused token is never cached */
	t[strlen(t) - 2] ^= 1;
	assert_int_equal(cached_verify(a, &conf, ks_both, t, NOW, &r, &reason, &id), 'm');
	assert_int_equal(cached_verify(a, &conf, ks_both, t, NOW, &r, &reason, &id), 'm');
	assert_int_equal(r, ACCESS_DENIED);
	access_free(a);
	free(t);
}

static void
test_cache_expires_at_exp(void **state)
{
	struct access *a = access_new(64);
	char *t = mint_valid(NOW + 60);
	struct access_identity id;
	enum access_result r;
	const char *reason;

	assert_int_equal(cached_verify(a, &conf, ks_both, t, NOW, &r, &reason, &id), 'm');
	assert_int_equal(r, ACCESS_OK);
	assert_int_equal(cached_verify(a, &conf, ks_both, t, NOW + 60 + LEEWAY, &r,
	    &reason, &id), 'h');
	assert_int_equal(r, ACCESS_OK);
	assert_int_equal(cached_verify(a, &conf, ks_both, t, NOW + 60 + LEEWAY + 1,
	    &r, &reason, &id), 'm');
	assert_int_equal(r, ACCESS_DENIED);
	assert_string_equal(reason, "expired");
	access_free(a);
	free(t);
}

static void
test_cache_follows_keys_and_conf(void **state)
{
	static char *other_auds[] = { "another-application" };
	struct access_conf other = conf;
	struct access *a = access_new(64);
	char *t = slurp_line(TD "service-token-previous-key.jwt");
	struct access_identity id;
	enum access_result r;
	const char *reason;

	other.audiences.v = other_auds;
	assert_int_equal(cached_verify(a, &conf, ks_both, t, NOW, &r, &reason, &id), 'm');
	assert_int_equal(r, ACCESS_OK);
	/* the previous key left the set: the cached verdict must not survive */
	assert_int_equal(cached_verify(a, &conf, ks_current, t, NOW, &r, &reason, &id), 'm');
	assert_int_equal(r, ACCESS_UNKNOWN_KID);
	/* a reload to another audience must not reuse it either */
	assert_int_equal(cached_verify(a, &other, ks_both, t, NOW, &r, &reason, &id), 'm');
	assert_int_equal(r, ACCESS_DENIED);
	assert_string_equal(reason, "audience");
	/* the original pair still hits */
	assert_int_equal(cached_verify(a, &conf, ks_both, t, NOW, &r, &reason, &id), 'h');
	assert_int_equal(r, ACCESS_OK);
	access_free(a);
	free(t);
}

static void
test_cache_bounded(void **state)
{
	/* one set of four ways: the fifth token evicts the one closest to expiry */
	struct access *a = access_new(4);
	struct access_identity id;
	enum access_result r;
	const char *reason;
	char *t[5];

	for (int i = 0; i < 5; i++) {
		t[i] = mint_valid(i == 2 ? NOW + 100 : NOW + 1000 + i);
		assert_int_equal(cached_verify(a, &conf, ks_both, t[i], NOW, &r,
		    &reason, &id), 'm');
		assert_int_equal(r, ACCESS_OK);
	}
	for (int i = 0; i < 5; i++) {
		assert_int_equal(cached_verify(a, &conf, ks_both, t[i], NOW, &r,
		    &reason, &id), i == 2 ? 'm' : 'h');
		assert_int_equal(r, ACCESS_OK);
	}
	for (int i = 0; i < 5; i++)
		free(t[i]);
	access_free(a);
}

struct worker {
	struct access	*a;
	char		**tokens;
	int		 failures;
};

static void *
worker_run(void *arg)
{
	struct worker *w = arg;
	struct access_identity id;
	const char *reason;

	for (int i = 0; i < 500; i++)
		if (access_verify(w->a, &conf, ks_both, w->tokens[i % 2], NOW, &id,
		    &reason) != ACCESS_OK ||
		    strcmp(i % 2 ? id.common_name : id.email,
		    i % 2 ? CN : "alice@example.com") != 0)
			w->failures++;
	return NULL;
}

static void
test_threads(void **state)
{
	struct access *a = access_new(8);
	char *tokens[2] = { slurp_line(TD "person.jwt"),
	    slurp_line(TD "service-token-aud-string.jwt") };
	struct worker w[4];
	pthread_t th[4];

	for (int i = 0; i < 4; i++) {
		w[i] = (struct worker){ .a = a, .tokens = tokens };
		assert_int_equal(pthread_create(&th[i], NULL, worker_run, &w[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(w[i].failures, 0);
	}
	free(tokens[0]);
	free(tokens[1]);
	access_free(a);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_testdata_tokens_accepted),
		cmocka_unit_test(test_identity_fields),
		cmocka_unit_test(test_previous_key),
		cmocka_unit_test(test_no_token_no_keys),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_too_large),
		cmocka_unit_test(test_alg_none),
		cmocka_unit_test(test_hs256_with_public_pem),
		cmocka_unit_test(test_other_rsa_algs),
		cmocka_unit_test(test_kid),
		cmocka_unit_test(test_tampered_payload),
		cmocka_unit_test(test_expiry),
		cmocka_unit_test(test_not_yet_valid),
		cmocka_unit_test(test_issuer_audience_identity),
		cmocka_unit_test(test_failure_metric),
		cmocka_unit_test(test_cache_hit),
		cmocka_unit_test(test_cache_expires_at_exp),
		cmocka_unit_test(test_cache_follows_keys_and_conf),
		cmocka_unit_test(test_cache_bounded),
		cmocka_unit_test(test_threads),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
