/*
 * Test helpers shared by the body-parser tests (pb, promrw, loki, payload):
 * reading fixture files, building protobuf bodies with pb.h's writer, and
 * taking rewritten bodies apart again to compare them field by field.
 * Everything is static inline so a test that uses part of it still builds
 * with -Werror.
 */
#ifndef KAKIKOMI_TEST_BODIES_H
#define KAKIKOMI_TEST_BODIES_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <zlib.h>

#include "fixture.h"
#include "codec.h"
#include "config.h"
#include "payload.h"
#include "pb.h"

#define TESTDATA	"../shared/testdata/"

static inline uint8_t *
tb_read(const char *path, size_t *len)
{
	return (uint8_t *)fixture_read(path, len);
}

/* Appends child as a length-delimited field of parent and frees child. */
static inline void
tb_msg(struct pb_buf *parent, uint32_t field, struct pb_buf *child)
{
	pb_put_bytes(parent, field, child->data, child->len);
	pb_buf_free(child);
}

static inline void
tb_str(struct pb_buf *b, uint32_t field, const char *s)
{
	pb_put_bytes(b, field, s, strlen(s));
}

/* A remote write 1.0 Label as field `field` of b (1 in TimeSeries). */
static inline void
tb_label(struct pb_buf *b, uint32_t field, const char *name, const char *value)
{
	struct pb_buf	l;

	pb_buf_init(&l, 0);
	tb_str(&l, 1, name);
	tb_str(&l, 2, value);
	tb_msg(b, field, &l);
}

/* A Sample {value, timestamp} as field 2 of a TimeSeries. */
static inline void
tb_sample(struct pb_buf *ts, double v, int64_t t)
{
	struct pb_buf	s;
	uint64_t	bits;
	uint8_t		le[8];
	int		i;

	memcpy(&bits, &v, sizeof(bits));
	for (i = 0; i < 8; i++)
		le[i] = (uint8_t)(bits >> (8 * i));
	pb_buf_init(&s, 0);
	pb_put_tag(&s, 1, PB_I64);
	pb_put_raw(&s, le, 8);
	pb_put_tag(&s, 2, PB_VARINT);
	pb_put_varint(&s, (uint64_t)t);
	tb_msg(ts, 2, &s);
}

/*
 * A series from "name=value" strings (NULL-terminated) with one sample,
 * appended to the WriteRequest `req` as field 1.
 */
static inline void
tb_series(struct pb_buf *req, const char *const *labels)
{
	struct pb_buf	ts;
	char		name[128];
	const char	*eq;

	pb_buf_init(&ts, 0);
	for (; *labels != NULL; labels++) {
		eq = strchr(*labels, '=');
		assert_non_null(eq);
		snprintf(name, sizeof(name), "%.*s", (int)(eq - *labels),
		    *labels);
		tb_label(&ts, 1, name, eq + 1);
	}
	tb_sample(&ts, 1.5, 1764036000000);
	tb_msg(req, 1, &ts);
}

/* Every field `num` of a message, as (data, len) views; returns the count. */
static inline size_t
tb_fields(const uint8_t *buf, size_t len, uint32_t num,
    const uint8_t **data, size_t *lens, size_t max)
{
	struct pb_reader	 r;
	struct pb_field		 f;
	const char		*errstr = NULL;
	size_t			 n = 0;
	int			 rc;

	if (max > 0) {		/* callers read [0] after checking the count */
		data[0] = NULL;
		lens[0] = 0;
	}
	pb_reader_init(&r, buf, len);
	while ((rc = pb_next(&r, &f, &errstr)) == 1)
		if (f.num == num && n < max) {
			data[n] = f.data;
			lens[n++] = f.len;
		}
	if (rc == -1)
		fail_msg("test body does not parse: %s", errstr);
	return n;
}

/* A series' labels in wire order as "a=b,c=d" (remote write 1.0). */
static inline void
tb_labels_str(const uint8_t *ts, size_t len, char *out, size_t outsz)
{
	const uint8_t	*lab[256], *nv[2] = { NULL, NULL };
	size_t		 llen[256], nvl[2], n, i, k, at = 0;

	out[0] = '\0';
	n = tb_fields(ts, len, 1, lab, llen, 256);
	for (i = 0; i < n; i++) {
		k = tb_fields(lab[i], llen[i], 1, nv, nvl, 1);
		at += (size_t)snprintf(out + at, outsz - at, "%s%.*s=", i ? "," : "",
		    k ? (int)nvl[0] : 0, k ? (const char *)nv[0] : "");
		k = tb_fields(lab[i], llen[i], 2, nv, nvl, 1);
		at += (size_t)snprintf(out + at, outsz - at, "%.*s",
		    k ? (int)nvl[0] : 0, k ? (const char *)nv[0] : "");
		assert_true(at < outsz);
	}
}

/* Every field of a message except number `skip`, raw, concatenated. */
static inline void
tb_except(const uint8_t *buf, size_t len, uint32_t skip, struct pb_buf *out)
{
	pb_buf_init(out, 0);
	pb_put_except(out, buf, len, skip);
	assert_false(pb_buf_failed(out));
}

static inline void
tb_snappy(const struct pb_buf *b, uint8_t **out, size_t *outlen)
{
	assert_int_equal(codec_snappy_encode(b->data, b->len, out, outlen),
	    CODEC_OK);
}

static inline void
tb_unsnappy(const uint8_t *in, size_t len, uint8_t **out, size_t *outlen)
{
	const char	*errstr = NULL;

	if (codec_snappy_decode(in, len, 1u << 30, out, outlen, &errstr) !=
	    CODEC_OK)
		fail_msg("rewritten body is not valid snappy: %s", errstr);
}

/* A rule over a static value list. */
static inline struct payload_rule
tb_rule(const struct strlist *values, enum mismatch mode)
{
	struct payload_rule	r;

	r.label = "provider";
	r.values = values;
	r.mode = mode;
	r.site = "tokyo";
	r.max_decoded = 32u << 20;
	return r;
}

/*
 * A deflate polyglot: TB_POLY_LEN bytes that are a valid zlib stream (RFC
 * 1950: header 78 9c, one final stored block holding D, Adler-32) and also a
 * valid raw deflate stream (RFC 1951) that decodes to something else.  Read
 * raw, 78 is a non-final stored block whose LEN/NLEN are the zlib header's
 * 9c 21 / 63 de; its 8604 bytes end inside D, where D holds (at TB_POLY_AT)
 * the header of a final stored block running to the last byte.  D is `head`,
 * 'x' up to TB_POLY_AT, that header ("a\xc8\xbc" "7C", valid UTF-8, so a
 * JSON string may hold it), `tail`, then spaces.  *raw gets the raw reading.
 */
#define TB_POLY_LEN	56942
#define TB_POLY_D	56931
#define TB_POLY_AT	8602

static inline uint8_t *
tb_deflate_polyglot(const char *head, const char *tail, uint8_t **raw,
    size_t *rawlen)
{
	static const uint8_t	 zhdr[7] = { 0x78, 0x9c, 0x21, 0x63, 0xde,
	    0x9c, 0x21 };
	static const uint8_t	 blk2[5] = { 'a', 0xc8, 0xbc, 0x37, 0x43 };
	uint8_t			*p = malloc(TB_POLY_LEN), *d = p + 7;
	size_t			 hl = strlen(head), tl = strlen(tail);
	uLong			 a;

	assert_true(p != NULL && hl <= TB_POLY_AT &&
	    TB_POLY_AT + 5 + tl <= TB_POLY_D);
	memcpy(p, zhdr, sizeof(zhdr));
	memset(d, ' ', TB_POLY_D);
	memcpy(d, head, hl);
	memset(d + hl, 'x', TB_POLY_AT - hl);
	memcpy(d + TB_POLY_AT, blk2, sizeof(blk2));
	memcpy(d + TB_POLY_AT + 5, tail, tl);
	a = adler32(1, d, TB_POLY_D);
	for (int i = 0; i < 4; i++)
		p[7 + TB_POLY_D + i] = (uint8_t)(a >> (24 - 8 * i));
	/* Raw: 0x219c bytes from offset 5, then all after the second header. */
	*rawlen = 0x219c + TB_POLY_LEN - (7 + TB_POLY_AT + 5);
	*raw = malloc(*rawlen);
	assert_non_null(*raw);
	memcpy(*raw, p + 5, 0x219c);
	memcpy(*raw + 0x219c, d + TB_POLY_AT + 5, *rawlen - 0x219c);
	return p;
}

#endif
