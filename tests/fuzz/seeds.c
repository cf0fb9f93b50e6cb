/*
 * Seed-corpus helper for run.sh (plain cc, not a fuzz target):
 *   seeds snappy IN OUT [MAX]   snappy-decodes IN; with MAX keeps only the
 *                               whole top-level fields that fit in MAX bytes
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

/* Length of the longest prefix of whole fields no longer than max. */
static size_t
whole_fields(const uint8_t *buf, size_t len, size_t max)
{
	struct pb_reader	 r;
	struct pb_field		 f;
	const char		*errstr;
	size_t			 keep = 0;

	pb_reader_init(&r, buf, len);
	while (pb_next(&r, &f, &errstr) == 1 &&
	    (size_t)(r.p - buf) <= max)
		keep = (size_t)(r.p - buf);
	return keep;
}

int
main(int argc, char **argv)
{
	uint8_t		*in, *out = NULL;
	size_t		 inlen, outlen = 0;
	const char	*errstr = "";
	FILE		*f;
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
	if (argc > 4)
		outlen = whole_fields(out, outlen, strtoul(argv[4], NULL, 10));
	if ((f = fopen(argv[3], "wb")) == NULL ||
	    fwrite(out, 1, outlen, f) != outlen || fclose(f) != 0) {
		fprintf(stderr, "seeds: cannot write %s\n", argv[3]);
		return 1;
	}
	free(in);
	free(out);
	return 0;
}
