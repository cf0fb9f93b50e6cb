/*
 * codec: snappy and gzip/deflate under a decoded-size cap.  See codec.h.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <snappy-c.h>
#include <zlib.h>

#include "codec.h"

/* The framing format's stream identifier chunk. */
static const uint8_t snappy_framed_magic[] = {
	0xff, 0x06, 0x00, 0x00, 0x73, 0x4e, 0x61, 0x50, 0x70, 0x59
};

/* First inflate buffer: a guess at the ratio, grown by doubling up to max. */
#define INFLATE_FIRST_RATIO	4
#define INFLATE_FIRST_MIN	4096

int
codec_snappy_is_framed(const uint8_t *buf, size_t len)
{
	return len >= sizeof(snappy_framed_magic) &&
	    memcmp(buf, snappy_framed_magic, sizeof(snappy_framed_magic)) == 0;
}

int
codec_snappy_decode_into(const uint8_t *in, size_t len, uint64_t max,
    uint8_t **buf, size_t *cap, size_t *outlen, const char **errstr)
{
	size_t	 n;
	uint8_t	*p;

	if (codec_snappy_is_framed(in, len)) {
		*errstr = "framed snappy is not accepted; use the block format";
		return CODEC_MALFORMED;
	}
	if (snappy_uncompressed_length((const char *)in, len, &n) != SNAPPY_OK) {
		*errstr = "invalid snappy block preamble";
		return CODEC_MALFORMED;
	}
	if ((uint64_t)n > max) {
		*errstr = "snappy decoded size over the limit";
		return CODEC_TOO_LARGE;
	}
	if (*buf == NULL || *cap < n) {
		/* nothing to keep: free first, so the two never coexist */
		free(*buf);
		*cap = 0;
		if ((*buf = malloc(n > 0 ? n : 1)) == NULL) {
			*errstr = "out of memory decoding snappy";
			return CODEC_NOMEM;
		}
		*cap = n > 0 ? n : 1;
	}
	p = *buf;
	if (snappy_uncompress((const char *)in, len, (char *)p, &n) !=
	    SNAPPY_OK) {
		*errstr = "corrupt snappy block";
		return CODEC_MALFORMED;
	}
	*outlen = n;
	return CODEC_OK;
}

int
codec_snappy_decode(const uint8_t *in, size_t len, uint64_t max,
    uint8_t **out, size_t *outlen, const char **errstr)
{
	uint8_t	*buf = NULL;
	size_t	 cap = 0;
	int	 rc;

	if ((rc = codec_snappy_decode_into(in, len, max, &buf, &cap, outlen,
	    errstr)) != CODEC_OK) {
		free(buf);
		return rc;
	}
	*out = buf;
	return CODEC_OK;
}

int
codec_snappy_encode(const uint8_t *in, size_t len, uint8_t **out,
    size_t *outlen)
{
	size_t	 n;
	uint8_t	*buf;

	n = snappy_max_compressed_length(len);
	if (n < len || (buf = malloc(n)) == NULL)
		return CODEC_NOMEM;
	if (snappy_compress((const char *)in, len, (char *)buf, &n) !=
	    SNAPPY_OK) {
		free(buf);
		return CODEC_NOMEM;
	}
	*out = buf;
	*outlen = n;
	return CODEC_OK;
}

struct inflater {
	z_stream	 zs;
	const uint8_t	*in;		/* input not yet handed to zlib */
	size_t		 inleft;
	uint8_t		*buf;
	size_t		 cap;
	size_t		 limit;		/* max + 1: reaching it means too large */
};

static size_t
inflater_used(const struct inflater *z)
{
	return z->buf == NULL ? 0 : (size_t)(z->zs.next_out - z->buf);
}

/* Gives zlib more input (avail_in is 32-bit) and room to write. */
static int
inflater_feed(struct inflater *z)
{
	size_t	 used, cap, n;
	uint8_t	*p;

	if (z->zs.avail_in == 0 && z->inleft > 0) {
		n = z->inleft < UINT_MAX ? z->inleft : UINT_MAX;
		z->zs.next_in = (Bytef *)(uintptr_t)z->in;
		z->zs.avail_in = (uInt)n;
		z->in += n;
		z->inleft -= n;
	}
	if (z->zs.avail_out > 0)
		return CODEC_OK;
	used = inflater_used(z);
	if (used == z->cap) {
		if (used >= z->limit)
			return CODEC_TOO_LARGE;
		cap = used > z->limit / 2 ? z->limit : used * 2;
		if ((p = realloc(z->buf, cap)) == NULL)
			return CODEC_NOMEM;
		z->buf = p;
		z->cap = cap;
		z->zs.next_out = p + used;
	}
	n = z->cap - used;
	z->zs.avail_out = n < UINT_MAX ? (uInt)n : UINT_MAX;
	return CODEC_OK;
}

/*
 * Handles Z_STREAM_END: gzip may hold several members (Go's reader, which Loki
 * uses, reads them all); anything else after the end is malformed.
 * Returns 1 when done, 0 to keep going, or an error.
 */
static int
inflater_end(struct inflater *z, enum codec_zkind kind, const char **errstr)
{
	if (z->zs.avail_in == 0 && z->inleft == 0)
		return 1;
	if (kind == CODEC_GZIP && inflateReset(&z->zs) == Z_OK)
		return 0;
	*errstr = "trailing data after the compressed stream";
	return CODEC_MALFORMED;
}

static int
inflater_run(struct inflater *z, enum codec_zkind kind, const char **errstr)
{
	int	rc, zrc;

	for (;;) {
		if ((rc = inflater_feed(z)) != CODEC_OK) {
			*errstr = rc == CODEC_TOO_LARGE ?
			    "decompressed size over the limit" :
			    "out of memory inflating";
			return rc;
		}
		zrc = inflate(&z->zs, Z_NO_FLUSH);
		if (zrc == Z_STREAM_END) {
			if ((rc = inflater_end(z, kind, errstr)) != 0)
				return rc < 0 ? rc : CODEC_OK;
			continue;
		}
		if (zrc == Z_BUF_ERROR && z->zs.avail_out == 0)
			continue;
		if (zrc == Z_BUF_ERROR) {
			*errstr = "truncated compressed stream";
			return CODEC_MALFORMED;
		}
		if (zrc == Z_MEM_ERROR) {
			*errstr = "out of memory inflating";
			return CODEC_NOMEM;
		}
		if (zrc != Z_OK) {
			*errstr = "corrupt compressed stream";
			return CODEC_MALFORMED;
		}
	}
}

int
codec_inflate(enum codec_zkind kind, const uint8_t *in, size_t len,
    uint64_t max, uint8_t **out, size_t *outlen, const char **errstr)
{
	struct inflater	z;
	int		wbits, rc;
	size_t		first;

	memset(&z, 0, sizeof(z));
	z.in = in;
	z.inleft = len;
	z.limit = max >= SIZE_MAX - 1 ? SIZE_MAX - 1 : (size_t)max + 1;
	first = len > SIZE_MAX / INFLATE_FIRST_RATIO ? SIZE_MAX :
	    len * INFLATE_FIRST_RATIO;
	if (first < INFLATE_FIRST_MIN)
		first = INFLATE_FIRST_MIN;
	z.cap = first < z.limit ? first : z.limit;
	if ((z.buf = malloc(z.cap)) == NULL) {
		*errstr = "out of memory inflating";
		return CODEC_NOMEM;
	}
	z.zs.next_out = z.buf;
	z.zs.avail_out = z.cap < UINT_MAX ? (uInt)z.cap : UINT_MAX;
	/*
	 * Never guess zlib from the first two bytes: a body can be a valid zlib
	 * stream and a valid raw stream with different contents, and Loki
	 * reads only the raw one.
	 */
	wbits = kind == CODEC_GZIP ? 16 + MAX_WBITS : -MAX_WBITS;
	if (inflateInit2(&z.zs, wbits) != Z_OK) {
		free(z.buf);
		*errstr = "out of memory inflating";
		return CODEC_NOMEM;
	}
	rc = inflater_run(&z, kind, errstr);
	inflateEnd(&z.zs);
	if (rc == CODEC_OK && inflater_used(&z) > max) {
		*errstr = "decompressed size over the limit";
		rc = CODEC_TOO_LARGE;
	}
	if (rc != CODEC_OK) {
		free(z.buf);
		return rc;
	}
	*out = z.buf;
	*outlen = inflater_used(&z);
	return CODEC_OK;
}
