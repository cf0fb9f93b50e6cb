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
#include "payload.h"
#include "promrw.h"

#define CT_PROTOBUF	"application/x-protobuf"
#define CT_JSON		"application/json"
#define CT_RW2		CT_PROTOBUF ";proto=io.prometheus.write.v2.Request"
#define RW1_PROTO	"prometheus.WriteRequest"
#define RW2_PROTO	"io.prometheus.write.v2.Request"

enum encoding { ENC_NONE, ENC_SNAPPY, ENC_GZIP, ENC_DEFLATE, ENC_OTHER };

static int
refuse(struct payload_result *res, int status, const char *why,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Makes the reason one printable line whatever the input put in it. */
static void
oneline(char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			*s = ' ';
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

/* Whitespace-trimmed length of the token [s, s + n). */
static size_t
trimmed(const char **s, size_t n)
{
	while (n > 0 && (**s == ' ' || **s == '\t')) {
		(*s)++;
		n--;
	}
	while (n > 0 && ((*s)[n - 1] == ' ' || (*s)[n - 1] == '\t'))
		n--;
	return n;
}

static int
token_is(const char *s, size_t n, const char *want)
{
	n = trimmed(&s, n);
	return n == strlen(want) && strncasecmp(s, want, n) == 0;
}

/* 1 when the media type (before any `;`) of header h is `want`. */
static int
media_is(const char *h, const char *want)
{
	return h != NULL && token_is(h, strcspn(h, ";"), want);
}

/*
 * The value of parameter `name` in a Content-Type (quotes removed) as a view,
 * or NULL when absent.
 */
static const char *
media_param(const char *h, const char *name, size_t *vlen)
{
	const char	*p = strchr(h, ';'), *eq;
	size_t		 n;

	while (p != NULL) {
		p++;
		n = strcspn(p, ";");
		if ((eq = memchr(p, '=', n)) != NULL &&
		    token_is(p, (size_t)(eq - p), name)) {
			eq++;
			*vlen = trimmed(&eq, n - (size_t)(eq - p));
			if (*vlen >= 2 && eq[0] == '"' && eq[*vlen - 1] == '"') {
				eq++;
				*vlen -= 2;
			}
			return eq;
		}
		p = strchr(p, ';');
	}
	return NULL;
}

static enum encoding
encoding_of(const char *h)
{
	if (h == NULL || token_is(h, strlen(h), ""))
		return ENC_NONE;
	if (token_is(h, strlen(h), "snappy"))
		return ENC_SNAPPY;
	if (token_is(h, strlen(h), "gzip"))
		return ENC_GZIP;
	if (token_is(h, strlen(h), "deflate"))
		return ENC_DEFLATE;
	return ENC_OTHER;
}

/* Fills res from a checker's outcome; body (decoded) is consumed. */
static int
outcome(struct payload_result *res, int rc, const char *reason,
    struct pb_buf *out, int compress)
{
	switch (rc) {
	case LABELS_PASS:
		return 0;
	case LABELS_REJECT:
		return refuse(res, 403, "label", "%s", reason);
	case LABELS_MALFORMED:
		return refuse(res, 400, "malformed", "%s", reason);
	case LABELS_NOMEM:
		return refuse(res, 503, "internal", "out of memory rewriting");
	}
	if (!compress) {
		res->body = out->data;
		res->len = out->len;
		return 0;
	}
	rc = codec_snappy_encode(out->data, out->len, &res->body, &res->len);
	pb_buf_free(out);
	if (rc != CODEC_OK)
		return refuse(res, 503, "internal", "out of memory compressing");
	return 0;
}

static int
metrics_check(const char *ct, const char *ce, const uint8_t *body,
    size_t len, const struct payload_rule *rule, struct payload_result *res)
{
	struct promrw_stats	 st;
	struct pb_buf		 out;
	const char		*proto, *errstr;
	uint8_t			*dec;
	size_t			 plen = 0, declen;
	int			 v2, rc;
	enum encoding		 enc = encoding_of(ce);
	char			 reason[sizeof(res->reason)];

	if (enc != ENC_NONE && enc != ENC_SNAPPY)
		return refuse(res, 415, "media_type", "Content-Encoding %.64s "
		    "is not supported for remote write; use snappy", ce);
	if (!media_is(ct, CT_PROTOBUF))
		return refuse(res, 415, "media_type", "Content-Type %.64s is "
		    "not supported for remote write; use " CT_PROTOBUF,
		    ct == NULL ? "(none)" : ct);
	proto = media_param(ct, "proto", &plen);
	v2 = proto != NULL && plen == strlen(RW2_PROTO) &&
	    memcmp(proto, RW2_PROTO, plen) == 0;
	if (proto != NULL && !v2 && (plen != strlen(RW1_PROTO) ||
	    memcmp(proto, RW1_PROTO, plen) != 0))
		return refuse(res, 415, "media_type", "remote write message "
		    "%.*s is not supported", plen > 64 ? 64 : (int)plen, proto);
	if ((rc = codec_snappy_decode(body, len, rule->max_decoded, &dec,
	    &declen, &errstr)) != CODEC_OK)
		return refuse_codec(res, rc, errstr);
	rc = (v2 ? promrw_check_v2 : promrw_check_v1)(dec, declen, rule, &st,
	    &out, reason, sizeof(reason));
	free(dec);
	res->series = st.series;
	res->samples = st.samples + st.histograms;
	res->rewritten = rc == LABELS_REWRITE ? st.rewritten : 0;
	res->content_type = v2 ? CT_RW2 : CT_PROTOBUF;
	res->content_encoding = "snappy";
	return outcome(res, rc, reason, &out, 1);
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
	res->content_type = CT_JSON;
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

	if ((rc = codec_snappy_decode(buf, len, rule->max_decoded, &dec,
	    &declen, &errstr)) != CODEC_OK) {
		refuse_codec(res, rc, errstr);
		return -1;
	}
	res->content_type = CT_PROTOBUF;
	rc = loki_check_pb(dec, declen, rule, st, out, reason, reasonsz);
	free(dec);
	return rc;
}

static int
logs_check(const char *ct, const char *ce, const uint8_t *body, size_t len,
    const struct payload_rule *rule, struct payload_result *res)
{
	struct loki_stats	 st;
	struct pb_buf		 out;
	uint8_t			*dec;
	size_t			 declen;
	int			 rc, json;
	enum encoding		 enc = encoding_of(ce);
	char			 reason[sizeof(res->reason)];

	if (ct == NULL)
		return refuse(res, 400, "malformed", "a Loki push needs a "
		    "Content-Type");
	if (enc == ENC_OTHER)
		return refuse(res, 415, "media_type", "Content-Encoding %.64s "
		    "is not supported for Loki push; use gzip, deflate or "
		    "snappy", ce);
	if (logs_inflate(enc, body, len, rule, &dec, &declen, res) != 0)
		return res->status;
	json = media_is(ct, CT_JSON);
	memset(&st, 0, sizeof(st));
	rc = (json ? logs_json : logs_pb)(dec != NULL ? dec : body, declen,
	    rule, res, &st, &out, reason, sizeof(reason));
	free(dec);
	if (rc == -1)
		return res->status;
	res->series = st.streams;
	res->entries = st.entries;
	res->rewritten = rc == LABELS_REWRITE ? st.rewritten : 0;
	res->content_encoding = NULL;
	return outcome(res, rc, reason, &out, !json);
}

int
payload_check(enum signal signal, const char *content_type,
    const char *content_encoding, const uint8_t *body, size_t len,
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
