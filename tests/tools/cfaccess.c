/*
 * cfaccess: a local stand-in for Cloudflare Access, for tests, the demo and
 * the benchmark.  See tests/tools/cfaccess.md.
 *
 *   cfaccess mint   prints one signed Access JWT (service token or person),
 *                   with edits to build every malformed variant.
 *   cfaccess jwks   prints a key set in the shape of /cdn-cgi/access/certs.
 *   cfaccess serve  the Access edge + cloudflared: key set over HTTPS,
 *                   service-token check and JWT injection in front of an
 *                   upstream, key rotation on an admin listener.
 *   cfaccess echo   an upstream that answers 200 with the request it got.
 *
 * Tokens are signed by hand with OpenSSL, not with libjwt: libjwt 1.10
 * writes the header's "alg" and "typ" from the key it signs with, so it
 * cannot build a token whose header disagrees with its signature (RS256
 * header over an RS384 signature, HS256 keyed with the public PEM, a
 * missing "typ"), which is exactly what the gateway's tests need.
 *
 * Test tool: start-up errors exit 1 (usage 2); nothing a peer sends does.
 */
#include <sys/queue.h>
#include <sys/socket.h>
#include <netinet/in.h>

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <jansson.h>

#define DEFAULT_TEAM	"example.cloudflareaccess.com"
#define DEFAULT_AUD	"4714c1358e65fe4b408ad6d432a5f878f08194bdb4752441fd56faefa9b2b6f2"
#define DEFAULT_CN	"88bf3b6d86161464f6509f7219099e57.access"
#define DEFAULT_TTL	3600L
#define KID_LEN		64		/* hex of a SHA-256 */
#define MAX_EDITS	64		/* --set/--unset/--header-* per mint */
#define MAX_KEYS	16		/* --key per command line */
#define MAX_BODY	(64 * 1024 * 1024)	/* both directions */
#define MAX_BASIC_AUTH	1024		/* base64 of "id:secret" */
#define POOL_SIZE	8		/* keep-alive connections upstream */
#define UPSTREAM_TIMEOUT_S	60
#define CLIENT_TIMEOUT_S	60
#define TRICKLE_MS	2000		/* one key set byte per tick in trickle mode */
#define RSA_BITS	2048
#define CERT_DAYS	3650

/* ---------------------------------------------------------------- util */

static void __attribute__((format(printf, 1, 2), noreturn))
die(const char *fmt, ...)
{
	va_list ap;

	fputs("cfaccess: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static void __attribute__((noreturn))
die_ssl(const char *what)
{
	unsigned long e = ERR_get_error();

	die("%s: %s", what, e ? ERR_error_string(e, NULL) : "failed");
}

static void *
xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (p == NULL)
		die("out of memory");
	return p;
}

static char *
xstrdup(const char *s)
{
	char *p = strdup(s);

	if (p == NULL)
		die("out of memory");
	return p;
}

static double
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Base64url without padding, as JWTs and JWKs use it. */
static char *
b64url(const unsigned char *in, size_t len)
{
	size_t cap = 4 * ((len + 2) / 3) + 1, i, n;
	char *out;

	if (len > INT_MAX / 2)
		die("b64url: input too large");
	out = xmalloc(cap);
	EVP_EncodeBlock((unsigned char *)out, in, (int)len);
	for (i = 0, n = strlen(out); i < n; i++) {
		if (out[i] == '+')
			out[i] = '-';
		else if (out[i] == '/')
			out[i] = '_';
	}
	while (n > 0 && out[n - 1] == '=')
		out[--n] = '\0';
	return out;
}

static void
hex(const unsigned char *in, size_t len, char *out)
{
	static const char digits[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < len; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * len] = '\0';
}

/* ---------------------------------------------------------------- keys */

struct key {
	EVP_PKEY	*pkey;
	char		 kid[KID_LEN + 1];
	char		*cert;		/* self-signed PEM, made once */
	char		*pub_pem;	/* PUBLIC KEY PEM: the HS* confusion secret */
	struct key	*next;
};

static char *
bio_to_string(BIO *bio)
{
	char *data, *s;
	long n = BIO_get_mem_data(bio, &data);

	if (n < 0)
		die("BIO_get_mem_data failed");
	s = xmalloc((size_t)n + 1);
	memcpy(s, data, (size_t)n);
	s[n] = '\0';
	BIO_free(bio);
	return s;
}

static void
key_kid_from_der(struct key *k)
{
	unsigned char *der = NULL, md[32];
	int len = i2d_PUBKEY(k->pkey, &der);

	if (len <= 0)
		die_ssl("i2d_PUBKEY");
	SHA256(der, (size_t)len, md);
	OPENSSL_free(der);
	hex(md, sizeof(md), k->kid);
}

/* PRIV.pem -> PRIV.kid, or NAME-private.pem -> NAME.kid (the testdata). */
static int
key_kid_from_file(struct key *k, const char *pem_path)
{
	static const char *suffixes[] = { ".pem", "-private.pem" };
	char path[PATH_MAX], buf[KID_LEN + 4];
	size_t plen = strlen(pem_path), i, n;
	FILE *f;

	for (i = 0; i < 2; i++) {
		size_t slen = strlen(suffixes[i]);

		if (plen < slen || strcmp(pem_path + plen - slen, suffixes[i]))
			continue;
		if (snprintf(path, sizeof(path), "%.*s.kid",
		    (int)(plen - slen), pem_path) >= (int)sizeof(path))
			continue;
		if ((f = fopen(path, "r")) == NULL)
			continue;
		n = fread(buf, 1, sizeof(buf) - 1, f);
		fclose(f);
		buf[n] = '\0';
		buf[strcspn(buf, " \t\r\n")] = '\0';
		if (strlen(buf) != KID_LEN)
			die("%s: kid is not %d characters", path, KID_LEN);
		memcpy(k->kid, buf, KID_LEN + 1);
		return 0;
	}
	return -1;
}

static char *
key_self_signed_cert(EVP_PKEY *pkey)
{
	X509 *x = X509_new();
	X509_NAME *name;
	BIO *bio;

	if (x == NULL || !X509_set_version(x, 2) ||
	    !ASN1_INTEGER_set(X509_get_serialNumber(x),
	    (long)(random() & 0x7fffffff)) ||
	    !X509_gmtime_adj(X509_getm_notBefore(x), 0) ||
	    !X509_gmtime_adj(X509_getm_notAfter(x), 86400L * CERT_DAYS) ||
	    !X509_set_pubkey(x, pkey))
		die_ssl("X509 certificate");
	name = X509_get_subject_name(x);
	if (!X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
	    (const unsigned char *)"cfaccess test signing key", -1, -1, 0) ||
	    !X509_set_issuer_name(x, name) || !X509_sign(x, pkey, EVP_sha256()))
		die_ssl("X509_sign");
	if ((bio = BIO_new(BIO_s_mem())) == NULL || !PEM_write_bio_X509(bio, x))
		die_ssl("PEM_write_bio_X509");
	X509_free(x);
	return bio_to_string(bio);
}

static struct key *
key_wrap(EVP_PKEY *pkey, const char *pem_path)
{
	struct key *k = xmalloc(sizeof(*k));
	BIO *bio;

	if (!EVP_PKEY_is_a(pkey, "RSA"))
		die("%s: not an RSA key", pem_path ? pem_path : "key");
	k->pkey = pkey;
	k->next = NULL;
	if (pem_path == NULL || key_kid_from_file(k, pem_path) == -1)
		key_kid_from_der(k);
	k->cert = key_self_signed_cert(pkey);
	if ((bio = BIO_new(BIO_s_mem())) == NULL ||
	    !PEM_write_bio_PUBKEY(bio, pkey))
		die_ssl("PEM_write_bio_PUBKEY");
	k->pub_pem = bio_to_string(bio);
	return k;
}

static struct key *
key_load(const char *path)
{
	EVP_PKEY *pkey;
	FILE *f;

	if ((f = fopen(path, "r")) == NULL)
		die("%s: %s", path, strerror(errno));
	pkey = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	if (pkey == NULL)
		die_ssl(path);
	return key_wrap(pkey, path);
}

static struct key *
key_generate(void)
{
	EVP_PKEY *pkey = EVP_RSA_gen(RSA_BITS);

	if (pkey == NULL)
		die_ssl("EVP_RSA_gen");
	return key_wrap(pkey, NULL);
}

static void
key_free(struct key *k)
{
	EVP_PKEY_free(k->pkey);
	free(k->cert);
	free(k->pub_pem);
	free(k);
}

static void
keys_free(struct key *k)
{
	struct key *next;

	for (; k != NULL; k = next) {
		next = k->next;
		key_free(k);
	}
}

/* Loads the --key files in order: the first is the signing key. */
static struct key *
keys_load(char **paths, int n)
{
	struct key *head = NULL, **tail = &head;
	int i;

	for (i = 0; i < n; i++) {
		*tail = key_load(paths[i]);
		tail = &(*tail)->next;
	}
	return head;
}

static json_t *
key_bn(const struct key *k, const char *param)
{
	BIGNUM *bn = NULL;
	unsigned char *buf;
	char *s;
	json_t *v;
	int len;

	if (!EVP_PKEY_get_bn_param(k->pkey, param, &bn))
		die_ssl("EVP_PKEY_get_bn_param");
	len = BN_num_bytes(bn);
	buf = xmalloc((size_t)len);
	BN_bn2bin(bn, buf);
	s = b64url(buf, (size_t)len);
	v = json_string(s);
	free(s);
	free(buf);
	BN_free(bn);
	return v;
}

static json_t *
key_cert_json(const struct key *k)
{
	return json_pack("{s:s, s:s}", "kid", k->kid, "cert", k->cert);
}

/* Cloudflare's /cdn-cgi/access/certs shape; public_cert is the newest. */
static char *
keyset_dump(const struct key *keys)
{
	json_t *set = json_object(), *jwks = json_array(), *certs = json_array();
	const struct key *k;
	char *s;

	for (k = keys; k != NULL; k = k->next) {
		json_array_append_new(jwks, json_pack("{s:s, s:s, s:s, s:s, s:o, s:o}",
		    "kid", k->kid, "kty", "RSA", "alg", "RS256", "use", "sig",
		    "e", key_bn(k, OSSL_PKEY_PARAM_RSA_E),
		    "n", key_bn(k, OSSL_PKEY_PARAM_RSA_N)));
		json_array_append_new(certs, key_cert_json(k));
	}
	json_object_set_new(set, "keys", jwks);
	if (keys != NULL)
		json_object_set_new(set, "public_cert", key_cert_json(keys));
	json_object_set_new(set, "public_certs", certs);
	if ((s = json_dumps(set, JSON_INDENT(2))) == NULL)
		die("json_dumps failed");
	json_decref(set);
	return s;
}

/* ---------------------------------------------------------------- tokens */

struct claims {
	const char	*team;
	const char	*aud;
	const char	*common_name;	/* service token, unless email is set */
	const char	*email;
	long		 ttl;
};

enum edit_op { EDIT_SET, EDIT_UNSET, EDIT_HSET, EDIT_HUNSET };

struct edit {
	enum edit_op	 op;
	const char	*spec;		/* "name=json" or "name" */
};

static void
random_alnum(char *out, size_t n)
{
	static const char set[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
	unsigned char r[64];
	size_t i;

	if (n > sizeof(r) || RAND_bytes(r, (int)n) != 1)
		die("RAND_bytes failed");
	for (i = 0; i < n; i++)
		out[i] = set[r[i] % (sizeof(set) - 1)];
	out[n] = '\0';
}

static void
random_uuid(char out[37])
{
	unsigned char r[16];
	char h[33];

	if (RAND_bytes(r, sizeof(r)) != 1)
		die("RAND_bytes failed");
	r[6] = (r[6] & 0x0f) | 0x40;
	r[8] = (r[8] & 0x3f) | 0x80;
	hex(r, sizeof(r), h);
	snprintf(out, 37, "%.8s-%.4s-%.4s-%.4s-%.12s", h, h + 8, h + 12,
	    h + 16, h + 20);
}

/* The claims Cloudflare documents, in Cloudflare's order. */
static json_t *
claims_json(const struct claims *c, time_t now)
{
	char iss[512], nonce[17], uuid[37];

	snprintf(iss, sizeof(iss), "https://%s", c->team);
	if (c->email == NULL)
		return json_pack("{s:s, s:[s], s:I, s:s, s:s, s:I, s:s}",
		    "type", "app", "aud", c->aud, "exp", (json_int_t)(now + c->ttl),
		    "iss", iss, "common_name", c->common_name,
		    "iat", (json_int_t)now, "sub", "");
	random_alnum(nonce, 16);
	random_uuid(uuid);
	return json_pack("{s:[s], s:s, s:I, s:I, s:I, s:s, s:s, s:s, s:s, s:s}",
	    "aud", c->aud, "email", c->email, "exp", (json_int_t)(now + c->ttl),
	    "iat", (json_int_t)now, "nbf", (json_int_t)now, "iss", iss,
	    "type", "app", "identity_nonce", nonce, "sub", uuid,
	    "country", "JP");
}

/* Applies one --set/--unset/--header-set/--header-unset; -1 if malformed. */
static int
edit_apply(const struct edit *e, json_t *header, json_t *payload)
{
	json_t *obj = (e->op == EDIT_HSET || e->op == EDIT_HUNSET) ?
	    header : payload;
	const char *eq = strchr(e->spec, '=');
	char name[256];
	json_t *v;

	if (e->op == EDIT_UNSET || e->op == EDIT_HUNSET) {
		json_object_del(obj, e->spec);
		return 0;
	}
	if (eq == NULL || eq == e->spec ||
	    (size_t)(eq - e->spec) >= sizeof(name))
		return -1;
	snprintf(name, sizeof(name), "%.*s", (int)(eq - e->spec), e->spec);
	if ((v = json_loads(eq + 1, JSON_DECODE_ANY, NULL)) == NULL)
		return -1;
	json_object_set_new(obj, name, v);
	return 0;
}

static unsigned char *
sign_rsa(EVP_PKEY *pkey, const EVP_MD *md, const char *msg, size_t *siglen)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned char *sig;

	if (ctx == NULL || EVP_DigestSignInit(ctx, NULL, md, NULL, pkey) != 1 ||
	    EVP_DigestSign(ctx, NULL, siglen, (const unsigned char *)msg,
	    strlen(msg)) != 1)
		die_ssl("EVP_DigestSign");
	sig = xmalloc(*siglen);
	if (EVP_DigestSign(ctx, sig, siglen, (const unsigned char *)msg,
	    strlen(msg)) != 1)
		die_ssl("EVP_DigestSign");
	EVP_MD_CTX_free(ctx);
	return sig;
}

static unsigned char *
sign_hmac(const char *secret, const EVP_MD *md, const char *msg,
    size_t *siglen)
{
	unsigned char *sig = xmalloc(EVP_MAX_MD_SIZE);
	unsigned int n;

	if (HMAC(md, secret, (int)strlen(secret), (const unsigned char *)msg,
	    strlen(msg), sig, &n) == NULL)
		die_ssl("HMAC");
	*siglen = n;
	return sig;
}

/* "header.payload" -> signature bytes for alg; NULL if alg is unknown. */
static unsigned char *
sign_alg(const char *alg, const struct key *k, const char *msg,
    size_t *siglen)
{
	static const struct { const char *name; int hmac; const char *md; }
	    algs[] = {
		{ "RS256", 0, "SHA256" }, { "RS384", 0, "SHA384" },
		{ "RS512", 0, "SHA512" }, { "HS256", 1, "SHA256" },
		{ "HS384", 1, "SHA384" }, { "HS512", 1, "SHA512" },
	};
	size_t i;

	if (strcmp(alg, "none") == 0) {
		*siglen = 0;
		return xmalloc(1);
	}
	for (i = 0; i < sizeof(algs) / sizeof(algs[0]); i++) {
		if (strcmp(alg, algs[i].name))
			continue;
		if (algs[i].hmac)
			return sign_hmac(k->pub_pem,
			    EVP_get_digestbyname(algs[i].md), msg, siglen);
		return sign_rsa(k->pkey, EVP_get_digestbyname(algs[i].md),
		    msg, siglen);
	}
	return NULL;
}

static char *
json_b64url(const json_t *obj)
{
	char *s = json_dumps(obj, JSON_COMPACT), *out;

	if (s == NULL)
		die("json_dumps failed");
	out = b64url((const unsigned char *)s, strlen(s));
	free(s);
	return out;
}

/*
 * Mints "header.payload.signature".  alg picks the real signature; the
 * header says the same unless an edit changes it.  NULL on a bad alg or
 * edit (the caller reports it).
 */
static char *
token_mint(const struct claims *c, const struct key *k, const char *kid,
    const char *alg, const struct edit *edits, size_t nedits)
{
	json_t *header = json_pack("{s:s, s:s, s:s}", "alg", alg, "kid", kid,
	    "typ", "JWT");
	json_t *payload = claims_json(c, time(NULL));
	char *h64, *p64, *msg, *s64, *out = NULL;
	unsigned char *sig;
	size_t i, siglen, len;

	if (header == NULL || payload == NULL)
		goto fail;
	for (i = 0; i < nedits; i++)
		if (edit_apply(&edits[i], header, payload) == -1)
			goto fail;
	h64 = json_b64url(header);
	p64 = json_b64url(payload);
	len = strlen(h64) + strlen(p64) + 2;
	msg = xmalloc(len);
	snprintf(msg, len, "%s.%s", h64, p64);
	if ((sig = sign_alg(alg, k, msg, &siglen)) != NULL) {
		s64 = b64url(sig, siglen);
		len += strlen(s64) + 1;
		out = xmalloc(len);
		snprintf(out, len, "%s.%s", msg, s64);
		free(s64);
		free(sig);
	}
	free(msg);
	free(h64);
	free(p64);
fail:
	json_decref(header);
	json_decref(payload);
	return out;
}

/* ---------------------------------------------------------------- mint, jwks */

static void __attribute__((noreturn))
usage(void)
{
	fputs("usage: cfaccess mint --key PRIV.pem [--kid KID] [--team T] [--aud A]\n"
	    "           [--common-name ID.access | --email E] [--ttl S] [--alg ALG]\n"
	    "           [--set claim=JSON] [--unset claim] [--header-set name=JSON]\n"
	    "           [--header-unset name] ...\n"
	    "       cfaccess jwks --key PRIV.pem [--key PRIV2.pem ...]\n"
	    "       cfaccess serve [--tls-listen ADDR --tls-cert C --tls-key K]\n"
	    "           [--listen ADDR --upstream URL --tokens FILE] [--admin-listen ADDR]\n"
	    "           [--key PRIV.pem ...] [--team T] [--aud A] [--ttl S]\n"
	    "       cfaccess echo --listen ADDR\n"
	    "see tests/tools/cfaccess.md\n", stderr);
	exit(2);
}

static long
parse_ttl(const char *s)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end || end == s || v < -315360000L || v > 3153600000L)
		die("bad --ttl '%s' (seconds)", s);
	return v;
}

enum {
	OPT_KEY = 256, OPT_KID, OPT_TEAM, OPT_AUD, OPT_CN, OPT_EMAIL, OPT_TTL,
	OPT_ALG, OPT_SET, OPT_UNSET, OPT_HSET, OPT_HUNSET, OPT_TLS_LISTEN,
	OPT_TLS_CERT, OPT_TLS_KEY, OPT_LISTEN, OPT_UPSTREAM, OPT_TOKENS,
	OPT_ADMIN,
};

static const struct option long_opts[] = {
	{ "key", required_argument, NULL, OPT_KEY },
	{ "kid", required_argument, NULL, OPT_KID },
	{ "team", required_argument, NULL, OPT_TEAM },
	{ "aud", required_argument, NULL, OPT_AUD },
	{ "common-name", required_argument, NULL, OPT_CN },
	{ "email", required_argument, NULL, OPT_EMAIL },
	{ "ttl", required_argument, NULL, OPT_TTL },
	{ "alg", required_argument, NULL, OPT_ALG },
	{ "set", required_argument, NULL, OPT_SET },
	{ "unset", required_argument, NULL, OPT_UNSET },
	{ "header-set", required_argument, NULL, OPT_HSET },
	{ "header-unset", required_argument, NULL, OPT_HUNSET },
	{ "tls-listen", required_argument, NULL, OPT_TLS_LISTEN },
	{ "tls-cert", required_argument, NULL, OPT_TLS_CERT },
	{ "tls-key", required_argument, NULL, OPT_TLS_KEY },
	{ "listen", required_argument, NULL, OPT_LISTEN },
	{ "upstream", required_argument, NULL, OPT_UPSTREAM },
	{ "tokens", required_argument, NULL, OPT_TOKENS },
	{ "admin-listen", required_argument, NULL, OPT_ADMIN },
	{ NULL, 0, NULL, 0 },
};

/* Every subcommand's options, parsed once; each command checks its own. */
struct args {
	char		*keys[MAX_KEYS];
	int		 nkeys;
	const char	*kid, *alg;
	struct claims	 claims;
	struct edit	 edits[MAX_EDITS];
	size_t		 nedits;
	const char	*tls_listen, *tls_cert, *tls_key;
	const char	*listen, *upstream, *tokens, *admin;
};

static void
args_edit(struct args *a, enum edit_op op, const char *spec)
{
	if (a->nedits == MAX_EDITS)
		die("more than %d edits", MAX_EDITS);
	a->edits[a->nedits].op = op;
	a->edits[a->nedits++].spec = spec;
}

static void
args_option(struct args *a, int c, char *v)
{
	switch (c) {
	case OPT_KEY:
		if (a->nkeys == MAX_KEYS)
			die("more than %d --key", MAX_KEYS);
		a->keys[a->nkeys++] = v;
		break;
	case OPT_KID: a->kid = v; break;
	case OPT_TEAM: a->claims.team = v; break;
	case OPT_AUD: a->claims.aud = v; break;
	case OPT_CN: a->claims.common_name = v; break;
	case OPT_EMAIL: a->claims.email = v; break;
	case OPT_TTL: a->claims.ttl = parse_ttl(v); break;
	case OPT_ALG: a->alg = v; break;
	case OPT_SET: args_edit(a, EDIT_SET, v); break;
	case OPT_UNSET: args_edit(a, EDIT_UNSET, v); break;
	case OPT_HSET: args_edit(a, EDIT_HSET, v); break;
	case OPT_HUNSET: args_edit(a, EDIT_HUNSET, v); break;
	case OPT_TLS_LISTEN: a->tls_listen = v; break;
	case OPT_TLS_CERT: a->tls_cert = v; break;
	case OPT_TLS_KEY: a->tls_key = v; break;
	case OPT_LISTEN: a->listen = v; break;
	case OPT_UPSTREAM: a->upstream = v; break;
	case OPT_TOKENS: a->tokens = v; break;
	case OPT_ADMIN: a->admin = v; break;
	default: usage();
	}
}

static void
args_parse(struct args *a, int argc, char **argv)
{
	int c;

	memset(a, 0, sizeof(*a));
	a->alg = "RS256";
	a->claims.team = DEFAULT_TEAM;
	a->claims.aud = DEFAULT_AUD;
	a->claims.common_name = DEFAULT_CN;
	a->claims.ttl = DEFAULT_TTL;
	while ((c = getopt_long(argc, argv, "", long_opts, NULL)) != -1)
		args_option(a, c, optarg);
	if (optind != argc)
		usage();
}

static int
cmd_mint(struct args *a)
{
	struct key *k;
	char *tok;

	if (a->nkeys != 1)
		die("mint needs exactly one --key");
	k = key_load(a->keys[0]);
	tok = token_mint(&a->claims, k, a->kid ? a->kid : k->kid, a->alg,
	    a->edits, a->nedits);
	if (tok == NULL)
		die("bad --alg (RS256 RS384 RS512 HS256 HS384 HS512 none) or "
		    "edit (name=JSON, e.g. --set 'aud=\"x\"')");
	printf("%s\n", tok);
	free(tok);
	key_free(k);
	return 0;
}

static int
cmd_jwks(struct args *a)
{
	struct key *keys;
	char *s;

	if (a->nkeys == 0)
		die("jwks needs --key");
	keys = keys_load(a->keys, a->nkeys);
	s = keyset_dump(keys);
	printf("%s\n", s);
	free(s);
	keys_free(keys);
	return 0;
}

/* ---------------------------------------------------------------- http glue */

struct listener {
	struct evhttp	*http;
	char		 bound[128];	/* "host:port" actually bound */
};

/* Binds "host:port" (port 0: any) and records the port the kernel chose. */
static void
listener_bind(struct listener *l, const char *addr)
{
	struct evhttp_bound_socket *bs;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	const char *colon = strrchr(addr, ':');
	char host[96];
	long port;
	int p = 0;

	if (colon == NULL || colon == addr || (size_t)(colon - addr) >= sizeof(host))
		die("bad address '%s' (want host:port)", addr);
	snprintf(host, sizeof(host), "%.*s", (int)(colon - addr), addr);
	if (host[0] == '[' && host[strlen(host) - 1] == ']') {
		memmove(host, host + 1, strlen(host));
		host[strlen(host) - 1] = '\0';
	}
	port = strtol(colon + 1, NULL, 10);
	if (port < 0 || port > 65535)
		die("bad port in '%s'", addr);
	if ((bs = evhttp_bind_socket_with_handle(l->http, host,
	    (ev_uint16_t)port)) == NULL)
		die("cannot listen on %s: %s", addr, strerror(errno));
	if (getsockname(evhttp_bound_socket_get_fd(bs),
	    (struct sockaddr *)&ss, &sl) == 0) {
		if (ss.ss_family == AF_INET)
			p = ntohs(((struct sockaddr_in *)&ss)->sin_port);
		else if (ss.ss_family == AF_INET6)
			p = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	}
	snprintf(l->bound, sizeof(l->bound), "%s%s%s:%d",
	    strchr(host, ':') ? "[" : "", host, strchr(host, ':') ? "]" : "", p);
}

static struct evhttp *
http_new(struct event_base *base, void (*cb)(struct evhttp_request *, void *),
    void *arg)
{
	struct evhttp *http = evhttp_new(base);

	if (http == NULL)
		die("evhttp_new failed");
	evhttp_set_max_body_size(http, MAX_BODY);
	evhttp_set_timeout(http, CLIENT_TIMEOUT_S);
	evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_POST |
	    EVHTTP_REQ_HEAD | EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
	    EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH);
	evhttp_set_gencb(http, cb, arg);
	return http;
}

static const char *
method_name(enum evhttp_cmd_type m)
{
	switch (m) {
	case EVHTTP_REQ_GET: return "GET";
	case EVHTTP_REQ_POST: return "POST";
	case EVHTTP_REQ_HEAD: return "HEAD";
	case EVHTTP_REQ_PUT: return "PUT";
	case EVHTTP_REQ_DELETE: return "DELETE";
	case EVHTTP_REQ_OPTIONS: return "OPTIONS";
	case EVHTTP_REQ_PATCH: return "PATCH";
	default: return "OTHER";
	}
}

/* One line per request; never the secret or the token. */
static void __attribute__((format(printf, 4, 5)))
req_log(const char *listener, struct evhttp_request *req, int status,
    const char *fmt, ...)
{
	char extra[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(extra, sizeof(extra), fmt, ap);
	va_end(ap);
	fprintf(stderr, "cfaccess: %s method=%s uri=\"%.200s\" status=%d%s%s\n",
	    listener, method_name(evhttp_request_get_command(req)),
	    evhttp_request_get_uri(req), status, extra[0] ? " " : "", extra);
}

static void
reply_text(struct evhttp_request *req, int status, const char *reason,
    const char *body)
{
	struct evbuffer *b = evbuffer_new();

	if (b == NULL) {
		evhttp_send_error(req, 500, NULL);
		return;
	}
	evbuffer_add(b, body, strlen(body));
	evhttp_add_header(evhttp_request_get_output_headers(req),
	    "Content-Type", "text/plain; charset=utf-8");
	evhttp_send_reply(req, status, reason, b);
	evbuffer_free(b);
}

static void
on_signal(evutil_socket_t sig, short what, void *arg)
{
	fprintf(stderr, "cfaccess: signal %d, exiting\n", (int)sig);
	event_base_loopbreak(arg);
}

/* Runs the loop until SIGTERM/SIGINT. */
static void
run_loop(struct event_base *base)
{
	struct event *term = evsignal_new(base, SIGTERM, on_signal, base);
	struct event *intr = evsignal_new(base, SIGINT, on_signal, base);

	if (term == NULL || intr == NULL || event_add(term, NULL) ||
	    event_add(intr, NULL))
		die("cannot install signal handlers");
	event_base_dispatch(base);
	event_free(term);
	event_free(intr);
}

/* ---------------------------------------------------------------- serve */

struct client {
	char		*id;
	char		*secret;
	char		*token;		/* cached, signed with key_gen */
	time_t		 refresh_at;
	unsigned	 key_gen;
};

struct server {
	struct event_base	*base;
	struct key		*keys;		/* first signs */
	unsigned		 key_gen;	/* bumped on rotate */
	struct claims		 claims;
	struct client		*clients;
	size_t			 nclients;
	char			*up_host, *up_prefix;
	int			 up_port;
	struct evhttp_connection *pool[POOL_SIZE];
	int			 inflight[POOL_SIZE];
	SSL_CTX			*ssl;
	struct listener		 tls, edge, admin;
	int			 trickle;	/* key set answers trickle for ever */
};

/* A key set answer that sends one body byte per TRICKLE_MS and never ends. */
struct trickle {
	struct evhttp_request	*req;
	struct event		*tick;
	size_t			 sent;
};

struct proxy {
	struct server		*srv;
	struct evhttp_request	*req;
	const struct client	*client;
	int			 slot;
	size_t			 bytes_in;
	double			 start_ms;
	const char		*error;		/* for the log line */
	int			 starting;	/* inside evhttp_make_request */
	int			 finished;
};

static void
tokens_line(struct server *s, char *line, const char *path, int lineno)
{
	char *id, *secret, *extra, *save;

	if ((id = strtok_r(line, " \t\r\n", &save)) == NULL || id[0] == '#')
		return;
	secret = strtok_r(NULL, " \t\r\n", &save);
	extra = strtok_r(NULL, " \t\r\n", &save);
	if (secret == NULL || extra != NULL)
		die("%s:%d: want '<client_id> <client_secret>'", path, lineno);
	s->clients = realloc(s->clients, (s->nclients + 1) * sizeof(*s->clients));
	if (s->clients == NULL)
		die("out of memory");
	memset(&s->clients[s->nclients], 0, sizeof(*s->clients));
	s->clients[s->nclients].id = xstrdup(id);
	s->clients[s->nclients++].secret = xstrdup(secret);
}

static void
tokens_load(struct server *s, const char *path)
{
	char *line = NULL;
	size_t cap = 0;
	int lineno = 0;
	FILE *f;

	if ((f = fopen(path, "r")) == NULL)
		die("%s: %s", path, strerror(errno));
	while (getline(&line, &cap, f) != -1)
		tokens_line(s, line, path, ++lineno);
	free(line);
	fclose(f);
}

static struct client *
client_check(struct server *s, const char *id, const char *secret)
{
	size_t i, len;

	if (id == NULL || secret == NULL)
		return NULL;
	len = strlen(secret);
	for (i = 0; i < s->nclients; i++) {
		if (strcmp(s->clients[i].id, id) != 0)
			continue;
		if (strlen(s->clients[i].secret) == len &&
		    CRYPTO_memcmp(s->clients[i].secret, secret, len) == 0)
			return &s->clients[i];
		return NULL;
	}
	return NULL;
}

/* Authorization: Basic base64(id:secret), for senders without headers. */
static struct client *
client_basic(struct server *s, const char *auth)
{
	unsigned char buf[MAX_BASIC_AUTH];
	struct client *c;
	size_t len;
	char *colon;
	int n;

	if (auth == NULL || strncasecmp(auth, "Basic ", 6) != 0)
		return NULL;
	auth += 6;
	while (*auth == ' ')
		auth++;
	len = strlen(auth);
	if (len == 0 || len % 4 != 0 || len >= sizeof(buf))
		return NULL;
	if ((n = EVP_DecodeBlock(buf, (const unsigned char *)auth, (int)len)) < 0)
		return NULL;
	n -= (auth[len - 1] == '=') + (auth[len - 2] == '=');
	buf[n] = '\0';
	if (memchr(buf, '\0', (size_t)n) != NULL ||
	    (colon = strchr((char *)buf, ':')) == NULL)
		return NULL;
	*colon = '\0';
	c = client_check(s, (char *)buf, colon + 1);
	OPENSSL_cleanse(buf, sizeof(buf));
	return c;
}

static struct client *
client_auth(struct server *s, struct evkeyvalq *h)
{
	const char *id = evhttp_find_header(h, "CF-Access-Client-Id");
	const char *secret = evhttp_find_header(h, "CF-Access-Client-Secret");

	if (id != NULL || secret != NULL)
		return client_check(s, id, secret);
	return client_basic(s, evhttp_find_header(h, "Authorization"));
}

/*
 * The client's JWT, re-minted after half its ttl or after a rotation.
 * NULL if the claims cannot be encoded (an id that is not UTF-8).
 */
static const char *
client_token(struct server *s, struct client *c)
{
	time_t now = time(NULL);

	if (c->token != NULL && c->key_gen == s->key_gen && now < c->refresh_at)
		return c->token;
	free(c->token);
	s->claims.common_name = c->id;
	c->token = token_mint(&s->claims, s->keys, s->keys->kid, "RS256",
	    NULL, 0);
	if (c->token == NULL)
		return NULL;
	c->refresh_at = now + s->claims.ttl / 2;
	c->key_gen = s->key_gen;
	return c->token;
}

static int
hop_by_hop(const char *name)
{
	static const char *hop[] = { "Connection", "Keep-Alive",
	    "Proxy-Connection", "Proxy-Authenticate", "Proxy-Authorization",
	    "TE", "Trailer", "Transfer-Encoding", "Upgrade", "Expect",
	    "Content-Length" };
	size_t i;

	for (i = 0; i < sizeof(hop) / sizeof(hop[0]); i++)
		if (strcasecmp(name, hop[i]) == 0)
			return 1;
	return 0;
}

static void
headers_copy(struct evkeyvalq *dst, struct evkeyvalq *src, int request)
{
	struct evkeyval *kv;

	TAILQ_FOREACH(kv, src, next) {
		if (hop_by_hop(kv->key))
			continue;
		if (request && (strcasecmp(kv->key, "Authorization") == 0 ||
		    strcasecmp(kv->key, "Cf-Access-Jwt-Assertion") == 0 ||
		    strcasecmp(kv->key, "Cf-Connecting-Ip") == 0 ||
		    strcasecmp(kv->key, "X-Forwarded-For") == 0 ||
		    strcasecmp(kv->key, "X-Forwarded-Proto") == 0))
			continue;
		evhttp_add_header(dst, kv->key, kv->value);
	}
}

static int
pool_pick(const struct server *s)
{
	int i, best = 0;

	for (i = 1; i < POOL_SIZE; i++)
		if (s->inflight[i] < s->inflight[best])
			best = i;
	return best;
}

/*
 * Replies to the sender (with the upstream's body, or `why` as text) and
 * frees p, unless evhttp_make_request is still on the stack: libevent may
 * call proxy_done from inside it, and proxy_start frees p afterwards.
 */
static void
proxy_finish(struct proxy *p, int status, const char *reason,
    struct evbuffer *body, const char *why)
{
	if (body != NULL)
		evhttp_send_reply(p->req, status, reason, body);
	else
		reply_text(p->req, status, reason, why);
	req_log("edge", p->req, status, "client_id=%s bytes_in=%zu ms=%.1f%s%s",
	    p->client->id, p->bytes_in, now_ms() - p->start_ms,
	    why != NULL ? " error=" : "", why != NULL ? p->error : "");
	p->srv->inflight[p->slot]--;
	p->finished = 1;
	if (!p->starting)
		free(p);
}

static void
proxy_fail(struct proxy *p, int status, const char *reason, const char *error)
{
	char text[128];

	p->error = error;
	snprintf(text, sizeof(text), "%d %s: %s\n", status, reason, error);
	proxy_finish(p, status, reason, NULL, text);
}

static void
proxy_done(struct evhttp_request *up, void *arg)
{
	struct proxy *p = arg;
	const char *reason;

	if (up == NULL || evhttp_request_get_response_code(up) == 0) {
		proxy_fail(p, 502, "Bad Gateway", "upstream_unreachable");
		return;
	}
	headers_copy(evhttp_request_get_output_headers(p->req),
	    evhttp_request_get_input_headers(up), 0);
	reason = evhttp_request_get_response_code_line(up);
	proxy_finish(p, evhttp_request_get_response_code(up), reason,
	    evhttp_request_get_input_buffer(up), NULL);
}

static void
proxy_headers(struct evhttp_request *up, struct evhttp_request *req,
    const char *token)
{
	struct evkeyvalq *out = evhttp_request_get_output_headers(up);
	struct evhttp_connection *con = evhttp_request_get_connection(req);
	char *peer = NULL, len[32];
	ev_uint16_t port;
	size_t n;

	headers_copy(out, evhttp_request_get_input_headers(req), 1);
	evhttp_add_header(out, "Cf-Access-Jwt-Assertion", token);
	if (con != NULL) {
		evhttp_connection_get_peer(con, &peer, &port);
		if (peer != NULL) {
			evhttp_add_header(out, "Cf-Connecting-Ip", peer);
			evhttp_add_header(out, "X-Forwarded-For", peer);
		}
	}
	evhttp_add_header(out, "X-Forwarded-Proto", "https");
	n = evbuffer_get_length(evhttp_request_get_input_buffer(req));
	if (n > 0 || evhttp_find_header(evhttp_request_get_input_headers(req),
	    "Content-Length") != NULL) {
		snprintf(len, sizeof(len), "%zu", n);
		evhttp_add_header(out, "Content-Length", len);
	}
}

static void
proxy_start(struct server *s, struct evhttp_request *req, struct client *c)
{
	struct proxy *p = xmalloc(sizeof(*p));
	struct evhttp_request *up;
	const char *token;
	char uri[8192];
	int rc;

	memset(p, 0, sizeof(*p));
	p->srv = s;
	p->req = req;
	p->client = c;
	p->start_ms = now_ms();
	p->bytes_in = evbuffer_get_length(evhttp_request_get_input_buffer(req));
	p->slot = pool_pick(s);
	s->inflight[p->slot]++;
	if ((token = client_token(s, c)) == NULL) {
		proxy_fail(p, 500, "Internal Server Error", "cannot_mint_token");
		return;
	}
	if (snprintf(uri, sizeof(uri), "%s%s", s->up_prefix,
	    evhttp_request_get_uri(req)) >= (int)sizeof(uri)) {
		proxy_fail(p, 414, "URI Too Long", "uri_too_long");
		return;
	}
	if ((up = evhttp_request_new(proxy_done, p)) == NULL) {
		proxy_fail(p, 500, "Internal Server Error", "out_of_memory");
		return;
	}
	proxy_headers(up, req, token);
	evbuffer_add_buffer(evhttp_request_get_output_buffer(up),
	    evhttp_request_get_input_buffer(req));
	p->starting = 1;
	rc = evhttp_make_request(s->pool[p->slot], up,
	    evhttp_request_get_command(req), uri);
	p->starting = 0;
	if (rc != 0 && !p->finished)
		proxy_fail(p, 502, "Bad Gateway", "upstream_unreachable");
	else if (p->finished)
		free(p);
}

static void
edge_cb(struct evhttp_request *req, void *arg)
{
	struct server *s = arg;
	struct client *c;

	c = client_auth(s, evhttp_request_get_input_headers(req));
	if (c == NULL) {
		reply_text(req, 403, "Forbidden",
		    "Forbidden. You don't have permission to view this. "
		    "(Cloudflare Access: missing or invalid service token)\n");
		req_log("edge", req, 403, "error=bad_service_token");
		return;
	}
	proxy_start(s, req, c);
}

/* libevent detaches a started reply whose client went away (its connection
 * is then NULL); ending it then frees the request. */
static void
trickle_cb(evutil_socket_t fd, short what, void *arg)
{
	struct trickle *t = arg;
	struct evbuffer *b;

	if (evhttp_request_get_connection(t->req) == NULL) {
		fprintf(stderr, "cfaccess: certs trickle ended by the client after "
		    "%zu bytes\n", t->sent);
		evhttp_send_reply_end(t->req);
		event_free(t->tick);
		free(t);
		return;
	}
	if ((b = evbuffer_new()) == NULL)
		return;
	evbuffer_add(b, t->sent == 0 ? "{" : " ", 1);
	evhttp_send_reply_chunk(t->req, b);
	evbuffer_free(b);
	t->sent++;
}

static void
certs_trickle(struct server *s, struct evhttp_request *req)
{
	struct timeval tv = { TRICKLE_MS / 1000, (TRICKLE_MS % 1000) * 1000 };
	struct trickle *t = xmalloc(sizeof(*t));

	t->req = req;
	t->sent = 0;
	if ((t->tick = event_new(s->base, -1, EV_PERSIST, trickle_cb, t)) == NULL)
		die("event_new failed");
	evhttp_add_header(evhttp_request_get_output_headers(req),
	    "Content-Type", "application/json");
	evhttp_send_reply_start(req, 200, "OK");
	event_add(t->tick, &tv);
	req_log("certs", req, 200, "trickle=%dms", TRICKLE_MS);
}

static void
certs_cb(struct evhttp_request *req, void *arg)
{
	struct server *s = arg;
	struct evbuffer *b;
	char *set;

	if (strcmp(evhttp_request_get_uri(req), "/cdn-cgi/access/certs") != 0 ||
	    (evhttp_request_get_command(req) != EVHTTP_REQ_GET &&
	    evhttp_request_get_command(req) != EVHTTP_REQ_HEAD)) {
		reply_text(req, 404, "Not Found", "404 Not Found\n");
		req_log("certs", req, 404, "%s", "");
		return;
	}
	if (s->trickle) {
		certs_trickle(s, req);
		return;
	}
	set = keyset_dump(s->keys);
	if ((b = evbuffer_new()) == NULL) {
		free(set);
		evhttp_send_error(req, 500, NULL);
		return;
	}
	evbuffer_add(b, set, strlen(set));
	evhttp_add_header(evhttp_request_get_output_headers(req),
	    "Content-Type", "application/json");
	evhttp_send_reply(req, 200, "OK", b);
	evbuffer_free(b);
	free(set);
	req_log("certs", req, 200, "%s", "");
}

static void
admin_kids(struct server *s, struct evhttp_request *req)
{
	struct evbuffer *b = evbuffer_new();
	const struct key *k;

	if (b == NULL) {
		evhttp_send_error(req, 500, NULL);
		return;
	}
	for (k = s->keys; k != NULL; k = k->next)
		evbuffer_add_printf(b, "%s\n", k->kid);
	evhttp_add_header(evhttp_request_get_output_headers(req),
	    "Content-Type", "text/plain; charset=utf-8");
	evhttp_send_reply(req, 200, "OK", b);
	evbuffer_free(b);
}

static void
admin_rotate(struct server *s)
{
	struct key *k = key_generate();

	k->next = s->keys;
	s->keys = k;
	s->key_gen++;
	fprintf(stderr, "cfaccess: rotated, signing kid=%s\n", k->kid);
}

static void
admin_retire(struct server *s)
{
	keys_free(s->keys->next);
	s->keys->next = NULL;
	fprintf(stderr, "cfaccess: retired all but kid=%s\n", s->keys->kid);
}

static void
admin_cb(struct evhttp_request *req, void *arg)
{
	struct server *s = arg;
	enum evhttp_cmd_type m = evhttp_request_get_command(req);
	const char *uri = evhttp_request_get_uri(req);
	int status = 200;

	if (strcmp(uri, "/rotate") == 0 && m == EVHTTP_REQ_POST)
		admin_rotate(s);
	else if (strcmp(uri, "/retire") == 0 && m == EVHTTP_REQ_POST)
		admin_retire(s);
	else if ((strcmp(uri, "/trickle") == 0 || strcmp(uri, "/steady") == 0) &&
	    m == EVHTTP_REQ_POST)
		s->trickle = uri[1] == 't';
	else if (strcmp(uri, "/kids") != 0 || m != EVHTTP_REQ_GET)
		status = 404;
	if (status == 404)
		reply_text(req, 404, "Not Found", "404 Not Found: POST /rotate, "
		    "POST /retire, POST /trickle, POST /steady, GET /kids\n");
	else
		admin_kids(s, req);
	req_log("admin", req, status, "%s", "");
}

static struct bufferevent *
tls_bevcb(struct event_base *base, void *arg)
{
	SSL *ssl = SSL_new(arg);
	struct bufferevent *bev;

	if (ssl == NULL)
		return NULL;
	bev = bufferevent_openssl_socket_new(base, -1, ssl,
	    BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
	if (bev != NULL)
		bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	else
		SSL_free(ssl);
	return bev;
}

static void
serve_tls(struct server *s, const struct args *a)
{
	if (a->tls_cert == NULL || a->tls_key == NULL)
		die("--tls-listen needs --tls-cert and --tls-key");
	if ((s->ssl = SSL_CTX_new(TLS_server_method())) == NULL)
		die_ssl("SSL_CTX_new");
	if (SSL_CTX_use_certificate_chain_file(s->ssl, a->tls_cert) != 1)
		die_ssl(a->tls_cert);
	if (SSL_CTX_use_PrivateKey_file(s->ssl, a->tls_key, SSL_FILETYPE_PEM) != 1)
		die_ssl(a->tls_key);
	s->tls.http = http_new(s->base, certs_cb, s);
	evhttp_set_bevcb(s->tls.http, tls_bevcb, s->ssl);
	listener_bind(&s->tls, a->tls_listen);
}

static void
serve_upstream(struct server *s, const char *url)
{
	struct evhttp_uri *u = evhttp_uri_parse(url);
	const char *path;
	int i;

	if (u == NULL || evhttp_uri_get_scheme(u) == NULL ||
	    strcmp(evhttp_uri_get_scheme(u), "http") != 0 ||
	    evhttp_uri_get_host(u) == NULL)
		die("bad --upstream '%s' (want http://host:port[/prefix])", url);
	s->up_host = xstrdup(evhttp_uri_get_host(u));
	s->up_port = evhttp_uri_get_port(u) > 0 ? evhttp_uri_get_port(u) : 80;
	path = evhttp_uri_get_path(u);
	s->up_prefix = xstrdup(path != NULL ? path : "");
	if (s->up_prefix[0] != '\0' &&
	    s->up_prefix[strlen(s->up_prefix) - 1] == '/')
		s->up_prefix[strlen(s->up_prefix) - 1] = '\0';
	evhttp_uri_free(u);
	for (i = 0; i < POOL_SIZE; i++) {
		s->pool[i] = evhttp_connection_base_new(s->base, NULL,
		    s->up_host, (ev_uint16_t)s->up_port);
		if (s->pool[i] == NULL)
			die("evhttp_connection_base_new failed");
		evhttp_connection_set_timeout(s->pool[i], UPSTREAM_TIMEOUT_S);
		evhttp_connection_set_max_body_size(s->pool[i], MAX_BODY);
	}
}

static void
serve_edge(struct server *s, const struct args *a)
{
	if (a->upstream == NULL || a->tokens == NULL)
		die("--listen needs --upstream and --tokens");
	tokens_load(s, a->tokens);
	serve_upstream(s, a->upstream);
	s->edge.http = http_new(s->base, edge_cb, s);
	listener_bind(&s->edge, a->listen);
}

static void
serve_free(struct server *s)
{
	size_t i;

	if (s->edge.http != NULL)
		evhttp_free(s->edge.http);
	if (s->tls.http != NULL)
		evhttp_free(s->tls.http);
	if (s->admin.http != NULL)
		evhttp_free(s->admin.http);
	for (i = 0; i < POOL_SIZE; i++)
		if (s->pool[i] != NULL)
			evhttp_connection_free(s->pool[i]);
	for (i = 0; i < s->nclients; i++) {
		free(s->clients[i].id);
		OPENSSL_cleanse(s->clients[i].secret, strlen(s->clients[i].secret));
		free(s->clients[i].secret);
		free(s->clients[i].token);
	}
	free(s->clients);
	free(s->up_host);
	free(s->up_prefix);
	keys_free(s->keys);
	SSL_CTX_free(s->ssl);
	event_base_free(s->base);
}

static int
cmd_serve(struct args *a)
{
	struct server s;

	memset(&s, 0, sizeof(s));
	if (a->tls_listen == NULL && a->listen == NULL && a->admin == NULL)
		die("serve needs --tls-listen, --listen or --admin-listen");
	if ((s.base = event_base_new()) == NULL)
		die("event_base_new failed");
	s.claims = a->claims;
	s.claims.email = NULL;
	s.keys = a->nkeys ? keys_load(a->keys, a->nkeys) : key_generate();
	if (a->tls_listen != NULL)
		serve_tls(&s, a);
	if (a->listen != NULL)
		serve_edge(&s, a);
	if (a->admin != NULL) {
		s.admin.http = http_new(s.base, admin_cb, &s);
		listener_bind(&s.admin, a->admin);
	}
	fprintf(stderr, "cfaccess ready tls_listen=%s listen=%s "
	    "admin_listen=%s kid=%s\n", s.tls.bound[0] ? s.tls.bound : "-",
	    s.edge.bound[0] ? s.edge.bound : "-",
	    s.admin.bound[0] ? s.admin.bound : "-", s.keys->kid);
	run_loop(s.base);
	serve_free(&s);
	return 0;
}

/* ---------------------------------------------------------------- echo */

/* Echo's status comes from X-Echo-Status so tests can check relaying. */
static void
echo_cb(struct evhttp_request *req, void *arg)
{
	struct evkeyvalq *in = evhttp_request_get_input_headers(req);
	struct evbuffer *body = evhttp_request_get_input_buffer(req);
	struct evbuffer *b = evbuffer_new();
	const char *want = evhttp_find_header(in, "X-Echo-Status");
	unsigned char md[32];
	char mdhex[65];
	struct evkeyval *kv;
	size_t n = evbuffer_get_length(body);
	int status = 200;

	if (b == NULL) {
		evhttp_send_error(req, 500, NULL);
		return;
	}
	SHA256(evbuffer_pullup(body, -1), n, md);
	hex(md, sizeof(md), mdhex);
	evbuffer_add_printf(b, "%s %s\n", method_name(
	    evhttp_request_get_command(req)), evhttp_request_get_uri(req));
	TAILQ_FOREACH(kv, in, next)
		evbuffer_add_printf(b, "%s: %s\n", kv->key, kv->value);
	evbuffer_add_printf(b, "\nbody-length: %zu\nbody-sha256: %s\n", n, mdhex);
	if (want != NULL && atoi(want) >= 200 && atoi(want) <= 599) {
		status = atoi(want);
		evhttp_add_header(evhttp_request_get_output_headers(req),
		    "Retry-After", "7");
	}
	evhttp_add_header(evhttp_request_get_output_headers(req),
	    "Content-Type", "text/plain; charset=utf-8");
	evhttp_add_header(evhttp_request_get_output_headers(req),
	    "X-Echo", "1");
	evhttp_send_reply(req, status, NULL, b);
	evbuffer_free(b);
	req_log("echo", req, status, "bytes_in=%zu", n);
}

static int
cmd_echo(struct args *a)
{
	struct event_base *base;
	struct listener l;

	if (a->listen == NULL)
		die("echo needs --listen");
	if ((base = event_base_new()) == NULL)
		die("event_base_new failed");
	memset(&l, 0, sizeof(l));
	l.http = http_new(base, echo_cb, NULL);
	listener_bind(&l, a->listen);
	fprintf(stderr, "cfaccess echo ready listen=%s\n", l.bound);
	run_loop(base);
	evhttp_free(l.http);
	event_base_free(base);
	return 0;
}

int
main(int argc, char **argv)
{
	static const struct { const char *name; int (*fn)(struct args *); }
	    cmds[] = {
		{ "mint", cmd_mint }, { "jwks", cmd_jwks },
		{ "serve", cmd_serve }, { "echo", cmd_echo },
	};
	struct args a;
	size_t i;

	if (argc < 2)
		usage();
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stderr, NULL, _IOLBF, 0);
	srandom((unsigned)time(NULL) ^ (unsigned)getpid());
	for (i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		if (strcmp(argv[1], cmds[i].name) != 0)
			continue;
		args_parse(&a, argc - 1, argv + 1);
		return cmds[i].fn(&a);
	}
	usage();
}
