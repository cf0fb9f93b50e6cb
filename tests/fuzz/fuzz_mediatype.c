/*
 * The strict media-type and content-coding parsers.  Properties: never
 * crash; parse is total (all the bytes or -1) with views inside the input;
 * a parsed type written back canonically (lower-case names, values as
 * token or quoted-string) parses to the same type, names and values.
 */
#include <string.h>

#include "fuzz_common.h"
#include "mediatype.h"

#define CANON_MAX	4096	/* inputs over 1024 bytes are refused */

static int
lower(int c)
{
	return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c;
}

static int
inside(const char *p, size_t n, const uint8_t *data, size_t size)
{
	return (const uint8_t *)p >= data && (const uint8_t *)p + n <= data + size;
}

/* The value as its receiver means it: quotes and quoted-pairs undone. */
static size_t
unescape(const struct mediatype_param *p, char *out)
{
	size_t	i, n = 0;

	for (i = 0; i < p->vlen; i++) {
		if (p->quoted && p->value[i] == '\\')
			i++;
		out[n++] = p->value[i];
	}
	return n;
}

static int
tokenish(const char *v, size_t n)
{
	const char	*errstr, *c;
	size_t		 cl;

	return mediatype_coding(v, n, &c, &cl, &errstr) == (int)n && cl == n;
}

static void
put(char *buf, size_t *at, const char *s, size_t n, int fold)
{
	FUZZ_REQUIRE(*at + n < CANON_MAX);
	for (size_t i = 0; i < n; i++)
		buf[(*at)++] = fold ? (char)lower((unsigned char)s[i]) : s[i];
}

static size_t
canonical(const struct mediatype *mt, char *buf)
{
	char	v[CANON_MAX];
	size_t	at = 0, n;

	put(buf, &at, mt->type, mt->tlen, 1);
	put(buf, &at, "/", 1, 0);
	put(buf, &at, mt->subtype, mt->slen, 1);
	for (size_t i = 0; i < mt->nparams; i++) {
		put(buf, &at, ";", 1, 0);
		put(buf, &at, mt->params[i].name, mt->params[i].nlen, 1);
		put(buf, &at, "=", 1, 0);
		n = unescape(&mt->params[i], v);
		if (tokenish(v, n)) {
			put(buf, &at, v, n, 0);
			continue;
		}
		put(buf, &at, "\"", 1, 0);
		for (size_t j = 0; j < n; j++) {
			if (v[j] == '"' || v[j] == '\\')
				put(buf, &at, "\\", 1, 0);
			put(buf, &at, &v[j], 1, 0);
		}
		put(buf, &at, "\"", 1, 0);
	}
	return at;
}

static int
same_fold(const char *a, size_t an, const char *b, size_t bn)
{
	if (an != bn)
		return 0;
	for (size_t i = 0; i < an; i++)
		if (lower((unsigned char)a[i]) != lower((unsigned char)b[i]))
			return 0;
	return 1;
}

static void
roundtrip(const struct mediatype *a)
{
	struct mediatype	 b;
	const char		*errstr;
	char			 buf[CANON_MAX], va[CANON_MAX], vb[CANON_MAX];
	size_t			 n = canonical(a, buf), la, lb;

	FUZZ_REQUIRE(mediatype_parse(buf, n, &b, &errstr) == (int)n);
	FUZZ_REQUIRE(same_fold(a->type, a->tlen, b.type, b.tlen));
	FUZZ_REQUIRE(same_fold(a->subtype, a->slen, b.subtype, b.slen));
	FUZZ_REQUIRE(a->nparams == b.nparams);
	for (size_t i = 0; i < a->nparams; i++) {
		FUZZ_REQUIRE(same_fold(a->params[i].name, a->params[i].nlen,
		    b.params[i].name, b.params[i].nlen));
		la = unescape(&a->params[i], va);
		lb = unescape(&b.params[i], vb);
		FUZZ_REQUIRE(la == lb && memcmp(va, vb, la) == 0);
		va[la] = '\0';		/* no NUL inside: parse refuses it */
		FUZZ_REQUIRE(mediatype_value_is(&b.params[i], va, 0));
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char		*s = (const char *)data, *errstr, *c;
	struct mediatype	 mt;
	size_t			 cl;
	int			 rc;

	rc = mediatype_parse(s, size, &mt, &errstr);
	FUZZ_REQUIRE(rc == -1 || rc == (int)size);
	if (rc != -1) {
		FUZZ_REQUIRE(inside(mt.type, mt.tlen, data, size) &&
		    inside(mt.subtype, mt.slen, data, size));
		for (size_t i = 0; i < mt.nparams; i++)
			FUZZ_REQUIRE(inside(mt.params[i].name, mt.params[i].nlen,
			    data, size) && inside(mt.params[i].value,
			    mt.params[i].vlen, data, size));
		roundtrip(&mt);
	}
	rc = mediatype_coding(s, size, &c, &cl, &errstr);
	FUZZ_REQUIRE(rc == -1 || rc == (int)size);
	FUZZ_REQUIRE(rc == -1 || c == NULL || inside(c, cl, data, size));
	return 0;
}
