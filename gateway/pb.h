/*
 * pb: a zero-copy protobuf wire-format reader and a small writer.
 *
 * The reader walks one message's fields over (ptr, len) and hands out views
 * into the buffer; it never allocates and never assumes NUL termination.
 * Every length is bounds-checked against what is left of the message (64-bit
 * lengths are compared, never truncated) and varints longer than 10 bytes or
 * overflowing 64 bits are errors.  Groups (wire types 3 and 4) are errors:
 * nothing kakikomi reads uses them.  Nested messages are read by starting a
 * new reader over a field's bytes, so depth is the caller's explicit choice.
 *
 * The writer appends to a growable buffer.  Failures (allocation, size
 * overflow) are sticky: later appends do nothing and pb_buf_failed() says so,
 * so a writer checks once at the end.
 */
#ifndef KAKIKOMI_PB_H
#define KAKIKOMI_PB_H

#include <stddef.h>
#include <stdint.h>

enum pb_wiretype {
	PB_VARINT = 0,
	PB_I64 = 1,
	PB_LEN = 2,
	PB_I32 = 5
};

struct pb_reader {
	const uint8_t	*p;
	const uint8_t	*end;
};

struct pb_field {
	uint32_t	 num;		/* field number, >= 1 */
	int		 wt;		/* enum pb_wiretype */
	uint64_t	 v;		/* PB_VARINT, PB_I64, PB_I32: the value */
	const uint8_t	*data;		/* PB_LEN: the bytes */
	size_t		 len;
	const uint8_t	*start;		/* the whole field, tag included, for copying */
	size_t		 rawlen;
};

void	pb_reader_init(struct pb_reader *r, const uint8_t *buf, size_t len);

/*
 * Reads the next field.  Returns 1 with *f filled, 0 at the end of the
 * message, -1 on malformed input with *errstr set to a static reason.
 */
int	pb_next(struct pb_reader *r, struct pb_field *f, const char **errstr);

/*
 * Reads one varint from [*p, end), advancing *p.  0 or -1 (truncated, longer
 * than 10 bytes, or over 64 bits).
 */
int	pb_varint(const uint8_t **p, const uint8_t *end, uint64_t *v);

/* Bytes a varint of v takes on the wire (1..10). */
size_t	pb_varint_size(uint64_t v);

/*
 * Total wire size of a well-formed message's fields other than number
 * `skip`, and the same fields appended as they are (for re-encoding one
 * field of a message while copying the rest byte for byte).  The message
 * must have been read with pb_next() before: reading stops at an error.
 */
size_t	pb_size_except(const uint8_t *buf, size_t len, uint32_t skip);

/*
 * Random access to the length-delimited fields numbered `num` (< 16: a
 * one-byte tag) of a message under 4 GiB — remote write 2.0's symbols table:
 * one 4-byte offset per field, so the index costs at most twice the message.
 * *offs is malloc'd (NULL when there is none; caller frees).  0, or -1 with
 * *errstr (malformed, another wire type, too large, out of memory).
 */
int	pb_index(const uint8_t *buf, size_t len, uint32_t num, uint32_t **offs,
	    size_t *n, const char **errstr);

/* The bytes of the field pb_index() put at `off`; *p is never NULL. */
void	pb_indexed(const uint8_t *buf, uint32_t off, const uint8_t **p,
	    size_t *n);

struct pb_buf {
	uint8_t	*data;
	size_t	 len;
	size_t	 cap;
	int	 failed;
};

/* Zeroes b and reserves `hint` bytes (0: none yet). */
void	pb_buf_init(struct pb_buf *b, size_t hint);
/*
 * Empties b keeping its memory and makes room for `hint` bytes (a failure
 * is sticky as any other); b must come from pb_buf_init or be zeroed.
 */
void	pb_buf_reuse(struct pb_buf *b, size_t hint);
void	pb_buf_free(struct pb_buf *b);
/* 1 when an append failed since init. */
int	pb_buf_failed(const struct pb_buf *b);

/*
 * Appends n bytes for the caller to fill and returns them, or NULL after a
 * failure: one bounds check for a whole message written with pb_encode_*.
 */
uint8_t	*pb_claim(struct pb_buf *b, size_t n);
/* Writes v at p (room for pb_varint_size(v) bytes); returns the end. */
uint8_t	*pb_encode_varint(uint8_t *p, uint64_t v);
/* Writes tag, length and bytes at p; returns the end. */
uint8_t	*pb_encode_bytes(uint8_t *p, uint32_t num, const void *data, size_t n);
/* Bytes pb_encode_bytes() writes. */
size_t	pb_bytes_size(uint32_t num, size_t n);

void	pb_put_raw(struct pb_buf *b, const void *p, size_t n);
void	pb_put_varint(struct pb_buf *b, uint64_t v);
void	pb_put_tag(struct pb_buf *b, uint32_t num, int wt);
/* Tag, length and bytes of a length-delimited field. */
void	pb_put_bytes(struct pb_buf *b, uint32_t num, const void *p, size_t n);
/* See pb_size_except(). */
void	pb_put_except(struct pb_buf *b, const uint8_t *buf, size_t len,
	    uint32_t skip);

#endif
