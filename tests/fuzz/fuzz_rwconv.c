/*
 * Remote write 2.0 -> 1.0 on a decoded body.  Property: a conversion that
 * succeeds is a 1.0 WriteRequest whose series each carry strictly sorted
 * (so unique) label names, holding exactly the samples, histograms and
 * exemplars the stats report, and no bigger than the cap.  Read back with
 * pb.h alone, not with rwconv's own code.
 */
#include <string.h>

#include "fuzz_common.h"
#include "rwconv.h"

#define FUZZ_MAX	(256 * 1024)

struct seen {
	uint64_t	series, samples, histograms, exemplars, metadata;
};

/* The name of a 1.0 Label (field 1), "" when absent. */
static void
label_name(const struct pb_field *lf, const uint8_t **n, size_t *nl)
{
	struct pb_reader	r;
	struct pb_field		f;
	const char		*errstr;

	*n = (const uint8_t *)"";
	*nl = 0;
	pb_reader_init(&r, lf->data, lf->len);
	while (pb_next(&r, &f, &errstr) == 1)
		if (f.num == 1) {
			FUZZ_REQUIRE(f.wt == PB_LEN);
			*n = f.data;
			*nl = f.len;
		}
}

static int
name_cmp(const uint8_t *a, size_t al, const uint8_t *b, size_t bl)
{
	int c = memcmp(a, b, al < bl ? al : bl);

	return c != 0 ? c : (al > bl) - (al < bl);
}

static void
series(const uint8_t *buf, size_t len, struct seen *s)
{
	struct pb_reader	r;
	struct pb_field		f;
	const char		*errstr;
	const uint8_t		*prev = NULL, *n;
	size_t			 prevl = 0, nl;
	int			 rc;

	pb_reader_init(&r, buf, len);
	while ((rc = pb_next(&r, &f, &errstr)) == 1) {
		FUZZ_REQUIRE(f.wt == PB_LEN && f.num >= 1 && f.num <= 4);
		if (f.num == 1) {
			label_name(&f, &n, &nl);
			FUZZ_REQUIRE(prev == NULL || name_cmp(prev, prevl, n, nl) < 0);
			prev = n;
			prevl = nl;
		}
		s->samples += f.num == 2;
		s->exemplars += f.num == 3;
		s->histograms += f.num == 4;
	}
	FUZZ_REQUIRE(rc == 0);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rwconv_stats	st;
	struct pb_buf		out;
	struct pb_reader	r;
	struct pb_field		f;
	struct seen		s = { 0 };
	const char		*errstr;
	int			rc;

	if (rwconv_v2_to_v1(data, size, FUZZ_MAX, &out, &st, &errstr) != RWCONV_OK)
		return 0;
	FUZZ_REQUIRE(out.len <= FUZZ_MAX);
	pb_reader_init(&r, out.data, out.len);
	while ((rc = pb_next(&r, &f, &errstr)) == 1) {
		FUZZ_REQUIRE(f.wt == PB_LEN && (f.num == 1 || f.num == 3));
		if (f.num == 1) {
			s.series++;
			series(f.data, f.len, &s);
		} else
			s.metadata++;
	}
	FUZZ_REQUIRE(rc == 0);
	FUZZ_REQUIRE(s.series == st.series && s.samples == st.samples &&
	    s.histograms == st.histograms && s.exemplars == st.exemplars &&
	    s.metadata == st.metadata);
	pb_buf_free(&out);
	return 0;
}
