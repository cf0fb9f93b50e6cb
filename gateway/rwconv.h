/*
 * rwconv: a remote write 2.0 request (io.prometheus.write.v2.Request,
 * PROTOCOLS §4) down-converted to 1.0 (prometheus.WriteRequest, §3), for
 * upstreams that only speak 1.0: Prometheus < 2.54 answers a 2.0 body 204
 * and stores nothing.
 *
 * Per series: label refs resolved through the symbols table into labels,
 * sorted (a repeated name is malformed); samples as value + timestamp;
 * native histograms field for field (1.0's Histogram has the same fields
 * 1-16 with the same numbers and types, custom buckets' custom_values
 * included); exemplars with their labels resolved and sorted.  2.0's
 * per-series metadata becomes one 1.0 MetricMetadata per metric family
 * (the series' __name__, less _bucket/_sum/_count/_gsum/_gcount for
 * histogram and summary types), in order of first use.  A series with no
 * sample, histogram or exemplar is not written (its metadata is).
 *
 * What 1.0 cannot carry is counted in st->dropped, never silently lost:
 * created / start timestamps (TimeSeries 6, Sample 3, Histogram 17), a
 * family's metadata that differs from the first seen for it, metadata of
 * series without __name__ or past RWCONV_FAMILIES_MAX families, and fields
 * kakikomi does not know (which a 1.0 receiver would not know either).
 *
 * Pure (no HTTP, no event loop), iterative, bounded: the 1.0 body may not
 * exceed `max` bytes (checked before each append, so resolving a long
 * symbol many times never allocates past it).
 */
#ifndef KAKIKOMI_RWCONV_H
#define KAKIKOMI_RWCONV_H

#include <stddef.h>
#include <stdint.h>

#include "pb.h"

#define RWCONV_FAMILIES_MAX	4096	/* metadata entries per request */

/* The content headers of each version's body, as payload.c sets them. */
#define RWCONV_V1_CONTENT_TYPE	"application/x-protobuf"
#define RWCONV_V1_VERSION	"0.1.0"
#define RWCONV_V2_VERSION	"2.0.0"

enum rwconv_drop {
	RWCONV_DROP_CREATED_TS = 0,	/* "created_timestamp" */
	RWCONV_DROP_METADATA,		/* "metadata" */
	RWCONV_DROP_UNKNOWN,		/* "unknown_field" */
	RWCONV_DROP_N
};

struct rwconv_stats {
	/* what the 1.0 body holds */
	uint64_t	series;
	uint64_t	samples;
	uint64_t	histograms;
	uint64_t	exemplars;
	uint64_t	metadata;
	uint64_t	dropped[RWCONV_DROP_N];
};

enum rwconv_err {
	RWCONV_OK = 0,
	RWCONV_MALFORMED = -1,	/* 400 */
	RWCONV_TOO_LARGE = -2,	/* 413: the 1.0 body would exceed max */
	RWCONV_NOMEM = -3
};

/* The metric label value for `what` (enum rwconv_drop). */
const char	*rwconv_drop_name(int what);

/*
 * Decoded 2.0 bytes in, decoded 1.0 bytes out.  RWCONV_OK with *out
 * initialised and filled (caller frees with pb_buf_free), or an error with
 * *errstr set to a static reason and *out freed.  *st is always filled as
 * far as the conversion got.
 */
int	rwconv_v2_to_v1(const uint8_t *buf, size_t len, size_t max,
	    struct pb_buf *out, struct rwconv_stats *st, const char **errstr);

/*
 * The same from a snappy body to a snappy body (*out malloc'd, caller
 * frees): decoded under `max` (both ways), converted, compressed.
 */
int	rwconv_snappy(const uint8_t *in, size_t inlen, size_t max,
	    uint8_t **out, size_t *outlen, struct rwconv_stats *st,
	    const char **errstr);

#endif
