/*
 * rwconv: remote write 2.0 -> 1.0.  See rwconv.h.
 *
 * One pass finds the symbols (they may come anywhere in the request), one
 * pass writes each series: its fields are read twice, first for the labels
 * and metadata (which may follow the samples on the wire), then for the
 * samples, exemplars and histograms, written after the labels into one
 * scratch buffer that becomes the 1.0 TimeSeries.
 */
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "labels.h"
#include "promrw.h"
#include "rwconv.h"

/* 2.0 */
#define V2_SYMBOLS		4
#define V2_TIMESERIES		5
#define V2_TS_LABELREFS		1
#define V2_TS_SAMPLES		2
#define V2_TS_HISTOGRAMS	3
#define V2_TS_EXEMPLARS		4
#define V2_TS_METADATA		5
#define V2_TS_CREATED		6	/* before 3.6; reserved since */
#define V2_SAMPLE_VALUE		1
#define V2_SAMPLE_TS		2
#define V2_SAMPLE_START		3
#define V2_HIST_LAST_V1		16	/* 1-16 are 1.0's fields too */
#define V2_HIST_START		17
#define V2_EX_LABELREFS		1
#define V2_EX_VALUE		2
#define V2_EX_TS		3
#define V2_META_TYPE		1
#define V2_META_HELP		3
#define V2_META_UNIT		4

/* 1.0 */
#define V1_TIMESERIES		1
#define V1_METADATA		3
#define V1_TS_SAMPLES		2
#define V1_TS_EXEMPLARS		3
#define V1_TS_HISTOGRAMS	4
#define V1_SAMPLE_VALUE		1
#define V1_SAMPLE_TS		2
#define V1_EX_VALUE		2
#define V1_EX_TS		3
#define V1_META_TYPE		1
#define V1_META_FAMILY		2
#define V1_META_HELP		4
#define V1_META_UNIT		5

#define META_HISTOGRAM		3
#define META_GAUGEHISTOGRAM	4
#define META_SUMMARY		5
#define FAMILY_SLOTS		(2 * RWCONV_FAMILIES_MAX)	/* power of two */

struct view {
	const uint8_t	*p;
	size_t		 n;
};

struct family {
	struct view	name, help, unit;
	uint64_t	type;
};

struct conv {
	const uint8_t		*body;
	uint32_t		*syms;		/* offset of each symbol's length */
	size_t			 nsyms;
	size_t			 max;
	struct pb_buf		*out;
	struct pb_buf		 ts;		/* the 1.0 series being written */
	struct labels_set	 ls;
	struct labels_set	 ex;
	struct family		*fam;		/* in order of first use */
	size_t			 nfam;
	uint16_t		*slots;		/* index + 1 into fam, 0: free */
	struct rwconv_stats	*st;
	const char		*errstr;
	int			 err;
};

static const uint8_t	empty[1];

const char *
rwconv_drop_name(int what)
{
	static const char *const names[RWCONV_DROP_N] = {
		"created_timestamp", "metadata", "unknown_field"
	};

	return what >= 0 && what < RWCONV_DROP_N ? names[what] : "?";
}

static int
fail(struct conv *c, int err, const char *why)
{
	c->err = err;
	c->errstr = why;
	return -1;
}

/* Room for n more bytes in b without the 1.0 body passing max. */
static int
room(struct conv *c, const struct pb_buf *b, size_t n)
{
	if (n > c->max || b->len > c->max - n)
		return fail(c, RWCONV_TOO_LARGE,
		    "the 1.0 conversion exceeds max_decoded_bytes");
	return 0;
}

/*
 * The symbols table; 2.0 reserves fields 1-3, which a 1.0 receiver would
 * read as 1.0 series: refused, as promrw's check does.
 */
static int
symbols(struct conv *c, const uint8_t *buf, size_t len)
{
	struct pb_reader	r;
	struct pb_field		f;
	int			rc;

	pb_reader_init(&r, buf, len);
	while ((rc = pb_next(&r, &f, &c->errstr)) == 1)
		if (f.num >= 1 && f.num <= 3)
			return fail(c, RWCONV_MALFORMED,
			    "2.0 request with reserved field 1-3");
	if (rc == -1)
		return fail(c, RWCONV_MALFORMED, c->errstr);
	if (pb_index(buf, len, V2_SYMBOLS, &c->syms, &c->nsyms,
	    &c->errstr) == -1)
		return fail(c, c->nsyms == 0 && strcmp(c->errstr,
		    "out of memory") == 0 ? RWCONV_NOMEM : RWCONV_MALFORMED,
		    c->errstr);
	c->body = buf;
	return 0;
}

static struct view
symbol(const struct conv *c, uint32_t ref)
{
	struct view	v;

	pb_indexed(c->body, c->syms[ref], &v.p, &v.n);
	return v;
}

static int
ref_check(struct conv *c, uint64_t ref)
{
	if (ref >= c->nsyms)
		return fail(c, RWCONV_MALFORMED, "symbol ref past the symbols table");
	return 0;
}

/* Label refs (packed or not) appended to ls as resolved pairs. */
static int
refs_add(struct conv *c, const struct pb_field *f, struct labels_set *ls,
    int *half, uint32_t *name)
{
	const uint8_t	*p = f->data, *end = f->wt == PB_LEN ? f->data + f->len : p;
	uint64_t	 ref = f->v;
	struct view	 n, v;

	if (f->wt != PB_VARINT && f->wt != PB_LEN)
		return fail(c, RWCONV_MALFORMED, "wrong wire type for label refs");
	while (f->wt == PB_VARINT || p < end) {
		if (f->wt == PB_LEN && pb_varint(&p, end, &ref) == -1)
			return fail(c, RWCONV_MALFORMED, "truncated label ref");
		if (ref_check(c, ref) == -1)
			return -1;
		if (!*half)
			*name = (uint32_t)ref;
		else {
			n = symbol(c, *name);
			v = symbol(c, (uint32_t)ref);
			if (labels_add(ls, n.p, n.n, v.p, v.n) == -1)
				return fail(c, RWCONV_MALFORMED, ls->errstr);
		}
		*half = !*half;
		if (f->wt == PB_VARINT)
			break;
	}
	return 0;
}

static int
labels_done(struct conv *c, struct labels_set *ls, int half)
{
	if (half)
		return fail(c, RWCONV_MALFORMED, "odd number of label refs");
	if (labels_sort_unique(ls) != NULL)
		return fail(c, RWCONV_MALFORMED, "repeated label name");
	return 0;
}

/* ls as 1.0 Label fields appended to b. */
static int
put_labels(struct conv *c, struct pb_buf *b, const struct labels_set *ls)
{
	size_t	 n = promrw_v1_labels_size(ls);
	uint8_t	*p;

	if (n == 0)
		return 0;
	if (room(c, b, n) == -1)
		return -1;
	if ((p = pb_claim(b, n)) != NULL)
		promrw_v1_encode_labels(ls, p);
	return 0;
}

static void
put_fixed64(struct pb_buf *b, uint32_t num, uint64_t v)
{
	uint8_t	le[8];

	for (int i = 0; i < 8; i++)
		le[i] = (uint8_t)(v >> (8 * i));
	pb_put_tag(b, num, PB_I64);
	pb_put_raw(b, le, sizeof(le));
}

static void
put_varint_field(struct pb_buf *b, uint32_t num, uint64_t v)
{
	pb_put_tag(b, num, PB_VARINT);
	pb_put_varint(b, v);
}

static int
scalar(struct conv *c, const struct pb_field *f, int wt)
{
	if (f->wt != wt)
		return fail(c, RWCONV_MALFORMED, "wrong wire type for a scalar");
	return 0;
}

/* Sample: value and timestamp; a start timestamp cannot be carried. */
static int
sample(struct conv *c, const uint8_t *buf, size_t len)
{
	struct pb_reader	r;
	struct pb_field		f;
	uint64_t		value = 0, ts = 0;
	size_t			n;
	int			rc;

	pb_reader_init(&r, buf, len);
	while ((rc = pb_next(&r, &f, &c->errstr)) == 1) {
		if (f.num == V2_SAMPLE_VALUE && scalar(c, &f, PB_I64) == 0)
			value = f.v;
		else if (f.num == V2_SAMPLE_TS && scalar(c, &f, PB_VARINT) == 0)
			ts = f.v;
		else if (f.num == V2_SAMPLE_START && scalar(c, &f, PB_VARINT) == 0)
			c->st->dropped[RWCONV_DROP_CREATED_TS] += f.v != 0;
		else if (c->err)
			return -1;
		else
			c->st->dropped[RWCONV_DROP_UNKNOWN]++;
	}
	if (rc == -1)
		return fail(c, RWCONV_MALFORMED, c->errstr);
	n = 9 + 1 + pb_varint_size(ts);
	if (room(c, &c->ts, n + 2) == -1)
		return -1;
	pb_put_tag(&c->ts, V1_TS_SAMPLES, PB_LEN);
	pb_put_varint(&c->ts, n);
	put_fixed64(&c->ts, V1_SAMPLE_VALUE, value);
	put_varint_field(&c->ts, V1_SAMPLE_TS, ts);
	c->st->samples++;
	return 0;
}

/* Histogram: fields 1-16 copied as they are, in order. */
static int
histogram(struct conv *c, const uint8_t *buf, size_t len)
{
	struct pb_reader	r;
	struct pb_field		f;
	size_t			n = 0;
	int			rc;

	pb_reader_init(&r, buf, len);
	while ((rc = pb_next(&r, &f, &c->errstr)) == 1) {
		if (f.num <= V2_HIST_LAST_V1)
			n += f.rawlen;
		else if (f.num == V2_HIST_START && scalar(c, &f, PB_VARINT) == 0)
			c->st->dropped[RWCONV_DROP_CREATED_TS] += f.v != 0;
		else if (c->err)
			return -1;
		else
			c->st->dropped[RWCONV_DROP_UNKNOWN]++;
	}
	if (rc == -1)
		return fail(c, RWCONV_MALFORMED, c->errstr);
	if (room(c, &c->ts, n + 11) == -1)
		return -1;
	pb_put_tag(&c->ts, V1_TS_HISTOGRAMS, PB_LEN);
	pb_put_varint(&c->ts, n);
	pb_reader_init(&r, buf, len);
	while (pb_next(&r, &f, &c->errstr) == 1)
		if (f.num <= V2_HIST_LAST_V1)
			pb_put_raw(&c->ts, f.start, f.rawlen);
	c->st->histograms++;
	return 0;
}

static int
exemplar(struct conv *c, const uint8_t *buf, size_t len)
{
	struct pb_reader	r;
	struct pb_field		f;
	uint64_t		value = 0, ts = 0;
	uint32_t		name = 0;
	size_t			n;
	int			rc, half = 0;

	labels_set_reset(&c->ex);
	pb_reader_init(&r, buf, len);
	while ((rc = pb_next(&r, &f, &c->errstr)) == 1) {
		if (f.num == V2_EX_LABELREFS) {
			if (refs_add(c, &f, &c->ex, &half, &name) == -1)
				return -1;
		} else if (f.num == V2_EX_VALUE && scalar(c, &f, PB_I64) == 0)
			value = f.v;
		else if (f.num == V2_EX_TS && scalar(c, &f, PB_VARINT) == 0)
			ts = f.v;
		else if (c->err)
			return -1;
		else
			c->st->dropped[RWCONV_DROP_UNKNOWN]++;
	}
	if (rc == -1)
		return fail(c, RWCONV_MALFORMED, c->errstr);
	if (labels_done(c, &c->ex, half) == -1)
		return -1;
	n = promrw_v1_labels_size(&c->ex) + 9 + 1 + pb_varint_size(ts);
	if (room(c, &c->ts, n + 11) == -1)
		return -1;
	pb_put_tag(&c->ts, V1_TS_EXEMPLARS, PB_LEN);
	pb_put_varint(&c->ts, n);
	if (put_labels(c, &c->ts, &c->ex) == -1)
		return -1;
	put_fixed64(&c->ts, V1_EX_VALUE, value);
	put_varint_field(&c->ts, V1_EX_TS, ts);
	c->st->exemplars++;
	return 0;
}

static int
view_eq(struct view a, struct view b)
{
	return a.n == b.n && (a.n == 0 || memcmp(a.p, b.p, a.n) == 0);
}

static uint32_t
view_hash(struct view v)
{
	uint32_t	h = 2166136261u;	/* FNV-1a */

	for (size_t i = 0; i < v.n; i++)
		h = (h ^ v.p[i]) * 16777619u;
	return h;
}

/* The family a series' metadata belongs to: __name__ less its suffix. */
static struct view
family_name(const struct view name, uint64_t type)
{
	static const char *const sfx[] = { "_bucket", "_sum", "_count", "_gsum", "_gcount" };
	size_t	k;

	if (type != META_HISTOGRAM && type != META_GAUGEHISTOGRAM && type != META_SUMMARY)
		return name;
	for (size_t i = 0; i < sizeof(sfx) / sizeof(sfx[0]); i++) {
		k = strlen(sfx[i]);
		if (name.n > k && memcmp(name.p + name.n - k, sfx[i], k) == 0)
			return (struct view){ name.p, name.n - k };
	}
	return name;
}

/* Records one series' metadata; what cannot be kept is counted. */
static int
family_note(struct conv *c, const struct family *m)
{
	uint32_t	i;
	struct family	*e;

	if (c->slots == NULL && ((c->slots = calloc(FAMILY_SLOTS, sizeof(*c->slots))) == NULL ||
	    (c->fam = calloc(RWCONV_FAMILIES_MAX, sizeof(*c->fam))) == NULL))
		return fail(c, RWCONV_NOMEM, "out of memory");
	for (i = view_hash(m->name) & (FAMILY_SLOTS - 1); c->slots[i] != 0;
	    i = (i + 1) & (FAMILY_SLOTS - 1)) {
		e = &c->fam[c->slots[i] - 1];
		if (!view_eq(e->name, m->name))
			continue;
		if (e->type != m->type || !view_eq(e->help, m->help) ||
		    !view_eq(e->unit, m->unit))
			c->st->dropped[RWCONV_DROP_METADATA]++;
		return 0;
	}
	if (c->nfam == RWCONV_FAMILIES_MAX) {
		c->st->dropped[RWCONV_DROP_METADATA]++;
		return 0;
	}
	c->fam[c->nfam++] = *m;
	c->slots[i] = (uint16_t)c->nfam;
	return 0;
}

static int
metadata(struct conv *c, const uint8_t *buf, size_t len, struct family *m)
{
	struct pb_reader	r;
	struct pb_field		f;
	int			rc;

	*m = (struct family){ .help = { empty, 0 }, .unit = { empty, 0 } };
	pb_reader_init(&r, buf, len);
	while ((rc = pb_next(&r, &f, &c->errstr)) == 1) {
		if (f.num == V2_META_TYPE && scalar(c, &f, PB_VARINT) == 0)
			m->type = f.v;
		else if ((f.num == V2_META_HELP || f.num == V2_META_UNIT) &&
		    scalar(c, &f, PB_VARINT) == 0 && ref_check(c, f.v) == 0)
			*(f.num == V2_META_HELP ? &m->help : &m->unit) =
			    symbol(c, (uint32_t)f.v);
		else if (c->err)
			return -1;
		else
			c->st->dropped[RWCONV_DROP_UNKNOWN]++;
	}
	if (rc == -1)
		return fail(c, RWCONV_MALFORMED, c->errstr);
	return 0;
}

static int
series_meta(struct conv *c, const struct family *m)
{
	struct labels_pair	*name;
	struct family		 f = *m;

	if (m->type == 0 && m->help.n == 0 && m->unit.n == 0)
		return 0;
	if ((name = labels_find(&c->ls, "__name__", 8)) == NULL || name->vlen == 0) {
		c->st->dropped[RWCONV_DROP_METADATA]++;
		return 0;
	}
	f.name = family_name((struct view){ name->value, name->vlen }, m->type);
	return family_note(c, &f);
}

/* First reading: labels, metadata, created timestamp. */
static int
series_head(struct conv *c, const uint8_t *buf, size_t len, int *data)
{
	struct pb_reader	r;
	struct pb_field		f;
	struct family		m = { .help = { empty, 0 }, .unit = { empty, 0 } };
	uint32_t		name = 0;
	int			rc, half = 0;

	labels_set_reset(&c->ls);
	pb_reader_init(&r, buf, len);
	while ((rc = pb_next(&r, &f, &c->errstr)) == 1) {
		if (f.num == V2_TS_LABELREFS) {
			if (refs_add(c, &f, &c->ls, &half, &name) == -1)
				return -1;
		} else if (f.num >= V2_TS_SAMPLES && f.num <= V2_TS_METADATA) {
			if (f.wt != PB_LEN)
				return fail(c, RWCONV_MALFORMED,
				    "wrong wire type for a series field");
			if (f.num != V2_TS_METADATA)
				*data = 1;
			else if (metadata(c, f.data, f.len, &m) == -1)
				return -1;
		} else if (f.num == V2_TS_CREATED && scalar(c, &f, PB_VARINT) == 0)
			c->st->dropped[RWCONV_DROP_CREATED_TS] += f.v != 0;
		else if (c->err)
			return -1;
		else
			c->st->dropped[RWCONV_DROP_UNKNOWN]++;
	}
	if (rc == -1)
		return fail(c, RWCONV_MALFORMED, c->errstr);
	if (labels_done(c, &c->ls, half) == -1)
		return -1;
	return series_meta(c, &m);
}

static int
series(struct conv *c, const uint8_t *buf, size_t len)
{
	struct pb_reader	r;
	struct pb_field		f;
	int			data = 0, rc = 0;

	if (series_head(c, buf, len, &data) == -1)
		return -1;
	if (!data)
		return 0;
	c->ts.len = 0;
	if (put_labels(c, &c->ts, &c->ls) == -1)
		return -1;
	pb_reader_init(&r, buf, len);
	while (rc == 0 && pb_next(&r, &f, &c->errstr) == 1) {
		if (f.num == V2_TS_SAMPLES)
			rc = sample(c, f.data, f.len);
		else if (f.num == V2_TS_HISTOGRAMS)
			rc = histogram(c, f.data, f.len);
		else if (f.num == V2_TS_EXEMPLARS)
			rc = exemplar(c, f.data, f.len);
	}
	if (rc == -1 || room(c, c->out, c->ts.len + 11) == -1)
		return -1;
	if (pb_buf_failed(&c->ts))
		return fail(c, RWCONV_NOMEM, "out of memory");
	pb_put_bytes(c->out, V1_TIMESERIES, c->ts.data, c->ts.len);
	c->st->series++;
	return 0;
}

static int
put_families(struct conv *c)
{
	const struct family	*m;
	size_t			 n;

	for (size_t i = 0; i < c->nfam; i++) {
		m = &c->fam[i];
		n = 1 + pb_varint_size(m->type) + pb_bytes_size(V1_META_FAMILY, m->name.n) +
		    (m->help.n ? pb_bytes_size(V1_META_HELP, m->help.n) : 0) +
		    (m->unit.n ? pb_bytes_size(V1_META_UNIT, m->unit.n) : 0);
		if (room(c, c->out, n + 11) == -1)
			return -1;
		pb_put_tag(c->out, V1_METADATA, PB_LEN);
		pb_put_varint(c->out, n);
		put_varint_field(c->out, V1_META_TYPE, m->type);
		pb_put_bytes(c->out, V1_META_FAMILY, m->name.p, m->name.n);
		if (m->help.n)
			pb_put_bytes(c->out, V1_META_HELP, m->help.p, m->help.n);
		if (m->unit.n)
			pb_put_bytes(c->out, V1_META_UNIT, m->unit.p, m->unit.n);
		c->st->metadata++;
	}
	return 0;
}

static int
convert(struct conv *c, const uint8_t *buf, size_t len)
{
	struct pb_reader	r;
	struct pb_field		f;

	if (symbols(c, buf, len) == -1)
		return -1;
	pb_reader_init(&r, buf, len);
	while (pb_next(&r, &f, &c->errstr) == 1) {
		if (f.num == V2_TIMESERIES) {
			if (f.wt != PB_LEN)
				return fail(c, RWCONV_MALFORMED,
				    "wrong wire type for timeseries");
			if (series(c, f.data, f.len) == -1)
				return -1;
		} else if (f.num != V2_SYMBOLS)
			c->st->dropped[RWCONV_DROP_UNKNOWN]++;
	}
	return put_families(c);
}

int
rwconv_v2_to_v1(const uint8_t *buf, size_t len, size_t max,
    struct pb_buf *out, struct rwconv_stats *st, const char **errstr)
{
	struct conv	c = { .body = buf, .max = max, .out = out, .st = st };
	int		rc;

	memset(st, 0, sizeof(*st));
	pb_buf_init(out, len + len / 2 + 64 < max ? len + len / 2 + 64 : max);
	pb_buf_init(&c.ts, 256);
	labels_set_init(&c.ls);
	labels_set_init(&c.ex);
	rc = convert(&c, buf, len);
	if (rc == 0 && (pb_buf_failed(out) || pb_buf_failed(&c.ts)))
		rc = fail(&c, RWCONV_NOMEM, "out of memory");
	labels_set_free(&c.ls);
	labels_set_free(&c.ex);
	pb_buf_free(&c.ts);
	free(c.syms);
	free(c.slots);
	free(c.fam);
	if (rc == 0)
		return RWCONV_OK;
	pb_buf_free(out);
	*errstr = c.errstr;
	return c.err;
}

int
rwconv_snappy(const uint8_t *in, size_t inlen, size_t max, uint8_t **out,
    size_t *outlen, struct rwconv_stats *st, const char **errstr)
{
	struct pb_buf	 v1;
	uint8_t		*v2;
	size_t		 v2len;
	int		 rc;

	memset(st, 0, sizeof(*st));
	rc = codec_snappy_decode(in, inlen, max, &v2, &v2len, errstr);
	if (rc != CODEC_OK)
		return rc == CODEC_TOO_LARGE ? RWCONV_TOO_LARGE :
		    rc == CODEC_NOMEM ? RWCONV_NOMEM : RWCONV_MALFORMED;
	rc = rwconv_v2_to_v1(v2, v2len, max, &v1, st, errstr);
	free(v2);
	if (rc != RWCONV_OK)
		return rc;
	rc = codec_snappy_encode(v1.data, v1.len, out, outlen);
	pb_buf_free(&v1);
	if (rc != CODEC_OK) {
		*errstr = "out of memory";
		return RWCONV_NOMEM;
	}
	return RWCONV_OK;
}
