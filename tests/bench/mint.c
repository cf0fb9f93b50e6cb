/*
 * mint: many distinct Access service-token JWTs at once, for the benchmark's
 * no-cache row (one `cfaccess mint` process per token would take minutes).
 *
 *   mint --key PRIV.pem --kid KID --count N [--threads T] [--team T]
 *        [--aud A] [--common-name CN] [--ttl S] > tokens
 *
 * Prints N tokens, one a line.  Claims are those `cfaccess mint` writes for a
 * service token, plus "jti":"bench-<i>" so every token (and its signature) is
 * different: {"type":"app","aud":[A],"exp":now+S,"iss":"https://T",
 * "common_name":CN,"iat":now,"sub":"","jti":"bench-i"}; header
 * {"alg":"RS256","kid":KID,"typ":"JWT"}.  RS256 signed with OpenSSL.
 *
 * Test tool: any error exits 1.
 */
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/pem.h>

#define MAX_THREADS	16
#define TOKEN_MAX	2048
#define CLAIMS_MAX	1024

struct job {
	EVP_PKEY	*key;
	const char	*header_b64;
	const char	*team, *aud, *cn;
	long		 now, ttl;
	size_t		 from, to;
	char		**out;
	int		 failed;
};

static void __attribute__((noreturn))
die(const char *msg)
{
	fprintf(stderr, "mint: %s\n", msg);
	exit(1);
}

/* base64url without padding; dst must hold 4 * ceil(len / 3) + 1. */
static size_t
b64url(char *dst, const unsigned char *src, size_t len)
{
	int n = EVP_EncodeBlock((unsigned char *)dst, src, (int)len);
	size_t o = 0;

	for (int i = 0; i < n; i++) {
		char c = dst[i];
		if (c == '=')
			break;
		dst[o++] = c == '+' ? '-' : c == '/' ? '_' : c;
	}
	dst[o] = '\0';
	return o;
}

static char *
mint_one(const struct job *j, size_t i)
{
	char claims[CLAIMS_MAX], cb64[CLAIMS_MAX * 2], *tok;
	unsigned char sig[512];
	size_t siglen = sizeof(sig), n;
	EVP_MD_CTX *md;
	int len, ok;

	len = snprintf(claims, sizeof(claims), "{\"type\":\"app\",\"aud\":[\"%s\"],"
	    "\"exp\":%ld,\"iss\":\"https://%s\",\"common_name\":\"%s\",\"iat\":%ld,"
	    "\"sub\":\"\",\"jti\":\"bench-%zu\"}", j->aud, j->now + j->ttl, j->team,
	    j->cn, j->now, i);
	if (len < 0 || (size_t)len >= sizeof(claims) || (tok = malloc(TOKEN_MAX)) == NULL)
		return NULL;
	b64url(cb64, (const unsigned char *)claims, (size_t)len);
	n = (size_t)snprintf(tok, TOKEN_MAX, "%s.%s", j->header_b64, cb64);
	if ((md = EVP_MD_CTX_new()) == NULL) {
		free(tok);
		return NULL;
	}
	ok = EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, j->key) == 1 &&
	    EVP_DigestSign(md, sig, &siglen, (unsigned char *)tok, n) == 1 &&
	    n + 1 + (siglen * 4 + 2) / 3 + 1 < TOKEN_MAX;
	EVP_MD_CTX_free(md);
	if (!ok) {
		free(tok);
		return NULL;
	}
	tok[n] = '.';
	b64url(tok + n + 1, sig, siglen);
	return tok;
}

static void *
mint_range(void *arg)
{
	struct job *j = arg;

	for (size_t i = j->from; i < j->to; i++)
		if ((j->out[i] = mint_one(j, i)) == NULL) {
			j->failed = 1;
			break;
		}
	return NULL;
}

static EVP_PKEY *
load_key(const char *path)
{
	FILE *f = fopen(path, "r");
	EVP_PKEY *k;

	if (f == NULL)
		die("cannot open --key");
	k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	if (k == NULL)
		die("--key is not a PEM private key");
	return k;
}

static void
mint_all(struct job *base, size_t count, int nthreads)
{
	pthread_t th[MAX_THREADS];
	struct job jobs[MAX_THREADS];

	for (int t = 0; t < nthreads; t++) {
		jobs[t] = *base;
		jobs[t].from = count * (size_t)t / (size_t)nthreads;
		jobs[t].to = count * (size_t)(t + 1) / (size_t)nthreads;
		if (pthread_create(&th[t], NULL, mint_range, &jobs[t]) != 0)
			die("pthread_create");
	}
	for (int t = 0; t < nthreads; t++) {
		pthread_join(th[t], NULL);
		if (jobs[t].failed)
			die("signing failed");
	}
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "key", required_argument, NULL, 'k' },
		{ "kid", required_argument, NULL, 'i' },
		{ "count", required_argument, NULL, 'n' },
		{ "threads", required_argument, NULL, 't' },
		{ "team", required_argument, NULL, 'T' },
		{ "aud", required_argument, NULL, 'a' },
		{ "common-name", required_argument, NULL, 'c' },
		{ "ttl", required_argument, NULL, 'l' },
		{ NULL, 0, NULL, 0 },
	};
	struct job j = {
		.team = "example.cloudflareaccess.com",
		.aud = "4714c1358e65fe4b408ad6d432a5f878f08194bdb4752441fd56faefa9b2b6f2",
		.cn = "88bf3b6d86161464f6509f7219099e57.access",
		.ttl = 3600,
	};
	const char *keypath = NULL, *kid = NULL;
	char header[256], hb64[512];
	long count = 0;
	int ch, nthreads = 2, len;

	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case 'k': keypath = optarg; break;
		case 'i': kid = optarg; break;
		case 'n': count = atol(optarg); break;
		case 't': nthreads = atoi(optarg); break;
		case 'T': j.team = optarg; break;
		case 'a': j.aud = optarg; break;
		case 'c': j.cn = optarg; break;
		case 'l': j.ttl = atol(optarg); break;
		default: die("usage: mint --key PEM --kid KID --count N [--threads T] ...");
		}
	}
	if (keypath == NULL || kid == NULL || count < 1 || count > 10000000 ||
	    nthreads < 1 || nthreads > MAX_THREADS)
		die("usage: mint --key PEM --kid KID --count 1..10000000 [--threads 1..16]");
	len = snprintf(header, sizeof(header), "{\"alg\":\"RS256\",\"kid\":\"%s\",\"typ\":\"JWT\"}", kid);
	if (len < 0 || (size_t)len >= sizeof(header))
		die("--kid too long");
	b64url(hb64, (const unsigned char *)header, (size_t)len);
	j.key = load_key(keypath);
	j.header_b64 = hb64;
	j.now = (long)time(NULL);
	if ((j.out = calloc((size_t)count, sizeof(char *))) == NULL)
		die("out of memory");
	mint_all(&j, (size_t)count, nthreads);
	for (long i = 0; i < count; i++) {
		puts(j.out[i]);
		free(j.out[i]);
	}
	free(j.out);
	EVP_PKEY_free(j.key);
	return fflush(stdout) == 0 ? 0 : 1;
}
