/*
 * mediatype: strict parsers for Content-Type (RFC 9110 §8.3.1, parameters
 * §5.6.6) and Content-Encoding (§8.4), on plain buffers.
 *
 * kakikomi never forwards the client's strings, so these parsers decide alone
 * what a request means; they accept only what has one reading:
 *   type "/" subtype *( OWS ";" OWS name "=" ( token / quoted-string ) ) OWS
 * with ASCII tchar tokens, no whitespace around "=", no empty parameter, at
 * most MEDIATYPE_MAX_PARAMS parameters and no name twice (in any case).  Any
 * byte outside printable ASCII (except SP/HTAB as OWS or inside quotes) is
 * refused, obs-text included, so a Unicode look-alike such as U+0130 or a
 * trailing U+00A0 (both of which Go's mime.ParseMediaType folds into ASCII)
 * never parses.  Leading and trailing OWS are allowed.
 *
 * Both return the number of bytes used (always len) or -1 with *errstr set to
 * a static one-line reason (and *out zeroed).  Views point into the input; nothing allocates
 * and the input need not be NUL-terminated.
 */
#ifndef KAKIKOMI_MEDIATYPE_H
#define KAKIKOMI_MEDIATYPE_H

#include <stddef.h>

#define MEDIATYPE_MAX_PARAMS	8

struct mediatype_param {
	const char	*name;
	size_t		 nlen;
	const char	*value;		/* a token, or a quoted-string's inside */
	size_t		 vlen;		/* with its quoted-pairs still escaped */
	int		 quoted;
};

struct mediatype {
	const char		*type;
	size_t			 tlen;
	const char		*subtype;
	size_t			 slen;
	struct mediatype_param	 params[MEDIATYPE_MAX_PARAMS];
	size_t			 nparams;
};

int	mediatype_parse(const char *s, size_t len, struct mediatype *out,
	    const char **errstr);

/* 1 when out's type and subtype are `type`/`subtype` (ASCII, any case). */
int	mediatype_is(const struct mediatype *mt, const char *type,
	    const char *subtype);

/* The parameter called `name` (any case), or NULL. */
const struct mediatype_param *mediatype_param(const struct mediatype *mt,
	    const char *name);

/*
 * 1 when the parameter's value, unquoted and unescaped, is `want`: exactly,
 * or in any ASCII case when icase is set.
 */
int	mediatype_value_is(const struct mediatype_param *p, const char *want,
	    int icase);

/*
 * Content-Encoding: empty (or only OWS) gives *coding = NULL, *clen = 0 (no
 * coding, as Go's Header.Get reads it); else exactly one coding token, as a
 * view.  A list ("gzip, gzip") is refused: kakikomi decodes one coding.
 */
int	mediatype_coding(const char *s, size_t len, const char **coding,
	    size_t *clen, const char **errstr);

#endif
