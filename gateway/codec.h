/*
 * codec: the body encodings kakikomi decodes and produces — snappy block
 * format (libsnappy) and gzip / deflate (zlib) — always under a decoded-size
 * cap, so a hostile body never makes kakikomi allocate more than `max` bytes.
 *
 * Decoders return CODEC_OK with *out a malloc'd buffer (caller frees) of
 * *outlen bytes (never NULL on success, even for an empty result), or a
 * negative enum codec_err with *errstr set to a static one-line reason and
 * *out untouched.
 */
#ifndef KAKIKOMI_CODEC_H
#define KAKIKOMI_CODEC_H

#include <stddef.h>
#include <stdint.h>

enum codec_err {
	CODEC_OK = 0,
	CODEC_MALFORMED = -1,	/* 400 */
	CODEC_TOO_LARGE = -2,	/* 413: decoded size over the cap */
	CODEC_NOMEM = -3	/* allocation failed */
};

enum codec_zkind {
	CODEC_GZIP,		/* RFC 1952, several members as Go's
				   compress/gzip reads them */
	CODEC_DEFLATE		/* raw RFC 1951 only, as Go's compress/flate
				   (Loki's "deflate") reads it: never zlib */
};

/* 1 when buf starts with the snappy framing format's stream identifier. */
int	codec_snappy_is_framed(const uint8_t *buf, size_t len);

/*
 * Snappy block decode.  The declared length is checked against `max` before
 * anything is allocated; the framing format is refused as malformed.
 */
int	codec_snappy_decode(const uint8_t *in, size_t len, uint64_t max,
	    uint8_t **out, size_t *outlen, const char **errstr);

/*
 * The same into a buffer the caller reuses: *buf (malloc'd, *cap bytes, or
 * NULL) is replaced by a larger one when the body needs more.  On any
 * result *buf and *cap stay a valid pair for the caller to keep or free.
 */
int	codec_snappy_decode_into(const uint8_t *in, size_t len, uint64_t max,
	    uint8_t **buf, size_t *cap, size_t *outlen, const char **errstr);

/* Snappy block encode into a new malloc'd buffer.  CODEC_OK or CODEC_NOMEM. */
int	codec_snappy_encode(const uint8_t *in, size_t len, uint8_t **out,
	    size_t *outlen);

/*
 * Inflates gzip or deflate; more than `max` output bytes is CODEC_TOO_LARGE.
 * Any byte after the last gzip member or the final deflate block is
 * malformed (Go's gzip reader refuses it too; its flate reader would ignore
 * it, and kakikomi forwards the inflated bytes, so refusing never lets the
 * two readings differ).
 */
int	codec_inflate(enum codec_zkind kind, const uint8_t *in, size_t len,
	    uint64_t max, uint8_t **out, size_t *outlen, const char **errstr);

#endif
