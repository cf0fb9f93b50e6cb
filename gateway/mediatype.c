/*
 * mediatype: strict Content-Type and Content-Encoding parsers.  See
 * mediatype.h for the grammar and the contract.
 */
#include <string.h>

#include "mediatype.h"

/* Longer header values are refused: real ones are under 100 bytes. */
#define MEDIATYPE_MAX_LEN	1024

static int
lower(int c)
{
	return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c;
}

/* ASCII case-insensitive equality of n bytes (inputs are ASCII only). */
static int
ieq(const char *a, const char *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (lower((unsigned char)a[i]) != lower((unsigned char)b[i]))
			return 0;
	return 1;
}

/* RFC 9110 §5.6.2 tchar. */
static int
is_tchar(unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9'))
		return 1;
	return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static size_t
token(const char *p, const char *e)
{
	size_t	n = 0;

	while (p + n < e && is_tchar((unsigned char)p[n]))
		n++;
	return n;
}

static void
skip_ows(const char **p, const char *e)
{
	while (*p < e && (**p == ' ' || **p == '\t'))
		(*p)++;
}

/* Printable ASCII, SP and HTAB only: no obs-text, no control byte. */
static int
printable(const char *s, size_t len, const char **errstr)
{
	if (len > MEDIATYPE_MAX_LEN) {
		*errstr = "header value too long";
		return 0;
	}
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c >= 0x80) {
			*errstr = "non-ASCII byte in header value";
			return 0;
		}
		if ((c < 0x20 && c != '\t') || c == 0x7f) {
			*errstr = "control byte in header value";
			return 0;
		}
	}
	return 1;
}

/* The inside of a quoted-string starting at *pp (on the opening quote). */
static int
quoted(const char **pp, const char *e, struct mediatype_param *mp,
    const char **errstr)
{
	const char	*p = *pp + 1;

	mp->value = p;
	while (p < e && *p != '"') {
		if (*p == '\\' && ++p == e)
			break;
		p++;
	}
	if (p == e) {
		*errstr = "unterminated quoted string in media type parameter";
		return -1;
	}
	mp->vlen = (size_t)(p - mp->value);
	mp->quoted = 1;
	*pp = p + 1;
	return 0;
}

static int
value(const char **pp, const char *e, struct mediatype_param *mp,
    const char **errstr)
{
	if (*pp < e && **pp == '"') {
		if (quoted(pp, e, mp, errstr) == -1)
			return -1;
	} else {
		mp->value = *pp;
		mp->vlen = token(*pp, e);
		*pp += mp->vlen;
	}
	if (mp->vlen == 0) {
		*errstr = "empty or invalid media type parameter value";
		return -1;
	}
	return 0;
}

/* One `name=value` at *pp (after ";" OWS). */
static int
param(const char **pp, const char *e, struct mediatype *out,
    const char **errstr)
{
	struct mediatype_param	*mp;
	const char		*p = *pp;
	size_t			 n = token(p, e);

	if (n == 0) {
		*errstr = p == e || *p == ';' ? "empty media type parameter" :
		    "media type parameter name is not a token";
		return -1;
	}
	if (out->nparams == MEDIATYPE_MAX_PARAMS) {
		*errstr = "too many media type parameters";
		return -1;
	}
	mp = &out->params[out->nparams];
	mp->name = p;
	mp->nlen = n;
	p += n;
	if (p == e || *p != '=') {
		*errstr = "media type parameter needs name=value without spaces";
		return -1;
	}
	p++;
	if (value(&p, e, mp, errstr) == -1)
		return -1;
	for (size_t i = 0; i < out->nparams; i++)
		if (out->params[i].nlen == n && ieq(out->params[i].name,
		    mp->name, n)) {
			*errstr = "repeated media type parameter";
			return -1;
		}
	out->nparams++;
	*pp = p;
	return 0;
}

static int
type_subtype(const char **pp, const char *e, struct mediatype *out,
    const char **errstr)
{
	const char	*p = *pp;

	out->type = p;
	if ((out->tlen = token(p, e)) == 0) {
		*errstr = "media type is not a token";
		return -1;
	}
	p += out->tlen;
	if (p == e || *p != '/') {
		*errstr = "media type needs type/subtype";
		return -1;
	}
	out->subtype = ++p;
	if ((out->slen = token(p, e)) == 0) {
		*errstr = "media subtype is not a token";
		return -1;
	}
	*pp = p + out->slen;
	return 0;
}

static int
parse(const char *p, const char *e, struct mediatype *out,
    const char **errstr)
{
	skip_ows(&p, e);
	if (type_subtype(&p, e, out, errstr) == -1)
		return -1;
	for (;;) {
		skip_ows(&p, e);
		if (p == e)
			return 0;
		if (*p != ';') {
			*errstr = "unexpected character after the media type";
			return -1;
		}
		p++;
		skip_ows(&p, e);
		if (param(&p, e, out, errstr) == -1)
			return -1;
	}
}

int
mediatype_parse(const char *s, size_t len, struct mediatype *out,
    const char **errstr)
{
	memset(out, 0, sizeof(*out));
	if (!printable(s, len, errstr) || parse(s, s + len, out, errstr) == -1) {
		memset(out, 0, sizeof(*out));
		return -1;
	}
	return (int)len;
}

int
mediatype_is(const struct mediatype *mt, const char *type, const char *subtype)
{
	return mt->tlen == strlen(type) && ieq(mt->type, type, mt->tlen) &&
	    mt->slen == strlen(subtype) && ieq(mt->subtype, subtype, mt->slen);
}

const struct mediatype_param *
mediatype_param(const struct mediatype *mt, const char *name)
{
	size_t	n = strlen(name);

	for (size_t i = 0; i < mt->nparams; i++)
		if (mt->params[i].nlen == n && ieq(mt->params[i].name, name, n))
			return &mt->params[i];
	return NULL;
}

int
mediatype_value_is(const struct mediatype_param *p, const char *want,
    int icase)
{
	size_t	i = 0, w = 0;
	int	c;

	for (; i < p->vlen; i++, w++) {
		if (p->quoted && p->value[i] == '\\')
			i++;		/* quoted() made sure a byte follows */
		c = (unsigned char)p->value[i];
		if (want[w] == '\0' || (icase ? lower(c) !=
		    lower((unsigned char)want[w]) : c != (unsigned char)want[w]))
			return 0;
	}
	return want[w] == '\0';
}

int
mediatype_coding(const char *s, size_t len, const char **coding,
    size_t *clen, const char **errstr)
{
	const char	*p = s, *e = s + len;

	if (!printable(s, len, errstr))
		return -1;
	skip_ows(&p, e);
	while (e > p && (e[-1] == ' ' || e[-1] == '\t'))
		e--;
	*coding = NULL;
	*clen = 0;
	if (p == e)
		return (int)len;
	if (token(p, e) != (size_t)(e - p)) {
		*errstr = memchr(p, ',', (size_t)(e - p)) != NULL ?
		    "more than one content coding" :
		    "content coding is not a token";
		return -1;
	}
	*coding = p;
	*clen = (size_t)(e - p);
	return (int)len;
}
