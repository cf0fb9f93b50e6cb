/*
 * rwgen: builds Prometheus remote write 1.0 bodies (snappy block format of
 * prometheus.WriteRequest) for tests and the benchmark.
 *
 *   rwgen [--series N] [--samples K] [--ts MS] [--step MS] [--name METRIC]
 *         [--label name=value]... [--value V] [--raw] > body
 *
 * Series i is METRIC{label..., series="i"} with K samples at ts, ts+step, ...
 * of value V+i.  Labels are written in the order given (give them sorted, or
 * not, to test either).  --raw writes the protobuf without snappy.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "codec.h"
#include "pb.h"

#define MAX_LABELS 32

struct gen {
	unsigned long	 series, samples;
	long long	 ts, step;
	double		 value;
	const char	*name;
	char		*labels[MAX_LABELS][2];
	size_t		 nlabels;
};

static void
put_label(struct pb_buf *ts, const char *name, const char *value)
{
	struct pb_buf l;

	pb_buf_init(&l, 64);
	pb_put_bytes(&l, 1, name, strlen(name));
	pb_put_bytes(&l, 2, value, strlen(value));
	pb_put_bytes(ts, 1, l.data, l.len);
	pb_buf_free(&l);
}

static void
put_series(struct pb_buf *req, const struct gen *g, unsigned long i)
{
	struct pb_buf ts, s;
	char idx[32];

	pb_buf_init(&ts, 256);
	put_label(&ts, "__name__", g->name);
	for (size_t j = 0; j < g->nlabels; j++)
		put_label(&ts, g->labels[j][0], g->labels[j][1]);
	snprintf(idx, sizeof(idx), "%lu", i);
	put_label(&ts, "series", idx);
	for (unsigned long k = 0; k < g->samples; k++) {
		double v = g->value + (double)i;
		pb_buf_init(&s, 16);
		pb_put_tag(&s, 1, PB_I64);
		pb_put_raw(&s, &v, sizeof(v));	/* little-endian hosts only */
		pb_put_tag(&s, 2, PB_VARINT);
		pb_put_varint(&s, (uint64_t)(g->ts + (long long)k * g->step));
		pb_put_bytes(&ts, 2, s.data, s.len);
		pb_buf_free(&s);
	}
	pb_put_bytes(req, 1, ts.data, ts.len);
	pb_buf_free(&ts);
}

int
main(int argc, char *argv[])
{
	static const struct option opts[] = {
		{ "series", required_argument, NULL, 'n' },
		{ "samples", required_argument, NULL, 'k' },
		{ "ts", required_argument, NULL, 't' },
		{ "step", required_argument, NULL, 's' },
		{ "name", required_argument, NULL, 'N' },
		{ "label", required_argument, NULL, 'l' },
		{ "value", required_argument, NULL, 'v' },
		{ "raw", no_argument, NULL, 'r' },
		{ NULL, 0, NULL, 0 },
	};
	struct gen g = { .series = 1, .samples = 1, .step = 1000, .name = "kakikomi_test" };
	struct pb_buf req;
	uint8_t *out;
	size_t outlen;
	int raw = 0, ch;
	char *eq;

	g.ts = (long long)time(NULL) * 1000;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case 'n': g.series = strtoul(optarg, NULL, 10); break;
		case 'k': g.samples = strtoul(optarg, NULL, 10); break;
		case 't': g.ts = strtoll(optarg, NULL, 10); break;
		case 's': g.step = strtoll(optarg, NULL, 10); break;
		case 'N': g.name = optarg; break;
		case 'v': g.value = strtod(optarg, NULL); break;
		case 'r': raw = 1; break;
		case 'l':
			if ((eq = strchr(optarg, '=')) == NULL || g.nlabels == MAX_LABELS) {
				fprintf(stderr, "rwgen: --label name=value (at most %d)\n", MAX_LABELS);
				return 2;
			}
			*eq = '\0';
			g.labels[g.nlabels][0] = optarg;
			g.labels[g.nlabels++][1] = eq + 1;
			break;
		default:
			fprintf(stderr, "usage: rwgen [--series N] [--samples K] [--ts MS] "
			    "[--step MS] [--name M] [--label n=v]... [--value V] [--raw]\n");
			return 2;
		}
	}
	pb_buf_init(&req, 4096);
	for (unsigned long i = 0; i < g.series; i++)
		put_series(&req, &g, i);
	if (pb_buf_failed(&req)) {
		fprintf(stderr, "rwgen: out of memory\n");
		return 1;
	}
	if (raw) {
		fwrite(req.data, 1, req.len, stdout);
	} else {
		if (codec_snappy_encode(req.data, req.len, &out, &outlen) != CODEC_OK) {
			fprintf(stderr, "rwgen: snappy failed\n");
			return 1;
		}
		fwrite(out, 1, outlen, stdout);
		free(out);
	}
	pb_buf_free(&req);
	return 0;
}
