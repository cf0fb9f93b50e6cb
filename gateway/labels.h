/*
 * labels: label sets as views, the Loki labels-string grammar, and the one
 * enforcement rule shared by remote write and Loki push.
 *
 * A labels_set is an array of (name, value) views reused across the series of
 * one request, so scanning allocates only when a series has more labels than
 * any before it.  Views point into the caller's buffer, into the set's own
 * arena (values decoded by labels_parse) or at the rule's C strings; they stay
 * valid until the next labels_parse / labels_set_reset / labels_set_free.
 *
 * labels_parse() reads what Loki's ParseLabels accepts (PROTOCOLS §5): an
 * optional bare metric name (becomes __name__), then `{name="value", ...}`
 * with Go-quoted ("..." and '...' with escapes, `...` raw) values, optional
 * trailing comma and whitespace.  Matchers other than `=` are refused.  It is
 * iterative and linear in the input; decoded values never outgrow the input,
 * so the arena is sized once per call.
 */
#ifndef KAKIKOMI_LABELS_H
#define KAKIKOMI_LABELS_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "payload.h"
#include "pb.h"

struct labels_pair {
	const uint8_t	*name;
	size_t		 nlen;
	const uint8_t	*value;
	size_t		 vlen;
	uint32_t	 nref;		/* remote write 2.0 symbol refs, else 0 */
	uint32_t	 vref;
};

/*
 * Labels one series or stream may carry.  Prometheus sets no limit, Mimir's
 * default is 30 and Loki's 15: the cap bounds the pair array (LABELS_MAX * 40
 * bytes) whatever a hostile body declares, so a body of 16 million empty
 * labels costs no more than a normal one.
 */
#define LABELS_MAX		1024
#define LABELS_MAX_REASON	"more than 1024 labels in one series or stream"

struct labels_set {
	struct labels_pair	*v;
	size_t			 n;
	size_t			 cap;
	uint8_t			*arena;
	size_t			 arenacap;
	const char		*errstr;	/* why the last labels_add failed */
};

/* What enforcement decided for a whole request. */
enum labels_outcome {
	LABELS_PASS = 0,	/* forward unchanged */
	LABELS_REWRITE,		/* a new body was built */
	LABELS_REJECT,		/* 403, reason set */
	LABELS_MALFORMED,	/* 400, reason set */
	LABELS_NOMEM		/* allocation failed */
};

/* What the rule says about one series or stream. */
enum labels_verdict {
	LABELS_OK = 0,
	LABELS_MISSING,		/* absent or empty */
	LABELS_FOREIGN		/* a value the site may not write */
};

void	labels_set_init(struct labels_set *ls);
void	labels_set_free(struct labels_set *ls);
void	labels_set_reset(struct labels_set *ls);
/* Makes room for one more pair; 0, or -1 (ls->errstr: out of memory or
 * LABELS_MAX reached). */
int	labels_grow(struct labels_set *ls);

/* Appends a pair; 0, or -1 with ls->errstr set.  Inline: once per label. */
static inline int
labels_add(struct labels_set *ls, const uint8_t *name, size_t nlen,
    const uint8_t *value, size_t vlen)
{
	struct labels_pair	*p;

	if (ls->n == ls->cap && labels_grow(ls) == -1)
		return -1;
	p = &ls->v[ls->n++];
	p->name = name;
	p->nlen = nlen;
	p->value = value;
	p->vlen = vlen;
	p->nref = p->vref = 0;
	return 0;
}

/* Parses a Loki labels string into ls (reset first).  0, or -1 + errstr. */
int	labels_parse(const uint8_t *s, size_t len, struct labels_set *ls,
	    const char **errstr);

/* Orders pairs by name (bytes, then length).  Inline: once per label. */
static inline int
labels_cmp(const struct labels_pair *x, const struct labels_pair *y)
{
	size_t	n = x->nlen < y->nlen ? x->nlen : y->nlen;
	int	c;

	/* Names mostly differ in their first byte: spare the call. */
	if (n > 0 && x->name[0] != y->name[0])
		return x->name[0] < y->name[0] ? -1 : 1;
	if (n > 0 && (c = memcmp(x->name, y->name, n)) != 0)
		return c;
	return (x->nlen > y->nlen) - (x->nlen < y->nlen);
}

/* 1 when name matches [a-zA-Z_][a-zA-Z0-9_]*. */
int	labels_valid_name(const uint8_t *name, size_t len);

/*
 * Sorts by name unless already strictly sorted.  Returns NULL, or the first
 * of two pairs that share a name (the set is then sorted).
 */
const struct labels_pair *labels_sort_unique(struct labels_set *ls);

/* The pair called `name`, or NULL. */
struct labels_pair *labels_find(struct labels_set *ls, const char *name,
	    size_t nlen);

enum labels_verdict labels_verdict(struct labels_set *ls,
	    const struct payload_rule *rule);
/* The same for the site label's pair once found (NULL: absent). */
enum labels_verdict labels_pair_verdict(const struct labels_pair *p,
	    const struct payload_rule *rule);

/*
 * 1 when the pair (name, value) is the rule's label with a non-empty value
 * the site may not write: what exemplar labels and structured metadata are
 * held to (they are checked, never rewritten).
 */
int	labels_pair_foreign(const struct payload_rule *rule, const uint8_t *name,
	    size_t nlen, const uint8_t *value, size_t vlen);

/*
 * Makes a sorted, unique set carry rule->label = rule->values->v[0],
 * replacing the value or inserting the pair at its sorted position.
 * 0, or -1 when out of memory.
 */
int	labels_enforce(struct labels_set *ls, const struct payload_rule *rule);

/*
 * Appends `{a="b", c="d"}` (Prometheus/Loki's String form, values quoted as
 * Go's strconv.Quote would for everything Loki parses back) to b.  Empty
 * values are dropped when skip_empty is set, as Loki does.  Stops after the
 * pair that makes b exceed `stop` bytes (SIZE_MAX: never).
 */
void	labels_format(struct pb_buf *b, const struct labels_set *ls,
	    int skip_empty, size_t stop);

/*
 * One-line refusal naming the series/stream (`what`), its label set
 * (truncated), the offending value and the site's allowed values.
 */
void	labels_violation(char *dst, size_t dstsz, const char *what,
	    struct labels_set *ls, const struct payload_rule *rule);

#endif
