/*
 * pb: protobuf wire reader and writer.  See pb.h for the contract.
 */
#include <stdlib.h>
#include <string.h>

#include "pb.h"

#define PB_MAX_FIELD	((1u << 29) - 1)

void
pb_reader_init(struct pb_reader *r, const uint8_t *buf, size_t len)
{
	r->p = buf;
	r->end = buf + len;
}

int
pb_varint(const uint8_t **pp, const uint8_t *end, uint64_t *v)
{
	const uint8_t	*p = *pp;
	uint64_t	 x = 0;
	unsigned	 shift;

	for (shift = 0; shift < 70; shift += 7) {
		if (p == end)
			return -1;
		/* The 10th byte may only contribute bit 63. */
		if (shift == 63 && *p > 1)
			return -1;
		x |= (uint64_t)(*p & 0x7f) << shift;
		if ((*p++ & 0x80) == 0) {
			*pp = p;
			*v = x;
			return 0;
		}
	}
	return -1;
}

size_t
pb_varint_size(uint64_t v)
{
	size_t	n = 1;

	while (v >= 0x80) {
		v >>= 7;
		n++;
	}
	return n;
}

static int
pb_fixed(struct pb_reader *r, struct pb_field *f, size_t n)
{
	size_t	i;

	if ((size_t)(r->end - r->p) < n)
		return -1;
	f->v = 0;
	for (i = 0; i < n; i++)
		f->v |= (uint64_t)r->p[i] << (8 * i);
	r->p += n;
	return 0;
}

static int
pb_value(struct pb_reader *r, struct pb_field *f, const char **errstr)
{
	uint64_t	len;

	switch (f->wt) {
	case PB_VARINT:
		if (pb_varint(&r->p, r->end, &f->v) == -1) {
			*errstr = "truncated or overlong varint";
			return -1;
		}
		return 0;
	case PB_I64:
	case PB_I32:
		if (pb_fixed(r, f, f->wt == PB_I64 ? 8 : 4) == -1) {
			*errstr = "truncated fixed-width field";
			return -1;
		}
		return 0;
	case PB_LEN:
		if (r->p < r->end && *r->p < 0x80)
			len = *r->p++;
		else if (pb_varint(&r->p, r->end, &len) == -1) {
			*errstr = "truncated or overlong length";
			return -1;
		}
		if (len > (uint64_t)(r->end - r->p)) {
			*errstr = "length past the end of the message";
			return -1;
		}
		f->data = r->p;
		f->len = (size_t)len;
		r->p += len;
		return 0;
	default:
		*errstr = "unsupported wire type (group or invalid)";
		return -1;
	}
}

int
pb_next(struct pb_reader *r, struct pb_field *f, const char **errstr)
{
	uint64_t	tag;

	if (r->p == r->end)
		return 0;
	f->start = r->p;
	/* One-byte tags (fields 1-15) are the common case: skip the loop. */
	if (*r->p < 0x80)
		tag = *r->p++;
	else if (pb_varint(&r->p, r->end, &tag) == -1) {
		*errstr = "truncated or overlong field tag";
		return -1;
	}
	if ((tag >> 3) == 0 || (tag >> 3) > PB_MAX_FIELD) {
		*errstr = "invalid field number";
		return -1;
	}
	f->num = (uint32_t)(tag >> 3);
	f->wt = (int)(tag & 7);
	f->data = NULL;
	f->len = 0;
	f->v = 0;
	if (pb_value(r, f, errstr) == -1)
		return -1;
	f->rawlen = (size_t)(r->p - f->start);
	return 1;
}

static int	pb_buf_reserve(struct pb_buf *, size_t);

void
pb_buf_init(struct pb_buf *b, size_t hint)
{
	memset(b, 0, sizeof(*b));
	if (hint > 0 && (b->data = malloc(hint)) != NULL)
		b->cap = hint;
}

void
pb_buf_reuse(struct pb_buf *b, size_t hint)
{
	b->len = 0;
	b->failed = 0;
	(void)pb_buf_reserve(b, hint);
}

void
pb_buf_free(struct pb_buf *b)
{
	free(b->data);
	memset(b, 0, sizeof(*b));
}

int
pb_buf_failed(const struct pb_buf *b)
{
	return b->failed;
}

/* Room for n more bytes, growing by half again; 0 or -1 (sticky). */
static int
pb_buf_reserve(struct pb_buf *b, size_t n)
{
	size_t	 want, cap;
	uint8_t	*p;

	if (b->failed)
		return -1;
	if (n <= b->cap - b->len)
		return 0;
	if (n > SIZE_MAX - b->len)
		goto fail;
	want = b->len + n;
	cap = b->cap < 256 ? 256 : b->cap;
	while (cap < want)
		cap = cap > SIZE_MAX / 3 * 2 ? want : cap + cap / 2;
	if ((p = realloc(b->data, cap)) == NULL)
		goto fail;
	b->data = p;
	b->cap = cap;
	return 0;
fail:
	b->failed = 1;
	return -1;
}

uint8_t *
pb_claim(struct pb_buf *b, size_t n)
{
	uint8_t	*p;

	if (pb_buf_reserve(b, n) == -1)
		return NULL;
	p = b->data + b->len;
	b->len += n;
	return p;
}

uint8_t *
pb_encode_varint(uint8_t *p, uint64_t v)
{
	while (v >= 0x80) {
		*p++ = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	*p++ = (uint8_t)v;
	return p;
}

uint8_t *
pb_encode_bytes(uint8_t *p, uint32_t num, const void *data, size_t n)
{
	p = pb_encode_varint(p, (uint64_t)num << 3 | PB_LEN);
	p = pb_encode_varint(p, n);
	memcpy(p, data, n);
	return p + n;
}

size_t
pb_bytes_size(uint32_t num, size_t n)
{
	return pb_varint_size((uint64_t)num << 3) + pb_varint_size(n) + n;
}

void
pb_put_raw(struct pb_buf *b, const void *p, size_t n)
{
	uint8_t	*dst;

	if (n > 0 && (dst = pb_claim(b, n)) != NULL)
		memcpy(dst, p, n);
}

void
pb_put_varint(struct pb_buf *b, uint64_t v)
{
	uint8_t	*p;

	if ((p = pb_claim(b, pb_varint_size(v))) != NULL)
		pb_encode_varint(p, v);
}

void
pb_put_tag(struct pb_buf *b, uint32_t num, int wt)
{
	pb_put_varint(b, ((uint64_t)num << 3) | (uint64_t)(wt & 7));
}

void
pb_put_bytes(struct pb_buf *b, uint32_t num, const void *p, size_t n)
{
	pb_put_tag(b, num, PB_LEN);
	pb_put_varint(b, n);
	pb_put_raw(b, p, n);
}

int
pb_index(const uint8_t *buf, size_t len, uint32_t num, uint32_t **offs,
    size_t *n, const char **errstr)
{
	struct pb_reader	r;
	struct pb_field		f;
	size_t			count = 0;
	int			rc;

	*offs = NULL;
	*n = 0;
	if (len > UINT32_MAX || num >= 16) {
		*errstr = len > UINT32_MAX ? "message over 4 GiB" :
		    "field number needs a longer tag";
		return -1;
	}
	pb_reader_init(&r, buf, len);
	while ((rc = pb_next(&r, &f, errstr)) == 1) {
		if (f.num != num)
			continue;
		if (f.wt != PB_LEN) {
			*errstr = "wrong wire type for an indexed field";
			return -1;
		}
		count++;
	}
	if (rc == -1 || count == 0)
		return rc;
	if ((*offs = calloc(count, sizeof(**offs))) == NULL) {
		*errstr = "out of memory";
		return -1;
	}
	pb_reader_init(&r, buf, len);
	while (pb_next(&r, &f, errstr) == 1)
		if (f.num == num)	/* the one-byte tag, then the length */
			(*offs)[(*n)++] = (uint32_t)(f.start + 1 - buf);
	return 0;
}

void
pb_indexed(const uint8_t *buf, uint32_t off, const uint8_t **p, size_t *n)
{
	static const uint8_t	 none[1];
	const uint8_t		*q = buf + off;
	uint64_t		 v = 0;

	(void)pb_varint(&q, q + 10, &v);
	*p = v > 0 ? q : none;
	*n = (size_t)v;
}

size_t
pb_size_except(const uint8_t *buf, size_t len, uint32_t skip)
{
	struct pb_reader	r;
	struct pb_field		f;
	const char		*errstr;
	size_t			n = 0;

	pb_reader_init(&r, buf, len);
	while (pb_next(&r, &f, &errstr) == 1)
		if (f.num != skip)
			n += f.rawlen;
	return n;
}

/* Adjacent fields are copied as one run: usually one copy per message. */
void
pb_put_except(struct pb_buf *b, const uint8_t *buf, size_t len, uint32_t skip)
{
	struct pb_reader	 r;
	struct pb_field		 f;
	const char		*errstr;
	const uint8_t		*run = NULL, *end = NULL;

	pb_reader_init(&r, buf, len);
	while (pb_next(&r, &f, &errstr) == 1) {
		if (f.num == skip)
			continue;
		if (f.start != end) {
			pb_put_raw(b, run, (size_t)(end - run));
			run = f.start;
		}
		end = f.start + f.rawlen;
	}
	pb_put_raw(b, run, (size_t)(end - run));
}
