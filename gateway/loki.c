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

struct lscan {
	const struct payload_rule	*rule;
	struct loki_stats		*st;
	struct labels_set		 ls;
	const char			*errstr;
	int				 found;
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

static int
pb_stream_read(struct lscan *s, const uint8_t *buf, size_t len)
{
	struct pb_reader	 r;
	struct pb_field		 f;
	const uint8_t		*labels = NULL;
	size_t			 llen = 0;
	int			 rc;

	pb_reader_init(&r, buf, len);
	while ((rc = pb_next(&r, &f, &s->errstr)) == 1) {
		if (f.num != STREAM_LABELS && f.num != STREAM_ENTRIES)
			continue;
		if (f.wt != PB_LEN) {
			s->errstr = "wrong wire type for a stream field";
			return malformed(s, "protobuf");
		}
		if (f.num == STREAM_ENTRIES)
			s->st->entries++;
		else {
			labels = f.data;
			llen = f.len;
		}
	}
	if (rc == -1)
		return malformed(s, "protobuf");
	if (labels == NULL) {
		s->errstr = "a stream has no labels";
		return malformed(s, "labels");
	}
	if (labels_parse(labels, llen, &s->ls, &s->errstr) == -1)
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

/* One stream; in the copying pass (out != NULL) writes it.  1: stop. */
static int
pb_stream(struct lscan *s, const struct pb_field *f, struct pb_buf *out)
{
	if (f->wt != PB_LEN) {
		s->errstr = "wrong wire type for streams";
		return malformed(s, "protobuf");
	}
	if (out == NULL)
		s->st->streams++;
	if (pb_stream_read(s, f->data, f->len) == -1)
		return -1;
	if (out == NULL)
		return judge_stream(s);
	if (labels_sort_unique(&s->ls) != NULL ||
	    labels_verdict(&s->ls, s->rule) == LABELS_OK)
		pb_put_raw(out, f->start, f->rawlen);
	else if (labels_enforce(&s->ls, s->rule) == -1)
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
		rc = LABELS_MALFORMED;
	else if (!s.found)
		rc = LABELS_PASS;
	else if (rule->mode == MISMATCH_REJECT)
		rc = LABELS_REJECT;
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
