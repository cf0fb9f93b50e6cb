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
#include <openssl/pem.h>

#include "jose.h"
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
static EVP_PKEY *priv_cur;		/* current-private.pem */
static char *pub_pem;			/* current-public.pem, for libjwt */
static size_t pub_pem_len;


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

/* The current private key (signs tokens by hand) and public PEM (libjwt). */
static int
load_keys(void)
{
	size_t len;
	char *pem = fixture_read(TD "current-private.pem", &len);
	BIO *bio = BIO_new_mem_buf(pem, (int)len);

	priv_cur = bio != NULL ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
	BIO_free(bio);
	free(pem);
	pub_pem = fixture_read(TD "current-public.pem", &pub_pem_len);
	return priv_cur != NULL ? 0 : -1;
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
	return load_keys();
}

static int
teardown(void **state)
{
	keyset_unref(ks_both);
	keyset_unref(ks_current);
	EVP_PKEY_free(priv_cur);
	free(pub_pem);
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

/* "a.b" (malloc'd). */
static char *
join_dot(const char *a, const char *b)
{
	size_t n = strlen(a) + strlen(b) + 2;
	char *s = malloc(n);

	assert_non_null(s);
	snprintf(s, n, "%s.%s", a, b);
	return s;
}

/* "h64.p64.sig": RS256 by the current key over exactly the bytes h64.p64,
 * however they are spelled (malloc'd). */
static char *
sign_segments(const char *h64, const char *p64)
{
	char *msg = join_dot(h64, p64), *sig64, *tok;
	unsigned char sig[512];
	size_t siglen = sizeof(sig);
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();

	assert_non_null(ctx);
	assert_int_equal(EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, priv_cur), 1);
	assert_int_equal(EVP_DigestSign(ctx, sig, &siglen, (unsigned char *)msg,
	    strlen(msg)), 1);
	EVP_MD_CTX_free(ctx);
	sig64 = jose_b64url(sig, siglen);
	tok = join_dot(msg, sig64);
	free(sig64);
	free(msg);
	return tok;
}

/* A token over the canonical base64url of two JSON texts (malloc'd). */
static char *
sign_json(const char *hdr, const char *payload)
{
	char *h = jose_b64url_str(hdr), *p = jose_b64url_str(payload);
	char *t = sign_segments(h, p);

	free(h);
	free(p);
	return t;
}

/* Header JSON {"kid":<current kid>,<members>} (static buffer). */
static const char *
hdr(const char *members)
{
	static char buf[512];

	snprintf(buf, sizeof(buf), "{\"kid\":\"%s\",%s}", kid_cur, members);
	return buf;
}

#define RS256_JWT	"\"alg\":\"RS256\",\"typ\":\"JWT\""

/* Claims of a valid service token plus `extra` members (static buffer). */
static const char *
valid_claims(const char *extra)
{
	static char buf[1024];

	snprintf(buf, sizeof(buf), "%s", claims(ISS, AUD, 4102444800LL, -1, NOW,
	    extra));
	return buf;
}

/* libjwt 1.10, the tests' oracle: 1 when its jwt_decode verifies the token
 * with the current public key (it checks the signature, not the claims). */
static int
libjwt_accepts(const char *token)
{
	jwt_t *jwt = NULL;
	int r = jwt_decode(&jwt, token, (unsigned char *)pub_pem, (int)pub_pem_len);

	jwt_free(jwt);
	return r == 0;
}

/*
 * Refused with `want` before the verified-token cache was consulted: a cache
 * miss is counted just before the full verification (kid lookup, RSA), so
 * neither counter moving means no RSA work was done.
 */
static void
expect_refused_early(const char *token, const char *want)
{
	struct access *a = access_new(64);
	double h = metric("kakikomi_token_cache_hits_total");
	double m = metric("kakikomi_token_cache_misses_total");
	struct access_identity id;
	const char *reason = NULL;
	enum access_result r = access_verify(a, &conf, ks_both, token, (time_t)NOW,
	    &id, &reason);

	if (r != ACCESS_DENIED || reason == NULL || strcmp(reason, want) != 0)
		fail_msg("\"%.60s...\": got (%d, \"%s\"), expected \"%s\"", token, r,
		    reason ? reason : "(null)", want);
	if (metric("kakikomi_token_cache_hits_total") != h ||
	    metric("kakikomi_token_cache_misses_total") != m)
		fail_msg("\"%.60s...\" reached the token cache", token);
	access_free(a);
}

static const char b64url_abc[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* seg with its last character's spare bits replaced by `spare` (malloc'd). */
static char *
with_spare_bits(const char *seg, unsigned spare)
{
	char *s = strdup(seg);
	size_t n = strlen(s);
	unsigned mask = n % 4 == 2 ? 15 : 3;
	unsigned v = (unsigned)(strchr(b64url_abc, s[n - 1]) - b64url_abc);

	assert_true(n % 4 == 2 || n % 4 == 3);
	s[n - 1] = b64url_abc[(v & ~mask) | (spare & mask)];
	return s;
}

/*
 * The 16 spellings of one RS256 signature (342 characters: the last carries
 * 2 data bits and 4 spare bits).  libjwt 1.10 accepts all 16 (its decoder
 * drops spare bits), and each is a different token to a cache keyed on the
 * token's bytes: 15 cache misses and RSA verifies per signature.  kakikomi
 * accepts the one canonical spelling and refuses the others unverified.
 */
static void
test_signature_spellings(void **state)
{
	char *t = sign_json(hdr(RS256_JWT), valid_claims(SERVICE));
	char *dot = strrchr(t, '.');
	int libjwt = 0, ours = 0;

	*dot = '\0';
	for (unsigned spare = 0; spare < 16; spare++) {
		char *sig = with_spare_bits(dot + 1, spare), *tok = join_dot(t, sig);

		libjwt += libjwt_accepts(tok);
		if (spare == 0)
			expect_ok(tok, NOW, CN, "");
		else
			expect_refused_early(tok, "bad base64url");
		ours += spare == 0;
		free(tok);
		free(sig);
	}
	assert_int_equal(libjwt, 16);
	assert_int_equal(ours, 1);
	free(t);
}

enum spelling {
	SP_SPARE,	/* non-zero spare bits in the last character */
	SP_PAD,		/* '=' padding */
	SP_LEN,		/* length 4n+1 */
	SP_PLUS,	/* '-' spelled '+' (standard alphabet) */
	SP_SLASH,	/* '_' spelled '/' */
	SP_SPACE,	/* a space inside */
	SP_HIGH,	/* a byte >= 0x80 */
	SP_COUNT
};

static const char *const spelling_name[SP_COUNT] = {
	"spare bits", "'=' padding", "length 4n+1", "'+' for '-'", "'/' for '_'",
	"space", "byte 0x80+",
};

/* seg respelled (malloc'd), NULL when the spelling cannot apply to it. */
static char *
respell(const char *seg, enum spelling how)
{
	size_t n = strlen(seg);
	char *s = calloc(1, n + 8), *p;

	assert_non_null(s);
	memcpy(s, seg, n);
	switch (how) {
	case SP_SPARE:
		free(s);
		return n % 4 == 0 ? NULL : with_spare_bits(seg, 1);
	case SP_PAD:
		while (n % 4 != 0)
			s[n++] = '=';
		break;
	case SP_LEN:
		while (n % 4 != 1)
			s[n++] = 'A';
		break;
	case SP_PLUS:
	case SP_SLASH:
		if ((p = strchr(s, how == SP_PLUS ? '-' : '_')) == NULL) {
			free(s);
			return NULL;
		}
		*p = how == SP_PLUS ? '+' : '/';
		break;
	case SP_SPACE:
		memmove(s + 5, s + 4, n - 4 + 1);
		s[4] = ' ';
		break;
	default:
		s[1] = (char)0xc3;
	}
	if (strcmp(s, seg) == 0) {
		free(s);
		return NULL;
	}
	return s;
}

/* The token `t` with part `part` (0 header, 1 payload, 2 signature)
 * respelled; header and payload spellings are signed as spelled, so only the
 * spelling can refuse them.  NULL when the spelling does not apply. */
static char *
respelled_token(const char *h64, const char *p64, const char *s64, int part,
    enum spelling how)
{
	const char *seg = part == 0 ? h64 : part == 1 ? p64 : s64;
	char *v = respell(seg, how), *hp, *tok;

	if (v == NULL)
		return NULL;
	if (part == 2) {
		hp = join_dot(h64, p64);
		tok = join_dot(hp, v);
		free(hp);
	} else
		tok = sign_segments(part == 0 ? v : h64, part == 1 ? v : p64);
	free(v);
	return tok;
}

/* JSON text padded with spaces to 3n+1 bytes, so its base64url has spare
 * bits and padding; "x" holds runs whose base64url has '-' and '_'. */
static char *
spellable(const char *json)
{
	size_t n = strlen(json);
	char *s = malloc(n + 40);

	assert_non_null(s);
	snprintf(s, n + 40, "%.*s,\"x\":\"~~~~~~??????\"}", (int)(n - 1), json);
	for (n = strlen(s); n % 3 != 1; n++)
		s[n] = ' ';
	s[n] = '\0';
	return s;
}

/*
 * Every non-canonical spelling of each of the three parts is refused before
 * the cache and RSA.  libjwt 1.10.2's verdicts (observed here) are kept as
 * the oracle of what a lenient verifier takes: spare bits, '=' padding, '+'
 * and '/' (it maps '-' and '_' to those and decodes standard base64), an inner
 * space, and in header or payload even a 4n+1 length; each is one more
 * spelling of a token it has already verified, i.e. one more cache miss.
 */
static void
test_noncanonical_parts(void **state)
{
	/* libjwt_ok[part][spelling]: 1 where libjwt verifies the token */
	static const int libjwt_ok[3][SP_COUNT] = {
		{ 1, 1, 1, 1, 1, 1, 0 },	/* header */
		{ 1, 1, 1, 1, 1, 1, 0 },	/* payload */
		{ 1, 1, 0, 1, 1, 1, 0 },	/* signature: 4n+1 adds a byte */
	};
	char *hj = spellable(hdr(RS256_JWT)), *pj = spellable(valid_claims(SERVICE));
	char *t = sign_json(hj, pj), *h64 = t, *p64, *s64;

	expect_ok(t, NOW, CN, "");
	assert_true(libjwt_accepts(t));
	p64 = strchr(h64, '.');
	*p64++ = '\0';
	s64 = strchr(p64, '.');
	*s64++ = '\0';
	for (int part = 0; part < 3; part++)
		for (int how = 0; how < SP_COUNT; how++) {
			char *tok = respelled_token(h64, p64, s64, part, how);

			if (tok == NULL && part < 2)
				fail_msg("part %d: %s does not apply", part,
				    spelling_name[how]);
			if (tok == NULL)
				continue;
			expect_refused_early(tok, "bad base64url");
			if (libjwt_accepts(tok) != libjwt_ok[part][how])
				fail_msg("part %d, %s: libjwt %s it", part,
				    spelling_name[how], libjwt_ok[part][how] ?
				    "no longer accepts" : "accepts");
			free(tok);
		}
	free(t);
	free(hj);
	free(pj);
}

/* Checked before the kid: junk never triggers an unknown-kid refetch. */
static void
test_noncanonical_before_kid(void **state)
{
	char *t = sign_json("{\"alg\":\"RS256\",\"kid\":\"nope\"}",
	    valid_claims(SERVICE));
	char *dot = strrchr(t, '.'), *sig, *tok;

	expect_refused_with(ks_both, t, NOW, ACCESS_UNKNOWN_KID, "unknown kid");
	*dot = '\0';
	sig = with_spare_bits(dot + 1, 1);
	tok = join_dot(t, sig);
	expect_refused_early(tok, "bad base64url");
	free(tok);
	free(sig);
	free(t);
}

/* RFC 7515 section 4.1.11: kakikomi implements no extension, so any crit is
 * refused, whatever it holds.  libjwt 1.10 ignores crit and verifies. */
static void
test_crit(void **state)
{
	static const char *const crit[] = {
		"[\"exp\"]", "[\"b64\"]", "[]", "[\"\"]", "\"exp\"", "null", "1",
		"{}", "true", "[\"exp\",\"exp\"]",
	};
	char members[128], *t;

	for (size_t i = 0; i < sizeof(crit) / sizeof(crit[0]); i++) {
		snprintf(members, sizeof(members), RS256_JWT ",\"crit\":%s", crit[i]);
		t = sign_json(hdr(members), valid_claims(SERVICE));
		assert_true(libjwt_accepts(t));
		expect_denied(t, "crit");
		free(t);
	}
	/* with b64 false (RFC 7797) a verifier honouring it would read the
	 * payload unencoded; refused as crit whatever b64 says */
	t = sign_json(hdr(RS256_JWT ",\"b64\":false,\"crit\":[\"b64\"]"),
	    valid_claims(SERVICE));
	expect_denied(t, "crit");
	free(t);
}

/* typ absent or "JWT" in any case (RFC 7519 section 5.1); anything else,
 * including "application/jwt", is a token of another kind. */
static void
test_typ(void **state)
{
	static const char *const ok[] = {
		"\"alg\":\"RS256\"", RS256_JWT, "\"alg\":\"RS256\",\"typ\":\"jwt\"",
		"\"alg\":\"RS256\",\"typ\":\"Jwt\"",
	};
	static const char *const bad[] = {
		"\"at+jwt\"", "\"dpop+jwt\"", "\"JWS\"", "\"\"", "\"JWT \"",
		"\"application/jwt\"", "null", "1", "[\"JWT\"]", "\"\\uff2a\\uff37\\uff34\"",
	};
	char members[128], *t;

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		t = sign_json(hdr(ok[i]), valid_claims(SERVICE));
		expect_ok(t, NOW, CN, "");
		free(t);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(members, sizeof(members), "\"alg\":\"RS256\",\"typ\":%s", bad[i]);
		t = sign_json(hdr(members), valid_claims(SERVICE));
		expect_denied(t, "typ");
		free(t);
	}
}

/*
 * A member named twice, in header or payload, is refused: jansson without
 * JSON_REJECT_DUPLICATES keeps the last copy, and so libjwt 1.10 verifies
 * these tokens and reads the last value; another verifier may read the first.
 * A spelling that only case folding equates with a member kakikomi reads is
 * refused too: Go's encoding/json (golang-jwt's claims structs) matches
 * "EXP", "\u212Aid" (KELVIN SIGN) or "i\u017Fs" (LONG S) to exp, kid, iss,
 * last match winning.  Members kakikomi does not read may differ in case.
 */
static void
test_duplicate_members(void **state)
{
	static const char *const hdrs[] = {
		"\"alg\":\"RS256\",\"alg\":\"RS256\"",
		"\"alg\":\"none\",\"alg\":\"RS256\"",
		"\"alg\":\"RS256\",\"\\u0061lg\":\"RS256\"",
		"\"alg\":\"RS256\",\"kid\":\"other\"",
		"\"alg\":\"RS256\",\"typ\":\"JWT\",\"typ\":\"at+jwt\"",
		"\"alg\":\"RS256\",\"ALG\":\"none\"",
		"\"alg\":\"RS256\",\"Kid\":\"other\"",
		"\"alg\":\"RS256\",\"\\u212aid\":\"other\"",
		"\"alg\":\"RS256\",\"\xe2\x84\xaaid\":\"other\"",
		"\"alg\":\"RS256\",\"Crit\":[\"exp\"]",
		"\"alg\":\"RS256\",\"TYP\":\"at+jwt\"",
	};
	static const char *const payloads[] = {
		SERVICE ",\"exp\":1",
		SERVICE ",\"iss\":\"https://other.cloudflareaccess.com\"",
		SERVICE ",\"aud\":\"other\"",
		SERVICE ",\"common_name\":\"evil.access\"",
		SERVICE ",\"EXP\":1",
		SERVICE ",\"Iss\":\"https://other.cloudflareaccess.com\"",
		SERVICE ",\"i\\u017fs\":\"https://other.cloudflareaccess.com\"",
		SERVICE ",\"AUD\":\"other\"",
		SERVICE ",\"Common_Name\":\"evil.access\"",
		SERVICE ",\"Email\":\"mallory@example.com\"",
		SERVICE ",\"nBf\":4102444800",
	};
	char *t;

	for (size_t i = 0; i < sizeof(hdrs) / sizeof(hdrs[0]); i++) {
		t = sign_json(hdr(hdrs[i]), valid_claims(SERVICE));
		expect_denied(t, "duplicate member");
		free(t);
	}
	for (size_t i = 0; i < sizeof(payloads) / sizeof(payloads[0]); i++) {
		t = sign_json(hdr(RS256_JWT), valid_claims(payloads[i]));
		expect_denied(t, "duplicate member");
		free(t);
	}
	/* members kakikomi never reads may come in any case */
	t = sign_json(hdr(RS256_JWT ",\"X\":1,\"x\":2"),
	    valid_claims(SERVICE ",\"type\":\"app\",\"Type\":\"x\""));
	expect_ok(t, NOW, CN, "");
	free(t);
}

/* libjwt's reading of a duplicated claim: the last copy (jansson's default). */
static void
test_duplicate_libjwt_oracle(void **state)
{
	char *t = sign_json(hdr(RS256_JWT), valid_claims(SERVICE
	    ",\"common_name\":\"evil.access\""));
	jwt_t *jwt = NULL;

	assert_int_equal(jwt_decode(&jwt, t, (unsigned char *)pub_pem,
	    (int)pub_pem_len), 0);
	assert_string_equal(jwt_get_grant(jwt, "common_name"), "evil.access");
	jwt_free(jwt);
	expect_denied(t, "duplicate member");
	free(t);
}

/* EMSA-PKCS1-v1_5 encoding (RFC 8017 section 9.2) of SHA-256(msg), k bytes. */
static void
pkcs1_sha256(const char *msg, unsigned char *em, size_t k)
{
	static const unsigned char digest_info[] = { 0x30, 0x31, 0x30, 0x0d,
	    0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01,
	    0x05, 0x00, 0x04, 0x20 };
	size_t t = sizeof(digest_info) + 32;

	em[0] = 0x00;
	em[1] = 0x01;
	memset(em + 2, 0xff, k - t - 3);
	em[k - t - 1] = 0x00;
	memcpy(em + k - t, digest_info, sizeof(digest_info));
	assert_int_equal(EVP_Digest(msg, strlen(msg), em + k - 32, NULL,
	    EVP_sha256(), NULL), 1);
}

/*
 * With e = 1, s^e mod n = s: the "signature" is the padded digest itself,
 * computed from the token alone.  The forgery is real (OpenSSL and libjwt
 * verify it with that key), and kakikomi refuses it because such a key is
 * never loaded: the token names a kid that is not in the set.
 */
static void
test_forged_with_e_one(void **state)
{
	BIGNUM *n = jose_pkey_n(priv_cur), *one = BN_new();
	EVP_PKEY *weak;
	unsigned char em[256];
	char members[160], *h64, *p64, *msg, *sig64, *tok, *pem, *set;
	const char *err;
	struct keyset *ks;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	BIO *bio = BIO_new(BIO_s_mem());
	json_t *doc = json_load_file(TD "certs.json", 0, NULL);
	jwt_t *jwt = NULL;
	long pemlen;

	assert_int_equal(BN_set_word(one, 1), 1);
	weak = jose_pkey(n, one);
	snprintf(members, sizeof(members), "{\"alg\":\"RS256\",\"kid\":\"e-is-one\",\"typ\":\"JWT\"}");
	h64 = jose_b64url_str(members);
	p64 = jose_b64url_str(valid_claims(SERVICE));
	msg = join_dot(h64, p64);
	pkcs1_sha256(msg, em, sizeof(em));
	sig64 = jose_b64url(em, sizeof(em));
	tok = join_dot(msg, sig64);

	/* the attack works against a verifier that trusts its key set */
	assert_int_equal(EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, weak), 1);
	assert_int_equal(EVP_DigestVerify(ctx, em, sizeof(em), (unsigned char *)msg,
	    strlen(msg)), 1);
	assert_int_equal(PEM_write_bio_PUBKEY(bio, weak), 1);
	pemlen = BIO_get_mem_data(bio, &pem);
	assert_int_equal(jwt_decode(&jwt, tok, (unsigned char *)pem, (int)pemlen), 0);
	jwt_free(jwt);

	/* kakikomi: the e = 1 key is skipped, the good key still loads */
	json_array_insert_new(json_object_get(doc, "keys"), 0,
	    jose_jwk(n, one, "e-is-one"));
	set = json_dumps(doc, 0);
	ks = keyset_parse(set, strlen(set), &err);
	assert_non_null(ks);
	assert_int_equal(keyset_count(ks), 2);
	assert_null(keyset_key(ks, "e-is-one"));
	expect_refused_with(ks, tok, NOW, ACCESS_UNKNOWN_KID, "unknown kid");
	keyset_unref(ks);
	free(set);
	/* and a set holding only that key is no key set */
	json_array_clear(json_object_get(doc, "keys"));
	json_array_append_new(json_object_get(doc, "keys"), jose_jwk(n, one, "e-is-one"));
	set = json_dumps(doc, 0);
	assert_null(keyset_parse(set, strlen(set), &err));
	assert_string_equal(err, "e is not 65537");

	free(set);
	json_decref(doc);
	BIO_free(bio);
	EVP_MD_CTX_free(ctx);
	free(tok);
	free(sig64);
	free(msg);
	free(p64);
	free(h64);
	EVP_PKEY_free(weak);
	BN_free(one);
	BN_free(n);
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
		cmocka_unit_test(test_signature_spellings),
		cmocka_unit_test(test_noncanonical_parts),
		cmocka_unit_test(test_noncanonical_before_kid),
		cmocka_unit_test(test_crit),
		cmocka_unit_test(test_typ),
		cmocka_unit_test(test_duplicate_members),
		cmocka_unit_test(test_duplicate_libjwt_oracle),
		cmocka_unit_test(test_forged_with_e_one),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
