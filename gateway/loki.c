/*
 * loki: Loki push (protobuf and JSON) scan, check and rewrite.  See loki.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loki.h"
#include "lokijson.h"

#define PUSH_STREAMS	1
#define STREAM_LABELS	1
#define STREAM_ENTRIES	2
#define ENTRY_METADATA	3	/* structuredMetadata (Loki >= 2.9) */
#define PAIR_NAME	1
#define PAIR_VALUE	2

struct lscan {
	const struct payload_rule	*rule;
	struct loki_stats		*st;
	struct labels_set		 ls;
	const char			*errstr;
	int				 found;
	int				 recode;	/* a labels string is not canonical */
	int				 refused;	/* 403 whatever the mode */
	const uint8_t			*labels;	/* the stream's labels string */
	size_t				 llen;
	char				*reason;
	size_t				 reasonsz;
	struct pb_buf			 text;	/* a canonical labels string */
};

static void
lscan_init(struct lscan *s, const struct payload_rule *rule,
    struct loki_stats *st, char *reason, size_t reasonsz)
{
	memset(s, 0, sizeof(*s));
	memset(st, 0, sizeof(*st));
	s->rule = rule;
	s->st = st;
	s->reason = reason;
	s->reasonsz = reasonsz;
	labels_set_init(&s->ls);
}

static void
lscan_free(struct lscan *s)
{
	labels_set_free(&s->ls);
	pb_buf_free(&s->text);
}

static int
malformed(struct lscan *s, const char *what)
{
	snprintf(s->reason, s->reasonsz, "malformed Loki push: %s: %s", what,
	    s->errstr);
	return -1;
}

/* Checks a parsed stream's labels; 1 when the scan may stop (reject). */
static int
judge_stream(struct lscan *s)
{
	const struct labels_pair	*dup;

	if ((dup = labels_sort_unique(&s->ls)) != NULL) {
		s->errstr = "a stream repeats a label name";
		return malformed(s, "labels");
	}
	if (labels_verdict(&s->ls, s->rule) == LABELS_OK)
		return 0;
	s->found = 1;
	if (s->rule->mode == MISMATCH_REJECT) {
		labels_violation(s->reason, s->reasonsz, "stream", &s->ls,
		    s->rule);
		return 1;
	}
	s->st->rewritten++;
	return 0;
}

/* protobuf */

/*
 * 1 when the stream's labels string is already the canonical form Loki's
 * own String() writes; otherwise kakikomi forwards that form instead, so
 * Loki never parses a spelling kakikomi's grammar might read differently.
 */
static int
pb_canonical(struct lscan *s)
{
	s->text.len = 0;
	labels_format(&s->text, &s->ls, 1, SIZE_MAX);
	return !pb_buf_failed(&s->text) && s->text.len == s->llen &&
	    memcmp(s->text.data, s->labels, s->llen) == 0;
}

/*
 * Structured metadata is checked, never rewritten: a foreign site label
 * there (LogQL filters on it like on a label) refuses the request.
 */
static int
pb_metadata_pair(struct lscan *s, const uint8_t *buf, size_t len)
{
	struct pb_reader	 r;
	struct pb_field		 f;
	const uint8_t		*name = NULL, *value = NULL;
	size_t			 nlen = 0, vlen = 0;
	int			 rc;

	pb_reader_init(&r, buf, len);
	while ((rc = pb_next(&r, &f, &s->errstr)) == 1) {
		if (f.num != PAIR_NAME && f.num != PAIR_VALUE)
			continue;
		if (f.wt != PB_LEN) {
			s->errstr = "wrong wire type for structured metadata";
			return malformed(s, "protobuf");
		}
		if (f.num == PAIR_NAME) {
			name = f.data;
			nlen = f.len;
		} else {
			value = f.data;
			vlen = f.len;
		}
	}
	if (rc == -1)
		return malformed(s, "protobuf");
	if (!labels_pair_foreign(s->rule, name, nlen, value, vlen))
		return 0;
	snprintf(s->reason, s->reasonsz, "an entry's structured metadata has "
	    "%s=\"%.*s\", site %s may not write it (structured metadata is "
	    "checked, not rewritten)", s->rule->label,
	    vlen > 64 ? 64 : (int)vlen, (const char *)value, s->rule->site);
	s->refused = 1;
	return -1;
}

static int
pb_entry(struct lscan *s, const uint8_t *buf, size_t len)
{
	struct pb_reader	r;
	struct pb_field		f;
	int			rc;

	s->st->entries++;
	pb_reader_init(&r, buf, len);
	while ((rc = pb_next(&r, &f, &s->errstr)) == 1) {
		if (f.num != ENTRY_METADATA)
			continue;
		if (f.wt != PB_LEN) {
			s->errstr = "wrong wire type for structured metadata";
			return malformed(s, "protobuf");
		}
		if (pb_metadata_pair(s, f.data, f.len) == -1)
			return -1;
	}
	return rc == -1 ? malformed(s, "protobuf") : 0;
}

static int
pb_stream_read(struct lscan *s, const uint8_t *buf, size_t len, int entries)
{
	struct pb_reader	 r;
	struct pb_field		 f;
	int			 rc;

	s->labels = NULL;
	s->llen = 0;
	pb_reader_init(&r, buf, len);
	while ((rc = pb_next(&r, &f, &s->errstr)) == 1) {
		if (f.num != STREAM_LABELS && f.num != STREAM_ENTRIES)
			continue;
		if (f.wt != PB_LEN) {
			s->errstr = "wrong wire type for a stream field";
			return malformed(s, "protobuf");
		}
		if (f.num == STREAM_LABELS) {
			s->labels = f.data;
			s->llen = f.len;
		} else if (entries && pb_entry(s, f.data, f.len) == -1)
			return -1;
	}
	if (rc == -1)
		return malformed(s, "protobuf");
	if (s->labels == NULL) {
		s->errstr = "a stream has no labels";
		return malformed(s, "labels");
	}
	if (labels_parse(s->labels, s->llen, &s->ls, &s->errstr) == -1)
		return malformed(s, "labels string");
	return 0;
}

static void
pb_stream_put(struct lscan *s, const uint8_t *buf, size_t len,
    struct pb_buf *out)
{
	size_t	size;

	s->text.len = 0;
	labels_format(&s->text, &s->ls, 1, SIZE_MAX);
	if (pb_buf_failed(&s->text)) {
		out->failed = 1;
		return;
	}
	size = 1 + pb_varint_size(s->text.len) + s->text.len +
	    pb_size_except(buf, len, STREAM_LABELS);
	pb_put_tag(out, PUSH_STREAMS, PB_LEN);
	pb_put_varint(out, size);
	pb_put_bytes(out, STREAM_LABELS, s->text.data, s->text.len);
	pb_put_except(out, buf, len, STREAM_LABELS);
}

/*
 * One stream; in the copying pass (out != NULL) writes it, the original
 * bytes when it passed as sent.  1: stop.
 */
static int
pb_stream(struct lscan *s, const struct pb_field *f, struct pb_buf *out)
{
	enum labels_verdict	verdict;
	int			rc;

	if (f->wt != PB_LEN) {
		s->errstr = "wrong wire type for streams";
		return malformed(s, "protobuf");
	}
	if (out == NULL)
		s->st->streams++;
	if (pb_stream_read(s, f->data, f->len, out == NULL) == -1)
		return -1;
	if (out == NULL) {
		if ((rc = judge_stream(s)) != 0)
			return rc;
		if (!pb_canonical(s))
			s->recode = 1;
		return 0;
	}
	(void)labels_sort_unique(&s->ls);
	verdict = labels_verdict(&s->ls, s->rule);
	if (verdict == LABELS_OK && pb_canonical(s))
		pb_put_raw(out, f->start, f->rawlen);
	else if (verdict != LABELS_OK && labels_enforce(&s->ls, s->rule) == -1)
		out->failed = 1;
	else
		pb_stream_put(s, f->data, f->len, out);
	return 0;
}

static int
pb_pass(struct lscan *s, const uint8_t *buf, size_t len, struct pb_buf *out)
{
	struct pb_reader	r;
	struct pb_field		f;
	int			rc;

	pb_reader_init(&r, buf, len);
	while ((rc = pb_next(&r, &f, &s->errstr)) == 1) {
		if (f.num != PUSH_STREAMS) {
			if (out != NULL)
				pb_put_raw(out, f.start, f.rawlen);
			continue;
		}
		if ((rc = pb_stream(s, &f, out)) != 0)
			return rc == 1 ? 0 : -1;
	}
	return rc == -1 ? malformed(s, "protobuf") : 0;
}

int
loki_check_pb(const uint8_t *buf, size_t len,
    const struct payload_rule *rule, struct loki_stats *st,
    struct pb_buf *out, char *reason, size_t reasonsz)
{
	struct lscan		s;
	struct loki_stats	scratch;
	int			rc;

	lscan_init(&s, rule, st, reason, reasonsz);
	if (pb_pass(&s, buf, len, NULL) == -1)
		rc = s.refused ? LABELS_REJECT : LABELS_MALFORMED;
	else if (s.found && rule->mode == MISMATCH_REJECT)
		rc = LABELS_REJECT;
	else if (!s.found && !s.recode)
		rc = LABELS_PASS;
	else {
		s.st = &scratch;
		pb_buf_init(out, len + len / 8 + 64);
		if (pb_pass(&s, buf, len, out) == -1)
			out->failed = 1;
		rc = LABELS_REWRITE;
		if (pb_buf_failed(out)) {
			pb_buf_free(out);
			rc = LABELS_NOMEM;
		}
	}
	lscan_free(&s);
	return rc;
}

/* JSON: see lokijson.h. */

int
loki_check_json(const uint8_t *buf, size_t len,
    const struct payload_rule *rule, struct loki_stats *st,
    struct pb_buf *out, char *reason, size_t reasonsz)
{
	return lokijson_check(buf, len, rule, st, out, reason, reasonsz);
}
