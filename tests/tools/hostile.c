/*
 * hostile: writes the request bodies a hostile site would send to make
 * kakikomi spend memory or time out of proportion to the bytes on the wire.
 *
 *   hostile KIND DECODED_BYTES > body
 *
 * Every kind decodes to about DECODED_BYTES (keep it under
 * max_decoded_bytes to reach the checks behind the size limit):
 *   rw1-empty-labels  one 1.0 series of empty labels (0a 00 ...), snappy
 *   rw1-tiny-series   1.0 series of one label each, provider="osaka" (the
 *                     hostile site's own: checked, not rewritten), snappy
 *   rw2-symbols       a 2.0 request of empty symbols and one series, snappy
 *   loki-labels       a Loki push whose one labels string repeats a="",
 *                     snappy protobuf
 *   loki-json-tiny    Loki push JSON of minimal entries ["1",""] (raw: gzip
 *                     it for the wire)
 *   loki-json-deep    Loki push JSON nested [[[[...]]]] to DECODED_BYTES/2
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "pb.h"

static void
series_of_empty_labels(struct pb_buf *b, size_t size)
{
	size_t	n = size / 2, i;

	pb_put_tag(b, 1, PB_LEN);
	pb_put_varint(b, n * 2);
	for (i = 0; i < n; i++)
		pb_put_raw(b, "\x0a\x00", 2);
}

static void
tiny_series(struct pb_buf *b, size_t size)
{
	/* TimeSeries{labels: Label{name: "provider", value: "osaka"}} */
	static const char ts[] = "\x0a\x13\x0a\x11\x0a\x08provider\x12\x05osaka";

	while (b->len + sizeof(ts) - 1 <= size)
		pb_put_raw(b, ts, sizeof(ts) - 1);
}

static void
empty_symbols(struct pb_buf *b, size_t size)
{
	/* symbols[0] = "" and one series {""=""} referring to it */
	pb_put_raw(b, "\x2a\x04\x0a\x02\x00\x00", 6);
	while (b->len + 2 <= size)
		pb_put_raw(b, "\x22\x00", 2);
}

static void
repeated_labels(struct pb_buf *b, size_t size)
{
	size_t	n = size / 6, i, llen = 2 + n * 5;

	/* PushRequest{streams: StreamAdapter{labels: "{a=\"\",a=\"\",...}"}} */
	pb_put_tag(b, 1, PB_LEN);
	pb_put_varint(b, 1 + pb_varint_size(llen) + llen);
	pb_put_tag(b, 1, PB_LEN);
	pb_put_varint(b, llen);
	pb_put_raw(b, "{", 1);
	for (i = 0; i < n; i++)
		pb_put_raw(b, "a=\"\",", 5);
	pb_put_raw(b, "}", 1);
}

static void
json_tiny(struct pb_buf *b, size_t size)
{
	static const char head[] =
	    "{\"streams\":[{\"stream\":{\"provider\":\"tokyo\"},\"values\":[";

	pb_put_raw(b, head, sizeof(head) - 1);
	pb_put_raw(b, "[\"1\",\"\"]", 8);
	while (b->len + 9 + 4 <= size)
		pb_put_raw(b, ",[\"1\",\"\"]", 9);
	pb_put_raw(b, "]}]}", 4);
}

static void
json_deep(struct pb_buf *b, size_t size)
{
	size_t	i, n = size / 2;

	for (i = 0; i < n; i++)
		pb_put_raw(b, "[", 1);
	for (i = 0; i < n; i++)
		pb_put_raw(b, "]", 1);
}

static const struct kind {
	const char	*name;
	void		(*make)(struct pb_buf *, size_t);
	int		 snappy;
} kinds[] = {
	{ "rw1-empty-labels", series_of_empty_labels, 1 },
	{ "rw1-tiny-series", tiny_series, 1 },
	{ "rw2-symbols", empty_symbols, 1 },
	{ "loki-labels", repeated_labels, 1 },
	{ "loki-json-tiny", json_tiny, 0 },
	{ "loki-json-deep", json_deep, 0 },
};

static int
emit(const struct kind *k, size_t size)
{
	struct pb_buf	 b;
	uint8_t		*out = NULL;
	size_t		 outlen;
	int		 rc = 0;

	pb_buf_init(&b, size + 64);
	k->make(&b, size);
	if (pb_buf_failed(&b)) {
		fprintf(stderr, "hostile: out of memory\n");
		return 1;
	}
	if (!k->snappy) {
		out = b.data;
		outlen = b.len;
	} else if (codec_snappy_encode(b.data, b.len, &out, &outlen) != CODEC_OK) {
		fprintf(stderr, "hostile: snappy failed\n");
		rc = 1;
	}
	if (rc == 0 && fwrite(out, 1, outlen, stdout) != outlen) {
		perror("hostile: write");
		rc = 1;
	}
	if (out != b.data)
		free(out);
	pb_buf_free(&b);
	return rc;
}

int
main(int argc, char **argv)
{
	char	*end;
	size_t	 size;

	if (argc != 3 || (size = strtoull(argv[2], &end, 10)) == 0 || *end != '\0') {
		fprintf(stderr, "usage: hostile KIND DECODED_BYTES > body\n");
		return 2;
	}
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if (strcmp(argv[1], kinds[i].name) == 0)
			return emit(&kinds[i], size);
	fprintf(stderr, "hostile: unknown kind %s\n", argv[1]);
	return 2;
}
