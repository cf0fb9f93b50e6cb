/*
 * lokijson: Loki JSON push, validated and re-serialised in one pass.  See
 * lokijson.h for the grammar and the output form.
 *
 * Per case, what Loki does (pkg/util/unmarshal/unmarshal.go decodes the body
 * with jsoniter into loghttp.PushRequest; pkg/loghttp/query.go
 * LogProtoStream.UnmarshalJSON, unmarshalHTTPToLogProtoEntry and
 * labels.go LabelSet.UnmarshalJSON read the rest with jsonparser):
 * - "streams": jsoniter's one-field struct decoder compares an FNV hash of
 *   the key, escapes decoded and A-Z folded; a repeated key is decoded
 *   again, the last wins; a key whose hash differs is skipped.
 * - "stream" / "values": exact match (2.8 and main); a repeat wins (main)
 *   or merges / appends (2.8); other keys are skipped; "values": null is
 *   no entries.
 * - label maps: jsonparser.ParseString of any value type, so 7 or true
 *   becomes a label value; a repeated name, the last wins.
 * - entries: null entries skipped; [ts] and [ts, line, {}, extra] are
 *   accepted by main; 2.8 takes exactly two elements.
 * kakikomi refuses every one of those lenient or ambiguous forms.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "labels.h"
#include "lokijson.h"

#define NITEMS(a)	(sizeof(a) / sizeof((a)[0]))

enum lj_key {
	K_STREAMS = 1,
	K_STREAM = 2,
	K_VALUES = 4
};

struct lj {
	const uint8_t			*p;
	const uint8_t			*start;
	const uint8_t			*end;
	const struct payload_rule	*rule;
	struct loki_stats		*st;
	struct pb_buf			*out;
	struct pb_buf			 arena;	/* one object's decoded strings */
	struct pb_buf			 key;	/* one decoded schema key */
	struct pb_buf			 text;	/* labels that follow "values" */
	struct labels_set		 ls;
	int				 rc;	/* enum labels_outcome once stopped */
	int				 found;	/* a stream was rewritten */
	uint64_t			 nstream;
	char				*reason;
	size_t				 reasonsz;
};

static int
lj_fail(struct lj *j, const char *why)
{
	j->rc = LABELS_MALFORMED;
	snprintf(j->reason, j->reasonsz, "malformed Loki push: JSON: %s at "
	    "byte %zu", why, (size_t)(j->p - j->start));
	return -1;
}

static int
lj_nomem(struct lj *j)
{
	j->rc = LABELS_NOMEM;
	return -1;
}

/*
 * pb_put_raw() without the call while the reserved room lasts: the output
 * of a pass is never longer than its input, so that is nearly always.
 */
static inline void
lj_put(struct pb_buf *b, const void *p, size_t n)
{
	if (n > 0 && n <= b->cap - b->len && !b->failed) {
		memcpy(b->data + b->len, p, n);
		b->len += n;
	} else
		pb_put_raw(b, p, n);
}

/* The next byte after RFC 8259 whitespace, or -1 at the end. */
static int
lj_peek(struct lj *j)
{
	while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' ||
	    *j->p == '\n' || *j->p == '\r'))
		j->p++;
	return j->p < j->end ? *j->p : -1;
}

static int
lj_eat(struct lj *j, int c, const char *why)
{
	if (lj_peek(j) != c)
		return lj_fail(j, why);
	j->p++;
	return 0;
}

/*
 * Steps through an array or object: 1 when an element follows (the comma
 * before all but the first consumed), 0 after `close`, -1 malformed.
 */
static int
lj_more(struct lj *j, int close, size_t *n)
{
	int	c = lj_peek(j);

	if (c == close) {
		j->p++;
		return 0;
	}
	if (*n > 0) {
		if (c != ',')
			return lj_fail(j, close == ']' ? "expected ',' or ']'" :
			    "expected ',' or '}'");
		j->p++;
	}
	(*n)++;
	return 1;
}

/* Strings */

static void
lj_put_escape(struct pb_buf *b, uint8_t c)
{
	static const char	hex[] = "0123456789abcdef";
	char			e[6] = { '\\', 'u', '0', '0' };

	switch (c) {
	case '"':
	case '\\':
		e[1] = (char)c;
		break;
	case '\b':
		e[1] = 'b';
		break;
	case '\f':
		e[1] = 'f';
		break;
	case '\n':
		e[1] = 'n';
		break;
	case '\r':
		e[1] = 'r';
		break;
	case '\t':
		e[1] = 't';
		break;
	default:
		e[4] = hex[c >> 4];
		e[5] = hex[c & 15];
		lj_put(b, e, 6);
		return;
	}
	lj_put(b, e, 2);
}

static int
lj_plain(uint8_t c)
{
	return c >= 0x20 && c != '"' && c != '\\';
}

/*
 * 1 when none of the 8 bytes at p needs a look of its own: each is below
 * 0x80 and lj_plain().  Word-wide tests (no byte below 0x20, none equal to
 * '"' or '\\', no high bit) with no false negatives: a byte they flag is
 * looked at one by one.  Strings are most of a push's bytes.
 */
static int
lj_plain8(const uint8_t *p)
{
	const uint64_t ones = 0x0101010101010101ULL, high = ones * 0x80;
	uint64_t x, q, bs;

	memcpy(&x, p, sizeof(x));
	q = x ^ (ones * '"');
	bs = x ^ (ones * '\\');
	return ((((x - ones * 0x20) & ~x) | ((q - ones) & ~q) |
	    ((bs - ones) & ~bs) | x) & high) == 0;
}

/* Appends (s, n), valid UTF-8, as a canonical JSON string. */
static void
lj_put_string(struct pb_buf *b, const uint8_t *s, size_t n)
{
	size_t	i = 0, run;

	lj_put(b, "\"", 1);
	while (i < n) {
		for (run = i; i < n && lj_plain(s[i]); i++)
			;
		lj_put(b, s + run, i - run);
		if (i < n)
			lj_put_escape(b, s[i++]);
	}
	lj_put(b, "\"", 1);
}

/* Length of the well-formed UTF-8 sequence (RFC 3629) at p, or 0. */
static size_t
lj_utf8(const uint8_t *p, const uint8_t *end)
{
	size_t	n, i;
	uint8_t	lo = 0x80, hi = 0xbf;

	if (*p >= 0xc2 && *p <= 0xdf)
		n = 2;
	else if (*p >= 0xe0 && *p <= 0xef)
		n = 3;
	else if (*p >= 0xf0 && *p <= 0xf4)
		n = 4;
	else
		return 0;
	if (*p == 0xe0)
		lo = 0xa0;
	else if (*p == 0xed)
		hi = 0x9f;	/* no encoded surrogates */
	else if (*p == 0xf0)
		lo = 0x90;
	else if (*p == 0xf4)
		hi = 0x8f;	/* nothing above U+10FFFF */
	if ((size_t)(end - p) < n || p[1] < lo || p[1] > hi)
		return 0;
	for (i = 2; i < n; i++)
		if (p[i] < 0x80 || p[i] > 0xbf)
			return 0;
	return n;
}

static void
lj_put_cp(struct pb_buf *b, uint32_t cp, int canon)
{
	uint8_t	u[4];
	size_t	n;

	if (canon && cp < 0x80 && !lj_plain((uint8_t)cp)) {
		lj_put_escape(b, (uint8_t)cp);
		return;
	}
	if (cp < 0x80) {
		u[0] = (uint8_t)cp;
		n = 1;
	} else if (cp < 0x800) {
		u[0] = (uint8_t)(0xc0 | cp >> 6);
		n = 2;
	} else if (cp < 0x10000) {
		u[0] = (uint8_t)(0xe0 | cp >> 12);
		n = 3;
	} else {
		u[0] = (uint8_t)(0xf0 | cp >> 18);
		n = 4;
	}
	if (n > 1) {
		u[n - 1] = (uint8_t)(0x80 | (cp & 0x3f));
		if (n > 2)
			u[n - 2] = (uint8_t)(0x80 | (cp >> 6 & 0x3f));
		if (n > 3)
			u[1] = (uint8_t)(0x80 | (cp >> 12 & 0x3f));
	}
	lj_put(b, u, n);
}

/* Four hex digits at p (bounds checked by the caller); -1 if not hex. */
static int
lj_hex4(const uint8_t *p, uint32_t *v)
{
	int	i;

	*v = 0;
	for (i = 0; i < 4; i++) {
		*v <<= 4;
		if (p[i] >= '0' && p[i] <= '9')
			*v |= p[i] - '0';
		else if ((p[i] | 0x20) >= 'a' && (p[i] | 0x20) <= 'f')
			*v |= (p[i] | 0x20) - 'a' + 10;
		else
			return -1;
	}
	return 0;
}

/* \uXXXX, a surrogate pair as one; the end, or NULL (lone surrogates). */
static const uint8_t *
lj_unicode(const uint8_t *p, const uint8_t *end, uint32_t *cp)
{
	uint32_t	lo;

	if (end - p < 6 || lj_hex4(p + 2, cp) == -1)
		return NULL;
	p += 6;
	if (*cp >= 0xdc00 && *cp <= 0xdfff)
		return NULL;
	if (*cp < 0xd800 || *cp > 0xdbff)
		return p;
	if (end - p < 6 || p[0] != '\\' || p[1] != 'u' ||
	    lj_hex4(p + 2, &lo) == -1 || lo < 0xdc00 || lo > 0xdfff)
		return NULL;
	*cp = 0x10000 + ((*cp - 0xd800) << 10) + (lo - 0xdc00);
	return p + 6;
}

/* The escape at p (a backslash) into b; the end, or NULL. */
static const uint8_t *
lj_escape(const uint8_t *p, const uint8_t *end, struct pb_buf *b, int canon)
{
	static const char	from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
	const char		*c;
	uint32_t		 cp;

	if (end - p < 2)
		return NULL;
	if (p[1] == 'u') {
		if ((p = lj_unicode(p, end, &cp)) == NULL)
			return NULL;
	} else if (p[1] != '\0' && (c = strchr(from, p[1])) != NULL) {
		cp = (uint8_t)to[c - from];
		p += 2;
	} else
		return NULL;
	lj_put_cp(b, cp, canon);
	return p;
}

/*
 * The string at j->p into b: decoded UTF-8, or with canon a canonical JSON
 * string (quotes included).  Decoded, a string never outgrows its source.
 */
static int
lj_string(struct lj *j, struct pb_buf *b, int canon)
{
	const uint8_t	*p = j->p + 1, *run;
	size_t		 n;

	if (canon)
		lj_put(b, "\"", 1);
	for (;;) {
		for (run = p; j->end - p >= 8 && lj_plain8(p); p += 8)
			;
		for (; p < j->end && *p < 0x80 && lj_plain(*p); p++)
			;
		lj_put(b, run, (size_t)(p - run));
		j->p = p;
		if (p == j->end)
			return lj_fail(j, "unterminated string");
		if (*p == '"')
			break;
		if (*p == '\\') {
			if ((p = lj_escape(p, j->end, b, canon)) == NULL)
				return lj_fail(j, "invalid escape or lone "
				    "surrogate in a string");
		} else if (*p < 0x20)
			return lj_fail(j, "a control character in a string");
		else if ((n = lj_utf8(p, j->end)) == 0)
			return lj_fail(j, "invalid UTF-8 in a string");
		else {
			lj_put(b, p, n);
			p += n;
		}
	}
	j->p = p + 1;
	if (canon)
		lj_put(b, "\"", 1);
	return 0;
}

static int
lj_fold_eq(const struct pb_buf *k, const char *lower)
{
	size_t	i;
	uint8_t	c;

	if (k->len != strlen(lower))
		return 0;
	for (i = 0; i < k->len; i++) {
		c = k->data[i];
		if (c >= 'A' && c <= 'Z')
			c += 'a' - 'A';
		if (c != (uint8_t)lower[i])
			return 0;
	}
	return 1;
}

/* A schema key and its ':'; its enum lj_key, or -1. */
static int
lj_key(struct lj *j, int allowed, int *seen)
{
	static const struct {
		const char	*name;
		int		 id;
	} keys[] = {
		{ "streams", K_STREAMS },
		{ "stream", K_STREAM },
		{ "values", K_VALUES }
	};
	size_t	i;

	if (lj_peek(j) != '"')
		return lj_fail(j, "expected a key");
	j->key.len = 0;
	if (lj_string(j, &j->key, 0) == -1)
		return -1;
	for (i = 0; i < NITEMS(keys); i++)
		if ((keys[i].id & allowed) && lj_fold_eq(&j->key, keys[i].name))
			break;
	if (i == NITEMS(keys))
		return lj_fail(j, "unknown key");
	if (*seen & keys[i].id)
		return lj_fail(j, "a key repeats (keys match case-insensitively)");
	*seen |= keys[i].id;
	if (lj_eat(j, ':', "expected ':'") == -1)
		return -1;
	return keys[i].id;
}

/* Label maps and metadata */

/* Bytes from p to the first '}' outside a string (or to the end). */
static size_t
lj_span(const uint8_t *p, const uint8_t *end)
{
	size_t	i, n = (size_t)(end - p);
	int	instr = 0;

	for (i = 0; i < n; i++) {
		if (instr) {
			if (p[i] == '\\')
				i++;
			else if (p[i] == '"')
				instr = 0;
		} else if (p[i] == '"')
			instr = 1;
		else if (p[i] == '}')
			break;
	}
	return i < n ? i : n;
}

/* One "name": "value" pair of an open object into j->ls. */
static int
lj_pair(struct lj *j)
{
	size_t	name, value;

	if (j->ls.n == LOKIJSON_MAX_PAIRS)
		return lj_fail(j, "more than 1024 labels in one object");
	if (lj_peek(j) != '"')
		return lj_fail(j, "expected a label name");
	name = j->arena.len;
	if (lj_string(j, &j->arena, 0) == -1 ||
	    lj_eat(j, ':', "expected ':'") == -1)
		return -1;
	if (lj_peek(j) != '"')
		return lj_fail(j, "a label value is not a string");
	value = j->arena.len;
	if (lj_string(j, &j->arena, 0) == -1)
		return -1;
	if (labels_add(&j->ls, j->arena.data + name, value - name,
	    j->arena.data + value, j->arena.len - value) == -1)
		return lj_nomem(j);
	return 0;
}

/*
 * A flat object of string pairs into j->ls, names checked, sorted, unique.
 * The arena is sized for the whole object first, so views never move.
 */
static int
lj_pairs(struct lj *j, int meta)
{
	const struct labels_pair	*v;
	size_t				 n = 0, i, cap;
	int				 rc;

	if (lj_eat(j, '{', meta ? "structured metadata is not an object" :
	    "\"stream\" is not an object") == -1)
		return -1;
	labels_set_reset(&j->ls);
	j->arena.len = 0;
	if (pb_claim(&j->arena, lj_span(j->p, j->end) + 1) == NULL)
		return lj_nomem(j);
	j->arena.len = 0;
	cap = j->arena.cap;
	while ((rc = lj_more(j, '}', &n)) == 1)
		if (lj_pair(j) == -1)
			return -1;
	if (rc == -1)
		return -1;
	if (j->arena.cap != cap)	/* cannot happen: see lj_string */
		return lj_nomem(j);
	for (i = 0, v = j->ls.v; i < j->ls.n; i++)
		if (!labels_valid_name(v[i].name, v[i].nlen) || (meta &&
		    memmem(v[i].name, v[i].nlen, "__", 2) != NULL))
			return lj_fail(j, meta ? "invalid structured metadata "
			    "name" : "invalid label name");
	if (labels_sort_unique(&j->ls) != NULL)
		return lj_fail(j, meta ? "an entry repeats a structured "
		    "metadata name" : "a stream repeats a label name");
	return 0;
}

static void
lj_put_pairs(struct pb_buf *b, const struct labels_set *ls)
{
	size_t	i;

	lj_put(b, "{", 1);
	for (i = 0; i < ls->n; i++) {
		if (i > 0)
			lj_put(b, ",", 1);
		lj_put_string(b, ls->v[i].name, ls->v[i].nlen);
		lj_put(b, ":", 1);
		lj_put_string(b, ls->v[i].value, ls->v[i].vlen);
	}
	lj_put(b, "}", 1);
}

/* Appends n bytes of src at offset `at` of b, moving what follows. */
static void
lj_insert(struct pb_buf *b, size_t at, const uint8_t *src, size_t n)
{
	size_t	tail = b->len - at;

	if (pb_claim(b, n) == NULL)
		return;
	memmove(b->data + at + n, b->data + at, tail);
	memcpy(b->data + at, src, n);
}

/*
 * The "stream" member: checked against the rule (a rewrite sets the site's
 * value) and written; at `at` when "values" came first (SIZE_MAX: not).
 */
static int
lj_labels(struct lj *j, size_t at)
{
	struct pb_buf	*b = at == SIZE_MAX ? j->out : &j->text;

	if (lj_pairs(j, 0) == -1)
		return -1;
	if (labels_verdict(&j->ls, j->rule) != LABELS_OK) {
		if (j->rule->mode == MISMATCH_REJECT) {
			labels_violation(j->reason, j->reasonsz, "stream",
			    &j->ls, j->rule);
			j->rc = LABELS_REJECT;
			return -1;
		}
		if (labels_enforce(&j->ls, j->rule) == -1)
			return lj_nomem(j);
		j->found = 1;
		j->st->rewritten++;
	}
	j->text.len = 0;
	lj_put(b, "\"stream\":", 9);
	lj_put_pairs(b, &j->ls);
	if (at != SIZE_MAX) {
		lj_put(b, ",", 1);
		if (pb_buf_failed(b))
			return lj_nomem(j);
		lj_insert(j->out, at, j->text.data, j->text.len);
	}
	return 0;
}

/* Entries */

static int
lj_metadata(struct lj *j)
{
	char	what[64];

	if (lj_pairs(j, 1) == -1)
		return -1;
	if (labels_verdict(&j->ls, j->rule) == LABELS_FOREIGN) {
		snprintf(what, sizeof(what), "structured metadata of stream %"
		    PRIu64, j->nstream);
		labels_violation(j->reason, j->reasonsz, what, &j->ls, j->rule);
		j->rc = LABELS_REJECT;
		return -1;
	}
	if (j->ls.n > 0) {
		lj_put(j->out, ",", 1);
		lj_put_pairs(j->out, &j->ls);
	}
	return 0;
}

/* A string of [-]digits within int64 (strconv.ParseInt), no escapes. */
static int
lj_timestamp(struct lj *j)
{
	const uint8_t	*p, *first;
	uint64_t	 v = 0, max = INT64_MAX, d, lim;
	size_t		 digits = 0;
	int		 neg = 0;

	if (lj_peek(j) != '"')
		return lj_fail(j, "a timestamp is not a string");
	p = j->p + 1;
	if (p < j->end && *p == '-') {
		neg = 1;
		max++;
		p++;
	}
	/* v * 10 + d > max exactly when v > lim, or v == lim and d > max % 10 */
	lim = max / 10;
	for (first = p; p < j->end && *p >= '0' && *p <= '9'; p++, digits++) {
		d = *p - '0';
		if (v > lim || (v == lim && d > max % 10))
			return lj_fail(j, "a timestamp is out of int64 range");
		v = v * 10 + d;
	}
	if (digits == 0 || p == j->end || *p != '"')
		return lj_fail(j, "a timestamp is not decimal nanoseconds");
	j->p = p + 1;
	/* v in decimal is its digits without leading zeros ("0" for zero;
	 * -0 is 0) */
	while (p - first > 1 && *first == '0')
		first++;
	lj_put(j->out, neg && v != 0 ? "\"-" : "\"", neg && v != 0 ? 2 : 1);
	lj_put(j->out, first, (size_t)(p - first));
	lj_put(j->out, "\"", 1);
	return 0;
}

static int
lj_entry(struct lj *j)
{
	if (lj_eat(j, '[', "an entry is not an array") == -1)
		return -1;
	lj_put(j->out, "[", 1);
	if (lj_timestamp(j) == -1 ||
	    lj_eat(j, ',', "an entry has no line") == -1)
		return -1;
	lj_put(j->out, ",", 1);
	if (lj_peek(j) != '"')
		return lj_fail(j, "a line is not a string");
	if (lj_string(j, j->out, 1) == -1)
		return -1;
	if (lj_peek(j) == ',') {
		j->p++;
		if (lj_metadata(j) == -1)
			return -1;
	}
	if (lj_eat(j, ']', "an entry is [\"<ns>\", \"<line>\"] or "
	    "[\"<ns>\", \"<line>\", {metadata}]") == -1)
		return -1;
	lj_put(j->out, "]", 1);
	j->st->entries++;
	return 0;
}

static int
lj_values(struct lj *j)
{
	size_t	n = 0;
	int	rc;

	if (lj_eat(j, '[', "\"values\" is not an array") == -1)
		return -1;
	lj_put(j->out, "\"values\":[", 10);
	while ((rc = lj_more(j, ']', &n)) == 1) {
		if (n > 1)
			lj_put(j->out, ",", 1);
		if (lj_entry(j) == -1)
			return -1;
	}
	lj_put(j->out, "]", 1);
	return rc;
}

/* Streams */

static int
lj_stream(struct lj *j)
{
	size_t	n = 0, base;
	int	seen = 0, k, rc;

	j->nstream++;
	if (lj_eat(j, '{', "a stream is not an object") == -1)
		return -1;
	lj_put(j->out, "{", 1);
	base = j->out->len;
	while ((rc = lj_more(j, '}', &n)) == 1) {
		if ((k = lj_key(j, K_STREAM | K_VALUES, &seen)) == -1)
			return -1;
		if (k == K_STREAM)
			rc = lj_labels(j, seen & K_VALUES ? base : SIZE_MAX);
		else {
			if (seen & K_STREAM)
				lj_put(j->out, ",", 1);
			rc = lj_values(j);
		}
		if (rc == -1)
			return -1;
	}
	if (rc == -1)
		return -1;
	if (seen != (K_STREAM | K_VALUES))
		return lj_fail(j, "a stream needs a \"stream\" object and a "
		    "\"values\" array");
	lj_put(j->out, "}", 1);
	j->st->streams++;
	return 0;
}

static int
lj_document(struct lj *j)
{
	size_t	n = 0, ns;
	int	seen = 0, rc;

	if (lj_eat(j, '{', "the body is not {\"streams\": [...]}") == -1)
		return -1;
	lj_put(j->out, "{\"streams\":[", 12);
	while ((rc = lj_more(j, '}', &n)) == 1) {
		if (lj_key(j, K_STREAMS, &seen) == -1 ||
		    lj_eat(j, '[', "\"streams\" is not an array") == -1)
			return -1;
		ns = 0;
		while ((rc = lj_more(j, ']', &ns)) == 1) {
			if (ns > 1)
				lj_put(j->out, ",", 1);
			if (lj_stream(j) == -1)
				return -1;
		}
		if (rc == -1)
			return -1;
	}
	if (rc == -1)
		return -1;
	if (seen == 0)
		return lj_fail(j, "the body is not {\"streams\": [...]}");
	lj_put(j->out, "]}", 2);
	if (lj_peek(j) != -1)
		return lj_fail(j, "data after the document");
	return 0;
}

int
lokijson_check(const uint8_t *buf, size_t len,
    const struct payload_rule *rule, struct loki_stats *st,
    struct pb_buf *out, char *reason, size_t reasonsz)
{
	struct lj	j;

	memset(&j, 0, sizeof(j));
	memset(st, 0, sizeof(*st));
	j.p = j.start = buf;
	j.end = buf + len;
	j.rule = rule;
	j.st = st;
	j.out = out;
	j.reason = reason;
	j.reasonsz = reasonsz;
	labels_set_init(&j.ls);
	pb_buf_init(out, len + len / 8 + 64);
	if (lj_document(&j) == 0)
		j.rc = j.found ? LABELS_REWRITE : LABELS_PASS;
	if (j.rc <= LABELS_REWRITE && (pb_buf_failed(out) ||
	    pb_buf_failed(&j.key)))
		j.rc = LABELS_NOMEM;
	if (j.rc > LABELS_REWRITE)
		pb_buf_free(out);
	labels_set_free(&j.ls);
	pb_buf_free(&j.arena);
	pb_buf_free(&j.key);
	pb_buf_free(&j.text);
	return j.rc;
}
