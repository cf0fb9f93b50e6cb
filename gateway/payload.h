/*
 * payload: one request body in, one decision out.
 *
 * Decodes the body of a write for its signal (remote write: snappy protobuf;
 * Loki push: snappy protobuf or JSON, optionally gzip/deflate), checks that
 * every series / stream carries the site's label with an allowed value and,
 * under `rewrite`, builds a new body that does.  Knows nothing of HTTP or the
 * event loop: inputs are plain buffers, so it is unit-tested and fuzzed as is.
 *
 * Never allocates more than max_decoded bytes for a decoded body (checked from
 * snappy's preamble and while inflating gzip), and never recurses on input.
 */
#ifndef KAKIKOMI_PAYLOAD_H
#define KAKIKOMI_PAYLOAD_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"

struct payload_rule {
	const char		*label;		/* "provider" */
	const struct strlist	*values;	/* allowed; values->v[0] written on rewrite */
	enum mismatch		 mode;
	const char		*site;		/* for reasons only */
	uint64_t		 max_decoded;	/* bytes */
};

struct payload_result {
	int		 status;	/* 0: forward; else the HTTP status to refuse with */
	char		 reason[512];	/* one line, set when status != 0 */
	/*
	 * When status == 0: body == NULL means "forward the original bytes
	 * unchanged".  Otherwise body/len is a new body (owned by the caller,
	 * free with free()) to be sent with content_type/content_encoding
	 * (content_encoding NULL: send without Content-Encoding).
	 */
	uint8_t		*body;
	size_t		 len;
	const char	*content_type;
	const char	*content_encoding;
	uint64_t	 series;	/* series or streams seen */
	uint64_t	 samples;	/* samples + histograms (metrics) */
	uint64_t	 entries;	/* log entries (logs) */
	uint64_t	 rewritten;	/* series or streams changed */
	const char	*reject_reason;	/* short metric label when status != 0: "malformed", "label", "too_large", "media_type" */
};

/*
 * Inspects `body` for `signal`.  content_type and content_encoding are the
 * request's headers (NULL when absent).  Always fills `res`; returns
 * res->status.  Statuses: 400 malformed, 403 label violation under reject,
 * 413 decoded size over the limit, 415 unsupported type or encoding.
 */
int	payload_check(enum signal signal, const char *content_type,
	    const char *content_encoding, const uint8_t *body, size_t len,
	    const struct payload_rule *rule, struct payload_result *res);

/* Frees res->body if any. */
void	payload_result_free(struct payload_result *res);

#endif
