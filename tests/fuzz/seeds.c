/*
 * Seed-corpus helper for run.sh (plain cc, not a fuzz target):
 *   seeds snappy IN OUT [MAX]   snappy-decodes IN; with MAX cuts it down to
 *                               a valid message of at most MAX bytes
 *   seeds gunzip IN OUT         inflates a gzip file
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "pb.h"

static uint8_t *
slurp(const char *path, size_t *len)
{
	FILE	*f;
	uint8_t	*buf;
	long	 n;

	if ((f = fopen(path, "rb")) == NULL || fseek(f, 0, SEEK_END) == -1 ||
	    (n = ftell(f)) < 0)
		return NULL;
	rewind(f);
	if ((buf = malloc((size_t)n + 1)) == NULL ||
	    fread(buf, 1, (size_t)n, f) != (size_t)n) {
		fclose(f);
		free(buf);
		return NULL;
	}
	fclose(f);
	*len = (size_t)n;
	return buf;
}

/*
 * Keeps the top-level fields that fit in max bytes; a first field too big on
 * its own (one Loki stream with all its entries) is rebuilt from the whole
 * sub-fields that fit, so every seed is a valid, small message.
 */
static void
shrink(const uint8_t *buf, size_t len, size_t max, struct pb_buf *out)
{
	struct pb_reader	 r, sub;
	struct pb_field		 f, g;
	struct pb_buf		 inner;
	const char		*errstr;

	pb_reader_init(&r, buf, len);
	while (pb_next(&r, &f, &errstr) == 1) {
		if (out->len + f.rawlen <= max) {
			pb_put_raw(out, f.start, f.rawlen);
			continue;
		}
		if (out->len > 0 || f.wt != PB_LEN)
			break;
		pb_buf_init(&inner, 0);
		pb_reader_init(&sub, f.data, f.len);
		while (pb_next(&sub, &g, &errstr) == 1 &&
		    inner.len + g.rawlen + 16 <= max)
			pb_put_raw(&inner, g.start, g.rawlen);
		pb_put_bytes(out, f.num, inner.data, inner.len);
		pb_buf_free(&inner);
		break;
	}
}

int
main(int argc, char **argv)
{
	uint8_t		*in, *out = NULL;
	size_t		 inlen, outlen = 0;
	const char	*errstr = "";
	FILE		*f;
	struct pb_buf	 cut;
	int		 rc;

	if (argc < 4 || (in = slurp(argv[2], &inlen)) == NULL) {
		fprintf(stderr, "usage: seeds snappy|gunzip IN OUT [MAX]\n");
		return 2;
	}
	if (strcmp(argv[1], "snappy") == 0)
		rc = codec_snappy_decode(in, inlen, 1u << 30, &out, &outlen,
		    &errstr);
	else
		rc = codec_inflate(CODEC_GZIP, in, inlen, 1u << 30, &out,
		    &outlen, &errstr);
	if (rc != CODEC_OK) {
		fprintf(stderr, "seeds: %s: %s\n", argv[2], errstr);
		return 1;
	}
	pb_buf_init(&cut, 0);
	if (argc > 4)
		shrink(out, outlen, strtoul(argv[4], NULL, 10), &cut);
	else
		pb_put_raw(&cut, out, outlen);
	if ((f = fopen(argv[3], "wb")) == NULL ||
	    fwrite(cut.data, 1, cut.len, f) != cut.len || fclose(f) != 0) {
		fprintf(stderr, "seeds: cannot write %s\n", argv[3]);
		return 1;
	}
	pb_buf_free(&cut);
	free(in);
	free(out);
	return 0;
}
