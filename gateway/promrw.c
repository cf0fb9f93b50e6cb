/*
 * promrw: remote write 1.0 and 2.0 scan, check and rewrite.  See promrw.h.
 *
 * Both versions read the request's top-level fields once and decide each
 * series as it is read: its labels go into the worker's fixed scratch array
 * (LABELS_MAX bounds it), their order and the site label are noted as they
 * come, so a sorted series is never sorted and never searched.  The first
 * series that must change starts the rewrite: the bytes before it are copied
 * once, it and every later offending series are written re-encoded straight
 * into the output, and the runs of series in between are copied as they came.
 * The fast path therefore costs one read of the decoded body and no
 * allocation at all.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "promrw.h"

/* remote write 1.0 */
#define V1_TIMESERIES	1
#define V1_METADATA	3
#define V1_TS_LABELS	1
#define V1_TS_SAMPLES	2
#define V1_TS_EXEMPLARS	3
#define V1_TS_HISTOGRAMS 4
#define V1_EX_LABELS	1
#define V1_LABEL_NAME	1
#define V1_LABEL_VALUE	2

/* remote write 2.0 */
#define V2_SYMBOLS	4
#define V2_TIMESERIES	5
#define V2_TS_LABELREFS	1
#define V2_TS_SAMPLES	2
#define V2_TS_HISTOGRAMS 3
#define V2_TS_EXEMPLARS	4
#define V2_EX_LABELREFS	1

/* What an absent name or value reads as (never a NULL view). */
static const uint8_t empty[1];

struct symbol {
	const uint8_t	*p;
	size_t		 n;
};

/* No pair: the site label's index when a series lacks it. */
#define NO_PAIR		SIZE_MAX

struct scan {
	const struct payload_rule	*rule;
	struct promrw_stats		*st;
	struct labels_set		 ls;		/* views in the scratch array */
	struct labels_pair		 want;		/* what a rewrite writes */
	const char			*errstr;
	int				 found;		/* an offending series seen */
	int				 refused;	/* 403 whatever the mode: reason set */
	char				*reason;
	size_t				 reasonsz;
	/* the series being read */
	size_t				 site;		/* the site label's pair, NO_PAIR */
	size_t				 dup;		/* a pair repeating the name before it, 0: none */
	int				 sorted;	/* strictly ascending so far */
	int				 simple;	/* 1.0: see v1_put_simple() */
	const uint8_t			*tail;		/* 1.0: the first field not a label */
	/* the rewrite, from the first series that must change */
	struct pb_buf			*out;
	int				 rewriting;
	const uint8_t			*copied;	/* the input before this is in out */
	const uint8_t			*end;		/* of the input */
	/* 2.0 only: where each symbol's length starts in the body (4 bytes a
	 * symbol of at least 2 on the wire: the table costs at most twice the
	 * decoded body) */
	const uint8_t			*body;
	uint32_t			*syms;
	size_t				 nsyms;
	uint32_t			 want_name;	/* refs of the label written */
	uint32_t			 want_value;
	size_t				 nadded;	/* symbols to append */
	struct symbol			 added[3];
};

struct rw_version {
	uint32_t	 series_field;
	uint32_t	 other_len_field;	/* must be length-delimited too */
	uint32_t	 metadata_field;	/* counted; 0: none */
	/*
	 * Fields 1..refuse_upto are malformed.  2.0 reserves 1-3, and a 1.0
	 * receiver (Prometheus 2.42) ignores the Content-Type and would store
	 * 1.0 series smuggled into a "2.0" body unchecked.
	 */
	uint32_t	 refuse_upto;
	int		(*read)(struct scan *, const uint8_t *, size_t);
	void		(*put)(struct scan *, const uint8_t *, size_t,
			    struct pb_buf *);
};

/*
 * Each worker's label views, one series at a time: LABELS_MAX bounds them,
 * plus the one pair a rewrite may add.
 */
static _Thread_local struct labels_pair scratch[LABELS_MAX + 1];

/*
 * Appends a label of the series being read, noting whether the names still
 * ascend and where the site label is; NULL (errstr set) past LABELS_MAX.
 */
static inline struct labels_pair *
series_add(struct scan *s, const uint8_t *name, size_t nlen,
    const uint8_t *value, size_t vlen)
{
	size_t			 n = s->ls.n;
	struct labels_pair	*p = &s->ls.v[n];
	int			 c;

	if (n == LABELS_MAX) {
		s->errstr = LABELS_MAX_REASON;
		return NULL;
	}
	*p = (struct labels_pair){ name, nlen, value, vlen, 0, 0 };
	if (n > 0 && s->sorted && (c = labels_cmp(p - 1, p)) >= 0) {
		if (c > 0)
			s->sorted = 0;
		else if (s->dup == 0)
			s->dup = n;
	}
	/* many names are as long as the site label's: "__name__" */
	if (nlen == s->want.nlen && nlen > 0 && name[0] == s->want.name[0] &&
	    memcmp(name, s->want.name, nlen) == 0)
		s->site = n;
	s->ls.n = n + 1;
	return p;
}

/* Counts one TimeSeries field shared by the per-version readers. */
static int
count_field(struct scan *s, const struct pb_field *f, uint32_t samples,
    uint32_t histograms, uint32_t exemplars)
{
	if (f->num != samples && f->num != histograms && f->num != exemplars)
		return 0;
	if (f->wt != PB_LEN) {
		s->errstr = "wrong wire type for a series field";
		return -1;
	}
	if (f->num == samples)
		s->st->samples++;
	else if (f->num == histograms)
		s->st->histograms++;
	else
		s->st->exemplars++;
	return 0;
}

/* 1.0 */

/*
 * The shape every encoder writes for short labels — name (tag 0x0a) then
 * value (0x12), one-byte lengths, nothing else — read without a reader;
 * 0 when the label has another shape.
 */
static inline int
v1_label_fast(const uint8_t *buf, size_t len, const uint8_t **name,
    size_t *nlen, const uint8_t **value, size_t *vlen)
{
	size_t	n, v;

	if (len < 4 || buf[0] != 0x0a || (n = buf[1]) >= 0x80 || n + 4 > len ||
	    buf[n + 2] != 0x12 || (v = buf[n + 3]) >= 0x80 || n + 4 + v != len)
		return 0;
	*name = buf + 2;
	*nlen = n;
	*value = buf + n + 4;
	*vlen = v;
	return 1;
}

/* One Label message's name and value as views. */
static int
v1_label_read(struct scan *s, const uint8_t *buf, size_t len,
    const uint8_t **name, size_t *nlen, const uint8_t **value, size_t *vlen)
{
	struct pb_reader	 r;
	struct pb_field		 f;
	int			 rc;

	*name = *value = empty;
	*nlen = *vlen = 0;
	if (v1_label_fast(buf, len, name, nlen, value, vlen))
		return 0;
	pb_reader_init(&r, buf, len);
	while ((rc = pb_next(&r, &f, &s->errstr)) == 1) {
		if (f.num != V1_LABEL_NAME && f.num != V1_LABEL_VALUE)
			continue;
		if (f.wt != PB_LEN) {
			s->errstr = "wrong wire type for a label field";
			return -1;
		}
		if (f.num == V1_LABEL_NAME) {
			*name = f.data;
			*nlen = f.len;
		} else {
			*value = f.data;
			*vlen = f.len;
		}
	}
	return rc;
}

/* A label of another shape than v1_label_fast's: the series is not simple. */
static int
v1_label(struct scan *s, const uint8_t *buf, size_t len)
{
	const uint8_t	*name, *value;
	size_t		 nlen, vlen;

	s->simple = 0;
	if (v1_label_read(s, buf, len, &name, &nlen, &value, &vlen) == -1 ||
	    series_add(s, name, nlen, value, vlen) == NULL)
		return -1;
	return 0;
}

/*
 * An exemplar's label naming the site label with a foreign value: a
 * refusal (403) in either mode, since exemplars are checked, not rewritten.
 */
static int
exemplar_refused(struct scan *s, const uint8_t *name, size_t nlen,
    const uint8_t *value, size_t vlen)
{
	if (!labels_pair_foreign(s->rule, name, nlen, value, vlen))
		return 0;
	snprintf(s->reason, s->reasonsz, "an exemplar has %s=\"%.*s\", site %s "
	    "may not write it (exemplar labels are checked, not rewritten)",
	    s->rule->label, vlen > 64 ? 64 : (int)vlen, (const char *)value,
	    s->rule->site);
	s->refused = 1;
	s->errstr = "exemplar label";
	return -1;
}

static int
v1_exemplar(struct scan *s, const uint8_t *buf, size_t len)
{
	struct pb_reader	 r;
	struct pb_field		 f;
	const uint8_t		*name, *value;
	size_t			 nlen, vlen;
	int			 rc;

	pb_reader_init(&r, buf, len);
	while ((rc = pb_next(&r, &f, &s->errstr)) == 1) {
		if (f.num != V1_EX_LABELS)
			continue;
		if (f.wt != PB_LEN) {
			s->errstr = "wrong wire type for exemplar labels";
			return -1;
		}
		if (v1_label_read(s, f.data, f.len, &name, &nlen, &value,
		    &vlen) == -1 ||
		    exemplar_refused(s, name, nlen, value, vlen) == -1)
			return -1;
	}
	return rc;
}

/*
 * Labels and samples with one-byte lengths are nearly every field an encoder
 * writes into a series: read them in place, without the general reader.
 * Returns where the first other field starts.
 */
static const uint8_t *
v1_read_common(struct scan *s, const uint8_t *p, const uint8_t *end)
{
	const uint8_t	*name, *value;
	size_t		 nlen, vlen;

	while (end - p >= 2 && p[1] < 0x80 && (size_t)(end - p) - 2 >= p[1]) {
		if (p[0] == (V1_TS_LABELS << 3 | PB_LEN)) {
			if (s->tail != NULL)
				s->simple = 0;
			if (v1_label_fast(p + 2, p[1], &name, &nlen, &value,
			    &vlen)) {
				if (series_add(s, name, nlen, value, vlen) ==
				    NULL)
					return NULL;
			} else if (v1_label(s, p + 2, p[1]) == -1)
				return NULL;
		} else if (p[0] == (V1_TS_SAMPLES << 3 | PB_LEN)) {
			if (s->tail == NULL)
				s->tail = p;
			s->st->samples++;
		} else
			break;
		p += 2 + p[1];
	}
	return p;
}

static int
v1_read(struct scan *s, const uint8_t *buf, size_t len)
{
	struct pb_reader	r;
	struct pb_field		f;
	const uint8_t		*p;
	int			rc;

	if ((p = v1_read_common(s, buf, buf + len)) == NULL)
		return -1;
	pb_reader_init(&r, p, len - (size_t)(p - buf));
	while ((rc = pb_next(&r, &f, &s->errstr)) == 1) {
		if (f.num == V1_TS_LABELS) {
			if (f.wt != PB_LEN) {
				s->errstr = "wrong wire type for labels";
				return -1;
			}
			if (v1_label(s, f.data, f.len) == -1)
				return -1;
			continue;
		}
		if (s->tail == NULL)
			s->tail = f.start;
		if (f.num == V1_TS_EXEMPLARS && f.wt == PB_LEN &&
		    v1_exemplar(s, f.data, f.len) == -1)
			return -1;
		else if (count_field(s, &f, V1_TS_SAMPLES,
		    V1_TS_HISTOGRAMS, V1_TS_EXEMPLARS) == -1)
			return -1;
	}
	if (s->tail == NULL)
		s->tail = buf + len;
	return rc;
}

static size_t
v1_label_size(const struct labels_pair *p)
{
	size_t	n = 0;

	if (p->nlen > 0)
		n += pb_bytes_size(V1_LABEL_NAME, p->nlen);
	if (p->vlen > 0)
		n += pb_bytes_size(V1_LABEL_VALUE, p->vlen);
	return n;
}

/* A series' labels field for one pair, tag included. */
static size_t
v1_label_field_size(const struct labels_pair *l)
{
	size_t	n = v1_label_size(l);

	return 1 + pb_varint_size(n) + n;
}

static uint8_t *
v1_encode_label(uint8_t *p, const struct labels_pair *l)
{
	p = pb_encode_varint(p, V1_TS_LABELS << 3 | PB_LEN);
	p = pb_encode_varint(p, v1_label_size(l));
	if (l->nlen > 0)
		p = pb_encode_bytes(p, V1_LABEL_NAME, l->name, l->nlen);
	if (l->vlen > 0)
		p = pb_encode_bytes(p, V1_LABEL_VALUE, l->value, l->vlen);
	return p;
}

void
promrw_v1_encode_labels(const struct labels_set *ls, uint8_t *p)
{
	size_t	i;

	for (i = 0; i < ls->n; i++)
		p = v1_encode_label(p, &ls->v[i]);
}

size_t
promrw_v1_labels_size(const struct labels_set *ls)
{
	size_t	i, size = 0;

	for (i = 0; i < ls->n; i++)
		size += v1_label_field_size(&ls->v[i]);
	return size;
}

/*
 * A simple series — every label in the one shape v1_label_fast reads, all
 * before any other field, names strictly ascending — is rewritten without
 * re-encoding: the bytes as they came, with the site label's field replaced
 * or inserted at its sorted place.  Another encoder's series ends up exactly
 * as v1_put would write it, only faster.
 */
static void
v1_put_simple(struct scan *s, const uint8_t *buf, size_t len,
    struct pb_buf *out)
{
	const struct labels_pair	*v = s->ls.v;
	const uint8_t			*cut0, *cut1;
	size_t				 i, lsize;
	uint8_t				*p;
	int				 c = 1;

	for (i = 0; i < s->ls.n; i++)
		if ((c = labels_cmp(&v[i], &s->want)) >= 0)
			break;
	/* a simple label's field starts 4 bytes before its name */
	cut0 = i < s->ls.n ? v[i].name - 4 : s->tail;
	cut1 = c == 0 ? v[i].value + v[i].vlen : cut0;
	lsize = v1_label_field_size(&s->want);
	pb_put_tag(out, V1_TIMESERIES, PB_LEN);
	pb_put_varint(out, len - (size_t)(cut1 - cut0) + lsize);
	pb_put_raw(out, buf, (size_t)(cut0 - buf));
	if ((p = pb_claim(out, lsize)) != NULL)
		v1_encode_label(p, &s->want);
	pb_put_raw(out, cut1, (size_t)(buf + len - cut1));
}

static void
v1_put(struct scan *s, const uint8_t *buf, size_t len, struct pb_buf *out)
{
	size_t	 lsize, size;
	uint8_t	*p;

	lsize = promrw_v1_labels_size(&s->ls);
	size = lsize + pb_size_except(buf, len, V1_TS_LABELS);
	pb_put_tag(out, V1_TIMESERIES, PB_LEN);
	pb_put_varint(out, size);
	if ((p = pb_claim(out, lsize)) != NULL)
		promrw_v1_encode_labels(&s->ls, p);
	pb_put_except(out, buf, len, V1_TS_LABELS);
}

static const struct rw_version rw_v1 = {
	V1_TIMESERIES, V1_METADATA, V1_METADATA, 0, v1_read, v1_put
};

/* 2.0 */

static int
v2_symbols(struct scan *s, const uint8_t *buf, size_t len)
{
	s->body = buf;
	return pb_index(buf, len, V2_SYMBOLS, &s->syms, &s->nsyms, &s->errstr);
}

/* Symbol `ref` (< nsyms) as a view. */
static struct symbol
v2_symbol(const struct scan *s, uint32_t ref)
{
	struct symbol	sym;

	pb_indexed(s->body, s->syms[ref], &sym.p, &sym.n);
	return sym;
}

/*
 * One label ref; every second one completes a pair, added to the series'
 * labels or, for an exemplar's refs, checked.
 */
static int
v2_ref(struct scan *s, uint64_t ref, int *half, uint32_t *name, int exemplar)
{
	struct labels_pair	*p;
	struct symbol		 n, v;

	if (ref >= s->nsyms) {
		s->errstr = "label ref past the symbols table";
		return -1;
	}
	if (!*half) {
		*name = (uint32_t)ref;
		*half = 1;
		return 0;
	}
	*half = 0;
	n = v2_symbol(s, *name);
	v = v2_symbol(s, (uint32_t)ref);
	if (exemplar)
		return exemplar_refused(s, n.p, n.n, v.p, v.n);
	if ((p = series_add(s, n.p, n.n, v.p, v.n)) == NULL)
		return -1;
	p->nref = *name;
	p->vref = (uint32_t)ref;
	return 0;
}

static int
v2_refs(struct scan *s, const struct pb_field *f, int *half, uint32_t *name,
    int exemplar)
{
	const uint8_t	*p, *end;
	uint64_t	 ref;

	if (f->wt == PB_VARINT)
		return v2_ref(s, f->v, half, name, exemplar);
	if (f->wt != PB_LEN) {
		s->errstr = "wrong wire type for label refs";
		return -1;
	}
	for (p = f->data, end = f->data + f->len; p < end;) {
		if (pb_varint(&p, end, &ref) == -1) {
			s->errstr = "truncated label ref";
			return -1;
		}
		if (v2_ref(s, ref, half, name, exemplar) == -1)
			return -1;
	}
	return 0;
}

static int
v2_exemplar(struct scan *s, const uint8_t *buf, size_t len)
{
	struct pb_reader	r;
	struct pb_field		f;
	uint32_t		name = 0;
	int			rc, half = 0;

	pb_reader_init(&r, buf, len);
	while ((rc = pb_next(&r, &f, &s->errstr)) == 1)
		if (f.num == V2_EX_LABELREFS &&
		    v2_refs(s, &f, &half, &name, 1) == -1)
			return -1;
	if (rc == 0 && half) {
		s->errstr = "odd number of exemplar label refs";
		return -1;
	}
	return rc;
}

static int
v2_read(struct scan *s, const uint8_t *buf, size_t len)
{
	struct pb_reader	r;
	struct pb_field		f;
	uint32_t		name = 0;
	int			rc, half = 0;

	pb_reader_init(&r, buf, len);
	while ((rc = pb_next(&r, &f, &s->errstr)) == 1) {
		if (f.num == V2_TS_LABELREFS) {
			if (v2_refs(s, &f, &half, &name, 0) == -1)
				return -1;
		} else if (f.num == V2_TS_EXEMPLARS && f.wt == PB_LEN &&
		    v2_exemplar(s, f.data, f.len) == -1)
			return -1;
		else if (count_field(s, &f, V2_TS_SAMPLES,
		    V2_TS_HISTOGRAMS, V2_TS_EXEMPLARS) == -1)
			return -1;
	}
	if (rc == 0 && half) {
		s->errstr = "odd number of label refs";
		return -1;
	}
	return rc;
}

/* The ref of symbol `str`, appending it when the table lacks it. */
static uint32_t
v2_symbol_ref(struct scan *s, const char *str)
{
	size_t	i, n = strlen(str);

	for (i = 0; i < s->nsyms; i++) {
		struct symbol sym = v2_symbol(s, (uint32_t)i);
		if (sym.n == n && memcmp(sym.p, str, n) == 0)
			return (uint32_t)i;
	}
	for (i = 0; i < s->nadded; i++)
		if (s->added[i].n == n && memcmp(s->added[i].p, str, n) == 0)
			return (uint32_t)(s->nsyms + i);
	s->added[s->nadded].p = (const uint8_t *)str;
	s->added[s->nadded].n = n;
	return (uint32_t)(s->nsyms + s->nadded++);
}

/* Chooses the refs a rewrite writes; symbols[0] must stay "". */
static void
v2_prepare(struct scan *s)
{
	if (s->nsyms == 0)
		v2_symbol_ref(s, "");
	s->want_name = v2_symbol_ref(s, s->rule->label);
	s->want_value = v2_symbol_ref(s, s->rule->values->v[0]);
}

static void
v2_put(struct scan *s, const uint8_t *buf, size_t len, struct pb_buf *out)
{
	struct labels_pair	*p;
	size_t			 i, refs = 0, size;

	p = labels_find(&s->ls, s->rule->label, strlen(s->rule->label));
	p->nref = s->want_name;
	p->vref = s->want_value;
	for (i = 0; i < s->ls.n; i++)
		refs += pb_varint_size(s->ls.v[i].nref) +
		    pb_varint_size(s->ls.v[i].vref);
	size = pb_size_except(buf, len, V2_TS_LABELREFS);
	if (refs > 0)
		size += 1 + pb_varint_size(refs) + refs;
	pb_put_tag(out, V2_TIMESERIES, PB_LEN);
	pb_put_varint(out, size);
	if (refs > 0) {
		pb_put_tag(out, V2_TS_LABELREFS, PB_LEN);
		pb_put_varint(out, refs);
	}
	for (i = 0; i < s->ls.n; i++) {
		pb_put_varint(out, s->ls.v[i].nref);
		pb_put_varint(out, s->ls.v[i].vref);
	}
	pb_put_except(out, buf, len, V2_TS_LABELREFS);
}

static const struct rw_version rw_v2 = {
	V2_TIMESERIES, V2_SYMBOLS, 0, 3, v2_read, v2_put
};

/* Both versions. */

static int
judge(struct scan *s, enum labels_verdict *verdict)
{
	const struct labels_pair	*dup = NULL, *site = NULL;

	if (s->dup != 0)
		dup = &s->ls.v[s->dup];
	else if (!s->sorted)
		dup = labels_sort_unique(&s->ls);
	/* Prometheus 2.42 answers 500 to these: senders would retry forever. */
	if (dup != NULL) {
		if (labels_valid_name(dup->name, dup->nlen))
			snprintf(s->reason, s->reasonsz, "malformed remote write "
			    "request: a series repeats the label name \"%.*s\"",
			    dup->nlen > 64 ? 64 : (int)dup->nlen,
			    (const char *)dup->name);
		else
			snprintf(s->reason, s->reasonsz, "malformed remote write "
			    "request: a series repeats a label name");
		return -1;
	}
	if (!s->sorted)
		site = labels_find(&s->ls, s->rule->label, s->want.nlen);
	else if (s->site != NO_PAIR)
		site = &s->ls.v[s->site];
	*verdict = labels_pair_verdict(site, s->rule);
	return 0;
}

/* Writes an offending series into the rewrite, starting it if need be. */
static void
series_rewrite(struct scan *s, const struct rw_version *ver,
    const struct pb_field *f)
{
	struct pb_buf	*out = s->out;
	size_t		 len;

	if (!s->rewriting) {
		s->rewriting = 1;
		len = (size_t)(s->end - s->copied);
		pb_buf_reuse(out, len + len / 8 + 64);
		if (ver == &rw_v2)
			v2_prepare(s);
	}
	pb_put_raw(out, s->copied, (size_t)(f->start - s->copied));
	s->copied = f->start + f->rawlen;
	if (ver == &rw_v1 && s->simple && s->sorted)
		v1_put_simple(s, f->data, f->len, out);
	else if (labels_enforce(&s->ls, s->rule) == -1)
		out->failed = 1;
	else
		ver->put(s, f->data, f->len, out);
}

/* Reads and decides one series; 1 to stop scanning, -1 malformed. */
static int
series_pass(struct scan *s, const struct rw_version *ver,
    const struct pb_field *f)
{
	enum labels_verdict	verdict;

	s->ls.n = 0;
	s->site = NO_PAIR;
	s->dup = 0;
	s->sorted = 1;
	s->simple = 1;
	s->tail = NULL;
	if (ver->read(s, f->data, f->len) == -1) {
		if (!s->refused)
			snprintf(s->reason, s->reasonsz, "malformed remote "
			    "write request: %s", s->errstr);
		return -1;
	}
	if (judge(s, &verdict) == -1)
		return -1;
	s->st->series++;
	if (verdict == LABELS_OK)
		return 0;
	s->found = 1;
	if (s->rule->mode == MISMATCH_REJECT) {
		labels_violation(s->reason, s->reasonsz, "series", &s->ls,
		    s->rule);
		return 1;
	}
	s->st->rewritten++;
	series_rewrite(s, ver, f);
	return 0;
}

/*
 * The one pass over the request.  0 (done, or stopped at a series refused),
 * or -1 malformed.
 */
static int
request_pass(struct scan *s, const struct rw_version *ver,
    const uint8_t *buf, size_t len)
{
	struct pb_reader	r;
	struct pb_field		f;
	int			rc;

	pb_reader_init(&r, buf, len);
	while ((rc = pb_next(&r, &f, &s->errstr)) == 1) {
		if ((f.num == ver->series_field ||
		    f.num == ver->other_len_field) && f.wt != PB_LEN) {
			s->errstr = "wrong wire type for a request field";
			rc = -1;
			break;
		}
		if (f.num <= ver->refuse_upto) {
			s->errstr = "remote write 1.0 fields in a 2.0 request";
			rc = -1;
			break;
		}
		if (f.num == ver->metadata_field)
			s->st->metadata++;
		if (f.num != ver->series_field)
			continue;
		if ((rc = series_pass(s, ver, &f)) != 0)
			return rc == 1 ? 0 : -1;
	}
	if (rc == -1)
		snprintf(s->reason, s->reasonsz, "malformed remote write "
		    "request: %s", s->errstr);
	return rc;
}

/* Completes a rewrite: the input after the last series changed, symbols. */
static int
rewrite_end(struct scan *s, const uint8_t *buf, size_t len)
{
	size_t	i;

	pb_put_raw(s->out, s->copied, (size_t)(buf + len - s->copied));
	for (i = 0; i < s->nadded; i++)
		pb_put_bytes(s->out, V2_SYMBOLS, s->added[i].p, s->added[i].n);
	if (pb_buf_failed(s->out)) {
		pb_buf_free(s->out);
		return LABELS_NOMEM;
	}
	return LABELS_REWRITE;
}

static int
check(const struct rw_version *ver, const uint8_t *buf, size_t len,
    const struct payload_rule *rule, struct promrw_stats *st,
    struct pb_buf *out, char *reason, size_t reasonsz)
{
	struct scan	s;
	int		rc;

	memset(&s, 0, sizeof(s));
	memset(st, 0, sizeof(*st));
	s.rule = rule;
	s.st = st;
	s.reason = reason;
	s.reasonsz = reasonsz;
	s.ls.v = scratch;
	s.ls.cap = LABELS_MAX + 1;
	s.want.name = (const uint8_t *)rule->label;
	s.want.nlen = strlen(rule->label);
	s.want.value = (const uint8_t *)rule->values->v[0];
	s.want.vlen = strlen(rule->values->v[0]);
	s.out = out;
	s.copied = buf;
	s.end = buf + len;
	if (ver == &rw_v2 && v2_symbols(&s, buf, len) == -1) {
		snprintf(reason, reasonsz, "malformed remote write request: %s",
		    s.errstr);
		rc = LABELS_MALFORMED;
	} else if (request_pass(&s, ver, buf, len) == -1)
		rc = s.refused ? LABELS_REJECT : LABELS_MALFORMED;
	else if (!s.found)
		rc = LABELS_PASS;
	else if (rule->mode == MISMATCH_REJECT)
		rc = LABELS_REJECT;
	else
		rc = rewrite_end(&s, buf, len);
	if (rc != LABELS_REWRITE && s.rewriting)
		pb_buf_free(out);
	free(s.syms);
	return rc;
}
int
promrw_check_v1(const uint8_t *buf, size_t len,
    const struct payload_rule *rule, struct promrw_stats *st,
    struct pb_buf *out, char *reason, size_t reasonsz)
{
	return check(&rw_v1, buf, len, rule, st, out, reason, reasonsz);
}

int
promrw_check_v2(const uint8_t *buf, size_t len,
    const struct payload_rule *rule, struct promrw_stats *st,
    struct pb_buf *out, char *reason, size_t reasonsz)
{
	return check(&rw_v2, buf, len, rule, st, out, reason, reasonsz);
}
