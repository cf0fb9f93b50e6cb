/*
 * labels: label-set views, the Loki labels-string parser, quoting and the
 * enforcement rule.  See labels.h for the contract.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "labels.h"

#define LABELS_FIRST_CAP	32
/* How much of a label set and of a value a refusal reason shows. */
#define DESCRIBE_MAX		200
#define VALUE_MAX		64
#define ALLOWED_MAX		120

static const char metric_name_label[] = "__name__";

void
labels_set_init(struct labels_set *ls)
{
	memset(ls, 0, sizeof(*ls));
}

void
labels_set_free(struct labels_set *ls)
{
	free(ls->v);
	free(ls->arena);
	memset(ls, 0, sizeof(*ls));
}

void
labels_set_reset(struct labels_set *ls)
{
	ls->n = 0;
}

static int
pairs_realloc(struct labels_set *ls, size_t cap)
{
	struct labels_pair	*v;

	if ((v = realloc(ls->v, cap * sizeof(*v))) == NULL) {
		ls->errstr = "out of memory";
		return -1;
	}
	ls->v = v;
	ls->cap = cap;
	return 0;
}

int
labels_grow(struct labels_set *ls)
{
	if (ls->n < ls->cap)
		return 0;
	if (ls->n >= LABELS_MAX) {
		ls->errstr = LABELS_MAX_REASON;
		return -1;
	}
	return pairs_realloc(ls, ls->cap == 0 ? LABELS_FIRST_CAP : ls->cap * 2);
}

/* The labels-string lexer. */

struct lexer {
	const uint8_t	*p;
	const uint8_t	*end;
	uint8_t		*out;		/* arena write position */
	const char	*errstr;
};

static int
is_name_start(uint8_t c, int colon)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
	    (colon && c == ':');
}

static int
is_name_char(uint8_t c, int colon)
{
	return is_name_start(c, colon) || (c >= '0' && c <= '9');
}

int
labels_valid_name(const uint8_t *name, size_t len)
{
	size_t	i;

	if (len == 0 || !is_name_start(name[0], 0))
		return 0;
	for (i = 1; i < len; i++)
		if (!is_name_char(name[i], 0))
			return 0;
	return 1;
}

static void
lex_ws(struct lexer *lx)
{
	while (lx->p < lx->end && (*lx->p == ' ' || *lx->p == '\t' ||
	    *lx->p == '\n' || *lx->p == '\r'))
		lx->p++;
}

/* Length of the name at lx->p (0: none there). */
static size_t
lex_name(struct lexer *lx, int colon)
{
	const uint8_t	*s = lx->p;

	if (lx->p == lx->end || !is_name_start(*lx->p, colon))
		return 0;
	while (lx->p < lx->end && is_name_char(*lx->p, colon))
		lx->p++;
	return (size_t)(lx->p - s);
}

static int
hexval(uint8_t c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return 99;
}

static void
put_utf8(struct lexer *lx, uint32_t r)
{
	uint8_t	*o = lx->out;

	if (r < 0x80)
		*o++ = (uint8_t)r;
	else if (r < 0x800) {
		*o++ = (uint8_t)(0xc0 | r >> 6);
		*o++ = (uint8_t)(0x80 | (r & 0x3f));
	} else if (r < 0x10000) {
		*o++ = (uint8_t)(0xe0 | r >> 12);
		*o++ = (uint8_t)(0x80 | ((r >> 6) & 0x3f));
		*o++ = (uint8_t)(0x80 | (r & 0x3f));
	} else {
		*o++ = (uint8_t)(0xf0 | r >> 18);
		*o++ = (uint8_t)(0x80 | ((r >> 12) & 0x3f));
		*o++ = (uint8_t)(0x80 | ((r >> 6) & 0x3f));
		*o++ = (uint8_t)(0x80 | (r & 0x3f));
	}
	lx->out = o;
}

/*
 * \ooo, \xhh, \uhhhh, \Uhhhhhhhh after the backslash and the letter (octal:
 * lx->p is on the first digit).  Bytes for \x and octal, UTF-8 otherwise,
 * as Go's strconv.UnquoteChar.
 */
static int
lex_numeric_escape(struct lexer *lx, int ndigits, int base, uint32_t max)
{
	uint32_t	x = 0;
	int		i, d;

	if (lx->end - lx->p < ndigits) {
		lx->errstr = "truncated escape sequence";
		return -1;
	}
	for (i = 0; i < ndigits; i++) {
		if ((d = hexval(*lx->p++)) >= base) {
			lx->errstr = "invalid digit in escape sequence";
			return -1;
		}
		x = x * (uint32_t)base + (uint32_t)d;
	}
	if (x > max || (x >= 0xd800 && x < 0xe000)) {
		lx->errstr = "escape sequence is an invalid code point";
		return -1;
	}
	if (max == 0xff)
		*lx->out++ = (uint8_t)x;
	else
		put_utf8(lx, x);
	return 0;
}

static int
lex_escape(struct lexer *lx, uint8_t quote)
{
	static const char	 simple[] = "a\ab\bf\fn\nr\rt\tv\v\\\\";
	const char		*s;
	uint8_t			 c;

	if (lx->p == lx->end) {
		lx->errstr = "unterminated quoted string";
		return -1;
	}
	c = *lx->p++;
	if (c == quote) {
		*lx->out++ = c;
		return 0;
	}
	for (s = simple; *s != '\0'; s += 2)
		if ((uint8_t)s[0] == c) {
			*lx->out++ = (uint8_t)s[1];
			return 0;
		}
	switch (c) {
	case '0': case '1': case '2': case '3':
	case '4': case '5': case '6': case '7':
		lx->p--;
		return lex_numeric_escape(lx, 3, 8, 0xff);
	case 'x':
		return lex_numeric_escape(lx, 2, 16, 0xff);
	case 'u':
		return lex_numeric_escape(lx, 4, 16, 0x10ffff);
	case 'U':
		return lex_numeric_escape(lx, 8, 16, 0x10ffff);
	}
	lx->errstr = "unknown escape sequence";
	return -1;
}

/* A quoted value, decoded into the arena. */
static int
lex_string(struct lexer *lx, const uint8_t **val, size_t *vlen)
{
	uint8_t	quote, c;

	if (lx->p == lx->end ||
	    (*lx->p != '"' && *lx->p != '\'' && *lx->p != '`')) {
		lx->errstr = "expected a quoted label value";
		return -1;
	}
	quote = *lx->p++;
	*val = lx->out;
	for (;;) {
		if (lx->p == lx->end || (*lx->p == '\n' && quote != '`')) {
			lx->errstr = "unterminated quoted string";
			return -1;
		}
		if ((c = *lx->p++) == quote)
			break;
		if (c == '\\' && quote != '`') {
			if (lex_escape(lx, quote) == -1)
				return -1;
		} else
			*lx->out++ = c;
	}
	*vlen = (size_t)(lx->out - *val);
	return 0;
}

static int
lex_pair(struct lexer *lx, struct labels_set *ls)
{
	const uint8_t	*name = lx->p, *val;
	size_t		 nlen, vlen;

	if ((nlen = lex_name(lx, 0)) == 0) {
		lx->errstr = "expected a label name";
		return -1;
	}
	lex_ws(lx);
	if (lx->p == lx->end || *lx->p != '=' ||
	    (lx->end - lx->p > 1 && lx->p[1] == '~')) {
		lx->errstr = "expected = after the label name (matchers are "
		    "not labels)";
		return -1;
	}
	lx->p++;
	lex_ws(lx);
	if (lex_string(lx, &val, &vlen) == -1)
		return -1;
	if (labels_add(ls, name, nlen, val, vlen) == -1) {
		lx->errstr = ls->errstr;
		return -1;
	}
	return 0;
}

/* From just after `{` to just after `}`. */
static int
lex_braces(struct lexer *lx, struct labels_set *ls)
{
	for (;;) {
		lex_ws(lx);
		if (lx->p < lx->end && *lx->p == '}')
			break;
		if (lex_pair(lx, ls) == -1)
			return -1;
		lex_ws(lx);
		if (lx->p < lx->end && *lx->p == ',') {
			lx->p++;
			continue;
		}
		if (lx->p < lx->end && *lx->p == '}')
			break;
		lx->errstr = lx->p == lx->end ? "unterminated label set" :
		    "expected , or } after a label";
		return -1;
	}
	lx->p++;
	return 0;
}

static int
labels_reserve_arena(struct labels_set *ls, size_t len)
{
	if (len <= ls->arenacap)
		return 0;
	free(ls->arena);
	ls->arenacap = 0;
	if ((ls->arena = malloc(len)) == NULL)
		return -1;
	ls->arenacap = len;
	return 0;
}

int
labels_parse(const uint8_t *s, size_t len, struct labels_set *ls,
    const char **errstr)
{
	struct lexer	 lx = { s, s + len, NULL, NULL };
	const uint8_t	*name;
	size_t		 nlen;

	labels_set_reset(ls);
	if (labels_reserve_arena(ls, len) == -1) {
		*errstr = "out of memory";
		return -1;
	}
	lx.out = ls->arena;
	lex_ws(&lx);
	name = lx.p;
	if ((nlen = lex_name(&lx, 1)) > 0 &&
	    labels_add(ls, (const uint8_t *)metric_name_label,
	    sizeof(metric_name_label) - 1, name, nlen) == -1) {
		*errstr = ls->errstr;
		return -1;
	}
	lex_ws(&lx);
	if (lx.p < lx.end && *lx.p == '{') {
		lx.p++;
		if (lex_braces(&lx, ls) == -1) {
			*errstr = lx.errstr;
			return -1;
		}
		lex_ws(&lx);
	} else if (nlen == 0) {
		*errstr = lx.p == lx.end ? "empty labels string" :
		    "expected { or a metric name";
		return -1;
	}
	if (lx.p != lx.end) {
		*errstr = "unexpected text after the label set";
		return -1;
	}
	return 0;
}

/* Sorting, lookup, enforcement. */

static int
pair_cmp(const void *a, const void *b)
{
	return labels_cmp(a, b);
}

const struct labels_pair *
labels_sort_unique(struct labels_set *ls)
{
	size_t	i;
	int	c;

	for (i = 1; i < ls->n; i++) {
		if ((c = pair_cmp(&ls->v[i - 1], &ls->v[i])) == 0)
			return &ls->v[i];
		if (c > 0)
			break;
	}
	if (i >= ls->n)
		return NULL;
	qsort(ls->v, ls->n, sizeof(ls->v[0]), pair_cmp);
	for (i = 1; i < ls->n; i++)
		if (pair_cmp(&ls->v[i - 1], &ls->v[i]) == 0)
			return &ls->v[i];
	return NULL;
}

struct labels_pair *
labels_find(struct labels_set *ls, const char *name, size_t nlen)
{
	size_t	i;

	for (i = 0; i < ls->n; i++)
		if (ls->v[i].nlen == nlen && (nlen == 0 ||
		    (ls->v[i].name[0] == (uint8_t)name[0] &&
		    memcmp(ls->v[i].name, name, nlen) == 0)))
			return &ls->v[i];
	return NULL;
}

/* 1 when value is one the rule allows. */
static int
value_allowed(const struct payload_rule *rule, const uint8_t *value,
    size_t vlen)
{
	size_t	i;

	/* vlen > 0: the first byte spares the strlen of most values */
	for (i = 0; i < rule->values->n; i++)
		if ((uint8_t)rule->values->v[i][0] == value[0] &&
		    strlen(rule->values->v[i]) == vlen &&
		    memcmp(rule->values->v[i], value, vlen) == 0)
			return 1;
	return 0;
}

enum labels_verdict
labels_pair_verdict(const struct labels_pair *p,
    const struct payload_rule *rule)
{
	if (p == NULL || p->vlen == 0)
		return LABELS_MISSING;
	return value_allowed(rule, p->value, p->vlen) ? LABELS_OK :
	    LABELS_FOREIGN;
}

enum labels_verdict
labels_verdict(struct labels_set *ls, const struct payload_rule *rule)
{
	return labels_pair_verdict(labels_find(ls, rule->label,
	    strlen(rule->label)), rule);
}

int
labels_pair_foreign(const struct payload_rule *rule, const uint8_t *name,
    size_t nlen, const uint8_t *value, size_t vlen)
{
	return nlen == strlen(rule->label) &&
	    memcmp(name, rule->label, nlen) == 0 && vlen > 0 &&
	    !value_allowed(rule, value, vlen);
}

int
labels_enforce(struct labels_set *ls, const struct payload_rule *rule)
{
	struct labels_pair	 want, *p;
	size_t			 i;
	int			 c = 1;

	want.name = (const uint8_t *)rule->label;
	want.nlen = strlen(rule->label);
	want.value = (const uint8_t *)rule->values->v[0];
	want.vlen = strlen(rule->values->v[0]);
	want.nref = want.vref = 0;
	for (i = 0; i < ls->n; i++)
		if ((c = pair_cmp(&ls->v[i], &want)) >= 0)
			break;
	if (c == 0) {
		ls->v[i] = want;
		return 0;
	}
	/* The one pair enforcement adds may pass LABELS_MAX. */
	if (ls->n == ls->cap && pairs_realloc(ls, ls->cap + 1) == -1)
		return -1;
	p = &ls->v[i];
	memmove(p + 1, p, (ls->n - i) * sizeof(*p));
	*p = want;
	ls->n++;
	return 0;
}

/* Quoting, formatting, reasons. */

/* Length of the valid UTF-8 multi-byte sequence at s, or 0. */
static size_t
utf8_seq(const uint8_t *s, size_t n)
{
	uint32_t	r;
	size_t		len, i;

	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		len = 2, r = s[0] & 0x1f;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		len = 3, r = s[0] & 0x0f;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		len = 4, r = s[0] & 0x07;
	else
		return 0;
	if (n < len)
		return 0;
	for (i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		r = r << 6 | (s[i] & 0x3f);
	}
	if ((len == 3 && (r < 0x800 || (r >= 0xd800 && r < 0xe000))) ||
	    (len == 4 && (r < 0x10000 || r > 0x10ffff)))
		return 0;
	return len;
}

/* Bytes at s that may go into a quoted string as they are. */
static size_t
quote_run(const uint8_t *s, size_t n)
{
	size_t	i = 0, k;

	while (i < n) {
		if (s[i] >= 0x20 && s[i] < 0x7f && s[i] != '"' && s[i] != '\\')
			i++;
		else if (s[i] >= 0x80 && (k = utf8_seq(s + i, n - i)) > 0)
			i += k;
		else
			break;
	}
	return i;
}

static void
quote_byte(struct pb_buf *b, uint8_t c)
{
	static const char	 hex[] = "0123456789abcdef";
	static const char	 named[] = "\aa\bb\ff\nn\rr\tt\vv\"\"\\\\";
	const char		*s;
	char			 esc[4] = { '\\', 'x', hex[c >> 4], hex[c & 15] };

	for (s = named; *s != '\0'; s += 2)
		if ((uint8_t)s[0] == c) {
			esc[1] = s[1];
			pb_put_raw(b, esc, 2);
			return;
		}
	pb_put_raw(b, esc, 4);
}

/* A double-quoted Go string literal of s, which Loki unquotes back to s. */
static void
labels_quote(struct pb_buf *b, const uint8_t *s, size_t n)
{
	size_t	run;

	pb_put_raw(b, "\"", 1);
	while (n > 0) {
		run = quote_run(s, n);
		pb_put_raw(b, s, run);
		s += run;
		n -= run;
		if (n > 0) {
			quote_byte(b, *s++);
			n--;
		}
	}
	pb_put_raw(b, "\"", 1);
}

void
labels_format(struct pb_buf *b, const struct labels_set *ls, int skip_empty,
    size_t stop)
{
	size_t	i;
	int	first = 1;

	pb_put_raw(b, "{", 1);
	for (i = 0; i < ls->n && b->len <= stop; i++) {
		if (skip_empty && ls->v[i].vlen == 0)
			continue;
		if (!first)
			pb_put_raw(b, ", ", 2);
		first = 0;
		pb_put_raw(b, ls->v[i].name, ls->v[i].nlen);
		pb_put_raw(b, "=", 1);
		labels_quote(b, ls->v[i].value, ls->v[i].vlen);
	}
	pb_put_raw(b, "}", 1);
}

/* Cuts b back to `from + max` bytes on a UTF-8 boundary, marking the cut. */
static void
clip(struct pb_buf *b, size_t from, size_t max)
{
	size_t	end = from + max;

	if (b->failed || b->len <= end)
		return;
	while (end > from && (b->data[end] & 0xc0) == 0x80)
		end--;
	b->len = end;
	pb_put_raw(b, "...", 3);
}

static void
describe_allowed(struct pb_buf *b, const struct payload_rule *rule)
{
	size_t	i;

	for (i = 0; i < rule->values->n; i++) {
		if (i > 0)
			pb_put_raw(b, " or ", 4);
		pb_put_raw(b, rule->label, strlen(rule->label));
		pb_put_raw(b, "=", 1);
		labels_quote(b, (const uint8_t *)rule->values->v[i],
		    strlen(rule->values->v[i]));
	}
}

void
labels_violation(char *dst, size_t dstsz, const char *what,
    struct labels_set *ls, const struct payload_rule *rule)
{
	const struct labels_pair	*p;
	struct pb_buf			 b;
	size_t				 val, allowed;

	pb_buf_init(&b, 512);
	labels_format(&b, ls, 0, DESCRIBE_MAX);
	clip(&b, 0, DESCRIBE_MAX);
	val = b.len;
	p = labels_find(ls, rule->label, strlen(rule->label));
	if (p != NULL && p->vlen > 0) {
		labels_quote(&b, p->value, p->vlen);
		clip(&b, val, VALUE_MAX);
	}
	allowed = b.len;
	describe_allowed(&b, rule);
	clip(&b, allowed, ALLOWED_MAX);
	if (pb_buf_failed(&b))
		snprintf(dst, dstsz, "a %s has no allowed %s label, site %s",
		    what, rule->label, rule->site);
	else if (allowed > val)
		snprintf(dst, dstsz, "%s %.*s has %s=%.*s, site %s may only "
		    "write %.*s", what, (int)val, b.data, rule->label,
		    (int)(allowed - val), b.data + val, rule->site,
		    (int)(b.len - allowed), b.data + allowed);
	else
		snprintf(dst, dstsz, "%s %.*s has no %s label, site %s may "
		    "only write %.*s", what, (int)val, b.data, rule->label,
		    rule->site, (int)(b.len - allowed), b.data + allowed);
	pb_buf_free(&b);
}
