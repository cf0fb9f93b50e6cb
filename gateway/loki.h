/*
 * loki: Loki push bodies (PROTOCOLS §5): scan, check the site label of every
 * stream, rewrite when asked.
 *
 * loki_check_pb() takes a decoded (after snappy) logproto.PushRequest.  Each
 * stream's labels string is parsed with labels_parse(); a malformed string or
 * a repeated label name is malformed (400).  A stream whose labels string is
 * not already the canonical `{a="b", c="d"}` (sorted, empty values dropped,
 * as Loki's own String() writes it) is forwarded in that canonical form, so
 * Loki stores the labels kakikomi read whatever spelling was sent; so is an
 * offending stream under rewrite, with the site label set.  Every other byte
 * (entries, hash, unknown fields) is copied as is.  Structured metadata is
 * checked, not rewritten: the site label there with a value the site may not
 * write is LABELS_REJECT in both modes.
 *
 * loki_check_json() takes the JSON push body (already inflated) and
 * re-serialises it as it checks (lokijson.h): what Loki is sent is always
 * kakikomi's canonical JSON, never the client's bytes.
 *
 * Both return an enum labels_outcome and leave *out untouched unless they
 * build a body.  loki_check_pb: on LABELS_REWRITE *out holds the new body.
 * loki_check_json: on LABELS_PASS and LABELS_REWRITE *out holds the body to
 * forward (uncompressed JSON).  loki_check_pb's LABELS_REWRITE with
 * st->rewritten 0 means only spellings were made canonical.  Bodies are
 * freed with pb_buf_free.  On LABELS_REJECT / LABELS_MALFORMED `reason` holds one line.
 */
#ifndef KAKIKOMI_LOKI_H
#define KAKIKOMI_LOKI_H

#include <stddef.h>
#include <stdint.h>

#include "labels.h"
#include "payload.h"
#include "pb.h"

struct loki_stats {
	uint64_t	streams;
	uint64_t	entries;
	uint64_t	rewritten;
};

int	loki_check_pb(const uint8_t *buf, size_t len,
	    const struct payload_rule *rule, struct loki_stats *st,
	    struct pb_buf *out, char *reason, size_t reasonsz);
int	loki_check_json(const uint8_t *buf, size_t len,
	    const struct payload_rule *rule, struct loki_stats *st,
	    struct pb_buf *out, char *reason, size_t reasonsz);

#endif
