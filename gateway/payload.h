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
	 * When status == 0, exactly what to send upstream, whatever the
	 * client's headers said: fwd/fwdlen (a view into the caller's body,
	 * which must outlive the result, or res->body) with kakikomi's own
	 * content_type (never NULL), content_encoding (NULL: none) and, for
	 * remote write, rw_version for X-Prometheus-Remote-Write-Version.
	 *   remote write: the client's snappy bytes, or the rewrite; snappy
	 *   Loki protobuf: the snappy bytes checked (inflated from gzip or
	 *     deflate when the client compressed them), no encoding
	 *   Loki JSON: the inflated document, or the checker's canonical one
	 * body (owned, free with payload_result_free) is non-NULL when fwd is
	 * not the caller's bytes.
	 */
	const uint8_t	*fwd;
	size_t		 fwdlen;
	uint8_t		*body;
	size_t		 len;
	const char	*content_type;
	const char	*content_encoding;
	const char	*rw_version;
	uint64_t	 series;	/* series or streams seen */
	uint64_t	 samples;	/* samples + histograms (metrics) */
	uint64_t	 entries;	/* log entries (logs) */
	uint64_t	 rewritten;	/* series or streams changed */
	const char	*reject_reason;	/* short metric label when status != 0: "malformed", "label", "too_large", "media_type" */
};

/*
 * Inspects `body` for `signal`.  content_type and content_encoding are the
 * request's headers (NULL when absent), parsed strictly (mediatype.h):
 *   remote write  application/x-protobuf, only `proto` as a parameter, its
 *                 value exactly prometheus.WriteRequest or
 *                 io.prometheus.write.v2.Request; encoding snappy or none
 *   Loki push     application/json (only charset=utf-8) with gzip, deflate
 *                 (raw) or none; application/x-protobuf (no parameters)
 *                 with gzip, deflate, snappy or none
 * Always fills `res`; returns res->status.  Statuses: 400 malformed (and a
 * Loki push without Content-Type, as Loki answers), 403 label violation
 * under reject, 413 decoded size over the limit, 415 any other type,
 * parameter or encoding.
 */
int	payload_check(enum signal signal, const char *content_type,
	    const char *content_encoding, const uint8_t *body, size_t len,
	    const struct payload_rule *rule, struct payload_result *res);

/* A request header's value (NULL when absent) and its length. */
struct payload_hdr {
	const char	*p;
	size_t		 len;
};

/* payload_check() with the lengths the head parse already knows (the
 * server's call: no strlen over header values per request). */
int	payload_check_n(enum signal signal, struct payload_hdr content_type,
	    struct payload_hdr content_encoding, const uint8_t *body, size_t len,
	    const struct payload_rule *rule, struct payload_result *res);

/* Frees res->body if any. */
void	payload_result_free(struct payload_result *res);

/*
 * Frees the calling thread's reused decode buffers (a worker about to end);
 * payload_check makes them again when called later.
 */
void	payload_thread_done(void);

#endif
