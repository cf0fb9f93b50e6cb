/*
 * promrw: Prometheus remote write bodies (decoded, i.e. after snappy):
 * scan, check the site label of every series, rewrite when asked.
 *
 * 1.0 (prometheus.WriteRequest, PROTOCOLS §3): labels are read as views into
 * the buffer, in each worker's fixed scratch array, in one pass that
 * decides every series as it is read.  Unsorted labels are accepted
 * (Prometheus sorts them); duplicate names are malformed (Prometheus 2.42
 * answers 500 to those, which senders retry forever).  Metadata-only requests
 * pass untouched.  A rewritten series gets its labels re-encoded sorted with
 * the site label set to rule->values->v[0]; every other byte of the request
 * (samples, exemplars, histograms, metadata, unknown fields) is copied as is.
 *
 * 2.0 (io.prometheus.write.v2.Request, PROTOCOLS §4): labels are resolved
 * through the symbols table; a rewrite appends the symbols it needs and
 * rewrites the label refs of the offending series only.
 *
 * Both return an enum labels_outcome.  On LABELS_REWRITE *out holds the new
 * decoded body (caller frees with pb_buf_free; untouched otherwise).  *out
 * may come holding a buffer of an earlier request (zeroed or from
 * pb_buf_init): a rewrite reuses its memory, and frees it when it fails.  On
 * LABELS_REJECT / LABELS_MALFORMED `reason` holds one line.  Stats are
 * filled as far as the scan got.
 */
#ifndef KAKIKOMI_PROMRW_H
#define KAKIKOMI_PROMRW_H

#include <stddef.h>
#include <stdint.h>

#include "labels.h"
#include "payload.h"
#include "pb.h"

struct promrw_stats {
	uint64_t	series;
	uint64_t	samples;
	uint64_t	histograms;
	uint64_t	exemplars;
	uint64_t	metadata;
	uint64_t	rewritten;
};

int	promrw_check_v1(const uint8_t *buf, size_t len,
	    const struct payload_rule *rule, struct promrw_stats *st,
	    struct pb_buf *out, char *reason, size_t reasonsz);
int	promrw_check_v2(const uint8_t *buf, size_t len,
	    const struct payload_rule *rule, struct promrw_stats *st,
	    struct pb_buf *out, char *reason, size_t reasonsz);

/*
 * A label set as 1.0 Label messages in field 1 (a TimeSeries' or an
 * Exemplar's labels): the bytes, and how many they are.  Empty names or
 * values are left out, as encoders do.  p has room for the size.
 */
size_t	promrw_v1_labels_size(const struct labels_set *ls);
void	promrw_v1_encode_labels(const struct labels_set *ls, uint8_t *p);

#endif
