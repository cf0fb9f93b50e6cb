/*
 * floor: the in-process cost floor of the benchmark's bodies, on one core.
 *
 *   floor [--seconds S] --metrics FILE... --loki-pb FILE... --loki-json FILE...
 *
 * For each body, timed in a loop for S seconds (default 0.3) each:
 *   decode_us    snappy block decode (codec_snappy_decode), the least any
 *                gateway that looks at labels must do; 0 for plain JSON;
 *   compress_us  snappy encode of the decoded body: the extra work of a
 *                rewrite (0 for JSON);
 *   fast_us      payload_check() with the site allowing provider="tokyo"
 *                (the bodies carry it): kakikomi's whole body path, no HTTP;
 *   rewrite_us   payload_check() with the site allowing only "osaka" under
 *                on_mismatch rewrite: scan + new body + encode.
 * Also series, samples (remote write) or entries (Loki) per body, which the
 * benchmark uses for samples/s.  One JSON object per body on stdout.
 *
 *   floor --calls N --only decode|compress|fast|rewrite --metrics FILE...
 *
 * runs just that operation N times per body, untimed, for a repeatable
 * instruction count: valgrind --tool=callgrind --toggle-collect=op_only.
 *
 *   floor --to-json FILE
 *
 * prints a snappy Loki protobuf push as the equivalent JSON push (same
 * streams, entries and lines; structured metadata dropped), so the JSON row
 * carries the protobuf row's content.
 *
 *   floor [--calls N --only verify|cached|rsa] --access JWKS TOKENS
 *
 * access_verify() over the distinct tokens of TOKENS (one a line, as mint
 * writes them; claims as mint's defaults) against the key set JWKS: "verify"
 * sees each token once (a new token on every call: the full path, cache
 * insert included, in a cache as big as the daemon's), "cached" verifies
 * the first token again and again (the cache hit), "rsa" is one
 * EVP_PKEY_verify of the first token's signature over its precomputed
 * SHA-256 with a reused context (the RSA-2048 work alone).  Without --only:
 * us per call of each.  N is capped at the number of tokens for "verify".
 * Tokens are checked at time(NULL), so mint them within their ttl.
 *
 * Test tool: start-up errors exit 1.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/rsa.h>

#include "access.h"
#include "codec.h"
#include "keyset.h"
#include "labels.h"
#include "payload.h"
#include "pb.h"

#define MAX_DECODED	(64ULL << 20)
#define CACHE_ENTRIES	8192	/* the daemon's TOKEN_CACHE_ENTRIES */

struct kind {
	const char	*flag;
	enum signal	 signal;
	const char	*ctype;
	const char	*cenc;
	int		 snappy;
};

static const struct kind kinds[] = {
	{ "--metrics", SIGNAL_METRICS, "application/x-protobuf", "snappy", 1 },
	{ "--loki-pb", SIGNAL_LOGS, "application/x-protobuf", NULL, 1 },
	{ "--loki-json", SIGNAL_LOGS, "application/json", NULL, 0 },
};

struct input {
	const struct kind *k;
	const char	*path;
	uint8_t		*data;
	size_t		 len;
};

static double seconds_per_measure = 0.3;
static unsigned long only_calls;
static const char *only_op;

static void __attribute__((noreturn))
die(const char *msg, const char *arg)
{
	fprintf(stderr, "floor: %s%s%s\n", msg, arg ? ": " : "", arg ? arg : "");
	exit(1);
}

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint8_t *
read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf;
	long n;

	if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 ||
	    fseek(f, 0, SEEK_SET) != 0 || (buf = malloc((size_t)n + 1)) == NULL ||
	    fread(buf, 1, (size_t)n, f) != (size_t)n)
		die("cannot read", path);
	fclose(f);
	*len = (size_t)n;
	return buf;
}

/* One timed operation on an input; dies on failure (the bodies are known good). */
typedef void (*op_fn)(const struct input *in, const void *arg);

/* Runs op until the time budget is spent; microseconds per call. */
static double
time_op(op_fn op, const struct input *in, const void *arg)
{
	double start = now_s(), el;
	unsigned long n = 0;

	op(in, arg);	/* warm the caches */
	do {
		for (int i = 0; i < 16; i++)
			op(in, arg);
		n += 16;
	} while ((el = now_s() - start) < seconds_per_measure);
	return el * 1e6 / (double)n;
}

static void
op_decode(const struct input *in, const void *arg)
{
	uint8_t *out;
	size_t outlen;
	const char *err;

	(void)arg;
	if (codec_snappy_decode(in->data, in->len, MAX_DECODED, &out, &outlen, &err) != CODEC_OK)
		die("snappy decode failed", in->path);
	free(out);
}

struct plain {
	const uint8_t	*data;
	size_t		 len;
};

static void
op_compress(const struct input *in, const void *arg)
{
	const struct plain *p = arg;
	uint8_t *out;
	size_t outlen;

	(void)in;
	if (codec_snappy_encode(p->data, p->len, &out, &outlen) != CODEC_OK)
		die("snappy encode failed", NULL);
	free(out);
}

static void
check(const struct input *in, const struct payload_rule *rule, struct payload_result *res)
{
	if (payload_check(in->k->signal, in->k->ctype, in->k->cenc, in->data, in->len,
	    rule, res) != 0) {
		fprintf(stderr, "floor: %s: payload_check %d: %s\n", in->path, res->status,
		    res->reason);
		exit(1);
	}
}

static void
op_check(const struct input *in, const void *arg)
{
	struct payload_result res;

	check(in, arg, &res);
	payload_result_free(&res);
}

/* The one operation of --only, called once: what callgrind collects. */
static void __attribute__((noinline))
op_only(op_fn op, const struct input *in, const void *arg)
{
	op(in, arg);
}

static void
measure(const struct input *in)
{
	char *tokyo[] = { "tokyo" }, *osaka[] = { "osaka" };
	struct strlist fast_vals = { tokyo, 1 }, rw_vals = { osaka, 1 };
	struct payload_rule fast = { "provider", &fast_vals, MISMATCH_REWRITE, "bench", MAX_DECODED };
	struct payload_rule rw = fast;
	struct payload_result res;
	struct plain p = { in->data, in->len };
	uint8_t *dec = NULL;
	double decode_us = 0, compress_us = 0;
	const char *err;

	rw.values = &rw_vals;
	if (in->k->snappy) {
		if (codec_snappy_decode(in->data, in->len, MAX_DECODED, &dec, &p.len, &err) != CODEC_OK)
			die("snappy decode failed", in->path);
		p.data = dec;
	}
	if (only_op != NULL) {
		op_fn op = strcmp(only_op, "decode") == 0 ? op_decode :
		    strcmp(only_op, "compress") == 0 ? op_compress : op_check;
		const void *arg = op == op_compress ? (const void *)&p :
		    strcmp(only_op, "fast") == 0 ? (const void *)&fast : (const void *)&rw;

		for (unsigned long i = 0; i < only_calls; i++)
			op_only(op, in, arg);
		free(dec);
		return;
	}
	if (in->k->snappy) {
		decode_us = time_op(op_decode, in, NULL);
		compress_us = time_op(op_compress, in, &p);
	}
	check(in, &fast, &res);
	printf("{\"body\":\"%s\",\"bytes\":%zu,\"decoded\":%zu,\"series\":%llu,"
	    "\"samples\":%llu,\"entries\":%llu,\"fast_rewritten\":%llu,", in->path,
	    in->len, p.len, (unsigned long long)res.series,
	    (unsigned long long)res.samples, (unsigned long long)res.entries,
	    (unsigned long long)res.rewritten);
	payload_result_free(&res);
	printf("\"decode_us\":%.1f,\"compress_us\":%.1f,\"fast_us\":%.1f,\"rewrite_us\":%.1f}\n",
	    decode_us, compress_us, time_op(op_check, in, &fast), time_op(op_check, in, &rw));
	free(dec);
}

static void
json_str(const uint8_t *p, size_t n)
{
	putchar('"');
	for (size_t i = 0; i < n; i++) {
		if (p[i] == '"' || p[i] == '\\')
			printf("\\%c", p[i]);
		else if (p[i] < 0x20)
			printf("\\u%04x", p[i]);
		else
			putchar(p[i]);
	}
	putchar('"');
}

/* One EntryAdapter as ["ns","line"]. */
static void
json_entry(const uint8_t *buf, size_t len)
{
	struct pb_reader r, tr;
	struct pb_field f, t;
	const char *err;
	uint64_t sec = 0, nsec = 0;
	const uint8_t *line = NULL;
	size_t linelen = 0;

	pb_reader_init(&r, buf, len);
	while (pb_next(&r, &f, &err) == 1) {
		if (f.num == 1 && f.wt == PB_LEN) {
			pb_reader_init(&tr, f.data, f.len);
			while (pb_next(&tr, &t, &err) == 1)
				*(t.num == 1 ? &sec : &nsec) = t.v;
		} else if (f.num == 2 && f.wt == PB_LEN) {
			line = f.data;
			linelen = f.len;
		}
	}
	printf("[\"%llu\",", (unsigned long long)(sec * 1000000000ULL + nsec));
	json_str(line, linelen);
	putchar(']');
}

static void
to_json(const char *path)
{
	struct pb_reader r, sr;
	struct pb_field f, g;
	struct labels_set ls;
	const char *err;
	uint8_t *body, *dec;
	size_t len, declen;
	int ns = 0, ne;

	body = read_file(path, &len);
	if (codec_snappy_decode(body, len, MAX_DECODED, &dec, &declen, &err) != CODEC_OK)
		die("snappy decode failed", path);
	labels_set_init(&ls);
	printf("{\"streams\":[");
	pb_reader_init(&r, dec, declen);
	while (pb_next(&r, &f, &err) == 1) {
		if (f.num != 1 || f.wt != PB_LEN)
			continue;
		printf("%s{\"values\":[", ns++ ? "," : "");
		ne = 0;
		pb_reader_init(&sr, f.data, f.len);
		while (pb_next(&sr, &g, &err) == 1) {
			if (g.num == 1 && g.wt == PB_LEN &&
			    labels_parse(g.data, g.len, &ls, &err) == -1)
				die("bad labels", err);
			if (g.num == 2 && g.wt == PB_LEN) {
				printf("%s", ne++ ? "," : "");
				json_entry(g.data, g.len);
			}
		}
		printf("],\"stream\":{");
		for (size_t i = 0; i < ls.n; i++) {
			printf("%s", i ? "," : "");
			json_str(ls.v[i].name, ls.v[i].nlen);
			putchar(':');
			json_str(ls.v[i].value, ls.v[i].vlen);
		}
		printf("}}");
	}
	printf("]}\n");
	labels_set_free(&ls);
	free(dec);
	free(body);
}

/* The access configuration mint's tokens are made for (its defaults). */
static char *bench_aud[] = {
	"4714c1358e65fe4b408ad6d432a5f878f08194bdb4752441fd56faefa9b2b6f2" };
static const struct access_conf bench_access = {
	.team_domain = "example.cloudflareaccess.com",
	.issuer = "https://example.cloudflareaccess.com",
	.audiences = { bench_aud, 1 },
	.leeway_s = 30,
};

struct tokens {
	struct access	*a;
	struct keyset	*ks;
	char		**v;
	size_t		 n, next;
	EVP_PKEY_CTX	*rsa;		/* "rsa": verify context of the first token's key */
	unsigned char	 digest[32];	/* SHA-256 of its signing input */
	unsigned char	 sig[KEYSET_MAX_N_BYTES];
	size_t		 siglen;
};

static void
verify_one(struct tokens *t, const char *token)
{
	struct access_identity id;
	const char *why;

	if (access_verify(t->a, &bench_access, t->ks, token, time(NULL), &id, &why) != ACCESS_OK)
		die("access_verify refused a token", why);
}

static void
op_verify(const struct input *in, const void *arg)
{
	struct tokens *t = (struct tokens *)(uintptr_t)arg;

	(void)in;
	if (t->next == t->n)
		die("out of distinct tokens", NULL);
	verify_one(t, t->v[t->next++]);
}

static void
op_cached(const struct input *in, const void *arg)
{
	(void)in;
	verify_one((struct tokens *)(uintptr_t)arg, ((const struct tokens *)arg)->v[0]);
}

static void
op_rsa(const struct input *in, const void *arg)
{
	const struct tokens *t = arg;

	(void)in;
	if (EVP_PKEY_verify(t->rsa, t->sig, t->siglen, t->digest, sizeof(t->digest)) != 1)
		die("RSA verify failed", NULL);
}

/* The bare RSA verify of the first token: its key, digest and signature. */
static void
rsa_setup(struct tokens *t)
{
	const char *tok = t->v[0], *dot2 = strrchr(tok, '.');
	char kid[KEYSET_MAX_KID + 1];
	const char *k;
	EVP_PKEY *pkey;
	long n;

	/* whichever key of the set verifies it: no JSON parsing here */
	for (size_t i = 0; (k = keyset_kid(t->ks, i)) != NULL; i++) {
		snprintf(kid, sizeof(kid), "%s", k);
		if ((pkey = keyset_key(t->ks, kid)) == NULL)
			continue;
		if ((t->rsa = EVP_PKEY_CTX_new(pkey, NULL)) == NULL ||
		    EVP_PKEY_verify_init(t->rsa) != 1 ||
		    EVP_PKEY_CTX_set_rsa_padding(t->rsa, RSA_PKCS1_PADDING) != 1 ||
		    EVP_PKEY_CTX_set_signature_md(t->rsa, EVP_sha256()) != 1)
			die("cannot set up the RSA context", NULL);
		if (dot2 == NULL || (n = keyset_b64url_decode(dot2 + 1, strlen(dot2 + 1),
		    t->sig, sizeof(t->sig))) <= 0 ||
		    EVP_Digest(tok, (size_t)(dot2 - tok), t->digest, NULL, EVP_sha256(), NULL) != 1)
			die("malformed first token", NULL);
		t->siglen = (size_t)n;
		if (EVP_PKEY_verify(t->rsa, t->sig, t->siglen, t->digest, sizeof(t->digest)) == 1)
			return;
		EVP_PKEY_CTX_free(t->rsa);
		t->rsa = NULL;
	}
	die("no key of the key set verifies the first token", NULL);
}

static void
tokens_load(struct tokens *t, const char *jwks, const char *path)
{
	size_t len, cap = 0;
	char *doc = (char *)read_file(jwks, &len), *all, *line, *save;
	const char *err;

	if ((t->ks = keyset_parse(doc, len, &err)) == NULL)
		die("bad key set", err);
	free(doc);
	all = (char *)read_file(path, &len);
	all[len] = '\0';
	for (line = strtok_r(all, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
		if (t->n == cap && (t->v = realloc(t->v, (cap = cap ? 2 * cap : 1024) *
		    sizeof(*t->v))) == NULL)
			die("out of memory", NULL);
		t->v[t->n++] = line;	/* views into `all`, kept until exit */
	}
	if (t->n == 0)
		die("no tokens in", path);
	if ((t->a = access_new(CACHE_ENTRIES)) == NULL)
		die("out of memory", NULL);
	rsa_setup(t);
}

static void
measure_access(const char *jwks, const char *path)
{
	struct tokens t = { 0 };
	double verify_us, cached_us, rsa_us, start;
	size_t n0;

	tokens_load(&t, jwks, path);
	if (only_op != NULL) {
		op_fn op = strcmp(only_op, "verify") == 0 ? op_verify :
		    strcmp(only_op, "cached") == 0 ? op_cached : op_rsa;
		unsigned long n = only_calls;

		if (op == op_verify && n > t.n)
			n = t.n;
		for (unsigned long i = 0; i < n; i++)
			op_only(op, NULL, &t);
		return;
	}
	rsa_us = time_op(op_rsa, NULL, &t);
	cached_us = time_op(op_cached, NULL, &t);
	start = now_s();
	n0 = t.next;
	while (t.next < t.n && now_s() - start < seconds_per_measure)
		op_verify(NULL, &t);
	verify_us = (now_s() - start) * 1e6 / (double)(t.next - n0);
	printf("{\"tokens\":\"%s\",\"token_bytes\":%zu,\"verify_us\":%.1f,\"cached_us\":%.2f,"
	    "\"rsa_us\":%.1f}\n", path, strlen(t.v[0]), verify_us, cached_us, rsa_us);
}

static const struct kind *
kind_of(const char *flag)
{
	for (size_t j = 0; j < sizeof(kinds) / sizeof(kinds[0]); j++)
		if (strcmp(flag, kinds[j].flag) == 0)
			return &kinds[j];
	die("unknown flag", flag);
}

int
main(int argc, char **argv)
{
	const struct kind *k = NULL;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) {
			seconds_per_measure = atof(argv[++i]);
			continue;
		}
		if (strcmp(argv[i], "--calls") == 0 && i + 1 < argc) {
			only_calls = strtoul(argv[++i], NULL, 10);
			continue;
		}
		if (strcmp(argv[i], "--to-json") == 0 && i + 1 < argc) {
			to_json(argv[++i]);
			continue;
		}
		if (strcmp(argv[i], "--access") == 0 && i + 2 < argc) {
			measure_access(argv[i + 1], argv[i + 2]);
			i += 2;
			continue;
		}
		if (strcmp(argv[i], "--only") == 0 && i + 1 < argc) {
			only_op = argv[++i];
			continue;
		}
		if (strncmp(argv[i], "--", 2) == 0) {
			k = kind_of(argv[i]);
			continue;
		}
		if (k == NULL)
			die("usage: floor [--seconds S] [--calls N --only OP] --metrics|--loki-pb|--loki-json FILE...", NULL);
		struct input in = { .k = k, .path = argv[i] };
		in.data = read_file(argv[i], &in.len);
		measure(&in);
		free(in.data);
	}
	return fflush(stdout) == 0 ? 0 : 1;
}
