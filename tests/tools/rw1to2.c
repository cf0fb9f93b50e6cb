/*
 * rw1to2: turns a remote write 1.0 body into the 2.0 body a 2.0 sender
 * would send for the same data, or dumps a 1.0 body's samples.
 *
 *   rw1to2 < v1.body > v2.body          snappy in, snappy out
 *   rw1to2 --dump [--set name=value] < v1.body
 *       one line per sample: name=value,... (sorted; --set replaces or adds a
 *       label, as kakikomi's rewrite does) <tab> timestamp <tab> value bits
 *       (16 hex digits, or "nan" for any NaN)
 *
 * Series labels and exemplar labels become refs into one deduplicated
 * symbols table (symbols[0] == ""); samples and histograms are copied as they
 * are (1.0 and 2.0 encode both alike).  1.0 metadata is not carried: 2.0
 * attaches it per series, and the captured bodies hold none.  Test input
 * only: it trusts its input and exits on malformed bodies.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "pb.h"

#define SYM_BUCKETS	65536

struct sym {
	struct sym	*next;
	const uint8_t	*p;
	size_t		 n;
	uint32_t	 ref;
};

static struct sym	*buckets[SYM_BUCKETS];
static struct pb_buf	 symtab;
static uint32_t		 nsyms;

static void
die(const char *why)
{
	fprintf(stderr, "rw1to2: %s\n", why);
	exit(1);
}

static uint32_t
sym_ref(const uint8_t *p, size_t n)
{
	uint32_t h = 2166136261u;
	struct sym *s;

	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 16777619u;
	for (s = buckets[h % SYM_BUCKETS]; s; s = s->next)
		if (s->n == n && memcmp(s->p, p, n) == 0)
			return s->ref;
	if ((s = malloc(sizeof(*s))) == NULL)
		die("out of memory");
	*s = (struct sym){ buckets[h % SYM_BUCKETS], p, n, nsyms++ };
	buckets[h % SYM_BUCKETS] = s;
	pb_put_bytes(&symtab, 4, p, n);
	return s->ref;
}

static void
next_or_die(struct pb_reader *r, struct pb_field *f, int *rc)
{
	const char *errstr;

	if ((*rc = pb_next(r, f, &errstr)) == -1)
		die(errstr);
}

/* A 1.0 Label's name and value. */
static void
label_of(const struct pb_field *lf, const uint8_t **n, size_t *nl,
    const uint8_t **v, size_t *vl)
{
	struct pb_reader r;
	struct pb_field f;
	int rc;

	*n = *v = (const uint8_t *)"";
	*nl = *vl = 0;
	pb_reader_init(&r, lf->data, lf->len);
	for (next_or_die(&r, &f, &rc); rc == 1; next_or_die(&r, &f, &rc)) {
		if (f.num == 1) {
			*n = f.data;
			*nl = f.len;
		} else if (f.num == 2) {
			*v = f.data;
			*vl = f.len;
		}
	}
}

/* Label fields of a 1.0 message as packed refs (field `num`) of out. */
static void
put_refs(struct pb_buf *out, uint32_t num, const uint8_t *buf, size_t len)
{
	struct pb_reader r;
	struct pb_field f;
	struct pb_buf p;
	const uint8_t *n, *v;
	size_t nl, vl;
	int rc;

	pb_buf_init(&p, 64);
	pb_reader_init(&r, buf, len);
	for (next_or_die(&r, &f, &rc); rc == 1; next_or_die(&r, &f, &rc)) {
		if (f.num != 1)
			continue;
		label_of(&f, &n, &nl, &v, &vl);
		pb_put_varint(&p, sym_ref(n, nl));
		pb_put_varint(&p, sym_ref(v, vl));
	}
	if (p.len > 0)
		pb_put_bytes(out, num, p.data, p.len);
	pb_buf_free(&p);
}

static void
exemplar(struct pb_buf *ts, const uint8_t *buf, size_t len)
{
	struct pb_reader r;
	struct pb_field f;
	struct pb_buf e;
	int rc;

	pb_buf_init(&e, 64);
	put_refs(&e, 1, buf, len);
	pb_reader_init(&r, buf, len);
	for (next_or_die(&r, &f, &rc); rc == 1; next_or_die(&r, &f, &rc))
		if (f.num == 2 || f.num == 3)
			pb_put_raw(&e, f.start, f.rawlen);
	pb_put_bytes(ts, 4, e.data, e.len);
	pb_buf_free(&e);
}

static void
series(struct pb_buf *out, const uint8_t *buf, size_t len)
{
	struct pb_reader r;
	struct pb_field f;
	struct pb_buf ts;
	int rc;

	pb_buf_init(&ts, 256);
	put_refs(&ts, 1, buf, len);
	pb_reader_init(&r, buf, len);
	for (next_or_die(&r, &f, &rc); rc == 1; next_or_die(&r, &f, &rc)) {
		if (f.num == 2)
			pb_put_bytes(&ts, 2, f.data, f.len);
		else if (f.num == 4)
			pb_put_bytes(&ts, 3, f.data, f.len);
		else if (f.num == 3)
			exemplar(&ts, f.data, f.len);
	}
	pb_put_bytes(out, 5, ts.data, ts.len);
	pb_buf_free(&ts);
}

static void
convert(const uint8_t *buf, size_t len)
{
	struct pb_reader r;
	struct pb_field f;
	struct pb_buf body;
	uint8_t *out;
	size_t outlen;
	int rc;

	pb_buf_init(&symtab, len);
	pb_buf_init(&body, len);
	sym_ref((const uint8_t *)"", 0);
	pb_reader_init(&r, buf, len);
	for (next_or_die(&r, &f, &rc); rc == 1; next_or_die(&r, &f, &rc))
		if (f.num == 1)
			series(&body, f.data, f.len);
	pb_put_raw(&symtab, body.data, body.len);
	if (pb_buf_failed(&symtab) ||
	    codec_snappy_encode(symtab.data, symtab.len, &out, &outlen) != CODEC_OK)
		die("out of memory");
	fwrite(out, 1, outlen, stdout);
	free(out);
	pb_buf_free(&body);
	pb_buf_free(&symtab);
}

struct lab {
	char	*s;	/* "name=value" */
};

static int
lab_cmp(const void *a, const void *b)
{
	const char *x = ((const struct lab *)a)->s, *y = ((const struct lab *)b)->s;
	size_t nx = strcspn(x, "="), ny = strcspn(y, "=");
	int c = memcmp(x, y, nx < ny ? nx : ny);

	return c != 0 ? c : (nx > ny) - (nx < ny);
}

/* One series' labels with `set` applied, sorted, as name=value,... */
static void
dump_labels(const uint8_t *buf, size_t len, const char *set, char *line, size_t linesz)
{
	struct lab l[256];
	struct pb_reader r;
	struct pb_field f;
	const uint8_t *n, *v;
	size_t nl, vl, k = 0, o = 0, setn = set ? strcspn(set, "=") : 0;
	int rc, replaced = 0;

	pb_reader_init(&r, buf, len);
	for (next_or_die(&r, &f, &rc); rc == 1 && k < 255; next_or_die(&r, &f, &rc)) {
		if (f.num != 1)
			continue;
		label_of(&f, &n, &nl, &v, &vl);
		if (set && nl == setn && memcmp(n, set, nl) == 0) {
			l[k++].s = strdup(set);
			replaced = 1;
		} else if (asprintf(&l[k++].s, "%.*s=%.*s", (int)nl, n, (int)vl, v) == -1)
			die("out of memory");
	}
	if (set && !replaced)
		l[k++].s = strdup(set);
	qsort(l, k, sizeof(l[0]), lab_cmp);
	line[0] = '\0';
	for (size_t i = 0; i < k; i++) {
		o += (size_t)snprintf(line + o, linesz - o, "%s%s", i ? "," : "", l[i].s);
		free(l[i].s);
		if (o >= linesz)
			die("labels too long");
	}
}

static void
dump_sample(const char *labels, const uint8_t *buf, size_t len)
{
	struct pb_reader r;
	struct pb_field f;
	uint64_t bits = 0, ts = 0;
	double d;
	int rc;

	pb_reader_init(&r, buf, len);
	for (next_or_die(&r, &f, &rc); rc == 1; next_or_die(&r, &f, &rc)) {
		if (f.num == 1)
			bits = f.v;
		else if (f.num == 2)
			ts = f.v;
	}
	memcpy(&d, &bits, sizeof(d));
	if (isnan(d))
		printf("%s\t%lld\tnan\n", labels, (long long)ts);
	else
		printf("%s\t%lld\t%016llx\n", labels, (long long)ts, (unsigned long long)bits);
}

static void
dump(const uint8_t *buf, size_t len, const char *set)
{
	struct pb_reader r, sr;
	struct pb_field f, sf;
	static char line[65536];
	int rc, src;

	pb_reader_init(&r, buf, len);
	for (next_or_die(&r, &f, &rc); rc == 1; next_or_die(&r, &f, &rc)) {
		if (f.num != 1)
			continue;
		dump_labels(f.data, f.len, set, line, sizeof(line));
		pb_reader_init(&sr, f.data, f.len);
		for (next_or_die(&sr, &sf, &src); src == 1; next_or_die(&sr, &sf, &src))
			if (sf.num == 2)
				dump_sample(line, sf.data, sf.len);
	}
}

int
main(int argc, char **argv)
{
	static uint8_t in[64 << 20];
	const char *errstr, *set = NULL;
	uint8_t *dec;
	size_t n, declen;
	int dumping = 0;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--dump") == 0)
			dumping = 1;
		else if (strcmp(argv[i], "--set") == 0 && i + 1 < argc)
			set = argv[++i];
		else
			die("usage: rw1to2 [--dump [--set name=value]] < v1.body");
	}
	n = fread(in, 1, sizeof(in), stdin);
	if (codec_snappy_decode(in, n, sizeof(in), &dec, &declen, &errstr) != CODEC_OK)
		die(errstr);
	if (dumping)
		dump(dec, declen, set);
	else
		convert(dec, declen);
	free(dec);
	return 0;
}
