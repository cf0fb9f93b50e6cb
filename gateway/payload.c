/*
 * payload: dispatch one body by signal, media type and encoding to the
 * decoders and checkers, and turn their outcome into a payload_result.
 * See payload.h for the contract.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "codec.h"
#include "loki.h"
#include "mediatype.h"
#include "payload.h"
#include "promrw.h"

/* At most 64 bytes of a header value, for "%.*s" in a reason. */
#define HDR_SHOWN(h)	(int)((h).len > 64 ? 64 : (h).len), (h).p

#define CT_PROTOBUF	"application/x-protobuf"
#define CT_JSON		"application/json"
#define CT_RW2		CT_PROTOBUF ";proto=" RW2_PROTO
#define RW1_PROTO	"prometheus.WriteRequest"
#define RW2_PROTO	"io.prometheus.write.v2.Request"
#define RW1_VERSION	"0.1.0"
#define RW2_VERSION	"2.0.0"

enum encoding { ENC_NONE, ENC_SNAPPY, ENC_GZIP, ENC_DEFLATE, ENC_OTHER };

/*
 * Each worker keeps the buffers of its last snappy request — the decoded
 * body and a remote write rewrite's output before compression — so a normal
 * request allocates neither.  One over SCRATCH_KEEP is freed after its
 * request (main.c's mmap threshold then returns it to the system at once),
 * so a hostile burst leaves nothing resident.
 */
#define SCRATCH_KEEP	(4u << 20)

struct scratch {
	uint8_t		*decoded;
	size_t		 cap;
	struct pb_buf	 rewrite;
};

static _Thread_local struct scratch scratch;

static void
scratch_trim(void)
{
	if (scratch.cap > SCRATCH_KEEP) {
		free(scratch.decoded);
		scratch.decoded = NULL;
		scratch.cap = 0;
	}
	if (scratch.rewrite.cap > SCRATCH_KEEP)
		pb_buf_free(&scratch.rewrite);
}

void
payload_thread_done(void)
{
	free(scratch.decoded);
	pb_buf_free(&scratch.rewrite);
	memset(&scratch, 0, sizeof(scratch));
}

/* Decodes a snappy body into the worker's buffer. */
static int
snappy_scratch(const uint8_t *body, size_t len, const struct payload_rule *rule,
    uint8_t **dec, size_t *declen, const char **errstr)
{
	int	rc;

	rc = codec_snappy_decode_into(body, len, rule->max_decoded,
	    &scratch.decoded, &scratch.cap, declen, errstr);
	*dec = scratch.decoded;
	return rc;
}

static int
refuse(struct payload_result *res, int status, const char *why,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Makes the reason one printable ASCII line whatever the input put in it. */
static void
oneline(char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
			*s = (unsigned char)*s < 0x20 ? ' ' : '?';
}

static int
refuse(struct payload_result *res, int status, const char *why,
    const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	vsnprintf(res->reason, sizeof(res->reason), fmt, ap);
	va_end(ap);
	oneline(res->reason);
	res->status = status;
	res->reject_reason = why;
	return status;
}

static int
refuse_codec(struct payload_result *res, int err, const char *errstr)
{
	switch (err) {
	case CODEC_TOO_LARGE:
		return refuse(res, 413, "too_large", "%s", errstr);
	case CODEC_NOMEM:
		return refuse(res, 503, "internal", "%s", errstr);
	default:
		return refuse(res, 400, "malformed", "%s", errstr);
	}
}

/*
 * The one coding of a Content-Encoding (ENC_OTHER for a coding kakikomi does
 * not decode), or -1 with res refused when it is not one coding token.
 * Codings are case-insensitive (RFC 9110 §8.4.1); what goes upstream is
 * kakikomi's own lower-case name, which Prometheus and Loki compare exactly.
 */
static int
encoding_of(struct payload_hdr h, struct payload_result *res)
{
	static const char *const names[] = {
		[ENC_SNAPPY] = "snappy", [ENC_GZIP] = "gzip",
		[ENC_DEFLATE] = "deflate",
	};
	const char	*c, *errstr;
	size_t		 n;

	if (h.p == NULL)
		return ENC_NONE;
	if (mediatype_coding(h.p, h.len, &c, &n, &errstr) == -1) {
		refuse(res, 415, "media_type", "Content-Encoding %.*s: %s",
		    HDR_SHOWN(h), errstr);
		return -1;
	}
	if (c == NULL)
		return ENC_NONE;
	for (int e = ENC_SNAPPY; e <= ENC_DEFLATE; e++)
		if (n == strlen(names[e]) && strncasecmp(c, names[e], n) == 0)
			return e;
	return ENC_OTHER;
}

/* Parses a present Content-Type; -1 with res refused. */
static int
media_of(struct payload_hdr h, struct mediatype *mt, struct payload_result *res)
{
	const char	*errstr;

	if (mediatype_parse(h.p, h.len, mt, &errstr) == -1) {
		refuse(res, 415, "media_type", "Content-Type %.*s: %s",
		    HDR_SHOWN(h), errstr);
		return -1;
	}
	return 0;
}

/*
 * Which remote write message a Content-Type names: 0 for 1.0 (also without
 * `proto`), 1 for 2.0, -1 refused.  The value is compared exactly, as
 * Prometheus' parseProtoMsg validates it.
 */
static int
rw_message(struct payload_hdr ct, struct payload_result *res)
{
	struct mediatype		 mt;
	const struct mediatype_param	*proto;

	if (ct.p == NULL) {
		refuse(res, 415, "media_type", "remote write needs Content-Type "
		    CT_PROTOBUF);
		return -1;
	}
	if (media_of(ct, &mt, res) == -1)
		return -1;
	if (!mediatype_is(&mt, "application", "x-protobuf")) {
		refuse(res, 415, "media_type", "Content-Type %.*s is not "
		    "supported for remote write; use " CT_PROTOBUF, HDR_SHOWN(ct));
		return -1;
	}
	proto = mediatype_param(&mt, "proto");
	for (size_t i = 0; i < mt.nparams; i++)
		if (&mt.params[i] != proto) {
			refuse(res, 415, "media_type", "Content-Type parameter "
			    "%.*s is not supported for remote write; only proto",
			    (int)(mt.params[i].nlen > 64 ? 64 : mt.params[i].nlen),
			    mt.params[i].name);
			return -1;
		}
	if (proto == NULL || mediatype_value_is(proto, RW1_PROTO, 0))
		return 0;
	if (mediatype_value_is(proto, RW2_PROTO, 0))
		return 1;
	refuse(res, 415, "media_type", "remote write message %.*s is not "
	    "supported; use " RW1_PROTO " or " RW2_PROTO,
	    (int)(proto->vlen > 64 ? 64 : proto->vlen), proto->value);
	return -1;
}

/*
 * Fills res from a checker's outcome.  A new body (a rewrite, or a checker's
 * canonical form of what passed) becomes what is forwarded; without one, the
 * caller points res->fwd at the bytes it checked.
 */
static int
outcome(struct payload_result *res, int rc, const char *reason,
    struct pb_buf *out, int compress)
{
	switch (rc) {
	case LABELS_PASS:
	case LABELS_REWRITE:
		break;
	/* Checkers own *out on the other outcomes (loki.h, promrw.h). */
	case LABELS_REJECT:
		return refuse(res, 403, "label", "%s", reason);
	case LABELS_MALFORMED:
		return refuse(res, 400, "malformed", "%s", reason);
	default:
		return refuse(res, 503, "internal", "out of memory rewriting");
	}
	/* the worker's rewrite buffer holds an earlier body unless rewritten */
	if (out->data == NULL ||
	    (out == &scratch.rewrite && rc != LABELS_REWRITE))
		return 0;
	if (!compress) {
		res->body = out->data;
		res->len = out->len;
	} else {
		rc = codec_snappy_encode(out->data, out->len, &res->body,
		    &res->len);
		if (out != &scratch.rewrite)
			pb_buf_free(out);
		if (rc != CODEC_OK)
			return refuse(res, 503, "internal", "out of memory "
			    "compressing");
	}
	res->fwd = res->body;
	res->fwdlen = res->len;
	return 0;
}

static int
metrics_check(struct payload_hdr ct, struct payload_hdr ce, const uint8_t *body,
    size_t len, const struct payload_rule *rule, struct payload_result *res)
{
	struct promrw_stats	 st;
	const char		*errstr;
	uint8_t			*dec;
	size_t			 declen;
	int			 v2, rc, enc;
	char			 reason[sizeof(res->reason)];

	if ((enc = encoding_of(ce, res)) == -1)
		return res->status;
	if (enc != ENC_NONE && enc != ENC_SNAPPY)
		return refuse(res, 415, "media_type", "Content-Encoding %.*s "
		    "is not supported for remote write; use snappy", HDR_SHOWN(ce));
	if ((v2 = rw_message(ct, res)) == -1)
		return res->status;
	if ((rc = snappy_scratch(body, len, rule, &dec, &declen, &errstr)) !=
	    CODEC_OK) {
		scratch_trim();
		return refuse_codec(res, rc, errstr);
	}
	rc = (v2 ? promrw_check_v2 : promrw_check_v1)(dec, declen, rule, &st,
	    &scratch.rewrite, reason, sizeof(reason));
	res->series = st.series;
	res->samples = st.samples + st.histograms;
	res->rewritten = rc == LABELS_REWRITE ? st.rewritten : 0;
	res->content_type = v2 ? CT_RW2 : CT_PROTOBUF;
	res->content_encoding = "snappy";
	res->rw_version = v2 ? RW2_VERSION : RW1_VERSION;
	if ((rc = outcome(res, rc, reason, &scratch.rewrite, 1)) == 0 &&
	    res->fwd == NULL) {
		res->fwd = body;
		res->fwdlen = len;
	}
	scratch_trim();
	return rc;
}

/*
 * Loki's own reading (pkg/loghttp/push: mime.ParseMediaType, then JSON for
 * application/json and snappy protobuf for anything else) is wider than
 * this; kakikomi takes the two types senders use and forwards its own
 * canonical string.  1 for JSON, 0 for protobuf, -1 refused.
 */
static int
logs_format(struct payload_hdr ct, int enc, struct payload_result *res)
{
	struct mediatype		 mt;
	const struct mediatype_param	*cs;

	if (ct.p == NULL) {
		refuse(res, 400, "malformed", "a Loki push needs a "
		    "Content-Type");
		return -1;
	}
	if (media_of(ct, &mt, res) == -1)
		return -1;
	if (mediatype_is(&mt, "application", "x-protobuf")) {
		if (mt.nparams == 0)
			return 0;
		refuse(res, 415, "media_type", "Content-Type %.*s: Loki "
		    "protobuf takes no parameters", HDR_SHOWN(ct));
		return -1;
	}
	if (!mediatype_is(&mt, "application", "json")) {
		refuse(res, 415, "media_type", "Content-Type %.*s is not "
		    "supported for Loki push; use " CT_JSON " or " CT_PROTOBUF,
		    HDR_SHOWN(ct));
		return -1;
	}
	cs = mediatype_param(&mt, "charset");
	if (mt.nparams > (cs != NULL) ||
	    (cs != NULL && !mediatype_value_is(cs, "utf-8", 1))) {
		refuse(res, 415, "media_type", "Content-Type %.*s: Loki JSON "
		    "takes only charset=utf-8", HDR_SHOWN(ct));
		return -1;
	}
	if (enc == ENC_SNAPPY) {
		refuse(res, 415, "media_type", "Content-Encoding snappy is for "
		    "Loki protobuf; send JSON plain, gzip or deflate");
		return -1;
	}
	return 1;
}

/* Undoes gzip/deflate into *dec (malloc'd), or points it at the body. */
static int
logs_inflate(enum encoding enc, const uint8_t *body, size_t len,
    const struct payload_rule *rule, uint8_t **dec, size_t *declen,
    struct payload_result *res)
{
	const char	*errstr;
	int		 rc;

	*dec = NULL;
	*declen = len;
	if (enc != ENC_GZIP && enc != ENC_DEFLATE)
		return 0;
	if ((rc = codec_inflate(enc == ENC_GZIP ? CODEC_GZIP : CODEC_DEFLATE,
	    body, len, rule->max_decoded, dec, declen, &errstr)) != CODEC_OK)
		return refuse_codec(res, rc, errstr);
	return 0;
}

/*
 * The two Loki body formats: an enum labels_outcome, or -1 when the body was
 * refused before the check (res filled).
 */
static int
logs_json(const uint8_t *buf, size_t len, const struct payload_rule *rule,
    struct payload_result *res, struct loki_stats *st, struct pb_buf *out,
    char *reason, size_t reasonsz)
{
	if (len > rule->max_decoded) {
		refuse(res, 413, "too_large", "JSON body over the decoded size "
		    "limit");
		return -1;
	}
	return loki_check_json(buf, len, rule, st, out, reason, reasonsz);
}

static int
logs_pb(const uint8_t *buf, size_t len, const struct payload_rule *rule,
    struct payload_result *res, struct loki_stats *st, struct pb_buf *out,
    char *reason, size_t reasonsz)
{
	const char	*errstr;
	uint8_t		*dec;
	size_t		 declen;
	int		 rc;

	rc = snappy_scratch(buf, len, rule, &dec, &declen, &errstr);
	if (rc == CODEC_OK)
		rc = loki_check_pb(dec, declen, rule, st, out, reason, reasonsz);
	else {
		refuse_codec(res, rc, errstr);
		rc = -1;
	}
	scratch_trim();
	return rc;
}

static int
logs_check(struct payload_hdr ct, struct payload_hdr ce, const uint8_t *body, size_t len,
    const struct payload_rule *rule, struct payload_result *res)
{
	struct loki_stats	 st;
	struct pb_buf		 out;
	const uint8_t		*buf;
	uint8_t			*dec;
	size_t			 declen;
	int			 rc, json, enc;
	char			 reason[sizeof(res->reason)];

	if ((enc = encoding_of(ce, res)) == -1)
		return res->status;
	if (enc == ENC_OTHER)
		return refuse(res, 415, "media_type", "Content-Encoding %.*s "
		    "is not supported for Loki push; use gzip, deflate or "
		    "snappy", HDR_SHOWN(ce));
	if ((json = logs_format(ct, enc, res)) == -1)
		return res->status;
	if (logs_inflate((enum encoding)enc, body, len, rule, &dec, &declen,
	    res) != 0)
		return res->status;
	buf = dec != NULL ? dec : body;
	memset(&st, 0, sizeof(st));
	memset(&out, 0, sizeof(out));
	rc = (json ? logs_json : logs_pb)(buf, declen, rule, res, &st, &out,
	    reason, sizeof(reason));
	res->series = st.streams;
	res->entries = st.entries;
	res->rewritten = rc == LABELS_REWRITE ? st.rewritten : 0;
	res->content_type = json ? CT_JSON : CT_PROTOBUF;
	res->content_encoding = NULL;
	if (rc == -1 || (rc = outcome(res, rc, reason, &out, !json)) != 0 ||
	    res->fwd != NULL) {
		free(dec);
		return res->status;
	}
	/* Passed as is: forward the very bytes checked, inflated if need be. */
	res->body = dec;
	res->len = dec != NULL ? declen : 0;
	res->fwd = buf;
	res->fwdlen = declen;
	return 0;
}

int
payload_check(enum signal signal, const char *content_type,
    const char *content_encoding, const uint8_t *body, size_t len,
    const struct payload_rule *rule, struct payload_result *res)
{
	struct payload_hdr ct = { content_type, 0 }, ce = { content_encoding, 0 };

	if (ct.p != NULL)
		ct.len = strlen(ct.p);
	if (ce.p != NULL)
		ce.len = strlen(ce.p);
	return payload_check_n(signal, ct, ce, body, len, rule, res);
}

int
payload_check_n(enum signal signal, struct payload_hdr content_type,
    struct payload_hdr content_encoding, const uint8_t *body, size_t len,
    const struct payload_rule *rule, struct payload_result *res)
{
	memset(res, 0, sizeof(*res));
	switch (signal) {
	case SIGNAL_METRICS:
		return metrics_check(content_type, content_encoding, body, len,
		    rule, res);
	case SIGNAL_LOGS:
		return logs_check(content_type, content_encoding, body, len,
		    rule, res);
	default:
		return refuse(res, 400, "malformed", "unknown signal");
	}
}

void
payload_result_free(struct payload_result *res)
{
	free(res->body);
	res->body = NULL;
	res->len = 0;
}
