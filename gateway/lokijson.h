/*
 * lokijson: the Loki JSON push document, checked and re-serialised in one
 * pass (PROTOCOLS §5).  Loki is sent kakikomi's own canonical bytes, so no
 * key spelling, duplicate, escape or number form can mean something there
 * that was not checked here.
 *
 * The document is exactly
 *	{"streams":[{"stream":{"<name>":"<value>",...},
 *	    "values":[["<ns>","<line>"(,{"<name>":"<value>",...})],...]},...]}
 * with any RFC 8259 whitespace between tokens; anything else is malformed:
 * - schema keys are matched ASCII case-insensitively, escapes decoded, as
 *   jsoniter does for the top level (Loki's stream level, jsonparser, is
 *   exact: both readings are covered because the output is canonical); two
 *   keys of one object equal under that folding, an unknown key (Loki skips
 *   it), a missing "streams", "stream" or "values" are refused;
 * - label maps and structured metadata: string values only, names unique
 *   and valid label names; metadata names also without "__" (Loki 3's
 *   distributor renames others through otlptranslator, which could turn
 *   them into the site label); at most LOKIJSON_MAX_PAIRS per object;
 * - timestamps: a string of optional '-' and decimal digits, no escapes
 *   (Loki's jsonparser.ParseInt reads the raw bytes), within int64;
 * - strings: escapes decoded; raw control characters, invalid UTF-8 and
 *   lone surrogates refused (Go would substitute U+FFFD);
 * - no numbers, booleans or nulls anywhere; no data after the document.
 *
 * Output: keys lowercase in schema order, labels and metadata sorted by
 * name, an empty metadata object dropped, timestamps without leading zeros
 * or "-0", strings with only `"`, `\` and control characters escaped (\b \f
 * \n \r \t, else \u00xx).  It is a fixpoint: checking the output again
 * gives the same bytes.
 *
 * The parser is a fixed chain of one function per schema level (none calls
 * itself), so its stack depth is the schema's, never the input's.  Memory
 * per request, besides the input: the output, reserved as len + len/8 + 64
 * and never longer than the input unless streams are rewritten (then each
 * grows by |label| + |value| + 6 bytes; a stream is at least 25 input bytes,
 * so at worst 1.8 x the input for provider="tokyo"), plus twice the
 * decoded strings of the largest label map or metadata object and at most
 * LOKIJSON_MAX_PAIRS 40-byte label views.  Measured peak RSS for 32 MiB of
 * tiny entries: ~70 MB with the input (jansson's tree: ~1.1 GB).
 */
#ifndef KAKIKOMI_LOKIJSON_H
#define KAKIKOMI_LOKIJSON_H

#include <stddef.h>
#include <stdint.h>

#include "loki.h"
#include "payload.h"
#include "pb.h"

/* Loki's own defaults are 15 stream labels and 128 metadata pairs. */
#define LOKIJSON_MAX_PAIRS	1024

/*
 * Checks the document in (buf, len) against rule and writes the canonical
 * body to *out.  Returns an enum labels_outcome: on LABELS_PASS and
 * LABELS_REWRITE *out holds the body to forward (caller frees with
 * pb_buf_free), otherwise *out is freed and, for LABELS_REJECT and
 * LABELS_MALFORMED, `reason` holds one line.  A structured-metadata pair
 * naming the site label with a value the site may not write is
 * LABELS_REJECT in both modes: a rewrite never reaches inside metadata.
 */
int	lokijson_check(const uint8_t *buf, size_t len,
	    const struct payload_rule *rule, struct loki_stats *st,
	    struct pb_buf *out, char *reason, size_t reasonsz);

#endif
